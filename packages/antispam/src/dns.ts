// The one DNS resolver of the anti-spam agents (block lists, SPF, DKIM, DMARC, ARC): a name
// and a record type in, records out, every lookup bounded by a timeout, answers cached in
// Redis for their TTL, and failures told apart: "no such name" (NXDOMAIN, ENOTFOUND) and "no
// such record" (NODATA, ENODATA) are answers; a timeout, SERVFAIL or an exhausted per-message
// budget are temporary errors (SPF/DKIM/DMARC temperror). The error codes are node:dns's,
// which is what mailauth expects from its `resolver`.
import { Resolver } from 'node:dns/promises';
import type { KeySpace } from '@mailgw/queue';

export type RrType = 'A' | 'AAAA' | 'TXT' | 'MX' | 'PTR';

export interface MxAnswer {
  readonly exchange: string;
  readonly priority: number;
}

/** Records by type, as node:dns returns them (TXT: the strings of each record). */
export interface DnsRecords {
  A: string[];
  AAAA: string[];
  TXT: string[][];
  MX: MxAnswer[];
  PTR: string[];
}

export type DnsErrorCode = 'ENOTFOUND' | 'ENODATA' | 'ETIMEOUT' | 'ESERVFAIL' | 'EBUDGET';

export class DnsError extends Error {
  readonly code: DnsErrorCode;
  /** A temporary failure (temperror), not an answer. */
  readonly temporary: boolean;
  constructor(code: DnsErrorCode, name: string, rrtype: string, detail?: string) {
    super(`${rrtype} ${name}: ${code}${detail ? ` (${detail})` : ''}`);
    this.name = 'DnsError';
    this.code = code;
    this.temporary = code !== 'ENOTFOUND' && code !== 'ENODATA';
  }
}

export interface DnsResolver {
  resolve<T extends RrType>(name: string, rrtype: T): Promise<DnsRecords[T]>;
}

/** What an upstream answers: the records and, when the protocol told, their TTL. */
export interface UpstreamAnswer<T extends RrType> {
  readonly records: DnsRecords[T];
  readonly ttlMs: number | null;
}

export interface Upstream {
  query<T extends RrType>(name: string, rrtype: T): Promise<UpstreamAnswer<T>>;
}

const ANSWER_CODES = new Set(['ENOTFOUND', 'ENODATA']);
const TYPES: ReadonlySet<string> = new Set(['A', 'AAAA', 'TXT', 'MX', 'PTR']);

function asDnsError(e: unknown, name: string, rrtype: string): DnsError {
  if (e instanceof DnsError) return e;
  const code = String((e as { code?: unknown })?.code ?? '');
  if (ANSWER_CODES.has(code)) return new DnsError(code as DnsErrorCode, name, rrtype);
  if (code === 'ETIMEOUT') return new DnsError('ETIMEOUT', name, rrtype);
  return new DnsError('ESERVFAIL', name, rrtype, code || (e instanceof Error ? e.message : String(e)));
}

export interface NodeUpstreamOptions {
  /** "IP:port" / "[IPv6]:port"; empty: the system's resolvers. */
  readonly servers?: readonly string[];
  /** Longest wait for one answer. */
  readonly timeoutMs: number;
}

/**
 * node:dns/promises with one try per query and a hard bound: an answer later than timeoutMs
 * is ETIMEOUT whatever c-ares does. TTLs come with A and AAAA answers only (node:dns gives
 * none for TXT, MX and PTR).
 */
export function nodeUpstream(o: NodeUpstreamOptions): Upstream {
  const resolver = new Resolver({ timeout: o.timeoutMs, tries: 1 });
  if (o.servers && o.servers.length > 0) resolver.setServers([...o.servers]);
  const ask = async <T extends RrType>(relative: string, rrtype: T): Promise<UpstreamAnswer<T>> => {
    // Absolute: no search domains of resolv.conf are tried after an NXDOMAIN.
    const name = `${relative}.`;
    switch (rrtype) {
      case 'A':
      case 'AAAA': {
        const rows = rrtype === 'A' ? await resolver.resolve4(name, { ttl: true }) : await resolver.resolve6(name, { ttl: true });
        const ttl = rows.length ? Math.min(...rows.map((r) => r.ttl)) * 1000 : null;
        return { records: rows.map((r) => r.address) as DnsRecords[T], ttlMs: ttl };
      }
      case 'TXT':
        return { records: (await resolver.resolveTxt(name)) as DnsRecords[T], ttlMs: null };
      case 'MX':
        return { records: (await resolver.resolveMx(name)) as DnsRecords[T], ttlMs: null };
      default:
        return { records: (await resolver.resolvePtr(name)) as DnsRecords[T], ttlMs: null };
    }
  };
  return {
    async query(name, rrtype) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DnsError('ETIMEOUT', name, rrtype, `no answer within ${o.timeoutMs} ms`)), o.timeoutMs + 50);
      });
      try {
        return await Promise.race([ask(name, rrtype), late]);
      } catch (e) {
        throw asDnsError(e, name, rrtype);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The part of an ioredis client the cache uses. */
export interface CacheStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, px: 'PX', ms: number): Promise<unknown>;
}

