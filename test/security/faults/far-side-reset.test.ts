// The far side resets connections (TCP RST) in the middle of DATA, or right after the final
// dot before answering: the workers retry, nothing accepted is lost, and the duplicates are
// exactly the copies the far side kept before resetting (it had the whole message and never
// said so: RFC 5321's known duplicate window), counted and printed.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startRedis, type TestRedis } from '../../harness/redis.js';
import { startFaultRig, type FaultRig, type QueueView } from '../helpers/delivery.js';
import { startRawSink, type RawSink, type SinkAction } from '../helpers/raw-sink.js';
import { account, report, runLoad, until } from '../helpers/scenario.js';

const MESSAGES = 300;
let redis: TestRedis;
let sink: RawSink;
let queue: QueueView;
let port = 0;
let rig: FaultRig;

/** First delivery of every 5th message: RST mid-DATA; of every 10th+1: RST after the dot. */
function decide(id: string | null, attempt: number): SinkAction {
  const n = Number(id?.slice(1) ?? -1);
  if (attempt > 1 || n < 0) return 'accept';
  if (n % 5 === 0) return 'reset-mid-data';
  if (n % 10 === 1) return 'reset-after-dot';
  return 'accept';
}

before(async () => {
  redis = await startRedis();
  sink = await startRawSink(decide);
  rig = await startFaultRig(redis.url, sink.port, { concurrency: 8 });
  ({ port, queue } = rig);
});

after(async () => {
  await rig?.close();
  await sink?.close();
  await redis?.stop();
});

it('RST mid-DATA and RST after the final dot: every 250 delivered, duplicates exactly where the far side kept a copy', async () => {
  const load = await runLoad({
    host: '127.0.0.1',
    port,
    clients: 6,
    messages: MESSAGES,
    localAddress: (k) => `127.0.0.${120 + k}`,
    rcpt: (n) => `user${n}@contoso.test`,
    size: (n) => (n % 3 === 0 ? 64 * 1024 : 1500),
  });
  const delivered = () => account(load, sink.messages.map((m) => m.raw));
  const drained = await until(async () => delivered().lost === 0 && (await queue.pending()) === 0, 60_000);
  await new Promise((r) => setTimeout(r, 500));
  const a = delivered();
  report('far side resets', a, load);
  console.log(`#   resets: ${sink.resets.midData} mid-DATA, ${sink.resets.afterDot} after the dot`);
  const afterDot = Array.from({ length: MESSAGES }, (_, n) => n).filter((n) => n % 5 !== 0 && n % 10 === 1).length;
  const midData = Array.from({ length: MESSAGES }, (_, n) => n).filter((n) => n % 5 === 0).length;
  assert.equal(a.accepted, MESSAGES);
  assert.equal(a.lost, 0, `lost: ${a.lostIds.join(' ')}`);
  assert.equal(a.incomplete, 0);
  assert.ok(drained, `the queue did not drain: ${JSON.stringify(await queue.counts())}`);
  assert.deepEqual(sink.resets, { midData, afterDot }, 'every planned reset happened once');
  assert.equal(a.duplicated, afterDot, `duplicates: ${a.duplicateIds.join(' ')}`);
  // Nothing leaves a worker with a bare CR or LF, whatever the retries.
  for (const m of sink.messages) assert.doesNotMatch(m.wire.toString('latin1').replace(/\r\n/g, ''), /[\r\n]/);
});
