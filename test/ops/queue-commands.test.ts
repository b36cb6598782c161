// `mailgw queue …` against real queued mail: a real redis-server, delivery workers in this
// process delivering to a Maildir and to two scripted SMTP next hops, one of them suspended.
// One message ends up with mixed recipient states (delivered, failed, pending).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig } from '@mailgw/config/load';
import type { GatewayConfig } from '@mailgw/config';
import { DEFAULT_QUEUE_NAME, openMailStore, type MailStore } from '@mailgw/queue';
import { trackingDir, type DeliveryState } from '@mailgw/queue';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { searchTracking } from '@mailgw/ops';
import { runQueue, type QueueOptions } from '../../packages/cli/src/commands/queue.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { enqueue, eventually, mailbox, message } from '../worker/helpers/gateway.js';
import { captureIO } from './helpers/cli-io.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from './helpers/config-dir.js';

let redis: TestRedis;
let cfg: ConfigDir;
let hopA: FarSide;
let hopB: FarSide;
let gateway: GatewayConfig;
let dataDir: string;
let store: MailStore;
let workers: WorkerHandle;
let conn: Redis;
let queue: Queue;
/** Recipients far side A answers 451 to (until removed). */
const deferring = new Set(['slow@fabrikam.test', 'later@fabrikam.test', 'later2@fabrikam.test', 'slow2@fabrikam.test']);
const ids: Record<string, string> = {};
const bodies: Record<string, Buffer> = {};

async function queueCmd(sub: string, args: string[] = [], opts: Partial<QueueOptions> = {}) {
  const io = captureIO();
  const code = await runQueue(sub, args, { config: cfg.gatewayFile, ...opts }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url } });
  return { code, out: io.out(), err: io.err(), bytes: io.outBytes() };
}

async function progress(id: string): Promise<{ state: string; p: DeliveryState | null }> {
  const job = await queue.getJob(id);
  if (!job) return { state: 'unknown', p: null };
  const p = job.progress as DeliveryState | number;
  return { state: await job.getState(), p: typeof p === 'object' && p !== null ? p : null };
}

/** The message was attempted once and waits in the delayed set. */
const attempted = (id: string) => eventually(async () => {
  const { state, p } = await progress(id);
  return state === 'delayed' && p?.nextAttemptAt ? p : null;
}, `${id} to be attempted and delayed`);

