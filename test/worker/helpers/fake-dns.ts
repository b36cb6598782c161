/** An in-memory DNS for mx routes: tests never query real DNS. */
import type { DnsResolver, DnssecStatus, MxRecord, TlsaAnswer } from '@mailgw/worker';

const dnsError = (code: string, name: string) => Object.assign(new Error(`${code} ${name}`), { code });

export interface FakeZone {
  mx?: Record<string, MxRecord[] | 'NXDOMAIN' | 'SERVFAIL'>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  /** TXT records, each a list of strings (MTA-STS `_mta-sts.<domain>`). */
  txt?: Record<string, string[][]>;
  /** TLSA answers (`secure`: as if DNSSEC-authenticated, the AD bit), or SERVFAIL. */
  tlsa?: Record<string, TlsaAnswer | 'SERVFAIL'>;
  /** CNAMEs (alias → target): address lookups follow them, as a recursive resolver does. */
  cname?: Record<string, string>;
  /** Names that exist (for ENODATA instead of ENOTFOUND). */
  exists?: string[];
  /**
   * RRsets that are not DNSSEC-authenticated, as "MX fabrikam.test", "A mx.fabrikam.test" or
   * "CNAME mx.fabrikam.test" (every other one is; an address lookup through an unsigned CNAME
   * is not authenticated), or whose status lookup fails ("SERVFAIL MX fabrikam.test").
   */
  insecure?: string[];
}

export class FakeResolver implements DnsResolver {
  readonly queries: string[] = [];
  constructor(private readonly zone: FakeZone) {}

  private known(name: string): boolean {
    return !!(this.zone.exists?.includes(name) || this.zone.mx?.[name] || this.zone.a?.[name] || this.zone.aaaa?.[name] || this.zone.txt?.[name] || this.zone.cname?.[name]);
  }

  /** The names from `name` along its CNAMEs to where they end. */
  private chain(name: string): string[] {
    const names = [name];
    while (this.zone.cname?.[names.at(-1)!] && names.length < 10) names.push(this.zone.cname[names.at(-1)!]!);
    return names;
  }

  async resolveMx(name: string): Promise<MxRecord[]> {
    this.queries.push(`MX ${name}`);
    const r = this.zone.mx?.[name];
    if (r === 'NXDOMAIN') throw dnsError('ENOTFOUND', name);
    if (r === 'SERVFAIL') throw dnsError('ESERVFAIL', name);
    if (r) return r;
    throw dnsError(this.known(name) ? 'ENODATA' : 'ENOTFOUND', name);
  }

  async resolve4(name: string): Promise<string[]> {
    this.queries.push(`A ${name}`);
    const target = this.chain(name).at(-1)!;
    const r = this.zone.a?.[target];
    if (r) return r;
    throw dnsError(this.known(target) ? 'ENODATA' : 'ENOTFOUND', name);
  }

  async resolve6(name: string): Promise<string[]> {
    this.queries.push(`AAAA ${name}`);
    const target = this.chain(name).at(-1)!;
    const r = this.zone.aaaa?.[target];
    if (r) return r;
    throw dnsError(this.known(target) ? 'ENODATA' : 'ENOTFOUND', name);
  }

  async resolveTxt(name: string): Promise<string[][]> {
    this.queries.push(`TXT ${name}`);
    const r = this.zone.txt?.[name];
    if (r) return r;
    throw dnsError(this.known(name) ? 'ENODATA' : 'ENOTFOUND', name);
  }

  async dnssecStatus(name: string, type: 'MX' | 'A' | 'AAAA'): Promise<DnssecStatus> {
    this.queries.push(`DNSSEC ${type} ${name}`);
    if (this.zone.insecure?.includes(`SERVFAIL ${type} ${name}`)) throw dnsError('ESERVFAIL', name);
    const names = this.chain(name);
    const owner = names.at(-1)!;
    // Authenticated only if every CNAME on the way and the records at its end are.
    const secure = names.slice(0, -1).every((n) => !this.zone.insecure?.includes(`CNAME ${n}`)) && !this.zone.insecure?.includes(`${type} ${owner}`);
    return { secure, owner };
  }

  async resolveTlsa(name: string): Promise<TlsaAnswer> {
    this.queries.push(`TLSA ${name}`);
    const r = this.zone.tlsa?.[name];
    if (r === 'SERVFAIL') throw dnsError('ESERVFAIL', name);
    if (r) return r;
    throw dnsError(this.known(name) ? 'ENODATA' : 'ENOTFOUND', name);
  }
}
