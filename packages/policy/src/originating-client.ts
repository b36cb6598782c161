// Exchange's InternalSMTPServers (Set-TransportConfig): when mail reaches the gateway through one
// of the organisation's own SMTP servers (a front relay, a perimeter filter), the client that
// connected is that server, and SPF must be judged for the host that handed the message to the
// organisation: the newest Received field whose "from" host is not an internal server. Each
// Received field down to it was written by an internal server, so it is trusted; the ones below
// are the sender's to write and are never read.
import { normaliseClientIp, rangeContains, type IpAddress, type IpRange } from '@mailgw/config';

/** What a Received field says of the host it came from: its address (from the TCP-info comment, else an address-literal HELO) and its HELO. */
export interface ReceivedFrom {
  readonly ip: string | null;
  readonly helo: string | null;
}

const addressOf = (token: string): string | null => {
  const t = token.replace(/^\[|\]$/g, '').replace(/^ipv6:/i, '');
  const ip = normaliseClientIp(t);
  return ip ? ip.text : null;
};

/**
 * The "from" clause of a Received value (RFC 5321 4.4: `from <helo> (<tcp-info>) by …`), read
 * leniently as Postfix, Exim, Sendmail, Exchange and mailgw write it: `(host [192.0.2.1])`,
 * `([192.0.2.1] helo=x)`, `(192.0.2.1)`, `[IPv6:2001:db8::1]`. Null when there is no from clause.
 */
export function receivedFrom(value: string): ReceivedFrom | null {
  const v = value.slice(0, 2048).replace(/\r?\n[ \t]*/g, ' ');
  const m = /^\s*from\s+([^\s();]+)/i.exec(v);
  if (!m) return null;
  const helo = m[1]!;
  // The comments right after the HELO (possibly nested), up to "by", "with", "id", "for" or ";".
  let i = m[0].length;
  const comments: string[] = [];
  for (;;) {
    while (i < v.length && /\s/.test(v[i]!)) i++;
    if (v[i] !== '(') break;
    let depth = 0;
    const start = i;
    for (; i < v.length; i++) {
      if (v[i] === '\\') i++;
      else if (v[i] === '(') depth++;
      else if (v[i] === ')' && --depth === 0) break;
    }
    comments.push(v.slice(start + 1, i));
    i++;
  }
  const text = comments.join(' ');
  const bracketed = [...text.matchAll(/\[([^\]\s]+)\]/g)].map((x) => addressOf(x[1]!)).find((a) => a !== null);
  const bare = bracketed ?? text.split(/[\s()=,]+/).map((t) => (/[.:]/.test(t) ? addressOf(t) : null)).find((a) => a !== null);
  const ip = bare ?? (helo.startsWith('[') ? addressOf(helo) : null);
  return { ip: ip ?? null, helo };
}

export type OriginatingClient =
  | { readonly kind: 'client' }
  | { readonly kind: 'received'; readonly ip: string; readonly helo: string | null; readonly hops: number }
  | { readonly kind: 'unknown'; readonly why: string };

/** Whether `ip` is one of the organisation's own SMTP servers (internalSMTPServers). */
export function isInternalServer(ip: string, ranges: readonly IpRange[]): boolean {
  const a = normaliseClientIp(ip);
  return a !== null && ranges.some((r) => rangeContains(r, a));
}

/** Whether a session's client is one of the gateway's internalSMTPServers (its address as the session parsed it). */
export function fromInternalServer(policy: { readonly config: { readonly gateway: { readonly internalSMTPServers: readonly IpRange[] } } }, session: { readonly client: IpAddress }): boolean {
  return policy.config.gateway.internalSMTPServers.some((r) => rangeContains(r, session.client));
}

/**
 * Who handed the message to the organisation: the connecting client itself, unless it is one of
 * `internalServers`; then the "from" host of the newest Received field (`received`, newest first)
 * that is not one of them. Unknown when a Received field of an internal server cannot be read or
 * every hop is internal (mail that started inside).
 */
export function originatingClient(clientIp: string, received: readonly string[], internalServers: readonly IpRange[]): OriginatingClient {
  if (internalServers.length === 0 || !isInternalServer(clientIp, internalServers)) return { kind: 'client' };
  let by = clientIp;
  for (const [n, value] of received.entries()) {
    const from = receivedFrom(value);
    if (!from || from.ip === null) return { kind: 'unknown', why: `Received field ${n + 1}, written by internal server ${by}, names no address it came from` };
    if (!isInternalServer(from.ip, internalServers)) return { kind: 'received', ip: from.ip, helo: from.helo, hops: n + 1 };
    by = from.ip;
  }
  return { kind: 'unknown', why: received.length === 0 ? `internal server ${clientIp} added no Received field` : `every Received field is from an internal server: the message started inside` };
}
