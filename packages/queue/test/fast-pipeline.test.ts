// The ioredis pipeline override (fast-pipeline.ts): pipelines keep every custom command,
// including ones defined after the connection was opened, and give the same results.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { connectRedis } from '@mailgw/queue';
import { FAST_PIPELINE_FOR, installFastPipeline } from '../src/fast-pipeline.js';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';

let server: TestRedis;
let redis: Redis;
before(async () => {
  server = await startRedis();
  redis = connectRedis(server.url, { enableAutoPipelining: true });
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

type WithScripts = Redis & { twice(key: string, v: string): Promise<string>; later(key: string): Promise<string | null> };

test(`installed on connections of ioredis ${FAST_PIPELINE_FOR} (re-check the override before upgrading)`, () => {
  assert.equal(Object.prototype.hasOwnProperty.call(redis, 'pipeline'), true);
  assert.equal(installFastPipeline(connectRedis(server.url, { lazyConnect: true })), true);
});

test('scripts and built-in commands run through pipelines and auto-pipelining', async () => {
  redis.defineCommand('twice', { numberOfKeys: 1, lua: "redis.call('SET', KEYS[1], ARGV[1] .. ARGV[1]); return redis.call('GET', KEYS[1])" });
  const r = redis as WithScripts;
  const p = redis.pipeline() as unknown as { twice(k: string, v: string): unknown; get(k: string): unknown; exec(): Promise<Array<[Error | null, unknown]>> };
  p.twice('fp:a', 'x');
  p.get('fp:a');
  assert.deepEqual(await p.exec(), [
    [null, 'xx'],
    [null, 'xx'],
  ]);
  // Same tick: one auto-pipeline carrying a script and plain commands.
  const [a, b, c] = await Promise.all([r.twice('fp:b', 'y'), redis.set('fp:c', 'z'), redis.getBuffer('fp:c')]);
  assert.equal(a, 'yy');
  assert.equal(b, 'OK');
  assert.ok(Buffer.isBuffer(c) && c.toString() === 'z');
  // A command defined after pipelines were built is on the next ones.
  redis.defineCommand('later', { numberOfKeys: 1, lua: "return redis.call('GET', KEYS[1])" });
  assert.equal(await r.later('fp:b'), 'yy');
  // Redefined under the same name: pipelines take the new one (auto-pipelining builds one here).
  redis.defineCommand('later', { numberOfKeys: 1, lua: "return 'new ' .. redis.call('GET', KEYS[1])" });
  assert.equal(await r.later('fp:b'), 'new yy');
  const multi = await redis.multi().set('fp:d', '1').incr('fp:d').exec();
  assert.deepEqual(multi, [
    [null, 'OK'],
    [null, 2],
  ]);
});
