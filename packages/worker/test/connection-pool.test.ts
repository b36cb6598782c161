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

test('nextTurn: a next hop is crowded once a round of deliveries waits beyond its sessions and a message there was timed; forgotten when nobody uses it', async () => {
  const leases = new DestinationLeases(client, keySpace(randomPrefix()), { ttlMs: 5000, pollMs: 20 });
  const pool = new ConnectionPool(leases, { limit: 2, leaseWaitMs: 10_000, idleMs: 50 });
  const dest = 'smtp://far';
  assert.equal(pool.nextTurn(dest, 2), null, 'nothing known of it: go ahead');
  const admitted = [0, 1, 2, 3].map(() => pool.admit(dest));
  assert.equal(pool.inProgressFor(dest), 4);
  assert.equal(pool.nextTurn(dest, 2), null, 'no message there timed yet');
  // One message, held 1.2 s in its session.
  const first = await pool.run(dest, open, async (s) => {
    await new Promise((r) => setTimeout(r, 1200));
    return send(s, 'timed@x.test');
  });
  assert.notEqual(first, BUSY);
  const now = Date.now();
  const turn = pool.nextTurn(dest, 2, now);
  assert.ok(turn, 'two sessions, four in progress: a round waits');
  // A session frees every 600 ms or so: after the next, a round (two) is left ahead.
  assert.ok(turn.at >= now + 600 && turn.at <= now + 650, `one free ahead: ${turn.at - now} ms`);
  assert.match(turn.reason, /^2 deliveries already wait for its 2 sessions, about 12\d\d ms per message$/);
  assert.equal(pool.nextTurn(dest, 3, now), null, 'under a limit of 3, one waits: less than a round');
  assert.equal(pool.nextTurn('smtp://other', 2, now), null, 'another next hop is not crowded');
  pool.bookTurn('Q1', [dest], turn.at);
  const next = pool.nextTurn(dest, 2, now)!;
  assert.ok(next.at - turn.at >= 600 && next.at - turn.at <= 650, `the next turn comes a free after the one given: ${next.at - turn.at} ms`);
  assert.equal(pool.takeTurn('Q1'), true, 'Q1 comes back for its turn');
  assert.equal(pool.takeTurn('Q1'), false, 'once');
  assert.equal(pool.takeTurn('Q2'), false);
  admitted[0]!();
  admitted[0]!(); // twice is once
  assert.equal(pool.inProgressFor(dest), 3);
  assert.equal(pool.nextTurn(dest, 2, now), null, 'one waiting: go ahead');
  for (const release of admitted) release();
  assert.equal(pool.inProgressFor(dest), 0);
  await pool.close();
  assert.equal(pool.nextTurn(dest, 2), null, 'its session closed and nothing in progress: forgotten');
  await leases.close();
});

test('a delivery waits past leaseWaitMs while the line moves, and gives up once it stands still that long', async () => {
  const leases = new DestinationLeases(client, keySpace(randomPrefix()), { ttlMs: 5000, pollMs: 20 });
  const pool = new ConnectionPool(leases, { limit: 1, leaseWaitMs: 300, idleMs: 5000 });
  const hold = (ms: number, to: string) => async (s: SmtpSession) => {
    await new Promise((r) => setTimeout(r, ms));
    return send(s, to);
  };
  assert.notEqual(await pool.run('smtp://far', open, hold(0, 'warm@x.test')), BUSY); // the session, idle now
  // One session, three messages of 200 ms each: the third waits about 400 ms, but one finished
  // 200 ms before it would give up, so it keeps its place.
  const moving = await Promise.all([0, 1, 2].map((i) => pool.run('smtp://far', open, hold(200, `m${i}@x.test`))));
  for (const r of moving) assert.notEqual(r, BUSY);
  assert.equal(pool.opened, 1, 'all on the one session');
  // A message that holds the session for a second: the one behind it sees nothing finish for
  // 300 ms after its own wait began and the last finish, and goes back to the queue.
  const stuck = pool.run('smtp://far', open, hold(1000, 'stuck@x.test'));
  const behind = await pool.run('smtp://far', open, hold(0, 'behind@x.test'));
  assert.equal(behind, BUSY);
  assert.notEqual(await stuck, BUSY);
  await pool.close();
  await leases.close();
});
