// queue.shards: N BullMQ queues with distinct hash tags. Messages written through the sharded
// store spread over every shard (body and job under one tag), one worker process consumes all
// shards and delivers each message once, and the queue admin sees every shard.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { openShardedMailStore, shardOf, shardPrefix, type ShardedMailStore } from '@mailgw/queue';
import { QueueAdmin } from '@mailgw/ops';
import { jobRetention, startWorkers } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort, startGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { FAST_QUEUE, enqueue, eventually, mailbox, message, randomPrefix, testGateway } from './helpers/gateway.js';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

/** The hash tag Redis Cluster hashes: the first non-empty {…}. */
function hashTag(key: string): string {
  const m = /\{([^}]+)\}/.exec(key);
  assert.ok(m, `no hash tag in ${key}`);
  return m[1]!;
}

describe('shard key prefixes', () => {
  test('shard 0 keeps the prefix, others extend its hash tag', () => {
    assert.equal(shardPrefix('{mailgw}', 0), '{mailgw}');
    assert.equal(shardPrefix('{mailgw}', 1), '{mailgw-1}');
    assert.equal(shardPrefix('{mailgw}', 2), '{mailgw-2}');
    assert.equal(shardPrefix('gw{a}x', 3), 'gw{a-3}x');
    assert.equal(shardPrefix('plain', 1), 'plain-1');
    assert.equal(shardOf('anything', 1), 0);
  });
});

