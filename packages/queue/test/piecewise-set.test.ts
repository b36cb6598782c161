// A whole message from PIECEWISE_SET_BYTES on is written to Redis from its pieces, on a corked
// socket, ahead of the auto-pipelined enqueue script (piecewise-set.ts). What must hold: the
// stored bytes are the header and the pieces in order, for every size around the threshold,
// with many messages (small and large) committed in the same turns of the event loop; and a
// connection that cannot take the direct write falls back to plain commands.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { findFreePort, findRedisServer, newQueueId, openMailStore, type MailStore } from '@mailgw/queue';
import { PIECEWISE_SET_BYTES, corkUntilPipelined, setInPieces } from '../src/piecewise-set.js';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { allKeys, binaryBody, envelope, inspector, randomPrefix } from './fixtures.js';

let redis: TestRedis;
let inspect: Redis;
let store: MailStore;
const prefix = randomPrefix();

before(async () => {
  redis = await startRedis();
  inspect = inspector(redis.url);
  store = await openMailStore({ url: redis.url, prefix });
});

after(async () => {
  await store?.close();
  inspect?.disconnect();
  await redis?.stop();
});

/** Writes `body` in uneven pieces, commits it with `header`; returns what Redis has for it. */
async function storeAndRead(body: Buffer, header: Buffer, pieceSizes: readonly number[]): Promise<Buffer | null> {
  const queueId = newQueueId();
  const w = store.beginMessage(queueId);
  for (let off = 0, i = 0; off < body.length; i++) {
    const n = Math.min(pieceSizes[i % pieceSizes.length]!, body.length - off);
    await w.write(Buffer.from(body.subarray(off, off + n)));
    off += n;
  }
  const job = await w.commit(envelope(queueId), { header });
  assert.equal(job.size, header.length + body.length);
  return store.readBody(queueId);
}

/**
 * Counts the SETs the store's own (real) connection sends through setInPieces: the commands
 * that carry their own toWritable. Without it a store that never took the path would pass.
 */
function countPiecewiseSets(s: MailStore): { readonly count: number; restore(): void } {
  const conn = s.connection;
  const original = conn.sendCommand;
  let count = 0;
  conn.sendCommand = function (this: typeof conn, command, ...rest) {
    if (command.name === 'set' && Object.hasOwn(command, 'toWritable')) count++;
    return original.call(this, command, ...rest);
  } as typeof conn.sendCommand;
  return {
    get count() {
      return count;
    },
    restore: () => {
      conn.sendCommand = original;
    },
  };
}

test('messages around the threshold are stored byte for byte, header first; from the threshold on, in pieces', async () => {
  const header = Buffer.from('Received: from client.test.example\r\nSubject: piecewise\r\n\r\n');
  const sizes = [PIECEWISE_SET_BYTES - header.length - 1, PIECEWISE_SET_BYTES - header.length, PIECEWISE_SET_BYTES, 100 * 1024, 250 * 1024];
  const piecewise = countPiecewiseSets(store);
  for (const size of sizes) {
    const body = binaryBody(size, size);
    for (const pieces of [[size], [1, 4096, 7], [65536]]) {
      const before = piecewise.count;
      const stored = await storeAndRead(body, header, pieces);
      assert.equal(piecewise.count - before, header.length + size >= PIECEWISE_SET_BYTES ? 1 : 0, `${header.length + size} bytes: in pieces from ${PIECEWISE_SET_BYTES} on`);
      assert.ok(stored, `${size} bytes in pieces of ${pieces.join('/')}: stored`);
      assert.equal(stored.length, header.length + size);
      assert.ok(stored.equals(Buffer.concat([header, body])), `${size} bytes in pieces of ${pieces.join('/')}: same bytes`);
    }
  }
  piecewise.restore();
  // The incoming keys were renamed to the bodies: none is left behind.
  assert.deepEqual(await allKeys(inspect, `${prefix}:incoming:*`), []);
});

