// waitForReplicas: a commit returns only once a replica has the message (Redis WAIT); with the
// replica gone it fails as a 451 would, and leaves nothing behind.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { QueueUnavailableError, newQueueId, openMailStore, startRedisServer, type MailStore, type RedisServer } from '@mailgw/queue';
import { allKeys, envelope, randomPrefix } from './fixtures.js';

let dir = '';
let master: RedisServer;
let replica: RedisServer;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-replicas-'));
  master = await startRedisServer({ dataDir: path.join(dir, 'master') });
  replica = await startRedisServer({ dataDir: path.join(dir, 'replica'), extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] });
  const r = new Redis(replica.url);
  try {
    for (let i = 0; i < 200 && !/master_link_status:up/.test(await r.info('replication')); i++) await new Promise((res) => setTimeout(res, 50));
  } finally {
    r.disconnect();
  }
});
after(async () => {
  await Promise.all([master?.stop(), replica?.stop().catch(() => undefined)]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function commitOne(store: MailStore): Promise<string> {
  const id = newQueueId();
  const w = store.beginMessage(id);
  await w.write(Buffer.from('Subject: replicated\r\n\r\nx\r\n'));
  await w.commit(envelope(id));
  return id;
}

test('waitForReplicas 1: committed once the replica has it; with the replica stopped, refused and removed', async () => {
  const prefix = randomPrefix();
  const store = await openMailStore({ url: master.url, prefix, waitForReplicas: 1, replicaTimeoutMs: 300 });
  const onReplica = new Redis(replica.url);
  const onMaster = new Redis(master.url);
  try {
    const id = await commitOne(store);
    assert.equal(await onReplica.exists(`${prefix}:body:${id}`), 1, 'the body was on the replica when commit returned');
    assert.equal(await onReplica.hexists(`${prefix}:delivery:${id}`, 'data'), 1, 'and the job');

    await replica.kill('SIGSTOP'); // a replica that stopped answering
    try {
      const before = (await allKeys(onMaster, `${prefix}:body:*`)).length;
      await assert.rejects(commitOne(store), (err: unknown) => err instanceof QueueUnavailableError && /0 of 1 Redis replicas had message/.test(err.message));
      assert.equal((await allKeys(onMaster, `${prefix}:body:*`)).length, before, 'the refused body was removed');
      assert.equal(await onMaster.llen(`${prefix}:delivery:wait`), 1, 'only the first job is queued');
    } finally {
      await replica.kill('SIGCONT');
    }
  } finally {
    onReplica.disconnect();
    onMaster.disconnect();
    await store.close();
  }
});
