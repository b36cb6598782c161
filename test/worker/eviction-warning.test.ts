// A queue's Redis that may evict keys can drop queued mail: `mailgw worker` says so once at
// start, in the words mailgw listen and start use, naming the policy.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { randomPrefix } from './helpers/gateway.js';
import { spawnWorker, writeConfig, type WorkerProcess } from './helpers/worker-process.js';

let redis: TestRedis;
let admin: Redis;
let worker: WorkerProcess | undefined;
let dir: string;

before(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
  dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-eviction-'));
});

after(async () => {
  worker?.child.kill('SIGTERM');
  await worker?.exited;
  admin?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('mailgw worker warns once when the queue\'s Redis may evict keys', async () => {
  const config = writeConfig(dir, ['acceptedDomains: [{ domain: contoso.test, default: true }]', `redis: { prefix: "${randomPrefix()}" }`, ''].join('\n'));
  worker = spawnWorker(config, { REDIS_URL: redis.url });
  await worker.ready;
  const lines = worker.logs.filter((l) => /maxmemory-policy/.test(String(l.msg)));
  assert.equal(lines.length, 1, JSON.stringify(lines));
  assert.equal(lines[0]!.level, 40);
  assert.equal(lines[0]!.maxmemoryPolicy, 'allkeys-lru');
  assert.equal(lines[0]!.msg, 'Redis maxmemory-policy is "allkeys-lru", not "noeviction": under memory pressure Redis may drop queued mail (set maxmemory-policy noeviction)');
});
