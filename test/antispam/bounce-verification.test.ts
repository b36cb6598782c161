// Bounce verification (BATV) over real SMTP into Redis: a bounce from the Internet to an untagged
// address of ours is refused at the end of DATA (550 5.7.1, the agent log says so; a read
// receipt or an automatic reply is not a bounce and is accepted), a bounce to a tagged one
// is accepted and queued for the address under the tag, as is mail that is not a bounce; the
// Exchange servers behind are not judged; Audit mode lets it through and says so. And the
// worker: a copy for outside leaves with its sender tagged, one for inside does not; the tag it
// writes is one the listener takes back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readBounceTag, taggedSender } from '@mailgw/policy';
import { parseEnvelopeAddress } from '@mailgw/mail';
import { tempAgentLog } from '../harness/agent-log.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { enqueue, mailbox, message, withoutDeliveryHeaders } from '../worker/helpers/gateway.js';
import { rigsPerTest } from '../worker/helpers/rig.js';

const KEY = 'a-bounce-verification-secret-for-tests';
const REFUSED = '550 5.7.1 Bounce rejected: not a reply to a message sent from this organization';
const EXCHANGE_IP = '127.0.0.30';
process.env.MAILGW_TEST_BATV_KEY = KEY;

let redis: TestRedis;
let gw: TestGateway;
let audit: TestGateway;
let port = 0;
let auditPort = 0;
const agentLog = tempAgentLog();

