// Transport rule group conditions (Exchange's -FromMemberOf, -SentToMemberOf) as decisions: the
// rules are judged on what the directory said (facts.memberships); an address they needed and
// were not told about is an open question in the outcome, never a guess; a group by name, DN or
// address; a recipient may be the group itself, a sender may not; config errors name the key.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { evaluateTransportRules, explain, inGroup, type KnownMemberships, type MessageFacts } from '../src/index.js';
import { compile, mailAddress as A, rulesJudge } from './fixture.js';

const DIRECTORY = { url: ['ldap://dc.contoso.test'], bindDn: 'cn=svc,dc=contoso,dc=test', baseDn: 'dc=contoso,dc=test', preset: 'activeDirectory', bindPasswordEnv: 'LDAP_PW' };
const SALES = 'CN=Sales,OU=Groups,DC=contoso,DC=test';
const STAFF = 'CN=All Staff,OU=Groups,DC=contoso,DC=test';

function setup(rules: unknown[]) {
  const judge = rulesJudge(rules, DIRECTORY);
  return (o: { from?: string; to?: string[]; known?: KnownMemberships }) => judge({ ...o, ...(o.known ? { extra: { memberships: o.known } } : {}) });
}

const carol = { kind: 'found', dn: 'cn=Carol White,ou=People,dc=contoso,dc=test', groups: [SALES, STAFF] } as const;
const sales = { kind: 'found', dn: SALES, groups: [STAFF] } as const;

describe('inGroup', () => {
  it('a group by DN (any case and spacing), by name (cn), or by address (the DN of the object holding it)', () => {
    assert.equal(inGroup(carol, 'cn=sales, ou=groups, dc=contoso, dc=test', undefined, false), true);
    assert.equal(inGroup(carol, 'sales', undefined, false), true);
    assert.equal(inGroup(carol, 'All Staff', undefined, false), true);
    assert.equal(inGroup(carol, 'Helpdesk', undefined, false), false);
    assert.equal(inGroup(carol, 'sales@contoso.test', sales, false), true);
    assert.equal(inGroup(carol, 'sales@contoso.test', { kind: 'not-found' }, false), false, 'no object holds the group address');
    assert.equal(inGroup(carol, 'sales@contoso.test', undefined, false), false);
  });

  it('the object itself counts only when asked (a recipient that is the group)', () => {
    assert.equal(inGroup(sales, 'Sales', undefined, false), false);
    assert.equal(inGroup(sales, 'Sales', undefined, true), true);
    assert.equal(inGroup(sales, 'sales@contoso.test', sales, true), true);
  });
});

describe('group conditions', () => {
  const judge = setup([
    { name: 'Sales out', fromMemberOf: ['Sales'], sentToScope: 'NotInOrganization', setHeaderName: 'X-Sales', setHeaderValue: 'yes' },
    { name: 'To sales', sentToMemberOf: ['sales@contoso.test'], prependSubject: '[Sales] ' },
  ]);

  it('an address not yet answered is an open question in the outcome (with the group addresses it needs), and counts as no', () => {
    const r = judge({});
    assert.deepEqual([...(r.unansweredMembership ?? [])].sort(), ['carol@contoso.test', 'partner@fabrikam.example', 'sales@contoso.test']);
    assert.deepEqual(r.matched, []);
  });

  it('answered: the rules match by what the directory said', () => {
    const known: KnownMemberships = new Map<string, typeof carol | typeof sales | { kind: 'not-found' }>([
      ['carol@contoso.test', carol],
      ['partner@fabrikam.example', { kind: 'not-found' }],
      ['sales@contoso.test', sales],
    ]);
    const r = judge({ known });
    assert.equal(r.unansweredMembership, undefined);
    assert.deepEqual(r.matched.map((m) => m.rule), ['Sales out']);
    const toGroup = judge({ from: 'buyer@fabrikam.example', to: ['sales@contoso.test'], known: new Map([...known, ['buyer@fabrikam.example', { kind: 'not-found' }]]) });
    assert.deepEqual(toGroup.matched.map((m) => m.rule), ['To sales'], 'the recipient is the group itself');
    assert.equal(toGroup.unansweredMembership, undefined);
  });

  it('no question when the other conditions already fail', () => {
    const r = judge({ from: 'carol@contoso.test', to: ['alice@contoso.test'], known: new Map([['carol@contoso.test', carol]]) });
    // "Sales out" fails on sentToScope before it asks; "To sales" still asks about alice and the group.
    assert.deepEqual([...(r.unansweredMembership ?? [])].sort(), ['alice@contoso.test', 'sales@contoso.test']);
  });

  it('config: a group is its name, DN or address; without a directory section the conditions are errors naming the key', () => {
    assert.throws(() => compile({ transportRules: [{ name: 'x', fromMemberOf: [' '], prependSubject: 'x' }], directory: DIRECTORY }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }], { LDAP_PW: 'secret' }), /transportRules\[0\]\.fromMemberOf\[0\].*a group is its name, its DN or its address/s);
    assert.throws(() => setupNoDirectory([{ name: 'Watch sales', exceptIfSentToMemberOf: ['Sales'], prependSubject: 'x' }]), /transportRules\[0\]\.exceptIfSentToMemberOf.*rule "Watch sales": exceptIfSentToMemberOf asks the directory who is in Sales, and there is no directory section/s);
  });
});

