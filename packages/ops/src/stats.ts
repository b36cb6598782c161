// Per-minute counters of the whole gateway, kept in Redis so the dashboard's charts cover every
// process and survive restarts: messages accepted (listeners), delivered, deferred and failed
// (workers, per recipient), receipt-to-delivery latency as a histogram, and queue depth per
// next hop (sampled once a minute by whichever dashboard asks first).
//
// Layout: one hash per hour, <prefix>:stats:<hour since epoch>, fields "<minute>|<what>", kept
// STATS_TTL_S. Processes count in memory and add their counts every FLUSH_MS in one pipeline:
// never a Redis command per message on the mail path.
import type { Cluster, Redis } from 'ioredis';
import type { ListenerEvent } from '@mailgw/listener';
import { deliveryLatencySeconds, tapTracking, type TrackingEvent, type TrackingLog } from '@mailgw/queue';

type RedisClient = Redis | Cluster;

export const STAT_KINDS = ['accepted', 'delivered', 'deferred', 'failed'] as const;
export type StatKind = (typeof STAT_KINDS)[number];
/** Upper bounds (seconds) of the latency histogram's buckets; the last is open. */
export const LATENCY_BOUNDS_S = [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86_400, Infinity] as const;
const FLUSH_MS = 10_000;
/** A day and two hours: the 24-hour chart and its first hour's partial bucket. */
const STATS_TTL_S = 26 * 3600;

export const minuteOf = (ms: number): number => Math.floor(ms / 60_000);
export const statsKey = (prefix: string, minute: number): string => `${prefix}:stats:${Math.floor(minute / 60)}`;

// ------------------------------------------------------------------ pure: series for charts

export interface StatsSeries {
  /** First minute of each point (minutes since the epoch). */
  readonly at: readonly number[];
  readonly stepMinutes: number;
  readonly counts: Readonly<Record<StatKind, readonly number[]>>;
  /** Latency percentiles per point (bucket upper bounds, seconds); null where nothing was delivered. */
  readonly latency: Readonly<Record<'p50' | 'p90' | 'p99', ReadonlyArray<number | null>>>;
  /** Messages queued per next hop at each point (the last sample in the step); null: not sampled. */
  readonly hops: Readonly<Record<string, ReadonlyArray<number | null>>>;
}

/** The bucket upper bound at which `p` (0..1) of the observations are reached; null for none. */
export function percentileOf(buckets: readonly number[], p: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= p * total) return LATENCY_BOUNDS_S[i] ?? Infinity;
  }
  return Infinity;
}

/** Folds the hour hashes (field "<minute>|<what>" → value) into `points` points of `step` minutes ending at `toMinute`. */
export function seriesFrom(hashes: ReadonlyArray<Record<string, string>>, toMinute: number, points: number, step: number): StatsSeries {
  const first = toMinute - points * step + 1;
  const at = Array.from({ length: points }, (_, i) => first + i * step);
  const counts = Object.fromEntries(STAT_KINDS.map((k) => [k, new Array<number>(points).fill(0)])) as Record<StatKind, number[]>;
  const lat = Array.from({ length: points }, () => new Array<number>(LATENCY_BOUNDS_S.length).fill(0));
  const hops: Record<string, Array<number | null>> = {};
  const hopAt: Record<string, number[]> = {};
  for (const h of hashes) {
    for (const [field, value] of Object.entries(h)) {
      const [m, what, extra] = field.split('|');
      const minute = Number(m);
      if (!Number.isInteger(minute) || minute < first || minute > toMinute || what === undefined) continue;
      const i = Math.floor((minute - first) / step);
      const n = Number(value);
      if (!Number.isFinite(n)) continue;
      if ((STAT_KINDS as readonly string[]).includes(what)) counts[what as StatKind][i]! += n;
      else if (what === 'lat' && extra !== undefined && lat[i]![Number(extra)] !== undefined) lat[i]![Number(extra)]! += n;
      else if (what === 'hop' && extra !== undefined) {
        hops[extra] ??= new Array<number | null>(points).fill(null);
        hopAt[extra] ??= new Array<number>(points).fill(-1);
        // The latest sample within the step.
        if (minute > hopAt[extra]![i]!) {
          hopAt[extra]![i] = minute;
          hops[extra]![i] = n;
        }
      }
    }
  }
  return {
    at,
    stepMinutes: step,
    counts,
    latency: { p50: lat.map((b) => percentileOf(b, 0.5)), p90: lat.map((b) => percentileOf(b, 0.9)), p99: lat.map((b) => percentileOf(b, 0.99)) },
    hops,
  };
}

