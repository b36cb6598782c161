// selectSendConnector: Exchange's address-space rule (most specific, then lowest cost), sender-
// dependent routing, and routes as shorthand connectors (among them the first match wins).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { buildConfig, formatIssue, type SendConnector } from '@mailgw/config';
import { selectSendConnector } from '@mailgw/policy';

function table(sendConnectors: Record<string, unknown>, routes: unknown[] = []): readonly SendConnector[] {
  const r = buildConfig({
    gatewayFile: 'gateway.yaml',
    gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }], routes },
    connectorFiles: [{ file: 'connectors.d/default.yaml', data: { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] } }],
    sendConnectorFiles: Object.entries(sendConnectors).map(([file, data]) => ({ file: `send-connectors.d/${file}`, data })),
    readReferenced: (p) => ({ ok: false, error: `cannot read ${p}`, file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
    env: { RELAY_PASS: 'pw' },
  });
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.config.gateway.sendConnectors;
}

const pick = (t: readonly SendConnector[], rcpt: string, sender: string | null = 'contoso.test') => selectSendConnector(t, { recipientDomain: rcpt, senderDomain: sender });

describe('selectSendConnector', () => {
  const t = table({
    'internet.yaml': { name: 'Internet', addressSpaces: ['*;10'], dnsRoutingEnabled: true },
    'cheap.yaml': { name: 'Cheap', addressSpaces: ['*;5'], smartHosts: ['relay.test'] },
    'fabrikam.yaml': { name: 'Fabrikam', addressSpaces: ['*.fabrikam.test;50'], smartHosts: ['10.0.0.9:2525'] },
    'eu.yaml': { name: 'EU', addressSpaces: ['eu.fabrikam.test;99'], smartHosts: ['10.0.0.10'] },
    'off.yaml': { name: 'Off', enabled: false, addressSpaces: ['off.test'], smartHosts: ['10.0.0.11'] },
    'tenant-a.yaml': { name: 'TenantA', addressSpaces: [{ address: '*', cost: 20, senderDomains: ['tenant-a.test'] }], smartHosts: ['smtp.tenant-a.test'] },
  });

  test('the most specific address space wins, whatever the cost', () => {
    assert.equal(pick(t, 'eu.fabrikam.test').connector?.name, 'EU');
    const sub = pick(t, 'x.fabrikam.test');
    assert.equal(sub.connector?.name, 'Fabrikam');
    assert.equal(sub.reasonCode, 'more-specific');
    assert.match(sub.reason, /address space "\*\.fabrikam\.test;50" of send connector "Fabrikam" \(send-connectors\.d\/fabrikam\.yaml\) matches x\.fabrikam\.test/);
    assert.equal(pick(t, 'fabrikam.test').connector?.name, 'Fabrikam', '*.fabrikam.test also matches fabrikam.test itself');
  });

  test('at equal specificity the lowest cost wins', () => {
    const c = pick(t, 'example.org');
    assert.equal(c.connector?.name, 'Cheap');
    assert.equal(c.reasonCode, 'lower-cost');
    assert.match(c.reason, /beats send connector "Internet"/);
  });

  test('sender-dependent routing: an address space limited to the sender domain wins over an unrestricted one', () => {
    const c = pick(t, 'example.org', 'tenant-a.test');
    assert.equal(c.connector?.name, 'TenantA');
    assert.equal(c.reasonCode, 'sender-restricted');
    assert.equal(pick(t, 'example.org', 'tenant-b.test').connector?.name, 'Cheap');
    assert.equal(pick(t, 'example.org', null).connector?.name, 'Cheap', 'the null sender (DSNs) never uses a sender-restricted space');
    // Recipient specificity still comes first.
    assert.equal(pick(t, 'eu.fabrikam.test', 'tenant-a.test').connector?.name, 'EU');
  });

  test('a disabled connector is never chosen; nothing matching is a reason too', () => {
    assert.equal(pick(t, 'off.test').connector?.name, 'Cheap');
    const none = pick(table({ 'a.yaml': { name: 'A', addressSpaces: ['contoso.test'], smartHosts: ['10.0.0.1'] } }), 'example.org');
    assert.equal(none.connector, null);
    assert.equal(none.reasonCode, 'no-match');
    assert.match(none.reason, /no enabled send connector or route has an address space matching example\.org/);
  });

  test('routes are shorthand connectors: among them the first match in file order wins, as before', () => {
    const routes = [
      { domains: ['*'], to: 'mx' },
      { domains: ['fabrikam.test'], to: 'smtp://10.0.0.5:25' },
    ];
    const r = table({}, routes);
    const c = pick(r, 'fabrikam.test');
    assert.equal(c.connector?.name, 'routes[0]');
    assert.equal(c.reasonCode, 'only-candidate');
    // A send connector competes with the first matching route by specificity and cost.
    const mixed = table({ 'fab.yaml': { name: 'Fab', addressSpaces: ['fabrikam.test'], smartHosts: ['10.0.0.6'] } }, routes);
    assert.equal(pick(mixed, 'fabrikam.test').connector?.name, 'Fab');
    assert.equal(pick(mixed, 'example.org').connector?.name, 'routes[0]');
    const tie = table({ 'all.yaml': { name: 'All', addressSpaces: ['*'], smartHosts: ['10.0.0.6'] } }, routes);
    const t2 = pick(tie, 'example.org');
    assert.equal(t2.connector?.name, 'All');
    assert.equal(t2.reasonCode, 'connector-before-route');
  });

  test('a route compiles to the connector it is shorthand for', () => {
    const [c] = table({}, [{ domains: ['fabrikam.test', '*.fabrikam.test'], to: 'smtp://relay.test:587', requireTLS: true, verifyTLS: true, auth: { user: 'gw', passEnv: 'RELAY_PASS' } }]);
    assert.equal(c!.name, 'routes[0]');
    assert.deepEqual(c!.addressSpaces.map((a) => a.text), ['fabrikam.test;1', '*.fabrikam.test;1']);
    assert.equal(c!.smartHostAuthMechanism, 'BasicAuth');
    assert.deepEqual(c!.target.kind === 'smtp' && c!.target.tls, { requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: null });
    assert.deepEqual(c!.target.kind === 'smtp' && c!.target.hosts, [{ host: 'relay.test', port: 587 }]);
  });
});
