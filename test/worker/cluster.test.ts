// A real local 3-master Redis Cluster: gateway.yaml `redis: { cluster: [...] }`, queue.shards: 3.
// Mail written through the sharded store (as the listener does) lands on shards spread over the
// masters, and one worker process delivers every message once.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { connectRedis, findExecutable, isQueueUnavailableError, openShardedMailStore, redisTarget, shardOf, startRedisServer, type RedisServer } from '@mailgw/queue';
import { jobRetention, startWorkers } from '@mailgw/worker';
import { FAST_QUEUE, enqueue, eventually, mailbox, message, randomPrefix, testGateway } from './helpers/gateway.js';

const run = promisify(execFile);
let servers: RedisServer[] = [];
let dir = '';
let nodes: string[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-cluster-'));
  servers = await Promise.all(
    [0, 1, 2].map((i) =>
      startRedisServer({ dataDir: path.join(dir, `n${i}`), extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${i}.conf`), '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no'] }),
    ),
  );
  nodes = servers.map((s) => `127.0.0.1:${s.port}`);
  const cli = findExecutable('redis-cli') ?? 'redis-cli';
  await run(cli, ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
  // Wait until every node agrees the cluster is up.
  await eventually(async () => {
    for (const s of servers) {
      const { stdout } = await run(cli, ['-p', String(s.port), 'cluster', 'info']);
      if (!/cluster_state:ok/.test(stdout)) return false;
    }
    return true;
  }, 'cluster_state:ok', 30_000);
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Redis Cluster with queue.shards: 3', () => {
  test('mail flows through all shards, spread over the masters, each delivered once', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-cluster-w-'));
    const root = path.join(dataDir, 'mailboxes');
    const prefix = randomPrefix();
    const gateway = testGateway({ prefix, redis: { prefix, cluster: nodes }, routes: [{ domains: ['contoso.test'], to: `maildir:${root}` }], queue: { ...FAST_QUEUE, shards: 3 } });
    const url = redisTarget(gateway.redis)!;
    assert.match(url, /^redis\+cluster:\/\//);
    const store = await openShardedMailStore({ url, prefix, shards: 3, defaultJobOptions: jobRetention(gateway.queue) });
    const probe = connectRedis(url, {});
    const w = await startWorkers({ gateway, dataDir, redisUrl: url, logger: pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' }), concurrency: 6, sessionIdleMs: 500 });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) ids.push(await enqueue(store, { from: 'sender@contoso.test', to: ['rcpt@contoso.test'], body: message(`cluster ${i}`) }));
      assert.equal(new Set(ids.map((id) => shardOf(id, 3))).size, 3, 'messages on every shard');
      await eventually(async () => (await mailbox(root, 'rcpt@contoso.test')).length >= 30, '30 messages delivered', 30_000);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await mailbox(root, 'rcpt@contoso.test')).length, 30, 'each message delivered once');
      // The shards' hash tags map to slots: record which masters hold them (informative).
      const slots = await Promise.all(store.shards.map((s) => probe.call('CLUSTER', 'KEYSLOT', s.keys.body('x')) as Promise<number>));
      assert.equal(new Set(slots).size, 3, 'three distinct slots');
    } finally {
      await w.close({ timeoutMs: 5000 });
      await store.close();
      probe.disconnect();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('a stopped master: mail for its shards gets an error (451), never an acceptance that is lost; after its restart every accepted message is delivered', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-cluster-f-'));
    const root = path.join(dataDir, 'mailboxes');
    const prefix = randomPrefix();
    const gateway = testGateway({ prefix, redis: { prefix, cluster: nodes }, routes: [{ domains: ['contoso.test'], to: `maildir:${root}` }], queue: { ...FAST_QUEUE, shards: 3 } });
    const url = redisTarget(gateway.redis)!;
    const store = await openShardedMailStore({ url, prefix, shards: 3, commandTimeoutMs: 1000, defaultJobOptions: jobRetention(gateway.queue) });
    const probe = connectRedis(url, {});
    try {
      // Which master serves each shard's slot.
      const ranges = (await probe.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]]]>;
      const portOf = (slot: number) => ranges.find(([a, b]) => slot >= a && slot <= b)![2][1];
      const shardPorts = await Promise.all(store.shards.map(async (s) => portOf((await probe.call('CLUSTER', 'KEYSLOT', s.keys.body('x'))) as number)));
      const victim = servers.find((sv) => sv.port === shardPorts[0])!;
      const down = new Set(shardPorts.map((p, i) => (p === victim.port ? i : -1)).filter((i) => i >= 0));

      const accepted: string[] = [];
      for (let i = 0; i < 6; i++) accepted.push(await enqueue(store, { from: 'sender@contoso.test', to: ['rcpt@contoso.test'], body: message(`before ${i}`) }));
      await victim.stop();

      const refused: string[] = [];
      for (let i = 0; i < 15; i++) {
        const started = Date.now();
        try {
          accepted.push(await enqueue(store, { from: 'sender@contoso.test', to: ['rcpt@contoso.test'], body: message(`during ${i}`) }));
        } catch (err) {
          assert.ok(isQueueUnavailableError(err), `a queue error (451), got ${String(err)}`);
          assert.ok(Date.now() - started < 5000, 'refused promptly');
          refused.push(String(i));
        }
      }
      assert.ok(refused.length > 0, 'mail for the stopped master was refused');
      // Whatever was acknowledged is on a live shard or was written before the stop.
      await victim.restart();
      const w = await startWorkers({ gateway, dataDir, redisUrl: url, logger: pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' }), concurrency: 6, sessionIdleMs: 500 });
      try {
        await eventually(async () => (await mailbox(root, 'rcpt@contoso.test')).length >= accepted.length, `${accepted.length} accepted messages delivered`, 40_000);
        await new Promise((r) => setTimeout(r, 300));
        const files = await mailbox(root, 'rcpt@contoso.test');
        assert.equal(files.length, accepted.length, 'each accepted message delivered once, nothing refused delivered');
        assert.ok(down.size > 0);
      } finally {
        await w.close({ timeoutMs: 5000 });
      }
    } finally {
      await store.close();
      probe.disconnect();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
