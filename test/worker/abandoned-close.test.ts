// A worker stopped while a delivery never ends (seen on a Redis Cluster with a master down):
// BullMQ's close() waits for the job, and is memoised, so the close(true) mailgw used to send
// after its drain timeout was the same waiting promise. The Worker's lock renewal then went on
// for ever: the abandoned job could not be taken over by another worker, and the timer kept
// the process alive (the cluster test file never exited). abandonWorker stops what close(true)
// stops. Both shown with a real BullMQ Worker on a real Redis.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { abandonWorker } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { eventually, randomPrefix } from './helpers/gateway.js';

let redis: TestRedis;
let admin: Redis;
before(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
after(async () => {
  admin.disconnect();
  await redis.stop();
});

const clients = async () => String(await admin.call('CLIENT', 'LIST')).trim().split('\n').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Worker (its own connections) whose one job never finishes, and that job's lock key. */
async function stuckWorker(): Promise<{ worker: Worker; lockKey: string; release: () => void; close: () => Promise<void> }> {
  const prefix = randomPrefix();
  const queue = new Queue('delivery', { connection: { host: '127.0.0.1', port: redis.port }, prefix });
  let release = () => undefined as void;
  const worker = new Worker('delivery', () => new Promise<void>((r) => (release = r)), { connection: { host: '127.0.0.1', port: redis.port }, prefix, lockDuration: 1000, stalledInterval: 30_000 });
  const job = await queue.add('m', {});
  await eventually(async () => (await job.getState()) === 'active', 'the job to be active');
  return { worker, lockKey: `${prefix}:delivery:${job.id}:lock`, release: () => release(), close: () => queue.close() };
}

test('stock BullMQ: a close(true) after a close() that waits is the same promise; the stuck job\'s lock is still renewed', async () => {
  const s = await stuckWorker();
  try {
    const first = s.worker.close();
    void s.worker.close(true);
    await sleep(1500);
    // lockDuration 1 s: a lock nobody renews is gone by now.
    assert.ok((await admin.pttl(s.lockKey)) > 0, 'the lock is still being renewed after close(true)');
    s.release();
    await first;
  } finally {
    await s.close();
  }
});

test('abandonWorker: the lock is no longer renewed and the worker\'s connections close, while the job is still running', async () => {
  const baseline = await clients();
  const s = await stuckWorker();
  try {
    assert.ok((await clients()) > baseline);
    void s.worker.close();
    await abandonWorker(s.worker);
    await sleep(1500);
    assert.equal(await admin.pttl(s.lockKey), -2, 'the lock of the abandoned job is gone, so another worker can take the job over');
    await s.close();
    await eventually(async () => (await clients()) === baseline, `the worker's connections to close (${baseline} before)`, 5000);
  } finally {
    s.release();
  }
});
