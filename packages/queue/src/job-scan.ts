// Reads the queue's jobs a page at a time for `mailgw queue messages` and the filtered bulk
// actions, fast enough for 100,000 queued messages: the ids of one BullMQ state (its list or
// sorted set) and then one pipelined HMGET of the fields a view needs per page, instead of
// BullMQ's getJobs (one HGETALL and one Job object per job). The key layout is BullMQ's (pinned,
// see library-overrides.ts): `<prefix>:<queue>:wait|active` lists (newest first),
// `prioritized|delayed|failed` sorted sets. A read, never a write.
import type { Redis } from 'ioredis';
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
  for (let start = 0; start < total; start += pageSize) {
    // Lists hold the newest first: read them from the tail for oldest first.
    const ids = isList ? (await redis.lrange(key, -start - pageSize, -start - 1)).reverse() : await redis.zrange(key, String(start), String(start + pageSize - 1));
    if (ids.length === 0) break;
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
    yield page;
  }
}
