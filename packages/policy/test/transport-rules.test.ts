// Transport rules as decisions (Exchange's Edge Rules agent): conditions all hold, any entry of
// a list, exceptions spare, words whole and case-blind in decoded text, patterns capped, scopes
// by accepted domains and session trust; actions in order, later rules seeing earlier changes,
// refusal and deletion ending the list, Audit changing nothing.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { formatReply, type MailAddress } from '@mailgw/mail';
import { disclaimerRefusal, evaluateTransportRules, explain, ruleMatches, type MessageFacts } from '../src/index.js';
import { policy } from './fixture.js';

const DEFAULT = { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] };
const A = (s: string): MailAddress => ({ local: s.slice(0, s.lastIndexOf('@')), domain: s.slice(s.lastIndexOf('@') + 1) });

function setup(rules: unknown[]) {
  const p = policy({ acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: 'fabrikam.test', type: 'InternalRelay' }], transportRules: rules }, [DEFAULT]);
  return { rules: p.config.gateway.transportRules, inside: p.insideDomains };
}

function facts(o: Partial<MessageFacts> & { headers?: Record<string, string | string[]> } = {}): MessageFacts {
  const fields = new Map<string, string[]>();
  for (const [k, v] of Object.entries(o.headers ?? { subject: 'Hello', from: 'x@remote.test', to: 'alice@contoso.test' })) fields.set(k.toLowerCase(), Array.isArray(v) ? v : [v]);
  return {
    envelopeSender: o.envelopeSender === undefined ? A('x@remote.test') : o.envelopeSender,
    fromHeader: o.fromHeader === undefined ? A('x@remote.test') : o.fromHeader,
    recipients: o.recipients ?? [A('alice@contoso.test')],
    clientIP: o.clientIP ?? '192.0.2.10',
    internalSession: o.internalSession ?? false,
    fields,
    size: o.size ?? 1000,
    bodyText: o.bodyText ?? null,
    attachments: o.attachments ?? null,
  };
}

const matches = (rule: Record<string, unknown>, f: MessageFacts) => {
  const s = setup([{ name: 'r', deleteMessage: true, ...rule }]);
  return ruleMatches(s.rules[0]!, f, s.inside);
};

