// Transport rules on directory attributes (Exchange's -SenderADAttributeContainsWords,
// -SenderADAttributeMatchesPatterns, -RecipientADAttributeContainsWords and their exceptions) end
// to end: real SMTP into a listener with the rules as its content filter, a real slapd (the
// AD-shaped fixture: alice's department Research, title 'Head of "R&D" <Labs>', company Contoso
// Ltd, manager Bob Jones) and a real Redis. Whole words, not parts; a pattern; a recipient's
// manager by name; the manager conditions (managerAddresses, senderManagementRelationship) by DN;
// an exception; a sender outside the directory meets nothing; an attribute
// changed in the directory counts for an address not asked about before; the directory down: 451
// for a message that needs it, a message whose addresses are cached is taken.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BASE_DN, slapdSkip } from '../harness/slapd.js';
import { startRulesGateway, type RulesGateway } from './helpers/rules-gateway.js';

const skip = slapdSkip();

const RULES = [
  // Whole words: "Research" and "Legal" match, "Search" would not.
  { name: 'Departments', senderADAttributeContainsWords: ['Department:Legal,Research'], sentToScope: 'NotInOrganization', setHeaderName: 'X-Department-Rule', setHeaderValue: 'yes' },
  { name: 'Not a word', senderADAttributeContainsWords: ['department:Search'], sentToScope: 'NotInOrganization', setHeaderName: 'X-Part-Of-A-Word', setHeaderValue: 'yes' },
  // A pattern on the title; the exception reads another attribute of the same object.
  { name: 'Heads', senderADAttributeMatchesPatterns: ['Title:^Head of\\b'], exceptIfSenderADAttributeContainsWords: ['Company:Fabrikam'], sentToScope: 'NotInOrganization', setHeaderName: 'X-Head', setHeaderValue: 'yes' },
  { name: 'Heads elsewhere', senderADAttributeMatchesPatterns: ['Title:^Head of\\b'], exceptIfSenderADAttributeContainsWords: ['Company:Contoso'], sentToScope: 'NotInOrganization', setHeaderName: 'X-Head-Elsewhere', setHeaderValue: 'yes' },
  // Inbound: a recipient whose manager is Bob Jones (Manager is read as the manager's name).
  { name: "Bob's team", recipientADAttributeContainsWords: ['Manager:Bob Jones'], fromScope: 'NotInOrganization', prependSubject: '[Team Bob] ' },
  // The manager conditions compare DNs: alice's manager attribute names bob's entry.
  { name: 'Managed by Bob', managerAddresses: ['bob@contoso.test'], managerForEvaluatedUser: 'Sender', sentToScope: 'NotInOrganization', setHeaderName: 'X-Managed-By-Bob', setHeaderValue: 'yes' },
  { name: 'To my manager', senderManagementRelationship: 'DirectReport', setHeaderName: 'X-To-Manager', setHeaderValue: 'yes' },
  { name: 'To my report', senderManagementRelationship: 'Manager', setHeaderName: 'X-To-Report', setHeaderValue: 'yes' },
];

let t: RulesGateway;

before(async () => {
  if (!skip) t = await startRulesGateway(RULES);
});
after(async () => {
  await t?.close();
});

const send = (port: number, from: string, to: string, subject?: string) => t.send(port, from, to, subject);
const out = (from: string) => t.out(from);

