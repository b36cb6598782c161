// `mailgw queue remove --with-ndr`'s NDR (Exchange's Remove-Message -WithNDR) and remote domains:
// a sender whose remote domain has ndrEnabled false gets none, and the result says why; another
// sender gets it. A real Redis and the queue's own DsnSender.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { DsnSender, dsnSenderOptions, initialState, keySpace, newQueueId, openMailStore, parseDeliveryJob, type MailStore } from '@mailgw/queue';
import { sendAdministrativeNdr } from '../src/index.js';
import { compile } from '../../policy/test/fixture.js';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { randomPrefix } from '../../../test/worker/helpers/gateway.js';

let redis: TestRedis;
let client: Redis;
let store: MailStore;

before(async () => {
  redis = await startRedis({ appendonly: false });
  client = new Redis(redis.url);
});
after(async () => {
  await store?.close();
  client?.disconnect();
  await redis?.stop();
});

test('remove --with-ndr: no NDR to a sender whose remote domain has ndrEnabled false, and why; one to another sender', async () => {
  const r = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }], remoteDomains: [{ name: 'Quiet', domainName: 'quiet.example', ndrEnabled: false }] }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
  assert.ok(r.ok);
  const g = r.policy.config.gateway;
  const prefix = randomPrefix();
  store = await openMailStore({ url: redis.url, prefix });
  const dsn = new DsnSender(store, client, keySpace(prefix), dsnSenderOptions(g));
  const job = (from: string) =>
    parseDeliveryJob({
      v: 1, queueId: newQueueId(), messageId: '<m@x>', receivedAt: new Date().toISOString(), connector: 'c', clientIP: '127.0.0.1', clientHostname: 'c', helo: 'c',
      tls: null, authUser: null, mailFrom: { address: from }, rcptTo: [{ address: 'later@fabrikam.example' }], bodyKey: 'k', size: 5,
    });
  const quietJob = job('list@quiet.example');
  const quiet = await sendAdministrativeNdr(quietJob, initialState(quietJob), null, dsn, g.queue);
  assert.deepEqual([quiet.failed, quiet.ndr, quiet.reported], [[0], null, []]);
  assert.equal(quiet.withheld, 'remote domain "Quiet" (quiet.example): ndrEnabled false');
  const otherJob = job('someone@tailspin.example');
  const other = await sendAdministrativeNdr(otherJob, initialState(otherJob), null, dsn, g.queue);
  assert.match(String(other.ndr), /^[0-9A-Z]{26}$/);
  assert.equal(other.withheld, undefined);
  assert.equal((await store.getJob(other.ndr!))!.data.rcptTo[0]!.address, 'someone@tailspin.example');
});
