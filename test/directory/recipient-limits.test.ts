// A recipient's and a sender's own limits from the directory, end to end (in-process listeners,
// real Redis, real slapd): Exchange's MaxReceiveSize (AD's delivContLength) against SIZE= at RCPT
// and the message at the end of DATA, MaxSendSize (submissionContLength) and RecipientLimits
// (msExchRecipLimit) after AUTH; and Exchange's message delivery restrictions (AD's authOrig,
// dLMemSubmitPerms, unauthOrig and dLMemRejectPerms): a group that
// takes mail only from listed senders and members of a listed group, a members-only group, a
// mailbox that refuses a sender and a group's members; the sender judged by MAIL FROM's
// directory object and its nested groups, from the Internet and from the Exchange servers
// behind; the restrictions kept in the shared recipient cache; the sender's lookup failing is
// 451, never a verdict.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeRecipientEntry, encodeRecipientEntry } from '@mailgw/directory';
import { Redis } from 'ioredis';
import { receiveTracker } from '@mailgw/ops';
import { keySpace, readState, type TrackingEvent } from '@mailgw/queue';
import type { TestRedis } from '../harness/redis.js';
import { BASE_DN, FIXTURE_PASSWORD, slapdSkip, type TestSlapd } from '../harness/slapd.js';
import type { TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { messageOf, startLimitsGateway, type LimitsGateway } from './helpers/limits-gateway.js';

const skip = slapdSkip();
const RCPT_OK = '250 2.1.5 Recipient OK';
const NOT_AUTHORIZED = '550 5.7.1 RESOLVER.RST.NotAuthorized; not authorized';
const DIR_DOWN = '451 4.4.3 Directory lookup failed, please try again later';
const TOO_LARGE = '552 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient';
const MESSAGE = 'Subject: restricted\r\n\r\nhello\r\n';

/** The message tracking log's events, as the listener's tracker writes them. */
const tracked: TrackingEvent[] = [];
let ldap: TestSlapd;
let redis: TestRedis;
let gw: TestGateway;
let port: number;
/** The People connector: AUTH with a directory login. */
let submitPort: number;

let g: LimitsGateway;

before(async () => {
  if (skip) return;
  g = await startLimitsGateway({ observer: receiveTracker({ write: (e) => void tracked.push(e), close: async () => undefined }) });
  ({ ldap, redis, gw, port, submitPort } = g);
});

after(async () => {
  await g?.close();
});

async function rcpts(client: string, from: string, to: string[]): Promise<string[]> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: client });
  await c.ehlo();
  assert.match((await c.cmd(`MAIL FROM:<${from}>`)).last, /^250 /, from);
  const replies: string[] = [];
  for (const t of to) replies.push((await c.cmd(`RCPT TO:<${t}>`)).last);
  await c.quit();
  return replies;
}