test('large and small messages committed in the same turns keep their own bytes', async () => {
  const messages = Array.from({ length: 40 }, (_, i) => {
    const size = i % 3 === 0 ? 200 + i : 20_000 + i * 3001;
    return { queueId: newQueueId(), body: binaryBody(size, i + 1), header: Buffer.from(`X-Seq: ${i}\r\n\r\n`) };
  });
  const writers = messages.map((m) => store.beginMessage(m.queueId));
  await Promise.all(writers.map((w, i) => w.write(messages[i]!.body)));
  // All commits issued in one tick: their SETs, corked writes and scripts interleave.
  await Promise.all(writers.map((w, i) => w.commit(envelope(messages[i]!.queueId), { header: messages[i]!.header })));
  for (const m of messages) {
    const stored = await store.readBody(m.queueId);
    assert.ok(stored?.equals(Buffer.concat([m.header, m.body])), `message of ${m.body.length} bytes intact`);
  }
});

test('setInPieces writes the pieces as one value, with its TTL', async () => {
  const r = new Redis(redis.url, { enableAutoPipelining: true, maxRetriesPerRequest: 1 });
  try {
    await r.ping();
    const pieces = [Buffer.from('é'), Buffer.alloc(0), binaryBody(70_000, 3), Buffer.from('\r\n')];
    const bytes = pieces.reduce((n, p) => n + p.length, 0);
    const release = corkUntilPipelined(r);
    assert.ok(release, 'a ready connection takes the direct write');
    const set = setInPieces(r, `${prefix}:pieces`, pieces, bytes, 60);
    const echoed = r.echo('after'); // auto-pipelined in the same turn: written after the SET
    release();
    assert.equal(await set, 'OK');
    assert.equal(await echoed, 'after');
    assert.ok((await r.getBuffer(`${prefix}:pieces`))?.equals(Buffer.concat(pieces)));
    const ttl = await r.ttl(`${prefix}:pieces`);
    assert.ok(ttl > 0 && ttl <= 60, `ttl ${ttl}`);
  } finally {
    r.disconnect();
  }
});

test('a connection that is not ready is not corked: plain commands are used', async () => {
  const r = new Redis(redis.url, { lazyConnect: true });
  try {
    assert.equal(r.status, 'wait');
    assert.equal(corkUntilPipelined(r), false);
  } finally {
    r.disconnect();
  }
});

test('a store whose Redis is gone refuses a large message and leaves no writer half-done', async () => {
  const other = await startRedis();
  const s = await openMailStore({ url: other.url, prefix: randomPrefix(), commandTimeoutMs: 500 });
  try {
    const queueId = newQueueId();
    const w = s.beginMessage(queueId);
    await w.write(binaryBody(100 * 1024, 9));
    await other.stop();
    await assert.rejects(w.commit(envelope(queueId)), (e: Error) => e.name === 'QueueUnavailableError');
    assert.equal(w.state, 'failed');
  } finally {
    await s.close();
  }
});

test('over TLS (rediss://) the corked pieces arrive whole too', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-redis-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const port = await findFreePort('127.0.0.1');
  const binary = findRedisServer();
  assert.ok(binary, 'redis-server on PATH');
  const server = spawn(binary, ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', cert, '--tls-key-file', key, '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const r = new Redis({ host: '127.0.0.1', port, tls: { ca: await readFile(cert) }, enableAutoPipelining: true, maxRetriesPerRequest: 1, retryStrategy: (n) => (n > 50 ? null : 100) });
  // Refused until the server listens: ioredis retries, and would print each refusal unhandled.
  r.on('error', () => undefined);
  t.after(async () => {
    r.disconnect();
    server.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  await r.ping();
  const pieces = [Buffer.from('Subject: tls\r\n\r\n'), binaryBody(100 * 1024, 11), binaryBody(3000, 12)];
  const bytes = pieces.reduce((n, p) => n + p.length, 0);
  const release = corkUntilPipelined(r);
  assert.ok(release, 'a ready TLS connection takes the direct write');
  const set = setInPieces(r, 'tls:pieces', pieces, bytes, 60);
  const echoed = r.echo('after');
  release();
  assert.equal(await set, 'OK');
  assert.equal(await echoed, 'after');
  assert.ok((await r.getBuffer('tls:pieces'))?.equals(Buffer.concat(pieces)));
});
