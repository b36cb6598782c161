// Recipient verification (gateway.yaml recipientVerification) over real SMTP: a listener in front
// of a scripted "server behind" on loopback (the route of fabrikam.test), answers cached in the
// test's redis-server. A recipient the server behind takes is accepted and cached; one it refuses
// is refused here (550 5.1.1, or the class it gave) and cached for negativeCacheTtl; when it is
// down, too slow or refuses the probe sender, the client gets 451 4.4.3 (or 250 with failureAction
// accept), while recipients verified before are still accepted from the cache. Relay refusals and
// other domains never cause a probe; one probe per address at a time, at most maxProbesPerNextHop
// per next hop; a stale answer is asked again in the background.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { keySpace } from '@mailgw/queue';
import { DEFAULT_TIMEOUTS, RecipientVerifier, parseCached, type DnsResolver } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { baseGateway, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp } from './helpers/smtp-client.js';

const PREFIX = '{mailgw}';
const keys = keySpace(PREFIX);
const noDns: DnsResolver = {
  resolveMx: () => Promise.reject(Object.assign(new Error('no DNS in tests'), { code: 'ESERVFAIL' })),
  resolve4: () => Promise.reject(Object.assign(new Error('no DNS in tests'), { code: 'ESERVFAIL' })),
  resolve6: () => Promise.reject(Object.assign(new Error('no DNS in tests'), { code: 'ESERVFAIL' })),
};

let redis: TestRedis;
let conn: Redis;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  redis = await startRedis();
  conn = new Redis(redis.url);
});
after(async () => {
  conn?.disconnect();
  await redis?.stop();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await conn.flushall();
});

interface Setup {
  gw: TestGateway;
  port: number;
  verifier: RecipientVerifier;
  answers: string[];
  /** The verifier's log lines. */
  logs: Array<{ level: number; msg: string; [k: string]: unknown }>;
  setClock(ms: number): void;
}

/** A gateway whose fabrikam.test goes to `behindPort` and is verified there with `rv`. */
async function setup(behindPort: number, rv: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Setup> {
  const port = await freePort();
  let now = Date.now();
  const answers: string[] = [];
  const logs: Setup['logs'] = [];
  let gw: TestGateway | null = null;
  const verifier = new RecipientVerifier({
    logger: pino({ level: 'debug' }, new Writable({ write: (chunk: Buffer, _e, cb) => (logs.push(...chunk.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Setup['logs'][number])), cb()) })),
    settings: () => gw!.policy.config.gateway,
    redis: conn,
    keys,
    hops: { resolver: noDns, mxPort: 25, timeouts: { ...DEFAULT_TIMEOUTS, connectionMs: 2000, greetingMs: 2000, socketMs: 10_000 } },
    onAnswer: (kind, source) => answers.push(`${kind}/${source}`),
    clock: () => now,
  });
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({
      routes: [{ domains: ['fabrikam.test'], to: `smtp://127.0.0.1:${behindPort}` }],
      recipientVerification: { domains: ['fabrikam.test'], timeout: '1s', ...rv },
      ...extra,
    }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 },
    },
    recipientVerification: verifier,
  });
  cleanups.push(() => gw!.close());
  cleanups.push(() => verifier.close());
  return { gw, port, verifier, answers, logs, setClock: (ms) => (now = ms) };
}

async function behind(o: Parameters<typeof startFarSide>[0] = {}): Promise<FarSide> {
  const far = await startFarSide(o);
  cleanups.push(() => far.close());
  return far;
}

const UNKNOWN = (a: string) => (/^nobody/.test(a) ? '550 5.1.1 <' + a + '>: Recipient address rejected: User unknown in local recipient table' : null);

async function rcpts(port: number, from: string, to: string[]): Promise<string[]> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  await c.ehlo('client.example.net');
  const out: string[] = [];
  assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
  for (const t of to) out.push((await c.cmd(`RCPT TO:<${t}>`)).last);
  await c.quit();
  return out;
}

async function cachedIn(address: string) {
  const raw = await conn.get(keys.recipientVerification(address));
  return raw ? parseCached(raw) : null;
}

