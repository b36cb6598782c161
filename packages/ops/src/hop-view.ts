// Next-hop queues as Exchange's Queue Viewer shows them, computed from the jobs: each pending
// recipient belongs to the hop the worker would use on its next attempt (the same route table
// and grouping), recipients no route matches to "Unreachable". Pure.
import type { RouteSecret } from '@mailgw/config';
import { formatReply } from '@mailgw/mail';
import type { DeliveryJob, DeliveryState, MessageRecord } from '@mailgw/queue';
import { groupByHop, type RouteTable } from '@mailgw/queue';

/** Exchange's queue for recipients no route matches. */
export const UNREACHABLE = 'Unreachable';

/** A queued message as read from BullMQ (the queue's one reader of the record). */
export type QueuedMessage = MessageRecord;

/** Exchange's queue status: Active (a delivery runs), Ready, Retry (last attempt failed), Suspended. */
export type HopStatus = 'Active' | 'Ready' | 'Retry' | 'Suspended';

export interface HopRow {
  /** Hop key, as `mailgw queue suspend|retry --hop` take it. */
  readonly hop: string;
  /** The send connector (or route, "routes[i]") the hop belongs to; null for Unreachable or an empty suspended hop. */
  readonly connector: string | null;
  readonly status: HopStatus;
  readonly messages: number;
  readonly recipients: number;
  /** Arrival of the oldest message (ms since epoch). */
  readonly oldest: number | null;
  /** When the next attempt is due (ms since epoch); null while one runs. */
  readonly nextRetry: number | null;
  /** Most recent reply among its pending recipients. */
  readonly lastError: string | null;
  readonly queueIds: readonly string[];
}

/** Hop key of each pending recipient (by index into rcptTo); `connectorOf` collects each hop's connector name. */
export function pendingHops(job: DeliveryJob, delivery: DeliveryState, routes: RouteTable<RouteSecret>, connectorOf?: Map<string, string>): Map<number, string> {
  const pending = delivery.recipients.flatMap((r, i) => (r.status === 'pending' ? [i] : []));
  const { hops, unroutable } = groupByHop(
    pending.map((i) => ({ ...job.rcptTo[i]!, index: i })),
    routes,
    job.mailFrom.sender?.domain ?? null,
  );
  const out = new Map<number, string>();
  for (const h of hops) {
    connectorOf?.set(h.key, h.connector.name);
    for (const r of h.recipients) out.set(r.index, h.key);
  }
  for (const u of unroutable) out.set(u.index, UNREACHABLE);
  return out;
}

/** When a message is tried next: now unless it waits in the delayed set. */
export function nextAttempt(m: QueuedMessage, now: number): number | null {
  if (m.state === 'active') return null;
  if (m.state === 'delayed') return m.delivery?.nextAttemptAt ?? now;
  return now;
}

interface Acc {
  messages: Set<string>;
  recipients: number;
  oldest: number | null;
  nextRetry: number | null;
  active: boolean;
  lastError: { at: number; text: string } | null;
}

/** One row per next hop with pending recipients (and one per suspended hop, even when empty). */
export function hopRows(messages: readonly QueuedMessage[], routes: RouteTable<RouteSecret>, suspended: ReadonlySet<string>, now: number): HopRow[] {
  const acc = new Map<string, Acc>();
  const connectorOf = new Map<string, string>();
  const get = (hop: string) => {
    let a = acc.get(hop);
    if (!a) {
      a = { messages: new Set(), recipients: 0, oldest: null, nextRetry: null, active: false, lastError: null };
      acc.set(hop, a);
    }
    return a;
  };
  for (const m of messages) {
    if (!m.job || !m.delivery || m.state === 'failed' || m.state === 'completed') continue;
    const received = Date.parse(m.job.receivedAt);
    const next = nextAttempt(m, now);
    for (const [i, hop] of pendingHops(m.job, m.delivery, routes, connectorOf)) {
      const a = get(hop);
      a.messages.add(m.id);
      a.recipients++;
      a.oldest = a.oldest === null ? received : Math.min(a.oldest, received);
      if (m.state === 'active') a.active = true;
      if (next !== null) a.nextRetry = a.nextRetry === null ? next : Math.min(a.nextRetry, next);
      const r = m.delivery.recipients[i]!;
      if (r.reply && (a.lastError === null || (r.lastAttemptAt ?? 0) > a.lastError.at)) a.lastError = { at: r.lastAttemptAt ?? 0, text: formatReply(r.reply) };
    }
  }
  for (const hop of suspended) get(hop);
  return [...acc]
    .map(([hop, a]): HopRow => ({
      hop,
      connector: connectorOf.get(hop) ?? null,
      status: suspended.has(hop) ? 'Suspended' : a.active ? 'Active' : a.lastError ? 'Retry' : 'Ready',
      messages: a.messages.size,
      recipients: a.recipients,
      oldest: a.oldest,
      nextRetry: a.active ? null : a.nextRetry,
      lastError: a.lastError?.text ?? null,
      queueIds: [...a.messages],
    }))
    .sort((x, y) => (x.oldest ?? Infinity) - (y.oldest ?? Infinity) || x.hop.localeCompare(y.hop));
}
