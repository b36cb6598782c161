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
  readonly session: SmtpSession;
  readonly lease: Lease;
  idleTimer: NodeJS.Timeout | null;
}

export class ConnectionPool {
  private readonly idle = new Map<string, Pooled[]>();
  private readonly live = new Set<Pooled>();
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
   */
  async run<T>(destination: string, connect: () => Promise<SmtpSession>, use: (s: SmtpSession) => Promise<T>): Promise<T | typeof BUSY> {
    let p = this.takeIdle(destination);
    if (!p) {
      const lease = await this.leases.acquire(destination, this.opts.limit, this.leaseWaitMs);
      if (!lease) return BUSY;
      let session: SmtpSession;
      try {
        session = await connect();
      } catch (err) {
        await this.leases.release(lease).catch(() => undefined);
        throw err;
      }
      this.opened++;
      p = { session, lease, idleTimer: null };
      this.live.add(p);
    }
    try {
      return await use(p.session);
    } finally {
      await this.giveBack(destination, p);
    }
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
    const idle = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(idle.map((p) => this.discard(p)));
  }
}