before(async () => {
  redis = await startRedis({ appendonly: false });
  port = await freePort();
  auditPort = await freePort();
  const connectors = (p: number) => ({
    internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${p}`], tarpitInterval: 0 },
    exchange: { name: 'Exchange', bindings: [`127.0.0.1:${p}`], remoteIPRanges: [EXCHANGE_IP], tarpitInterval: 0, authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
  });
  gw = await startGateway({ redisUrl: redis.url, observer: agentLog.log.observer(() => true), gateway: await baseGateway({ bounceVerification: { keyEnv: 'MAILGW_TEST_BATV_KEY' } }), connectors: connectors(port) });
  audit = await startGateway({ redisUrl: redis.url, gateway: await baseGateway({ bounceVerification: { keyEnv: 'MAILGW_TEST_BATV_KEY', mode: 'Audit' } }), connectors: connectors(auditPort) });
});

after(async () => {
  for (const g of [gw, audit]) await g?.close();
  await agentLog.close();
  await redis?.stop();
});

const CFG = { mode: 'Enforce' as const, maxAgeDays: 7, bypassedRecipients: [], key: KEY };

/** A tag as the worker writes it, for `address`, made `daysAgo` days ago. */
function tagged(address: string, daysAgo = 0): string {
  const p = parseEnvelopeAddress(address);
  assert.ok(p.ok);
  const t = taggedSender(CFG, p.value, Date.now() - daysAgo * 86_400_000);
  return `${t.local}@${t.domain}`;
}

const DSN_BODY = 'From: MAILER-DAEMON@remote.test\r\nSubject: Undelivered Mail Returned to Sender\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nbounced\r\n--r--\r\n';

async function bounce(to: string, o: { port?: number; from?: string; client?: string; body?: string } = {}) {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: o.port ?? port, localAddress: o.client ?? '127.0.0.1' });
  await c.ehlo('mx.remote.test');
  const t = await c.transaction(o.from ?? '', [to], o.body ?? DSN_BODY);
  await c.quit();
  return t;
}

describe('bounces arriving', () => {
  it('to an untagged address of ours, or with a tag that is forged or expired: 550 5.7.1 at the end of DATA, nothing stored, the agent log says why', async () => {
    const before = (await gw.stored()).jobs;
    const plain = await bounce('alice@contoso.test');
    assert.equal(plain.rcpt[0]!.code, 250, 'judged with the message: a read receipt would be let through');
    assert.equal(plain.end!.last, REFUSED);
    const forged = tagged('alice@contoso.test').replace(/=alice@/, '=bob@');
    assert.equal((await bounce(forged)).end!.last, REFUSED);
    assert.equal((await bounce(tagged('alice@contoso.test', 9))).end!.last, REFUSED);
    // qmail's bounces are plain text, with the null sender: refused too.
    assert.equal((await bounce('alice@contoso.test', { body: 'Subject: failure notice\r\n\r\nHi. This is the qmail-send program at remote.test.\r\n' })).end!.last, REFUSED);
    assert.equal((await gw.stored()).jobs, before, 'nothing stored');
    const refusals = gw.logs.filter((l) => l.msg === 'message rejected' && l.reason === 'bounce-not-verified').map((l) => String(l.why));
    assert.deepEqual(refusals.map((w) => w.replace(/:.*$/, '')), ['a bounce to alice@contoso.test, an address this gateway tags on mail it sends', 'a bounce to bob@contoso.test', 'a bounce to alice@contoso.test', 'a bounce to alice@contoso.test, an address this gateway tags on mail it sends']);
    assert.match(refusals[1]!, /its tag does not verify/);
    assert.match(refusals[2]!, /its tag expired \(valid for 7 days\)/);
    const entries = (await agentLog.entries()).filter((e) => e.reason === 'bounce-not-verified');
    assert.deepEqual(entries.map((e) => [e.agent, e.event, e.action, e.smtpResponse, e.p1FromAddress]), Array(4).fill(['Bounce Verification Agent', 'OnEndOfData', 'RejectMessage', REFUSED, '']));
  });

  it('a read receipt and an automatic reply to an untagged address, sent with the null sender to the From: address, are accepted', async () => {
    const mdn = await bounce('alice@contoso.test', { body: 'Subject: Read: hello\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary="m"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nread\r\n--m--\r\n' });
    assert.match(mdn.end!.last, /^250 2\.6\.0 /);
    const away = await bounce('alice@contoso.test', { body: 'Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n' });
    assert.match(away.end!.last, /^250 2\.6\.0 /);
  });

  it('to a tagged address: accepted and queued for the address under the tag; mail that is not a bounce, and the Exchange servers\' bounces, go on as before', async () => {
    const t = await bounce(tagged('alice@contoso.test'));
    assert.equal(t.rcpt[0]!.code, 250);
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    const job = await gw.job(queueIdOf(t.end!));
    assert.deepEqual(job?.data.rcptTo.map((r) => r.address), ['alice@contoso.test']);
    const normal = await bounce('alice@contoso.test', { from: 'bob@remote.test' });
    assert.match(normal.end!.last, /^250 2\.6\.0 /);
    // A reply to a tagged address (a list's, an auto-responder's with a sender): the address under the tag.
    const reply = await bounce(tagged('alice@contoso.test'), { from: 'list-bounces@remote.test' });
    assert.deepEqual((await gw.job(queueIdOf(reply.end!)))?.data.rcptTo.map((r) => r.address), ['alice@contoso.test']);
    const internal = await bounce('alice@contoso.test', { client: EXCHANGE_IP });
    assert.match(internal.end!.last, /^250 2\.6\.0 /, 'the Exchange servers bypass anti-spam: their own bounces were never tagged');
  });

  it('Audit: an untagged bounce is queued, and the log says it would have been refused', async () => {
    const t = await bounce('alice@contoso.test', { port: auditPort });
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    const line = audit.logs.find((l) => l.msg === 'bounce would be refused (audit)');
    assert.equal(line?.queueId, queueIdOf(t.end!));
    assert.match(String(line?.why), /no tag, so not a reply to mail it sent \(backscatter\)/);
  });
});

const { farSide, rig, done } = rigsPerTest();

describe('mail leaving', () => {
  it('a copy for outside goes with its sender of an Authoritative domain tagged; one for inside, and a sender of another domain, untagged; the tag verifies', async () => {
    const far = await farSide();
    const r = await rig({
      routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
      gateway: { bounceVerification: { keyEnv: 'BATV' } },
      env: { BATV: KEY },
    });
    await r.start();
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test', 'carol@contoso.test'], body: message('tagged') });
    await done(r, id);
    const out = far.messages.find((m) => m.rcptTo.includes('bob@remote.test'))!;
    assert.match(out.mailFrom, /^prvs=0\d{3}[0-9a-f]{6}=alice@contoso\.test$/);
    const p = parseEnvelopeAddress(out.mailFrom);
    assert.ok(p.ok);
    assert.deepEqual(readBounceTag(CFG, p.value, Date.now()), { kind: 'valid', address: { local: 'alice', domain: 'contoso.test' } });
    const [inside] = await mailbox(r.root, 'carol@contoso.test');
    assert.equal(withoutDeliveryHeaders(inside!).returnPath, 'alice@contoso.test', 'inside: untagged');
    const relayed = await enqueue(r.store, { from: 'someone@partner.test', to: ['bob@remote.test'], body: message('not ours') });
    await done(r, relayed);
    assert.equal(far.messages.at(-1)!.mailFrom, 'someone@partner.test');
    const bounceOut = await enqueue(r.store, { from: '', to: ['bob@remote.test'], body: message('a bounce') });
    await done(r, bounceOut);
    assert.equal(far.messages.at(-1)!.mailFrom, '', 'the null sender stays null');
  });
});
