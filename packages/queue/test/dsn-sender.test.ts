import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { DsnSender, initialState, keySpace, newQueueId, openMailStore, parseDeliveryJob, type MailStore } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { enqueue, randomPrefix } from '../../../test/worker/helpers/gateway.js';

let redis: TestRedis;
let client: Redis;
const stores: MailStore[] = [];

before(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
after(async () => {
  for (const s of stores) await s.close();
  client?.disconnect();
  await redis?.stop();
});

async function setup() {
  const prefix = randomPrefix();
  const store = await openMailStore({ url: redis.url, prefix });
  stores.push(store);
  const keys = keySpace(prefix);
  const sender = new DsnSender(store, client, keys, { fqdn: 'mail.contoso.test', postmaster: 'postmaster@contoso.test', claimTtlMs: 60_000 });
  const job = parseDeliveryJob({
    v: 1, queueId: newQueueId(), messageId: '<m@x>', receivedAt: new Date().toISOString(), connector: 'c', clientIP: '127.0.0.1', clientHostname: 'c', helo: 'c',
    tls: null, authUser: null, mailFrom: { address: 'alice@contoso.test' }, rcptTo: [{ address: 'a@x.test' }, { address: 'b@x.test' }, { address: 'c@x.test' }], bodyKey: 'k', size: 5,
  });
  const state = initialState(job);
  for (const r of state.recipients) {
    r.status = 'failed';
    r.reply = { code: 550, enhanced: '5.1.1', text: 'unknown' };
  }
  return { store, keys, sender, job, state };
}

test('a DSN is queued as a null-sender message to the original sender, once', async () => {
  const { store, sender, job, state } = await setup();
  const first = await sender.send(job, state, 'failed', [0], Buffer.from('Subject: s\r\n\r\nx\r\n'), Date.now());
  assert.ok(first);
  assert.deepEqual(first.indices, [0]);
  const dsnJob = await store.getJob(first.queueId);
  assert.equal(dsnJob!.data.mailFrom.address, '');
  assert.deepEqual(dsnJob!.data.rcptTo, [{ local: 'alice', domain: 'contoso.test', address: 'alice@contoso.test', notify: ['NEVER'] }]);
  assert.match((await store.readBody(first.queueId))!.toString(), /Final-Recipient: rfc822;a@x\.test/);
  assert.equal(await sender.send(job, state, 'failed', [0], null, Date.now()), null, 'the same DSN is not produced again');
  // another kind for the same recipient is a different DSN
  assert.ok(await sender.send(job, state, 'delayed', [0], null, Date.now()));
});

test('claims left by a run that died: redone if its DSN never reached the queue, kept if it did', async () => {
  const { store, keys, sender, job, state } = await setup();
  const lostId = newQueueId();
  const queuedId = await enqueue(store, { from: '', to: ['alice@contoso.test'], body: 'Subject: earlier DSN\r\n\r\n' });
  await client.hset(keys.dsnClaims(job.queueId), 'failed:1', lostId, 'failed:2', queuedId);
  const r = await sender.send(job, state, 'failed', [1, 2], null, Date.now());
  assert.ok(r);
  assert.deepEqual(r.indices, [1], 'b@ again (its DSN was lost), c@ not (its DSN exists)');
  assert.equal(await client.hget(keys.dsnClaims(job.queueId), 'failed:2'), `sent:${queuedId}`);
  assert.equal(await client.hget(keys.dsnClaims(job.queueId), 'failed:1'), `sent:${r.queueId}`);
  assert.ok((await client.pttl(keys.dsnClaims(job.queueId))) > 0, 'claims expire');
});
