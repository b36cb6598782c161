import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { keySpace } from '@mailgw/queue';
import { BUSY, ConnectionPool } from '../src/connection-pool.js';
import { DestinationLeases } from '../src/destination-leases.js';
import { DEFAULT_TIMEOUTS, SmtpSession } from '../src/smtp-session.js';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { startFarSide, type FarSide } from '../../../test/worker/helpers/far-side.js';
import { randomPrefix } from '../../../test/worker/helpers/gateway.js';

let redis: TestRedis;
let client: Redis;
let far: FarSide;
before(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  far = await startFarSide();
});
after(async () => {
  await far?.close();
  client?.disconnect();
  await redis?.stop();
});

const open = () => SmtpSession.open({ address: '127.0.0.1', port: far.port, hostName: 'far.test', secure: false, lmtp: false, tls: { requireTLS: false, tlsAuthLevel: 'EncryptionOnly', tlsDomain: null, source: 'test', requiredBy: null }, clientName: 'gw.test', auth: null, timeouts: DEFAULT_TIMEOUTS });
const send = (s: SmtpSession, to: string) => s.send({ from: 'a@x.test', to: [to], size: 10, use8BitMime: false }, Buffer.from('Subject: p\r\n\r\nx\r\n'));

test('a full destination answers BUSY instead of opening another connection; idle sessions are reused', async () => {
  const leases = new DestinationLeases(client, keySpace(randomPrefix()), { ttlMs: 5000, pollMs: 20 });
  const pool = new ConnectionPool(leases, { limit: 1, leaseWaitMs: 100, idleMs: 5000 });
  let release: () => void = () => undefined;
  let inUse: () => void = () => undefined;
  const started = new Promise<void>((r) => {
    inUse = r;
  });
  const holding = pool.run('smtp://far', open, async (s) => {
    const go = new Promise<void>((r) => {
      release = r;
    });
    inUse();
    await go;
    return send(s, 'one@x.test');
  });
  await started; // the only slot is taken by a live session
  const second = await pool.run('smtp://far', open, (s) => send(s, 'two@x.test'));
  assert.equal(second, BUSY);
  release();
  const first = await holding;
  assert.notEqual(first, BUSY);
  const third = await pool.run('smtp://far', open, (s) => send(s, 'three@x.test'));
  assert.notEqual(third, BUSY);
  assert.equal(pool.opened, 1, 'the idle session was reused');
  assert.equal(far.messages.length, 2);
  await pool.close();
  await leases.close();
  assert.equal(pool.size, 0);
});

test('a connection failure releases its lease', async () => {
  const leases = new DestinationLeases(client, keySpace(randomPrefix()), { ttlMs: 5000 });
  const pool = new ConnectionPool(leases, { limit: 1, leaseWaitMs: 100 });
  const refused = () => SmtpSession.open({ address: '127.0.0.1', port: 1, hostName: 'nowhere', secure: false, lmtp: false, tls: { requireTLS: false, tlsAuthLevel: 'EncryptionOnly', tlsDomain: null, source: 'test', requiredBy: null }, clientName: 'gw', auth: null, timeouts: DEFAULT_TIMEOUTS });
  await assert.rejects(pool.run('smtp://nowhere', refused, async () => 1), /Could not connect/);
  assert.equal(await leases.count('smtp://nowhere'), 0);
  await leases.close();
});

test('with every slot held by this process, deliveries wait for its sessions without asking Redis', async () => {
  const leases = new DestinationLeases(client, keySpace(randomPrefix()), { ttlMs: 5000, pollMs: 20 });
  let asked = 0;
  const tryAcquire = leases.tryAcquire.bind(leases);
  leases.tryAcquire = (d, l) => {
    asked++;
    return tryAcquire(d, l);
  };
  const pool = new ConnectionPool(leases, { limit: 2, leaseWaitMs: 5000, idleMs: 5000 });
  const before = far.messages.length;
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.run('smtp://far', open, (s) => send(s, `n${i}@x.test`))));
  assert.ok(results.every((r) => r !== BUSY));
  assert.equal(far.messages.length - before, 8, 'all eight delivered');
  assert.equal(pool.opened, 2, 'over the two sessions the limit allows');
  assert.equal(asked, 2, 'Redis was asked for the two leases only');
  assert.equal(await leases.count('smtp://far'), 2);
  await pool.close();
  await leases.close();
  assert.equal(await leases.count('smtp://far'), 0);
});
