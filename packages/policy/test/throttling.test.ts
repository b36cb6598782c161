// throttlingPolicy.recipientRateLimit as decisions: only authenticated users are counted, a local
// user by name and a directory user by DN (whatever login form it used), by its own limit or the
// policy's; the count is judged against the limit; a counter that cannot be read never permits;
// `mailgw explain` counts the scenario's recipients on top of recentRecipients.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authComplete, authDirectory, connect, explain, formatReply, recipientRateLimit, recipientRateLimitKey, withTls, type Policy, type Session } from '../src/index.js';
import { HASH, policy } from './fixture.js';

const CLIENT = { name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'], authMechanism: ['Tls', 'BasicAuth'], tarpitInterval: 0 };
const p = policy(
  {
    throttlingPolicy: { recipientRateLimit: 500 },
    users: [
      { name: 'alice', passwordHash: HASH, addresses: ['alice@contoso.test'] },
      { name: 'News', passwordHash: HASH, addresses: ['news@contoso.test'], recipientRateLimit: 'unlimited' },
      { name: 'intern', passwordHash: HASH, addresses: ['intern@contoso.test'], recipientRateLimit: 5 },
    ],
  },
  [CLIENT],
);

function session(q: Policy, user: string | null): Session {
  const r = connect(q, { localAddress: '127.0.0.1', localPort: 587, clientIP: '10.0.0.1' });
  const s = withTls(r.session!);
  return user ? authComplete(q, s, user, true).session : s;
}

describe('recipientRateLimitKey', () => {
  it('authenticated users only; by name, or by DN for a directory user; the own limit wins', () => {
    assert.equal(recipientRateLimitKey(p, session(p, null)), null);
    assert.deepEqual(recipientRateLimitKey(p, session(p, 'ALICE')), { key: 'recipients|user:alice', limit: 500, from: 'throttlingPolicy' });
    assert.equal(recipientRateLimitKey(p, session(p, 'news')), null, 'its own limit is unlimited');
    assert.deepEqual(recipientRateLimitKey(p, session(p, 'intern')), { key: 'recipients|user:intern', limit: 5, from: 'user' });
    const d = authDirectory(session(p, null), { kind: 'ok', identity: { login: 'CONTOSO\\bob', dn: 'CN=Bob,OU=Staff,DC=contoso,DC=test', addresses: ['bob@contoso.test'], groups: [], groupSources: {} } } as never).session;
    assert.deepEqual(recipientRateLimitKey(p, d), { key: 'recipients|dn:cn=bob,ou=staff,dc=contoso,dc=test', limit: 500, from: 'throttlingPolicy' });
    const off = policy({ users: [{ name: 'alice', passwordHash: HASH }] }, [CLIENT]);
    assert.equal(recipientRateLimitKey(off, session(off, 'alice')), null, 'unlimited by default, as Exchange');
  });
});

describe('recipientRateLimit', () => {
  it('below the limit: accepted, saying the count; at it: 550 5.1.90; unreadable: 451', () => {
    const s = session(p, 'intern');
    const ok = recipientRateLimit(p, s, 3);
    assert.deepEqual([ok.verdict, ok.reason.code, ok.reason.message], ['accept', 'recipient-rate-ok', 'user intern: 4 of 5 recipients in 24 hours (its own limit)']);
    const no = recipientRateLimit(p, s, 5);
    assert.equal(formatReply(no.reply), "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients");
    assert.equal(no.reason.message, 'user intern addressed 5 recipients in the last 24 hours: its own recipientRateLimit 5 reached');
    const down = recipientRateLimit(p, s, null);
    assert.deepEqual([down.verdict, formatReply(down.reply), down.reason.code], ['defer', '451 4.3.0 Temporary server error, please try again later', 'recipient-rate-counter-unavailable']);
    assert.equal(recipientRateLimit(p, session(p, null), null).verdict, 'accept', 'nothing to count for an anonymous session');
  });

  it('mailgw explain counts the scenario\'s recipients on top of recentRecipients', () => {
    const rcpts = (recentRecipients: number) =>
      explain(p, { binding: '127.0.0.1:587', clientIP: '10.0.0.1', tls: true, auth: 'intern', mailFrom: 'intern@contoso.test', rcpt: ['a@example.org', 'b@example.org', 'a@example.org'], recentRecipients })
        .stages.filter((x) => x.stage === 'rcpt')
        .map((x) => x.reply.slice(0, 10));
    assert.deepEqual(rcpts(0), ['250 2.1.5 ', '250 2.1.5 ', '250 2.1.5 ']);
    assert.deepEqual(rcpts(4), ['250 2.1.5 ', '550 5.1.90', '250 2.1.5 '], 'the repeat is not counted again');
  });
});
