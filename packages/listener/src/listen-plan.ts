// Which sockets to open for the connectors' bindings. One smtp-server instance per socket;
// connectors whose bindings land on the same socket share it, and the policy picks the
// connector per connection from (local address, client IP).
//
// Linux refuses to bind 10.0.0.1:25 while 0.0.0.0:25 listens (EADDRINUSE, SO_REUSEADDR or
// not), so a specific address is folded into the wildcard socket of its port and family; the
// accepted socket's local address still tells the policy which binding was meant. An IPv6
// wildcard listens IPv6-only when 0.0.0.0 has the same port, and dual-stack otherwise (the
// policy lets a [::] binding serve IPv4 clients too).
import type { ConfigIssue } from '@mailgw/config';
import type { CompiledConnector } from '@mailgw/policy';

export interface PlannedSocket {
  /** '0.0.0.0', '::' or a specific local address. */
  readonly host: string;
  readonly port: number;
  readonly ipv6Only: boolean;
  readonly implicitTLS: boolean;
  /** Connectors with a binding served by this socket. */
  readonly connectors: readonly CompiledConnector[];
  /** Bindings as written, for logs. */
  readonly bindings: readonly string[];
}

/** Errors name the connector file whose bindings clash (`mailgw check` reports them). */
export type ListenPlan = { ok: true; sockets: PlannedSocket[] } | { ok: false; errors: ConfigIssue[] };

interface BoundEntry {
  connector: CompiledConnector;
  address: string;
  family: 4 | 6;
  wildcard: boolean;
  text: string;
}

export function planSockets(connectors: readonly CompiledConnector[]): ListenPlan {
  const byPort = new Map<number, BoundEntry[]>();
  for (const c of connectors) {
    if (!c.config.enabled) continue;
    for (const b of c.config.bindings) {
      const list = byPort.get(b.port) ?? [];
      list.push({ connector: c, address: b.address, family: b.family, wildcard: b.wildcard, text: b.text });
      byPort.set(b.port, list);
    }
  }

  const sockets: PlannedSocket[] = [];
  const errors: ConfigIssue[] = [];
  for (const [port, entries] of [...byPort].sort((a, b) => a[0] - b[0])) {
    const v4wild = entries.some((e) => e.wildcard && e.family === 4);
    const v6wild = entries.some((e) => e.wildcard && e.family === 6);
    const groups = new Map<string, { host: string; ipv6Only: boolean; entries: BoundEntry[] }>();
    const add = (host: string, ipv6Only: boolean, e: BoundEntry) => {
      const g = groups.get(host) ?? { host, ipv6Only, entries: [] };
      g.entries.push(e);
      groups.set(host, g);
    };
    for (const e of entries) {
      if (e.family === 4 && v4wild) add('0.0.0.0', false, e);
      else if (v6wild && (e.family === 6 || !v4wild)) add('::', v4wild, e);
      else add(e.address, false, e);
    }
    for (const g of groups.values()) {
      const served = [...new Set(g.entries.map((e) => e.connector))];
      const implicit = served.filter((c) => c.config.implicitTLS);
      if (implicit.length > 0 && implicit.length < served.length) {
        const plain = served.filter((c) => !c.config.implicitTLS);
        errors.push({
          file: implicit[0]!.config.file,
          path: 'bindings',
          message:
            `port ${port}: connectors ${implicit.map((c) => `"${c.name}"`).join(', ')} (implicitTLS) and ${plain.map((c) => `"${c.name}" (${c.config.file})`).join(', ')} ` +
            `would share one socket, which is either TLS from the first byte or not; give them different ports`,
        });
        continue;
      }
      sockets.push({
        host: g.host,
        port,
        ipv6Only: g.ipv6Only,
        implicitTLS: implicit.length > 0,
        connectors: served,
        bindings: [...new Set(g.entries.map((e) => e.text))],
      });
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, sockets };
}