describe('delivery restrictions (authOrig, dLMemSubmitPerms, unauthOrig, dLMemRejectPerms)', { skip }, () => {
  it('Board takes mail only from alice, the Partner List contact and members of Sales: everyone else, the Internet and the null sender get 550 5.7.1 RESOLVER.RST.NotAuthorized', async () => {
    const exchange = '127.0.0.30';
    assert.deepEqual(await rcpts(exchange, 'alice@contoso.test', ['board@contoso.test']), [RCPT_OK], 'listed');
    assert.deepEqual(await rcpts(exchange, 'a.smith@contoso.test', ['board@contoso.test']), [RCPT_OK], "by another of alice's addresses: the same object");
    assert.deepEqual(await rcpts(exchange, 'carol@contoso.test', ['board@contoso.test']), [RCPT_OK], 'a member of Sales');
    assert.deepEqual(await rcpts(exchange, 'partner-list@contoso.test', ['board@contoso.test']), [RCPT_OK], 'a listed contact');
    assert.deepEqual(await rcpts(exchange, 'bob@contoso.test', ['board@contoso.test']), [NOT_AUTHORIZED], 'in the directory, in no list');
    assert.deepEqual(await rcpts(exchange, '', ['board@contoso.test']), [NOT_AUTHORIZED], 'the null sender');
    assert.deepEqual(await rcpts('127.0.0.9', 'someone@fabrikam.test', ['board@contoso.test', 'alice@contoso.test']), [NOT_AUTHORIZED, RCPT_OK], 'from the Internet; an unrestricted mailbox beside it is accepted');
    const refusal = gw.logs.find((l) => l.reason === 'recipient-restricted' && /fabrikam/.test(String(l.why)));
    assert.ok(refusal, 'the refusal is logged with its reason');
    assert.match(String(refusal.why), /^board@contoso\.test does not take mail from this sender \(Exchange's message delivery restrictions on its directory object\): someone@fabrikam\.test \(no directory object\) is not in its AcceptMessagesOnlyFrom \(2\) nor its AcceptMessagesOnlyFromDLMembers \(Sales\)$/);
  });

  it('Project X takes mail only from its own members and members of Relay Users, nested ones included', async () => {
    assert.deepEqual(await rcpts('127.0.0.30', 'henry@contoso.test', ['projectx@contoso.test']), [RCPT_OK], 'its own member');
    assert.deepEqual(await rcpts('127.0.0.30', 'alice@contoso.test', ['projectx@contoso.test']), [RCPT_OK], 'in Helpdesk, which is in Relay Users');
    assert.deepEqual(await rcpts('127.0.0.30', 'carol@contoso.test', ['projectx@contoso.test']), [NOT_AUTHORIZED]);
    assert.deepEqual(await rcpts('127.0.0.30', 'erin@contoso.test', ['projectx@contoso.test']), [NOT_AUTHORIZED], 'only in her primary group');
  });

  it('henry refuses bob and members of Deny Relay, and takes mail from everyone else, the Internet and the null sender included', async () => {
    assert.deepEqual(await rcpts('127.0.0.30', 'bob@contoso.test', ['henry@contoso.test']), [NOT_AUTHORIZED]);
    assert.deepEqual(await rcpts('127.0.0.30', 'carol@contoso.test', ['henry@contoso.test']), [NOT_AUTHORIZED], 'a member of Deny Relay');
    assert.deepEqual(await rcpts('127.0.0.30', 'alice@contoso.test', ['henry@contoso.test']), [RCPT_OK]);
    assert.deepEqual(await rcpts('127.0.0.30', '', ['henry@contoso.test']), [RCPT_OK]);
    assert.deepEqual(await rcpts('127.0.0.9', 'someone@fabrikam.test', ['henry@contoso.test']), [RCPT_OK]);
  });

  it('a message to allowed and restricted recipients is queued for the allowed ones only', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.30' });
    await c.ehlo();
    const before = (await gw.stored()).jobs;
    const t = await c.transaction('carol@contoso.test', ['board@contoso.test', 'projectx@contoso.test', 'henry@contoso.test', 'alice@contoso.test'], MESSAGE);
    assert.deepEqual(t.rcpt.map((r) => r.last), [RCPT_OK, NOT_AUTHORIZED, NOT_AUTHORIZED, RCPT_OK]);
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    await c.quit();
    assert.equal((await gw.stored()).jobs, before + 1);
    const job = await gw.job(queueIdOf(t.end!));
    assert.deepEqual(job?.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['board@contoso.test', 'alice@contoso.test']);
  });

  it('the restrictions are kept with the recipient in the shared cache, and judged again from it', async () => {
    const key = keySpace('{mailgw}').directoryRecipient('board@contoso.test');
    const peek = new Redis(redis.url);
    after(() => peek.disconnect());
    const raw = await peek.get(key);
    assert.ok(raw, 'board@contoso.test is cached');
    assert.deepEqual(JSON.parse(raw), {
      a: false,
      r: {
        acceptMessagesOnlyFrom: [`cn=Alice Smith,ou=People,${BASE_DN}`, `cn=Partner List,ou=Contacts,${BASE_DN}`],
        acceptMessagesOnlyFromDLMembers: [`cn=Sales,ou=Groups,${BASE_DN}`],
        rejectMessagesFrom: [],
        rejectMessagesFromDLMembers: [],
      },
    });
    // Changed in the directory: the cached entry still decides until it expires (cacheTtl), as for existence.
    ldap.modify(`dn: cn=Board,ou=Groups,${BASE_DN}\nchangetype: modify\nadd: authOrig\nauthOrig: cn=Bob Jones,ou=People,${BASE_DN}\n`);
    assert.deepEqual(await rcpts('127.0.0.30', 'bob@contoso.test', ['board@contoso.test']), [NOT_AUTHORIZED]);
    await peek.del(key);
    assert.deepEqual(await rcpts('127.0.0.30', 'bob@contoso.test', ['board@contoso.test']), [RCPT_OK], 'read again once the cache entry is gone');
    ldap.modify(`dn: cn=Board,ou=Groups,${BASE_DN}\nchangetype: modify\ndelete: authOrig\nauthOrig: cn=Bob Jones,ou=People,${BASE_DN}\n`);
    await peek.del(key);
  });

  it('the sender cannot be looked up (directory down, recipient cached): 451 4.4.3, never a verdict', async () => {
    assert.deepEqual(await rcpts('127.0.0.30', 'alice@contoso.test', ['board@contoso.test']), [RCPT_OK], 'board is in the cache');
    await ldap.stop();
    try {
      // gina's groups were never asked: the directory must answer, and cannot.
      assert.deepEqual(await rcpts('127.0.0.30', 'gina@contoso.test', ['board@contoso.test', 'henry@contoso.test']), [DIR_DOWN, DIR_DOWN]);
      const down = gw.logs.find((l) => l.reason === 'directory-unavailable' && /sender gina@contoso\.test/.test(String(l.why)));
      assert.ok(down, 'logged with the sender it could not look up');
    } finally {
      await ldap.start();
    }
    assert.deepEqual(await rcpts('127.0.0.30', 'gina@contoso.test', ['board@contoso.test']), [NOT_AUTHORIZED], 'judged once the directory answers');
  });
});

/** A message of about `kb` KB (header, then lines of 76 'x'). */
describe("recipients' own size limits (MaxReceiveSize: delivContLength)", { skip }, () => {
  async function send(from: string, to: string[], kb: number, mailParams?: string) {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.30' });
    await c.ehlo();
    const before = (await gw.stored()).jobs;
    const t = await c.transaction(from, to, messageOf(kb), mailParams ? { mailParams } : {});
    await c.quit();
    return { t, stored: (await gw.stored()).jobs - before };
  }

  it('SIZE= over a recipient\'s limit: 552 5.2.3 RESOLVER.RST.RecipSizeLimit for that recipient only; within it, or no limit (absent, 0), 250', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.30' });
    await c.ehlo();
    assert.match((await c.cmd('MAIL FROM:<alice@contoso.test> SIZE=15000')).last, /^250 /);
    const replies = [];
    for (const to of ['ivy@contoso.test', 'jack@contoso.test', 'kim@contoso.test', 'alice@contoso.test']) replies.push((await c.cmd(`RCPT TO:<${to}>`)).last);
    assert.deepEqual(replies, [TOO_LARGE, RCPT_OK, RCPT_OK, RCPT_OK], 'ivy takes 10 KB (10,240 bytes), jack 20 KB, kim and alice no limit');
    await c.cmd('RSET');
    assert.match((await c.cmd('MAIL FROM:<alice@contoso.test> SIZE=10240')).last, /^250 /);
    assert.equal((await c.cmd('RCPT TO:<ivy@contoso.test>')).last, RCPT_OK, 'exactly the limit');
    await c.quit();
    const refusal = gw.logs.find((l) => l.reason === 'recipient-size-limit');
    assert.ok(refusal);
    assert.equal(refusal.why, "SIZE=15000 exceeds the 10240-byte limit of ivy@contoso.test (its directory object's MaxReceiveSize)");
  });

  it('no SIZE=: a message larger than every recipient\'s limit is refused at the end of DATA (552 5.2.3, nothing stored); one a recipient without a limit, or with a larger one, takes is accepted for all', async () => {
    const over = await send('alice@contoso.test', ['ivy@contoso.test', 'jack@contoso.test'], 25);
    assert.deepEqual(over.t.rcpt.map((r) => r.last), [RCPT_OK, RCPT_OK]);
    assert.equal(over.t.end?.last, TOO_LARGE);
    assert.equal(over.stored, 0, 'nothing stored');
    const line = gw.logs.find((l) => l.reason === 'recipient-size-limit' && /every recipient/.test(String(l.why)));
    assert.match(String(line?.why), /^message of \d+ bytes \(so far\) exceeds the limit of every recipient \(the largest, 20480 bytes: their directory objects' MaxReceiveSize\)$/);

    // Within jack's limit, not ivy's: accepted (SMTP cannot refuse it for one recipient after
    // DATA), failed for ivy from the start, as Exchange's categorizer does: her DSN comes with the
    // first attempt (test/worker/delivery.test.ts), jack's copy is delivered.
    const mixed = await send('alice@contoso.test', ['ivy@contoso.test', 'jack@contoso.test'], 15);
    assert.match(mixed.t.end!.last, /^250 2\.6\.0 /);
    assert.equal(mixed.stored, 1);
    const id = queueIdOf(mixed.t.end!);
    const job = await gw.job(id);
    assert.deepEqual(job?.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['ivy@contoso.test', 'jack@contoso.test']);
    const peek = new Redis(redis.url);
    const state = readState(JSON.parse((await peek.hget(keySpace('{mailgw}').job(id), 'progress'))!), job!.data);
    peek.disconnect();
    assert.deepEqual(state.recipients.map((r) => [r.status, r.reply && `${r.reply.code} ${r.reply.enhanced} ${r.reply.text}`]), [['failed', TOO_LARGE], ['pending', null]]);
    const failedLine = gw.logs.find((l) => l.msg === 'recipient failed at intake' && l.queueId === id);
    assert.equal(failedLine?.rcpt, 'ivy@contoso.test');
    assert.match(String(failedLine?.why), /^message of \d+ bytes exceeds the 10240-byte limit of ivy@contoso\.test \(its directory object's MaxReceiveSize\)$/);
    // The tracking log: RECEIVE and SUBMIT for both, then FAIL from ROUTING for ivy (as Exchange's categorizer).
    const events = tracked.filter((e) => e.internalMessageId === id);
    assert.deepEqual(events.map((e) => [e.eventId, e.source, e.recipientAddress, e.recipientStatus]), [
      ['RECEIVE', 'SMTP', ['ivy@contoso.test', 'jack@contoso.test'], undefined],
      ['SUBMIT', 'QUEUE', ['ivy@contoso.test', 'jack@contoso.test'], undefined],
      ['FAIL', 'ROUTING', ['ivy@contoso.test'], [TOO_LARGE]],
    ]);
    // A recipient without a limit of its own (kim's 0, alice's none) takes anything the connector does.
    for (const other of ['kim@contoso.test', 'alice@contoso.test']) {
      const unlimited = await send('alice@contoso.test', ['ivy@contoso.test', other], 25);
      assert.match(unlimited.t.end!.last, /^250 2\.6\.0 /, other);
      assert.equal(unlimited.stored, 1);
      assert.ok(gw.logs.some((l) => l.msg === 'recipient failed at intake' && l.queueId === queueIdOf(unlimited.t.end!) && l.rcpt === 'ivy@contoso.test'), `ivy failed, ${other} not`);
    }
    // The same for a recipient refused at RCPT: it does not count.
    const refusedOne = await send('alice@contoso.test', ['ivy@contoso.test', 'nobody@contoso.test'], 25);
    assert.deepEqual(refusedOne.t.rcpt.map((r) => r.last), [RCPT_OK, '550 5.1.1 User unknown']);
    assert.equal(refusedOne.t.end?.last, TOO_LARGE);
  });

  it('the limit is kept in the shared cache with the lookup', async () => {
    const peek = new Redis(redis.url);
    after(() => peek.disconnect());
    assert.deepEqual(JSON.parse((await peek.get(keySpace('{mailgw}').directoryRecipient('ivy@contoso.test')))!), { a: false, m: 10240 });
    assert.equal(await peek.get(keySpace('{mailgw}').directoryRecipient('kim@contoso.test')), '1', 'no limit: the short form');
  });
});

describe("a directory user's own limits (MaxSendSize: submissionContLength; RecipientLimits: msExchRecipLimit)", { skip }, () => {
  async function logon(login: string): Promise<RawSmtp> {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: submitPort, localAddress: '127.0.0.9' });
    await c.ehlo();
    assert.equal((await c.authPlain(login, FIXTURE_PASSWORD)).last, '235 2.7.0 Authentication successful');
    return c;
  }
  const SEND_TOO_LARGE = '552 5.2.3 RESOLVER.RST.SendSizeLimit.Sender; message too large for this sender';

  it('after AUTH as henry (10 KB): SIZE= over it is refused at MAIL, a larger message at the end of DATA (nothing stored); within it, and for alice (no limit), accepted', async () => {
    const c = await logon('henry@contoso.test');
    assert.equal((await c.cmd('MAIL FROM:<henry@contoso.test> SIZE=20000')).last, SEND_TOO_LARGE);
    const before = (await gw.stored()).jobs;
    const big = await c.transaction('henry@contoso.test', ['partner@fabrikam.test'], messageOf(15));
    assert.equal(big.rcpt[0]!.last, RCPT_OK);
    assert.equal(big.end?.last, SEND_TOO_LARGE);
    assert.equal((await gw.stored()).jobs, before, 'nothing stored');
    const small = await c.transaction('henry@contoso.test', ['partner@fabrikam.test'], messageOf(5));
    assert.match(small.end!.last, /^250 2\.6\.0 /);
    await c.quit();
    const line = gw.logs.find((l) => l.reason === 'sender-size-limit' && /SIZE=20000/.test(String(l.why)));
    assert.equal(line?.why, 'SIZE=20000 exceeds the 10240-byte limit of directory user henry@contoso.test (its MaxSendSize)');

    // RecipientLimits 2 (msExchRecipLimit): the third RCPT gets 452 4.5.3, as past the connector's limit.
    const r = await logon('henry@contoso.test');
    assert.match((await r.cmd('MAIL FROM:<henry@contoso.test>')).last, /^250 /);
    const replies: string[] = [];
    for (const to of ['a@fabrikam.test', 'b@fabrikam.test', 'a@fabrikam.test', 'c@fabrikam.test']) replies.push((await r.cmd(`RCPT TO:<${to}>`)).last);
    assert.deepEqual(replies, [RCPT_OK, RCPT_OK, RCPT_OK, '452 4.5.3 Too many recipients'], 'a repeat is answered again and not counted');
    await r.quit();
    assert.equal(gw.logs.find((l) => l.reason === 'too-many-recipients-user')?.why, '2 different recipients accepted: the RecipientLimits of directory user henry@contoso.test (2) reached');

    const a = await logon('alice@contoso.test');
    const t = await a.transaction('alice@contoso.test', ['partner@fabrikam.test'], messageOf(15), { mailParams: 'SIZE=20000' });
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    await a.quit();
  });
});

describe('the recipient cache value', () => {
  const lists = { acceptMessagesOnlyFrom: ['cn=A'], acceptMessagesOnlyFromDLMembers: [], rejectMessagesFrom: [], rejectMessagesFromDLMembers: ['cn=G'] };
  it('one character without restrictions (as older versions wrote), JSON with them; both round-trip', () => {
    assert.equal(encodeRecipientEntry({ answer: 'found', restrictions: null }), '1');
    assert.equal(encodeRecipientEntry({ answer: 'found-auth-required', restrictions: null }), 'a');
    assert.equal(encodeRecipientEntry({ answer: 'not-found', restrictions: null }), '0');
    assert.equal(encodeRecipientEntry({ answer: 'unavailable', restrictions: null }), null, 'an outage is never cached');
    assert.equal(encodeRecipientEntry({ answer: 'found', restrictions: null, maxReceiveSize: 10240 }), '{"a":false,"m":10240}');
    assert.equal(encodeRecipientEntry({ answer: 'not-found', restrictions: null, maxReceiveSize: 10240 }), '0');
    for (const e of [{ answer: 'found', restrictions: lists }, { answer: 'found-auth-required', restrictions: lists }, { answer: 'found', restrictions: null }, { answer: 'not-found', restrictions: null }, { answer: 'found', restrictions: null, maxReceiveSize: 2048 }, { answer: 'found-auth-required', restrictions: lists, maxReceiveSize: 1024 }] as const) {
      assert.deepEqual(decodeRecipientEntry(encodeRecipientEntry(e)!), e);
    }
  });
  it('a value it does not know is a miss (asked again), never an answer', () => {
    for (const v of ['', '2', 'found', '{', '{}', '{"a":true}', '{"a":"yes","r":{}}', '{"a":false,"r":{"acceptMessagesOnlyFrom":["x"]}}', '{"a":false,"r":{"acceptMessagesOnlyFrom":[1],"acceptMessagesOnlyFromDLMembers":[],"rejectMessagesFrom":[],"rejectMessagesFromDLMembers":[]}}', 'null', '[]', '{"a":false,"m":0}', '{"a":false,"m":-5}', '{"a":false,"m":"10"}', '{"a":false,"m":1.5}']) {
      assert.equal(decodeRecipientEntry(v), null, v);
    }
  });
});
