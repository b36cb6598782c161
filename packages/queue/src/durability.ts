// What a 250 after DATA promises (gateway.yaml redis.durability), and whether the Redis in
// use keeps that promise. Redis acknowledges a write once it is in memory; when it is on disk
// depends on appendonly/appendfsync, which mailgw sets for its embedded Redis and can only read
// (and warn about) on an external one.
import type { Redis } from 'ioredis';

export type Durability = 'fsync' | 'replicas' | 'os-buffered';

/** The AOF fsync policy the embedded redis-server runs with for a durability setting. */
export function embeddedAppendFsync(d: Durability): 'always' | 'everysec' {
  return d === 'os-buffered' ? 'everysec' : 'always';
}

/** redis.maxMemory → the embedded server's maxmemory in bytes (0: none); auto is half the machine's memory. */
export function embeddedMaxMemory(setting: 'auto' | 'unlimited' | number, machineBytes: number): number {
  if (setting === 'unlimited') return 0;
  if (setting === 'auto') return Math.floor(machineBytes / 2);
  return setting;
}

/** What a Redis says of its persistence; `unreadable` when CONFIG is disabled (managed Redis). */
export type Persistence =
  | { readonly appendonly: string; readonly appendfsync: string; readonly replicas: number }
  | { readonly unreadable: string; readonly replicas: number | null };

/** Reads appendonly/appendfsync (CONFIG GET) and the connected replicas (INFO replication, which managed services allow). */
export async function readPersistence(redis: Redis): Promise<Persistence> {
  const replicas = await redis
    .info('replication')
    .then((i) => Number(/^connected_slaves:(\d+)/m.exec(i)?.[1] ?? 0))
    .catch(() => null);
  try {
    const pairs = (await redis.call('CONFIG', 'GET', 'append*')) as string[];
    const map = new Map<string, string>();
    for (let i = 0; i + 1 < pairs.length; i += 2) map.set(pairs[i]!, pairs[i + 1]!);
    return { appendonly: map.get('appendonly') ?? 'unknown', appendfsync: map.get('appendfsync') ?? 'unknown', replicas: replicas ?? 0 };
  } catch (e) {
    return { unreadable: e instanceof Error ? e.message : String(e), replicas };
  }
}

/**
 * Why `observed` cannot keep the promise of `wanted`, or null when it can (or when the setting
 * asks for nothing to check). Worded for the log line an admin reads at start.
 */
export function durabilityGap(wanted: Durability, observed: Persistence, waitForReplicas: number): string | null {
  if (wanted === 'os-buffered') return null;
  if (wanted === 'replicas') {
    if (observed.replicas === null) return `redis.durability is replicas, but INFO replication could not be read: whether ${waitForReplicas} replica(s) will acknowledge each message cannot be checked`;
    if (observed.replicas < waitForReplicas) return `redis.durability is replicas with waitForReplicas ${waitForReplicas}, but this Redis has ${observed.replicas} connected replica(s): every message will be refused (451) until enough replicas connect`;
    return null;
  }
  if ('unreadable' in observed) {
    return `redis.durability is fsync, but this Redis does not allow CONFIG GET (${observed.unreadable}): whether a 250 survives an OS crash or power loss cannot be checked. Make sure it runs appendonly yes with appendfsync always, or choose redis.durability: replicas`;
  }
  if (observed.appendonly !== 'yes') {
    return `redis.durability is fsync, but this Redis runs appendonly ${observed.appendonly}: a Redis restart loses every queued message. Set appendonly yes and appendfsync always (redis.conf and CONFIG SET), or choose another redis.durability`;
  }
  if (observed.appendfsync !== 'always') {
    return `redis.durability is fsync, but this Redis runs appendfsync ${observed.appendfsync}: an OS crash or power loss can lose up to about a second of mail already answered 250. Set appendfsync always (redis.conf and CONFIG SET appendfsync always), or choose redis.durability: os-buffered to accept that, or replicas`;
  }
  return null;
}
