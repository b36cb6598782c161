/**
 * The queue shards' map (shard → key prefix → slot → master), read and, on a Redis Cluster,
 * placed and stored in Redis so that every listener, worker and admin process uses the same
 * tags. The decisions are shard-placement.ts's; this is the thin Redis side.
 *
 * - Not a cluster: today's prefixes (`{mailgw}`, `{mailgw-1}`, …), nothing stored.
 * - A cluster: the map lives in the hash `<prefix>:shards` (one key: every read and write is on
 *   one slot). A shard already in it keeps its tag forever (its mail is there). A new shard keeps
 *   its unplaced tag when that queue already holds mail (a deployment from before placement),
 *   else it gets a placed tag; it is written with HSETNX (first writer wins), then the map is read
 *   back, so racing processes end up with the same entries.
 */
import type { Redis } from 'ioredis';
import { toQueueUnavailable } from './errors.js';
import { keySpace, type KeySpace } from './keys.js';
import { defaultShardCount, placeShards, placementWarnings, shardRows, unplaced, type ClusterMaster, type ShardPlacement, type ShardRow } from './shard-placement.js';

export interface ShardMap {
  /** True on a Redis Cluster (the map is placed and stored); false: the unplaced prefixes. */
  readonly cluster: boolean;
  /** One row per shard (index = shard). */
  readonly rows: readonly ShardRow[];
  /** The cluster's masters when the map was read (empty when not a cluster). */
  readonly masters: readonly ClusterMaster[];
  /** What an admin should hear of: placementWarnings, then `stranded`. */
  readonly warnings: readonly string[];
  /** Stored shards beyond the configured count that hold mail (not read by anyone). */
  readonly stranded: readonly string[];
  /** Where the count came from: the configuration, the default for the cluster, or the stored map (larger). */
  readonly countFrom: 'config' | 'default' | 'stored';
}

export interface ResolveShardMapOptions {
  /** Gateway key prefix (shard 0's). */
  prefix: string;
  queueName: string;
  /** queue.shards; undefined: 1 on a single Redis, defaultShardCount(masters) on a cluster (never fewer than stored). */
  shards?: number | undefined;
  /** Whether `redis` is a cluster connection. */
  cluster: boolean;
  /** Only read: place nothing, store nothing (mailgw queue status). */
  readOnly?: boolean;
}

/** BullMQ lists of a queue that hold undelivered mail. */
const LIVE_LISTS = ['wait', 'active', 'delayed', 'prioritized', 'paused', 'waiting-children'] as const;

/** The masters and their slot ranges (CLUSTER SLOTS: [start, end, [host, port, id, …], replicas…]). */
export async function clusterMasters(redis: Redis): Promise<ClusterMaster[]> {
  const reply = (await redis.call('CLUSTER', 'SLOTS')) as unknown;
  const byId = new Map<string, { addr: string; ranges: Array<readonly [number, number]> }>();
  if (!Array.isArray(reply)) return [];
  for (const entry of reply as unknown[]) {
    if (!Array.isArray(entry) || entry.length < 3) continue;
    const [start, end, node] = entry as [unknown, unknown, unknown];
    if (!Array.isArray(node)) continue;
    const [host, port, id] = node as [unknown, unknown, unknown];
    const key = String(id ?? `${String(host)}:${String(port)}`);
    const m = byId.get(key) ?? { addr: `${String(host)}:${String(port)}`, ranges: [] };
    m.ranges.push([Number(start), Number(end)]);
    byId.set(key, m);
  }
  return [...byId].map(([id, m]) => ({ id, addr: m.addr, ranges: m.ranges }));
}

/** Whether the queue under `keys` holds undelivered mail. */
async function holdsMail(redis: Redis, keys: KeySpace): Promise<boolean> {
  // All of one queue's keys share its hash tag: one slot, one multi-key EXISTS.
  const n = (await redis.exists(...LIVE_LISTS.map((l) => `${keys.queueKeyPrefix}${l}`))) as number;
  return n > 0;
}

function parseEntry(index: number, json: string): ShardPlacement | undefined {
  try {
    const v = JSON.parse(json) as Partial<ShardPlacement>;
    if (typeof v.prefix !== 'string' || typeof v.slot !== 'number') return undefined;
    // The prefix must be a valid key prefix (keySpace throws otherwise).
    keySpace(v.prefix);
    return { index, prefix: v.prefix, slot: v.slot, node: typeof v.node === 'string' ? v.node : '', addr: typeof v.addr === 'string' ? v.addr : '' };
  } catch {
    return undefined;
  }
}

async function readStored(redis: Redis, key: string): Promise<Map<number, ShardPlacement>> {
  const raw = await redis.hgetall(key);
  const out = new Map<number, ShardPlacement>();
  for (const [field, value] of Object.entries(raw)) {
    const index = Number(field);
    if (!Number.isInteger(index) || index < 0) continue;
    const entry = parseEntry(index, value);
    if (entry) out.set(index, entry);
  }
  return out;
}

/** The shard map (see the file comment); throws QueueUnavailableError when Redis does not answer. */
export async function resolveShardMap(redis: Redis, opts: ResolveShardMapOptions): Promise<ShardMap> {
  const gateway = keySpace(opts.prefix, opts.queueName);
  if (!opts.cluster) {
    const count = opts.shards ?? 1;
    const rows = Array.from({ length: count }, (_, i) => ({ ...unplaced(opts.prefix, i, []), master: '', moved: false }));
    return { cluster: false, rows, masters: [], warnings: [], stranded: [], countFrom: opts.shards === undefined ? 'default' : 'config' };
  }
  try {
    const masters = await clusterMasters(redis);
    let stored = await readStored(redis, gateway.shardMap);
    const storedCount = stored.size === 0 ? 0 : Math.max(...stored.keys()) + 1;
    const auto = defaultShardCount(masters.length);
    const count = opts.shards ?? Math.max(auto, storedCount);
    const countFrom = opts.shards !== undefined ? 'config' : storedCount > auto ? 'stored' : 'default';
    const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !stored.has(i));
    if (missing.length > 0 && !opts.readOnly) {
      // Shards from before placement that hold mail stay where they are.
      const fixed = new Map(stored);
      for (const i of missing) {
        if (i === 0) continue;
        const legacy = unplaced(opts.prefix, i, masters);
        if (await holdsMail(redis, keySpace(legacy.prefix, opts.queueName))) fixed.set(i, legacy);
      }
      const placed = placeShards(opts.prefix, count, masters, fixed);
      for (const p of placed) {
        if (stored.has(p.index)) continue;
        await redis.hsetnx(gateway.shardMap, String(p.index), JSON.stringify({ prefix: p.prefix, slot: p.slot, node: p.node, addr: p.addr }));
      }
      stored = await readStored(redis, gateway.shardMap);
    }
    const entries = Array.from({ length: count }, (_, i) => stored.get(i) ?? unplaced(opts.prefix, i, masters));
    const rows = shardRows(entries, masters);
    // Shards beyond the configured count are no longer read: say so when they hold mail.
    const stranded: string[] = [];
    for (const [i, p] of stored) {
      if (i >= count && (await holdsMail(redis, keySpace(p.prefix, opts.queueName)))) {
        stranded.push(`queue shard ${i} (${p.prefix}) holds undelivered mail but queue.shards is ${count}: that mail is not delivered until shards is raised to ${i + 1} or more`);
      }
    }
    return { cluster: true, rows, masters, warnings: [...placementWarnings(rows, masters), ...stranded], stranded, countFrom };
  } catch (err) {
    throw toQueueUnavailable(err, 'shard map');
  }
}
