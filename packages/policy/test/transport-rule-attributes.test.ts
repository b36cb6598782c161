// Transport rule conditions on directory attributes (Exchange's -SenderADAttributeContainsWords,
// -SenderADAttributeMatchesPatterns, -RecipientADAttributeContainsWords,
// -RecipientADAttributeMatchesPatterns) as decisions: judged on what the directory said
// (facts.adAttributes, by Exchange attribute name); an address not answered is an open question
// (unansweredAttributes), never a guess; whole words; any entry (or); any recipient; no object:
// no. The attribute values from LDAP by preset (adAttributeValues). Config: Exchange's
// "Attribute:words" syntax, errors naming the key, the preset's missing attributes, no directory.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adAttributeValues, explain, type AdAttributesAnswer, type KnownAdAttributes } from '../src/index.js';
import { compile, rulesJudge } from './fixture.js';

const DIRECTORY = { url: ['ldap://dc.contoso.test'], bindDn: 'cn=svc,dc=contoso,dc=test', baseDn: 'dc=contoso,dc=test', preset: 'activeDirectory', bindPasswordEnv: 'LDAP_PW' };
const CONNECTORS = [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }];

function setup(rules: unknown[], directory: Record<string, unknown> = DIRECTORY) {
  const judge = rulesJudge(rules, directory);
  return (o: { from?: string; to?: string[]; known?: KnownAdAttributes }) => judge({ ...o, ...(o.known ? { extra: { adAttributes: o.known } } : {}) });
}

const found = (values: Record<string, string[]>) => ({ kind: 'found', values }) as const;

describe('directory attribute conditions', () => {
  const judge = setup([
    { name: 'Departments', senderADAttributeContainsWords: ['Department:Sales,Human Resources', 'City:Zürich'], sentToScope: 'NotInOrganization', setHeaderName: 'X-Dept', setHeaderValue: 'yes' },
    { name: 'Directors', senderADAttributeMatchesPatterns: ['Title:^(Director|VP)\\b'], exceptIfSenderADAttributeContainsWords: ['CustomAttribute1:NoTag'], prependSubject: '[D] ' },
    { name: 'To a manager', recipientADAttributeMatchesPatterns: ['Manager:^Bob '], setHeaderName: 'X-Team', setHeaderValue: 'bob' },
  ]);

  it('an address not yet answered is an open question in the outcome, and counts as no', () => {
    const r = judge({ to: ['partner@fabrikam.example', 'ann@contoso.test'] });
    assert.deepEqual(r.matched, []);
    assert.deepEqual([...(r.unansweredAttributes ?? [])].sort(), ['ann@contoso.test', 'carol@contoso.test', 'partner@fabrikam.example']);
    assert.equal(r.unansweredMembership, undefined);
  });

  it('whole words and phrases, case ignored, any entry and any value (or)', () => {
    const ask = (values: Record<string, string[]>) => judge({ known: new Map<string, AdAttributesAnswer>([['carol@contoso.test', found(values)], ['partner@fabrikam.example', { kind: 'not-found' }]]) }).matched.map((m) => m.rule);
    assert.deepEqual(ask({ Department: ['Inside sales'] }), ['Departments']);
    assert.deepEqual(ask({ Department: ['human resources'] }), ['Departments']);
    assert.deepEqual(ask({ Department: ['Wholesales'] }), [], 'a part of a word is not the word');
    assert.deepEqual(ask({ Department: ['Research'], City: ['Zürich'] }), ['Departments'], 'the second entry');
    assert.deepEqual(ask({ Department: ['Research', 'Sales'] }), ['Departments'], 'a second value of the attribute');
    assert.deepEqual(ask({ Title: ['Director of Sales'] }), ['Directors']);
    assert.deepEqual(ask({ Title: ['Directorate assistant'] }), [], 'the pattern ends at a word boundary');
    assert.deepEqual(ask({ Title: ['VP Sales'], CustomAttribute1: ['NoTag'] }), [], 'the exception on another attribute of the same object');
    assert.deepEqual(ask({}), [], 'an object without the attributes');
  });

  it('no directory object: no condition is met (and no question is left open)', () => {
    const r = judge({ known: new Map<string, AdAttributesAnswer>([['carol@contoso.test', { kind: 'not-found' }], ['partner@fabrikam.example', { kind: 'not-found' }]]) });
    assert.deepEqual(r.matched, []);
    assert.equal(r.unansweredAttributes, undefined);
  });

  it('a recipient condition holds when any recipient meets it', () => {
    const r = judge({
      to: ['ann@contoso.test', 'dee@contoso.test'],
      known: new Map<string, AdAttributesAnswer>([
        ['carol@contoso.test', { kind: 'not-found' }],
        ['ann@contoso.test', found({ Manager: ['Alice Smith'] })],
        ['dee@contoso.test', found({ Manager: ['Bob Jones'] })],
      ]),
    });
    assert.deepEqual(r.matched.map((m) => m.rule), ['To a manager']);
  });

  it('no question when the other conditions already fail (internal mail and the Departments rule)', () => {
    const r = setup([{ name: 'Out', sentToScope: 'NotInOrganization', senderADAttributeContainsWords: ['Department:Sales'], prependSubject: 'x' }])({ to: ['ann@contoso.test'] });
    assert.equal(r.unansweredAttributes, undefined);
  });
});