describe('transport rule conditions', () => {
  it('subject words: whole words or phrases, case ignored, encoded words decoded; patterns as regular expressions', () => {
    assert.equal(matches({ subjectContainsWords: ['sale'] }, facts({ headers: { subject: 'Big SALE today!' } })), true);
    assert.equal(matches({ subjectContainsWords: ['sale'] }, facts({ headers: { subject: 'wholesale prices' } })), false);
    assert.equal(matches({ subjectContainsWords: ['free money'] }, facts({ headers: { subject: 'Get  FREE\tmoney now' } })), true);
    assert.equal(matches({ subjectContainsWords: ['größe'] }, facts({ headers: { subject: '=?UTF-8?Q?Gr=C3=B6=C3=9Fe?= =?UTF-8?B?IGFuZ2Vib3Q=?=' } })), true);
    assert.equal(matches({ subjectMatchesPatterns: ['^re:\\s*invoice \\d+$'] }, facts({ headers: { subject: 'RE: Invoice 42' } })), true);
    assert.equal(matches({ subjectMatchesPatterns: ['^invoice'] }, facts({ headers: { subject: 'RE: Invoice 42' } })), false);
    assert.equal(matches({ subjectContainsWords: ['x'] }, facts({ headers: {} })), false, 'no Subject: no match');
  });

  it('the sender: From: by default, MAIL FROM or either by senderAddressLocation; scope needs your own session and domain', () => {
    const f = facts({ envelopeSender: A('bounce@mailer.test'), fromHeader: A('CEO@contoso.test') });
    assert.equal(matches({ from: ['ceo@contoso.test'] }, f), true);
    assert.equal(matches({ from: ['ceo@contoso.test'], senderAddressLocation: 'Envelope' }, f), false);
    assert.equal(matches({ fromAddressContainsWords: ['mailer'], senderAddressLocation: 'HeaderOrEnvelope' }, f), true);
    assert.equal(matches({ senderDomainIs: ['test'] }, f), true, 'a subdomain of a listed domain');
    assert.equal(matches({ senderDomainIs: ['ontoso.test'] }, f), false);
    // A forged From: in your domain from an outside session is not InOrganization.
    assert.equal(matches({ fromScope: 'NotInOrganization' }, f), true);
    assert.equal(matches({ fromScope: 'InOrganization' }, { ...f, internalSession: true }), true);
    assert.equal(matches({ fromScope: 'InOrganization' }, { ...f, internalSession: true, fromHeader: A('x@remote.test') }), false);
    assert.equal(matches({ fromScope: 'InOrganization' }, facts({ fromHeader: null, internalSession: true })), false, 'no sender, not inside');
  });

  it('recipients: any of them; scope by Authoritative and InternalRelay domains', () => {
    const f = facts({ recipients: [A('bob@fabrikam.test'), A('friend@gmail.test')] });
    assert.equal(matches({ sentTo: ['BOB@fabrikam.test'] }, f), true);
    assert.equal(matches({ sentToScope: 'NotInOrganization' }, f), true);
    assert.equal(matches({ sentToScope: 'InOrganization' }, f), true);
    assert.equal(matches({ sentToScope: 'NotInOrganization' }, facts()), false);
    assert.equal(matches({ recipientDomainIs: ['gmail.test'] }, f), true);
    assert.equal(matches({ anyOfRecipientAddressMatchesPatterns: ['^friend@'] }, f), true);
    assert.equal(matches({ anyOfRecipientAddressContainsWords: ['nobody'] }, f), false);
  });

  it('header fields, size, client address; every condition must hold; any exception spares', () => {
    const f = facts({ headers: { subject: 'x', 'x-mailer': ['Good 1.0', 'Evil Mailer 2'] }, size: 2_000_000, clientIP: '::ffff:10.1.2.3' });
    assert.equal(matches({ headerContainsMessageHeader: 'X-Mailer', headerContainsWords: ['evil mailer'] }, f), true, 'the second field of that name');
    assert.equal(matches({ headerMatchesMessageHeader: 'x-mailer', headerMatchesPatterns: ['^good \\d'] }, f), true);
    assert.equal(matches({ messageSizeOver: '1MB' }, f), true);
    assert.equal(matches({ messageSizeOver: '2MB' }, f), false);
    assert.equal(matches({ senderIpRanges: ['10.0.0.0/8'] }, f), true);
    assert.equal(matches({ senderIpRanges: ['10.0.0.0/8'], messageSizeOver: '2MB' }, f), false, 'all conditions');
    assert.equal(matches({ senderIpRanges: ['10.0.0.0/8'], exceptIfMessageSizeOver: '5MB', exceptIfSubjectContainsWords: ['x'] }, f), false, 'one exception is enough');
    assert.equal(matches({ senderIpRanges: ['10.0.0.0/8'], exceptIfMessageSizeOver: '5MB' }, f), true);
    assert.equal(matches({ exceptIfHeaderContainsMessageHeader: 'X-Mailer', exceptIfHeaderContainsWords: ['good'] }, f), false);
    assert.equal(matches({}, f), true, 'no condition: every message');
  });

  it('subjectOrBody: the Subject or the message\'s text; the text only when it was read', () => {
    const f = facts({ headers: { subject: 'Hello' }, bodyText: 'Please send the Wire Transfer today.' });
    assert.equal(matches({ subjectOrBodyContainsWords: ['wire transfer'] }, f), true);
    assert.equal(matches({ subjectOrBodyContainsWords: ['hello'] }, f), true, 'the Subject');
    assert.equal(matches({ subjectOrBodyMatchesPatterns: ['send\\s+the\\s+wire'] }, f), true);
    assert.equal(matches({ subjectOrBodyContainsWords: ['wire transfer'] }, { ...f, bodyText: null }), false);
    assert.equal(matches({ subjectOrBodyContainsWords: ['late'] }, facts({ bodyText: `${'x '.repeat(70_000)}late` })), false, 'beyond the first 128 KB of text');
  });

  it('attachments: name patterns and extensions as Windows reads the name, sizes once decoded; none read, none match', () => {
    const f = facts({ attachments: [{ name: 'Q3 report.PDF', size: 300_000 }, { name: 'setup.exe. ', size: 2000 }, { name: 'archive.tar.gz', size: null }] });
    assert.equal(matches({ attachmentExtensionMatchesWords: ['exe'] }, f), true, 'the trailing dot and space are dropped');
    assert.equal(matches({ attachmentExtensionMatchesWords: ['.pdf'] }, f), true, 'case ignored; the dot optional in the config');
    assert.equal(matches({ attachmentExtensionMatchesWords: ['tar'] }, f), false, 'the last extension only');
    assert.equal(matches({ attachmentExtensionMatchesWords: ['gz'] }, f), true);
    assert.equal(matches({ attachmentNameMatchesPatterns: ['^setup\\.exe$'] }, f), true, 'matched as Windows reads it');
    assert.equal(matches({ attachmentNameMatchesPatterns: ['report'] }, f), true);
    assert.equal(matches({ attachmentNameMatchesPatterns: ['invoice'] }, f), false);
    assert.equal(matches({ attachmentSizeOver: '250KB' }, f), true);
    assert.equal(matches({ attachmentSizeOver: '300KB' }, f), false, '300,000 bytes is under 300 KB (307,200)');
    assert.equal(matches({ attachmentSizeOver: '1KB', exceptIfAttachmentExtensionMatchesWords: ['exe'] }, f), false);
    assert.equal(matches({ attachmentSizeOver: '1KB', exceptIfAttachmentNameMatchesPatterns: ['^nothing$'] }, f), true);
    assert.equal(matches({ attachmentSizeOver: '0' }, facts({ attachments: [{ name: 'x.bin', size: null }] })), false, 'an unmeasured size is over nothing');
    assert.equal(matches({ attachmentExtensionMatchesWords: ['exe'] }, facts()), false, 'not read');
    assert.equal(matches({ attachmentExtensionMatchesWords: ['exe'] }, facts({ attachments: [{ name: '.exe', size: 1 }] })), false, 'a name that is all extension has none');
  });

  it('a pattern reads at most the first 4096 characters of the sender\'s text', () => {
    const long = `${'a'.repeat(5000)}needle`;
    assert.equal(matches({ subjectMatchesPatterns: ['needle'] }, facts({ headers: { subject: long } })), false);
    assert.equal(matches({ subjectMatchesPatterns: ['^a+'] }, facts({ headers: { subject: long } })), true);
  });
});

