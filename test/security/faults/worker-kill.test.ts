// A delivery worker process (`mailgw worker`) SIGKILLed while it has deliveries in flight,
// with the listener taking mail and a second worker running: every 250 is delivered (the
// dead worker's messages after their lock lapses), none lost; the copies the far side got
// from the dead worker before it could record them are the duplicates, counted and printed,
// and at most one per delivery it had in flight.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { startRedis, type TestRedis } from '../../harness/redis.js';
import { freePort, startGateway, type TestGateway } from '../../listener/helpers/gateway.js';
import { startFarSide, type FarSide } from '../../worker/helpers/far-side.js';
import { spawnWorker, writeConfig, type WorkerProcess } from '../../worker/helpers/worker-process.js';
import { FAULT_QUEUE, queueView, routesTo, type QueueView } from '../helpers/delivery.js';
import { account, report, runLoad, until } from '../helpers/scenario.js';
import { shippedConfig } from '../helpers/shipped.js';

const MESSAGES = 300;
const CONCURRENCY = 4;
let redis: TestRedis;
let far: FarSide;
let gw: TestGateway;
let queue: QueueView;
let dir: string;
let config: string;
let port = 0;
const procs: WorkerProcess[] = [];
let victim: WorkerProcess | null = null;

before(async () => {
  redis = await startRedis();
  let arrived = 0;
  far = await startFarSide({
    dataDelayMs: 150, // deliveries stay in flight long enough to be cut
    onDataReceived: () => {
      if (++arrived === 80 && victim && victim.child.exitCode === null) victim.child.kill('SIGKILL');
    },
  });
  port = await freePort();
  const cfg = await shippedConfig({ defaultPort: port, clientPort: await freePort(), relayRanges: ['127.0.0.16/28'], connectorExtra: { tarpitInterval: 0 }, gatewayExtra: { routes: routesTo(far.port), queue: FAULT_QUEUE } });
  gw = await startGateway({ redisUrl: redis.url, gateway: cfg.gateway, connectors: cfg.connectors });
  queue = queueView(redis.url);
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-secwk-'));
  const q = Object.entries(FAULT_QUEUE).map(([k, v]) => `  ${k}: ${v}`).join('\n');
  config = writeConfig(dir, `fqdn: mail.contoso.test\ndataDir: ./var\nacceptedDomains:\n  - domain: contoso.test\n    default: true\nroutes:\n  - domains: ["*"]\n    to: smtp://127.0.0.1:${far.port}\nredis:\n  prefix: "{mailgw}"\nqueue:\n${q}\n`);
});

after(async () => {
  for (const p of procs) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    await p.exited;
  }
  await queue?.close();
  await gw?.close();
  await far?.close();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function worker(): WorkerProcess {
  const w = spawnWorker(config, { REDIS_URL: redis.url }, ['--concurrency', String(CONCURRENCY)]);
  procs.push(w);
  return w;
}

it('worker SIGKILL during deliveries under load: every 250 delivered, duplicates bounded by what was in flight', async () => {
  victim = worker();
  const other = worker();
  await Promise.all([victim.ready, other.ready]);
  assert.equal(victim.child.exitCode, null, victim.stderr());
  const load = await runLoad({ host: '127.0.0.1', port, clients: 4, messages: MESSAGES, localAddress: (k) => `127.0.0.${130 + k}`, rcpt: (n) => `user${n}@contoso.test` });
  assert.equal(await victim.exited, 'SIGKILL', 'the victim was killed during the deliveries');
  const rescuer = worker();
  await rescuer.ready;
  const delivered = () => account(load, far.messages.map((m) => m.raw));
  const drained = await until(async () => delivered().lost === 0 && (await queue.pending()) === 0, 60_000);
  await new Promise((r) => setTimeout(r, 500));
  const a = delivered();
  report('worker SIGKILL', a, load);
  assert.equal(a.accepted, MESSAGES);
  assert.equal(a.lost, 0, `lost: ${a.lostIds.join(' ')}`);
  assert.equal(a.incomplete, 0);
  assert.ok(drained, `the queue did not drain: ${JSON.stringify(await queue.counts())}`);
  assert.ok(a.duplicated <= CONCURRENCY, `${a.duplicated} duplicates, more than the ${CONCURRENCY} deliveries the victim had in flight: ${a.duplicateIds.join(' ')}`);
});
