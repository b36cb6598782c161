/**
 * A delivery rig for one test: a fresh key prefix on the shared test Redis, a temporary data
 * dir with a maildir root, the mail store a listener would use, worker(s) started in this
 * process, and a BullMQ Queue to look at job states.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { Env, GatewayConfig, GatewayInput, SendConnector } from '@mailgw/config';
import { DEFAULT_QUEUE_NAME, openMailStore, type MailStore } from '@mailgw/queue';
import type { DeliveryState } from '@mailgw/queue';
import { jobRetention, startWorkers, type StartWorkersOptions, type WorkerHandle } from '@mailgw/worker';
import { after, afterEach, before } from 'node:test';
import { startRedis, type TestRedis } from '../../harness/redis.js';
import { startFarSide, type FarSide } from './far-side.js';
import { FAST_QUEUE, eventually, randomPrefix, testGateway } from './gateway.js';

export interface Rig {
  readonly gateway: GatewayConfig;
  readonly store: MailStore;
  /** Maildir root (routes may use `maildir:${root}`). */
  readonly root: string;
  readonly dataDir: string;
  readonly queue: Queue;
  readonly redis: Redis;
  start(extra?: Partial<StartWorkersOptions>): Promise<WorkerHandle>;
  /** BullMQ state of a message's job ('completed', 'delayed', …, or 'unknown' once removed). */
  state(queueId: string): Promise<string>;
  progress(queueId: string): Promise<DeliveryState | null>;
  /** Parsed tracking log lines. */
  tracking(): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

export interface RigOptions {
  routes: (root: string) => unknown[];
  queue?: Record<string, unknown>;
  gateway?: Partial<GatewayInput>;
  /** Environment the routes' auth.passEnv are compiled from. */
  env?: Env;
  /** Compiled send connectors (ahead of the routes in the routing table). */
  sendConnectors?: readonly SendConnector[];
}

export async function makeRig(redisUrl: string, o: RigOptions): Promise<Rig> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-worker-'));
  const root = path.join(dataDir, 'mailboxes');
  const prefix = randomPrefix();
  const gateway = testGateway({ prefix, routes: o.routes(root) as GatewayInput['routes'], queue: { ...FAST_QUEUE, ...o.queue } as GatewayInput['queue'], ...o.gateway, ...(o.env ? { env: o.env } : {}), ...(o.sendConnectors ? { sendConnectors: o.sendConnectors } : {}) });
  const store = await openMailStore({ url: redisUrl, prefix, defaultJobOptions: jobRetention(gateway.queue) });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(DEFAULT_QUEUE_NAME, { connection: redis, prefix });
  const handles: WorkerHandle[] = [];
  const logger = pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' });
  return {
    gateway,
    store,
    root,
    dataDir,
    queue,
    redis,
    async start(extra = {}) {
      const h = await startWorkers({ gateway, dataDir, redisUrl, logger, concurrency: 4, sessionIdleMs: 1000, busyRetryMs: 200, ...extra });
      handles.push(h);
      return h;
    },
    async state(queueId) {
      const job = await queue.getJob(queueId);
      return job ? await job.getState() : 'unknown';
    },
    async progress(queueId) {
      const job = await queue.getJob(queueId);
      // progress is 0 until the first attempt records its results
      const p = job?.progress as DeliveryState | number | undefined;
      return typeof p === 'object' && p !== null && Array.isArray(p.recipients) ? p : null;
    },
    async tracking() {
      const dir = path.join(dataDir, 'logs', 'tracking');
      const files = await readdir(dir).catch(() => [] as string[]);
      const lines: Array<Record<string, unknown>> = [];
      for (const f of files.sort()) {
        for (const l of (await readFile(path.join(dir, f), 'utf8')).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      return lines;
    },
    async close() {
      await Promise.all(handles.map((h) => h.close({ timeoutMs: 5000 })));
      await queue.close();
      redis.disconnect();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The hooks most delivery test files share: one real redis-server for the file, far sides and
 * rigs closed after each test. Call at the top level of a test file.
 */
export function rigsPerTest(): {
  farSide(...args: Parameters<typeof startFarSide>): Promise<FarSide>;
  rig(o: RigOptions): Promise<Rig>;
  done(r: Rig, id: string): Promise<unknown>;
} {
  let redis: TestRedis;
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });
  after(async () => {
    await redis?.stop();
  });
  return {
    async farSide(...args) {
      const f = await startFarSide(...args);
      cleanups.push(() => f.close());
      return f;
    },
    async rig(o) {
      const r = await makeRig(redis.url, o);
      cleanups.push(() => r.close());
      return r;
    },
    done: (r, id) => eventually(async () => (await r.state(id)) === 'completed', `job ${id} completed`),
  };
}
