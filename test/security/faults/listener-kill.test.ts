// The listener SIGKILLed in the middle of DATA. The client sees no 250 for the message it was
// sending; what the dead listener had already streamed into Redis is never delivered (the body
// has no job, only a TTL); under load, with the listener restarted, every 250 is delivered
// whole and nothing half-stored reaches the far side.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../../harness/redis.js';
import { freePort } from '../../listener/helpers/gateway.js';
import { RawSmtp, SmtpClosedError } from '../../listener/helpers/smtp-client.js';
import { startFarSide, type FarSide } from '../../worker/helpers/far-side.js';
import { FAULT_QUEUE, queueView, routesTo, startInProcessWorkers, type InProcessWorkers, type QueueView } from '../helpers/delivery.js';
import { jobReader, type JobReader } from '../helpers/jobs.js';
import { spawnListener, type ChildConfig, type ListenerProcess } from '../helpers/listener-process.js';
import { account, inspectDelivered, loadMessage, report, runLoad, unexplainedDuplicates, until, type LoadResult } from '../helpers/scenario.js';
import { shippedConfig } from '../helpers/shipped.js';

let redis: TestRedis;
let peek: Redis;
let far: FarSide;
let workers: InProcessWorkers;
let queue: QueueView;
let jobs: JobReader;
let childCfg: ChildConfig;
let port = 0;
const children: ListenerProcess[] = [];

before(async () => {
  redis = await startRedis();
  peek = new Redis(redis.url);
  far = await startFarSide();
  port = await freePort();
  const cfg = await shippedConfig({
    defaultPort: port,
    clientPort: await freePort(),
    relayRanges: ['127.0.0.16/28'],
    connectorExtra: { tarpitInterval: 0 },
    gatewayExtra: { routes: routesTo(far.port), queue: FAULT_QUEUE },
  });
  childCfg = { redisUrl: redis.url, gateway: cfg.gateway, connectors: cfg.connectors };
  const { compile } = await import('../../listener/helpers/gateway.js');
  workers = await startInProcessWorkers(compile(cfg.gateway, cfg.connectors).config.gateway, redis.url, { concurrency: 8 });
  queue = queueView(redis.url);
  jobs = jobReader(redis.url);
});

after(async () => {
  for (const c of children) await c.stop().catch(() => undefined);
  await workers?.close();
  await queue?.close();
  await jobs?.close();
  peek?.disconnect();
  await far?.close();
  await redis?.stop();
});

async function listener(): Promise<ListenerProcess> {
  const c = await spawnListener(childCfg);
  children.push(c);
  return c;
}

const deliveredIds = () => far.messages.map((m) => inspectDelivered(m.raw).id);

it('SIGKILL while a message streams in: no 250, its partial body is never delivered and expires', async () => {
  const l = await listener();
  const bodiesBefore = new Set(await jobs.bodyKeys());
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const msg = loadMessage('half', 2 * 1024 * 1024);
  c.write(msg.subarray(0, 700 * 1024)); // more than one 256 KB flush, far from the end
  // Wait until the listener has put part of the body in Redis, then kill it.
  let partial: string | undefined;
  assert.ok(await until(async () => (partial = (await jobs.bodyKeys()).find((k) => !bodiesBefore.has(k))) !== undefined, 10_000), 'no partial body reached Redis');
  await l.kill('SIGKILL');
  let reply: string | null = null;
  try {
    reply = (await c.read()).last;
  } catch (e) {
    assert.ok(e instanceof SmtpClosedError);
  }
  assert.equal(reply, null, `the client must see no reply at all, got ${reply}`);
  // The half-stored body: no job refers to it, and it is not kept forever.
  const queueId = partial!.slice(partial!.lastIndexOf(':') + 1);
  assert.equal((await jobs.envelopes()).some((e) => e.queueId === queueId), false, 'a job exists for a message that never completed');
  const ttl = await peek.ttl(partial!);
  assert.ok(ttl > 0, `the partial body has no expiry (TTL ${ttl})`);
  await new Promise((r) => setTimeout(r, 1500)); // give the workers every chance to do the wrong thing
  assert.ok(!deliveredIds().includes('half'), 'part of a message was delivered');
  assert.equal(await queue.pending(), 0);
});

it('SIGKILL and restart of the listener under load: every 250 delivered whole, nothing half-stored delivered', async () => {
  await listener();
  const MESSAGES = 400;
  let restart: Promise<void> | null = null;
  let load: LoadResult | null = null;
  load = await runLoad({
    host: '127.0.0.1',
    port,
    clients: 6,
    messages: MESSAGES,
    localAddress: (k) => `127.0.0.${110 + k}`,
    rcpt: (n) => `user${n % 20}@contoso.test`,
    // One in four messages is 600 KB, so the kill finds some in the middle of DATA.
    size: (n) => (n % 4 === 0 ? 600 * 1024 : 2000),
    onAccepted: (n) => {
      if (n === 120 && !restart) {
        restart = (async () => {
          await children[children.length - 1]!.kill('SIGKILL');
          await new Promise((r) => setTimeout(r, 300));
          await listener();
        })();
      }
    },
  });
  assert.ok(restart, 'the listener was killed during the load');
  await restart;
  const done = await until(async () => account(load!, far.messages.map((m) => m.raw)).lost === 0 && (await queue.pending()) === 0, 60_000);
  await new Promise((r) => setTimeout(r, 500));
  const a = account(load, far.messages.map((m) => m.raw).filter((raw) => inspectDelivered(raw).id !== 'half'));
  report('listener SIGKILL', a, load);
  assert.equal(a.accepted, MESSAGES, 'the clients got every message accepted in the end');
  assert.equal(a.lost, 0, `lost: ${a.lostIds.join(' ')}`);
  assert.equal(a.incomplete, 0, 'a half-stored message was delivered');
  assert.deepEqual(unexplainedDuplicates(a, load), [], 'duplicates that no lost 250 explains (the workers were not killed)');
  assert.ok(done, 'the queue did not drain');
  const sawTheKill = [...load.attempts.values()].some((list) => list.some((x) => x.startsWith('closed') || x.startsWith('connect-error')));
  assert.ok(sawTheKill, 'no client noticed the kill');
});
