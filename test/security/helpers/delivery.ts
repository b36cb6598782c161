// The delivery side of a fault scenario: the far side (test/worker's scripted SMTP server)
// that the routes point at, in-process delivery workers, and a view of the queue.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { GatewayConfig } from '@mailgw/config';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { freePort, startGateway, type TestGateway } from '../../listener/helpers/gateway.js';
import { shippedConfig } from './shipped.js';

/** Queue timings for fault tests: retries and stall detection within a second or two. */
export const FAULT_QUEUE = {
  transientRetryAttempts: 50,
  transientRetryInterval: '300ms',
  messageRetryInterval: '300ms',
  outboundConnectionFailureRetryInterval: '300ms',
  lockDuration: '2s',
  stalledInterval: '1s',
  drainTimeout: '5s',
} as const;

/** Routes every accepted domain of the shipped gateway.yaml to an SMTP far side. */
export function routesTo(port: number): Array<Record<string, unknown>> {
  return [{ domains: ['contoso.test', '*.contoso.test', 'fabrikam.test'], to: `smtp://127.0.0.1:${port}` }, { domains: ['*'], to: `smtp://127.0.0.1:${port}` }];
}

export interface InProcessWorkers {
  readonly handles: WorkerHandle[];
  close(): Promise<void>;
}

export async function startInProcessWorkers(gateway: GatewayConfig, redisUrl: string, opts: { count?: number; concurrency?: number } = {}): Promise<InProcessWorkers> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-secw-'));
  const logger = pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' });
  const handles: WorkerHandle[] = [];
  for (let i = 0; i < (opts.count ?? 1); i++) {
    handles.push(await startWorkers({ gateway, dataDir, redisUrl, logger, concurrency: opts.concurrency ?? 16, sessionIdleMs: 1000, busyRetryMs: 200, name: `secw-${i}` }));
  }
  return {
    handles,
    async close() {
      await Promise.all(handles.map((h) => h.close({ timeoutMs: 3000 })));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface QueueView {
  /** The BullMQ queue itself, for what a test reads or does beyond these (jobs, pause). */
  readonly bull: Queue;
  /** Jobs not finished yet (waiting, active, delayed, prioritized). */
  pending(): Promise<number>;
  counts(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export function queueView(redisUrl: string, prefix = '{mailgw}'): QueueView {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  connection.on('error', () => undefined);
  const queue = new Queue('delivery', { connection, prefix });
  queue.on('error', () => undefined); // Redis is killed on purpose
  return {
    bull: queue,
    async pending() {
      const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
      return Object.values(c).reduce((a, b) => a + b, 0);
    },
    counts: () => queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'),
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

export interface FaultRig {
  /** The Default connector's port (the shipped config, moved to a free port). */
  readonly port: number;
  readonly gw: TestGateway;
  readonly workers: InProcessWorkers;
  readonly queue: QueueView;
  close(): Promise<void>;
}

/**
 * The rig the fault scenarios share: the shipped config on free ports, no tarpit (the tests are
 * about storage and delivery, not pacing), every domain routed to the far side at `farSidePort`,
 * in-process workers, and a view of the queue.
 */
export async function startFaultRig(
  redisUrl: string,
  farSidePort: number,
  o: { concurrency: number; commandTimeoutMs?: number; extraConnectors?: (port: number) => Record<string, Record<string, unknown>> },
): Promise<FaultRig> {
  const port = await freePort();
  const cfg = await shippedConfig({
    defaultPort: port,
    clientPort: await freePort(),
    relayRanges: ['127.0.0.16/28'],
    connectorExtra: { tarpitInterval: 0 },
    gatewayExtra: { routes: routesTo(farSidePort), queue: FAULT_QUEUE },
  });
  Object.assign(cfg.connectors, o.extraConnectors?.(port) ?? {});
  const gw = await startGateway({ redisUrl, gateway: cfg.gateway, connectors: cfg.connectors, ...(o.commandTimeoutMs ? { commandTimeoutMs: o.commandTimeoutMs } : {}) });
  const workers = await startInProcessWorkers(gw.policy.config.gateway, redisUrl, { concurrency: o.concurrency });
  const queue = queueView(redisUrl);
  return {
    port,
    gw,
    workers,
    queue,
    async close() {
      await workers.close();
      await queue.close();
      await gw.close();
    },
  };
}
