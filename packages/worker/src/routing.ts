// Routing: the first route whose domains match a recipient's domain gives its next hop, and
// the recipients of one message are grouped per next hop (one delivery per hop). Pure.
import { matchDomain, type DomainPattern } from '@mailgw/config';
import { formatAddress, type EnvelopeRecipient } from '@mailgw/mail';
import { localReply, type Reply } from '@mailgw/mail';
import { describeTarget, parseTarget, type RouteConfig, type Target } from './target.js';

export interface CompiledRoute {
  readonly index: number;
  readonly domains: readonly DomainPattern[];
  readonly target: Target;
  /** describeTarget(target) */
  readonly text: string;
}

export class RouteTable {
  readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly RouteConfig[], baseDir: string, env: NodeJS.ProcessEnv = process.env) {
    this.routes = routes.map((r, index) => {
      const target = parseTarget(r, baseDir, env);
      return { index, domains: r.domains, target, text: describeTarget(target) };
    });
  }

  /** First route (in file order) with a pattern matching the normalised `domain`. */
  match(domain: string): CompiledRoute | null {
    for (const r of this.routes) if (matchDomain(domain, r.domains) >= 0) return r;
    return null;
  }
}

export interface HopRecipient {
  /** Index into the job's rcptTo. */
  readonly index: number;
  /** local@domain with the domain in ASCII. */
  readonly address: string;
  readonly local: string;
  readonly domain: string;
  readonly notify?: readonly string[] | undefined;
  readonly orcpt?: string | undefined;
}

export interface Hop {
  /**
   * Identity of the next hop: every recipient with the same key is delivered together, and
   * connections to it are shared and counted under it ("maildir:/var/mail", "smtp://10.0.0.5:25",
   * "mx:example.com": MX delivery is per recipient domain).
   */
  readonly key: string;
  readonly target: Target;
  /** For mx: the recipient domain whose MX hosts are looked up. */
  readonly domain: string | null;
  readonly recipients: HopRecipient[];
}

/** A recipient of the job (parts as parsed at RCPT) and its index in the job's rcptTo. */
export interface RecipientInput extends EnvelopeRecipient {
  readonly index: number;
}

export interface Unroutable {
  readonly index: number;
  readonly reply: Reply;
  /** false: retried (no route may appear after a config change); true: bounced. */
  readonly permanent: boolean;
}

export function hopKey(target: Target, domain: string): string {
  return target.kind === 'mx' ? `mx:${domain}` : describeTarget(target);
}

/** Groups recipients per next hop, in order of first appearance. */
export function groupByHop(recipients: readonly RecipientInput[], table: RouteTable): { hops: Hop[]; unroutable: Unroutable[] } {
  const hops = new Map<string, Hop>();
  const unroutable: Unroutable[] = [];
  for (const r of recipients) {
    const a = { local: r.local, domain: r.domain, address: formatAddress(r) };
    const route = table.match(a.domain);
    if (!route) {
      // Exchange's "Unreachable" queue: kept and retried until it expires.
      unroutable.push({ index: r.index, reply: localReply(451, '4.4.4', `No route for domain ${a.domain} in gateway.yaml routes`), permanent: false });
      continue;
    }
    const key = hopKey(route.target, a.domain);
    let hop = hops.get(key);
    if (!hop) {
      hop = { key, target: route.target, domain: route.target.kind === 'mx' ? a.domain : null, recipients: [] };
      hops.set(key, hop);
    }
    hop.recipients.push({ index: r.index, address: a.address, local: a.local, domain: a.domain, notify: r.notify, orcpt: r.orcpt });
  }
  return { hops: [...hops.values()], unroutable };
}
