// maxConnectionsPerDestination across every worker: a counting semaphore in Redis. Each open
// connection holds a lease (a member of a sorted set scored by its expiry, on Redis' clock);
// holders refresh their leases while alive, so a worker that dies mid-delivery frees its
// slots when they expire instead of blocking the destination forever.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { KeySpace } from '@mailgw/queue';

// KEYS[1] lease set; ARGV: token, limit, ttl ms. 1 = held, 0 = destination full.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
  return 1
end
return 0
`;

// KEYS[1] lease set; ARGV: ttl ms, tokens…; returns how many were still held.
const REFRESH = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return n
`;

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
  mailgwLeaseAcquire(key: string, token: string, limit: number, ttlMs: number): Promise<number>;
  mailgwLeaseRefresh(key: string, ttlMs: number, ...tokens: string[]): Promise<number>;
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
    redis.defineCommand('mailgwLeaseAcquire', { numberOfKeys: 1, lua: ACQUIRE });
    redis.defineCommand('mailgwLeaseRefresh', { numberOfKeys: 1, lua: REFRESH });
    this.scripts = redis as unknown as LeaseScripts;
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
    const ok = await this.scripts.mailgwLeaseAcquire(this.keys.destinationLeases(destination), token, limit, this.ttlMs);
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
      await this.scripts.mailgwLeaseRefresh(this.keys.destinationLeases(dest), this.ttlMs, ...tokens).catch(() => undefined);
    }
  }

  /** Stops refreshing and releases every lease still held. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.held.values()].map((l) => this.release(l)));
  }
}
