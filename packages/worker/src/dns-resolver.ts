// Next-hop host lookup for "mx" routes and smtp:// targets given by name. The resolver is
// injected (tests never touch real DNS); the system one is node:dns.
import { Resolver } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { localReply, type Reply } from '@mailgw/mail';
import { queryDnssecStatus, queryTlsa, type DnssecStatus, type TlsaAnswer } from './dane.js';

export interface MxRecord {
  readonly exchange: string;
  readonly priority: number;
}

/** The queries the worker needs; node:dns error codes (ENODATA, ENOTFOUND, …) on failure. */
export interface DnsResolver {
  resolveMx(name: string): Promise<MxRecord[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  /** TXT records (each a list of strings), for MTA-STS; without it no MTA-STS policy is looked up. */
  resolveTxt?(name: string): Promise<string[][]>;
  /**
   * TLSA records and whether the answer is DNSSEC-authenticated, for DANE (RFC 7672); without
   * it no DANE. NXDOMAIN/NODATA may reject with ENOTFOUND/ENODATA or resolve with no records.
   */
  resolveTlsa?(name: string): Promise<TlsaAnswer>;
  /**
   * Whether the MX, A or AAAA records of `name` are DNSSEC-authenticated (RFC 7672 §2.2: DANE
   * applies only where the MX RRset and the MX host's address records are), and the name they
   * are at after any CNAMEs (§2.2.2: TLSA records are looked for there first). Without it,
   * secure TLSA records of the MX host name are used whatever the MX and address records (a
   * resolver that cannot say).
   */
  dnssecStatus?(name: string, type: 'MX' | 'A' | 'AAAA'): Promise<DnssecStatus>;
}

/**
 * The TXT records at `name` (each record's strings joined), for the _mta-sts and _smtp._tls
 * policy records: [] when there is none (NXDOMAIN/NODATA) or the resolver cannot ask TXT;
 * `error` says why the lookup failed otherwise.
 */
export async function lookupTxt(resolver: DnsResolver, name: string): Promise<{ readonly records: readonly string[]; readonly error: string | null }> {
  if (!resolver.resolveTxt) return { records: [], error: null };
  try {
    return { records: (await resolver.resolveTxt(name)).map((parts) => parts.join('')), error: null };
  } catch (err) {
    const code = String((err as { code?: unknown })?.code ?? '');
    if (code === 'ENODATA' || code === 'ENOTFOUND') return { records: [], error: null };
    return { records: [], error: `DNS lookup of TXT ${name} failed (${code || (err as Error).message || 'error'})` };
  }
}

/** node:dns with a bounded timeout per query. */
export function systemResolver(timeoutMs = 10_000): DnsResolver {
  const r = new Resolver({ timeout: timeoutMs, tries: 2 });
  return {
    resolveMx: (n) => r.resolveMx(n),
    resolve4: (n) => r.resolve4(n),
    resolve6: (n) => r.resolve6(n),
    resolveTxt: (n) => r.resolveTxt(n),
    // node:dns has no TLSA and hides the AD bit: asked directly, of the same (validating) server.
    resolveTlsa: (n) => queryTlsa(n, { timeoutMs }),
    dnssecStatus: (n, type) => queryDnssecStatus(n, type, { timeoutMs }),
  };
}

export interface NextHopHost {
  /** Host name (or the IP for a literal): TLS server name and Remote-MTA. */
  readonly name: string;
  readonly addresses: readonly string[];
}

export type HostLookup =
  | { readonly ok: true; readonly hosts: readonly NextHopHost[] }
  | { readonly ok: false; readonly reply: Reply; readonly permanent: boolean };

const codeOf = (err: unknown): string => String((err as { code?: unknown })?.code ?? '');
/** "No such name" and "no records of this type": both answers, not failures. */
const NO_ANSWER = new Set(['ENODATA', 'ENOTFOUND']);

/** Addresses of a host: A first (IPv6 may be unroutable here), then AAAA; an IP literal is itself. */
export async function lookupHost(name: string, resolver: DnsResolver): Promise<{ addresses: string[]; error: string | null }> {
  if (isIP(name)) return { addresses: [name], error: null };
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
  const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  const failures = [v4, v6].filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => codeOf(r.reason));
  const error = failures.find((c) => !NO_ANSWER.has(c)) ?? null;
  return { addresses, error };
}