before(async () => {
  redis = await startRedis();
  hopA = await startFarSide({ rcpt: (a) => (a === 'bad@fabrikam.test' ? '550 5.1.1 User unknown' : deferring.has(a) ? '451 4.2.0 Try again later' : null) });
  hopB = await startFarSide();
  cfg = makeConfigDir();
  cfg.writeGateway(
    [
      'fqdn: mail.contoso.test',
      'dataDir: ./var',
      ACCEPTED,
      'redis: { prefix: "{opsq}" }',
      'routes:',
      '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }',
      `  - { domains: [fabrikam.test], to: "smtp://127.0.0.1:${hopA.port}" }`,
      `  - { domains: [northwind.test], to: "smtp://127.0.0.1:${hopB.port}" }`,
      // Nothing is retried by itself during the test: only what the commands do.
      'queue: { transientRetryInterval: 1h, messageRetryInterval: 1h, outboundConnectionFailureRetryInterval: 1h, lockDuration: 2s, stalledInterval: 1s, drainTimeout: 5s }',
      '',
    ].join('\n'),
  );
  cfg.writeConnector('default.yaml', 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
  const loaded = loadConfig({ configPath: cfg.gatewayFile });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  gateway = loaded.config.gateway;
  dataDir = loaded.dataDir!;
  store = await openMailStore({ url: redis.url, prefix: gateway.redis.prefix });
  conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  queue = new Queue(DEFAULT_QUEUE_NAME, { connection: conn, prefix: gateway.redis.prefix });

  // Suspended before anything is queued: the worker must never connect to hop B.
  const s = await queueCmd('suspend', [`smtp://127.0.0.1:${hopB.port}`]);
  assert.equal(s.code, 0, s.err);
  assert.match(s.out, /^suspended smtp:\/\/127\.0\.0\.1:\d+/);

  const put = async (name: string, from: string, to: string[]) => {
    bodies[name] = message(`ops ${name}`);
    ids[name] = await enqueue(store, { from, to, body: bodies[name]! });
  };
  await put('mixed', 'sender@contoso.test', ['alice@contoso.test', 'bad@fabrikam.test', 'slow@fabrikam.test']);
  await put('held', 'sender@contoso.test', ['carol@northwind.test']);
  await put('ndr', 'sender@contoso.test', ['later@fabrikam.test']);
  await put('drop', 'other@contoso.test', ['later2@fabrikam.test']);
  await put('byHop', 'sender@contoso.test', ['slow2@fabrikam.test']);
  workers = await startWorkers({ gateway, dataDir, redisUrl: redis.url, logger: pino({ level: 'silent' }), concurrency: 4, sessionIdleMs: 500 });
  for (const name of Object.keys(ids)) await attempted(ids[name]!);
});

after(async () => {
  await workers?.close({ timeoutMs: 5000 });
  await queue?.close();
  conn?.disconnect();
  await store?.close();
  await hopA?.close();
  await hopB?.close();
  await redis?.stop();
  cfg?.remove();
});

describe('mailgw queue', () => {
  it('the worker left the suspended hop untried', async () => {
    assert.equal(hopB.connections, 0);
    const p = (await progress(ids.held!)).p!;
    assert.deepEqual(p.recipients.map((r) => [r.status, r.attempts]), [['pending', 0]]);
  });

  it('list: one row per next hop with counts, oldest, next retry and last error; --json', async () => {
    const text = await queueCmd('list');
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^NEXT HOP\s+CONNECTOR\s+STATUS\s+MSGS\s+RCPTS\s+OLDEST\s+NEXT RETRY\s+LAST ERROR/);
    assert.match(text.out, new RegExp(`smtp://127\\.0\\.0\\.1:${hopA.port}\\s+routes\\[\\d+\\]\\s+Retry\\s+4\\s+4\\s+.*in 59m.*451 4\\.2\\.0 Try again later`));
    assert.match(text.out, new RegExp(`smtp://127\\.0\\.0\\.1:${hopB.port}\\s+routes\\[\\d+\\]\\s+Suspended\\s+1\\s+1\\s+.*suspended`));

    const json = await queueCmd('list', [], { json: true });
    const { hops, counts } = JSON.parse(json.out) as { hops: Array<Record<string, unknown>>; counts: Record<string, number> };
    const a = hops.find((h) => h.hop === `smtp://127.0.0.1:${hopA.port}`)!;
    const b = hops.find((h) => h.hop === `smtp://127.0.0.1:${hopB.port}`)!;
    assert.deepEqual([a.status, a.messages, a.recipients], ['Retry', 4, 4]);
    assert.deepEqual(new Set(a.queueIds as string[]), new Set([ids.mixed, ids.ndr, ids.drop, ids.byHop]));
    assert.match(String(a.lastError), /^451 4\.2\.0/);
    assert.ok((a.nextRetry as number) > Date.now() + 50 * 60_000, 'next retry is the 1h interval away');
    assert.deepEqual([b.status, b.messages, b.queueIds], ['Suspended', 1, [ids.held]]);
    assert.equal(counts.delayed, 5);
  });

  it('show: envelope, per-recipient status, attempts, last reply, next hop and tracking events', async () => {
    // The worker's tracking lines reach the file a moment after the attempt (batched appends).
    await eventually(async () => (await searchTracking(trackingDir(dataDir), { queueId: ids.mixed! })).length === 4, 'the tracking events of the attempt');
    const json = await queueCmd('show', [ids.mixed!], { json: true });
    assert.equal(json.code, 0, json.err);
    const m = JSON.parse(json.out) as { state: string; job: { mailFrom: { address: string } }; recipients: Array<Record<string, unknown>>; tracking: Array<Record<string, unknown>> };
    assert.equal(m.state, 'delayed');
    assert.equal(m.job.mailFrom.address, 'sender@contoso.test');
    assert.deepEqual(
      m.recipients.map((r) => [r.address, r.status, r.attempts, r.hop]),
      [
        ['alice@contoso.test', 'delivered', 1, null],
        ['bad@fabrikam.test', 'failed', 1, null],
        ['slow@fabrikam.test', 'pending', 1, `smtp://127.0.0.1:${hopA.port}`],
      ],
    );
    assert.match(String(m.recipients[1]!.lastReply), /^550 5\.1\.1 User unknown/);
    assert.match(String(m.recipients[2]!.lastReply), /^451 4\.2\.0/);
    assert.deepEqual(m.tracking.map((e) => e.eventId).sort(), ['DEFER', 'DELIVER', 'DSN', 'FAIL']);
    // The TLS policy of the smart host's last attempt: a route without requireTLS is opportunistic.
    const tls = (m as unknown as { hopTls: Array<Record<string, unknown>> }).hopTls;
    assert.deepEqual(tls.map((t) => [t.hop, t.policy, t.host, t.detail]), [[`smtp://127.0.0.1:${hopA.port}`, 'opportunistic', '127.0.0.1', 'opportunistic']]);
    assert.match(String(tls[0]!.reason), /^routes\[1\] does not require TLS, no DANE records: STARTTLS when offered, else plain text$/);

    const text = await queueCmd('show', [ids.mixed!]);
    assert.match(text.out, /State:\s+delayed \(next attempt in 59m/);
    assert.match(text.out, /alice@contoso\.test\s+delivered\s+1/);
    assert.match(text.out, /bad@fabrikam\.test\s+failed\s+1\s+.*550 5\.1\.1/);
    assert.match(text.out, /slow@fabrikam\.test\s+pending\s+1\s+smtp:\/\/127\.0\.0\.1:\d+\s+451 4\.2\.0/);
    assert.match(text.out, /Tracking:\n(.*\n)*.*DEFER\s+QUEUE\s+slow@fabrikam\.test/);
    assert.match(text.out, new RegExp(`TLS policy \\(last attempt per next hop\\):\n  smtp://127\\.0\\.0\\.1:${hopA.port}: opportunistic \\(127\\.0\\.0\\.1\\), \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\n    opportunistic\n    why: routes\\[1\\] does not require TLS`));

    const held = await queueCmd('show', [ids.held!]);
    assert.match(held.out, /carol@northwind\.test\s+pending\s+0\s+smtp:\/\/127\.0\.0\.1:\d+ \(suspended\)/);
  });

  it('export: the queued bytes on stdout', async () => {
    const r = await queueCmd('export', [ids.mixed!]);
    assert.equal(r.code, 0, r.err);
    assert.ok(r.bytes.equals(bodies.mixed!), 'exact bytes');
  });

  it('export --replay: X-Sender and X-Receiver of the recipients still pending first (Exchange\'s Replay format), then the queued bytes', async () => {
    const r = await queueCmd('export', [ids.mixed!], { replay: true });
    assert.equal(r.code, 0, r.err);
    const head = 'X-Sender: <sender@contoso.test>\r\nX-Receiver: <slow@fabrikam.test>\r\n';
    assert.equal(r.bytes.subarray(0, head.length).toString(), head, 'delivered alice and failed bad are not sent again');
    assert.ok(r.bytes.subarray(head.length).equals(bodies.mixed!), 'then the exact bytes');
    const none = await queueCmd('export', ['01ZZZZZZZZZZZZZZZZZZZZZZZZ'], { replay: true });
    assert.equal(none.code, 1);
  });

  it('retry <id>: the message is tried now and delivered', async () => {
    deferring.delete('slow@fabrikam.test');
    const r = await queueCmd('retry', [ids.mixed!]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `retried 1 message: ${ids.mixed}\n`);
    await eventually(async () => (await progress(ids.mixed!)).state === 'completed', 'the retried message to complete');
    assert.ok(hopA.messages.some((m) => m.rcptTo.includes('slow@fabrikam.test')));
  });

  it('retry --hop: every message of that next hop is tried now', async () => {
    deferring.delete('slow2@fabrikam.test');
    const r = await queueCmd('retry', [], { hop: `smtp://127.0.0.1:${hopA.port}` });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'retried 3 messages, skipped 0\n');
    await eventually(async () => (await progress(ids.byHop!)).state === 'completed', 'the hop retry to deliver');
    // The others are tried again and deferred again, one more attempt each.
    for (const id of [ids.ndr!, ids.drop!]) await eventually(async () => ((await progress(id)).p?.recipients[0]!.attempts === 2 ? true : null), `${id} attempted twice`);
  });

  it('remove --with-ndr: the job and body are gone and the sender gets an NDR', async () => {
    const r = await queueCmd('remove', [ids.ndr!], { 'with-ndr': true });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^removed ${ids.ndr} \\(1 recipient still pending\\); NDR [0-9A-Z]{26} queued for later@fabrikam\\.test\\n$`));
    assert.equal((await progress(ids.ndr!)).state, 'unknown');
    assert.equal(await store.readBody(ids.ndr!), null);
    const ndr = await eventually(async () => (await mailbox(`${dataDir}/mailboxes`, 'sender@contoso.test')).find((f) => f.toString().includes(ids.ndr!)), 'the NDR in the sender mailbox');
    const text = ndr.toString();
    assert.match(text, /Final-Recipient: rfc822;\s*later@fabrikam\.test/);
    assert.match(text, /Status: 5\.3\.2/);
    assert.match(text, /QUEUE\.Admin; message deleted by administrative action/);
  });

  it('remove without --with-ndr: gone, no DSN, a DROP tracking event', async () => {
    const r = await queueCmd('remove', [ids.drop!]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `removed ${ids.drop} (1 recipient still pending)\n`);
    assert.equal((await progress(ids.drop!)).state, 'unknown');
    const jobs = await queue.getJobs(['waiting', 'delayed', 'active', 'completed']);
    assert.ok(!jobs.some((j) => JSON.stringify(j.data).includes('other@contoso.test') && j.data.mailFrom?.address === ''), 'no DSN to the sender');
    const show = await queueCmd('show', [ids.drop!]);
    assert.equal(show.code, 1);
    const events = await searchTracking(trackingDir(dataDir), { queueId: ids.drop! });
    assert.deepEqual(events.at(-1)?.eventId, 'DROP');
    assert.deepEqual([events.at(-1)?.source, events.at(-1)?.recipientAddress], ['ADMIN', ['later2@fabrikam.test']]);
  });

  it('retry --hop on a suspended hop promotes but the worker holds it again; resume delivers', async () => {
    const hop = `smtp://127.0.0.1:${hopB.port}`;
    const r = await queueCmd('retry', [], { hop });
    assert.match(r.out, /^retried 1 message/);
    assert.match(r.out, /is suspended; its messages wait until mailgw queue resume/);
    await attempted(ids.held!);
    assert.equal(hopB.connections, 0);

    const resumed = await queueCmd('resume', [hop]);
    assert.equal(resumed.code, 0, resumed.err);
    assert.equal(resumed.out, `resumed ${hop}; retried 1 message now\n`);
    await eventually(async () => (await progress(ids.held!)).state === 'completed', 'the resumed hop to deliver');
    assert.deepEqual(hopB.messages.map((m) => m.rcptTo), [['carol@northwind.test']]);
    const list = await queueCmd('list', [], { json: true });
    assert.ok(!(JSON.parse(list.out) as { hops: Array<{ hop: string }> }).hops.some((h) => h.hop === hop), 'no longer listed');
  });

  it('answers unknown ids with exit 1 and bad usage with exit 2', async () => {
    for (const sub of ['show', 'export', 'remove']) {
      const r = await queueCmd(sub, ['01ZZZZZZZZZZZZZZZZZZZZZZZZ']);
      assert.equal(r.code, 1, `${sub}: ${r.out}${r.err}`);
    }
    const retry = await queueCmd('retry', ['01ZZZZZZZZZZZZZZZZZZZZZZZZ']);
    assert.equal(retry.code, 1);
    assert.match(retry.out, /no such message/);
    assert.equal((await queueCmd('retry', [], { all: true, hop: 'x' })).code, 2);
    assert.equal((await queueCmd('frobnicate')).code, 2);
    assert.equal((await queueCmd('show')).code, 2);
  });
});