export const STATS_RANGES = { '1h': { points: 60, step: 1 }, '24h': { points: 96, step: 15 } } as const;
export type StatsRange = keyof typeof STATS_RANGES;

// ------------------------------------------------------------------ I/O

/** Reads the charts' series for the last hour or day. */
export async function readStats(redis: RedisClient, prefix: string, range: StatsRange, now = Date.now()): Promise<StatsSeries> {
  const { points, step } = STATS_RANGES[range];
  const to = minuteOf(now);
  const from = to - points * step + 1;
  const hours: number[] = [];
  for (let h = Math.floor(from / 60); h <= Math.floor(to / 60); h++) hours.push(h);
  const hashes = await Promise.all(hours.map((h) => redis.hgetall(statsKey(prefix, h * 60))));
  return seriesFrom(hashes, to, points, step);
}

/** Queue depth per next hop for this minute, once for the whole gateway (the first caller of the minute writes it). */
export async function sampleHopDepths(redis: RedisClient, prefix: string, hops: ReadonlyArray<{ readonly hop: string; readonly messages: number }>, now = Date.now()): Promise<boolean> {
  const minute = minuteOf(now);
  const key = statsKey(prefix, minute);
  // One field per minute says it was sampled; HSETNX on the same key keeps it one slot on a cluster.
  if ((await redis.hsetnx(key, `${minute}|sampled`, '1')) === 0) return false;
  const p = redis.pipeline();
  for (const h of hops) p.hset(key, `${minute}|hop|${h.hop.replace(/\|/g, '/')}`, String(h.messages));
  p.expire(key, STATS_TTL_S);
  await p.exec();
  return true;
}

/** Counts of this process, added to Redis every FLUSH_MS. */
export class StatsRecorder {
  private pending = new Map<string, Map<string, number>>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly onError: (err: Error) => void = () => undefined,
    flushMs = FLUSH_MS,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  count(kind: StatKind, n = 1, now = Date.now()): void {
    this.add(minuteOf(now), kind, n);
  }

  latency(seconds: number, n = 1, now = Date.now()): void {
    const i = LATENCY_BOUNDS_S.findIndex((b) => seconds <= b);
    this.add(minuteOf(now), `lat|${i}`, n);
  }

  private add(minute: number, what: string, n: number): void {
    const key = statsKey(this.prefix, minute);
    let fields = this.pending.get(key);
    if (!fields) this.pending.set(key, (fields = new Map()));
    const f = `${minute}|${what}`;
    fields.set(f, (fields.get(f) ?? 0) + n);
  }

  /** The listener observer: a queued message counts as accepted. */
  readonly observeListener = (e: ListenerEvent): void => {
    if (e.type === 'message-accepted') this.count('accepted');
  };

  /** Delivery outcomes per recipient, from the workers' tracking events. */
  observeTracking(e: TrackingEvent, now = Date.now()): void {
    const n = e.recipientAddress.length;
    if (e.eventId === 'SEND' || e.eventId === 'DELIVER') {
      this.count('delivered', n, now);
      const seconds = deliveryLatencySeconds(e, now);
      if (seconds !== null) this.latency(seconds, n, now);
    } else if (e.eventId === 'DEFER') this.count('deferred', n, now);
    else if (e.eventId === 'FAIL') this.count('failed', n, now);
  }

  tapTracking(log: TrackingLog): TrackingLog {
    return tapTracking(log, (e) => this.observeTracking(e));
  }

  flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    if (batch.size === 0) return this.flushing;
    const p = this.redis.pipeline();
    for (const [key, fields] of batch) {
      for (const [f, n] of fields) p.hincrby(key, f, n);
      p.expire(key, STATS_TTL_S);
    }
    this.flushing = p.exec().then(
      () => undefined,
      (err: unknown) => this.onError(err as Error),
    );
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
