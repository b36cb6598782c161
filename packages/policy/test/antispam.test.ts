// The anti-spam decisions, pure: query names (IPv4 reversed, IPv6 nibble-reversed), how a
// provider's answer counts, which filters run where, what the authentication results mean.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normaliseClientIp, parseIp } from '@mailgw/config';
import { antispamWarnings, connect, filterPlan, ipListQueries, providerMatches, reverseName, senderAuthentication, senderAuthenticationOutcome, trustedArcOverride, type ArcResults, type SenderAuthResults } from '../src/index.js';
import { compile, policy } from './fixture.js';

const ip = (s: string) => {
  const r = parseIp(s);
  assert.ok(r.ok);
  return r.value;
};

describe('DNS list query names (RFC 5782)', () => {
  it('IPv4 octets reversed, IPv6 all 32 nibbles reversed', () => {
    assert.equal(reverseName(ip('192.0.2.1'), 'zen.test'), '1.2.0.192.zen.test');
    assert.equal(reverseName(ip('2001:db8::1'), 'zen.test'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test');
  });
  it('an IPv4-mapped client is queried as IPv4', () => {
    const p = policy({ ipBlockListProviders: [{ name: 'A', lookupDomain: 'a.test' }] }, [{ name: 'D', usage: 'Internet', bindings: ['[::]:25'] }]);
    const c = connect(p, { localAddress: '::', localPort: 25, clientIP: '::ffff:192.0.2.1' });
    assert.ok(c.session);
    assert.equal(normaliseClientIp('::ffff:192.0.2.1')!.family, 4);
    assert.deepEqual(ipListQueries(p, c.session).map((q) => q.name), ['1.2.0.192.a.test']);
  });
});

describe('provider matching', () => {
  const base = { name: 'P', lookupDomain: 'p.test', enabled: true };
  it('anyMatch by default; 127.255.255.x (the list\'s own errors) and non-127 answers never match', () => {
    assert.ok(providerMatches(base, ['127.0.0.4']));
    assert.equal(providerMatches(base, ['127.255.255.254']), null);
    assert.equal(providerMatches(base, ['192.0.2.1']), null);
    assert.equal(providerMatches(base, []), null);
  });
  it('bitmaskMatch tests the last octet; ipAddressesMatch the exact answer', () => {
    assert.ok(providerMatches({ ...base, bitmaskMatch: '127.0.0.4' }, ['127.0.0.6']));
    assert.equal(providerMatches({ ...base, bitmaskMatch: '127.0.0.4' }, ['127.0.0.2']), null);
    assert.ok(providerMatches({ ...base, ipAddressesMatch: ['127.0.0.2'] }, ['127.0.0.3', '127.0.0.2']));
    assert.equal(providerMatches({ ...base, ipAddressesMatch: ['127.0.0.2'] }, ['127.0.0.3']), null);
  });
});

describe('where the filters run', () => {
  const p = policy({}, [
    { name: 'Internet', usage: 'Internet', bindings: ['0.0.0.0:25'] },
    { name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'] },
    { name: 'Internal', usage: 'Internal', bindings: ['0.0.0.0:2525'] },
    { name: 'Custom On', usage: 'Custom', bindings: ['0.0.0.0:2526'], senderAuthenticationEnabled: true, permissionGroups: ['AnonymousUsers'] },
  ]);
  const at = (port: number) => connect(p, { localAddress: '192.0.2.10', localPort: port, clientIP: '203.0.113.5' }).session!;
  const auth = { name: 'sender-authentication', antiSpam: true, kind: 'sender-authentication' as const };
  const filterApplies = (s: Parameters<typeof filterPlan>[0], f: typeof auth) => filterPlan(s, [f])[0]!.runs;
  it('sender authentication: on for usage Internet, off for Internal and Client by default, on where the connector says so', () => {
    assert.equal(filterApplies(at(25), auth), true);
    assert.equal(filterApplies(at(587), auth), false);
    assert.equal(filterApplies(at(2525), auth), false);
    assert.equal(senderAuthentication(p, at(2525)).reason.code, 'sender-authentication-off');
    assert.equal(filterApplies(at(2526), auth), true);
  });
  it('the gateway switch turns it off everywhere', () => {
    const off = policy({ senderAuthentication: { enabled: false } }, [{ name: 'Internet', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
    const s = connect(off, { localAddress: '192.0.2.10', localPort: 25, clientIP: '203.0.113.5' }).session!;
    assert.equal(senderAuthentication(off, s).applies, false);
  });
  it('check warns about senderAuthenticationEnabled without effect and allow lists without block lists', () => {
    const r = compile({ ipAllowListProviders: [{ name: 'A', lookupDomain: 'a.test' }] }, [{ name: 'Partner', usage: 'Internet', bindings: ['0.0.0.0:25'], senderAuthenticationEnabled: true, permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] }]);
    assert.ok(r.ok);
    const w = antispamWarnings(r.policy).map((i) => `${i.file}: ${i.path}`);
    assert.deepEqual(w, ['connectors.d/0.yaml: senderAuthenticationEnabled', 'gateway.yaml: ipAllowListProviders']);
    assert.ok(r.warnings.some((x) => x.path === 'senderAuthenticationEnabled'));
  });
});

describe('sender authentication outcome', () => {
  const cfg = { enabled: true, spfFailAction: 'stamp', dmarcRejectAction: 'reject', dmarcQuarantineAction: 'stamp', tempErrorAction: 'accept', timeout: 30_000, minBitLength: 1024, arcTrustedSealers: [] } as const;
  const r = (o: Partial<SenderAuthResults>): SenderAuthResults => ({ spf: { result: 'none', domain: 'x.test' }, dkim: [], dmarc: null, arc: null, authenticationResults: 'mx.test; spf=none', receivedSpf: null, ...o });
  it('DMARC p=reject fail → 550 5.7.1 naming the domain; as configured, quarantine or stamp instead', () => {
    const o = senderAuthenticationOutcome(cfg, r({ dmarc: { result: 'fail', domain: 'x.test', policy: 'reject' } }));
    assert.equal(o.verdict, 'reject');
    assert.deepEqual([o.reply?.code, o.reply?.enhanced], [550, '5.7.1']);
    assert.match(o.reply!.text, /x\.test does not pass DMARC/);
    assert.equal(o.headers.length, 0);
    assert.equal(senderAuthenticationOutcome({ ...cfg, dmarcRejectAction: 'quarantine' }, r({ dmarc: { result: 'fail', domain: 'x.test', policy: 'reject' } })).verdict, 'quarantine');
    assert.equal(senderAuthenticationOutcome({ ...cfg, dmarcRejectAction: 'stamp' }, r({ dmarc: { result: 'fail', domain: 'x.test', policy: 'reject' } })).verdict, 'accept');
  });
  it("Exchange's Sender ID action Delete: answered 250 and delivered to nobody, for SPF fail or DMARC p=reject", () => {
    const spf = senderAuthenticationOutcome({ ...cfg, spfFailAction: 'delete' }, r({ spf: { result: 'fail', domain: 'x.test' } }));
    assert.deepEqual([spf.verdict, spf.headers.length], ['discard', 0]);
    assert.match(spf.reason, /does not permit the client, action delete$/);
    assert.equal(senderAuthenticationOutcome({ ...cfg, dmarcRejectAction: 'delete' }, r({ dmarc: { result: 'fail', domain: 'x.test', policy: 'reject' } })).verdict, 'discard');
    assert.equal(senderAuthenticationOutcome({ ...cfg, spfFailAction: 'delete' }, r({ spf: { result: 'softfail', domain: 'x.test' } })).verdict, 'accept', '~all is not a fail');
  });
  it('a temperror that leaves DMARC undecided → tempErrorAction; one DMARC does not need does not matter', () => {
    const temp = r({ spf: { result: 'temperror', domain: 'x.test' } });
    assert.equal(senderAuthenticationOutcome(cfg, temp).verdict, 'accept');
    const t = senderAuthenticationOutcome({ ...cfg, tempErrorAction: 'tempfail' }, temp);
    assert.deepEqual([t.verdict, t.reply?.code, t.reply?.enhanced], ['tempfail', 451, '4.7.5']);
    const passed = r({ spf: { result: 'temperror', domain: 'x.test' }, dkim: [{ result: 'pass', domain: 'x.test' }], dmarc: { result: 'pass', domain: 'x.test', policy: 'reject' } });
    assert.equal(senderAuthenticationOutcome({ ...cfg, tempErrorAction: 'tempfail' }, passed).verdict, 'accept');
  });
  it('SPF fail → stamp by default, 550 5.7.23 under reject; one Authentication-Results (and Received-SPF) on top when accepted', () => {
    const fail = r({ spf: { result: 'fail', domain: 'x.test' }, receivedSpf: 'fail (mx.test: …)' });
    const o = senderAuthenticationOutcome(cfg, fail);
    assert.equal(o.verdict, 'accept');
    assert.deepEqual(o.headers.map((h) => (h.op === 'add' ? [h.name, h.top] : [])), [['Authentication-Results', true], ['Received-SPF', true]]);
    const rej = senderAuthenticationOutcome({ ...cfg, spfFailAction: 'reject' }, fail);
    assert.deepEqual([rej.verdict, rej.reply?.code, rej.reply?.enhanced], ['reject', 550, '5.7.23']);
  });
});

describe('trusted ARC sealers (Set-ArcConfig -ArcTrustedSealers)', () => {
  const cfg = { spfFailAction: 'reject', dmarcRejectAction: 'reject', dmarcQuarantineAction: 'reject', tempErrorAction: 'tempfail', arcTrustedSealers: [{ text: 'lists.example', domain: 'lists.example', wildcard: false }, { text: '*.forward.example', domain: 'forward.example', wildcard: true }] } as const;
  const arc = (o: Partial<ArcResults> = {}): ArcResults => ({ result: 'pass', instance: 1, sealer: 'lists.example', sealerDmarc: { result: 'pass', from: 'x.test' }, ...o });
  const failing = (a: ArcResults | null, policy = 'reject'): SenderAuthResults => ({ spf: { result: 'fail', domain: 'x.test' }, dkim: [{ result: 'fail', domain: 'x.test' }], dmarc: { result: 'fail', domain: 'x.test', policy }, arc: a, authenticationResults: 'mx.test; dmarc=fail', receivedSpf: null });
  it('a DMARC fail vouched for by the newest sealer, when it is trusted and recorded dmarc=pass for the same From domain: accepted, the SPF fail not acted on either', () => {
    for (const policy of ['reject', 'quarantine']) {
      const o = senderAuthenticationOutcome(cfg, failing(arc(), policy));
      assert.equal(o.verdict, 'accept', policy);
      assert.match(o.reason, /x\.test fails DMARC \(p=(reject|quarantine)\), taken as a pass: trusted ARC sealer lists\.example \(arcTrustedSealers lists\.example\) recorded dmarc=pass for x\.test in ARC set i=1, action accept$/);
      assert.deepEqual(o.headers.map((h) => (h.op === 'add' ? h.name : '')), ['Authentication-Results']);
    }
    // A subdomain under a *. entry, and names compared without case.
    assert.equal(senderAuthenticationOutcome(cfg, failing(arc({ sealer: 'mx.Forward.Example', sealerDmarc: { result: 'PASS', from: 'X.test' } }))).verdict, 'accept');
    assert.match(trustedArcOverride(cfg.arcTrustedSealers, failing(arc({ sealer: 'mx.forward.example', instance: 3 })))!, /arcTrustedSealers \*\.forward\.example\) .* i=3$/);
  });
  it('no override: untrusted sealer, a chain that fails, the sealer saw a fail or another From domain, no chain, none listed; nor for a temperror', () => {
    const refused = (a: ArcResults | null, c: typeof cfg | (Omit<typeof cfg, 'arcTrustedSealers'> & { arcTrustedSealers: [] }) = cfg) => {
      const o = senderAuthenticationOutcome(c, failing(a));
      assert.deepEqual([o.verdict, o.reply?.code, o.reply?.enhanced], ['reject', 550, '5.7.1'], JSON.stringify(a));
      return o;
    };
    refused(arc({ sealer: 'stranger.example' }));
    refused(arc({ sealer: 'notlists.example' }));
    refused(arc({ sealer: 'forward.example.evil' }));
    assert.match(refused(arc({ result: 'fail' })).reason, /arc=fail \(i=1 lists\.example\)/);
    refused(arc({ sealerDmarc: { result: 'fail', from: 'x.test' } }));
    refused(arc({ sealerDmarc: { result: 'pass', from: 'other.test' } }));
    refused(arc({ sealerDmarc: null }));
    refused(arc({ sealer: null }));
    refused(null);
    refused(arc(), { ...cfg, arcTrustedSealers: [] });
    // Only a fail is taken back: a DNS failure stays a DNS failure.
    const temp = senderAuthenticationOutcome(cfg, { ...failing(arc()), dmarc: { result: 'temperror', domain: 'x.test', policy: null } });
    assert.deepEqual([temp.verdict, temp.reply?.code], ['tempfail', 451]);
    assert.equal(trustedArcOverride(cfg.arcTrustedSealers, { dmarc: { result: 'pass', domain: 'x.test', policy: 'reject' }, arc: arc() }), null);
  });
  it('check warns when arcSeal cannot seal anything: sender authentication off, or no connector verifying senders', () => {
    const seal = { arcSeal: { domain: 'contoso.test', selector: 'arc1' } };
    const warned = (gw: Record<string, unknown>, connectors: Array<Record<string, unknown>>) => {
      const r = compile(gw, connectors);
      assert.ok(r.ok);
      return antispamWarnings(r.policy).filter((i) => i.path === 'senderAuthentication.arcSeal').map((i) => i.message);
    };
    const internet = { name: 'Internet', usage: 'Internet', bindings: ['0.0.0.0:25'] };
    assert.deepEqual(warned({ senderAuthentication: seal }, [internet]), []);
    assert.match(warned({ senderAuthentication: { ...seal, enabled: false } }, [internet])[0]!, /senderAuthentication\.enabled is false/);
    assert.match(warned({ senderAuthentication: seal }, [{ ...internet, senderAuthenticationEnabled: false }])[0]!, /no enabled connector verifies senders/);
    assert.match(warned({ senderAuthentication: seal }, [{ name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'] }])[0]!, /no enabled connector verifies senders/);
  });
  it('config: domain names as the bypass lists take them, never every domain', () => {
    const DEFAULT = [{ name: 'D', usage: 'Internet', bindings: ['0.0.0.0:25'] }];
    const p = policy({ senderAuthentication: { arcTrustedSealers: ['Lists.Example', '*.forward.example'] } }, DEFAULT);
    assert.deepEqual(p.config.gateway.senderAuthentication.arcTrustedSealers.map((d) => [d.domain, d.wildcard]), [['lists.example', false], ['forward.example', true]]);
    assert.throws(() => compile({ senderAuthentication: { arcTrustedSealers: ['*'] } }, DEFAULT), /senderAuthentication\.arcTrustedSealers\[0\].*name a domain/s);
    assert.throws(() => compile({ senderAuthentication: { arcTrustedSealers: ['not a domain!'] } }, DEFAULT), /senderAuthentication\.arcTrustedSealers\[0\]/);
  });
});

describe('sender authentication bypass lists (config)', () => {
  it('domains and addresses as the content filter lists take them; never every domain', () => {
    const DEFAULT = [{ name: 'D', usage: 'Internet', bindings: ['0.0.0.0:25'] }];
    const p = policy({ senderAuthentication: { bypassedSenderDomains: ['vendor.example', '*.Partner.Example'], bypassedRecipients: 'Postmaster@contoso.test' } }, DEFAULT);
    const sa = p.config.gateway.senderAuthentication;
    assert.deepEqual(sa.bypassedSenderDomains.map((d) => [d.domain, d.wildcard]), [['vendor.example', false], ['partner.example', true]]);
    assert.deepEqual(sa.bypassedRecipients, ['postmaster@contoso.test']);
    assert.throws(() => compile({ senderAuthentication: { bypassedSenderDomains: ['*'] } }, DEFAULT), /senderAuthentication\.bypassedSenderDomains\[0\].*name a domain/s);
    assert.throws(() => compile({ senderAuthentication: { bypassedRecipients: ['not an address'] } }, DEFAULT), /senderAuthentication\.bypassedRecipients\[0\]/);
  });
});
