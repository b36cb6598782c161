// Workers as separate processes (`mailgw worker`) sharing one queue: claimed once, recovered
// after SIGKILL, drained on SIGTERM.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DEFAULT_QUEUE_NAME, openMailStore, type MailStore } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startFarSide, type FarSide, type FarSideOptions, type Received } from './helpers/far-side.js';
import { enqueue, eventually, message, randomPrefix } from './helpers/gateway.js';
import { spawnWorker, writeConfig, type WorkerProcess } from './helpers/worker-process.js';

let redis: TestRedis;
const cleanups: Array<() => Promise<void>> = [];
before(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
after(async () => {
  await redis?.stop();
});

interface Setup {
  far: FarSide;
  /** Messages whose data reached the far side (even if the client died before the reply). */
  arrivals: Received[];
  store: MailStore;
  queue: Queue;
  config: string;
  worker(args?: string[]): WorkerProcess;
}

async function setup(far: FarSideOptions = {}, drainTimeout = '10s'): Promise<Setup> {
  const arrivals: Received[] = [];
  const f = await startFarSide({ ...far, onDataReceived: (r) => {
    arrivals.push(r);
    far.onDataReceived?.(r);
  } });
  cleanups.push(() => f.close());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-wproc-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const prefix = randomPrefix();
  const config = writeConfig(
    dir,
    `fqdn: mail.contoso.test
dataDir: ./var
acceptedDomains:
  - domain: contoso.test
    default: true
routes:
  - domains: [contoso.test]
    to: maildir:./mailboxes
  - domains: ["*"]
    to: smtp://127.0.0.1:${f.port}
redis:
  prefix: "${prefix}"
queue:
  transientRetryInterval: 300ms
  messageRetryInterval: 300ms
  outboundConnectionFailureRetryInterval: 300ms
  lockDuration: 2s
  stalledInterval: 1s
  drainTimeout: ${drainTimeout}
`,
  );
  const store = await openMailStore({ url: redis.url, prefix });
  cleanups.push(() => store.close());
  const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  const q = new Queue(DEFAULT_QUEUE_NAME, { connection: conn, prefix });
  cleanups.push(async () => {
    await q.close();
    conn.disconnect();
  });
  return {
    far: f,
    arrivals,
    store,
    queue: q,
    config,
    worker(args = []) {
      const w = spawnWorker(config, { REDIS_URL: redis.url }, args);
      cleanups.push(async () => {
        if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
        await w.exited;
      });
      return w;
    },
  };
}

const completed = (s: Setup, id: string) => eventually(async () => (await (await s.queue.getJob(id))?.getState()) === 'completed', `job ${id} completed`, 60_000);

describe('worker processes', () => {
  test('two worker processes on one queue: every message delivered exactly once', async () => {
    const s = await setup();
    const a = s.worker(['--concurrency', '4']);
    const b = s.worker(['--concurrency', '4']);
    await Promise.all([a.ready, b.ready]);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await enqueue(s.store, { from: 'a@remote.test', to: [`r${i}@remote.test`], body: message(`msg ${i}`) }));
    for (const id of ids) await completed(s, id);
    const seen = new Map<string, number>();
    for (const m of s.far.messages) for (const r of m.rcptTo) seen.set(r, (seen.get(r) ?? 0) + 1);
    assert.equal(seen.size, 40, 'every message arrived');
    assert.deepEqual([...seen.values()].filter((n) => n !== 1), [], 'none arrived twice');
    assert.equal(s.arrivals.length, 40);
    const by = new Map<string, number>();
    for (const id of ids) {
      const w = (await s.queue.getJob(id))!.processedBy ?? '?';
      by.set(w, (by.get(w) ?? 0) + 1);
    }
    console.log(`# two workers: ${[...by.values()].join(' + ')} messages`);
  });

  test('SIGKILL mid-delivery: the message is delivered after the stall interval (duplicates measured)', async () => {
    let victim: WorkerProcess | null = null;
    const s = await setup({
      dataDelayMs: 2500,
      onDataReceived: () => {
        if (victim && victim.child.exitCode === null) victim.child.kill('SIGKILL');
      },
    });
    victim = s.worker(['--concurrency', '1']);
    await victim.ready;
    const id = await enqueue(s.store, { from: 'a@remote.test', to: ['slow@remote.test'], body: message('killed mid-delivery') });
    assert.equal(await victim.exited, 'SIGKILL');
    const rescuer = s.worker(['--concurrency', '1']);
    await rescuer.ready;
    await completed(s, id);
    const job = (await s.queue.getJob(id))!;
    assert.equal((job.progress as { recipients: Array<{ status: string }> }).recipients[0]!.status, 'delivered');
    const arrivals = s.arrivals.filter((m) => m.rcptTo.includes('slow@remote.test')).length;
    assert.ok(arrivals >= 1 && arrivals <= 2, `${arrivals} arrivals`);
    console.log(`# SIGKILL mid-delivery: ${arrivals} copies reached the far side (${arrivals - 1} duplicate)`);
    assert.ok(rescuer.logs.some((l) => l.msg === 'message done'), 'the second worker delivered it');
  });

  test('SIGTERM lets the delivery in progress finish, then exits 0', async () => {
    let w: WorkerProcess | null = null;
    const s = await setup({
      dataDelayMs: 1500,
      onDataReceived: () => {
        w?.child.kill('SIGTERM');
      },
    });
    w = s.worker(['--concurrency', '2']);
    await w.ready;
    const id = await enqueue(s.store, { from: 'a@remote.test', to: ['drain@remote.test'], body: message('drain me') });
    assert.equal(await w.exited, 0, w.stderr());
    assert.equal(await (await s.queue.getJob(id))!.getState(), 'completed', 'finished before exiting');
    assert.equal(s.far.messages.length, 1);
    assert.ok(w.logs.some((l) => l.msg === 'delivery worker stopped' && l.drained === true));
  });

  test('SIGTERM drain is bounded: an endless delivery is abandoned and finished by another worker', async () => {
    let w: WorkerProcess | null = null;
    let slow = true;
    const s = await setup(
      {
        data: () => null,
        dataDelayMs: 4000,
        onDataReceived: () => {
          if (slow) w?.child.kill('SIGTERM');
          slow = false;
        },
      },
      '300ms',
    );
    w = s.worker(['--concurrency', '1']);
    await w.ready;
    const id = await enqueue(s.store, { from: 'a@remote.test', to: ['stuck@remote.test'], body: message('stuck') });
    assert.equal(await w.exited, 0, w.stderr());
    assert.ok(w.logs.some((l) => l.msg === 'delivery worker stopped' && l.drained === false), 'gave up waiting');
    const next = s.worker(['--concurrency', '1']);
    await next.ready;
    await completed(s, id);
  });
});

describe('mailgw worker command line', () => {
  test('refuses a bad --concurrency and a missing Redis with a clear message', async () => {
    const s = await setup();
    const bad = spawnWorker(s.config, { REDIS_URL: redis.url }, ['--concurrency', 'many']);
    assert.equal(await bad.exited, 2);
    assert.match(bad.stderr(), /--concurrency must be a whole number/);
    const noRedis = spawnWorker(s.config, { REDIS_URL: '' });
    assert.equal(await noRedis.exited, 1);
    assert.match(noRedis.stderr(), /set REDIS_URL or redis\.url/);
  });
});
