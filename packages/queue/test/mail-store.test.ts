import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { Redis as IORedis } from 'ioredis';
import { Queue, Worker } from 'bullmq';
import {
  DeliveryJobSchema,
  InvalidDeliveryJobError,
  QueueUnavailableError,
  newQueueId,
  openMailStore,
  type MailStore,
  type MailStoreOptions,
} from '@mailgw/queue';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { allKeys, binaryBody, envelope, inspector, parts, randomPrefix } from './fixtures.js';

describe('mail store', () => {
  let redis: TestRedis;
  let inspect: Redis;
  const stores: MailStore[] = [];

  before(async () => {
    redis = await startRedis();
    inspect = inspector(redis.url);
  });

  after(async () => {
    for (const s of stores) await s.close();
    inspect?.disconnect();
    await redis?.stop();
  });

  async function store(opts: Partial<MailStoreOptions> = {}): Promise<MailStore> {
    const s = await openMailStore({ url: redis.url, prefix: randomPrefix(), ...opts });
    stores.push(s);
    return s;
  }

  test('body round-trips byte for byte (binary, CR/LF/NUL, several flushes > 1 MiB)', async () => {
    const s = await store();
    const body = binaryBody(1.5 * 1024 * 1024 + 17, 7);
    const queueId = newQueueId();
    const w = s.beginMessage(queueId);
    // uneven chunk sizes, including tiny ones
    const sizes = [1, 2, 3, 1000, 65536, 7, 300_000, 1];
    let off = 0;
    for (let i = 0; off < body.length; i++) {
      const n = Math.min(sizes[i % sizes.length]!, body.length - off);
      await w.write(Buffer.from(body.subarray(off, off + n)));
      off += n;
    }
    assert.equal(w.bytesWritten, body.length);
    const job = await w.commit(envelope(queueId));
    assert.equal(w.state, 'committed');
    assert.equal(job.size, body.length);
    const stored = await s.readBody(queueId);
    assert.ok(stored);
    assert.equal(stored.length, body.length);
    assert.equal(createHash('sha256').update(stored).digest('hex'), createHash('sha256').update(body).digest('hex'));
    assert.ok(stored.equals(body));
  });

  test('small and empty bodies', async () => {
    const s = await store();
    const small = Buffer.from('Subject: hi\r\n\r\n.\r\n..\r\nbare\nLF and bare\rCR\0NUL\r\n');
    const id1 = newQueueId();
    const w1 = s.beginMessage(id1);
    await w1.write(small);
    await w1.commit(envelope(id1));
    assert.ok((await s.readBody(id1))!.equals(small));

    const id2 = newQueueId();
    const w2 = s.beginMessage(id2);
    const job = await w2.commit(envelope(id2));
    assert.equal(job.size, 0);
    assert.deepEqual(await s.readBody(id2), Buffer.alloc(0));
  });

  test('the job is stored, schema-valid, with jobId = queueId and a reference to the body', async () => {
    const s = await store();
    const queueId = newQueueId();
    const w = s.beginMessage(queueId);
    await w.write(Buffer.from('hello\r\n'));
    const committed = await w.commit(envelope(queueId, { rcptTo: [{ ...parts('a@b.example'), notify: ['failure'] }] }));
    const stored = await s.getJob(queueId);
    assert.ok(stored);
    assert.equal(stored.id, queueId);
    assert.equal(stored.name, 'deliver');
    assert.deepEqual(stored.data, committed);
    assert.equal(stored.data.v, 2);
    assert.equal(stored.data.bodyKey, `${s.prefix}:body:${queueId}`);
    assert.equal(stored.data.size, 7);
    assert.deepEqual(stored.data.rcptTo[0]!.notify, ['FAILURE']);
    assert.ok(DeliveryJobSchema.safeParse(stored.data).success);
    // the raw BullMQ hash under the prefix, data as JSON without the body
    const raw = await inspect.hget(`${s.prefix}:${s.queueName}:${queueId}`, 'data');
    assert.ok(raw);
    assert.deepEqual(JSON.parse(raw), committed);
    assert.equal(await inspect.llen(`${s.prefix}:${s.queueName}:wait`), 1);
    assert.equal(await s.getJob(newQueueId()), null);
  });

  test('the one-script commit writes what BullMQ queue.add writes: the same hash fields, events, wait list and marker; a Worker takes it', async () => {
    const prefix = randomPrefix();
    const s = await store({ prefix, queueName: 'mine' });
    const queueId = newQueueId();
    const w = s.beginMessage(queueId);
    await w.write(Buffer.from('hello\r\n'));
    const committed = await w.commit(envelope(queueId));
    // The same job added by BullMQ itself, to a sibling queue with the same default options.
    const conns = [new IORedis(redis.url, { maxRetriesPerRequest: null }), new IORedis(redis.url, { maxRetriesPerRequest: null })];
    const theirs = new Queue('theirs', { connection: conns[0]!, prefix, defaultJobOptions: { removeOnComplete: { age: 24 * 3600 }, removeOnFail: { age: 7 * 24 * 3600 } } });
    let worker: Worker | null = null;
    try {
      await theirs.add('deliver', committed, { jobId: queueId });
      const mine = await inspect.hgetall(`${prefix}:mine:${queueId}`);
      const bull = await inspect.hgetall(`${prefix}:theirs:${queueId}`);
      assert.deepEqual(Object.keys(mine).sort(), Object.keys(bull).sort());
      for (const f of ['name', 'data', 'delay', 'priority']) assert.equal(mine[f], bull[f], f);
      assert.deepEqual(JSON.parse(mine['opts']!), JSON.parse(bull['opts']!));
      assert.ok(Math.abs(Number(mine['timestamp']) - Number(bull['timestamp'])) < 60_000);
      const events = async (q: string) => (await inspect.xrange(`${prefix}:${q}:events`, '-', '+')).map(([, f]) => f.filter((_, i) => i % 2 === 0).map((k, i) => `${k}=${f[2 * i + 1]}`).join(' '));
      assert.deepEqual(await events('mine'), await events('theirs'));
      assert.deepEqual(await inspect.lrange(`${prefix}:mine:wait`, 0, -1), [queueId]);
      assert.deepEqual(await inspect.zrange(`${prefix}:mine:marker`, '0', '-1', 'WITHSCORES'), await inspect.zrange(`${prefix}:theirs:marker`, '0', '-1', 'WITHSCORES'));
      // A BullMQ worker takes the job and sees the data and options the listener wrote.
      const seen = new Promise<{ data: unknown; opts: unknown; name: string }>((resolve) => {
        worker = new Worker(
          'mine',
          async (job) => {
            resolve({ data: job.data, opts: job.opts, name: job.name });
            return 'ok';
          },
          { connection: conns[1]!, prefix },
        );
      });
      const got = await seen;
      assert.equal(got.name, 'deliver');
      assert.deepEqual(got.data, committed);
      assert.deepEqual(JSON.parse(JSON.stringify(got.opts)), { attempts: 0, jobId: queueId, removeOnComplete: { age: 86400 }, removeOnFail: { age: 604800 } });
    } finally {
      await (worker as Worker | null)?.close();
      await theirs.close();
      for (const c of conns) c.disconnect();
    }
  });

  test('job options the enqueue script cannot store as BullMQ would (keepLogs, BullMQ\'s kl) are refused at open', async () => {
    await assert.rejects(
      openMailStore({ url: redis.url, prefix: randomPrefix(), defaultJobOptions: { keepLogs: 5, removeOnComplete: true } as never }),
      (err: unknown) => err instanceof TypeError && /^defaultJobOptions\.keepLogs is not supported: mailgw writes its jobs itself/.test(err.message),
    );
  });

  test('a paused queue gets the job on its wait list without the worker marker', async () => {
    const prefix = randomPrefix();
    const s = await store({ prefix });
    const conn = new IORedis(redis.url, { maxRetriesPerRequest: null });
    const q = new Queue(s.queueName, { connection: conn, prefix });
    try {
      await q.pause();
      await inspect.del(`${prefix}:${s.queueName}:marker`);
      const queueId = newQueueId();
      const w = s.beginMessage(queueId);
      await w.write(Buffer.from('held\r\n'));
      await w.commit(envelope(queueId));
      assert.deepEqual(await inspect.lrange(`${prefix}:${s.queueName}:wait`, 0, -1), [queueId]);
      assert.equal(await inspect.exists(`${prefix}:${s.queueName}:marker`), 0);
      assert.equal(await q.getWaitingCount(), 1);
    } finally {
      await q.close();
      conn.disconnect();
    }
  });

  test('a job id that exists already is refused and nothing of that message is touched', async () => {
    const s = await store();
    const queueId = newQueueId();
    const first = s.beginMessage(queueId);
    await first.write(Buffer.from('first\r\n'));
    const committed = await first.commit(envelope(queueId));
    const second = s.beginMessage(queueId);
    await second.write(Buffer.from('second message\r\n'));
    await assert.rejects(second.commit(envelope(queueId)), (err: unknown) => err instanceof QueueUnavailableError && /exists already/.test(err.message));
    assert.equal(second.state, 'failed');
    assert.equal((await s.readBody(queueId))!.toString(), 'first\r\n');
    assert.deepEqual((await s.getJob(queueId))!.data, committed);
    assert.equal(await inspect.exists(s.keys.incoming(queueId)), 0, 'the second message\'s bytes are not left behind');
  });

  test('the bytes go in by a plain SET and are renamed to the body: never through Lua, nothing left behind', async () => {
    const s = await store();
    const base = new IORedis(redis.url);
    const monitor = await base.monitor(); // a connection of its own
    const seen: Array<{ command: string; bytes: number; args: string[] }> = [];
    monitor.on('monitor', (_time: string, args: string[]) => seen.push({ command: args[0]!.toLowerCase(), bytes: args.reduce((n, a) => n + a.length, 0), args }));
    // MONITOR lines arrive after the replies: wait for the script's last command of interest.
    const seenWithin = async (done: () => boolean) => {
      for (const until = Date.now() + 5000; !done() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
    };
    try {
      const queueId = newQueueId();
      const body = Buffer.alloc(64 * 1024, 0x61);
      const w = s.beginMessage(queueId);
      await w.write(body);
      await w.commit(envelope(queueId));
      await seenWithin(() => seen.some((c) => c.command === 'rename' && c.args[1] === s.keys.incoming(queueId)));
      const set = seen.find((c) => c.command === 'set' && c.args[1] === s.keys.incoming(queueId));
      assert.ok(set && set.bytes >= body.length, 'the message is written to the incoming key by SET');
      assert.ok(set.args.includes('EX'), 'with the body TTL, should the script never run');
      const script = seen.find((c) => (c.command === 'evalsha' || c.command === 'eval') && c.args.includes(queueId));
      assert.ok(script, 'the enqueue script ran');
      assert.ok(script.bytes < 16 * 1024, `the script's arguments carry no body (${script.bytes} bytes)`);
      assert.ok(seen.some((c) => c.command === 'rename' && c.args[1] === s.keys.incoming(queueId) && c.args[2] === s.keys.body(queueId)), 'renamed to the body key by the script');
      assert.equal((await s.readBody(queueId))!.length, body.length);
      assert.equal(await inspect.ttl(s.keys.body(queueId)), -1, 'the body has no TTL once committed');
      assert.equal(await inspect.exists(s.keys.incoming(queueId)), 0);

      // A large message (appended as it came) with its header apart: the tail and the header
      // are plain commands too.
      const big = await store({ flushThresholdBytes: 8 * 1024 });
      const bigId = newQueueId();
      const header = Buffer.from(`Subject: ${'h'.repeat(32 * 1024)}\r\n\r\n`);
      const bw = big.beginMessage(bigId);
      await bw.write(Buffer.alloc(20 * 1024, 0x62));
      await bw.write(Buffer.alloc(5 * 1024, 0x63));
      await bw.commit(envelope(bigId), { header });
      await seenWithin(() => seen.some((c) => c.command === 'persist' && c.args[1] === big.keys.head(bigId)));
      const bigScript = seen.find((c) => (c.command === 'evalsha' || c.command === 'eval') && c.args.includes(bigId));
      assert.ok(bigScript && bigScript.bytes < 16 * 1024, `the script's arguments carry no header or body (${bigScript?.bytes} bytes)`);
      assert.ok(seen.some((c) => c.command === 'set' && c.args[1] === big.keys.head(bigId) && c.args.includes('EX')), 'the header by SET, with the body TTL');
      assert.equal((await big.readBody(bigId))!.length, header.length + 25 * 1024);
      assert.equal(await inspect.ttl(big.keys.head(bigId)), -1, 'the header has no TTL once committed');
      assert.equal(await inspect.ttl(big.keys.body(bigId)), -1);
    } finally {
      monitor.disconnect();
      base.disconnect();
    }
  });

  test('a message whose bytes Redis refuses is not committed, and nothing of it stays', async () => {
    // A user that may do everything but SET: the plain SET of the bytes fails (NOPERM), the
    // script that follows finds no incoming key and refuses the message as of the wrong size.
    const user = `noset${randomPrefix().slice(2, 10)}`;
    await inspect.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-set');
    try {
      const url = new URL(redis.url);
      url.username = user;
      url.password = 'pw';
      const s = await store({ url: url.toString() });
      const queueId = newQueueId();
      const w = s.beginMessage(queueId);
      await w.write(Buffer.from('refused\r\n'));
      await assert.rejects(w.commit(envelope(queueId)), (err: unknown) => err instanceof QueueUnavailableError && /MAILGW_BODY_SIZE/.test(String((err as Error & { cause?: unknown }).cause ?? err.message)));
      assert.equal(w.state, 'failed');
      assert.equal(await s.getJob(queueId), null, 'no job');
      assert.deepEqual(await allKeys(inspect, `${s.prefix}:body:*`), [], 'no body, no incoming key');
    } finally {
      await inspect.call('ACL', 'DELUSER', user);
    }
  });

  test('finishMessage records the final progress where BullMQ reads it and deletes the body; a removed job is not recreated', async () => {
    const s = await store();
    const queueId = newQueueId();
    const w = s.beginMessage(queueId);
    await w.write(Buffer.from('done\r\n'));
    await w.commit(envelope(queueId));
    const final = { v: 1, recipients: [{ status: 'delivered' }] };
    await s.finishMessage(queueId, final);
    assert.equal(await s.readBody(queueId), null, 'body deleted');
    const { Queue } = await import('bullmq');
    const q = new Queue(s.queueName, { connection: { host: redis.host, port: redis.port }, prefix: s.prefix });
    try {
      const job = await q.getJob(queueId);
      assert.deepEqual(job!.progress, final, 'Job.progress reads what finishMessage wrote');
      await job!.remove();
    } finally {
      await q.close();
    }
    const other = newQueueId();
    await s.finishMessage(other, final);
    assert.equal(await inspect.exists(`${s.prefix}:${s.queueName}:${other}`), 0, 'no stub job hash for a job that is gone');
  });

  test('the body has a TTL while being written, none after commit', async () => {
    const s = await store({ flushThresholdBytes: 1024, bodyTtlSeconds: 600 });
    const queueId = newQueueId();
    const key = s.keys.body(queueId);
    const w = s.beginMessage(queueId);
    await w.write(Buffer.alloc(4096, 0x61));
    await w.write(Buffer.alloc(10, 0x62)); // waits for the first flush
    const ttl = await inspect.ttl(key);
    assert.ok(ttl > 0 && ttl <= 600, `ttl while writing: ${ttl}`);
    await w.commit(envelope(queueId));
    assert.equal(await inspect.ttl(key), -1);
    assert.equal(await inspect.strlen(key), 4106);
  });

  test('abort leaves no keys behind; abort is idempotent and never throws', async () => {
    const s = await store({ flushThresholdBytes: 1024 });
    const queueId = newQueueId();
    const w = s.beginMessage(queueId);
    await w.write(Buffer.alloc(5000, 1));
    await w.write(Buffer.alloc(5000, 2));
    assert.ok((await allKeys(inspect, `${s.prefix}:body:*`)).length === 1);
    await w.abort();
    await w.abort();
    assert.equal(w.state, 'aborted');
    assert.deepEqual(await allKeys(inspect, `${s.prefix}:body:*`), []);
    assert.equal(await s.getJob(queueId), null);
    await assert.rejects(w.write(Buffer.from('x')), /aborted/);
    await assert.rejects(w.commit(envelope(queueId)), /aborted/);
    // aborting before anything was flushed
    const w2 = s.beginMessage(newQueueId());
    await w2.write(Buffer.from('tiny'));
    await w2.abort();
    assert.deepEqual(await allKeys(inspect, `${s.prefix}:body:*`), []);
  });

  test('an invalid job is refused and its body removed', async () => {
    const s = await store({ flushThresholdBytes: 1024 });
    const queueId = newQueueId();
    const w = s.beginMessage(queueId);
    await w.write(Buffer.alloc(3000, 1));
    await w.write(Buffer.alloc(3000, 1));
    await assert.rejects(w.commit(envelope(queueId, { clientIP: 'not-an-ip' })), InvalidDeliveryJobError);
    assert.equal(w.state, 'failed');
    assert.deepEqual(await allKeys(inspect, `${s.prefix}:body:*`), []);
    assert.equal(await s.getJob(queueId), null);

    const id2 = newQueueId();
    const w2 = s.beginMessage(id2);
    await w2.write(Buffer.from('abc'));
    await assert.rejects(w2.commit(envelope(id2, { size: 4 })), /size 4 does not match the 3 bytes/);
    const w3 = s.beginMessage(newQueueId());
    await assert.rejects(w3.commit(envelope(id2)), /is not this message's/);
    assert.throws(() => s.beginMessage('bad:id'), TypeError);
  });

  test('a body that cannot be stored fails the commit and takes the job back', async () => {
    // a streamed body (flushed before the commit), so the commit APPENDs to it
    const s = await store({ flushThresholdBytes: 4 });
    const id = newQueueId();
    const w = s.beginMessage(id);
    await w.write(Buffer.from('hello'));
    await w.write(Buffer.from('!')); // waits for the first flush
    // the body key now holds the wrong type: the APPEND fails, the job add does not
    await inspect.del(s.keys.body(id));
    await inspect.hset(s.keys.body(id), 'f', 'v');
    await assert.rejects(w.commit(envelope(id)), (err: unknown) => err instanceof QueueUnavailableError && /WRONGTYPE/.test(err.message));
    assert.equal(w.state, 'failed');
    assert.equal(await s.getJob(id), null);
    assert.equal(await inspect.exists(s.keys.body(id)), 0);
  });

  test('a body that lost its beginning (expired mid-stream) is detected at commit', async () => {
    const s = await store({ flushThresholdBytes: 1024 });
    const id = newQueueId();
    const w = s.beginMessage(id);
    await w.write(Buffer.alloc(2000, 1));
    await w.write(Buffer.alloc(2000, 2)); // waits for the first flush
    await inspect.del(s.keys.body(id)); // as if the TTL had run out
    await w.write(Buffer.alloc(100, 3));
    await assert.rejects(w.commit(envelope(id)), (err: unknown) => err instanceof QueueUnavailableError && /expected 4100/.test(err.message));
    assert.equal(await s.getJob(id), null);
    assert.equal(await inspect.exists(s.keys.body(id)), 0);
  });

  test('every key written starts with the prefix', async () => {
    const prefix = randomPrefix();
    const s = await store({ prefix, flushThresholdBytes: 1024 });
    await inspect.flushall();
    for (let i = 0; i < 3; i++) {
      const id = newQueueId();
      const w = s.beginMessage(id);
      await w.write(Buffer.alloc(4000, i));
      await w.commit(envelope(id));
    }
    const aborted = s.beginMessage(newQueueId());
    await aborted.write(Buffer.alloc(4000, 9));
    const keys = await allKeys(inspect);
    assert.ok(keys.length >= 4, keys.join(' '));
    for (const k of keys) assert.ok(k.startsWith(`${prefix}:`), `key outside the prefix: ${k}`);
    await aborted.abort();
  });

  test('stores with different prefixes or queue names do not see each other', async () => {
    const a = await store();
    const b = await store();
    const c = await store({ prefix: a.prefix, queueName: 'other' });
    const id = newQueueId();
    const w = a.beginMessage(id);
    await w.write(Buffer.from('x'));
    await w.commit(envelope(id));
    assert.ok(await a.getJob(id));
    assert.equal(await b.getJob(id), null);
    assert.equal(await b.readBody(id), null);
    assert.equal(await c.getJob(id), null);
  });

  test('many messages in parallel on one store', async () => {
    const s = await store({ flushThresholdBytes: 8192 });
    const bodies = Array.from({ length: 50 }, (_, i) => binaryBody(20_000 + i * 531, i + 1));
    const ids = await Promise.all(
      bodies.map(async (body) => {
        const id = newQueueId();
        const w = s.beginMessage(id);
        for (let off = 0; off < body.length; off += 4096) await w.write(body.subarray(off, off + 4096));
        await w.commit(envelope(id));
        return id;
      }),
    );
    for (const [i, id] of ids.entries()) assert.ok((await s.readBody(id))!.equals(bodies[i]!));
    await s.deleteBody(ids[0]!);
    assert.equal(await s.readBody(ids[0]!), null);
  });

  test('ping, status and the eviction policy check', async () => {
    const s = await store();
    await s.ping();
    assert.equal(s.status, 'ready');
    assert.equal(await s.checkEvictionPolicy(), 'noeviction');
    await inspect.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      assert.equal(await s.checkEvictionPolicy(), 'allkeys-lru');
    } finally {
      await inspect.config('SET', 'maxmemory-policy', 'noeviction');
    }
  });
});
