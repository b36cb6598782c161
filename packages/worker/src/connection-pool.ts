// Outbound sessions kept open per next hop and reused for the next message to it, each one
// holding a destination lease (maxConnectionsPerDestination across all workers). A session
// is used by one delivery at a time; idle ones are closed after idleMs.
import type { Logger } from 'pino';
import type { DestinationLeases, Lease } from './destination-leases.js';
import type { SmtpSession } from './smtp-session.js';

export const BUSY = Symbol('destination busy');

export interface ConnectionPoolOptions {
  /** maxConnectionsPerDestination */
  limit: number;
  /** Close a session idle this long (default 5 s). */
  idleMs?: number;
  /** Messages per session before it is closed (default 100). */
  maxMessagesPerSession?: number;
  /** How long to wait for a free slot before giving the message back to the queue (default 5 s). */
  leaseWaitMs?: number;
  logger?: Logger;
}

interface Pooled {
  readonly destination: string;
  readonly session: SmtpSession;
  readonly lease: Lease;
  idleTimer: NodeJS.Timeout | null;
}

export class ConnectionPool {
  private readonly idle = new Map<string, Pooled[]>();
  private readonly live = new Set<Pooled>();
  /** Sessions in `live` per destination. */
  private readonly liveTo = new Map<string, number>();
  /**
   * Deliveries of this process waiting for one of its own sessions to a full destination.
   * Handing a session over in-process beats polling Redis for a lease, and keeps order.
   */
  private readonly waiters = new Map<string, Array<(p: Pooled | null) => void>>();
  /** Sessions being opened (lease held, not yet connected) per destination. */
  private readonly opening = new Map<string, number>();
  private readonly idleMs: number;
  private readonly maxMessages: number;
  private readonly leaseWaitMs: number;
  private closing = false;
  /** Sessions opened so far (for logs and tests). */
  opened = 0;

  constructor(
    private readonly leases: DestinationLeases,
    private readonly opts: ConnectionPoolOptions,
  ) {
    this.idleMs = opts.idleMs ?? 5000;
    this.maxMessages = opts.maxMessagesPerSession ?? 100;
    this.leaseWaitMs = opts.leaseWaitMs ?? 5000;
  }

  /**
   * Runs `use` on a session to `destination`: an idle one, or a new one from `connect` once a
   * lease is free. BUSY when no lease came within leaseWaitMs. Errors of `connect` propagate.
   * `limit`: connections to this destination (a send connector's maxConnectionsPerDestination).
   */
  async run<T>(destination: string, connect: () => Promise<SmtpSession>, use: (s: SmtpSession) => Promise<T>, limit: number = this.opts.limit): Promise<T | typeof BUSY> {
    const p = await this.obtain(destination, connect, limit);
    if (!p) return BUSY;
    try {
      return await use(p.session);
    } finally {
      await this.giveBack(destination, p);
    }
  }

