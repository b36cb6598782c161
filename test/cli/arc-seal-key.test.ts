// The ARC sealing key as an admin handles it: `mailgw check` refuses a configuration whose
// senderAuthentication.arcSeal key does not exist (saying which command makes it), `mailgw dkim
// keygen` makes it where arcSeal looks for it and prints the record, `mailgw dkim check` finds it
// published through the gateway's resolver, and an Ed25519 key is refused (ARC seals with RSA).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { mailgwAsync } from './helpers/binary.js';

let dns: TestDns;
let tmp: string;

/** `mailgw args… --config <tmp>/gateway.yaml`, as stdout/stderr (the DNS server runs in this process: not blocked). */
async function mailgw(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await mailgwAsync([...args, '--config', path.join(tmp, 'gateway.yaml')]);
  return { code: r.code, stdout: r.out, stderr: r.err };
}

function gatewayYaml(arcSeal: string): void {
  writeFileSync(
    path.join(tmp, 'gateway.yaml'),
    ['fqdn: mx.contoso.test', 'dataDir: ./var', 'acceptedDomains:', '  - { domain: contoso.test, default: true }', `dns: { servers: ["${dns.server}"] }`, 'senderAuthentication:', '  enabled: false  # no real DNS in tests', `  arcSeal: ${arcSeal}`, ''].join('\n'),
  );
}

before(async () => {
  dns = await startDnsServer({});
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mailgw-arc-key-'));
  mkdirSync(path.join(tmp, 'connectors.d'));
  writeFileSync(path.join(tmp, 'connectors.d/default.yaml'), 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
  gatewayYaml('{ domain: contoso.test, selector: arc2026 }');
});

after(async () => {
  await dns?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the ARC sealing key, by the command line', () => {
  it('check: a missing key is a configuration error naming senderAuthentication.arcSeal and the command that makes it', async () => {
    const r = await mailgw('check');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gateway\.yaml: senderAuthentication\.arcSeal: key file .*var\/dkim\/contoso\.test\/arc2026\.key does not exist; create it with `mailgw dkim keygen contoso\.test --selector arc2026`/);
  });

  it('dkim keygen makes it where arcSeal looks; check passes; dkim check finds the record once published', async () => {
    const made = await mailgw('dkim', 'keygen', 'contoso.test', '--selector', 'arc2026');
    assert.equal(made.code, 0, made.stderr);
    assert.equal(statSync(path.join(tmp, 'var/dkim/contoso.test/arc2026.key')).mode & 0o777, 0o600);
    const value = /^value: (.*)$/m.exec(made.stdout)![1]!;
    assert.match(value, /^v=DKIM1; k=rsa; p=/);
    const ok = await mailgw('check');
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^ARC: no trusted sealers; mail authenticated on arrival is sealed as contoso\.test \(selector arc2026\), key OK$/m);
    // Sender authentication is off in this file (no real DNS in tests): nothing would be sealed, and check says so.
    assert.match(ok.stdout + ok.stderr, /senderAuthentication\.arcSeal: has no effect: senderAuthentication\.enabled is false/);
    const before = await mailgw('dkim', 'check', 'contoso.test');
    assert.equal(before.code, 1);
    assert.match(before.stdout, /arc2026\._domainkey\.contoso\.test: MISMATCH: no TXT record is published/);
    dns.set('arc2026._domainkey.contoso.test', { TXT: [value] });
    const published = await mailgw('dkim', 'check', 'contoso.test');
    assert.equal(published.code, 0, published.stdout + published.stderr);
    assert.match(published.stdout, /arc2026\._domainkey\.contoso\.test: OK, the published rsa key matches/);
  });

  it('an Ed25519 key, and a bad domain or selector, are refused with the key named', async () => {
    const ed = await mailgw('dkim', 'keygen', 'contoso.test', '--selector', 'ed1', '--algorithm', 'ed25519');
    assert.equal(ed.code, 0, ed.stderr);
    gatewayYaml('{ domain: contoso.test, selector: ed1 }');
    const r = await mailgw('check');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /senderAuthentication\.arcSeal: key file .*ed1\.key holds an ed25519 key; ARC seals with RSA/);
    gatewayYaml('{ domain: "*.contoso.test", selector: "arc 1" }');
    const bad = await mailgw('check');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /senderAuthentication\.arcSeal\.domain: "\*\.contoso\.test" is not a domain name/);
    assert.match(bad.stderr, /senderAuthentication\.arcSeal\.selector: must be a DNS label/);
    gatewayYaml('{ domain: contoso.test, selector: arc2026 }');
  });
});
