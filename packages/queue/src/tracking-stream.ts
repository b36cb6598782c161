// The message tracking log in Redis, beside the files: every process (listener, worker, on any
// machine) appends its events to one capped stream per UTC day, <prefix>:tracking:<yyyymmdd>,
// so `mailgw track` and the dashboard anywhere see the events of every process. The files stay
// (Exchange keeps MSGTRK logs per server); the stream is the gateway-wide copy, capped in
// length (XADD MAXLEN ~) and in age (EXPIRE), both from gateway.yaml logs.
//
// Events are gathered for STREAM_BATCH_MS and sent in one pipeline: never a round trip per
// event on the mail path, and never an error thrown at it (a lost stream entry is reported,
// the file still has the line).
import type { Redis, Cluster } from 'ioredis';

export type RedisClient = Redis | Cluster;

const STREAM_BATCH_MS = 50;

export interface TrackingStreamSettings {
  /** Entries kept per day's stream (approximately: XADD MAXLEN ~); 0: the stream is off. */
  readonly maxLength: number;
  /** How long a day's stream is kept after its last write (ms). */
  readonly maxAgeMs: number;
}

export function trackingStreamKey(prefix: string, day: string): string {
  return `${prefix}:tracking:${day}`;
}

/** The anti-spam agent log's gateway-wide copy: the same kind of stream, its own key. */
export function agentLogStreamKey(prefix: string, day: string): string {
  return `${prefix}:agentlog:${day}`;
}

/** Which stream a log writes to (a day's key under the prefix). */
export type StreamKey = (prefix: string, day: string) => string;

/** yyyymmdd of a UTC date, as in the file names. */
export const trackingDay = (d: Date): string => isoDay(d.toISOString());

/** yyyymmdd of an ISO 8601 UTC time (toISOString's): an event's day from the dateTime it already has. */
export const isoDay = (iso: string): string => iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10);

export interface TrackingStream {
  /** One serialised event (the same JSON line the file gets) of `day`. */
  append(line: string, day: string): void;
  close(): Promise<void>;
}

export function openTrackingStream(o: {
  readonly redis: RedisClient;
  readonly prefix: string;
  /** Read on every batch, so a reload applies. */
  readonly settings: () => TrackingStreamSettings;
  readonly onError?: (err: Error) => void;
  /** Default: the tracking log's stream. */
  readonly key?: StreamKey;
}): TrackingStream {
  const keyOf = o.key ?? trackingStreamKey;
  let pending: Array<{ line: string; day: string }> = [];
  let timer: NodeJS.Timeout | null = null;
  let inflight: Promise<void> = Promise.resolve();
  let failed = false;
  const flush = (): void => {
    timer = null;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const { maxLength, maxAgeMs } = o.settings();
    if (maxLength <= 0) return;
    const p = o.redis.pipeline();
    const days = new Set<string>();
    for (const { line, day } of batch) {
      const key = keyOf(o.prefix, day);
      days.add(key);
      p.xadd(key, 'MAXLEN', '~', String(maxLength), '*', 'e', line);
    }
    for (const key of days) p.pexpire(key, Math.max(1, maxAgeMs));
    inflight = p
      .exec()
      .then((results) => {
        const err = results?.find(([e]) => e)?.[0];
        if (err) throw err;
        failed = false;
      })
      .catch((err: unknown) => {
        if (!failed) o.onError?.(err as Error);
        failed = true; // reported once per episode, like the file
      });
  };
  return {
    append(line, day) {
      pending.push({ line, day });
      timer ??= setTimeout(flush, STREAM_BATCH_MS);
      timer.unref?.();
    },
    async close() {
      if (timer) clearTimeout(timer);
      flush();
      await inflight;
    },
  };
}

/** The UTC days (yyyymmdd) whose streams can hold lines at or after `since` (all kept days without it), kept `maxAgeMs`. */
export function streamDays(since: Date | null, now: number, maxAgeMs: number): string[] {
  const DAY = 86_400_000;
  const from = Math.max(since ? since.getTime() : 0, now - maxAgeMs - DAY);
  const days: string[] = [];
  for (let t = Math.floor(from / DAY) * DAY; t <= now; t += DAY) days.push(trackingDay(new Date(t)));
  return days;
}

/** The serialised events kept in the streams of `days` (yyyymmdd), in stream order per day. */
export async function readTrackingStreams(redis: RedisClient, prefix: string, days: readonly string[], keyOf: StreamKey = trackingStreamKey): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of trackingStreamLines(redis, prefix, days, keyOf)) lines.push(line);
  return lines;
}

/** The same, one line at a time (a day can hold a million entries: read in pages, never all held). */
export async function* trackingStreamLines(redis: RedisClient, prefix: string, days: readonly string[], keyOf: StreamKey = trackingStreamKey): AsyncGenerator<string> {
  for (const day of days) {
    const key = keyOf(prefix, day);
    let from = '-';
    for (;;) {
      const page = (await redis.xrange(key, from, '+', 'COUNT', 5000)) as Array<[string, string[]]>;
      for (const [, fields] of page) {
        const i = fields.indexOf('e');
        if (i >= 0 && fields[i + 1] !== undefined) yield fields[i + 1]!;
      }
      if (page.length < 5000) break;
      from = `(${page[page.length - 1]![0]}`;
    }
  }
}
