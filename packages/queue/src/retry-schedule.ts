// When to try again (Exchange's message intervals): the first transientRetryAttempts retries
// come transientRetryInterval apart; after that, messageRetryInterval for 4xx replies and
// outboundConnectionFailureRetryInterval when the next hop could not be reached. Never past
// the message's expiry: the last attempt happens at expiry, and then it fails.
import type { GatewayConfig } from '@mailgw/config';

export type QueueConfig = GatewayConfig['queue'];
export type DeferralKind = 'connection' | 'reply';

/** Delay after the `deferrals`-th deferral (1 = the first failed attempt). */
export function retryDelay(deferrals: number, kind: DeferralKind, q: QueueConfig): number {
  if (deferrals <= q.transientRetryAttempts) return q.transientRetryInterval;
  return kind === 'connection' ? q.outboundConnectionFailureRetryInterval : q.messageRetryInterval;
}

export function expiresAt(receivedAt: number, q: QueueConfig): number {
  return receivedAt + q.messageExpirationTimeout;
}

/** The time of the next attempt, clamped to the expiry. */
export function nextAttemptAt(now: number, receivedAt: number, deferrals: number, kind: DeferralKind, q: QueueConfig): number {
  return Math.min(now + retryDelay(deferrals, kind, q), expiresAt(receivedAt, q));
}
