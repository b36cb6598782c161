// How the commands word a Redis they cannot reach: the URL without its password, Node's reason,
// and what to do when the reason is one an admin cannot act on from its wording alone.
import { queueRedisUrl } from '@mailgw/ops';
import type { GatewayConfig } from '@mailgw/config';
import { connectRedis, redisConnectHint, redisUrlForDisplay } from '@mailgw/queue';

/** `message`, and on a second, indented line what to do about it when redisConnectHint knows. */
export function withRedisHint(message: string): string {
  const hint = redisConnectHint(message);
  return `${message}${hint ? `\n  ${hint}` : ''}`;
}

export function cannotReachRedis(url: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `cannot reach Redis at ${redisUrlForDisplay(url)}: ${withRedisHint(message)}`;
}

/**
 * The queue's Redis for a one-shot command (REDIS_URL, redis.url, or the one `mailgw start` runs
 * here), connected; or why not, worded for the admin.
 */
export async function commandRedis(command: string, env: NodeJS.ProcessEnv, g: GatewayConfig, dataDir: string): Promise<{ ok: true; redis: ReturnType<typeof connectRedis> } | { ok: false; why: string }> {
  const url = queueRedisUrl(env, g, dataDir);
  if (!url) return { ok: false, why: 'no Redis to use: set REDIS_URL or redis.url in gateway.yaml (or run this where `mailgw start` runs its own)' };
  const redis = connectRedis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000, connectionName: `mailgw:${command}:${process.pid}` });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return { ok: true, redis };
  } catch (e) {
    redis.disconnect();
    return { ok: false, why: cannotReachRedis(url, e) };
  }
}
