// The content-filter decisions, without sockets: which filters a session passes through, the
// SCL of an rspamd score, and what rspamd's answer means under either decision mode.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_SCL_SCORES } from '@mailgw/config';
import { configuredFilters, connect, contentFilterBypass, filterPlan, rspamdDecision, sclForScore, type ContentThresholds } from '../src/index.js';
import { policy } from './fixture.js';

const T: ContentThresholds = { actions: 'rspamd', sclScores: DEFAULT_SCL_SCORES, sclRejectEnabled: true, sclRejectThreshold: 7, sclDeleteEnabled: false, sclDeleteThreshold: 9, sclQuarantineEnabled: false, sclQuarantineThreshold: 9, rejectionResponse: 'Message rejected as spam by Content Filtering.' };

describe('SCL from an rspamd score', () => {
  it('counts the boundaries reached (default: add header 6 → SCL 5, reject 15 → SCL 9)', () => {
    const got = [-3, 0, 1.9, 2, 4.5, 5, 6, 8, 10, 12, 15, 400, Number.NaN].map((s) => sclForScore(s, DEFAULT_SCL_SCORES));
    assert.deepEqual(got, [0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 0]);
  });
});

describe('rspamd answer → verdict', () => {
  const a = (action: string, score: number) => ({ action, score, requiredScore: 15 });
  it('actions: rspamd', () => {
    const r = rspamdDecision(a('reject', 16), T);
    assert.deepEqual([r.verdict, r.reply?.code, r.reply?.enhanced, r.reply?.text], ['reject', 550, '5.7.1', 'Message rejected as spam by Content Filtering.']);
    assert.deepEqual([rspamdDecision(a('soft reject', 1), T).reply?.code, rspamdDecision(a('greylist', 4), T).reply?.enhanced], [451, '4.7.1']);
    assert.equal(rspamdDecision({ ...a('rewrite subject', 9), subject: '*** SPAM *** x' }, T).subject, '*** SPAM *** x');
    assert.equal(rspamdDecision(a('add header', 7), T).verdict, 'accept');
    assert.equal(rspamdDecision(a('something new', 7), T).verdict, 'error');
  });
  it('actions: scl — delete before reject before quarantine, each only when enabled', () => {
    const scl = { ...T, actions: 'scl' as const };
    assert.equal(rspamdDecision(a('reject', 20), scl).verdict, 'reject');
    assert.equal(rspamdDecision(a('reject', 20), { ...scl, sclDeleteEnabled: true }).verdict, 'discard');
    assert.equal(rspamdDecision(a('no action', 9.9), scl).verdict, 'accept', 'SCL 6 < 7');
    assert.equal(rspamdDecision(a('no action', 10), { ...scl, rejectionResponse: 'Go away.' }).reply?.text, 'Go away.');
    assert.equal(rspamdDecision(a('no action', 10), { ...scl, sclRejectEnabled: false, sclQuarantineEnabled: true, sclQuarantineThreshold: 6 }).verdict, 'quarantine');
  });
});

describe('filterPlan: which filters a session passes through', () => {
  const p = policy(
    { rspamd: { connectors: ['Default', 'Partner'] }, milters: [{ name: 'opendkim', address: 'inet:127.0.0.1:8891', antiSpam: false }, { name: 'clamav', address: 'unix:/run/c.sock', connectors: ['Partner'] }] },
    [
      { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] },
      { name: 'Partner', usage: 'Internet', bindings: ['0.0.0.0:25'], remoteIPRanges: ['192.0.2.0/24'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] },
    ],
  );
  const plan = (ip: string) => filterPlan(connect(p, { localAddress: '10.0.0.1', localPort: 25, clientIP: ip }).session!, configuredFilters(p.config.gateway)).map((e) => `${e.name}:${e.runs ? 'runs' : e.reason.code}`);
  it('an anonymous Internet client: rspamd and opendkim; clamav is not on its connector', () => {
    assert.deepEqual(plan('198.51.100.7'), ['rspamd:runs', 'opendkim:runs', 'clamav:filter-not-on-connector']);
  });
  it('a session holding Bypass-Anti-Spam: only the milter that is not anti-spam', () => {
    assert.deepEqual(plan('192.0.2.9'), ['rspamd:filter-bypassed', 'opendkim:runs', 'clamav:filter-bypassed']);
  });
});

describe('content filter bypass lists (Set-ContentFilterConfig -Bypassed…)', () => {
  const lists = { bypassedRecipients: ['abuse@contoso.test', 'postmaster@contoso.test'], bypassedSenders: ['alerts@monitor.example'], bypassedSenderDomains: [{ domain: 'partner.example', wildcard: false, text: 'partner.example' }, { domain: 'vendor.example', wildcard: true, text: '*.vendor.example' }] };
  const a = (s: string) => ({ local: s.slice(0, s.indexOf('@')), domain: s.slice(s.indexOf('@') + 1) });
  it('a bypassed sender, or a sender in a bypassed domain (exactly, or with its subdomains under *.), in any case', () => {
    assert.match(contentFilterBypass(lists, a('Alerts@MONITOR.example'), [a('bob@contoso.test')])!, /the sender alerts@monitor\.example is in bypassedSenders/);
    assert.match(contentFilterBypass(lists, a('x@partner.example'), [a('bob@contoso.test')])!, /bypassedSenderDomains \(partner\.example\)/);
    assert.equal(contentFilterBypass(lists, a('x@mail.partner.example'), [a('bob@contoso.test')]), null, 'partner.example is exact');
    assert.match(contentFilterBypass(lists, a('x@eu.Vendor.example'), [a('bob@contoso.test')])!, /\*\.vendor\.example/);
    assert.match(contentFilterBypass(lists, a('x@vendor.example'), [a('bob@contoso.test')])!, /\*\.vendor\.example/);
    assert.equal(contentFilterBypass(lists, a('x@notvendor.example'), [a('bob@contoso.test')]), null);
  });
  it('bypassed recipients only when every recipient is one; the null sender is judged by its recipients', () => {
    assert.match(contentFilterBypass(lists, a('spam@example.net'), [a('ABUSE@contoso.test'), a('postmaster@contoso.test')])!, /every recipient is in bypassedRecipients \(abuse@contoso\.test, postmaster@contoso\.test\)/);
    assert.equal(contentFilterBypass(lists, a('spam@example.net'), [a('abuse@contoso.test'), a('bob@contoso.test')]), null, 'one bypassed recipient among others spares nothing');
    assert.match(contentFilterBypass(lists, null, [a('postmaster@contoso.test')])!, /every recipient/);
    assert.equal(contentFilterBypass(lists, null, []), null);
    assert.equal(contentFilterBypass({ bypassedRecipients: [], bypassedSenders: [], bypassedSenderDomains: [] }, a('x@partner.example'), [a('abuse@contoso.test')]), null);
  });
});
