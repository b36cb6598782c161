// The anti-spam keys of gateway.yaml and the connector's senderAuthenticationEnabled: defaults,
// and every error naming the file and the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIssue } from '../src/issues.js';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';




const build = (gateway: Record<string, unknown>, connector: Record<string, unknown> = DEFAULT) => buildFrom({ ...GATEWAY, ...gateway }, { 'default.yaml': connector });

describe('anti-spam settings', () => {
  it('defaults: no lists, sender filter on with nothing blocked, sender authentication on with Exchange-style actions', () => {
    const r = build({});
    assert.ok(r.ok);
    const g = r.config.gateway;
    assert.deepEqual(g.ipBlockListProviders, []);
    assert.deepEqual(g.ipBlockListConfig, { enabled: true, bypassedRecipients: [] });
    assert.equal(g.senderFilterConfig.action, 'Reject');
    assert.deepEqual(g.senderAuthentication, { enabled: true, spfFailAction: 'stamp', dmarcRejectAction: 'reject', dmarcQuarantineAction: 'stamp', tempErrorAction: 'accept', timeout: 30_000, minBitLength: 1024, bypassedSenderDomains: [], bypassedRecipients: [], arcTrustedSealers: [] });
    assert.equal(g.dns.timeout, 5000);
    assert.equal(r.config.connectors[0]!.senderAuthenticationEnabled, undefined);
  });

  it('parses providers, DNS servers, addresses and actions as Exchange spells them', () => {
    const r = build({
      dns: { servers: ['127.0.0.1:5353', '192.0.2.53', '[2001:db8::53]:53', '2001:db8::54'], timeout: '2s' },
      ipBlockListProviders: [{ name: 'ZEN', lookupDomain: 'Zen.Spamhaus.Org.', bitmaskMatch: '127.0.0.2', priority: 1 }],
      ipAllowList: ['198.51.100.0/24'],
      ipBlockListConfig: { bypassedRecipients: ['PostMaster@Contoso.test'] },
      senderFilterConfig: { blockedSenders: ['Spammer@Example.NET'], action: 'stampstatus' },
    });
    assert.ok(r.ok, !r.ok ? r.errors.map(formatIssue).join('\n') : '');
    const g = r.config.gateway;
    assert.deepEqual(g.dns.servers, ['127.0.0.1:5353', '192.0.2.53:53', '[2001:db8::53]:53', '[2001:db8::54]:53']);
    assert.equal(g.dns.timeout, 2000);
    assert.equal(g.ipBlockListProviders[0]!.lookupDomain, 'zen.spamhaus.org');
    assert.deepEqual(g.ipBlockListConfig.bypassedRecipients, ['postmaster@contoso.test']);
    assert.deepEqual(g.senderFilterConfig.blockedSenders, ['spammer@example.net']);
    assert.equal(g.senderFilterConfig.action, 'StampStatus');
  });

  it('errors name gateway.yaml and the key', () => {
    expectError(build({ ipBlockListProviders: [{ name: 'X', lookupDomain: 'not a domain' }] }), 'gateway.yaml', 'ipBlockListProviders[0].lookupDomain', /not a valid host name/);
    expectError(build({ ipBlockListProviders: [{ name: 'X', lookupDomain: 'x.test', bitmaskMatch: '2001:db8::1' }] }), 'gateway.yaml', 'ipBlockListProviders[0].bitmaskMatch', /IPv4 address/);
    expectError(build({ ipBlockListProviders: [{ name: 'X', lookupDomain: 'x.test', anyMatch: true, ipAddressesMatch: ['127.0.0.2'] }] }), 'gateway.yaml', 'ipBlockListProviders[0].anyMatch', /drop/);
    expectError(build({ ipBlockListProviders: [{ name: 'X', lookupDomain: 'x.test' }, { name: 'x', lookupDomain: 'y.test' }] }), 'gateway.yaml', 'ipBlockListProviders[1].name', /already/);
    expectError(build({ ipBlockListProviders: [{ name: 'X', lookupDomain: 'x.test', priority: 1 }, { name: 'Y', lookupDomain: 'y.test', priority: 1 }] }), 'gateway.yaml', 'ipBlockListProviders[1].priority', /already/);
    expectError(build({ ipBlockListProviders: [{ name: 'X', lookupDomain: 'x.test', rejectionResponse: 'bad\r\n550 smuggled' }] }), 'gateway.yaml', 'ipBlockListProviders[0].rejectionResponse', /printable/);
    expectError(build({ ipBlockListProviders: [{ name: 'X', lookupDomain: 'x.test', lookupdomain: 'y' }] }), 'gateway.yaml', 'ipBlockListProviders[0].lookupdomain', /did you mean "lookupDomain"/);
    expectError(build({ ipAllowList: ['300.1.1.1'] }), 'gateway.yaml', 'ipAllowList[0]', /./);
    expectError(build({ dns: { servers: ['dns.example'] } }), 'gateway.yaml', 'dns.servers[0]', /not a DNS server/);
    expectError(build({ dns: { timeout: '5m' } }), 'gateway.yaml', 'dns.timeout', /out of range/);
    expectError(build({ ipBlockListConfig: { bypassedRecipients: ['postmaster'] } }), 'gateway.yaml', 'ipBlockListConfig.bypassedRecipients[0]', /recipient address/);
    expectError(build({ senderFilterConfig: { blockedDomains: ['*.spam.test'] } }), 'gateway.yaml', 'senderFilterConfig.blockedDomains[0]', /blockedDomainsAndSubdomains/);
    expectError(build({ senderFilterConfig: { action: 'Delete' } }), 'gateway.yaml', 'senderFilterConfig.action', /./);
    expectError(build({ senderAuthentication: { dmarcRejectAction: 'bounce' } }), 'gateway.yaml', 'senderAuthentication.dmarcRejectAction', /./);
    expectError(build({ senderAuthentication: { spfFailActon: 'reject' } }), 'gateway.yaml', 'senderAuthentication.spfFailActon', /did you mean "spfFailAction"/);
    expectError(build({}, { ...DEFAULT, senderAuthenticationEnabled: 'yes' }), 'connectors.d/default.yaml', 'senderAuthenticationEnabled', /./);
  });
});