describe('transport rule actions', () => {
  it('apply in order; a later rule sees what an earlier one set; headers and envelope as filter edits', () => {
    const s = setup([
      { name: 'Tag', fromScope: 'NotInOrganization', prependSubject: '[External] ', setHeaderName: 'X-Origin', setHeaderValue: 'internet' },
      { name: 'Chained', headerContainsMessageHeader: 'X-Origin', headerContainsWords: ['internet'], blindCopyTo: ['audit@contoso.test'], copyTo: ['boss@contoso.test'] },
      { name: 'Spam', subjectContainsWords: ['viagra'], setScl: 9, removeHeader: 'X-Origin' },
    ]);
    const r = evaluateTransportRules(s.rules, facts({ headers: { subject: 'Hello', cc: 'x@remote.test' } }), s.inside);
    assert.equal(r.verdict, 'accept');
    assert.deepEqual(r.matched, [
      { rule: 'Tag', mode: 'Enforce' },
      { rule: 'Chained', mode: 'Enforce' },
    ]);
    assert.deepEqual(r.headers, [
      { op: 'change', name: 'Subject', index: 1, value: '[External] Hello' },
      { op: 'change', name: 'X-Origin', index: 1, value: 'internet' },
      { op: 'change', name: 'Cc', index: 1, value: 'x@remote.test, boss@contoso.test' },
    ]);
    assert.deepEqual(r.envelope, [
      { op: 'add-recipient', recipient: A('boss@contoso.test') },
      { op: 'add-recipient', recipient: A('audit@contoso.test') },
    ]);
    assert.equal(r.reason, 'rule "Tag" prepended "[External] " to the Subject, set X-Origin; rule "Chained" added boss@contoso.test (Cc), added audit@contoso.test (Bcc)');
  });

  it('a refusal carries the rule\'s code and text and ends the list; 4xx tempfails; deletion answers 250 and keeps nothing', () => {
    const s = setup([
      { name: 'Refuse', subjectContainsWords: ['refuse'], smtpRejectMessageRejectText: 'Not here', prependSubject: 'never ' },
      { name: 'Later', subjectContainsWords: ['refuse'], prependSubject: 'x' },
      { name: 'Busy', subjectContainsWords: ['later'], smtpRejectMessageRejectStatusCode: 452, smtpRejectMessageRejectText: 'Try later' },
      { name: 'Gone', subjectContainsWords: ['gone'], deleteMessage: true },
    ]);
    const refuse = evaluateTransportRules(s.rules, facts({ headers: { subject: 'please refuse' } }), s.inside);
    assert.deepEqual([refuse.verdict, refuse.reply, refuse.headers, refuse.matched.length], ['reject', { code: 550, enhanced: '5.7.1', text: 'Not here' }, [], 1]);
    const busy = evaluateTransportRules(s.rules, facts({ headers: { subject: 'later' } }), s.inside);
    assert.deepEqual([busy.verdict, busy.reply], ['tempfail', { code: 452, enhanced: '4.7.1', text: 'Try later' }]);
    const gone = evaluateTransportRules(s.rules, facts({ headers: { subject: 'gone' } }), s.inside);
    assert.deepEqual([gone.verdict, gone.headers, gone.envelope], ['discard', [], []]);
  });

  it('redirect replaces the recipients; quarantine holds; Audit changes nothing; stopRuleProcessing ends the list; a disabled rule is never judged', () => {
    const s = setup([
      { name: 'Watch', mode: 'Audit', subjectContainsWords: ['hello'], deleteMessage: true },
      { name: 'Off', enabled: false, subjectContainsWords: ['hello'], deleteMessage: true },
      { name: 'Redirect', sentTo: ['alice@contoso.test'], redirectMessageTo: ['deputy@contoso.test'], stopRuleProcessing: true },
      { name: 'Never', subjectContainsWords: ['hello'], deleteMessage: true },
    ]);
    const r = evaluateTransportRules(s.rules, facts({ recipients: [A('alice@contoso.test'), A('bob@contoso.test')] }), s.inside);
    assert.equal(r.verdict, 'accept');
    assert.deepEqual(r.matched, [
      { rule: 'Watch', mode: 'Audit' },
      { rule: 'Redirect', mode: 'Enforce' },
    ]);
    assert.deepEqual(r.envelope, [
      { op: 'delete-recipient', recipient: A('alice@contoso.test') },
      { op: 'delete-recipient', recipient: A('bob@contoso.test') },
      { op: 'add-recipient', recipient: A('deputy@contoso.test') },
    ]);
    assert.match(r.reason, /^rule "Watch" matched \(Audit: nothing done\); rule "Redirect" redirected it to deputy@contoso.test; stopRuleProcessing$/);
    const q = setup([{ name: 'Hold', subjectContainsWords: ['hello'], quarantine: true }]);
    assert.equal(evaluateTransportRules(q.rules, facts(), q.inside).verdict, 'quarantine');
    assert.deepEqual(evaluateTransportRules(q.rules, facts({ headers: { subject: 'bye' } }), q.inside), { matched: [], verdict: 'accept', reply: undefined, headers: [], envelope: [], reason: 'no transport rule matched' });
  });

  it('logEventText: an event per Enforce rule that matched, a refusing one included; none in Audit; disconnect is a 421 that says it ended the session', () => {
    const s = setup([
      { name: 'Log', subjectContainsWords: ['hello'], logEventText: 'hello seen' },
      { name: 'Audit', mode: 'Audit', subjectContainsWords: ['hello'], logEventText: 'never' },
      { name: 'Bye', subjectContainsWords: ['hello'], disconnect: true, logEventText: 'hung up' },
    ]);
    const r = evaluateTransportRules(s.rules, facts(), s.inside);
    assert.deepEqual(r.events, [{ rule: 'Log', text: 'hello seen' }, { rule: 'Bye', text: 'hung up' }]);
    assert.equal(r.verdict, 'tempfail');
    assert.equal(r.reply?.code, 421);
    assert.match(r.reason, /rule "Log" logged an event; rule "Audit" matched \(Audit: nothing done\); rule "Bye" ended the session \(421 4\.7\.1 Service not available, closing transmission channel\)/);
    assert.equal(evaluateTransportRules(s.rules, facts({ headers: { subject: 'other' } }), s.inside).events, undefined);
  });

  it('disclaimers: one per Enforce rule that matched, in order, with the rule; none in Audit; none when a later rule refuses or deletes', () => {
    const s = setup([
      { name: 'Banner', subjectContainsWords: ['hello'], applyHtmlDisclaimerText: '<p>Outside</p>', applyHtmlDisclaimerLocation: 'Prepend', applyHtmlDisclaimerFallbackAction: 'Ignore' },
      { name: 'Draft', mode: 'Audit', subjectContainsWords: ['hello'], applyHtmlDisclaimerText: 'never' },
      { name: 'Footer', subjectContainsWords: ['hello'], applyHtmlDisclaimerText: 'Confidential.' },
      { name: 'Drop', subjectContainsWords: ['spam'], deleteMessage: true },
    ]);
    const r = evaluateTransportRules(s.rules, facts(), s.inside);
    // Each with the sender its rule reads (the From: field by default): whose directory object fills %%tokens%%.
    assert.deepEqual(r.disclaimers, [
      { rule: 'Banner', html: '<p>Outside</p>', location: 'Prepend', fallback: 'Ignore', sender: 'x@remote.test' },
      { rule: 'Footer', html: 'Confidential.', location: 'Append', fallback: 'Wrap', sender: 'x@remote.test' },
    ]);
    const byLocation = setup([
      { name: 'Envelope', senderAddressLocation: 'Envelope', applyHtmlDisclaimerText: '%%DisplayName%%' },
      { name: 'Header', applyHtmlDisclaimerText: '%%DisplayName%%' },
    ]);
    assert.deepEqual(
      evaluateTransportRules(byLocation.rules, facts({ envelopeSender: A('bounces@contoso.test'), fromHeader: A('alice@contoso.test') }), byLocation.inside).disclaimers?.map((d) => `${d.rule}: ${d.sender}`),
      ['Envelope: bounces@contoso.test', 'Header: alice@contoso.test'],
    );
    const noSender = evaluateTransportRules(byLocation.rules, facts({ envelopeSender: null, fromHeader: null }), byLocation.inside).disclaimers!;
    assert.deepEqual(noSender.map((d) => d.sender), [undefined, undefined], 'a bounce without a From: has no sender to fill tokens from');
    assert.match(r.reason, /rule "Banner" added a disclaimer \(Prepend, fallback Ignore\); rule "Draft" matched \(Audit: nothing done\); rule "Footer" added a disclaimer \(Append, fallback Wrap\)/);
    assert.equal(evaluateTransportRules(s.rules, facts({ headers: { subject: 'hello spam' } }), s.inside).disclaimers, undefined, 'deleted: nothing to add to');
    const refusal = disclaimerRefusal('Footer', 'the message is signed or encrypted (multipart/signed)');
    assert.equal(formatReply(refusal.reply), '550 5.7.1 Delivery not authorized, message refused');
    assert.equal(refusal.reason.code, 'disclaimer-not-applied');
    assert.match(refusal.reason.message, /transport rule "Footer": its disclaimer cannot be added \(the message is signed or encrypted \(multipart\/signed\)\) and its fallback action is Reject/);
  });

  it('a prefix that is not ASCII goes in as an encoded word; a message without a Subject gets one', () => {
    const s = setup([{ name: 'Ext', prependSubject: '[Extern – Vorsicht] ' }]);
    const r = evaluateTransportRules(s.rules, facts({ headers: {} }), s.inside);
    assert.deepEqual(r.headers, [{ op: 'change', name: 'Subject', index: 1, value: `=?UTF-8?B?${Buffer.from('[Extern – Vorsicht] ').toString('base64')}?= ` }]);
  });
});

