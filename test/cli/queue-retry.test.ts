// `mailgw queue retry --all` as an admin runs it (the built binary) on real deferred mail: a
// count, not every queue id on one line; the ids with --verbose (one per line) or --json.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig } from '@mailgw/config/load';
import { DEFAULT_QUEUE_NAME, openMailStore, type DeliveryState, type MailStore } from '@mailgw/queue';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { retryText } from '../../packages/cli/src/commands/queue.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { enqueue, eventually, message } from '../worker/helpers/gateway.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'packages/cli/bin/mailgw.js');
const run = promisify(execFile);

let redis: TestRedis;
let cfg: ConfigDir;
let far: FarSide;
let store: MailStore;
let workers: WorkerHandle;
let conn: Redis;
let queue: Queue;
const ids: string[] = [];

async function mailgw(args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, [bin, ...args, '--config', cfg.gatewayFile], { cwd: root, env: { ...process.env, REDIS_URL: redis.url }, timeout: 30_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

/** Every message has been attempted `n` times and waits (delayed) for its next retry. */
const deferred = (n: number) =>
  eventually(async () => {
    for (const id of ids) {
      const job = await queue.getJob(id);
      const p = job?.progress as DeliveryState | number | undefined;
      if (!job || (await job.getState()) !== 'delayed' || typeof p !== 'object' || p.recipients[0]!.attempts !== n) return null;
    }
    return true;
  }, `all messages attempted ${n} time(s) and delayed`);

before(async () => {
  redis = await startRedis();
  far = await startFarSide({ rcpt: () => '451 4.2.0 Try again later' });
  cfg = makeConfigDir('mailgw-cli-retry-');
  cfg.writeGateway(
    [
      'fqdn: mail.contoso.test',
      'dataDir: ./var',
      ACCEPTED,
      'redis: { prefix: "{cliretry}" }',
      'routes:',
      `  - { domains: [fabrikam.test], to: "smtp://127.0.0.1:${far.port}" }`,
      // Nothing is retried by itself during the test: only what the command does.
      'queue: { transientRetryInterval: 1h, messageRetryInterval: 1h, outboundConnectionFailureRetryInterval: 1h, lockDuration: 2s, stalledInterval: 1s, drainTimeout: 5s }',
      '',
    ].join('\n'),
  );
  cfg.writeConnector('default.yaml', 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
  const loaded = loadConfig({ configPath: cfg.gatewayFile });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const gateway = loaded.config.gateway;
  store = await openMailStore({ url: redis.url, prefix: gateway.redis.prefix });
  conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  queue = new Queue(DEFAULT_QUEUE_NAME, { connection: conn, prefix: gateway.redis.prefix });
  for (let i = 0; i < 4; i++) ids.push(await enqueue(store, { from: 'sender@contoso.test', to: [`r${i}@fabrikam.test`], body: message(`retry ${i}`) }));
  workers = await startWorkers({ gateway, dataDir: loaded.dataDir!, redisUrl: redis.url, logger: pino({ level: 'silent' }), concurrency: 4, sessionIdleMs: 500 });
  await deferred(1);
});

after(async () => {
  await workers?.close({ timeoutMs: 5000 });
  await queue?.close();
  conn?.disconnect();
  await store?.close();
  await far?.close();
  await redis?.stop();
  cfg?.remove();
});

describe('mailgw queue retry --all', () => {
  it('prints how many were retried and skipped, not the ids', async () => {
    const r = await mailgw(['queue', 'retry', '--all']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'retried 4 messages, skipped 0\n');
    await deferred(2); // they really were tried again
  });

  it('--verbose lists each message on its own line', async () => {
    const r = await mailgw(['queue', 'retry', '--all', '--verbose']);
    assert.equal(r.code, 0, r.err);
    const [head, ...lines] = r.out.trimEnd().split('\n');
    assert.equal(head, 'retried 4 messages, skipped 0');
    assert.deepEqual(lines.sort(), ids.map((id) => `  ${id}  retried`).sort());
    await deferred(3);
  });

  it('--json gives the ids retried and skipped', async () => {
    const r = await mailgw(['queue', 'retry', '--all', '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { retried: string[]; skipped: unknown[] };
    assert.deepEqual([...j.retried].sort(), [...ids].sort());
    assert.deepEqual(j.skipped, []);
  });

  it('skipped messages are counted by reason; --verbose names them', () => {
    const r = { retried: ['A', 'B'], skipped: [{ id: 'C', why: 'being delivered now' }, { id: 'D', why: 'being delivered now' }, { id: 'E', why: 'no longer queued' }] };
    assert.equal(retryText(r, { one: false, verbose: false }), 'retried 2 messages, skipped 3 (2 being delivered now; 1 no longer queued); --verbose lists them\n');
    assert.equal(retryText(r, { one: false, verbose: true }), 'retried 2 messages, skipped 3\n  A  retried\n  B  retried\n  C  skipped: being delivered now\n  D  skipped: being delivered now\n  E  skipped: no longer queued\n');
    assert.equal(retryText({ retried: ['A'], skipped: [] }, { one: true, verbose: false }), 'retried 1 message: A\n');
  });
});
