// mailgw worker [--concurrency N]: a delivery worker process. Run as many as you like, on as
// many machines, against the Redis the listeners use (REDIS_URL or redis.url): each message is
// delivered by one of them. SIGTERM/SIGINT: stop taking messages, finish deliveries in
// progress (bounded by queue.drainTimeout), exit; a second signal exits at once.
import { formatIssue } from '@mailgw/config';
import { loadConfig } from '@mailgw/config/load';
import { watchConfig } from '@mailgw/ops';
import { redisTarget } from '@mailgw/queue';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { dkimKeyIssues, type PathOptions } from '../load-policy.js';
import { firstSignal } from '../signals.js';

export interface WorkerOptions extends PathOptions {
  concurrency?: string | undefined;
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
  const read = loadConfig({ configPath: opts.config, ...(opts.connectors ? { connectorsDir: opts.connectors } : {}), env: io.env });
  const keyErrors = read.ok ? dkimKeyIssues(read.config.gateway, opts.config, read.dataDir!) : [];
  const loaded = read.ok && keyErrors.length > 0 ? { ...read, ok: false as const, errors: keyErrors } : read;
  if (!loaded.ok) {
    io.stderr.write(`mailgw: the configuration has ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}; nothing was started.\n`);
    for (const i of loaded.errors) io.stderr.write(`  ${formatIssue(i)}\n`);
    return 1;
  }
  const gateway = loaded.config.gateway;
  const url = io.env.REDIS_URL || redisTarget(gateway.redis);
  if (!url) {
    io.stderr.write('mailgw worker: no Redis to take mail from: set REDIS_URL or redis.url in gateway.yaml (only `mailgw start` runs a redis-server of its own)\n');
    return 1;
  }
  const logger = io.logger ?? pino({ level: gateway.logLevel, base: { pid: process.pid } });
  // Listening for SIGTERM/SIGINT from the start: a stop asked for during start-up is kept, not fatal.
  const stopRequested = io.stopSignal ?? firstSignal(logger, 'second signal: exiting without waiting for deliveries in progress');
  let handle: WorkerHandle;
  try {
    handle = await startWorkers({
      gateway,
      dataDir: loaded.dataDir!,
      configFile: opts.config,
      redisUrl: url,
      ...(concurrency ? { concurrency } : {}),
      logger,
    });
  } catch (e) {
    logger.error({ err: e }, `the delivery worker could not start: ${(e as Error).message}`);
    io.stderr.write(`mailgw worker: ${(e as Error).message}\n`);
    return 1;
  }
  // Live reload, as in mailgw start: a change to gateway.yaml or connectors.d/ (or SIGHUP) is
  // loaded and compiled by the same code as at start-up (routes, passEnv secrets included);
  // routes and queue timing apply to messages attempted from then on. An invalid change is
  // refused with every problem logged (file and key), and the worker keeps what it has.
  const connectorsDir = opts.connectors ?? path.join(loaded.baseDir, 'connectors.d');
  const reload = (why: string) => {
    const next = loadConfig({ configPath: opts.config, connectorsDir, env: io.env });
    if (!next.ok) {
      const errors = next.errors.map(formatIssue);
      logger.error({ why, errors }, `configuration change rejected: ${errors[0]}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}; the worker keeps the configuration it has`);
      return;
    }
    handle.reload(next.config.gateway);
  };
  const watcher = watchConfig({
    gatewayFile: opts.config,
    connectorsDir,
    onChange: (why) => {
      // Never let a reload take the process down: deliveries in progress matter more.
      try {
        reload(why);
      } catch (err) {
        logger.error({ why, err }, `configuration change rejected: ${(err as Error).message}; the worker keeps the configuration it has`);
      }
    },
    onWatchError: (err, dir) => logger.warn({ err: err.message, dir }, 'cannot watch for configuration changes; reload with SIGHUP'),
  });
  const signal = await stopRequested;
  watcher.close();
  logger.info({ signal }, 'stopping the delivery worker');
  const { drained } = await handle.close();
  // Nothing should be left; if a stray handle remains, do not hang around for it.
  setTimeout(() => process.exit(0), 2000).unref();
  if (!drained) logger.warn("deliveries still in progress were left to other workers");
  return 0;
}
