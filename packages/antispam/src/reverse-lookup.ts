// The client's host name for the Received header and the content filters (rspamd's Hostname,
// the milters' {client_name}), as Postfix's smtpd finds it (smtpd_peername_lookup): the PTR name
// of the address, kept only when it resolves back to the address (forward-confirmed); else the
// client is "[address]". Through the anti-spam agents' resolver (timeouts, Redis cache), in the
// shape smtp-server takes as its `resolver`. Loopback clients are not looked up (local
// programs; and tests, which must never reach the real DNS).
import { parseIp, type IpAddress } from '@mailgw/config';
import { reverseName } from '@mailgw/policy';
import type { DnsResolver } from './dns.js';

/** smtp-server's `resolver` option: only `reverse` is used (with disableReverseLookup false). */
export interface ReverseResolver {
  reverse(ip: string, callback: (err: Error | null, hostnames: string[]) => void): void;
}

export interface ReverseLookupOptions {
  /** Look up loopback clients too (tests with a loopback DNS server); default false. */
  readonly loopback?: boolean;
}

function isLoopback(family: 4 | 6, value: bigint): boolean {
  return family === 4 ? value >> 24n === 127n : value === 1n;
}

/**
 * The PTR names of `client` that resolve back to it (forward-confirmed; at most three tried), in
 * the shape the policy judges (reverseDnsResult): no PTR is an answer with none confirmed; a
 * lookup that failed (timeout, SERVFAIL) is not an answer.
 */
export async function forwardConfirmedNames(resolver: DnsResolver, client: IpAddress): Promise<{ readonly ok: true; readonly confirmed: readonly string[] } | { readonly ok: false }> {
  let names: string[];
  try {
    names = await resolver.resolve(reverseName(client, client.family === 4 ? 'in-addr.arpa' : 'ip6.arpa'), 'PTR');
  } catch (e) {
    const code = (e as { code?: unknown })?.code;
    return code === 'ENOTFOUND' || code === 'ENODATA' ? { ok: true, confirmed: [] } : { ok: false };
  }
  const confirmed: string[] = [];
  for (const name of names.slice(0, 3)) {
    try {
      const addrs = await resolver.resolve(name, client.family === 4 ? 'A' : 'AAAA');
      if (addrs.some((a) => {
        const r = parseIp(a);
        return r.ok && r.value.family === client.family && r.value.value === client.value;
      })) confirmed.push(name.replace(/\.$/, '').toLowerCase());
    } catch {
      // a PTR name that does not resolve is not confirmed
    }
  }
  return { ok: true, confirmed };
}

/** The forward-confirmed PTR name of `ip`, or null (none, not confirmed, or the lookup failed). */
export async function confirmedHostname(resolver: DnsResolver, ip: string, o: ReverseLookupOptions = {}): Promise<string | null> {
  const parsed = parseIp(ip.replace(/%.*$/, ''));
  if (!parsed.ok) return null;
  if (!o.loopback && isLoopback(parsed.value.family, parsed.value.value)) return null;
  const r = await forwardConfirmedNames(resolver, parsed.value);
  return r.ok ? (r.confirmed[0] ?? null) : null;
}

/** The resolver to give the listeners: a confirmed name, or none (never an error: smtp-server would log every NXDOMAIN as one). */
export function reverseLookup(resolver: DnsResolver, o: ReverseLookupOptions = {}): ReverseResolver {
  return {
    reverse(ip, callback) {
      confirmedHostname(resolver, ip, o).then(
        (name) => callback(null, name ? [name] : []),
        () => callback(null, []),
      );
    },
  };
}
