// Next hops: the first route whose domains match a recipient's domain gives its next hop, and
// the recipients of one message are grouped per next hop (one delivery per hop). Exchange's
// queues are per next hop, so the queue owns this: the worker delivers per hop, `mailgw queue`
// and the dashboard show and suspend the same hops. Pure.
import { describeTarget, type RouteSecret, type RouteTarget, type SendConnector } from '@mailgw/config';
import { formatAddress, localReply, type EnvelopeRecipient, type Reply } from '@mailgw/mail';
import { selectSendConnector, type ConnectorChoice } from '@mailgw/policy';

/**
 * The outbound routing table of one configuration (GatewayConfig.sendConnectors: the send
 * connectors of send-connectors.d/, then the routes as shorthand connectors), as the config
 * layer compiled it: nothing here parses or can fail. `S` is RouteSecret for tools that only
 * need hop keys.
 */
export class RouteTable<S extends RouteSecret = string> {
  constructor(readonly connectors: readonly SendConnector<S>[]) {}

  /** The connector for a recipient domain and sender domain (null: the null sender), with the reason. */
  select(recipientDomain: string, senderDomain: string | null = null): ConnectorChoice<S> {
    return selectSendConnector(this.connectors, { recipientDomain, senderDomain });
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
  /** The send connector (or route, "routes[i]") this hop belongs to. */
  readonly connector: SendConnector<S>;
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

/**
 * A route's hop keys are its target ("smtp://10.0.0.5:25", "mx:example.com"), as before send
 * connectors; a send connector's are "send:<name>" (its smart hosts) or "send:<name>:mx:<domain>".
 */
export function hopKey(target: RouteTarget<RouteSecret>, domain: string, connector?: SendConnector<RouteSecret>): string {
  if (connector?.origin.kind === 'file') return target.kind === 'mx' ? `send:${connector.name}:mx:${domain}` : `send:${connector.name}`;
  return target.kind === 'mx' ? `mx:${domain}` : describeTarget(target);
}

/** Groups recipients per next hop, in order of first appearance; `senderDomain` null: the null sender. */
export function groupByHop<S extends RouteSecret>(recipients: readonly RecipientInput[], table: RouteTable<S>, senderDomain: string | null = null): { hops: Hop<S>[]; unroutable: Unroutable[] } {
  const hops = new Map<string, Hop<S>>();
  const unroutable: Unroutable[] = [];
  for (const r of recipients) {
    const a = { local: r.local, domain: r.domain, address: formatAddress(r) };
    const route = table.select(a.domain, senderDomain).connector;
    if (!route) {
      // Exchange's "Unreachable" queue: kept and retried until it expires.
      unroutable.push({ index: r.index, reply: localReply(451, '4.4.4', `No send connector or route for domain ${a.domain}`), permanent: false });
      continue;
    }
    const key = hopKey(route.target, a.domain, route);
    let hop = hops.get(key);
    if (!hop) {
      hop = { key, connector: route, target: route.target, domain: route.target.kind === 'mx' ? a.domain : null, recipients: [] };
      hops.set(key, hop);
    }
    hop.recipients.push({ index: r.index, address: a.address, local: a.local, domain: a.domain, notify: r.notify, orcpt: r.orcpt });
  }
  return { hops: [...hops.values()], unroutable };
}