describe('adAttributeValues', () => {
  it('reads each Exchange name from its LDAP attribute by preset, any case; Manager as a name; missing: none', () => {
    const ldap = { department: ['Sales'], L: ['Zürich'], manager: ['CN=Bob Jones,OU=People,DC=contoso,DC=test'], extensionAttribute3: ['x'], departmentNumber: ['42'] };
    assert.deepEqual(adAttributeValues('activeDirectory', ['Department', 'City', 'Manager', 'CustomAttribute3', 'Title'], ldap), { Department: ['Sales'], City: ['Zürich'], Manager: ['Bob Jones'], CustomAttribute3: ['x'], Title: [] });
    assert.deepEqual(adAttributeValues('openLDAP', ['Department', 'CustomAttribute3'], ldap), { Department: ['42'], CustomAttribute3: [] });
  });
});

describe('config of directory attribute conditions', () => {
  const bad = (rule: Record<string, unknown>, re: RegExp, directory: Record<string, unknown> | null = DIRECTORY) =>
    assert.throws(() => compile({ transportRules: [{ name: 'x', prependSubject: 'x', ...rule }], ...(directory ? { directory } : {}) }, CONNECTORS, { LDAP_PW: 'secret' }), re);

  it('Exchange\'s syntax: the attribute by name (any case), words split at commas; one pattern per entry', () => {
    const r = compile({ directory: DIRECTORY, transportRules: [{ name: 'x', prependSubject: 'x', senderADAttributeContainsWords: ['department: Sales , Human Resources'], exceptIfRecipientADAttributeMatchesPatterns: ['title:^a{1,3},b'] }] }, CONNECTORS, { LDAP_PW: 'secret' });
    assert.ok(r.ok);
    const rule = r.policy.config.gateway.transportRules[0]!;
    assert.deepEqual(rule.conditions.senderADAttributeContainsWords, [{ attribute: 'Department', words: ['Sales', 'Human Resources'] }]);
    const p = rule.exceptions.recipientADAttributeMatchesPatterns![0]!;
    assert.equal(p.attribute, 'Title');
    assert.equal(p.pattern.source, '^a{1,3},b', 'a comma inside a pattern stays in it');
  });

  it('bad entries name the key and say what is wrong', () => {
    bad({ senderADAttributeContainsWords: ['Sales'] }, /transportRules\[0\]\.senderADAttributeContainsWords\[0\].*"Sales" is not Attribute:word,phrase with spaces,….*Department/s);
    bad({ senderADAttributeContainsWords: ['Dept:Sales'] }, /senderADAttributeContainsWords\[0\].*Dept is not one of Exchange's attribute names/s);
    bad({ recipientADAttributeContainsWords: ['Department:Sales,,HR'] }, /recipientADAttributeContainsWords\[0\].*an empty one would match everything/s);
    bad({ senderADAttributeMatchesPatterns: ['Title:('] }, /senderADAttributeMatchesPatterns\[0\].*"Title:\(": "\(" is not a regular expression/s);
    bad({ senderADAttributeMatchesPatterns: [] }, /senderADAttributeMatchesPatterns.*list at least one Attribute:pattern entry/s);
  });

  it('without a directory section: an error naming the key; an attribute the preset has not: an error', () => {
    bad({ exceptIfSenderADAttributeContainsWords: ['Department:Sales'] }, /transportRules\[0\]\.exceptIfSenderADAttributeContainsWords.*rule "x": exceptIfSenderADAttributeContainsWords reads Department of directory objects, and there is no directory section/s, null);
    const r = compile({ transportRules: [{ name: 'x', prependSubject: 'x', senderADAttributeContainsWords: ['CustomAttribute7:x', 'Department:Sales'] }], directory: { ...DIRECTORY, preset: 'openLDAP' } }, CONNECTORS, { LDAP_PW: 'secret' });
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && r.errors, [{ file: 'gateway.yaml', path: 'transportRules[0].senderADAttributeContainsWords', message: 'rule "x": the openLDAP schema has no attribute for CustomAttribute7, so this condition could never match' }]);
  });
});