describe('transport rules on directory attributes', { skip }, () => {
  it("senderADAttributeContainsWords: alice's department Research matches as a whole word, not as a part of one; carol (no department) and a stranger do not", async () => {
    const alice = await out('alice@contoso.test');
    assert.match(alice.header!, /\r\nX-Department-Rule: yes(\r\n|$)/);
    assert.doesNotMatch(alice.header!, /X-Part-Of-A-Word/, '"Search" is in "Research", not a word of it');
    const carol = await out('carol@contoso.test');
    assert.match(carol.end, /^250 /);
    assert.doesNotMatch(carol.header!, /X-Department-Rule|X-Head/);
    const stranger = await out('nobody@contoso.test');
    assert.match(stranger.end, /^250 /);
    assert.doesNotMatch(stranger.header!, /X-Department-Rule|X-Head/);
  });

  it('senderADAttributeMatchesPatterns on the title, and an exception on the company of the same object', async () => {
    const alice = await out('a.smith@contoso.test');
    assert.match(alice.header!, /\r\nX-Head: yes(\r\n|$)/, 'her alias is her object');
    assert.doesNotMatch(alice.header!, /X-Head-Elsewhere/, 'the exception on Company: Contoso spares her');
  });

  it("recipientADAttributeContainsWords: mail from outside to a recipient whose manager is Bob Jones; another recipient's is untouched", async () => {
    const toAlice = await send(t.internetPort, 'buyer@fabrikam.example', 'alice@contoso.test', 'Offer');
    assert.match(toAlice.header!, /\r\nSubject: \[Team Bob\] Offer(\r\n|$)/);
    const toBob = await send(t.internetPort, 'buyer@fabrikam.example', 'bob@contoso.test', 'Offer');
    assert.match(toBob.header!, /\r\nSubject: Offer(\r\n|$)/);
  });

  it('managerAddresses with managerForEvaluatedUser, and senderManagementRelationship both ways, by the DNs the manager attribute holds', async () => {
    const alice = await out('alice@contoso.test');
    assert.match(alice.header!, /\r\nX-Managed-By-Bob: yes(\r\n|$)/);
    const carol = await out('carol@contoso.test');
    assert.doesNotMatch(carol.header!, /X-Managed-By-Bob/, 'carol has no manager');
    const up = await send(t.exchangePort, 'alice@contoso.test', 'bob@contoso.test', 'Report');
    assert.match(up.header!, /\r\nX-To-Manager: yes(\r\n|$)/);
    assert.doesNotMatch(up.header!, /X-To-Report/);
    const down = await send(t.exchangePort, 'bob@contoso.test', 'a.smith@contoso.test', 'Feedback');
    assert.match(down.header!, /\r\nX-To-Report: yes(\r\n|$)/);
    assert.doesNotMatch(down.header!, /X-To-Manager/);
    const sideways = await send(t.exchangePort, 'carol@contoso.test', 'alice@contoso.test', 'Hi');
    assert.doesNotMatch(sideways.header!, /X-To-Manager|X-To-Report/);
  });

  it('an attribute set in the directory counts for an address not asked about before', async () => {
    t.ldap.modify([`dn: cn=Erin Black,ou=People,${BASE_DN}`, 'changetype: modify', 'replace: department', 'department: Legal', ''].join('\n'));
    const erin = await out('erin@contoso.test');
    assert.match(erin.header!, /\r\nX-Department-Rule: yes(\r\n|$)/);
  });

  it('directory down: a message that needs an attribute gets 451 and is not stored; one answered from the cache is taken', async () => {
    await t.ldap.stop();
    try {
      const before = await t.gw.stored();
      // Inbound to partner-list@ (a contact): "Bob's team" needs its manager: asked, no answer.
      const needs = await send(t.internetPort, 'buyer@fabrikam.example', 'partner-list@contoso.test', 'Hi');
      assert.equal(needs.end, '451 4.7.1 Message deferred by content filtering, please try again later');
      assert.ok(t.gw.logs.some((l) => l.filter === 'transport-rules' && /the directory did not answer with the attributes of partner-list@contoso\.test/.test(String(l.reason))), 'the log names the address');
      // Internal mail between addresses asked about before: answered from the process's cache, taken.
      const internal = await send(t.exchangePort, 'bob@contoso.test', 'carol@contoso.test', 'Lunch');
      assert.match(internal.end, /^250 /);
      // An address never asked about: the manager rules need it, so it waits.
      const fresh = await send(t.exchangePort, 'bob@contoso.test', 'dave@contoso.test', 'Lunch');
      assert.equal(fresh.end, '451 4.7.1 Message deferred by content filtering, please try again later');
      assert.equal((await t.gw.stored()).jobs, before.jobs + 1, 'only the message answered from the cache was stored');
    } finally {
      await t.ldap.start();
    }
  });
});
