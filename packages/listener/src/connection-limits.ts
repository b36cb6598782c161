// maxInboundConnection and maxInboundConnectionPerSource: live counts of open connections per
// connector and per (connector, client IP), shared by every socket of one listener process.
import { REPLIES, type CompiledConnector, type Reply } from '@mailgw/policy';

export type Admission = { ok: true; release: () => void } | { ok: false; reply: Reply; reason: string };

/** Per-source limit: maxInboundConnectionPerSource, or the percentage share of maxInboundConnection if smaller. */
export function perSourceLimit(c: CompiledConnector): number | null {
  const cfg = c.config;
  const share = cfg.maxInboundConnection === null ? null : Math.max(1, Math.ceil((cfg.maxInboundConnection * cfg.maxInboundConnectionPercentagePerSource) / 100));
  if (cfg.maxInboundConnectionPerSource === null) return share;
  return share === null ? cfg.maxInboundConnectionPerSource : Math.min(cfg.maxInboundConnectionPerSource, share);
}

export class ConnectionLimits {
  private readonly total = new Map<string, number>();
  private readonly bySource = new Map<string, number>();

  admit(c: CompiledConnector, clientIP: string): Admission {
    const total = this.total.get(c.name) ?? 0;
    if (c.config.maxInboundConnection !== null && total >= c.config.maxInboundConnection) {
      return { ok: false, reply: REPLIES.tooManyConnections, reason: `connector "${c.name}" has ${total} connections (maxInboundConnection ${c.config.maxInboundConnection})` };
    }
    const key = `${c.name}\u0000${clientIP}`;
    const mine = this.bySource.get(key) ?? 0;
    const limit = perSourceLimit(c);
    if (limit !== null && mine >= limit) {
      return { ok: false, reply: REPLIES.tooManyConnectionsPerSource, reason: `${clientIP} has ${mine} connections to connector "${c.name}" (per-source limit ${limit})` };
    }
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
