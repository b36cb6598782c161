// The IP Block List (fed by sender reputation and by admins) in the queue's Redis, shared by
// every listener of the gateway on any machine (Exchange keeps it per Edge server; a gateway of
// several machines must block on all of them at once). One hash, field = address or range, value = the entry; a version counter
// bumped by every change. Each listener process holds the list in memory and looks at the
// version once a second, so RCPT judges from memory and a new entry reaches every process
// within about a second. Expired entries are skipped on reading and removed on the next change
// (a sorted set by expiry finds them).
import { parseIpRange } from '@mailgw/config';
import type { IpBlockListEntry } from '@mailgw/policy';
import type { KeySpace } from './keys.js';

/** The part of an ioredis client the list uses. */
export interface IpBlockListRedis {
  hgetall(key: string): Promise<Record<string, string>>;
  hset(key: string, field: string, value: string): Promise<unknown>;
  hdel(key: string, ...fields: string[]): Promise<number>;
  zadd(key: string, score: number | string, member: string): Promise<unknown>;
  zrem(key: string, ...members: string[]): Promise<number>;
  zrangebyscore(key: string, min: number | string, max: number | string): Promise<string[]>;
  incr(key: string): Promise<number>;
  get(key: string): Promise<string | null>;
}

type Keys = Pick<KeySpace, 'ipBlockList' | 'ipBlockListVersion' | 'ipBlockListExpiry'>;

function parseEntry(field: string, value: string): IpBlockListEntry | null {
  try {
    const e = JSON.parse(value) as Partial<IpBlockListEntry>;
    if ((e.kind !== 'machine' && e.kind !== 'static') || typeof e.addedAt !== 'number') return null;
    return { range: field, kind: e.kind, addedAt: e.addedAt, expiresAt: typeof e.expiresAt === 'number' ? e.expiresAt : null, comment: typeof e.comment === 'string' ? e.comment : '' };
  } catch {
    return null;
  }
}

/** Reads and changes the list (the CLI, sender reputation). */
export class IpBlockListStore {
  constructor(
    private readonly redis: IpBlockListRedis,
    private readonly keys: Keys,
  ) {}

  /** The entries in force (expired and unreadable ones left out), narrowest range first. */
  async list(now = Date.now()): Promise<IpBlockListEntry[]> {
    const all = await this.redis.hgetall(this.keys.ipBlockList);
    const out: IpBlockListEntry[] = [];
    for (const [field, value] of Object.entries(all)) {
      const e = parseEntry(field, value);
      if (e && (e.expiresAt === null || e.expiresAt > now)) out.push(e);
    }
    return out.sort((a, b) => a.range.localeCompare(b.range));
  }

  /**
   * Adds (or replaces) the entry for `range` (an address, CIDR or a-b range, written out as
   * parsed). Throws a readable error for a range that does not parse.
   */
  async add(o: { range: string; kind: IpBlockListEntry['kind']; expiresAt: number | null; comment?: string; now?: number }): Promise<IpBlockListEntry> {
    const r = parseIpRange(o.range);
    if (!r.ok) throw new Error(r.error);
    const now = o.now ?? Date.now();
    const entry: IpBlockListEntry = { range: r.value.text, kind: o.kind, addedAt: now, expiresAt: o.expiresAt, comment: o.comment ?? '' };
    await this.redis.hset(this.keys.ipBlockList, entry.range, JSON.stringify({ kind: entry.kind, addedAt: entry.addedAt, expiresAt: entry.expiresAt, comment: entry.comment }));
    await this.redis.zadd(this.keys.ipBlockListExpiry, entry.expiresAt ?? '+inf', entry.range);
    await this.removeExpired(now);
    await this.redis.incr(this.keys.ipBlockListVersion);
    return entry;
  }

  /** Removes the entry written as `range` (as `list` shows it); false when there is none. */
  async remove(range: string): Promise<boolean> {
    const r = parseIpRange(range);
    const fields = [range.trim(), ...(r.ok ? [r.value.text] : [])];
    const n = await this.redis.hdel(this.keys.ipBlockList, ...new Set(fields));
    await this.redis.zrem(this.keys.ipBlockListExpiry, ...new Set(fields));
    if (n > 0) await this.redis.incr(this.keys.ipBlockListVersion);
    return n > 0;
  }

  async version(): Promise<string | null> {
    return this.redis.get(this.keys.ipBlockListVersion);
  }

  /** Drops the entries that have expired (by the expiry index: no walk over the whole list). */
  private async removeExpired(now: number): Promise<void> {
    const gone = await this.redis.zrangebyscore(this.keys.ipBlockListExpiry, '-inf', now);
    if (gone.length === 0) return;
    await this.redis.hdel(this.keys.ipBlockList, ...gone);
    await this.redis.zrem(this.keys.ipBlockListExpiry, ...gone);
  }
}

/**
 * A listener process's copy of the list: loaded at start, reloaded when the version changes
 * (looked at every `pollMs`). While Redis cannot be read the last copy stays in force.
 */
export class IpBlockListView {
  private current: readonly IpBlockListEntry[] = [];
  private seen: string | null | undefined = undefined;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly store: IpBlockListStore,
    private readonly o: { pollMs?: number; onError?: (err: unknown) => void } = {},
  ) {}

  entries(): readonly IpBlockListEntry[] {
    return this.current;
  }

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.o.pollMs ?? 1000);
    this.timer.unref();
  }

  /** Reloads when the version moved (or always, the first time). */
  async refresh(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const v = await this.store.version();
      if (v !== this.seen) {
        this.current = await this.store.list();
        this.seen = v;
      }
    } catch (err) {
      this.o.onError?.(err);
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
