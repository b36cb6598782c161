// Connection filtering's lookups: one A query per DNS list, all at once, each bounded by the
// resolver's timeout. What the answers mean is the policy's (connectionFilter).
import type { IpListAnswer, IpListQuery } from '@mailgw/policy';
import { DnsError, type DnsResolver } from './dns.js';

/** Answers every query; never rejects (a failed lookup is a "timeout" or "error" answer: the provider is skipped). */
export function ipListLookup(resolver: DnsResolver): (queries: readonly IpListQuery[]) => Promise<IpListAnswer[]> {
  return (queries) =>
    Promise.all(
      queries.map(async (q): Promise<IpListAnswer> => {
        try {
          return { ...q, result: 'answer', addresses: await resolver.resolve(q.name, 'A') };
        } catch (e) {
          const code = e instanceof DnsError ? e.code : String((e as { code?: unknown })?.code ?? '');
          if (code === 'ENOTFOUND' || code === 'ENODATA') return { ...q, result: 'none' };
          if (code === 'ETIMEOUT') return { ...q, result: 'timeout' };
          return { ...q, result: 'error', detail: e instanceof Error ? e.message : String(e) };
        }
      }),
    );
}