describe('explain and group conditions', () => {
  it('says which addresses it did not ask the directory about, and takes the conditions as not met', () => {
    const r = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }], directory: DIRECTORY, transportRules: [{ name: 'To sales', sentToMemberOf: ['Sales'], prependSubject: '[Sales] ' }] }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }], { LDAP_PW: 'secret' });
    assert.ok(r.ok);
    const rules = explain(r.policy, { binding: '127.0.0.1:25', clientIP: '192.0.2.1', mailFrom: 'x@remote.test', rcpt: ['carol@contoso.test'], data: { headers: ['Subject: hi'] } }).stages.find((x) => x.stage === 'rules')!;
    assert.equal(rules.reasonCode, 'no-transport-rule');
    assert.equal(rules.reason, 'no transport rule matched; group conditions (fromMemberOf, sentToMemberOf, betweenMemberOf…) taken as not met: explain does not ask the directory which groups carol@contoso.test is in');
  });
});

describe('asking the directory only what the rules need', () => {
  // The listener's loop (content-filter transport-rules.ts judge): judge, answer what was asked,
  // judge again. Whatever the rules and the directory, it must end with the outcome the rules
  // give when every answer is known beforehand, having asked only addresses the message or the
  // rules hold.
  const people = ['ann@contoso.test', 'bob@contoso.test', 'cy@fabrikam.example', 'dee@fabrikam.example'];
  const groupNames = ['Sales', 'Staff', 'sales@contoso.test', 'CN=Staff,OU=Groups,DC=contoso,DC=test'];
  const groupRef = fc.constantFrom(...groupNames);
  const condition = fc.record(
    {
      fromMemberOf: fc.array(groupRef, { minLength: 1, maxLength: 2 }),
      sentToMemberOf: fc.array(groupRef, { minLength: 1, maxLength: 2 }),
      exceptIfFromMemberOf: fc.array(groupRef, { minLength: 1, maxLength: 2 }),
      exceptIfSentToMemberOf: fc.array(groupRef, { minLength: 1, maxLength: 2 }),
      sentToScope: fc.constantFrom('InOrganization', 'NotInOrganization'),
      between: fc.tuple(fc.array(groupRef, { minLength: 1, maxLength: 2 }), fc.array(groupRef, { minLength: 1, maxLength: 2 }), fc.boolean()),
    },
    { requiredKeys: [] },
  ).map(({ between, ...c }) => (between ? { ...c, [between[2] ? 'exceptIfBetweenMemberOf1' : 'betweenMemberOf1']: between[0], [between[2] ? 'exceptIfBetweenMemberOf2' : 'betweenMemberOf2']: between[1] } : c));
  const action = fc.oneof(
    fc.constant({ prependSubject: '[x] ' }),
    fc.record({ addToRecipients: fc.array(fc.constantFrom(...people), { minLength: 1, maxLength: 2 }) }),
    fc.record({ redirectMessageTo: fc.array(fc.constantFrom(...people), { minLength: 1, maxLength: 1 }) }),
    fc.constant({ setHeaderName: 'X-Seen', setHeaderValue: 'yes' }),
  );
  const rules = fc.array(fc.tuple(condition, action, fc.boolean()), { minLength: 1, maxLength: 6 }).map((list) => list.map(([c, a, stop], i) => ({ name: `r${i}`, ...c, ...a, stopRuleProcessing: stop })));
  const answer = fc.oneof(
    fc.constant({ kind: 'not-found' } as const),
    fc.subarray(['CN=Sales,OU=Groups,DC=contoso,DC=test', 'CN=Staff,OU=Groups,DC=contoso,DC=test']).map((groups) => ({ kind: 'found', dn: 'cn=someone,dc=contoso,dc=test', groups }) as const),
  );
  const directory = fc.record(Object.fromEntries([...people, 'sales@contoso.test'].map((a) => [a, a === 'sales@contoso.test' ? fc.constant({ kind: 'found', dn: 'CN=Sales,OU=Groups,DC=contoso,DC=test', groups: ['CN=Staff,OU=Groups,DC=contoso,DC=test'] } as const) : answer])));

  it('the loop ends with the outcome of full knowledge, asking only addresses in play', () => {
    fc.assert(
      fc.property(rules, directory, fc.constantFrom(...people), fc.subarray(people, { minLength: 1 }), (list, dir, from, to) => {
        const r = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }], directory: DIRECTORY, transportRules: list }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }], { LDAP_PW: 'secret' });
        if (!r.ok) return;
        const g = r.policy.config.gateway;
        const facts = (memberships: KnownMemberships): MessageFacts => ({ envelopeSender: A(from), fromHeader: A(from), recipients: to.map(A), clientIP: '192.0.2.1', internalSession: true, fields: new Map([['subject', ['Hi']]]), size: 10, memberships });
        const full: KnownMemberships = new Map(Object.entries(dir) as Array<[string, (typeof dir)[string]]>);
        const expected = evaluateTransportRules(g.transportRules, facts(full), r.policy.insideDomains);
        const known = new Map<string, (typeof dir)[string]>();
        let outcome = evaluateTransportRules(g.transportRules, facts(known), r.policy.insideDomains);
        for (let round = 0; outcome.unansweredMembership; round++) {
          assert.ok(round < 20, 'the rounds end');
          for (const a of outcome.unansweredMembership) {
            assert.ok(a in dir, `asked about ${a}, which nothing in the message or the rules holds`);
            assert.ok(!known.has(a), `asked about ${a} twice`);
            known.set(a, dir[a]!);
          }
          outcome = evaluateTransportRules(g.transportRules, facts(known), r.policy.insideDomains);
        }
        assert.deepEqual({ ...outcome, unansweredMembership: undefined }, { ...expected, unansweredMembership: undefined });
      }),
      { numRuns: 300 },
    );
  });
});

