// What `mailgw start/listen` builds from gateway.yaml: one resolver (node:dns on the configured
// servers, cached in the queue's Redis), the connection filter's lookups and the sender
// authentication filter (when enabled).
import type { DnsConfig, IpRange, SenderAuthenticationConfig } from '@mailgw/config';
import type { MessageOnlyFilter } from '@mailgw/mail';
import type { IpListAnswer, IpListQuery } from '@mailgw/policy';
import { connectRedis, keySpace, type KeySpace } from '@mailgw/queue';
import type { Redis } from 'ioredis';
import { cachingResolver, nodeUpstream, type CacheStore, type DnsResolver } from './dns.js';
import { ipListLookup } from './ip-lists.js';
import { senderAuthenticationFilter } from './sender-auth.js';

export interface AntispamSettings {
  readonly dns: DnsConfig;
  readonly senderAuthentication: SenderAuthenticationConfig;
  /** The organisation's own SMTP servers (InternalSMTPServers): SPF is judged for the host before them. */
  readonly internalSMTPServers?: readonly IpRange[];
}

export interface Antispam {
  readonly resolver: DnsResolver;
  readonly ipLists: (queries: readonly IpListQuery[]) => Promise<IpListAnswer[]>;
  /** The sender authentication filter, or none when gateway senderAuthentication.enabled is false. */
  readonly filters: readonly MessageOnlyFilter[];
}

export interface AntispamOptions {
  /** The settings now (a function: a reload's actions apply to the next message; servers and cache times need a restart). */
  readonly settings: () => AntispamSettings;
  /** The Redis the cache lives in (the queue's), with the queue's key space; null: no cache. */
  readonly cache: { store: CacheStore; keys: Pick<KeySpace, 'dnsAnswer'> } | null;
  readonly onCacheError?: (err: unknown) => void;
}

export function createAntispam(o: AntispamOptions): Antispam {
  const first = o.settings();
  const d = first.dns;
  const resolver = cachingResolver(nodeUpstream({ servers: d.servers, timeoutMs: d.timeout }), o.cache, {
    minTtlMs: d.minTtl,
    maxTtlMs: d.maxTtl,
    negativeTtlMs: d.negativeTtl,
    defaultTtlMs: d.txtTtl,
    ...(o.onCacheError ? { onCacheError: o.onCacheError } : {}),
  });
  const filters = first.senderAuthentication.enabled
    ? [senderAuthenticationFilter({ resolver, config: () => o.settings().senderAuthentication, lookupBudget: () => o.settings().dns.lookupBudget, internalServers: () => o.settings().internalSMTPServers ?? [] })]
    : [];
  return { resolver, ipLists: ipListLookup(resolver), filters };
}

/**
 * The anti-spam agents' own Redis connection (the queue's Redis, its key space): the DNS cache,
 * sender reputation's profiles and the IP Block List. Commands fail fast rather than wait:
 * none of them may hold up an SMTP reply.
 */
export function openDnsCache(o: { url: string; prefix: string; onError?: (err: Error) => void }): { store: CacheStore; redis: Redis; keys: KeySpace; close(): Promise<void> } {
  const redis = connectRedis(o.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    connectionName: `mailgw:dns:${process.pid}`,
  });
  redis.on('error', (err: Error) => o.onError?.(err));
  return {
    store: redis,
    redis,
    keys: keySpace(o.prefix),
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
