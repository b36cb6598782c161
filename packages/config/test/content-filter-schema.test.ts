// gateway.yaml rspamd / milters: off unless configured, defaults as Postfix and Exchange have
// them, and every error names the file and the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';
import { parseMilterAddress } from '../src/content-filter-schema.js';




const build = (extra: Record<string, unknown>) => buildFrom({ ...GATEWAY, ...extra }, { 'default.yaml': DEFAULT });
const expectGatewayError = (r: ReturnType<typeof build>, keyPath: string, message: RegExp) => expectError(r, 'gateway.yaml', keyPath, message);

describe('content filters in gateway.yaml', () => {
  it('are off unless configured', () => {
    const r = build({});
    assert.ok(r.ok);
    assert.equal(r.config.gateway.rspamd, undefined);
    assert.deepEqual(r.config.gateway.milters, []);
  });

  it('defaults: rspamd on 11333 deciding by its actions, Exchange thresholds; milters with Postfix timeouts and milter_default_action tempfail', () => {
    const r = build({ rspamd: {}, milters: [{ name: 'opendkim', address: 'inet:127.0.0.1:8891' }] });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const s = r.config.gateway.rspamd!;
    assert.deepEqual([s.url, s.actions, s.onFailure, s.sclRejectThreshold, s.sclDeleteEnabled, s.timeout], ['http://127.0.0.1:11333', 'rspamd', 'tempfail', 7, false, 20_000]);
    const m = r.config.gateway.milters[0]!;
    assert.deepEqual([m.connectTimeout, m.commandTimeout, m.eomTimeout, m.defaultAction, m.antiSpam], [30_000, 30_000, 300_000, 'tempfail', true]);
    assert.deepEqual(m.address, { kind: 'inet', host: '127.0.0.1', port: 8891, text: 'inet:127.0.0.1:8891' });
  });

  it('milter addresses as Postfix writes them; anything else is an error at milters[i].address', () => {
    assert.deepEqual(parseMilterAddress('inet:[::1]:8891'), { ok: true, value: { kind: 'inet', host: '::1', port: 8891, text: 'inet:[::1]:8891' } });
    assert.deepEqual(parseMilterAddress('unix:/run/opendkim/opendkim.sock'), { ok: true, value: { kind: 'unix', path: '/run/opendkim/opendkim.sock', text: 'unix:/run/opendkim/opendkim.sock' } });
    expectGatewayError(build({ milters: [{ name: 'a', address: '127.0.0.1:8891' }] }), 'milters[0].address', /not a milter address; write inet:host:port/);
    expectGatewayError(build({ milters: [{ name: 'a', address: 'inet:localhost:99999' }] }), 'milters[0].address', /port must be 1-65535/);
    expectGatewayError(build({ milters: [{ name: 'a', address: 'unix:run/x.sock' }] }), 'milters[0].address', /must be absolute/);
    expectGatewayError(build({ rspamd: { url: 'ftp://x' } }), 'rspamd.url', /http:\/\/ or https:\/\//);
  });

  it('cross checks: unknown connector names, duplicate milter names, quarantine without a mailbox, unknown keys', () => {
    expectGatewayError(build({ rspamd: { connectors: ['Nope'] } }), 'rspamd.connectors[0]', /no connector is named "Nope"/);
    expectGatewayError(build({ milters: [{ name: 'a', address: 'inet:h:1' }, { name: 'A', address: 'inet:h:2' }] }), 'milters[1].name', /already the name of milters\[0\]/);
    expectGatewayError(build({ rspamd: { sclQuarantineEnabled: true } }), 'rspamd.quarantineMailbox', /needs quarantineMailbox/);
    assert.ok(build({ quarantineMailbox: 'q@contoso.test', rspamd: { sclQuarantineEnabled: true } }).ok, 'the top-level mailbox serves rspamd too');
    assert.ok(build({ quarantineMailbox: 'q@contoso.test', rspamd: { quarantineMailbox: 'Q@contoso.test' } }).ok, 'the same mailbox twice');
    expectGatewayError(build({ quarantineMailbox: 'q@contoso.test', rspamd: { quarantineMailbox: 'other@contoso.test' } }), 'rspamd.quarantineMailbox', /is other@contoso\.test, but quarantineMailbox is q@contoso\.test: they are one setting/);
    expectGatewayError(build({ quarantineMailbox: 'not an address' }), 'quarantineMailbox', /must be a mailbox address/);
    // A quarantine mailbox outside the organisation: spam would be sent out to it.
    const outside = build({ quarantineMailbox: 'spam@example.net' });
    assert.ok(outside.ok);
    assert.deepEqual(outside.warnings.filter((w) => w.path === 'quarantineMailbox').map((w) => w.message), ['spam@example.net is not in an Authoritative or InternalRelay accepted domain: quarantined mail (spam, mostly) would leave the organisation to reach it; use a mailbox of your own domains']);
    assert.deepEqual(build({ quarantineMailbox: 'q@contoso.test' }).warnings.filter((w) => w.path === 'quarantineMailbox'), []);
    // DMARC's quarantine action without a mailbox: a warning, as a transport rule's.
    const dmarc = build({ senderAuthentication: { dmarcQuarantineAction: 'quarantine' } });
    assert.ok(dmarc.ok);
    assert.deepEqual(dmarc.warnings.filter((w) => w.path.startsWith('senderAuthentication')).map((w) => w.message), ['is quarantine, but there is no quarantine mailbox (quarantineMailbox): such mail is delivered to its recipients, stamped X-MS-Exchange-Organization-Quarantine']);
    expectGatewayError(build({ milters: [{ name: 'a', address: 'inet:h:1', timeout: '1s' }] }), 'milters[0].timeout', /unknown key/);
  });

  it('bypass lists as Set-ContentFilterConfig takes them: addresses lower-cased, domains with *. for their subdomains; a wrong one names its key', () => {
    const r = build({ rspamd: { bypassedRecipients: ['Abuse@Contoso.test'], bypassedSenders: ['Alerts@Monitor.example'], bypassedSenderDomains: ['partner.example', '*.Vendor.example'] } });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const s = r.config.gateway.rspamd!;
    assert.deepEqual([s.bypassedRecipients, s.bypassedSenders, s.bypassedSenderDomains.map((d) => [d.domain, d.wildcard])], [['abuse@contoso.test'], ['alerts@monitor.example'], [['partner.example', false], ['vendor.example', true]]]);
    const d = build({ rspamd: {} });
    assert.ok(d.ok);
    assert.deepEqual([d.config.gateway.rspamd!.bypassedRecipients, d.config.gateway.rspamd!.bypassedSenders, d.config.gateway.rspamd!.bypassedSenderDomains], [[], [], []]);
    expectGatewayError(build({ rspamd: { bypassedRecipients: ['abuse'] } }), 'rspamd.bypassedRecipients[0]', /is not a mailbox address like user@contoso\.com/);
    expectGatewayError(build({ rspamd: { bypassedSenderDomains: ['*'] } }), 'rspamd.bypassedSenderDomains[0]', /not every domain/);
    expectGatewayError(build({ rspamd: { bypassedSenderDomains: ['bad domain'] } }), 'rspamd.bypassedSenderDomains[0]', /./);
  });
});