describe('recipient verification at the next hop', () => {
  it('accepts what the server behind takes, refuses what it refuses, and caches both', async () => {
    const far = await behind({ rcpt: UNKNOWN });
    const s = await setup(far.port);
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['alice@fabrikam.test', 'nobody@fabrikam.test']), ['250 2.1.5 Recipient OK', '550 5.1.1 User unknown']);
    // The probes: the null sender, the recipient as given, nothing else.
    assert.deepEqual(far.rcptSeen, [
      { from: '', to: 'alice@fabrikam.test' },
      { from: '', to: 'nobody@fabrikam.test' },
    ]);
    assert.equal(far.messages.length, 0, 'a probe never sends DATA');
    const ok = await cachedIn('alice@fabrikam.test');
    assert.equal(ok?.kind, 'accepted');
    assert.equal(ok?.nextHop, `smtp://127.0.0.1:${far.port}`);
    const no = await cachedIn('nobody@fabrikam.test');
    assert.equal(no?.kind, 'refused');
    assert.match(no!.reply, /^550 5\.1\.1 .*User unknown in local recipient table/);
    const ttl = await conn.pttl(keys.recipientVerification('nobody@fabrikam.test'));
    assert.ok(ttl > 3_500_000 && ttl <= 3_600_000, `negativeCacheTtl 1h by default, was ${ttl}`);
    const okTtl = await conn.pttl(keys.recipientVerification('alice@fabrikam.test'));
    assert.ok(okTtl > 7 * 86_400_000 - 60_000, `cacheTtl 7d by default, was ${okTtl}`);

    // Asked again: from the cache, the server behind is not asked.
    assert.deepEqual(await rcpts(s.port, 'other@example.org', ['ALICE@fabrikam.test', 'nobody@fabrikam.test']), ['250 2.1.5 Recipient OK', '550 5.1.1 User unknown']);
    assert.equal(far.rcptSeen.length, 2);
    assert.deepEqual(s.answers, ['accepted/probe', 'refused/probe', 'accepted/cache', 'refused/cache']);
    // The reasons in the protocol log and the refusal's log line name the next hop and its reply.
    const refusal = s.gw.logs.find((l) => l.reason === 'unknown-at-next-hop');
    assert.ok(refusal, 'the refusal is logged with its reason code');
    assert.match(String(refusal.why ?? JSON.stringify(refusal)), /refused RCPT TO:<nobody@fabrikam\.test>/);
  });

  it('stores a message to verified recipients, and none to a refused one', async () => {
    const far = await behind({ rcpt: UNKNOWN });
    const s = await setup(far.port);
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: s.port });
    await c.ehlo('client.example.net');
    const t = await c.transaction('sender@example.net', ['bob@fabrikam.test', 'nobody@fabrikam.test'], 'Subject: hi\r\n\r\nhello\r\n');
    assert.deepEqual(t.rcpt.map((r) => r.code), [250, 550]);
    assert.equal(t.end?.code, 250);
    const id = /InternalId=([^\]]+)/.exec(t.end!.last)![1]!;
    const job = await s.gw.job(id);
    assert.deepEqual(job?.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['bob@fabrikam.test']);
    await c.quit();
  });

  it('keeps the class of a refusal that is not "no such mailbox", without the inside server\'s words', async () => {
    const far = await behind({ rcpt: (a) => (a.startsWith('full') ? '552 5.2.2 Mailbox full, quota exceeded on store12.internal' : '550 Requested action not taken') });
    const s = await setup(far.port);
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['full@fabrikam.test', 'bare@fabrikam.test']), ['552 5.2.2 Recipient rejected by the next hop', '550 5.1.1 User unknown']);
  });

  it('never probes for other domains, relay refusals or blocked recipients', async () => {
    const far = await behind();
    const s = await setup(far.port, {}, { recipientFilterConfig: { blockListEnabled: true, blockedRecipients: ['allstaff@fabrikam.test'] } });
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['alice@contoso.test', 'someone@elsewhere.example', 'allstaff@fabrikam.test']), ['250 2.1.5 Recipient OK', '550 5.7.1 Unable to relay', '550 5.1.1 User unknown']);
    assert.equal(far.connections, 0);
    assert.deepEqual(s.answers, []);
  });

  it('answers 451 4.4.3 when the server behind is down, and still accepts recipients verified before', async () => {
    const far = await behind();
    const s = await setup(far.port);
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['alice@fabrikam.test']), ['250 2.1.5 Recipient OK']);
    await far.close();
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['alice@fabrikam.test', 'carol@fabrikam.test']), ['250 2.1.5 Recipient OK', '451 4.4.3 Recipient address could not be verified, please try again later']);
    assert.equal(await cachedIn('carol@fabrikam.test'), null, '"could not say" is never cached');
    const warn = s.logs.find((l) => l.msg === 'recipient verification: the next hop could not be asked');
    assert.ok(warn, 'the outage is logged at warn');
    assert.equal(warn.level, 40);
  });

  it('accepts what it cannot verify with failureAction accept', async () => {
    const dead = await freePort();
    const s = await setup(dead, { failureAction: 'accept' });
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: s.port });
    await c.ehlo('client.example.net');
    const t = await c.transaction('sender@example.net', ['carol@fabrikam.test'], 'Subject: hi\r\n\r\nhello\r\n');
    assert.equal(t.rcpt[0]!.code, 250);
    assert.equal(t.end?.code, 250, 'queued: the server behind decides at delivery');
    await c.quit();
    assert.deepEqual(s.answers, ['unknown/probe']);
  });

  it('gives a slow server behind `timeout`, then answers 451 and caches the late answer for the next try', async () => {
    const far = await behind({ rcptDelayMs: 4000, rcpt: UNKNOWN });
    const s = await setup(far.port, { timeout: '1s' });
    const started = Date.now();
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['dave@fabrikam.test']), ['451 4.4.3 Recipient address could not be verified, please try again later']);
    assert.ok(Date.now() - started < 3800, 'the client waited for the timeout (1 s), not for the probe (4 s)');
    // The probe goes on and its answer is there for the sender's retry.
    for (let i = 0; i < 100 && !(await cachedIn('dave@fabrikam.test')); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal((await cachedIn('dave@fabrikam.test'))?.kind, 'accepted');
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['dave@fabrikam.test']), ['250 2.1.5 Recipient OK']);
    assert.equal(far.rcptSeen.length, 1);
    assert.deepEqual(s.answers, ['unknown/timeout', 'accepted/cache']);
  });

  it('tells the admin when the server behind refuses the probe sender, and uses probeSender', async () => {
    const far = await behind({ mail: (from) => (from === '' ? '550 5.7.1 Null sender not accepted here' : null) });
    const s = await setup(far.port);
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['erin@fabrikam.test']), ['451 4.4.3 Recipient address could not be verified, please try again later']);
    const warn = s.logs.find((l) => /refuses the probe sender/.test(l.msg));
    assert.ok(warn, 'said at warn, with what to set');
    assert.equal(warn.probeSender, '<>');
    await s.gw.close();
    cleanups.pop();
    const s2 = await setup(far.port, { probeSender: 'double-bounce@contoso.test' });
    assert.deepEqual(await rcpts(s2.port, 'sender@example.net', ['erin@fabrikam.test']), ['250 2.1.5 Recipient OK']);
    assert.deepEqual(far.rcptSeen.at(-1), { from: 'double-bounce@contoso.test', to: 'erin@fabrikam.test' });
  });

  it('asks again in the background after refreshAfter, the cached answer serving meanwhile', async () => {
    const far = await behind();
    const s = await setup(far.port, { refreshAfter: '1h' });
    const t0 = Date.now();
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['frank@fabrikam.test']), ['250 2.1.5 Recipient OK']);
    // frank leaves; an hour later the cached "yes" still serves, while the server behind is asked.
    far.setRcpt(UNKNOWN_ALL);
    s.setClock(t0 + 3_600_000 + 1000);
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['frank@fabrikam.test']), ['250 2.1.5 Recipient OK']);
    for (let i = 0; i < 50 && (await cachedIn('frank@fabrikam.test'))?.kind !== 'refused'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await cachedIn('frank@fabrikam.test'))?.kind, 'refused');
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['frank@fabrikam.test']), ['550 5.1.1 User unknown']);
    assert.equal(far.rcptSeen.length, 2);
  });

  it('while the server behind cannot say, a stale answer keeps serving and is asked again at most every 5 minutes', async () => {
    const far = await behind();
    const s = await setup(far.port, { refreshAfter: '1h' });
    const t0 = Date.now();
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['gina@fabrikam.test']), ['250 2.1.5 Recipient OK']);
    far.setRcpt(() => '451 4.3.0 Mailbox store offline');
    s.setClock(t0 + 2 * 3_600_000);
    for (let i = 0; i < 3; i++) assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['gina@fabrikam.test']), ['250 2.1.5 Recipient OK']);
    for (let i = 0; i < 100 && far.rcptSeen.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200)); // a second refresh, were there one, would be on its way by now
    assert.equal(far.rcptSeen.length, 2, 'one refresh for three RCPTs');
    assert.equal((await cachedIn('gina@fabrikam.test'))?.kind, 'accepted', 'a 4xx does not replace the answer');
    s.setClock(t0 + 2 * 3_600_000 + 5 * 60_000);
    assert.deepEqual(await rcpts(s.port, 'sender@example.net', ['gina@fabrikam.test']), ['250 2.1.5 Recipient OK']);
    for (let i = 0; i < 100 && far.rcptSeen.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(far.rcptSeen.length, 3, 'asked again after 5 minutes');
  });

  it('probes an address once however many sessions ask at the same time, and at most maxProbesPerNextHop at once', async () => {
    const far = await behind({ rcptDelayMs: 300 });
    const s = await setup(far.port, { maxProbesPerNextHop: 1, timeout: '5s' });
    const same = await Promise.all([1, 2, 3, 4].map(() => rcpts(s.port, 'sender@example.net', ['grace@fabrikam.test'])));
    assert.deepEqual(same.flat(), Array(4).fill('250 2.1.5 Recipient OK'));
    assert.equal(far.rcptSeen.length, 1, 'one probe for four sessions');
    const many = await Promise.all(['h1', 'h2', 'h3'].map((u) => rcpts(s.port, 'sender@example.net', [`${u}@fabrikam.test`])));
    assert.deepEqual(many.flat(), Array(3).fill('250 2.1.5 Recipient OK'));
    assert.equal(far.maxConcurrent, 1, 'one probe session at a time to this next hop');
  });

  it('still answers when the cache cannot be read or written (Redis away)', async () => {
    const far = await behind({ rcpt: UNKNOWN });
    const dead = new Redis({ port: await freePort(), lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    dead.on('error', () => undefined);
    cleanups.push(() => dead.disconnect());
    const port = await freePort();
    let gw: TestGateway | null = null;
    const verifier = new RecipientVerifier({ settings: () => gw!.policy.config.gateway, redis: dead, keys, hops: { resolver: noDns, mxPort: 25, timeouts: DEFAULT_TIMEOUTS } });
    gw = await startGateway({
      redisUrl: redis.url,
      gateway: await baseGateway({ routes: [{ domains: ['fabrikam.test'], to: `smtp://127.0.0.1:${far.port}` }], recipientVerification: { domains: ['fabrikam.test'] } }),
      connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } },
      recipientVerification: verifier,
    });
    cleanups.push(() => gw!.close());
    cleanups.push(() => verifier.close());
    assert.deepEqual(await rcpts(port, 'sender@example.net', ['alice@fabrikam.test', 'nobody@fabrikam.test']), ['250 2.1.5 Recipient OK', '550 5.1.1 User unknown']);
  });
});

