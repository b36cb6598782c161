// Redis killed (SIGKILL) and restarted with its AOF in the middle of a 2,000-message load from
// eight clients: every message that got a 250 is delivered after recovery, every attempt that
// did not get a 250 was answered 4xx (never 5xx, never a hang or a dropped connection), nothing
// is lost; duplicates are counted and printed.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startRedis, type TestRedis } from '../../harness/redis.js';
import { startFarSide, type FarSide } from '../../worker/helpers/far-side.js';
import { startFaultRig, type FaultRig, type QueueView } from '../helpers/delivery.js';
import { account, refusals, report, runLoad, until } from '../helpers/scenario.js';

const MESSAGES = 2000;
const CLIENTS = 8;
const KILL_AFTER_ACCEPTED = 600;
const OUTAGE_MS = 1500;

let redis: TestRedis;
let far: FarSide;
let queue: QueueView;
let port = 0;
let rig: FaultRig;

before(async () => {
  redis = await startRedis({ appendonly: true });
  far = await startFarSide();
  rig = await startFaultRig(redis.url, far.port, { concurrency: 16, commandTimeoutMs: 1000 });
  ({ port, queue } = rig);
});

after(async () => {
  await rig?.close();
  await far?.close();
  await redis?.stop();
});

it(`Redis SIGKILLed and restarted (AOF) during a ${MESSAGES}-message load: every 250 delivered, the rest saw 4xx, none lost`, async () => {
  let outage: Promise<void> | null = null;
  const load = await runLoad({
    host: '127.0.0.1',
    port,
    clients: CLIENTS,
    messages: MESSAGES,
    localAddress: (k) => `127.0.0.${100 + k}`,
    rcpt: (n) => `user${n % 50}@contoso.test`,
    onAccepted: (n) => {
      if (n === KILL_AFTER_ACCEPTED && !outage) {
        outage = (async () => {
          await redis.kill('SIGKILL');
          await new Promise((r) => setTimeout(r, OUTAGE_MS));
          await redis.restart();
        })();
      }
    },
  });
  assert.ok(outage, 'the outage happened during the load');
  await outage;

  // Delivery after recovery: wait for the queue to drain and every accepted message to arrive.
  const delivered = () => account(load, far.messages.map((m) => m.raw));
  const drained = await until(async () => delivered().lost === 0 && (await queue.pending()) === 0, 90_000);
  await new Promise((r) => setTimeout(r, 500)); // late duplicates, if any
  const a = delivered();
  report('Redis restart', a, load);

  assert.equal(a.sent, MESSAGES);
  assert.equal(a.accepted, MESSAGES, 'every client got its 250 in the end (it retries after a 4xx)');
  assert.equal(a.lost, 0, `lost: ${a.lostIds.join(' ')}`);
  assert.equal(a.incomplete, 0, 'a delivered copy was not whole');
  assert.ok(drained, `the queue did not drain: ${JSON.stringify(await queue.counts())}`);
  // What the clients saw instead of a 250 while Redis was away: 4xx only.
  const seen = refusals(load);
  assert.ok(seen.size > 0, 'no client noticed the outage: the kill did not hit the load');
  const bad = [...seen.keys()].filter((k) => !/^4\d\d /.test(k));
  assert.deepEqual(bad, [], `outcomes other than 250 and 4xx: ${[...seen].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
});
