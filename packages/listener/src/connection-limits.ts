// Live counts of open connections per connector and per (connector, client IP). Whether one
// more may come in is the policy's decision (admitCounted / admitConnection: maxInboundConnection,
// the per-source limit); this only counts.
//
// One listener process counts in memory (ConnectionLimits). Under the `mailgw start` supervisor
// several listener processes share every binding, so the counts must be the gateway's, not one
// process's: the supervisor keeps one ConnectionCounter for all of them, and each listener
// process asks it over IPC before the greeting and tells it when the connection ends
// (RemoteConnectionLimits).
import { admissionRequest, admitCounted, type AdmissionRequest, type Decision, type Session } from '@mailgw/policy';

export type Admission = { ok: true; release: () => void } | { ok: false; decision: Decision };

/** What a listener asks before it greets a client. */
export interface ConnectionGate {
  admit(session: Session): Admission | Promise<Admission>;
}

/** Counts connections and lets the policy decide on each new one, atomically (one event loop). */
export class ConnectionCounter {
  private readonly total = new Map<string, number>();
  private readonly bySource = new Map<string, number>();

  /** The policy's decision; when it admits, the connection is counted until `release` is called. */
  admit(r: AdmissionRequest): { decision: Decision; release: (() => void) | null } {
    const key = `${r.connector}\u0000${r.client}`;
    const total = this.total.get(r.connector) ?? 0;
    const mine = this.bySource.get(key) ?? 0;
    const decision = admitCounted(r, { open: total, fromClient: mine });
    if (decision.verdict !== 'accept') return { decision, release: null };
    this.total.set(r.connector, total + 1);
    this.bySource.set(key, mine + 1);
    let released = false;
    return {
      decision,
      release: () => {
        if (released) return;
        released = true;
        const t = (this.total.get(r.connector) ?? 1) - 1;
        if (t > 0) this.total.set(r.connector, t);
        else this.total.delete(r.connector);
        const m = (this.bySource.get(key) ?? 1) - 1;
        if (m > 0) this.bySource.set(key, m);
        else this.bySource.delete(key);
      },
    };
  }

  /** Connections counted now (all connectors). */
  get open(): number {
    let n = 0;
    for (const v of this.total.values()) n += v;
    return n;
  }
}

/** The counts of one listener process. */
export class ConnectionLimits implements ConnectionGate {
  private readonly counter = new ConnectionCounter();

  admit(session: Session): Admission {
    const r = this.counter.admit(admissionRequest(session));
    return r.release ? { ok: true, release: r.release } : { ok: false, decision: r.decision };
  }
}

// ------------------------------------------------------------ across processes

/** Listener process → supervisor. */
export type AdmissionMessage = { type: 'mailgw:admit'; id: number; request: AdmissionRequest } | { type: 'mailgw:release'; id: number };
/** Supervisor → listener process: the policy's decision; when admitted, the slot is held under `id` until released. */
export type AdmissionReply = { type: 'mailgw:admitted'; id: number; decision: Decision };

export const isAdmissionMessage = (m: unknown): m is AdmissionMessage =>
  typeof m === 'object' && m !== null && ((m as { type?: unknown }).type === 'mailgw:admit' || (m as { type?: unknown }).type === 'mailgw:release');

/** The IPC channel to the supervisor (process.send / process.on('message') in a child). */
export interface AdmissionChannel {
  send(m: AdmissionMessage): boolean;
  onMessage(handler: (m: unknown) => void): void;
}

/** Admitted without a slot in any count (no limits, or nobody left to count). */
const UNCOUNTED: Admission = { ok: true, release: () => undefined };

/**
 * A listener process's gate under the supervisor: asks it for every connection to a connector
 * with a connection limit (one IPC round trip before the greeting) and releases the slot when
 * the connection ends. Without the supervisor (the channel is gone: it died, this process is draining) nobody can count, and the
 * connection is admitted; the draining listener then answers it 421.
 */
export class RemoteConnectionLimits implements ConnectionGate {
  private next = 1;
  private readonly pending = new Map<number, (a: Admission) => void>();
  private closed = false;

  constructor(private readonly channel: AdmissionChannel) {
    channel.onMessage((m) => {
      const r = m as Partial<AdmissionReply>;
      if (r?.type !== 'mailgw:admitted' || typeof r.id !== 'number' || !r.decision) return;
      const resolve = this.pending.get(r.id);
      if (!resolve) return;
      this.pending.delete(r.id);
      const id = r.id;
      resolve(r.decision.verdict === 'accept' ? { ok: true, release: this.releaser(id) } : { ok: false, decision: r.decision });
    });
  }

  admit(session: Session): Admission | Promise<Admission> {
    if (this.closed) return UNCOUNTED;
    const request = admissionRequest(session);
    // A connector without limits has nothing to count: admitted here, without the IPC round
    // trip (four channel writes per connection, a quarter of the listener's system calls).
    if (request.maxInboundConnection === null && request.perSourceLimit === null) return UNCOUNTED;
    const id = this.next++;
    return new Promise<Admission>((resolve) => {
      this.pending.set(id, resolve);
      let sent = false;
      try {
        sent = this.channel.send({ type: 'mailgw:admit', id, request });
      } catch {
        sent = false;
      }
      if (!sent && this.pending.delete(id)) resolve({ ok: true, release: () => undefined });
    });
  }

  /** The supervisor is gone: answer what is pending and everything after without it. */
  disconnect(): void {
    this.closed = true;
    for (const resolve of this.pending.values()) resolve({ ok: true, release: () => undefined });
    this.pending.clear();
  }

  private releaser(id: number): () => void {
    let done = false;
    return () => {
      if (done || this.closed) return;
      done = true;
      try {
        this.channel.send({ type: 'mailgw:release', id });
      } catch {
        // the supervisor is gone; so are its counts
      }
    };
  }
}