function setupNoDirectory(rules: unknown[]) {
  return compile({ transportRules: rules }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
}

describe('betweenMemberOf1 / betweenMemberOf2 (an ethical wall)', () => {
  const BROKERS = 'CN=Brokerage,OU=Groups,DC=contoso,DC=test';
  const judge = setup([{ name: 'Wall', betweenMemberOf1: ['Sales'], betweenMemberOf2: ['Brokerage'], smtpRejectMessageRejectText: 'Ethical wall' }]);
  const known = new Map<string, { kind: 'found'; dn: string; groups: string[] } | { kind: 'not-found' }>([
    ['carol@contoso.test', { kind: 'found', dn: 'cn=Carol,dc=contoso,dc=test', groups: [SALES] }],
    ['bert@contoso.test', { kind: 'found', dn: 'cn=Bert,dc=contoso,dc=test', groups: [BROKERS] }],
    ['ann@contoso.test', { kind: 'found', dn: 'cn=Ann,dc=contoso,dc=test', groups: [STAFF] }],
    ['brokerage@contoso.test', { kind: 'found', dn: BROKERS, groups: [] }],
    ['partner@fabrikam.example', { kind: 'not-found' }],
  ]);
  const rule = (from: string, to: string[]) => judge({ from, to, known }).matched.map((m) => m.rule);

  it('either way between the two sides; not within one side, not with anyone else', () => {
    assert.deepEqual(rule('carol@contoso.test', ['bert@contoso.test']), ['Wall']);
    assert.deepEqual(rule('bert@contoso.test', ['carol@contoso.test']), ['Wall'], 'the other way: one rule holds both');
    assert.deepEqual(rule('carol@contoso.test', ['ann@contoso.test', 'bert@contoso.test']), ['Wall'], 'any recipient');
    assert.deepEqual(rule('carol@contoso.test', ['brokerage@contoso.test']), ['Wall'], 'the group itself as a recipient');
    assert.deepEqual(rule('carol@contoso.test', ['ann@contoso.test']), []);
    assert.deepEqual(rule('ann@contoso.test', ['bert@contoso.test']), []);
    assert.deepEqual(rule('partner@fabrikam.example', ['bert@contoso.test']), []);
  });

  it('an exception on the pair spares mail between the sides', () => {
    const spare = setup([{ name: 'Tag', sentToScope: 'InOrganization', exceptIfBetweenMemberOf1: ['Sales'], exceptIfBetweenMemberOf2: ['Brokerage'], prependSubject: '[x] ' }]);
    assert.deepEqual(spare({ from: 'carol@contoso.test', to: ['bert@contoso.test'], known }).matched, []);
    assert.deepEqual(spare({ from: 'carol@contoso.test', to: ['ann@contoso.test'], known }).matched.map((m) => m.rule), ['Tag']);
  });

  it('config: the two go together, and need the directory', () => {
    assert.throws(() => setup([{ name: 'Half', betweenMemberOf1: ['Sales'], prependSubject: 'x' }]), /transportRules\[0\]\.betweenMemberOf2.*betweenMemberOf1 and betweenMemberOf2 go together/s);
    assert.throws(() => setup([{ name: 'Half', exceptIfBetweenMemberOf2: ['Sales'], prependSubject: 'x' }]), /transportRules\[0\]\.exceptIfBetweenMemberOf1.*exceptIfBetweenMemberOf1 and exceptIfBetweenMemberOf2 go together/s);
    assert.throws(() => setupNoDirectory([{ name: 'Wall', betweenMemberOf1: ['Sales'], betweenMemberOf2: ['Brokerage'], prependSubject: 'x' }]), /transportRules\[0\]\.betweenMemberOf1.*rule "Wall": betweenMemberOf1 asks the directory who is in Sales, and there is no directory section/s);
  });
});
