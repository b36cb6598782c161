// maxConnectionsPerDestination across every worker: a counting semaphore in Redis. Each open
// connection holds a lease (a member of a sorted set scored by its expiry, on Redis' clock);
// holders refresh their leases while alive, so a worker that dies mid-delivery frees its
// slots when they expire instead of blocking the destination forever.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { defineScripts, type KeySpace } from '@mailgw/queue';

export interface Lease {
  readonly destination: string;
  readonly token: string;
}

export interface DestinationLeasesOptions {
  /** How long a lease lives without refresh (default 30 s). */
  ttlMs?: number;
  /** Poll interval while waiting for a free slot (default 100 ms, jittered). */
  pollMs?: number;
}

/** The commands the constructor defines on the connection. */
interface LeaseScripts {
  acquire(key: string, token: string, limit: number, ttlMs: number): Promise<number>;
  refresh(key: string, ttlMs: number, ...tokens: string[]): Promise<number>;
}

export class DestinationLeases {
  readonly ttlMs: number;
  private readonly scripts: LeaseScripts;
  private readonly pollMs: number;
  private readonly held = new Map<string, Lease>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySpace,
    opts: DestinationLeasesOptions = {},
  ) {
    // EVALSHA, falling back to EVAL once per connection: the script text is not sent each time.
    // lua/lease-acquire.lua and lua/lease-refresh.lua of @mailgw/queue.
    const s = defineScripts(redis, ['lease-acquire', 'lease-refresh']);
    this.scripts = {
      acquire: async (key, token, limit, ttlMs) => Number(await s['lease-acquire'](key, token, limit, ttlMs)),
      refresh: async (key, ttlMs, ...tokens) => Number(await s['lease-refresh'](key, ttlMs, ...tokens)),
    };
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.pollMs = opts.pollMs ?? 100;
    this.timer = setInterval(() => void this.refreshAll(), Math.max(50, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  /** Leases this process holds now. */
  get heldCount(): number {
    return this.held.size;
  }

  /** One try: a lease, or null when `limit` leases are out. */
  async tryAcquire(destination: string, limit: number): Promise<Lease | null> {
    if (this.closed) return null;
    const token = randomBytes(9).toString('base64url');
    const ok = await this.scripts.acquire(this.keys.destinationLeases(destination), token, limit, this.ttlMs);
    if (Number(ok) !== 1) return null;
    const lease = { destination, token };
    this.held.set(token, lease);
    return lease;
  }

  /** Waits up to `waitMs` for a lease; null if the destination stayed full (or on close). */
  async acquire(destination: string, limit: number, waitMs: number): Promise<Lease | null> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const lease = await this.tryAcquire(destination, limit);
      if (lease || this.closed || Date.now() >= deadline) return lease;
      await new Promise((r) => setTimeout(r, this.pollMs / 2 + Math.random() * this.pollMs));
    }
  }

  async release(lease: Lease): Promise<void> {
    if (!this.held.delete(lease.token)) return;
    await this.redis.zrem(this.keys.destinationLeases(lease.destination), lease.token);
  }

  /** Counts the live leases of a destination (all workers). */
  async count(destination: string): Promise<number> {
    const now = Number((await this.redis.time())[0]) * 1000;
    return this.redis.zcount(this.keys.destinationLeases(destination), now, '+inf');
  }

  private async refreshAll(): Promise<void> {
    const byDest = new Map<string, string[]>();
    for (const l of this.held.values()) byDest.set(l.destination, [...(byDest.get(l.destination) ?? []), l.token]);
    for (const [dest, tokens] of byDest) {
      // A lost refresh is retried on the next tick; the lease only lapses after ttlMs.
      await this.scripts.refresh(this.keys.destinationLeases(dest), this.ttlMs, ...tokens).catch(() => undefined);
    }
  }

  /** Stops refreshing and releases every lease still held. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.held.values()].map((l) => this.release(l)));
  }
}
