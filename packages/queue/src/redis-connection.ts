import type { Redis, RedisOptions } from 'ioredis';
import { connectRedis } from './redis-target.js';

export interface ProducerConnectionOptions {
  /** redis://[user:pass@]host:port[/db], rediss://…, or a redis+sentinel:// / redis+cluster:// target (redis-target.ts). */
  url: string;
  /** Bound on every command: a command without reply by then is rejected. */
  commandTimeoutMs: number;
  /** Bound on establishing the TCP connection (default: commandTimeoutMs). */
  connectTimeoutMs?: number;
  connectionName?: string;
  /** Connection errors (also emitted while reconnecting in the background). */
  onError?: (err: Error) => void;
}

/** Delay before reconnect attempt `times` (1, 2, …): never gives up. */
export function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 2000);
}

/**
 * The producer connection: fails fast instead of queueing commands while Redis
 * is away (so the SMTP side can answer 451 at once), and reconnects forever
 * in the background (so the store works again once Redis is back, without a
 * restart).
 */
export function createProducerConnection(opts: ProducerConnectionOptions): Redis {
  const options: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // Never replay a write that was in flight when the connection dropped: the
    // caller has already been told it failed (an APPEND replayed later would
    // corrupt a body).
    autoResendUnfulfilledCommands: false,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: opts.connectTimeoutMs ?? opts.commandTimeoutMs,
    retryStrategy: reconnectDelay,
    enableAutoPipelining: true,
    lazyConnect: false,
    ...(opts.connectionName ? { connectionName: opts.connectionName } : {}),
  };
  const redis = connectRedis(opts.url, options);
  redis.on('error', (err: Error) => opts.onError?.(err));
  return redis;
}

/** Resolves when `redis` is ready, rejects after `ms` or when it ends. */
export function waitForReady(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      redis.off('end', onEnd);
    };
    const onReady = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      lastError = err;
    };
    const onEnd = () => {
      cleanup();
      reject(lastError ?? new Error('connection closed'));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new Error(`Redis not ready within ${ms} ms (status ${redis.status}${lastError ? `: ${lastError.message}` : ''})`),
      );
    }, ms);
    timer.unref?.();
    redis.on('ready', onReady);
    redis.on('error', onError);
    redis.on('end', onEnd);
  });
}