describe('queue.shards: 3', () => {
  test('messages land on all three shards with one hash tag each, and one worker delivers each once', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-shards-'));
    const root = path.join(dataDir, 'mailboxes');
    const prefix = randomPrefix();
    const gateway = testGateway({ prefix, routes: [{ domains: ['contoso.test'], to: `maildir:${root}` }], queue: { ...FAST_QUEUE, shards: 3 } });
    assert.equal(gateway.queue.shards, 3);
    const store: ShardedMailStore = await openShardedMailStore({ url: redis.url, prefix, shards: 3, defaultJobOptions: jobRetention(gateway.queue) });
    const raw = new Redis(redis.url);
    try {
      assert.equal(store.shards.length, 3);
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) ids.push(await enqueue(store, { from: 'sender@contoso.test', to: ['rcpt@contoso.test'], body: message(`shard ${i}`) }));

      // Every shard got messages; each message's body and job keys share its shard's tag.
      const perShard = [0, 0, 0];
      for (const id of ids) {
        const s = shardOf(id, 3);
        perShard[s]!++;
        const shard = store.shards[s]!;
        const job = await shard.getJob(id);
        assert.ok(job, `job ${id} on shard ${s}`);
        const tag = hashTag(shard.prefix);
        assert.equal(hashTag(job.data.bodyKey), tag);
        const jobKeys = await raw.keys(`${shard.keys.queueKeyPrefix}${id}`);
        assert.equal(jobKeys.length, 1, `job hash of ${id}`);
        assert.equal(hashTag(jobKeys[0]!), tag);
        assert.ok(await raw.exists(job.data.bodyKey));
      }
      assert.ok(perShard.every((n) => n > 0), `messages on every shard: ${perShard.join(',')}`);
      const tags = new Set(store.shards.map((s) => hashTag(s.prefix)));
      assert.equal(tags.size, 3);
      assert.equal(store.shards[0]!.prefix, prefix, 'shard 0 keeps the configured prefix');
      // Not a cluster: today's tags, no placement, nothing stored.
      assert.deepEqual(store.shards.map((s) => s.prefix), [0, 1, 2].map((i) => shardPrefix(prefix, i)));
      assert.equal(store.shardMap.cluster, false);
      assert.deepEqual(store.shardMap.warnings, []);
      assert.equal(await raw.exists(`${prefix}:shards`), 0);

      // The queue admin (mailgw queue …) lists, shows and reads messages on every shard.
      const admin = await QueueAdmin.open({ redisUrl: redis.url, gateway, dataDir });
      try {
        const listed = await admin.messages();
        assert.deepEqual(listed.map((m) => m.id).sort(), [...ids].sort());
        for (const id of ids) {
          const view = await admin.message(id);
          assert.ok(view, `admin shows ${id}`);
          assert.ok(await admin.body(id), `admin reads the body of ${id}`);
        }
        const counts = await admin.counts();
        assert.equal(counts.waiting, 30);
        const retried = await admin.retry({ id: ids[0]! });
        assert.equal(retried.skipped[0]?.why, 'already waiting for a worker');
      } finally {
        await admin.close();
      }

      // One worker process (one BullMQ Worker per shard) delivers every message exactly once.
      const logger = pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' });
      const w = await startWorkers({ gateway, dataDir, redisUrl: redis.url, logger, concurrency: 6, sessionIdleMs: 500 });
      try {
        await eventually(async () => (await mailbox(root, 'rcpt@contoso.test')).length >= 30, '30 messages delivered');
        await eventually(async () => {
          for (const id of ids) if ((await store.readBody(id)) !== null) return false;
          return true;
        }, 'bodies removed after delivery');
        await new Promise((r) => setTimeout(r, 300));
        const files = await mailbox(root, 'rcpt@contoso.test');
        assert.equal(files.length, 30, 'each message delivered once');
        const subjects = new Set(files.map((f) => /Subject: (shard \d+)/.exec(f.toString('latin1'))?.[1]));
        assert.equal(subjects.size, 30);
      } finally {
        await w.close({ timeoutMs: 5000 });
      }
    } finally {
      raw.disconnect();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('mail accepted by the listener over SMTP spreads over the shards and is delivered once', async () => {
    const port = await freePort();
    // The listener helper uses the default prefix {mailgw}: flush so earlier tests do not interfere.
    const raw = new Redis(redis.url);
    await raw.flushall();
    const gw = await startGateway({ redisUrl: redis.url, shards: 3, connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } } });
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-shards-l-'));
    const root = path.join(dataDir, 'mailboxes');
    try {
      const ids: string[] = [];
      const c = await RawSmtp.connect({ host: '127.0.0.1', port });
      await c.ehlo('sender.test');
      // At least 15, and on until every shard has had one: ids fall on shards as their hash
      // says, and 15 leave one shard empty about once in 150 runs.
      for (let i = 0; i < 15 || (new Set(ids.map((id) => shardOf(id, 3))).size < 3 && i < 60); i++) {
        const t = await c.transaction('sender@example.net', ['alice@contoso.test'], `From: <sender@example.net>\r\nSubject: smtp ${i}\r\n\r\nbody ${i}\r\n`);
        assert.equal(t.end?.code, 250, t.end?.last);
        ids.push(queueIdOf(t.end!));
      }
      await c.quit();
      const shards = new Set(ids.map((id) => shardOf(id, 3)));
      assert.equal(shards.size, 3, 'listener mail on every shard');
      for (const id of ids) {
        const job = await gw.job(id);
        assert.ok(job, `job ${id}`);
        assert.equal(hashTag(job.data.bodyKey), hashTag(shardPrefix('{mailgw}', shardOf(id, 3))));
      }
      const gateway = testGateway({ prefix: '{mailgw}', routes: [{ domains: ['contoso.test'], to: `maildir:${root}` }], queue: { ...FAST_QUEUE, shards: 3 } });
      const w = await startWorkers({ gateway, dataDir, redisUrl: redis.url, logger: pino({ level: 'silent' }), concurrency: 6, sessionIdleMs: 500 });
      try {
        await eventually(async () => (await mailbox(root, 'alice@contoso.test')).length >= ids.length, `${ids.length} messages delivered`);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal((await mailbox(root, 'alice@contoso.test')).length, ids.length);
      } finally {
        await w.close({ timeoutMs: 5000 });
      }
    } finally {
      await gw.close();
      raw.disconnect();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