describe('recipientFilterConfig (Exchange Set-RecipientFilterConfig)', () => {
  it('defaults as Exchange: enabled, the block list off and empty; addresses compared lower case', () => {
    const d = build({});
    assert.ok(d.ok);
    assert.deepEqual(d.config.gateway.recipientFilterConfig, { enabled: true, blockListEnabled: false, blockedRecipients: [] });
    const r = build({ recipientFilterConfig: { blockListEnabled: true, blockedRecipients: 'AllStaff@Contoso.COM, board@contoso.com' } });
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.recipientFilterConfig.blockedRecipients, ['allstaff@contoso.com', 'board@contoso.com']);
    assert.deepEqual(r.warnings, []);
  });
  it('a list that blocks nobody is a warning naming the key that would; a bad address an error', () => {
    const off = build({ recipientFilterConfig: { blockedRecipients: ['allstaff@contoso.com'] } });
    assert.ok(off.ok);
    assert.deepEqual(off.warnings.map(formatIssue), ['gateway.yaml: recipientFilterConfig.blockListEnabled: blockedRecipients lists 1 address, but they are not refused until blockListEnabled is true']);
    const disabled = build({ recipientFilterConfig: { enabled: false, blockListEnabled: true, blockedRecipients: ['a@contoso.com', 'b@contoso.com'] } });
    assert.ok(disabled.ok);
    assert.match(formatIssue(disabled.warnings[0]!), /recipientFilterConfig\.enabled: blockedRecipients lists 2 addresses, but they are not refused until enabled and blockListEnabled are true/);
    expectError(build({ recipientFilterConfig: { blockedRecipients: ['not an address'] } }), 'gateway.yaml', 'recipientFilterConfig.blockedRecipients[0]', /"not an address" is not a recipient address like postmaster@contoso\.com/);
    expectError(build({ recipientFilterConfig: { blockListEnable: true } }), 'gateway.yaml', 'recipientFilterConfig.blockListEnable', /unknown key \(did you mean "blockListEnabled"\?\)/);
  });
});

describe('sender reputation (senderReputationConfig) and the IP Block List responses', () => {
  it('defaults: off, Exchange\'s thresholds (SRL 7, 24 hours), anonymous sessions rated', () => {
    const r = build({});
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.senderReputationConfig, { enabled: false, externalMailEnabled: true, internalMailEnabled: false, senderBlockingEnabled: true, senderBlockingPeriod: 24, srlBlockThreshold: 7, openProxyDetectionEnabled: false });
    const set = build({ senderReputationConfig: { enabled: true, srlBlockThreshold: 8, senderBlockingPeriod: 48 }, ipBlockListConfig: { machineEntryRejectionResponse: ' Blocked by reputation ' } });
    assert.ok(set.ok, !set.ok ? set.errors.map(formatIssue).join('\n') : '');
    assert.equal(set.config.gateway.senderReputationConfig.srlBlockThreshold, 8);
    assert.equal(set.config.gateway.ipBlockListConfig.machineEntryRejectionResponse, 'Blocked by reputation');
  });
  it('every bad value names its key: out-of-range levels and hours, open proxy tests, a misspelt key, a reply that is not ASCII', () => {
    expectError(build({ senderReputationConfig: { srlBlockThreshold: 10 } }), 'gateway.yaml', 'senderReputationConfig.srlBlockThreshold', /./);
    expectError(build({ senderReputationConfig: { senderBlockingPeriod: 49 } }), 'gateway.yaml', 'senderReputationConfig.senderBlockingPeriod', /./);
    expectError(build({ senderReputationConfig: { senderBlockingPeriod: 1.5 } }), 'gateway.yaml', 'senderReputationConfig.senderBlockingPeriod', /./);
    expectError(build({ senderReputationConfig: { openProxyDetectionEnabled: true } }), 'gateway.yaml', 'senderReputationConfig.openProxyDetectionEnabled', /does not test senders for open proxies/);
    expectError(build({ senderReputationConfig: { srlBlockTreshold: 6 } }), 'gateway.yaml', 'senderReputationConfig.srlBlockTreshold', /unknown key \(did you mean "srlBlockThreshold"\?\)/);
    expectError(build({ ipBlockListConfig: { staticEntryRejectionResponse: 'Gesperrt für Spam' } }), 'gateway.yaml', 'ipBlockListConfig.staticEntryRejectionResponse', /printable ASCII only/);
  });
});