describe('mailgw explain and the transport rules', () => {
  const p = policy(
    {
      acceptedDomains: [{ domain: 'contoso.test', default: true }],
      transportRules: [
        { name: 'Tag', fromScope: 'NotInOrganization', prependSubject: '[External] ' },
        { name: 'No bad mailer', headerContainsMessageHeader: 'X-Mailer', headerContainsWords: ['BadMailer'], smtpRejectMessageRejectText: 'Not accepted' },
      ],
    },
    [DEFAULT],
  );
  const scenario = (headers: string[]) => ({ binding: '127.0.0.1:25', clientIP: '192.0.2.1', mailFrom: 'x@remote.test', rcpt: ['alice@contoso.test'], data: { headers } });
  it('shows what the rules make of the scenario\'s message: a refusal with the rule\'s reply', () => {
    const e = explain(p, scenario(['From: x@remote.test', 'X-Mailer: BadMailer 2', 'Subject: hi']));
    const rules = e.stages.find((x) => x.stage === 'rules')!;
    assert.deepEqual([rules.decision, rules.reply, rules.reasonCode], ['reject', '550 5.7.1 Not accepted', 'transport-rule-rejected']);
    assert.match(rules.reason, /rule "No bad mailer" refused it/);
  });
  it('the scenario\'s attachments meet the attachment conditions', () => {
    const q = policy({ acceptedDomains: [{ domain: 'contoso.test', default: true }], transportRules: [{ name: 'No exe', attachmentExtensionMatchesWords: ['exe'], smtpRejectMessageRejectText: 'No programs' }, { name: 'Big', attachmentSizeOver: '10MB', setScl: 5 }] }, [DEFAULT]);
    const run = (attachments: Array<string | { name: string; size?: number }>) => explain(q, { binding: '127.0.0.1:25', clientIP: '192.0.2.1', mailFrom: 'x@remote.test', rcpt: ['alice@contoso.test'], data: { headers: ['Subject: hi'], attachments } }).stages.find((x) => x.stage === 'rules')!;
    const r = run(['tool.exe']);
    assert.deepEqual([r.reply, r.input], ['550 5.7.1 No programs', '2 transport rule(s) on 1 header field(s) and 1 attachment(s)']);
    assert.equal(run([{ name: 'movie.mp4', size: 20 * 1024 * 1024 }]).reason, 'rule "Big" set SCL 5 (remove X-MS-Exchange-Organization-SCL, add X-MS-Exchange-Organization-SCL)');
    assert.equal(run(['notes.txt']).reasonCode, 'no-transport-rule');
  });
  it('and the changes of the rules that matched', () => {
    const e = explain(p, scenario(['From: x@remote.test', 'Subject: hi']));
    const rules = e.stages.find((x) => x.stage === 'rules')!;
    assert.deepEqual([rules.decision, rules.reasonCode], ['accept', 'transport-rules-matched']);
    assert.equal(rules.reason, 'rule "Tag" prepended "[External] " to the Subject (change Subject)');
  });
});

