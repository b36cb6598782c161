// A real local Redis Sentinel set: a master, a replica and one sentinel. gateway.yaml
// `redis: { sentinels: [...], name }` reaches the master through the sentinel; when the master
// dies, the sentinel promotes the replica and the mail store and the workers follow it: what
// was accepted before (and replicated) and after is delivered once.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { openShardedMailStore, redisTarget, startRedisServer, type RedisServer } from '@mailgw/queue';
import { jobRetention, startWorkers } from '@mailgw/worker';
import { startSentinel, type TestSentinel } from '../harness/redis.js';
import { FAST_QUEUE, enqueue, eventually, mailbox, message, randomPrefix, testGateway } from './helpers/gateway.js';

let dir = '';
let master: RedisServer;
let replica: RedisServer;
let sentinel: TestSentinel;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-sentinel-'));
  master = await startRedisServer({ dataDir: path.join(dir, 'master') });
  replica = await startRedisServer({ dataDir: path.join(dir, 'replica'), extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] });
  sentinel = await startSentinel(master.port, 'mymaster', { downAfterMs: 1000, failoverTimeoutMs: 10_000 });
  // The replica is in sync before anything is written.
  const r = new Redis(replica.url);
  try {
    await eventually(async () => /master_link_status:up/.test(await r.info('replication')), 'replica linked');
  } finally {
    r.disconnect();
  }
});

after(async () => {
  await sentinel?.stop();
  await Promise.all([master?.stop().catch(() => undefined), replica?.stop().catch(() => undefined)]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Redis Sentinel', () => {
  test('mail flows through the master the sentinel names, and on through the replica it promotes when the master dies', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-sentinel-w-'));
    const root = path.join(dataDir, 'mailboxes');
    const prefix = randomPrefix();
    const gateway = testGateway({ prefix, redis: { prefix, sentinels: [`127.0.0.1:${sentinel.port}`], name: 'mymaster' }, routes: [{ domains: ['contoso.test'], to: `maildir:${root}` }], queue: FAST_QUEUE });
    const url = redisTarget(gateway.redis)!;
    assert.equal(url, `redis+sentinel://mymaster@127.0.0.1:${sentinel.port}`);
    const store = await openShardedMailStore({ url, prefix, commandTimeoutMs: 1000, defaultJobOptions: jobRetention(gateway.queue) });
    const w = await startWorkers({ gateway, dataDir, redisUrl: url, logger: pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' }), concurrency: 4, sessionIdleMs: 500 });
    try {
      for (let i = 0; i < 5; i++) await enqueue(store, { from: 'sender@contoso.test', to: ['rcpt@contoso.test'], body: message(`before ${i}`) });
      await eventually(async () => (await mailbox(root, 'rcpt@contoso.test')).length >= 5, '5 messages delivered through the sentinel-named master');

      // Accepted but not yet delivered when the master dies: held back by stopping the worker.
      await w.close({ timeoutMs: 5000 });
      const held: string[] = [];
      for (let i = 0; i < 5; i++) held.push(await enqueue(store, { from: 'sender@contoso.test', to: ['rcpt@contoso.test'], body: message(`held ${i}`) }));
      // Asynchronous replication: wait until the replica has everything, then kill the master.
      const m = new Redis(master.url);
      assert.equal(await m.call('WAIT', '1', '5000'), 1, 'the replica acknowledged the writes');
      m.disconnect();
      await master.kill('SIGKILL');
      await eventually(async () => (await sentinel.currentMaster()) === `127.0.0.1:${replica.port}`, 'the sentinel promoted the replica', 30_000);

      // The store follows the sentinel to the new master: new mail is accepted again.
      const after: string[] = [];
      for (let i = 0; i < 5; i++) {
        const id = await eventually(
          async () => {
            try {
              return await enqueue(store, { from: 'sender@contoso.test', to: ['rcpt@contoso.test'], body: message(`after ${i}`) });
            } catch {
              return null; // 451 while it reconnects
            }
          },
          'accepted on the promoted replica',
          20_000,
        );
        after.push(id);
      }
      const w2 = await startWorkers({ gateway, dataDir, redisUrl: url, logger: pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' }), concurrency: 4, sessionIdleMs: 500 });
      try {
        await eventually(async () => (await mailbox(root, 'rcpt@contoso.test')).length >= 15, 'every accepted message delivered', 30_000);
        await new Promise((r) => setTimeout(r, 300));
        const bodies = (await mailbox(root, 'rcpt@contoso.test')).map((b) => b.toString('latin1'));
        assert.equal(bodies.length, 15, 'each delivered once');
        for (const tag of ['held 0', 'held 4', 'after 0', 'after 4']) assert.ok(bodies.some((b) => b.includes(tag)), `${tag} delivered`);
      } finally {
        await w2.close({ timeoutMs: 5000 });
      }
    } finally {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