  /** An idle session, a new one under a fresh lease, or one of ours handed over when it is free. */
  private async obtain(destination: string, connect: () => Promise<SmtpSession>, limit: number): Promise<Pooled | null> {
    const deadline = Date.now() + this.leaseWaitMs;
    for (;;) {
      const idle = this.takeIdle(destination);
      if (idle) return idle;
      if (this.ownSessions(destination) >= limit) {
        // Every slot is ours: no need to ask Redis, wait for one of our sessions.
        if (this.closing || Date.now() >= deadline) return null;
        const handed = await this.waitForSession(destination, deadline);
        if (handed) return handed;
        continue;
      }
      // Counted as opening while the lease is asked for, so a burst of deliveries asks
      // Redis for no more leases than the limit.
      this.addOpening(destination, 1);
      let lease: Lease | null;
      try {
        lease = await this.leases.tryAcquire(destination, limit);
      } catch (err) {
        this.lostPendingLease(destination);
        throw err;
      }
      if (lease) return this.open(destination, lease, connect);
      this.lostPendingLease(destination);
      if (this.closing || Date.now() >= deadline) return null;
      if (this.ownSessions(destination) > 0) {
        // Full, and some of the sessions are ours: wait for one to be handed over.
        const handed = await this.waitForSession(destination, deadline);
        if (handed) return handed;
      } else {
        // Full with other workers' sessions: poll the shared lease set.
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
  }

  /**
   * A lease asked for did not come. Waiters keep waiting for our sessions while we have some;
   * with none left, nothing would ever be handed over: one waiter goes back to asking Redis
   * (waking all of them would have each ask a full destination again at once).
   */
  private lostPendingLease(destination: string): void {
    this.addOpening(destination, -1);
    if (this.ownSessions(destination) === 0) this.wakeOne(destination);
  }

  private addOpening(destination: string, n: number): void {
    const now = (this.opening.get(destination) ?? 0) + n;
    if (now > 0) this.opening.set(destination, now);
    else this.opening.delete(destination);
  }

  /** Connects under `lease`; the caller counted the session as opening. */
  private async open(destination: string, lease: Lease, connect: () => Promise<SmtpSession>): Promise<Pooled> {
    let session: SmtpSession;
    try {
      session = await connect();
    } catch (err) {
      await this.leases.release(lease).catch(() => undefined);
      this.wakeOne(destination);
      throw err;
    } finally {
      this.addOpening(destination, -1);
    }
    this.opened++;
    const p: Pooled = { destination, session, lease, idleTimer: null };
    this.live.add(p);
    this.liveTo.set(destination, (this.liveTo.get(destination) ?? 0) + 1);
    return p;
  }

  /** Sessions to `destination` this process has open or is opening (each holds a lease). */
  private ownSessions(destination: string): number {
    return (this.opening.get(destination) ?? 0) + (this.liveTo.get(destination) ?? 0);
  }

  /** Resolves with a session handed over by giveBack, or null (a slot freed up, or the deadline passed). */
  private waitForSession(destination: string, deadline: number): Promise<Pooled | null> {
    return new Promise((resolve) => {
      const list = this.waiters.get(destination) ?? [];
      this.waiters.set(destination, list);
      const waiter = (p: Pooled | null) => {
        clearTimeout(timer);
        resolve(p);
      };
      const timer = setTimeout(() => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        resolve(null);
      }, Math.max(0, deadline - Date.now()));
      list.push(waiter);
    });
  }

  /** Lets the first waiter for a destination try again (a lease was released). */
  private wakeOne(destination: string): void {
    this.waiters.get(destination)?.shift()?.(null);
  }

  private takeIdle(destination: string): Pooled | null {
    const list = this.idle.get(destination);
    while (list && list.length > 0) {
      const p = list.pop()!;
      if (p.idleTimer) clearTimeout(p.idleTimer);
      p.idleTimer = null;
      if (p.session.usable) return p;
      void this.discard(p);
    }
    return null;
  }

  private async giveBack(destination: string, p: Pooled): Promise<void> {
    if (p.session.usable && p.session.dirty) await p.session.reset();
    if (this.closing || !p.session.usable || p.session.messages >= this.maxMessages) {
      await this.discard(p);
      this.wakeOne(destination);
      return;
    }
    const waiter = this.waiters.get(destination)?.shift();
    if (waiter) {
      waiter(p);
      return;
    }
    const list = this.idle.get(destination) ?? [];
    list.push(p);
    this.idle.set(destination, list);
    p.idleTimer = setTimeout(() => {
      const l = this.idle.get(destination);
      const i = l ? l.indexOf(p) : -1;
      if (i >= 0) l!.splice(i, 1);
      if (l && l.length === 0) this.idle.delete(destination);
      void this.discard(p);
    }, this.idleMs);
    p.idleTimer.unref();
  }

  private async discard(p: Pooled): Promise<void> {
    if (!this.live.delete(p)) return;
    const n = this.liveTo.get(p.destination)! - 1;
    if (n > 0) this.liveTo.set(p.destination, n);
    else this.liveTo.delete(p.destination);
    if (p.idleTimer) clearTimeout(p.idleTimer);
    p.session.close();
    await this.leases.release(p.lease).catch((err: unknown) => this.opts.logger?.warn({ err }, 'could not release a destination lease (it expires by itself)'));
  }

  /** Sessions open now (idle and in use). */
  get size(): number {
    return this.live.size;
  }

  /** Closes idle sessions now and sessions in use when their delivery ends. */
  async close(): Promise<void> {
    this.closing = true;
    for (const list of this.waiters.values()) for (const w of list.splice(0)) w(null);
    const idle = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(idle.map((p) => this.discard(p)));
  }
}
