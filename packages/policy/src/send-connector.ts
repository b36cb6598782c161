// Which send connector a recipient leaves through, and why. Exchange's rule: the address space
// that matches the recipient domain most specifically wins, then the lowest cost. mailgw adds
// sender-dependent routing: at equal recipient specificity an address space limited to the
// sender's domain beats an unrestricted one. Routes (gateway.yaml) are shorthand connectors;
// among them only the first match in file order is a candidate, as routes always worked. Pure.
import type { AddressSpace, DomainPattern, RouteSecret, SendConnector } from '@mailgw/config';
import { localReply, type Reply } from '@mailgw/mail';

export interface RouteQuery {
  /** Normalised (ASCII, lower case). */
  readonly recipientDomain: string;
  /** The sender's domain, normalised; null for the null sender (<>). */
  readonly senderDomain: string | null;
}

export type ConnectorChoiceCode = 'only-candidate' | 'more-specific' | 'sender-restricted' | 'lower-cost' | 'connector-before-route' | 'file-order' | 'no-match';

export type ConnectorChoice<S extends RouteSecret = string> =
  | {
      readonly connector: SendConnector<S>;
      readonly addressSpace: AddressSpace;
      /** For admins: which address space matched and why it beat the runner-up. */
      readonly reason: string;
      readonly reasonCode: ConnectorChoiceCode;
    }
  | { readonly connector: null; readonly addressSpace: null; readonly reason: string; readonly reasonCode: 'no-match' };

/** How specifically a pattern matches a domain (higher is more specific); -1: no match. */
export function patternSpecificity(p: DomainPattern, domain: string): number {
  if (!p.wildcard) return p.domain === domain ? 3 + 2 * p.domain.length : -1;
  if (p.domain === '') return 0;
  return domain === p.domain || domain.endsWith('.' + p.domain) ? 2 + 2 * p.domain.length : -1;
}

interface Candidate<S extends RouteSecret> {
  readonly connector: SendConnector<S>;
  readonly space: AddressSpace;
  readonly order: number;
  readonly recipient: number;
  /** -1: unrestricted; else the specificity of the matching sender pattern. */
  readonly sender: number;
}

/** The address space of `c` that matches best, or null. */
function bestSpace<S extends RouteSecret>(c: SendConnector<S>, q: RouteQuery, order: number): Candidate<S> | null {
  let best: Candidate<S> | null = null;
  for (const space of c.addressSpaces) {
    const recipient = patternSpecificity(space.domain, q.recipientDomain);
    if (recipient < 0) continue;
    let sender = -1;
    if (space.senderDomains) {
      if (q.senderDomain === null) continue;
      sender = Math.max(...space.senderDomains.map((p) => patternSpecificity(p, q.senderDomain!)));
      if (sender < 0) continue;
    }
    const cand = { connector: c, space, order, recipient, sender };
    if (!best || compare(cand, best) < 0) best = cand;
  }
  return best;
}

/** Negative when `a` wins over `b`, and the rule that decided. */
function decide<S extends RouteSecret>(a: Candidate<S>, b: Candidate<S>): { cmp: number; code: ConnectorChoiceCode } {
  if (a.recipient !== b.recipient) return { cmp: b.recipient - a.recipient, code: 'more-specific' };
  if (a.sender !== b.sender) return { cmp: b.sender - a.sender, code: 'sender-restricted' };
  if (a.space.cost !== b.space.cost) return { cmp: a.space.cost - b.space.cost, code: 'lower-cost' };
  const ra = a.connector.origin.kind === 'route' ? 1 : 0;
  const rb = b.connector.origin.kind === 'route' ? 1 : 0;
  if (ra !== rb) return { cmp: ra - rb, code: 'connector-before-route' };
  return { cmp: a.order - b.order, code: 'file-order' };
}

function compare<S extends RouteSecret>(a: Candidate<S>, b: Candidate<S>): number {
  return decide(a, b).cmp;
}

/** How replies and policies name a connector: a route by its name, a file connector as such. */
export function connectorSource(c: SendConnector<RouteSecret>): string {
  return c.origin.kind === 'route' ? c.name : `send connector "${c.name}"`;
}

/** A message larger than the connector's maxMessageSize is not sent through it: 552 5.3.4 (Exchange). */
export function sendSizeCheck(c: SendConnector<RouteSecret>, bytes: number): Reply | null {
  const max = c.maxMessageSize;
  return max !== null && bytes > max ? localReply(552, '5.3.4', `Message size exceeds the maximum message size of ${connectorSource(c)} (${max} bytes)`) : null;
}

/** The connector's messageRateLimit is reached for this minute: the message waits untried. */
export function sendRateReply(c: SendConnector<RouteSecret>, perMinute: number): Reply {
  return localReply(451, '4.4.5', `Message rate limit of send connector "${c.name}" (${perMinute} per minute) reached; retrying shortly`);
}

export function connectorLabel(c: SendConnector<RouteSecret>): string {
  return c.origin.kind === 'route' ? `${c.name} (route in ${c.origin.file})` : `send connector "${c.name}" (${c.origin.file})`;
}

const WHY: Record<Exclude<ConnectorChoiceCode, 'only-candidate' | 'no-match'>, string> = {
  'more-specific': 'its address space matches the recipient domain more specifically',
  'sender-restricted': "its address space is limited to the sender's domain",
  'lower-cost': 'its address space has the lower cost',
  'connector-before-route': 'at equal specificity and cost a send connector comes before a route',
  'file-order': 'at equal specificity and cost the first in file order wins',
};

/** The send connector for one recipient (and sender), with the reason. */
export function selectSendConnector<S extends RouteSecret>(connectors: readonly SendConnector<S>[], q: RouteQuery): ConnectorChoice<S> {
  const candidates: Candidate<S>[] = [];
  let routeSeen = false;
  connectors.forEach((c, order) => {
    if (!c.enabled) return;
    if (c.origin.kind === 'route' && routeSeen) return;
    const cand = bestSpace(c, q, order);
    if (!cand) return;
    if (c.origin.kind === 'route') routeSeen = true;
    candidates.push(cand);
  });
  const who = `${q.recipientDomain}${q.senderDomain === null ? ' from the null sender' : ` from ${q.senderDomain}`}`;
  if (candidates.length === 0) {
    return { connector: null, addressSpace: null, reasonCode: 'no-match', reason: `no enabled send connector or route has an address space matching ${who}` };
  }
  candidates.sort(compare);
  const [win, next] = [candidates[0]!, candidates[1]];
  const matched = `address space "${win.space.text}" of ${connectorLabel(win.connector)} matches ${who}`;
  if (!next) return { connector: win.connector, addressSpace: win.space, reasonCode: 'only-candidate', reason: `${matched}; no other connector matches` };
  const d = decide(win, next);
  const code = d.code as Exclude<ConnectorChoiceCode, 'only-candidate' | 'no-match'>;
  return {
    connector: win.connector,
    addressSpace: win.space,
    reasonCode: code,
    reason: `${matched}; it beats ${connectorLabel(next.connector)} ("${next.space.text}"): ${WHY[code]}`,
  };
}
