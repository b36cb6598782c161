// MTA-STS (RFC 8461) for MX delivery, the I/O shell around @mailgw/policy's parsers: the
// `_mta-sts.<domain>` TXT lookup through the worker's resolver, the policy fetched over HTTPS
// (certificate validated, no redirects) from mta-sts.<domain>, and a cache in Redis kept for the
// policy's max_age and refreshed when the TXT id changes. A policy that cannot be fetched or
// parsed counts as no policy (§3.3), unless a cached one is still valid (§5.1).
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { parseStsPolicy, parseStsRecord, STS_MAX_POLICY_BYTES, type StsPolicy } from '@mailgw/policy';
import { lookupTxt, resolverLookup, type DnsResolver } from './dns-resolver.js';

/** Fetches the policy text of a domain; rejects on any failure (network, TLS, HTTP status). */
export type StsFetch = (domain: string) => Promise<string>;

export type StsLookup =
  | { readonly kind: 'policy'; readonly domain: string; readonly id: string; readonly policy: StsPolicy; readonly from: 'cache' | 'fetch' }
  | {
      readonly kind: 'none';
      readonly domain: string;
      readonly reason: string;
      /** The domain publishes a policy (TXT id) that could not be fetched or read: a TLS-RPT failure (RFC 8460 §4.3.2). */
      readonly failure?: 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';
    };

interface Cached {
  readonly id: string;
  readonly policy: StsPolicy;
  readonly fetchedAt: number;
}

const codeOf = (err: unknown): string => String((err as { code?: unknown })?.code ?? '');

/**
 * The default fetch: GET https://mta-sts.<domain>[:port]/.well-known/mta-sts.txt, the host
 * looked up through `resolver` (never the system's behind the worker's back), the certificate
 * checked against the system CAs plus `extraCAs` and the name mta-sts.<domain>. Only a 200 with
 * text/plain counts; redirects are not followed (RFC 8461 §3.3).
 */
export function httpsStsFetch(o: { resolver: DnsResolver; extraCAs?: readonly string[]; port?: number; timeoutMs?: number }): StsFetch {
  const lookup = resolverLookup(o.resolver);
  return (domain) =>
    new Promise<string>((resolve, reject) => {
      const host = `mta-sts.${domain}`;
      const req = request(
        {
          host,
          servername: host,
          port: o.port ?? 443,
          path: '/.well-known/mta-sts.txt',
          method: 'GET',
          lookup,
          ...(o.extraCAs && o.extraCAs.length > 0 ? { ca: [...rootCertificates, ...o.extraCAs] } : {}),
          rejectUnauthorized: true,
          timeout: o.timeoutMs ?? 10_000,
          headers: { 'user-agent': 'mailgw' },
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            return reject(new Error(`HTTP ${res.statusCode} from https://${host}/.well-known/mta-sts.txt`));
          }
          const type = String(res.headers['content-type'] ?? '');
          if (!/^text\/plain\b/i.test(type)) {
            res.resume();
            return reject(new Error(`https://${host}/.well-known/mta-sts.txt is ${type || 'without a content type'}, not text/plain`));
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > STS_MAX_POLICY_BYTES) req.destroy(new Error(`policy larger than ${STS_MAX_POLICY_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timeout fetching https://${host}/.well-known/mta-sts.txt`)));
      req.on('error', reject);
      req.end();
    });
}

export interface MtaStsOptions {
  readonly redis: Redis;
  /** Redis key prefix (`{mailgw}`): policies are kept at `<prefix>:mta-sts:<domain>`. */
  readonly prefix: string;
  readonly resolver: DnsResolver;
  readonly fetch: StsFetch;
  readonly logger?: Logger;
}

/** MTA-STS policies of recipient domains, cached in Redis across workers. */
export class MtaSts {
  private readonly inFlight = new Map<string, Promise<StsLookup>>();
  constructor(private readonly o: MtaStsOptions) {}

  private key(domain: string): string {
    return `${this.o.prefix}:mta-sts:${domain}`;
  }

