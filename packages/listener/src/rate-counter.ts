// messageRateLimit counting: messages per key (from the policy's rateLimitKey) in a sliding
// minute. The Redis counter is shared by every listener process on the same Redis; the
// memory counter is per process (for tests of one process and for embedding).
import { randomBytes } from 'node:crypto';
import type { Policy } from '@mailgw/policy';
import { connectRedis, defineScripts, keySpace } from '@mailgw/queue';

export interface RateCounter {
  /**
   * Counts the messages recorded under `key` within the last `windowMs` and records one more
   * when that count is below `limit`. Returns the count before this message; rejects when the
   * store cannot be reached (the caller defers: a failure never permits).
   */
  take(key: string, limit: number, windowMs: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Brute-force backoff for AUTH, per client IP and across connections (and, with the Redis
 * counter, across listener processes): after `failures` failed AUTH attempts from one address
 * within `windowMs`, further AUTH from it is answered 454 4.7.0 without looking at the
 * credentials, until the oldest failures leave the window. maxLogonFailures still closes each
 * connection; this stops the attacker who simply reconnects. `failures: 0` turns it off.
 */
export interface AuthBackoff {
  readonly failures: number;
  readonly windowMs: number;
}

/** gateway.yaml's authBackoff (read per attempt, so a reload applies at once). */
export function authBackoffOf(policy: Policy): AuthBackoff {
  const b = policy.config.gateway.authBackoff;
  return { failures: b.failures, windowMs: b.window };
}

/** The rate-counter key of the AUTH failures of one client address (no connector: any connector counts). */
export function authFailureKey(clientIP: string): string {
  return `auth-failures|ip:${clientIP}`;
}

/** Failed AUTH attempts from `clientIP` within the window (records nothing: limit 0). */
export function recentAuthFailures(rate: RateCounter, b: AuthBackoff, clientIP: string): Promise<number> {
  return rate.take(authFailureKey(clientIP), 0, b.windowMs);
}

/** Records one failed AUTH attempt from `clientIP`. */
export async function recordAuthFailure(rate: RateCounter, b: AuthBackoff, clientIP: string): Promise<void> {
  await rate.take(authFailureKey(clientIP), Number.MAX_SAFE_INTEGER, b.windowMs);
}

export function createMemoryRateCounter(now: () => number = Date.now): RateCounter {
  const hits = new Map<string, number[]>();
  return {
    async take(key, limit, windowMs) {
      const t = now();
      const list = (hits.get(key) ?? []).filter((x) => x > t - windowMs);
      const before = list.length;
      if (before < limit) list.push(t);
      if (list.length) hits.set(key, list);
      else hits.delete(key);
      return before;
    },
    async close() {
      hits.clear();
    },
  };
}

export interface RedisRateCounterOptions {
  url: string;
  /** Key prefix, the queue's (a Redis Cluster hash tag such as {mailgw}). */
  prefix: string;
  /** Bound on each command (default 2000 ms). */
  commandTimeoutMs?: number;
  onError?: (err: Error) => void;
}

export function createRedisRateCounter(opts: RedisRateCounterOptions): RateCounter {
  // Fail fast while Redis is away (MAIL then gets 451), reconnect forever in the background.
  const redis = connectRedis(opts.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs ?? 2000,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    connectionName: `mailgw:rate:${process.pid}`,
  });
  redis.on('error', (err: Error) => opts.onError?.(err));
  // EVALSHA, falling back to EVAL once per connection: the script text is not sent each time.
  // lua/rate-take.lua of @mailgw/queue: prune, count, record if under the limit, in one round trip.
  const script = defineScripts(redis, ['rate-take'])['rate-take'];
  const take = async (key: string, ...args: Array<string | number>): Promise<number> => Number(await script(key, ...args));
  const keys = keySpace(opts.prefix);
  const encode = (s: string) => encodeURIComponent(s);
  return {
    async take(key, limit, windowMs) {
      const t = Date.now();
      const member = `${t}-${randomBytes(6).toString('hex')}`;
      const n = await take(keys.rateCounter(encode(key)), t, windowMs, limit, member);
      return Number(n);
    },
    async close() {
      redis.disconnect(false);
    },
  };
}
