// The ioredis pipeline override (fast-pipeline.ts): pipelines keep every custom command,
// including ones defined after the connection was opened, and give the same results.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { BULLMQ_VERSION, IOREDIS_VERSION, LibraryVersionError, checkPinnedVersion, connectRedis } from '@mailgw/queue';
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

test(`installed per connection of ioredis ${IOREDIS_VERSION}; a plain Redis keeps the library's own pipeline`, async () => {
  const originalPipeline = Redis.prototype.pipeline;
  assert.equal(Object.hasOwn(redis, 'pipeline'), true, 'connectRedis installs it on its connection');
  assert.equal(Redis.prototype.pipeline, originalPipeline, 'the class is not patched');
  const plain = new Redis(server.url);
  try {
    assert.equal(Object.hasOwn(plain, 'pipeline'), false);
    plain.defineCommand('plainTwice', { numberOfKeys: 1, lua: "return ARGV[1] .. ARGV[1]" });
    redis.defineCommand('plainTwice', { numberOfKeys: 1, lua: "return ARGV[1] .. ARGV[1]" });
    // ioredis' own Pipeline copies every command onto each pipeline; the override does not.
    assert.equal(Object.hasOwn(plain.pipeline(), 'plainTwice'), true);
    assert.equal(Object.hasOwn(redis.pipeline(), 'plainTwice'), false);
    assert.equal(await (plain as unknown as { plainTwice(k: string, v: string): Promise<string> }).plainTwice('fp:p', 'q'), 'qq');
  } finally {
    plain.disconnect();
  }
});

test('the version check refuses any other ioredis or BullMQ, naming expected and installed versions', () => {
  assert.doesNotThrow(() => checkPinnedVersion('ioredis', IOREDIS_VERSION, IOREDIS_VERSION, 'x.ts'));
  assert.throws(() => checkPinnedVersion('ioredis', IOREDIS_VERSION, '6.0.1', 'packages/queue/src/library-overrides.ts'), (e: unknown) => {
    assert.ok(e instanceof LibraryVersionError);
    assert.match(e.message, /^ioredis 6\.0\.1 is installed, but mailgw overrides internals of ioredis 6\.0\.0 exactly \(packages\/queue\/src\/library-overrides\.ts\)/);
    return true;
  });
  assert.throws(() => checkPinnedVersion('bullmq', BULLMQ_VERSION, '6.8.0', 'y.ts'), /bullmq 6\.8\.0 is installed, but mailgw overrides internals of bullmq 6\.7\.0/);
  // The check and package.json agree, so npm installs exactly what the check accepts.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(pkg.dependencies.ioredis, IOREDIS_VERSION);
  assert.equal(pkg.dependencies.bullmq, BULLMQ_VERSION);
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
