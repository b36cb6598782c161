// Redis targets as strings: unix:// sockets parse to ioredis options, and a real redis-server
// listening on its Unix socket serves the same data as on its port.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { connectRedis, isRedisTarget, redisConnectHint, redisUrlForDisplay, startRedisServer, unixSocketOptions } from '@mailgw/queue';

test('unix:// targets: path, db and credentials', () => {
  assert.deepEqual(unixSocketOptions('unix:///run/redis/redis.sock'), { path: '/run/redis/redis.sock' });
  assert.deepEqual(unixSocketOptions('unix:///run/redis/redis.sock?db=3'), { path: '/run/redis/redis.sock', db: 3 });
  assert.deepEqual(unixSocketOptions('unix://:s%40cret@/var/run/r.sock'), { path: '/var/run/r.sock', password: 's@cret' });
  assert.deepEqual(unixSocketOptions('unix://mailgw:pw@/var/run/r.sock'), { path: '/var/run/r.sock', username: 'mailgw', password: 'pw' });
  assert.throws(() => unixSocketOptions('unix://relative.sock'), /expected unix:\/\/\/path\/to\/redis\.sock/);
  assert.ok(isRedisTarget('unix:///run/redis/redis.sock'));
  assert.ok(!isRedisTarget('/run/redis/redis.sock'));
});

test('a target shown in messages and logs has no password', () => {
  assert.equal(redisUrlForDisplay('redis://:s3cret@10.0.0.5:6379/2'), 'redis://:***@10.0.0.5:6379/2');
  assert.equal(redisUrlForDisplay('rediss://mailgw:p%40ss@redis.contoso.test:6380'), 'rediss://mailgw:***@redis.contoso.test:6380');
  assert.equal(redisUrlForDisplay('unix://:pw@/run/redis/redis.sock?db=1'), 'unix://:***@/run/redis/redis.sock?db=1');
  // Written without percent-encoding, @ and / in a password are hidden too.
  assert.equal(redisUrlForDisplay('redis://:p@ss/w0rd@10.0.0.5:6379'), 'redis://:***@10.0.0.5:6379');
  // Nothing to hide: unchanged (a sentinel set's master name is not a password).
  for (const t of ['redis://10.0.0.5:6379', 'rediss://user@redis.contoso.test:6380', 'redis+sentinel://mymaster@10.0.0.1:26379,10.0.0.2:26379', 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000', 'unix:///run/redis/redis.sock']) {
    assert.equal(redisUrlForDisplay(t), t);
  }
});

test('a certificate Node does not trust, or one for another name, gets a hint; other failures none', () => {
  for (const m of ['unable to verify the first certificate', 'self-signed certificate', 'self-signed certificate in certificate chain', 'unable to get local issuer certificate', 'certificate has expired', 'Redis not ready within 5000 ms (status reconnecting: unable to verify the first certificate)']) {
    assert.match(redisConnectHint(m) ?? '', /NODE_EXTRA_CA_CERTS=\/path\/to\/ca\.pem/, m);
  }
  assert.match(redisConnectHint("Hostname/IP does not match certificate's altnames: IP: 10.0.0.9 is not in the cert's list: 127.0.0.1") ?? '', /subjectAltName/);
  for (const m of ['connect ECONNREFUSED 127.0.0.1:6379', 'WRONGPASS invalid username-password pair or user is disabled.', 'Redis not ready within 5000 ms (status connecting)']) assert.equal(redisConnectHint(m), null, m);
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
