import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import {
  QueueUnavailableError,
  findFreePort,
  newQueueId,
  openMailStore,
  type MailStore,
  type MailStoreOptions,
  type MessageWriter,
} from '@mailgw/queue';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { allKeys, envelope, eventually, inspector, randomPrefix } from './fixtures.js';

const isUnavailable = (err: unknown) => err instanceof QueueUnavailableError && /mail queue unavailable/.test(err.message);

/** Writes until write() rejects (a flush failed); returns the rejection. */
async function writeUntilRejected(w: MessageWriter, chunk: Buffer, max = 20): Promise<unknown> {
  for (let i = 0; i < max; i++) {
    try {
      await w.write(chunk);
    } catch (err) {
      return err;
    }
  }
  throw new Error(`write() did not reject after ${max} writes`);
}

async function elapsed<T>(p: Promise<T>): Promise<[number, PromiseSettledResult<T>]> {
  const t0 = Date.now();
  const [r] = await Promise.allSettled([p]);
  return [Date.now() - t0, r];
}

describe('Redis outages', () => {
  let redis: TestRedis;
  let inspect: Redis;
  const stores: MailStore[] = [];
  const opts = (o: Partial<MailStoreOptions> = {}): MailStoreOptions => ({
    url: redis.url,
    prefix: randomPrefix(),
    commandTimeoutMs: 1000,
    connectTimeoutMs: 1000,
    flushThresholdBytes: 1024,
    ...o,
  });
  const track = (s: MailStore) => {
    stores.push(s);
    return s;
  };

  before(async () => {
    redis = await startRedis();
    inspect = inspector(redis.url);
    inspect.on('error', () => undefined);
  });

  after(async () => {
    for (const s of stores) await s.close();
    inspect?.disconnect();
    await redis?.stop();
  });

  test('Redis killed: write and commit reject with QueueUnavailableError within seconds, then the store recovers', async () => {
    const s = track(await openMailStore(opts()));
    const idA = newQueueId();
    const a = s.beginMessage(idA);
    await a.write(Buffer.alloc(100, 1)); // buffered only
    const b = s.beginMessage(newQueueId());
    await b.write(Buffer.alloc(3000, 2)); // flushed

    await redis.kill('SIGKILL');

    const t0 = Date.now();
    const writeErr = await writeUntilRejected(b, Buffer.alloc(3000, 3));
    assert.ok(isUnavailable(writeErr), String(writeErr));
    await assert.rejects(b.write(Buffer.from('x')), isUnavailable); // stays failed, rejects at once
    assert.ok(Date.now() - t0 < 3000, `write took ${Date.now() - t0} ms to fail`);

    const [ms, res] = await elapsed(a.commit(envelope(idA)));
    assert.equal(res.status, 'rejected');
    assert.ok(isUnavailable((res as PromiseRejectedResult).reason), String((res as PromiseRejectedResult).reason));
    assert.ok(ms < 3000, `commit took ${ms} ms to fail`);
    assert.equal(a.state, 'failed');

    const c = s.beginMessage(newQueueId());
    await c.write(Buffer.from('small'));
    const [ms2, res2] = await elapsed(c.commit(envelope(c.queueId)));
    assert.equal(res2.status, 'rejected');
    assert.ok(isUnavailable((res2 as PromiseRejectedResult).reason));
    assert.ok(ms2 < 3000, `commit took ${ms2} ms to fail`);

    await assert.rejects(s.ping(), isUnavailable);
    await assert.rejects(s.readBody(idA), isUnavailable);
    await b.abort(); // never throws, even with Redis down
    assert.notEqual(s.status, 'ready');

    await redis.restart();
    await eventually(async () => (await s.ping(), true), 10_000, 'the store to reconnect');
    const id = newQueueId();
    const d = s.beginMessage(id);
    await d.write(Buffer.alloc(5000, 7));
    await d.commit(envelope(id));
    assert.equal((await s.getJob(id))?.id, id);
    assert.equal((await s.readBody(id))?.length, 5000);
  });

  test('openMailStore fails fast with QueueUnavailableError when nothing listens', async () => {
    const port = await findFreePort();
    const [ms, res] = await elapsed(openMailStore(opts({ url: `redis://127.0.0.1:${port}` })));
    assert.equal(res.status, 'rejected');
    assert.ok(isUnavailable((res as PromiseRejectedResult).reason), String((res as PromiseRejectedResult).reason));
    assert.ok(ms < 3000, `took ${ms} ms`);
  });

  test('requireReady: false starts while Redis is down and works once it is up', async () => {
    await redis.kill('SIGKILL');
    const s = track(await openMailStore(opts({ requireReady: false })));
    const w = s.beginMessage(newQueueId());
    await w.write(Buffer.from('hello'));
    const [ms, res] = await elapsed(w.commit(envelope(w.queueId)));
    assert.equal(res.status, 'rejected');
    assert.ok(isUnavailable((res as PromiseRejectedResult).reason));
    assert.ok(ms < 3000, `took ${ms} ms`);

    await redis.restart();
    await eventually(async () => (await s.ping(), true), 10_000, 'the store to connect');
    const id = newQueueId();
    const w2 = s.beginMessage(id);
    await w2.write(Buffer.from('hello again'));
    await w2.commit(envelope(id));
    assert.equal((await s.getJob(id))?.data.size, 11);
  });

  test('Redis frozen (SIGSTOP): commit times out, and once thawed nothing of the message remains', async () => {
    await eventually(async () => (await inspect.ping()) === 'PONG', 10_000, 'the inspector to reconnect');
    const s = track(await openMailStore(opts()));
    const id = newQueueId();
    const w = s.beginMessage(id);
    await w.write(Buffer.alloc(3000, 1));
    await w.write(Buffer.alloc(10, 1));
    await redis.kill('SIGSTOP');
    let thawed = false;
    try {
      const [ms, res] = await elapsed(w.commit(envelope(id)));
      assert.equal(res.status, 'rejected');
      assert.ok(isUnavailable((res as PromiseRejectedResult).reason), String((res as PromiseRejectedResult).reason));
      assert.ok(ms < 5000, `took ${ms} ms`);
      await redis.kill('SIGCONT');
      thawed = true;
    } finally {
      if (!thawed) await redis.kill('SIGCONT');
    }
    // The commands that were queued in the frozen server run now, in order:
    // body, job, then the cleanup (DEL body, remove job).
    await eventually(
      async () => (await allKeys(inspect, `${s.prefix}:body:*`)).length === 0 && (await s.getJob(id)) === null,
      10_000,
      'the failed message to be cleaned up',
    );
    const id2 = newQueueId();
    const w2 = s.beginMessage(id2);
    await w2.write(Buffer.from('after the thaw'));
    await w2.commit(envelope(id2));
    assert.ok(await s.getJob(id2));
  });
});
