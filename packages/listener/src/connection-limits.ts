// Live counts of open connections per connector and per (connector, client IP), shared by
// every socket of one listener process. Whether one more may come in is the policy's
// admitConnection() (maxInboundConnection, the per-source limit); this only counts.
import { admitConnection, type Decision, type Session } from '@mailgw/policy';

export type Admission = { ok: true; release: () => void } | { ok: false; decision: Decision };

export class ConnectionLimits {
  private readonly total = new Map<string, number>();
  private readonly bySource = new Map<string, number>();

  admit(session: Session): Admission {
    const c = session.connector;
    const key = `${c.name}\u0000${session.client.text}`;
    const total = this.total.get(c.name) ?? 0;
    const mine = this.bySource.get(key) ?? 0;
    const decision = admitConnection(session, { open: total, fromClient: mine });
    if (decision.verdict !== 'accept') return { ok: false, decision };
    this.total.set(c.name, total + 1);
    this.bySource.set(key, mine + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        const t = (this.total.get(c.name) ?? 1) - 1;
        if (t > 0) this.total.set(c.name, t);
        else this.total.delete(c.name);
        const m = (this.bySource.get(key) ?? 1) - 1;
        if (m > 0) this.bySource.set(key, m);
        else this.bySource.delete(key);
      },
    };
  }
}
