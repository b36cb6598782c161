// A slow next hop beside a quick one: how long mail to the quick one waits behind a line for the
// slow one, and how long the line takes (connection-pool.ts, crowded-destination.ts).
//
//   node --conditions=mailgw-src --import tsx bench/slow-next-hop.ts [ms per message, 1000] [messages, 300]
//
// One worker in this process (workerConcurrency 100, maxConnectionsPerDestination 20), a real
// redis-server, two far sides on loopback: the slow one answers each message after the given
// time. The slow next hop's messages (80 KB) are queued first, then 50 to the quick one.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startRedis } from '../test/harness/redis.js';
import { startFarSide } from '../test/worker/helpers/far-side.js';
import { enqueue, message } from '../test/worker/helpers/gateway.js';
import { makeRig } from '../test/worker/helpers/rig.js';

const msPerMessage = Number(process.argv[2] ?? 1000);
const count = Number(process.argv[3] ?? 300);
const redis = await startRedis();
const slow = await startFarSide({ dataDelayMs: msPerMessage });
const quick = await startFarSide();
const r = await makeRig(redis.url, {
  routes: () => [
    { domains: ['slow.test'], to: `smtp://127.0.0.1:${slow.port}` },
    { domains: ['*'], to: `smtp://127.0.0.1:${quick.port}` },
  ],
  queue: { maxConnectionsPerDestination: 20 },
});
const said = new Map<string, number>();
const logger = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        const msg = String((JSON.parse(line) as { msg: unknown }).msg);
        said.set(msg, (said.get(msg) ?? 0) + 1);
      }
      cb();
    },
  }),
);
const body = message('slow next hop', `${'z'.repeat(78)}\r\n`.repeat(1000));
for (let i = 0; i < count; i++) await enqueue(r.store, { from: 'a@remote.test', to: [`r${i}@slow.test`], body });
for (let i = 0; i < 50; i++) await enqueue(r.store, { from: 'a@remote.test', to: [`r${i}@quick.test`], body });
const t0 = Date.now();
const worker = await r.start({ concurrency: 100, logger, busyRetryMs: 2000 });
let quickAllMs = 0;
let maxHeld = 0;
const perSecond: number[] = [];
let counted = 0;
while (slow.messages.length < count || quick.messages.length < 50) {
  maxHeld = Math.max(maxHeld, worker.messageMemory.heldBytes);
  if (!quickAllMs && quick.messages.length >= 50) quickAllMs = Date.now() - t0;
  if (Date.now() - t0 >= (perSecond.length + 1) * 1000) {
    perSecond.push(slow.messages.length - counted);
    counted = slow.messages.length;
  }
  await new Promise((res) => setTimeout(res, 20));
}
console.log(
  JSON.stringify({
    date: new Date().toISOString(),
    msPerMessage,
    slowMessages: count,
    allDeliveredMs: Date.now() - t0,
    quick50DeliveredMs: quickAllMs,
    peakHeldKB: Math.round(maxHeld / 1024),
    slowSessionsAtOnce: slow.maxConcurrent,
    sentBackBeforeReading: said.get('destination busy; retrying when its turn is due') ?? 0,
    busyAfterWaiting: said.get('destination busy; retrying shortly') ?? 0,
    slowDeliveredPerSecond: perSecond.join(','),
  }),
);
await r.close();
await slow.close();
await quick.close();
await redis.stop();
