/**
 * Shard placement on a Redis Cluster, pure (the Redis side is in shard-map.ts).
 *
 * A queue shard lives on the one slot its hash tag hashes to, so which master holds it is
 * decided by the tag. Placement picks, for each shard, the master with the fewest shards so far
 * and then the first candidate tag (`{mailgw-1}`, `{mailgw-1.1}`, `{mailgw-1.2}`, …) whose slot
 * that master serves. It is deterministic: processes that see the same cluster and the same
 * stored map choose the same tags, so racing writers (first writer wins) still agree.
 * Shard 0 always keeps the configured prefix (the keys of an unsharded gateway).
 */
import { keySlot } from './cluster-slot.js';
import { shardPrefix, withTagSuffix } from './keys.js';

/** A master and the slot ranges it serves (from CLUSTER SLOTS). */
export interface ClusterMaster {
  /** Node id (40 hex characters). */
  readonly id: string;
  /** host:port as the cluster announces it. */
  readonly addr: string;
  /** Inclusive slot ranges. */
  readonly ranges: ReadonlyArray<readonly [number, number]>;
}

/** One shard's place, as stored in Redis: its key prefix, that prefix's slot, and the master chosen for it. */
export interface ShardPlacement {
  readonly index: number;
  /** Key prefix of the shard, e.g. `{mailgw-1.3}`. */
  readonly prefix: string;
  readonly slot: number;
  /** Id of the master that served `slot` when the shard was placed ('' when unknown: not a cluster). */
  readonly node: string;
  /** That master's host:port then. */
  readonly addr: string;
}

/** Upper bound of `queue.shards` (the config schema's). */
export const MAX_SHARDS = 64;
/** Candidate tags tried per shard before placement gives up on a master (16384 slots: never reached in practice). */
const MAX_ATTEMPTS = 100_000;

/** The default shard count on a cluster: two per master (a master then holds two queues), at most MAX_SHARDS. */
export function defaultShardCount(masters: number): number {
  return Math.min(MAX_SHARDS, Math.max(1, 2 * masters));
}

/** Candidate prefix `attempt` of shard `index`: attempt 0 is the unplaced prefix (`{mailgw-1}`), then `{mailgw-1.1}`, … */
export function candidatePrefix(prefix: string, index: number, attempt: number): string {
  if (index === 0 || attempt === 0) return shardPrefix(prefix, index);
  return withTagSuffix(prefix, `-${index}.${attempt}`);
}

/** The master serving `slot`, if any. */
export function masterOfSlot(masters: readonly ClusterMaster[], slot: number): ClusterMaster | undefined {
  return masters.find((m) => m.ranges.some(([a, b]) => slot >= a && slot <= b));
}

/** Masters in a fixed order (by their lowest slot), so every process breaks ties alike. */
function ordered(masters: readonly ClusterMaster[]): ClusterMaster[] {
  const low = (m: ClusterMaster) => Math.min(...m.ranges.map(([a]) => a));
  return [...masters].filter((m) => m.ranges.length > 0).sort((x, y) => low(x) - low(y) || x.id.localeCompare(y.id));
}

/** A placement of shard `index` under `prefix` that is not chosen but kept as it hashes (shard 0, or a shard holding mail). */
export function unplaced(prefix: string, index: number, masters: readonly ClusterMaster[]): ShardPlacement {
  const p = shardPrefix(prefix, index);
  const slot = keySlot(p);
  const m = masterOfSlot(masters, slot);
  return { index, prefix: p, slot, node: m?.id ?? '', addr: m?.addr ?? '' };
}

/**
 * Places shards 0…count-1: those in `fixed` stay as they are, the others go, one at a time in
 * index order, to the master with the fewest shards (ties: lowest slot first).
 */
export function placeShards(prefix: string, count: number, masters: readonly ClusterMaster[], fixed: ReadonlyMap<number, ShardPlacement>): ShardPlacement[] {
  const order = ordered(masters);
  const load = new Map(order.map((m) => [m.id, 0]));
  const out: ShardPlacement[] = [];
  for (const p of fixed.values()) {
    const m = masterOfSlot(order, p.slot);
    if (m) load.set(m.id, (load.get(m.id) ?? 0) + 1);
  }
  for (let index = 0; index < count; index++) {
    const kept = fixed.get(index) ?? (index === 0 ? unplaced(prefix, 0, order) : undefined);
    if (kept) {
      out.push(kept);
      if (!fixed.has(index)) {
        const m = masterOfSlot(order, kept.slot);
        if (m) load.set(m.id, (load.get(m.id) ?? 0) + 1);
      }
      continue;
    }
    const target = order.reduce<ClusterMaster | undefined>((best, m) => (best === undefined || load.get(m.id)! < load.get(best.id)! ? m : best), undefined);
    if (!target) {
      out.push(unplaced(prefix, index, order));
      continue;
    }
    let placed: ShardPlacement | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS && !placed; attempt++) {
      const p = candidatePrefix(prefix, index, attempt);
      const slot = keySlot(p);
      if (masterOfSlot([target], slot)) placed = { index, prefix: p, slot, node: target.id, addr: target.addr };
    }
    placed ??= unplaced(prefix, index, order);
    load.set(placed.node, (load.get(placed.node) ?? 0) + 1);
    out.push(placed);
  }
  return out;
}

/** A shard with the master serving its slot now. */
export interface ShardRow extends ShardPlacement {
  /** host:port of the master serving the slot now ('' when none does, or not a cluster). */
  readonly master: string;
  /** True when that master is not the one the shard was placed on (a resharding moved the slot). */
  readonly moved: boolean;
}

/** The stored map against the cluster as it is now. */
export function shardRows(map: readonly ShardPlacement[], masters: readonly ClusterMaster[]): ShardRow[] {
  return map.map((p) => {
    const m = masterOfSlot(masters, p.slot);
    return { ...p, master: m?.addr ?? '', moved: masters.length > 0 && p.node !== '' && m !== undefined && m.id !== p.node };
  });
}

/**
 * What an admin should hear about a placement: shards a resharding moved off the master they
 * were placed on, and masters left without a shard while another holds two or more.
 */
export function placementWarnings(rows: readonly ShardRow[], masters: readonly ClusterMaster[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    if (r.moved) out.push(`queue shard ${r.index} (${r.prefix}, slot ${r.slot}) was placed on ${r.addr} but its slot is now served by ${r.master}: a resharding moved it`);
  }
  const live = masters.filter((m) => m.ranges.length > 0);
  if (live.length > 1) {
    const per = new Map(live.map((m) => [m.addr, [] as number[]]));
    for (const r of rows) per.get(r.master)?.push(r.index);
    const idle = [...per].filter(([, s]) => s.length === 0).map(([a]) => a);
    const crowded = [...per].filter(([, s]) => s.length >= 2);
    if (idle.length > 0) {
      for (const [addr, shards] of crowded) {
        out.push(`queue shards ${shards.join(', ')} share the Redis master ${addr} while ${idle.join(', ')} ${idle.length === 1 ? 'has' : 'have'} none: the queue does not spread over every master`);
      }
    }
  }
  return out;
}
