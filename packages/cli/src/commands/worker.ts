// mailgw worker [--concurrency N]: a delivery worker process. Run as many as you like, on as
// many machines, against the Redis the listeners use (REDIS_URL or redis.url): each message is
// delivered by one of them. SIGTERM/SIGINT: stop taking messages, finish deliveries in
// progress (bounded by queue.drainTimeout), exit; a second signal exits at once.
import { formatIssue } from '@mailgw/config';
import { loadConfig } from '@mailgw/config/load';
import { GatewayMetrics, QueueAdmin, StatsRecorder, startHeartbeat, startOpsHttp, watchConfig, type OpsHttpServer } from '@mailgw/ops';
import { connectRedis, logSets, openGatewayTracking, redisTarget, startLogRetention, type TrackingLog } from '@mailgw/queue';
import { parseBinding, type HttpConfig } from '@mailgw/config';
import { version } from '../usage.js';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import path from 'node:path';
import type { Logger } from 'pino';
import { flushLog, mailLogger, trackingFailures } from '../logger.js';
import { configPaths, signingKeyIssues, type PathOptions } from '../load-policy.js';
import { firstSignal } from '../signals.js';
import { workerFacts } from '../ops-http.js';
import { withRedisHint } from '../redis-messages.js';

export interface WorkerOptions extends PathOptions {
  concurrency?: string | undefined;
  /** IP:port for /metrics and /healthz (overrides gateway.yaml http.listen; serves them without an http section). */
  http?: string | undefined;
}

export interface WorkerIO {
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /** Resolves when the process is asked to stop; default: the first SIGTERM or SIGINT. */
  readonly stopSignal?: Promise<string>;
  readonly logger?: Logger;
}