/** An address literal domain ("[192.0.2.1]", "[ipv6:2001:db8::1]") as an IP, else null. */
export function literalAddress(domain: string): string | null {
  const m = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain);
  return m && isIP(m[1]!) ? m[1]! : null;
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * MX hosts of a (normalised, ASCII) domain in the order to try them (RFC 5321 §5.1): by
 * preference, random among equals; no MX → the domain's own A/AAAA; a null MX (RFC 7505) or a
 * domain that does not exist → permanent failure; resolver trouble → temporary failure.
 */
export async function lookupMx(domain: string, resolver: DnsResolver): Promise<HostLookup> {
  const literal = literalAddress(domain);
  if (literal) return { ok: true, hosts: [{ name: literal, addresses: [literal] }] };
  let records: MxRecord[];
  try {
    records = await resolver.resolveMx(domain);
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENOTFOUND') return { ok: false, permanent: true, reply: localReply(550, '5.1.2', `Domain ${domain} does not exist (DNS NXDOMAIN)`) };
    if (code !== 'ENODATA') return { ok: false, permanent: false, reply: localReply(451, '4.4.3', `DNS lookup of MX ${domain} failed (${code || 'error'})`) };
    records = [];
  }
  const exchanges = records.map((r) => ({ exchange: r.exchange.replace(/\.$/, '').toLowerCase(), priority: r.priority }));
  if (exchanges.some((r) => r.exchange === '')) {
    // A null MX is the only record when valid; any "." record means: accepts no mail.
    return { ok: false, permanent: true, reply: localReply(556, '5.1.10', `Domain ${domain} accepts no mail (null MX)`) };
  }
  let names: string[];
  if (exchanges.length === 0) names = [domain];
  else {
    const byPref = new Map<number, string[]>();
    for (const r of exchanges) byPref.set(r.priority, [...(byPref.get(r.priority) ?? []), r.exchange]);
    names = [...byPref.keys()].sort((a, b) => a - b).flatMap((p) => shuffle([...new Set(byPref.get(p)!)]));
  }
  const hosts: NextHopHost[] = [];
  let lastError: string | null = null;
  for (const name of names) {
    const r = await lookupHost(name, resolver);
    if (r.addresses.length > 0) hosts.push({ name, addresses: r.addresses });
    else lastError = r.error ?? lastError;
  }
  if (hosts.length > 0) return { ok: true, hosts };
  if (exchanges.length === 0 && lastError === null) {
    return { ok: false, permanent: true, reply: localReply(550, '5.1.2', `Domain ${domain} has no MX and no address records`) };
  }
  return { ok: false, permanent: false, reply: localReply(451, '4.4.3', `No address found for the MX hosts of ${domain}${lastError ? ` (${lastError})` : ''}`) };
}

/** Addresses for an smtp:// target host. */
export async function lookupTargetHost(host: string, resolver: DnsResolver): Promise<HostLookup> {
  const r = await lookupHost(host, resolver);
  if (r.addresses.length > 0) return { ok: true, hosts: [{ name: host, addresses: r.addresses }] };
  return { ok: false, permanent: false, reply: localReply(451, '4.4.3', `No address found for next hop ${host}${r.error ? ` (${r.error})` : ''}`) };
}

/** A `lookup` for node:net/https that asks `resolver` (never the system's behind the worker's back). */
export function resolverLookup(resolver: DnsResolver): LookupFunction {
  return (hostname, options, callback) => {
    lookupHost(hostname, resolver).then(
      (r) => {
        const first = r.addresses[0];
        if (!first) return callback(Object.assign(new Error(`no address for ${hostname}${r.error ? ` (${r.error})` : ''}`), { code: r.error ?? 'ENOTFOUND' }), '', 4);
        const family = first.includes(':') ? 6 : 4;
        // With autoSelectFamily (Node 20's default) net asks for all addresses; LookupFunction's type only has the single-address form.
        if (options.all) (callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, r.addresses.map((a) => ({ address: a, family: a.includes(':') ? 6 : 4 })));
        else callback(null, first, family);
      },
      (err: Error) => callback(err as NodeJS.ErrnoException, '', 4),
    );
  };
}
