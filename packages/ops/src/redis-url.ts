// Where the queue's Redis is, for every process that needs it (gateway, CLI): REDIS_URL, else
// gateway.yaml redis.url, else the embedded redis-server of a running `mailgw start`, whose URL
// it writes to <dataDir>/redis/url while it runs.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { GatewayConfig, RouteSecret } from '@mailgw/config';
import { isRedisTarget, redisTarget } from '@mailgw/queue';

export function embeddedUrlFile(dataDir: string): string {
  return path.join(dataDir, 'redis', 'url');
}

export function announceEmbeddedRedis(dataDir: string, url: string): void {
  writeFileSync(embeddedUrlFile(dataDir), `${url}\n`, { mode: 0o600 });
}

export function forgetEmbeddedRedis(dataDir: string): void {
  rmSync(embeddedUrlFile(dataDir), { force: true });
}

export function queueRedisUrl(env: NodeJS.ProcessEnv, gateway: GatewayConfig<RouteSecret>, dataDir: string): string | null {
  if (env.REDIS_URL) return env.REDIS_URL;
  // redis.url, or a redis+sentinel:// / redis+cluster:// target built from sentinels / cluster.
  const configured = redisTarget(gateway.redis);
  if (configured) return configured;
  try {
    const url = readFileSync(embeddedUrlFile(dataDir), 'utf8').trim();
    return isRedisTarget(url) ? url : null;
  } catch {
    return null;
  }
}
