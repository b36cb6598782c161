// Send connectors as an admin meets them: files in send-connectors.d/ beside the shipped
// config, `mailgw check` (routing per accepted domain and for a remote domain, errors with file
// and key), `mailgw explain --route` (connector, next hops, TLS policy, reason).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { mailgw, shippedCopy } from './helpers/binary.js';

function withSendConnectors(files: Record<string, string>, dirName = 'send-connectors.d'): string {
  const dir = shippedCopy();
  mkdirSync(path.join(dir, dirName));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, dirName, name), text);
  return dir;
}

const EXO = ['name: Exchange Online', 'addressSpaces: ["*;10"]', 'smartHosts: [contoso-test.mail.protection.outlook.com]', 'requireTLS: true', 'tlsAuthLevel: DomainValidation', 'tlsDomain: mail.protection.outlook.com', ''].join('\n');
const TENANT = [
  'name: Tenant A',
  'addressSpaces:',
  '  - { address: "*", senderDomains: [tenant-a.test] }',
  'smartHosts: [smtp1.provider.test:587, smtp2.provider.test:587]',
  'smartHostAuthMechanism: BasicAuthRequireTLS',
  'authenticationCredential: { user: relay@tenant-a.test, passEnv: MAILGW_TEST_TENANT_PASS }',
  '',
].join('\n');
const env = { ...process.env, MAILGW_TEST_TENANT_PASS: 'pw' };

describe('send connectors in the CLI', () => {
  it('check shows the send connectors and which one each accepted domain and a remote domain leave through', () => {
    const dir = withSendConnectors({ 'exo.yaml': EXO, 'tenant-a.yaml': `${TENANT}sendHeadersRouting: false\n` });
    const r = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')], '', env);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Send connectors: 2 in send-connectors\.d\/, plus 3 route\(s\) in .*gateway\.yaml as shorthand/);
    assert.match(r.out, /"Exchange Online" +\[.*exo\.yaml\] +\*;10 -> SMTP to contoso-test\.mail\.protection\.outlook\.com:25\n/);
    assert.match(r.out, /"Tenant A" +\[.*tenant-a\.yaml\] .*; Received fields removed\n/);
    assert.match(r.out, /\n  contoso\.test +routes\[0\] -> local mailboxes in /);
    // The wildcard accepted domain (*.contoso.test) by a name under it, not a second "contoso.test".
    assert.match(r.out, /\n  \*\.contoso\.test \(sub\.contoso\.test\) +routes\[0\] -> local mailboxes in /);
    assert.equal(r.out.match(/\n  contoso\.test /g)?.length, 1, r.out);
    assert.match(r.out, /fabrikam\.test +routes\[1\] -> SMTP to 127\.0\.0\.1:2626/);
    // routes[2] ("*" to mx, a shorthand connector at cost 1) is as specific as "*;10" and cheaper.
    assert.match(r.out, /example\.com \(a remote domain\) +routes\[2\] -> the MX hosts of example\.com/);

    const json = JSON.parse(mailgw(['check', '--config', path.join(dir, 'gateway.yaml'), '--json'], '', env).out) as { routing: Array<{ recipientDomain: string; connector: string; reasonCode: string }>; sendConnectors: Array<{ name: string; sendHeadersRouting: boolean }> };
    assert.deepEqual(json.sendConnectors.filter((c) => !c.sendHeadersRouting).map((c) => c.name), ['Tenant A']);
    assert.deepEqual(json.routing.map((x) => x.recipientDomain), ['contoso.test', 'sub.contoso.test', 'fabrikam.test', 'example.com']);
    assert.deepEqual(json.routing.find((x) => x.recipientDomain === 'example.com'), { ...json.routing.find((x) => x.recipientDomain === 'example.com'), connector: 'routes[2]', reasonCode: 'lower-cost' });
  });

  it('explain --route prints the chosen connector, next hops, TLS policy and why; --mail-from selects sender-dependent routes', () => {
    const dir = withSendConnectors({ 'exo.yaml': EXO.replace('*;10', '*'), 'tenant-a.yaml': TENANT });
    const cfg = path.join(dir, 'gateway.yaml');
    const exo = mailgw(['explain', '--config', cfg, '--route', 'bob@example.org'], '', env);
    assert.equal(exo.code, 0, exo.err);
    assert.match(exo.out, /connector +Exchange Online \(.*exo\.yaml\)/);
    assert.match(exo.out, /why +address space "\*;1" of send connector "Exchange Online" .* it beats routes\[2\] .*: at equal specificity and cost a send connector comes before a route/);
    assert.match(exo.out, /next hops +SMTP to contoso-test\.mail\.protection\.outlook\.com:25/);
    assert.match(exo.out, /TLS +requireTLS: STARTTLS with a trusted certificate for mail\.protection\.outlook\.com \(DomainValidation\), never plain text/);
    assert.match(exo.out, /queue +send:Exchange Online/);

    const tenant = mailgw(['explain', '--config', cfg, '--route', 'bob@example.org', '--mail-from', 'ceo@tenant-a.test', '--json'], '', env);
    assert.equal(tenant.code, 0, tenant.err);
    const t = JSON.parse(tenant.out) as Record<string, unknown>;
    assert.equal(t.connector, 'Tenant A');
    assert.equal(t.reasonCode, 'sender-restricted');
    assert.equal(t.nextHops, 'SMTP to smart hosts smtp1.provider.test:587, smtp2.provider.test:587 (tried in this order)');
    assert.equal(t.auth, 'BasicAuthRequireTLS as relay@tenant-a.test');

    const local = mailgw(['explain', '--config', cfg, '--route', 'alice@sales.contoso.test'], '', env);
    assert.match(local.out, /connector +routes\[0\]/);
    assert.match(local.out, /matches the recipient domain more specifically/);
  });

  it('explain --route on an MX connector says DANE and the recipient domain\'s MTA-STS policy apply at delivery', () => {
    const dir = withSendConnectors({ 'exo.yaml': EXO });
    const r = mailgw(['explain', '--config', path.join(dir, 'gateway.yaml'), '--route', 'bob@example.org'], '', env);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /connector +routes\[2\]/);
    assert.match(r.out, /TLS +.*plus DANE \(DNSSEC-signed TLSA records of each MX host, where the MX and address records are signed too\) and the recipient domain's MTA-STS policy, looked up at delivery \(enforce: only the MX hosts it lists, with verified TLS to their names\)/);
  });

  it('a bad connector file: check names the file, the key and what is wrong; --send-connectors DIR is read instead', () => {
    const dir = withSendConnectors({ 'exo.yaml': EXO.replace('requireTLS: true\n', '') }, 'outbound');
    const ok = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')], '', env);
    assert.equal(ok.code, 0, 'without --send-connectors the other directory is not read');
    const r = mailgw(['check', '--config', path.join(dir, 'gateway.yaml'), '--send-connectors', path.join(dir, 'outbound')], '', env);
    assert.equal(r.code, 1);
    assert.match(r.err, /outbound\/exo\.yaml: tlsAuthLevel: tlsAuthLevel applies only with requireTLS: true/);
    const unset = mailgw(['check', '--config', path.join(withSendConnectors({ 't.yaml': TENANT }), 'gateway.yaml')], '', { ...process.env, MAILGW_TEST_TENANT_PASS: undefined });
    assert.equal(unset.code, 1);
    assert.match(unset.err, /send-connectors\.d\/t\.yaml: authenticationCredential\.passEnv: the environment variable MAILGW_TEST_TENANT_PASS is not set/);
  });
});