describe('RecipientVerifier: next hops as delivery reaches them', () => {
  /** A verifier over a gateway whose fabrikam.test route is `route`. */
  async function verifierFor(route: Record<string, unknown>, rv: Record<string, unknown> = {}) {
    let gw: TestGateway | null = null;
    const verifier = new RecipientVerifier({ settings: () => gw!.policy.config.gateway, redis: conn, keys, hops: { resolver: noDns, mxPort: 25, timeouts: { ...DEFAULT_TIMEOUTS, connectionMs: 2000, greetingMs: 2000, socketMs: 5000 } } });
    gw = await startGateway({
      redisUrl: redis.url,
      gateway: await baseGateway({ routes: [{ domains: ['fabrikam.test'], ...route }], recipientVerification: { domains: ['fabrikam.test'], ...rv } }),
      connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${await freePort()}`], tarpitInterval: 0 } },
    });
    cleanups.push(() => gw!.close());
    cleanups.push(() => verifier.close());
    return verifier;
  }

  it('an LMTP next hop is asked with LHLO, MAIL and RCPT', async () => {
    const far = await behind({ lmtp: true, rcpt: UNKNOWN });
    const v = await verifierFor({ to: `lmtp://127.0.0.1:${far.port}` });
    assert.equal((await v.verify('alice@fabrikam.test', null)).kind, 'accepted');
    assert.equal((await v.verify('nobody@fabrikam.test', null)).kind, 'refused');
    assert.equal(far.messages.length, 0);
  });

  it('a UTF-8 address goes with SMTPUTF8 to a next hop that offers it, and is not asked of one that does not', async () => {
    const far = await behind();
    const v = await verifierFor({ to: `smtp://127.0.0.1:${far.port}` });
    assert.equal((await v.verify('jürgen@fabrikam.test', null)).kind, 'accepted');
    assert.deepEqual(far.rcptSeen.at(-1), { from: '', to: 'jürgen@fabrikam.test' });
    const plain = await behind({ smtpUtf8: false });
    const w = await verifierFor({ to: `smtp://127.0.0.1:${plain.port}` });
    const u = await w.verify('zoë@fabrikam.test', null);
    assert.equal(u.kind, 'unknown');
    assert.match(u.kind === 'unknown' ? u.why : '', /does not offer SMTPUTF8/);
    assert.equal(plain.rcptSeen.length, 0);
  });

  it('a harvest of many addresses at once queues at most 20 probes per slot; the rest are "could not say" at once', async () => {
    const far = await behind({ rcptDelayMs: 100 });
    const v = await verifierFor({ to: `smtp://127.0.0.1:${far.port}` }, { maxProbesPerNextHop: 1, timeout: '1s' });
    const answers = await Promise.all(Array.from({ length: 23 }, (_, i) => v.verify(`user${i}@fabrikam.test`, null)));
    const refusedAtOnce = answers.filter((a) => a.kind === 'unknown' && /^20 probes already wait for smtp:/.test(a.why));
    assert.equal(refusedAtOnce.length, 2, 'one running, twenty waiting, two turned away');
    // The queued ones go on in the background and their answers are kept.
    for (let i = 0; i < 200 && far.rcptSeen.length < 21; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(far.rcptSeen.length, 21);
  });

  it('a burst of new addresses shares a probe session: one MAIL FROM, a RCPT each, one connection', async () => {
    const far = await behind({ rcpt: UNKNOWN });
    const v = await verifierFor({ to: `smtp://127.0.0.1:${far.port}` }, { maxProbesPerNextHop: 1 });
    const kinds: string[] = [];
    for (const u of ['a1', 'nobody1', 'a2', 'a3', 'nobody2']) kinds.push((await v.verify(`${u}@fabrikam.test`, null)).kind);
    assert.deepEqual(kinds, ['accepted', 'refused', 'accepted', 'accepted', 'refused']);
    assert.equal(far.connections, 1, 'a refusal leaves the transaction open for the next RCPT');
    assert.equal(far.messages.length, 0);
    v.close();
    // After close, a probe opens and closes a session of its own.
    assert.equal((await v.verify('a4@fabrikam.test', null)).kind, 'accepted');
    assert.equal(far.connections, 2);
  });

  it('a route with requireTLS to a next hop without STARTTLS is not asked in plain text', async () => {
    const far = await behind();
    const v = await verifierFor({ to: `smtp://127.0.0.1:${far.port}`, requireTLS: true });
    const a = await v.verify('alice@fabrikam.test', null);
    assert.equal(a.kind, 'unknown');
    assert.match(a.kind === 'unknown' ? a.why : '', /4\.7\.5/);
    assert.equal(far.rcptSeen.length, 0);
  });
});

describe('RecipientVerifier without a next hop to ask', () => {
  it('says why for a maildir domain and for a domain without a route', async () => {
    let gw: TestGateway | null = null;
    const verifier = new RecipientVerifier({ settings: () => gw!.policy.config.gateway, redis: conn, keys, hops: { resolver: noDns, mxPort: 25, timeouts: DEFAULT_TIMEOUTS } });
    cleanups.push(() => verifier.close());
    gw = await startGateway({
      redisUrl: redis.url,
      gateway: await baseGateway({
        acceptedDomains: [
          { domain: 'contoso.test', type: 'Authoritative', default: true },
          { domain: 'fabrikam.test', type: 'InternalRelay' },
          { domain: 'tailspin.test', type: 'InternalRelay' },
        ],
        routes: [{ domains: ['fabrikam.test'], to: 'maildir:/tmp/mailgw-test-never-written' }],
        recipientVerification: { domains: ['fabrikam.test', 'tailspin.test'] },
      }),
      connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${await freePort()}`], tarpitInterval: 0 } },
    });
    cleanups.push(() => gw!.close());
    const md = await verifier.verify('a@fabrikam.test', null);
    assert.equal(md.kind, 'unknown');
    assert.match(md.kind === 'unknown' ? md.why : '', /fabrikam\.test is delivered here \(maildir:/);
    const none = await verifier.verify('a@tailspin.test', null);
    assert.match(none.kind === 'unknown' ? none.why : '', /451 4\.4\.4 No send connector or route for domain tailspin\.test/);
  });
});

const UNKNOWN_ALL = () => '550 5.1.1 User unknown';
