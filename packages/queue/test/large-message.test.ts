import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { newQueueId, openMailStore, type MailStore } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { envelope, randomPrefix } from './fixtures.js';

// A full GC on demand, without needing --expose-gc on the command line.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const MiB = 1024 * 1024;

function liveBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

let redis: TestRedis;
let store: MailStore;

before(async () => {
  redis = await startRedis();
  store = await openMailStore({ url: redis.url, prefix: randomPrefix() });
});

after(async () => {
  await store?.close();
  await redis?.stop();
});

test('a 35 MB message streamed in 64 KiB chunks keeps memory bounded and is stored whole', async (t) => {
  const total = 35 * 1000 * 1000;
  const chunkSize = 64 * 1024;
  const queueId = newQueueId();
  const hash = createHash('sha256');
  const baseline = liveBytes();
  let peak = 0;
  const w = store.beginMessage(queueId);
  let sent = 0;
  let n = 0;
  while (sent < total) {
    const len = Math.min(chunkSize, total - sent);
    // a fresh buffer per chunk, as a socket would deliver them
    const chunk = Buffer.alloc(len, n & 0xff);
    chunk.writeUInt32BE(n, 0);
    chunk[len - 1] = 0x0a;
    hash.update(chunk);
    await w.write(chunk);
    sent += len;
    n++;
    if (n % 16 === 0) peak = Math.max(peak, liveBytes() - baseline);
  }
  await w.commit(envelope(queueId));
  peak = Math.max(peak, liveBytes() - baseline);
  assert.ok(peak < 20 * MiB, `live memory grew by ${(peak / MiB).toFixed(1)} MiB while streaming 35 MB`);

  const job = await store.getJob(queueId);
  assert.equal(job?.data.size, total);
  const body = await store.readBody(queueId);
  assert.equal(body?.length, total);
  assert.equal(createHash('sha256').update(body!).digest('hex'), hash.digest('hex'));
  t.diagnostic(`35 MB streamed; peak live memory growth ${(peak / MiB).toFixed(2)} MiB`);
});
