import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { keySpace } from '@mailgw/queue';
import { DestinationLeases } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { randomPrefix } from '../../../test/worker/helpers/gateway.js';

let redis: TestRedis;
const clients: Redis[] = [];
const client = () => {
  const c = new Redis(redis.url, { maxRetriesPerRequest: null });
  clients.push(c);
  return c;
};

before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await redis?.stop();
});

test('at most `limit` leases per destination across independent holders (two "workers")', async () => {
  const keys = keySpace(randomPrefix());
  const a = new DestinationLeases(client(), keys, { ttlMs: 5000 });
  const b = new DestinationLeases(client(), keys, { ttlMs: 5000 });
  const got = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).tryAcquire('smtp://relay:25', 3)));
  assert.equal(got.filter(Boolean).length, 3);
  assert.equal(await a.count('smtp://relay:25'), 3);
  // another destination is independent
  assert.ok(await a.tryAcquire('mx:other.test', 3));
  // releasing one frees exactly one slot
  const i = got.findIndex((l) => l !== null);
  await (i % 2 ? a : b).release(got[i]!);
  assert.ok(await b.tryAcquire('smtp://relay:25', 3));
  assert.equal(await b.tryAcquire('smtp://relay:25', 3), null);
  await a.close();
  await b.close();
  assert.equal(await a.count('smtp://relay:25'), 0);
});

test('a holder that dies frees its slots when the lease expires; live holders keep theirs by refreshing', async () => {
  const keys = keySpace(randomPrefix());
  const dead = new DestinationLeases(client(), keys, { ttlMs: 600 });
  const live = new DestinationLeases(client(), keys, { ttlMs: 600 });
  assert.ok(await dead.tryAcquire('d', 2));
  assert.ok(await live.tryAcquire('d', 2));
  // "kill" the first holder: it stops refreshing without releasing
  (dead as unknown as { timer: NodeJS.Timeout }).timer.close();
  const waiter = new DestinationLeases(client(), keys, { ttlMs: 600, pollMs: 50 });
  assert.equal(await waiter.tryAcquire('d', 2), null);
  const lease = await waiter.acquire('d', 2, 10_000);
  assert.ok(lease, 'the dead holder\'s slot came free');
  // the live holder refreshed its lease all along: still 2 live leases, no third
  assert.equal(await waiter.count('d'), 2);
  assert.equal(await waiter.tryAcquire('d', 2), null);
  await Promise.all([live.close(), waiter.close()]);
});