export async function runWorker(opts: WorkerOptions, io: WorkerIO = { stderr: process.stderr, env: process.env }): Promise<number> {
  let concurrency: number | undefined;
  if (opts.concurrency !== undefined) {
    concurrency = Number(opts.concurrency);
    if (!/^\d+$/.test(opts.concurrency) || concurrency < 1 || concurrency > 1000) {
      io.stderr.write(`mailgw worker: --concurrency must be a whole number from 1 to 1000, not "${opts.concurrency}"\n`);
      return 2;
    }
  }
  const read = loadConfig({ ...configPaths(opts), env: io.env });
  const keyErrors = read.ok ? signingKeyIssues(read.config.gateway, opts.config, read.dataDir!) : [];
  const loaded = read.ok && keyErrors.length > 0 ? { ...read, ok: false as const, errors: keyErrors } : read;
  if (!loaded.ok) {
    io.stderr.write(`mailgw: the configuration has ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}; nothing was started.\n`);
    for (const i of loaded.errors) io.stderr.write(`  ${formatIssue(i)}\n`);
    return 1;
  }
  const gateway = loaded.config.gateway;
  let http: HttpConfig | null = gateway.http ?? null;
  if (opts.http !== undefined) {
    const listen = parseBinding(opts.http);
    if (!listen) {
      io.stderr.write(`mailgw worker: --http must be IP:port (127.0.0.1:9026, [::1]:9026), not "${opts.http}"\n`);
      return 2;
    }
    http = { ...(http ?? { allowWrite: false }), listen };
  }
  const url = io.env.REDIS_URL || redisTarget(gateway.redis);
  if (!url) {
    io.stderr.write('mailgw worker: no Redis to take mail from: set REDIS_URL or redis.url in gateway.yaml (only `mailgw start` runs a redis-server of its own)\n');
    return 1;
  }
  const logger = io.logger ?? mailLogger({ level: gateway.logLevel, base: { pid: process.pid } });
  // Listening for SIGTERM/SIGINT from the start: a stop asked for during start-up is kept, not fatal.
  const stopRequested = io.stopSignal ?? firstSignal(logger, 'second signal: exiting without waiting for deliveries in progress');
  let logs = gateway.logs;
  // Its own connection for the heartbeat and the tracking stream (the worker's are busy blocking).
  const redis = connectRedis(url, { maxRetriesPerRequest: null, connectionName: `mailgw:worker-side:${process.pid}` });
  redis.on('error', (err: Error) => logger.debug({ err: err.message }, 'Redis connection error (heartbeat, tracking stream)'));
  const trackingFile = openGatewayTracking({
    dataDir: loaded.dataDir!,
    redis,
    prefix: gateway.redis.prefix,
    settings: () => logs,
    ...trackingFailures(logger, () => metrics),
  });
  // /metrics and /healthz of this worker (gateway.yaml http, or --http ADDR), so Prometheus scrapes every worker.
  let metrics: GatewayMetrics | null = null;
  let admin: QueueAdmin | null = null;
  // The gateway-wide per-minute counters behind the dashboard's charts.
  const stats = new StatsRecorder(redis, gateway.redis.prefix, (err) => logger.debug({ err: err.message }, 'activity counters not written'));
  let tracking: TrackingLog = stats.tapTracking(trackingFile);
  if (http) {
    try {
      admin = await QueueAdmin.open({ redisUrl: url, gateway, dataDir: loaded.dataDir!, logger, tracking: trackingFile });
    } catch (e) {
      io.stderr.write(`mailgw worker: ${(e as Error).message}\n`);
      redis.disconnect();
      return 1;
    }
    metrics = new GatewayMetrics({ queue: admin, process: { role: 'worker', version: version() } });
    tracking = metrics.tapTracking(tracking);
  }
  let handle: WorkerHandle;
  let server: OpsHttpServer | null = null;
  try {
    handle = await startWorkers({
      gateway,
      dataDir: loaded.dataDir!,
      configFile: opts.config,
      redisUrl: url,
      ...(concurrency ? { concurrency } : {}),
      logger,
      tracking,
      ...(metrics ? { onDkim: metrics.observeDkim, onArc: metrics.observeArc, onLogWriteFailed: (log: string) => metrics!.logWriteFailed(log) } : {}),
    });
    metrics?.watchWorkers(handle);
    if (http && metrics && admin) {
      const h = handle;
      server = await startOpsHttp({
        listen: http.listen,
        token: http.token ?? null,
        allowWrite: http.allowWrite,
        metrics,
        admin,
        logger,
        config: () => ({ fqdn: gateway.fqdn, connectors: [] }),
        facts: () => ({ role: 'worker', ...workerFacts(h) }),
      });
    }
  } catch (e) {
    logger.error({ err: e }, `the delivery worker could not start: ${(e as Error).message}`);
    io.stderr.write(`mailgw worker: ${withRedisHint((e as Error).message)}\n`);
    await admin?.close();
    await trackingFile.close();
    redis.disconnect();
    return 1;
  }
  const running = handle;
  const heartbeat = startHeartbeat({
    redis,
    prefix: gateway.redis.prefix,
    role: 'worker',
    version: version(),
    figures: () => workerFacts(running),
    onError: (err) => logger.debug({ err: err.message }, 'heartbeat not written'),
  });
  await flushLog(logger);
  // Live reload, as in mailgw start: a change to gateway.yaml or connectors.d/ (or SIGHUP) is
  // loaded and compiled by the same code as at start-up (routes, passEnv secrets included);
  // routes and queue timing apply to messages attempted from then on. An invalid change is
  // refused with every problem logged (file and key), and the worker keeps what it has.
  const connectorsDir = opts.connectors ?? path.join(loaded.baseDir, 'connectors.d');
  // Log retention of the tracking log this worker writes (gateway.yaml logs; a reload applies).
  const retention = startLogRetention({ sets: () => logSets(loaded.dataDir!, logs), logger });
  const reload = (why: string) => {
    const next = loadConfig({ ...configPaths(opts), connectorsDir, env: io.env });
    if (!next.ok) {
      const errors = next.errors.map(formatIssue);
      logger.error({ trigger: why, errors }, `configuration change rejected: ${errors[0]}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}; the worker keeps the configuration it has`);
      return;
    }
    handle.reload(next.config.gateway);
    logs = next.config.gateway.logs;
    // logLevel is reloadable, as in mailgw start and mailgw listen.
    logger.level = next.config.gateway.logLevel;
  };
  const watcher = watchConfig({
    gatewayFile: opts.config,
    connectorsDir,
    sendConnectorsDir: opts['send-connectors'] ?? path.join(loaded.baseDir, 'send-connectors.d'),
    onChange: (why) => {
      // Never let a reload take the process down: deliveries in progress matter more.
      try {
        reload(why);
      } catch (err) {
        logger.error({ trigger: why, err }, `configuration change rejected: ${(err as Error).message}; the worker keeps the configuration it has`);
      }
    },
    onWatchError: (err, dir) => logger.warn({ err: err.message, dir }, 'cannot watch for configuration changes; reload with SIGHUP'),
  });
  const signal = await stopRequested;
  watcher.close();
  await retention.stop();
  logger.info({ signal }, 'stopping the delivery worker');
  await server?.close();
  await heartbeat.stop();
  const { drained } = await handle.close();
  await trackingFile.close();
  await stats.close();
  await admin?.close();
  redis.disconnect();
  // Nothing should be left; if a stray handle remains, do not hang around for it.
  setTimeout(() => process.exit(0), 2000).unref();
  if (!drained) logger.warn("deliveries still in progress were left to other workers");
  return 0;
}
