// Outbound sessions kept open per next hop and reused for the next message to it, each one
// holding a destination lease (maxConnectionsPerDestination across all workers). A session
// is used by one delivery at a time; idle ones are closed after idleMs.
import type { Logger } from 'pino';
import type { DestinationLeases, Lease } from './destination-leases.js';
import type { SmtpSession } from './smtp-session.js';
import { crowdedTurn, type Turn } from '@mailgw/policy';

export const BUSY = Symbol('destination busy');
const MAX_TURNS_REMEMBERED = 100_000;

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

/** What crowdedTurn needs to know of a next hop, kept while it has sessions or deliveries. */
interface Load {
  inProgress: number;
  msPerMessage: number | null;
  lastTurnAt: number;
  /** When a message to it last finished in one of our sessions (epoch ms). */
  servedAt: number;
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
  private readonly load = new Map<string, Load>();
  /** Messages sent back to the queue for a turn (bookTurn), by queue id. */
  private readonly turnsGiven = new Set<string>();
  private sentBackCount = 0;
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
    const start = Date.now();
    try {
      return await use(p.session);
    } finally {
      this.timed(destination, Date.now() - start);
      await this.giveBack(destination, p);
    }
  }

  /**
   * A delivery for `destination` is about to read its body: null if it should go ahead (then
   * admit() it), else until when it should go back to the queue (@mailgw/policy's crowded-next-hop.ts;
   * bookTurn() records the turn given).
   */
  nextTurn(destination: string, limit: number = this.opts.limit, now: number = Date.now()): Turn | null {
    const l = this.load.get(destination);
    if (!l) return null;
    return crowdedTurn({ inProgress: l.inProgress, limit, msPerMessage: l.msPerMessage, lastTurnAt: l.lastTurnAt }, now);
  }

  /** Records the turn given to message `queueId` at `destinations`; it goes ahead when it comes back. */
  bookTurn(queueId: string, destinations: readonly string[], at: number): void {
    for (const d of destinations) {
      const l = this.load.get(d);
      if (l) l.lastTurnAt = Math.max(l.lastTurnAt, at);
    }
    // Only a hint (another worker may take the message, or none comes back): bounded.
    if (this.turnsGiven.size >= MAX_TURNS_REMEMBERED) this.turnsGiven.clear();
    this.turnsGiven.add(queueId);
    this.sentBackCount++;
  }

  /** Deliveries sent back to the queue for a turn since start, and next hops with turns still to come. */
  get crowding(): { readonly sentBack: number; readonly crowdedNextHops: number } {
    const now = Date.now();
    let crowdedNextHops = 0;
    for (const l of this.load.values()) if (l.lastTurnAt > now) crowdedNextHops++;
    return { sentBack: this.sentBackCount, crowdedNextHops };
  }

  /** Whether message `queueId` comes back for a turn given here (once). */
  takeTurn(queueId: string): boolean {
    return this.turnsGiven.delete(queueId);
  }

  /** Counts a delivery for `destination` as in progress until the function returned is called. */
  admit(destination: string): () => void {
    const l = this.loadOf(destination);
    l.inProgress++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      l.inProgress--;
      this.forgetIfIdle(destination);
    };
  }

  /** Deliveries in progress for `destination` (admitted, not yet over). */
  inProgressFor(destination: string): number {
    return this.load.get(destination)?.inProgress ?? 0;
  }

  private loadOf(destination: string): Load {
    let l = this.load.get(destination);
    if (!l) this.load.set(destination, (l = { inProgress: 0, msPerMessage: null, lastTurnAt: 0, servedAt: 0 }));
    return l;
  }

  /** A message held a session to `destination` for `ms`: into the moving average. */
  private timed(destination: string, ms: number): void {
    const l = this.loadOf(destination);
    l.msPerMessage = l.msPerMessage === null ? ms : 0.8 * l.msPerMessage + 0.2 * ms;
    l.servedAt = Date.now();
  }

  /**
   * When a delivery waiting for one of our sessions gives up: leaseWaitMs after it started, or
   * after the last message to the destination finished in one of our sessions, whichever is
   * later. A line that moves is waited in (the turns given by nextTurn count on it); one that
   * stands still for leaseWaitMs is left.
   */
  private giveUpAt(destination: string, deadline: number): number {
    return Math.max(deadline, (this.load.get(destination)?.servedAt ?? 0) + this.leaseWaitMs);
  }

  /**
   * Drops what is known of a next hop nobody uses or waits for (MX delivery meets many). Turns
   * given out no longer matter then: with nothing in progress, a delivery that comes back goes ahead.
   */
  private forgetIfIdle(destination: string): void {
    const l = this.load.get(destination);
    if (l && l.inProgress === 0 && !this.liveTo.has(destination)) this.load.delete(destination);
  }

  /** An idle session, a new one under a fresh lease, or one of ours handed over when it is free. */
  private async obtain(destination: string, connect: () => Promise<SmtpSession>, limit: number): Promise<Pooled | null> {
    const deadline = Date.now() + this.leaseWaitMs;
    for (;;) {
      const idle = this.takeIdle(destination);
      if (idle) return idle;
      if (this.ownSessions(destination) >= limit) {
        // Every slot is ours: no need to ask Redis, wait for one of our sessions.
        if (this.closing || Date.now() >= this.giveUpAt(destination, deadline)) return null;
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
      if (this.closing) return null;
      if (this.ownSessions(destination) > 0) {
        // Full, and some of the sessions are ours: wait for one to be handed over.
        if (Date.now() >= this.giveUpAt(destination, deadline)) return null;
        const handed = await this.waitForSession(destination, deadline);
        if (handed) return handed;
      } else {
        if (Date.now() >= deadline) return null;
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

  /** Resolves with a session handed over by giveBack, or null (a slot freed up, or it is time to give up). */
  private waitForSession(destination: string, deadline: number): Promise<Pooled | null> {
    return new Promise((resolve) => {
      const list = this.waiters.get(destination) ?? [];
      this.waiters.set(destination, list);
      let timer: NodeJS.Timeout;
      const waiter = (p: Pooled | null) => {
        clearTimeout(timer);
        resolve(p);
      };
      const arm = () => {
        timer = setTimeout(() => {
          if (Date.now() < this.giveUpAt(destination, deadline)) return arm(); // the line moved meanwhile
          const i = list.indexOf(waiter);
          if (i >= 0) list.splice(i, 1);
          resolve(null);
        }, Math.max(0, this.giveUpAt(destination, deadline) - Date.now()));
      };
      arm();
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
    else {
      this.liveTo.delete(p.destination);
      this.forgetIfIdle(p.destination);
    }
    if (p.idleTimer) clearTimeout(p.idleTimer);
    p.session.close();
    await this.leases.release(p.lease).catch((err: unknown) => this.opts.logger?.warn({ err, destination: p.destination }, 'could not release a destination lease (it expires by itself)'));
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