export interface CacheOptions {
  readonly minTtlMs: number;
  readonly maxTtlMs: number;
  /** NXDOMAIN / NODATA (0: not cached). */
  readonly negativeTtlMs: number;
  /** Answers without a TTL (TXT, MX, PTR from node:dns). */
  readonly defaultTtlMs: number;
  /** Told when Redis cannot be used (the lookup goes on without the cache). */
  readonly onCacheError?: (err: unknown) => void;
}

type Cached = { r: unknown } | { e: 'ENOTFOUND' | 'ENODATA' };

/**
 * The gateway's resolver: answers from Redis while they live, else from upstream (one query
 * per name and type in flight in this process), stored for their TTL clamped to
 * [minTtl, maxTtl]; NXDOMAIN/NODATA for negativeTtl; temporary failures never.
 */
export function cachingResolver(upstream: Upstream, cache: { store: CacheStore; keys: Pick<KeySpace, 'dnsAnswer'> } | null, o: CacheOptions): DnsResolver {
  const inFlight = new Map<string, Promise<unknown>>();
  const lookup = async <T extends RrType>(name: string, rrtype: T): Promise<DnsRecords[T]> => {
    const key = cache?.keys.dnsAnswer(rrtype, name);
    if (cache && key) {
      try {
        const hit = await cache.store.get(key);
        if (hit !== null) {
          const c = JSON.parse(hit) as Cached;
          if ('e' in c) throw new DnsError(c.e, name, rrtype, 'cached');
          return c.r as DnsRecords[T];
        }
      } catch (e) {
        if (e instanceof DnsError) throw e;
        o.onCacheError?.(e);
      }
    }
    const put = (value: Cached, ms: number) => {
      if (!cache || !key || ms <= 0) return;
      cache.store.set(key, JSON.stringify(value), 'PX', Math.round(ms)).catch((e: unknown) => o.onCacheError?.(e));
    };
    try {
      const a = await upstream.query(name, rrtype);
      put({ r: a.records }, Math.min(o.maxTtlMs, Math.max(o.minTtlMs, a.ttlMs ?? o.defaultTtlMs)));
      return a.records;
    } catch (e) {
      const err = asDnsError(e, name, rrtype);
      if (!err.temporary) put({ e: err.code as 'ENOTFOUND' | 'ENODATA' }, o.negativeTtlMs);
      throw err;
    }
  };
  return {
    resolve<T extends RrType>(name: string, rrtype: T): Promise<DnsRecords[T]> {
      const n = name.toLowerCase().replace(/\.$/, '');
      if (!TYPES.has(rrtype)) return Promise.reject(new DnsError('ENODATA', n, rrtype, 'record type not supported'));
      const k = `${rrtype} ${n}`;
      const running = inFlight.get(k);
      if (running) return running as Promise<DnsRecords[T]>;
      const p = lookup(n, rrtype).finally(() => inFlight.delete(k));
      inFlight.set(k, p);
      return p;
    },
  };
}

/** A resolver that allows `max` lookups (cached or not), then fails each further one as EBUDGET (temporary). */
export function budgeted(resolver: DnsResolver, max: number): DnsResolver & { readonly used: () => number } {
  let used = 0;
  return {
    used: () => used,
    resolve<T extends RrType>(name: string, rrtype: T): Promise<DnsRecords[T]> {
      used++;
      if (used > max) return Promise.reject(new DnsError('EBUDGET', name, rrtype, `more than ${max} DNS lookups for one message`));
      return resolver.resolve(name, rrtype);
    },
  };
}

/** The resolver in the shape mailauth's `resolver` option takes. */
export function mailauthResolver(resolver: DnsResolver): (name: string, rrtype: string) => Promise<never> {
  return (name, rrtype) => {
    const t = rrtype.toUpperCase();
    if (!TYPES.has(t)) return Promise.reject(new DnsError('ENODATA', name, t, 'record type not supported'));
    return resolver.resolve(name, t as RrType) as Promise<never>;
  };
}