describe('transport rules on random rule sets and messages', () => {
  const word = fc.constantFrom('sale', 'invoice', 'free money', 'Größe', 'x', '[External]');
  const pattern = fc.constantFrom('^re:', 'inv\\w+', '\\d{3}', 'money$', '.');
  const addr = fc.constantFrom('alice@contoso.test', 'bob@fabrikam.test', 'x@remote.test', 'ceo@contoso.test');
  // One condition or none: rules that match often enough for every outcome to occur.
  const cond = fc.oneof(
    fc.constant({}),
    fc.record({ subjectContainsWords: fc.array(word, { minLength: 1, maxLength: 2 }) }),
    fc.record({ subjectMatchesPatterns: fc.array(pattern, { minLength: 1, maxLength: 2 }) }),
    fc.record({ fromScope: fc.constantFrom('InOrganization', 'NotInOrganization') }),
    fc.record({ sentToScope: fc.constantFrom('InOrganization', 'NotInOrganization') }),
    fc.record({ from: fc.array(addr, { minLength: 1, maxLength: 2 }) }),
    fc.record({ messageSizeOver: fc.constantFrom('1KB', '10KB') }),
    fc.record({ exceptIfSubjectContainsWords: fc.array(word, { minLength: 1, maxLength: 2 }) }),
  );
  const subjectText = fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('Big sale', 'RE: invoice 123', 'free money', 'Größe', '[External] x'));
  const action = fc.oneof(
    fc.constant({ deleteMessage: true }),
    fc.constant({ quarantine: true }),
    fc.constant({ smtpRejectMessageRejectText: 'No' }),
    fc.constant({ smtpRejectMessageRejectStatusCode: 451, smtpRejectMessageRejectText: 'Later' }),
    fc.record({ prependSubject: fc.constantFrom('[Ext] ', 'Ä '), setScl: fc.integer({ min: -1, max: 9 }) }),
    fc.record({ redirectMessageTo: fc.array(addr, { minLength: 1, maxLength: 2 }) }),
    fc.record({ blindCopyTo: fc.array(addr, { minLength: 1, maxLength: 2 }), setHeaderName: fc.constant('X-Tag'), setHeaderValue: fc.constant('1') }),
  );
  const rule = fc.tuple(cond, action, fc.constantFrom('Enforce', 'Audit'), fc.boolean(), fc.boolean());
  it('never throws; a refusal carries a reply and changes nothing; Audit and disabled rules change nothing', () => {
    const seen = { accept: 0, reject: 0, tempfail: 0, discard: 0, quarantine: 0 };
    fc.assert(
      fc.property(fc.array(rule, { minLength: 1, maxLength: 6 }), subjectText, fc.array(addr, { minLength: 1, maxLength: 3 }), fc.boolean(), fc.integer({ min: 0, max: 20_000 }), (rs, subject, rcpts, internal, size) => {
        const s = setup(rs.map(([c, a, mode, enabled, stop], n) => ({ name: `r${n}`, ...c, ...a, mode, enabled, stopRuleProcessing: stop })));
        const r = evaluateTransportRules(s.rules, facts({ headers: { subject, from: 'ceo@contoso.test' }, fromHeader: A('ceo@contoso.test'), recipients: rcpts.map(A), internalSession: internal, size }), s.inside);
        const enforcing = r.matched.filter((m) => m.mode === 'Enforce');
        seen[r.verdict]++;
        for (const m of r.matched) assert.ok(s.rules.find((x) => x.name === m.rule)!.enabled, 'a disabled rule never matches');
        if (r.verdict === 'reject' || r.verdict === 'tempfail') {
          assert.ok(r.reply && Math.floor(r.reply.code / 100) === (r.verdict === 'reject' ? 5 : 4));
          assert.deepEqual([r.headers, r.envelope], [[], []]);
        }
        if (r.verdict === 'discard') assert.deepEqual([r.headers, r.envelope], [[], []]);
        if (enforcing.length === 0) assert.deepEqual([r.verdict, r.headers, r.envelope], ['accept', [], []]);
      }),
      { numRuns: Number(process.env.MAILGW_FUZZ_RUNS ?? 1000) },
    );
    // Every outcome was reached: the invariants were tried on each.
    for (const [verdict, n] of Object.entries(seen)) assert.ok(n > 0, `no ${verdict} outcome in the runs: ${JSON.stringify(seen)}`);
  });
});