describe('explain and directory attribute conditions', () => {
  it('says which addresses it did not ask the directory about, and takes the conditions as not met', () => {
    const r = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }], directory: DIRECTORY, transportRules: [{ name: 'Sales', recipientADAttributeContainsWords: ['Department:Sales'], prependSubject: '[Sales] ' }] }, CONNECTORS, { LDAP_PW: 'secret' });
    assert.ok(r.ok);
    const rules = explain(r.policy, { binding: '127.0.0.1:25', clientIP: '192.0.2.1', mailFrom: 'x@remote.test', rcpt: ['carol@contoso.test'], data: { headers: ['Subject: hi'] } }).stages.find((x) => x.stage === 'rules')!;
    assert.equal(rules.reasonCode, 'no-transport-rule');
    assert.equal(rules.reason, 'no transport rule matched; directory attribute and manager conditions (…ADAttribute…, manager…) taken as not met: explain does not ask the directory for the attributes of carol@contoso.test');
  });
});

describe('manager conditions (managerAddresses + managerForEvaluatedUser, senderManagementRelationship)', () => {
  const BOB = 'CN=Bob Jones,OU=People,DC=contoso,DC=test';
  const ANN = 'cn=Ann Lee,ou=People,dc=contoso,dc=test';
  const judge = setup([
    { name: 'Bob manages the sender', managerAddresses: ['bob@contoso.test'], managerForEvaluatedUser: 'Sender', setHeaderName: 'X-A', setHeaderValue: '1' },
    { name: 'Bob manages a recipient', managerAddresses: ['bob@contoso.test'], managerForEvaluatedUser: 'Recipient', setHeaderName: 'X-B', setHeaderValue: '1' },
    { name: 'Up', senderManagementRelationship: 'DirectReport', setHeaderName: 'X-C', setHeaderValue: '1' },
    { name: 'Down', senderManagementRelationship: 'Manager', setHeaderName: 'X-D', setHeaderValue: '1' },
  ]);
  const known = new Map<string, AdAttributesAnswer>([
    ['bob@contoso.test', { kind: 'found', values: {}, dn: BOB, managerDn: null }],
    // ann's manager attribute names bob's entry, in another case and spacing.
    ['ann@contoso.test', { kind: 'found', values: {}, dn: ANN, managerDn: 'cn=bob jones, ou=people, dc=contoso, dc=test' }],
    ['cy@contoso.test', { kind: 'found', values: {}, dn: 'cn=Cy,dc=contoso,dc=test', managerDn: ANN }],
    ['partner@fabrikam.example', { kind: 'not-found' }],
  ]);
  const rules = (from: string, to: string[]) => judge({ from, to, known }).matched.map((m) => m.rule);

  it('by the DNs: whose manager, and who manages whom, either way', () => {
    assert.deepEqual(rules('ann@contoso.test', ['partner@fabrikam.example']), ['Bob manages the sender']);
    assert.deepEqual(rules('ann@contoso.test', ['bob@contoso.test']), ['Bob manages the sender', 'Up'], 'to her manager');
    assert.deepEqual(rules('bob@contoso.test', ['ann@contoso.test']), ['Bob manages a recipient', 'Down'], 'to his report');
    assert.deepEqual(rules('cy@contoso.test', ['ann@contoso.test']), ['Bob manages a recipient', 'Up'], "cy's manager is ann (whose manager is bob)");
    assert.deepEqual(rules('partner@fabrikam.example', ['cy@contoso.test']), [], 'no object: nothing');
  });

  it('unanswered: the sender, the recipients and the manager addresses are asked about', () => {
    const r = judge({ from: 'ann@contoso.test', to: ['cy@contoso.test'] });
    assert.deepEqual([...(r.unansweredAttributes ?? [])].sort(), ['ann@contoso.test', 'bob@contoso.test', 'cy@contoso.test']);
  });

  it('config: managerAddresses and managerForEvaluatedUser go together; the values are Exchange\'s', () => {
    assert.throws(() => setup([{ name: 'x', managerAddresses: ['bob@contoso.test'], prependSubject: 'x' }]), /transportRules\[0\]\.managerForEvaluatedUser.*managerAddresses and managerForEvaluatedUser go together/s);
    assert.throws(() => setup([{ name: 'x', exceptIfManagerForEvaluatedUser: 'Sender', prependSubject: 'x' }]), /transportRules\[0\]\.exceptIfManagerAddresses.*exceptIfManagerAddresses and exceptIfManagerForEvaluatedUser go together/s);
    assert.throws(() => setup([{ name: 'x', senderManagementRelationship: 'Boss', prependSubject: 'x' }]), /transportRules\[0\]\.senderManagementRelationship/);
    assert.throws(() => compile({ transportRules: [{ name: 'x', senderManagementRelationship: 'Manager', prependSubject: 'x' }] }, CONNECTORS), /transportRules\[0\]\.senderManagementRelationship.*rule "x": senderManagementRelationship reads who manages whom from the directory, and there is no directory section/s);
  });
});
