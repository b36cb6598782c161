// Back pressure (Exchange's transport back pressure, for the resources that hold every
// accepted message here: the queue's Redis memory, the disk under the data directory, where
// the embedded Redis keeps its append-only file, and whether Redis can write that file at all).
// At `medium` the gateway stops taking mail
// from anonymous senders (the Internet) and still takes it from authenticated clients and
// externally secured connectors (its own organisation); at `high` it takes none. Refusals are
// 452 4.3.1 at MAIL FROM, so senders queue the mail and retry, and the delivery workers keep
// the headroom they need to deliver and free what is queued. Pure: the monitor in @mailgw/listener
// reads Redis, the listener asks this module.
import { accept, reject, type Decision } from './decision.js';
import { REPLIES } from './replies.js';
import type { Session } from './stages.js';

export type PressureLevel = 'normal' | 'medium' | 'high';

export interface BackPressureSettings {
  readonly enabled: boolean;
  /** Memory use (% of the limit) at which anonymous mail is refused. */
  readonly mediumPercent: number;
  /** Memory use (% of the limit) at which all mail is refused. */
  readonly highPercent: number;
  /** Disk use (% of the filesystem under dataDir, as df counts it): the same two levels. */
  readonly disk?: { readonly mediumPercent: number; readonly highPercent: number };
}

/** What back pressure watches; each has its own level, the highest counts. */
export type PressureResource = 'memory' | 'disk' | 'redis-writes';

/** One reading of the queue's Redis (INFO memory): for a Redis Cluster, its fullest master. */
export interface MemoryReading {
  readonly usedBytes: number;
  /** maxmemory, or the machine's memory when the Redis has no maxmemory. */
  readonly limitBytes: number;
  readonly limitFrom: 'maxmemory' | 'system memory';
  /** The node read (a Cluster master), when there are several. */
  readonly node?: string;
}

export interface PressureState {
  readonly level: PressureLevel;
  /** For the log and the refusal's reason: the reading and the threshold. */
  readonly reason: string;
  /** The resource that set the level (combinePressure), when known. */
  readonly resource?: PressureResource;
  /** Its use in percent (memory, disk), for the metrics. */
  readonly percent?: number;
}

/** One reading of the filesystem under the data directory (statfs). */
export interface DiskReading {
  readonly path: string;
  /** Blocks in use, as df counts them (size − free). */
  readonly usedBytes: number;
  /** What an unprivileged writer may still use (df's Available). */
  readonly availableBytes: number;
}

/** What the queue's Redis says of its own writes (INFO persistence). */
export interface PersistenceReading {
  /** aof_enabled:1 and aof_last_write_status:err: Redis refuses every write until it can write the file again. */
  readonly aofWriteFailed: boolean;
  readonly node?: string;
}

/** A level is left only this many points below the threshold that raised it, so it does not flap. */
export const BACK_PRESSURE_HYSTERESIS_PERCENT = 5;

const mb = (n: number) => `${(n / 1024 ** 2).toFixed(n < 10 * 1024 ** 2 ? 1 : 0)} MB`;
/** Disks are large: GB from 10 GB up. */
const diskSize = (n: number) => (n >= 10 * 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GB` : mb(n));

/**
 * The level after a reading, given the level before it: a threshold reached raises it; it comes
 * down once use is BACK_PRESSURE_HYSTERESIS_PERCENT points below the threshold of the level held.
 */
export function pressureLevel(previous: PressureLevel, r: MemoryReading, s: BackPressureSettings): PressureState {
  if (!s.enabled) return { level: 'normal', reason: 'back pressure is off (backPressure.enabled: false)' };
  if (!(r.limitBytes > 0)) return { level: 'normal', reason: 'the memory limit of the queue\'s Redis is unknown' };
  const pct = (100 * r.usedBytes) / r.limitBytes;
  const use = `the queue's Redis${r.node ? ` (${r.node})` : ''} uses ${mb(r.usedBytes)}, ${pct.toFixed(1)}% of its ${r.limitFrom} (${mb(r.limitBytes)})`;
  return { ...thresholdLevel(previous, pct, use, s.mediumPercent, s.highPercent, ''), resource: 'memory', percent: pct };
}

