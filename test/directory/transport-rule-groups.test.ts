// Transport rules on directory groups (Exchange's -FromMemberOf and -SentToMemberOf) end to end:
// real SMTP into a listener with the rules as its content filter, a real slapd (AD-shaped: nested
// groups through memberOf, the primary group through objectSid) and a real Redis. A group is named
// by its name, DN or address; a recipient may be the group itself; an exception spares members
// of another group. The directory is asked only when a rule's other conditions hold: while it is
// down, a message no group condition needs is taken, one that needs it gets 451 (nothing stored,
// never judged by a guess), and an address asked about before is answered from the cache.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BASE_DN, slapdSkip } from '../harness/slapd.js';
import { startRulesGateway, type RulesGateway } from './helpers/rules-gateway.js';

const skip = slapdSkip();

const RULES = [
  // alice is in Helpdesk, which is in Relay Users: a member through a nested group.
  { name: 'Relay Users out', fromMemberOf: ['Relay Users'], sentToScope: 'NotInOrganization', setHeaderName: 'X-Relay-Member', setHeaderValue: 'yes' },
  // carol is in Sales; sales@ is the group itself.
  { name: 'Sales quotes', fromScope: 'NotInOrganization', subjectContainsWords: ['quote'], sentToMemberOf: ['sales@contoso.test'], prependSubject: '[Sales] ' },
  // erin is in All Staff through her primary group (Domain Users); so is alice, whom Helpdesk spares.
  { name: 'Staff', fromMemberOf: [`CN=All Staff,OU=Groups,${BASE_DN.toUpperCase()}`], exceptIfFromMemberOf: ['Helpdesk'], sentToScope: 'NotInOrganization', setHeaderName: 'X-Staff', setHeaderValue: 'yes' },
  // An ethical wall between Helpdesk (alice, bob) and Sales (carol), both ways, inside the organisation.
  { name: 'Wall', betweenMemberOf1: ['Helpdesk'], betweenMemberOf2: ['sales@contoso.test'], smtpRejectMessageRejectText: 'Helpdesk and Sales may not correspond' },
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

describe('transport rules on directory groups', { skip }, () => {
  it('fromMemberOf by name follows nested groups: alice (Helpdesk, in Relay Users) matches, carol does not', async () => {
    const alice = await out('alice@contoso.test');
    assert.match(alice.header!, /\r\nX-Relay-Member: yes(\r\n|$)/);
    const carol = await out('carol@contoso.test');
    assert.match(carol.end, /^250 /);
    assert.doesNotMatch(carol.header!, /X-Relay-Member/);
  });

  it('fromMemberOf by DN (any case) reaches the primary group; exceptIfFromMemberOf spares Helpdesk', async () => {
    const erin = await out('erin@contoso.test');
    assert.match(erin.header!, /\r\nX-Staff: yes(\r\n|$)/, 'erin: Domain Users (her primary group) is in All Staff');
    const alice = await out('a.smith@contoso.test');
    assert.doesNotMatch(alice.header!, /X-Staff/, 'alice is in All Staff too, and in Helpdesk');
    assert.match(alice.header!, /X-Relay-Member: yes/, 'her alias is her object: the same groups');
  });

  it('sentToMemberOf by address: a member and the group itself match; another recipient and a sender outside the directory do not', async () => {
    const toCarol = await send(t.internetPort, 'buyer@fabrikam.example', 'carol@contoso.test', 'Your quote please');
    assert.match(toCarol.header!, /\r\nSubject: \[Sales\] Your quote please(\r\n|$)/);
    const toGroup = await send(t.internetPort, 'buyer@fabrikam.example', 'sales@contoso.test', 'Quote');
    assert.match(toGroup.header!, /\r\nSubject: \[Sales\] Quote(\r\n|$)/);
    const toAlice = await send(t.internetPort, 'buyer@fabrikam.example', 'alice@contoso.test', 'Quote');
    assert.match(toAlice.header!, /\r\nSubject: Quote(\r\n|$)/);
    const stranger = await out('nobody@contoso.test');
    assert.match(stranger.end, /^250 /);
    assert.doesNotMatch(stranger.header!, /X-Relay-Member|X-Staff/);
  });

  it('betweenMemberOf1/2: an ethical wall refuses mail between Helpdesk and Sales either way, and lets Helpdesk write to others', async () => {
    // (bob stays unasked: the outage test below needs an address the directory was never asked about.)
    const before = await t.gw.stored();
    const aliceToCarol = await send(t.exchangePort, 'alice@contoso.test', 'carol@contoso.test');
    assert.equal(aliceToCarol.end, '550 5.7.1 Helpdesk and Sales may not correspond');
    const carolToAlice = await send(t.exchangePort, 'carol@contoso.test', 'a.smith@contoso.test');
    assert.equal(carolToAlice.end, '550 5.7.1 Helpdesk and Sales may not correspond', 'the other way, by the same rule');
    const toTheGroup = await send(t.exchangePort, 'alice@contoso.test', 'sales@contoso.test');
    assert.equal(toTheGroup.end, '550 5.7.1 Helpdesk and Sales may not correspond', 'the group itself as the recipient');
    assert.equal((await t.gw.stored()).jobs, before.jobs, 'nothing stored');
    const aliceToErin = await send(t.exchangePort, 'alice@contoso.test', 'erin@contoso.test');
    assert.match(aliceToErin.end, /^250 /);
  });

  it('directory down: a message no group condition needs is taken, one that needs it gets 451 and is not stored, a cached address still answers', async () => {
    await t.ldap.stop();
    try {
      const before = await t.gw.stored();
      const inbound = await send(t.internetPort, 'buyer@fabrikam.example', 'bob@contoso.test', 'Hello');
      assert.match(inbound.end, /^250 /, 'no rule got as far as a group condition');
      const uncached = await out('bob@contoso.test');
      assert.equal(uncached.end, '451 4.7.1 Message deferred by content filtering, please try again later');
      assert.equal((await t.gw.stored()).jobs, before.jobs + 1, 'only the inbound message was stored');
      assert.ok(t.gw.logs.some((l) => l.filter === 'transport-rules' && /the directory did not answer which groups bob@contoso\.test is in/.test(String(l.reason))));
      const cached = await out('alice@contoso.test');
      assert.match(cached.header!, /\r\nX-Relay-Member: yes(\r\n|$)/, 'alice was looked up before: from the cache');
    } finally {
      await t.ldap.start();
    }
    const again = await out('bob@contoso.test');
    assert.match(again.header!, /\r\nX-Relay-Member: yes(\r\n|$)/, 'bob is in Helpdesk too, once the directory answers');
  });
});
