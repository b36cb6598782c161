// Redis targets as strings: unix:// sockets parse to ioredis options, and a real redis-server
// listening on its Unix socket serves the same data as on its port.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { connectRedis, isRedisTarget, startRedisServer, unixSocketOptions } from '@mailgw/queue';

test('unix:// targets: path, db and credentials', () => {
  assert.deepEqual(unixSocketOptions('unix:///run/redis/redis.sock'), { path: '/run/redis/redis.sock' });
  assert.deepEqual(unixSocketOptions('unix:///run/redis/redis.sock?db=3'), { path: '/run/redis/redis.sock', db: 3 });
  assert.deepEqual(unixSocketOptions('unix://:s%40cret@/var/run/r.sock'), { path: '/var/run/r.sock', password: 's@cret' });
  assert.deepEqual(unixSocketOptions('unix://mailgw:pw@/var/run/r.sock'), { path: '/var/run/r.sock', username: 'mailgw', password: 'pw' });
  assert.throws(() => unixSocketOptions('unix://relative.sock'), /expected unix:\/\/\/path\/to\/redis\.sock/);
  assert.ok(isRedisTarget('unix:///run/redis/redis.sock'));
  assert.ok(!isRedisTarget('/run/redis/redis.sock'));
});

test('a redis-server with unixSocket answers on unix:// with the data written over TCP', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-unix-'));
  const server = await startRedisServer({ dataDir: path.join(dir, 'data'), unixSocket: path.join(dir, 'redis.sock') });
  const tcp = connectRedis(server.url, {});
  const unix = connectRedis(server.socketUrl!, {});
  try {
    assert.equal(server.socketUrl, `unix://${path.join(dir, 'redis.sock')}`);
    await tcp.set('k', 'over tcp');
    assert.equal(await unix.get('k'), 'over tcp');
    const me = String(await unix.client('INFO'));
    assert.match(me, / flags=U /, 'this client came in over the Unix socket');
  } finally {
    tcp.disconnect();
    unix.disconnect();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a socket path too long for a socket address leaves the server on TCP only', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-unix-'));
  const server = await startRedisServer({ dataDir: path.join(dir, 'data'), unixSocket: path.join(dir, 'x'.repeat(120), 'redis.sock') });
  try {
    assert.equal(server.socketUrl, null);
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
