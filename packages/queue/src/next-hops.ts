// Next hops: the first route whose domains match a recipient's domain gives its next hop, and
// the recipients of one message are grouped per next hop (one delivery per hop). Exchange's
// queues are per next hop, so the queue owns this: the worker delivers per hop, `mailgw queue`
// and the dashboard show and suspend the same hops. Pure.
import { describeTarget, matchRoute, type CompiledRoute, type RouteSecret, type RouteTarget } from '@mailgw/config';
import { formatAddress, localReply, type EnvelopeRecipient, type Reply } from '@mailgw/mail';

/**
 * The routes of one configuration, as the config layer compiled them (GatewayConfig.routes):
 * nothing here parses or can fail. `S` is RouteSecret for tools that only need hop keys.
 */
export class RouteTable<S extends RouteSecret = string> {
  constructor(readonly routes: readonly CompiledRoute<S>[]) {}

  /** First route (in file order) with a pattern matching the normalised `domain`. */
  match(domain: string): CompiledRoute<S> | null {
    return matchRoute(this.routes, domain);
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

export interface Hop<S extends RouteSecret = string> {
  /**
   * Identity of the next hop: every recipient with the same key is delivered together, and
   * connections to it are shared and counted under it ("maildir:/var/mail", "smtp://10.0.0.5:25",
   * "mx:example.com": MX delivery is per recipient domain).
   */
  readonly key: string;
  readonly target: RouteTarget<S>;
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

export function hopKey(target: RouteTarget<RouteSecret>, domain: string): string {
  return target.kind === 'mx' ? `mx:${domain}` : describeTarget(target);
}

/** Groups recipients per next hop, in order of first appearance. */
export function groupByHop<S extends RouteSecret>(recipients: readonly RecipientInput[], table: RouteTable<S>): { hops: Hop<S>[]; unroutable: Unroutable[] } {
  const hops = new Map<string, Hop<S>>();
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
