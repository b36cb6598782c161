// scanJobs reads BullMQ's state keys directly (for `mailgw queue messages` on 100,000 messages):
// against a real redis-server, it must see exactly what BullMQ's own getJobs sees, state by
// state and in the same order (oldest first), with the same data, progress and failedReason.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { SCANNABLE_STATES, keySpace, readHeads, scanJobs, type ScannedJob } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { eventually } from '../worker/helpers/gateway.js';

const PREFIX = '{scan}';
let redis: TestRedis;
let conn: Redis;
let queue: Queue;
let worker: Worker;
let workerConn: Redis;
let release: () => void = () => undefined;

before(async () => {
  redis = await startRedis({ appendonly: false });
  conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  queue = new Queue('delivery', { connection: conn, prefix: PREFIX });
  const held = new Promise<void>((r) => (release = r));
  workerConn = new Redis(redis.url, { maxRetriesPerRequest: null });
  worker = new Worker(
    'delivery',
    async (job: Job) => {
      if (job.name === 'fail') {
        await job.updateProgress({ v: 1, note: 'before failing' });
        throw new UnrecoverableError(`poison ${job.id}`);
      }
      if (job.name === 'hold') await held;
    },
    { connection: workerConn, prefix: PREFIX, concurrency: 1, autorun: false },
  );
  // Two that fail, then one held active; the rest stay waiting, delayed or prioritized.
  for (let i = 0; i < 2; i++) await queue.add('fail', { n: `f${i}` }, { jobId: `f${i}` });
  await queue.add('hold', { n: 'h' }, { jobId: 'h' });
  void worker.run();
  await eventually(async () => (await queue.getActiveCount()) === 1 && (await queue.getFailedCount()) === 2, 'two failed, one active');
  for (let i = 0; i < 5; i++) await queue.add('deliver', { n: `w${i}` }, { jobId: `w${i}` });
  for (let i = 0; i < 3; i++) await queue.add('deliver', { n: `d${i}` }, { jobId: `d${i}`, delay: 3_600_000 + i });
  for (let i = 0; i < 3; i++) await queue.add('deliver', { n: `p${i}` }, { jobId: `p${i}`, priority: 3 - i });
  await conn.set(keySpace(PREFIX).body('w0'), 'Subject: small\r\n\r\nbody');
  await conn.set(keySpace(PREFIX).head('w1'), 'Subject: large\r\n\r\n');
  await conn.set(keySpace(PREFIX).body('w1'), 'the large body');
});

after(async () => {
  release();
  await worker?.close();
  workerConn?.disconnect();
  await queue?.close();
  conn?.disconnect();
  await redis?.stop();
});

async function scanned(state: (typeof SCANNABLE_STATES)[number], pageSize: number): Promise<ScannedJob[]> {
  const out: ScannedJob[] = [];
  for await (const page of scanJobs(conn, keySpace(PREFIX), state, pageSize)) out.push(...page);
  return out;
}

it('sees what BullMQ getJobs sees, per state, oldest first, in pages of any size', async () => {
  for (const state of SCANNABLE_STATES) {
    const bull = await queue.getJobs(state, 0, -1, true);
    assert.ok(bull.length > 0, `fixture has ${state} jobs`);
    for (const pageSize of [1, 2, 1000]) {
      const mine = await scanned(state, pageSize);
      assert.deepEqual(mine.map((j) => j.id), bull.map((j) => j.id), `${state}, pages of ${pageSize}`);
      mine.forEach((j, i) => {
        assert.deepEqual(j.data, bull[i]!.data);
        assert.deepEqual(j.failedReason ?? undefined, bull[i]!.failedReason ?? undefined);
      });
    }
  }
  const failed = await scanned('failed', 10);
  assert.deepEqual(failed.map((j) => [j.failedReason, j.progress]), [['poison f0', { v: 1, note: 'before failing' }], ['poison f1', { v: 1, note: 'before failing' }]]);
});

it('readHeads: the head key of a large message, the body of a small one, null when gone', async () => {
  const heads = await readHeads(conn, keySpace(PREFIX), ['w0', 'w1', 'w2'], 64);
  assert.deepEqual(heads.map((h) => h?.toString() ?? null), ['Subject: small\r\n\r\nbody', 'Subject: large\r\n\r\n', null]);
});