  /** The policy that applies to mail for `domain` now; never rejects. One lookup per domain at a time in this process. */
  policyFor(domain: string): Promise<StsLookup> {
    const d = domain.toLowerCase();
    let p = this.inFlight.get(d);
    if (!p) {
      p = this.lookup(d).finally(() => this.inFlight.delete(d));
      this.inFlight.set(d, p);
    }
    return p;
  }

  private async readCache(domain: string): Promise<Cached | null> {
    try {
      const raw = await this.o.redis.get(this.key(domain));
      if (!raw) return null;
      const c = JSON.parse(raw) as Cached;
      return typeof c.id === 'string' && c.policy && Array.isArray(c.policy.mx) ? c : null;
    } catch (err) {
      this.o.logger?.warn({ domain, err: (err as Error).message }, 'MTA-STS cache unreadable; looking the policy up again');
      return null;
    }
  }

  private async lookup(domain: string): Promise<StsLookup> {
    const log = this.o.logger;
    const [txt, cached] = await Promise.all([this.txtId(domain), this.readCache(domain)]);
    const fromCache = (c: Cached): StsLookup => ({ kind: 'policy', domain, id: c.id, policy: c.policy, from: 'cache' });
    if (txt.id === null) {
      // No (valid) record now: a policy cached earlier stays in force until its max_age (§5.1).
      if (cached) return fromCache(cached);
      if (txt.error) log?.warn({ domain, err: txt.error }, 'MTA-STS TXT record unusable: no policy applied');
      return { kind: 'none', domain, reason: txt.error ?? 'no _mta-sts TXT record' };
    }
    if (cached && cached.id === txt.id) return fromCache(cached);
    let text: string;
    try {
      text = await this.o.fetch(domain);
    } catch (err) {
      log?.warn({ domain, id: txt.id, err: (err as Error).message, cached: !!cached }, cached ? 'MTA-STS policy fetch failed; the cached policy stays in force' : 'MTA-STS policy fetch failed: treated as no policy (RFC 8461 §3.3)');
      const message = (err as Error).message;
      const webpki = /certificate|self[- ]signed|unable to verify|altname|CERT_/i.test(`${message} ${codeOf(err)}`);
      return cached ? fromCache(cached) : { kind: 'none', domain, reason: `policy fetch failed: ${message}`, failure: webpki ? 'sts-webpki-invalid' : 'sts-policy-fetch-error' };
    }
    const parsed = parseStsPolicy(text);
    if (!parsed.ok) {
      log?.warn({ domain, id: txt.id, err: parsed.error, cached: !!cached }, cached ? 'MTA-STS policy malformed; the cached policy stays in force' : 'MTA-STS policy malformed: treated as no policy (RFC 8461 §3.3)');
      return cached ? fromCache(cached) : { kind: 'none', domain, reason: `policy malformed: ${parsed.error}`, failure: 'sts-policy-invalid' };
    }
    const entry: Cached = { id: txt.id, policy: parsed.value, fetchedAt: Date.now() };
    try {
      if (parsed.value.maxAge > 0) await this.o.redis.set(this.key(domain), JSON.stringify(entry), 'PX', parsed.value.maxAge * 1000);
      else await this.o.redis.del(this.key(domain));
    } catch (err) {
      log?.warn({ domain, err: (err as Error).message }, 'MTA-STS policy could not be cached in Redis');
    }
    log?.info({ domain, id: txt.id, mode: parsed.value.mode, mx: parsed.value.mx, maxAge: parsed.value.maxAge }, 'MTA-STS policy fetched');
    return { kind: 'policy', domain, id: txt.id, policy: parsed.value, from: 'fetch' };
  }

  private async txtId(domain: string): Promise<{ id: string | null; error: string | null }> {
    const txt = await lookupTxt(this.o.resolver, `_mta-sts.${domain}`);
    if (txt.error) return { id: null, error: txt.error };
    if (txt.records.length === 0) return { id: null, error: null };
    const r = parseStsRecord(txt.records);
    return r.ok ? { id: r.value, error: null } : { id: null, error: `_mta-sts.${domain}: ${r.error}` };
  }

}