/** The level from the use of the disk under the data directory, as pressureLevel does for memory. */
export function diskPressureLevel(previous: PressureLevel, d: DiskReading, s: BackPressureSettings): PressureState {
  if (!s.enabled) return { level: 'normal', reason: 'back pressure is off (backPressure.enabled: false)' };
  const size = d.usedBytes + d.availableBytes;
  if (!s.disk || !(size > 0)) return { level: 'normal', reason: `the size of the filesystem under ${d.path} is unknown` };
  const pct = (100 * d.usedBytes) / size;
  const use = `the disk under ${d.path} is ${pct.toFixed(1)}% full (${diskSize(d.availableBytes)} available of ${diskSize(size)})`;
  return { ...thresholdLevel(previous, pct, use, s.disk.mediumPercent, s.disk.highPercent, 'disk.'), resource: 'disk', percent: pct };
}

/** A Redis that cannot write its append-only file refuses every write: high until it can again. */
export function persistencePressure(p: PersistenceReading, s: BackPressureSettings): PressureState {
  if (!s.enabled || !p.aofWriteFailed) return { level: 'normal', reason: 'the queue\'s Redis writes its append-only file', resource: 'redis-writes' };
  return { level: 'high', reason: `the queue's Redis${p.node ? ` (${p.node})` : ''} cannot write its append-only file (aof_last_write_status:err; a full disk?) and refuses every write`, resource: 'redis-writes' };
}

const RANK: Record<PressureLevel, number> = { normal: 0, medium: 1, high: 2 };

/** The gateway's level: the highest of its resources' (the first of equals), with that one's reason. */
export function combinePressure(states: readonly PressureState[]): PressureState {
  let top: PressureState | undefined;
  for (const st of states) if (!top || RANK[st.level] > RANK[top.level]) top = st;
  return top ?? { level: 'normal', reason: 'not read yet' };
}

/** A level as a number (normal 0, medium 1, high 2), for a metric. */
export const pressureRank = (level: PressureLevel): number => RANK[level];

function thresholdLevel(previous: PressureLevel, pct: number, use: string, mediumPercent: number, highPercent: number, key: string): PressureState {
  const h = BACK_PRESSURE_HYSTERESIS_PERCENT;
  const high = pct >= highPercent || (previous === 'high' && pct >= highPercent - h);
  if (high) return { level: 'high', reason: `${use}: at or above ${key}highPercent ${highPercent}%${pct < highPercent ? ` (high until below ${highPercent - h}%)` : ''}` };
  const medium = pct >= mediumPercent || (previous !== 'normal' && pct >= mediumPercent - h);
  if (medium) return { level: 'medium', reason: `${use}: at or above ${key}mediumPercent ${mediumPercent}%${pct < mediumPercent ? ` (medium until below ${mediumPercent - h}%)` : ''}` };
  return { level: 'normal', reason: `${use}: below ${key}mediumPercent ${mediumPercent}%` };
}

/** Whether this session may start a transaction under the current back pressure (asked at MAIL FROM). */
export function backPressure(session: Session, state: PressureState): Decision {
  if (state.level === 'high') return reject(REPLIES.insufficientResources, 'back-pressure-high', `back pressure high, all mail refused: ${state.reason}`);
  if (state.level === 'medium') {
    if (session.user) return accept(REPLIES.senderOk, 'back-pressure-exempt', `back pressure medium, but user ${session.user.name} is authenticated: ${state.reason}`);
    if (session.connector.externallySecured) return accept(REPLIES.senderOk, 'back-pressure-exempt', `back pressure medium, but connector "${session.connector.name}" is externally secured: ${state.reason}`);
    return reject(REPLIES.insufficientResources, 'back-pressure-medium', `back pressure medium, mail from anonymous senders refused: ${state.reason}`);
  }
  return accept(REPLIES.senderOk, 'back-pressure-normal', state.reason);
}
