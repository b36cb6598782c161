// mailgw start / listen: load and compile the configuration (every error printed, nothing
// started when there is one), reach Redis (REDIS_URL, else redis.url, else a redis-server of
// our own in dataDir/redis), start every enabled connector's listener, and on SIGTERM/SIGINT
// stop accepting, let transactions in progress finish (bounded) and close.
import path from 'node:path';
import { createRedisRateCounter, startListeners, type Listeners, type RateCounter } from '@mailgw/listener';
import { RedisServerNotFoundError, openMailStore, startRedisServer, type MailStore, type RedisServer } from '@mailgw/queue';
import { jobRetention, startWorkers, type WorkerHandle } from '@mailgw/worker';
import { pino, type Logger } from 'pino';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';

export interface ServeOptions extends PathOptions {
  /** `start` (listeners and delivery workers) rather than `listen` (listeners only). */
  workers: boolean;
}

export interface ServeIO {
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /** Resolves when the process is asked to stop; default: the first SIGTERM or SIGINT. */
  readonly stopSignal?: Promise<string>;
  readonly logger?: Logger;
}

/** How long transactions in progress may take to finish after SIGTERM. */
export const SHUTDOWN_GRACE_MS = 10_000;

function firstSignal(logger: Logger): Promise<string> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (sig: NodeJS.Signals) => {
      if (seen) {
        logger.warn({ signal: sig }, 'second signal: exiting without waiting');
        process.exit(1);
      }
      seen = true;
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export async function runServe(opts: ServeOptions, io: ServeIO = { stderr: process.stderr, env: process.env }): Promise<number> {
  const loaded = loadPolicy(opts);
  if (!loaded.ok) {
    io.stderr.write(`mailgw: the configuration has ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}; nothing was started.\n`);
    printIssues(io.stderr, 'Errors:', loaded.errors);
    printIssues(io.stderr, 'Warnings:', loaded.warnings);
    return 1;
  }
  printIssues(io.stderr, 'Warnings:', loaded.warnings);
  const { policy, dataDir, baseDir } = loaded;
  const gateway = policy.config.gateway;
  const logger = io.logger ?? pino({ level: gateway.logLevel, base: { pid: process.pid } });

  let redis: RedisServer | null = null;
  let store: MailStore | null = null;
  let rate: RateCounter | null = null;
  let listeners: Listeners | null = null;
  let workers: WorkerHandle | null = null;
  const cleanup = async () => {
    await listeners?.close({ graceMs: SHUTDOWN_GRACE_MS });
    // Workers drain after the listeners so mail accepted during the grace period is not stranded
    // half-delivered; what they cannot finish within queue.drainTimeout is retried later.
    await workers?.close();
    await rate?.close();
    await store?.close();
    await redis?.stop();
  };

  try {
    let url = io.env.REDIS_URL || gateway.redis.url;
    if (!url) {
      const dir = path.join(dataDir, 'redis');
      try {
        redis = await startRedisServer({ dataDir: dir });
      } catch (e) {
        if (e instanceof RedisServerNotFoundError) {
          io.stderr.write(`mailgw: ${e.message}\n`);
          return 1;
        }
        throw e;
      }
      url = redis.url;
      logger.info({ url, dataDir: dir }, 'started an embedded redis-server (set REDIS_URL or redis.url to use your own)');
    }
    const prefix = gateway.redis.prefix;
    try {
      store = await openMailStore({ url, prefix, defaultJobOptions: jobRetention(gateway.queue), onError: (err) => logger.warn({ err: err.message }, 'redis connection error') });
    } catch (e) {
      io.stderr.write(`mailgw: cannot reach Redis at ${url}: ${(e as Error).message}\n`);
      await cleanup();
      return 1;
    }
    if (!redis) {
      const eviction = await store.checkEvictionPolicy().catch(() => 'unknown');
      if (eviction !== 'noeviction') {
        logger.warn({ url, maxmemoryPolicy: eviction }, `Redis maxmemory-policy is "${eviction}", not "noeviction": under memory pressure Redis may drop queued mail (set maxmemory-policy noeviction)`);
      }
    }
    rate = createRedisRateCounter({ url, prefix, onError: (err) => logger.debug({ err: err.message }, 'rate counter redis error') });
    listeners = await startListeners({ policy, store, logger, dataDir, configDir: baseDir, rateCounter: rate });
    if (opts.workers) workers = await startWorkers({ gateway, baseDir, dataDir, redisUrl: url, logger });
    logger.info({ connectors: policy.connectors.filter((c) => c.config.enabled).map((c) => c.name) }, 'mailgw is running');
  } catch (e) {
    logger.error({ err: e }, `mailgw could not start: ${(e as Error).message}`);
    io.stderr.write(`mailgw: ${(e as Error).message}\n`);
    await cleanup();
    return 1;
  }

  const signal = await (io.stopSignal ?? firstSignal(logger));
  logger.info({ signal, graceMs: SHUTDOWN_GRACE_MS }, 'stopping: no new connections, finishing transactions in progress');
  await cleanup();
  logger.info('stopped');
  // Nothing should be left; if a stray handle remains, do not hang around for it.
  setTimeout(() => process.exit(0), 2000).unref();
  return 0;
}
