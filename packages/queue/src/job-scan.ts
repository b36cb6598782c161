// Reads the queue's jobs a page at a time for `mailgw queue messages` and the filtered bulk
// actions, fast enough for 100,000 queued messages: the ids of one BullMQ state (its list or
// sorted set) and then one pipelined HMGET of the fields a view needs per page, instead of
// BullMQ's getJobs (one HGETALL and one Job object per job). The key layout is BullMQ's (pinned,
// see library-overrides.ts): `<prefix>:<queue>:wait|active` lists (newest first),
// `prioritized|delayed|failed` sorted sets. A read, never a write.
import type { Redis } from 'ioredis';
// Reads BullMQ's keys directly: see library-overrides.ts.
import './library-overrides.js';
import type { KeySpace } from './keys.js';
import type { RawJob } from './message-record.js';

/** BullMQ states a scan can read. */
export const SCANNABLE_STATES = ['active', 'waiting', 'prioritized', 'delayed', 'failed'] as const;
export type ScannableState = (typeof SCANNABLE_STATES)[number];

export interface ScannedJob extends RawJob {
  readonly id: string;
  /** The job data as stored (JSON text), parsed. */
  readonly data: unknown;
  readonly progress: unknown;
  readonly failedReason: string | null;
}

function parse(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/**
 * The jobs in `state`, oldest first, `pageSize` per yielded page. Jobs that move while the
 * scan runs may be skipped or seen twice (the caller dedups by id); jobs whose hash is gone are
 * left out.
 */
export async function* scanJobs(redis: Redis, keys: KeySpace, state: ScannableState, pageSize = 1000): AsyncGenerator<ScannedJob[]> {
  const key = keys.bullState(state);
  const isList = state === 'active' || state === 'waiting';
  const total = isList ? await redis.llen(key) : await redis.zcard(key);
  const fetchPage = async (start: number): Promise<ScannedJob[]> => {
    // Lists hold the newest first: read them from the tail for oldest first.
    const ids = isList ? (await redis.lrange(key, -start - pageSize, -start - 1)).reverse() : await redis.zrange(key, String(start), String(start + pageSize - 1));
    return readJobs(redis, keys, ids);
  };
  // One page ahead: Redis answers the next page while the caller works on this one.
  let next: Promise<ScannedJob[]> | null = total > 0 ? fetchPage(0) : null;
  for (let start = 0; next !== null; start += pageSize) {
    const page = await next;
    next = start + pageSize < total ? fetchPage(start + pageSize) : null;
    next?.catch(() => undefined); // observed when awaited
    if (page.length > 0) yield page;
  }
}

/** Every job id in `state` (ids only: 100,000 of them are one reply of about 3 MB). */
export async function jobIds(redis: Redis, keys: KeySpace, state: ScannableState): Promise<string[]> {
  const key = keys.bullState(state);
  return state === 'active' || state === 'waiting' ? redis.lrange(key, 0, -1) : redis.zrange(key, '0', '-1');
}

/** The fields a view needs of these jobs, in one pipelined HMGET each; jobs whose hash is gone are left out. */
export async function readJobs(redis: Redis, keys: KeySpace, ids: readonly string[]): Promise<ScannedJob[]> {
  if (ids.length === 0) return [];
  const p = redis.pipeline();
  for (const id of ids) p.hmget(keys.job(id), 'data', 'progress', 'failedReason');
  const results = (await p.exec()) ?? [];
  const page: ScannedJob[] = [];
  results.forEach(([err, fields], i) => {
    if (err) throw err;
    const [data, progress, failedReason] = fields as Array<string | null>;
    if (data === null || data === undefined) return; // removed meanwhile
    page.push({ id: ids[i]!, data: parse(data), progress: parse(progress ?? null), failedReason: failedReason ?? null });
  });
  return page;
}

/**
 * The first `maxBytes` of each stored message (its header section, for a Subject filter), in
 * one pipeline: a large message keeps its header under its own key, a small one is one value.
 * null for a message whose body is gone.
 */
export async function readHeads(redis: Redis, keys: KeySpace, ids: readonly string[], maxBytes = 64 * 1024): Promise<Array<Buffer | null>> {
  if (ids.length === 0) return [];
  const p = redis.pipeline();
  for (const id of ids) p.getrangeBuffer(keys.head(id), 0, maxBytes - 1).getrangeBuffer(keys.body(id), 0, maxBytes - 1);
  const results = (await p.exec()) ?? [];
  return ids.map((_, i) => {
    const [headErr, head] = results[2 * i]!;
    const [bodyErr, body] = results[2 * i + 1]!;
    if (headErr) throw headErr;
    if (bodyErr) throw bodyErr;
    const h = head as Buffer;
    const b = body as Buffer;
    return h.length > 0 ? h : b.length > 0 ? b : null;
  });
}
