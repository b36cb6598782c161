import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { REDIS_INSTALL_HINT, RedisServerNotFoundError, findExecutable } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';

const servers: TestRedis[] = [];
after(async () => {
  for (const s of servers) await s.stop();
});

test('the harness runs redis-server with the product configuration', async () => {
  const r = await startRedis();
  servers.push(r);
  assert.equal(r.host, '127.0.0.1');
  assert.equal(r.url, `redis://127.0.0.1:${r.port}`);
  const c = new Redis(r.url);
  try {
    const get = async (name: string) => (await c.config('GET', name))[1];
    assert.equal(await get('appendonly'), 'yes');
    // redis.durability's default, fsync: every write is on disk before Redis answers it.
    assert.equal(await get('appendfsync'), 'always');
    assert.equal(await get('maxmemory-policy'), 'noeviction');
    // The AOF is rewritten from 512 MB on, not Redis' 64 MB (every body passes through it).
    assert.equal(await get('auto-aof-rewrite-min-size'), String(512 * 1024 * 1024));
    assert.equal(await get('save'), '');
    assert.equal(await get('bind'), '127.0.0.1');
    assert.equal(await get('protected-mode'), 'no');
    assert.equal(await get('dir'), r.dataDir);
  } finally {
    c.disconnect();
  }
});

test('restart keeps the port and the data (AOF); stop removes the data dir', async () => {
  const r = await startRedis();
  servers.push(r);
  const c = new Redis(r.url, { maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  try {
    await c.set('k', 'v');
    await r.restart();
    assert.equal(await c.get('k'), 'v');
    await c.set('k2', 'v2');
    await new Promise((res) => setTimeout(res, 1200)); // appendfsync everysec
    await r.kill('SIGKILL');
    await r.restart();
    assert.equal(await c.get('k2'), 'v2');
  } finally {
    c.disconnect();
  }
  await r.stop();
  assert.equal(existsSync(r.dataDir), false);
});

test('a missing redis-server is reported with the install command and the REDIS_URL alternative', () => {
  assert.equal(findExecutable('mailgw-no-such-binary', '/nonexistent'), null);
  assert.ok(findExecutable('sh'));
  const err = new RedisServerNotFoundError();
  assert.match(err.message, /apt-get install -y redis-server/);
  assert.match(err.message, /REDIS_URL=/);
  assert.ok(err.message.includes(REDIS_INSTALL_HINT));
});
