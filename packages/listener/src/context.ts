// What every connection of one listener process shares. A reload makes a new context (new
// policy and certificates, everything else shared); a connection keeps the one it began with.
import type { MailAddress, MessageFilter } from '@mailgw/mail';
import type { DirectoryLookup, RecipientVerification, IpBlockListSource, IpListAnswer, IpListQuery, Policy, ReputationRecorder } from '@mailgw/policy';
import type { MailStore } from '@mailgw/queue';
import type { Logger } from 'pino';
import type { BackPressureGauge } from './back-pressure-monitor.js';
import type { ConnectionGate } from './connection-limits.js';
import type { ListenerObserver } from './observer.js';
import type { ProtocolLogs } from './protocol-log.js';
import type { RateCounter } from './rate-counter.js';
import type { TlsMaterial } from './tls-material.js';

export interface ListenerContext {
  readonly policy: Policy;
  readonly store: MailStore;
  readonly rate: RateCounter;
  /** Per-client-IP AUTH failure backoff, counted in `rate` (shared through Redis when it is the Redis counter). */
  readonly logger: Logger;
  /** Certificates by connector name (connectors that offer TLS). */
  readonly tls: ReadonlyMap<string, TlsMaterial>;
  /** maxInboundConnection and the per-source limits: counted in this process, or by the supervisor. */
  readonly limits: ConnectionGate;
  readonly protocolLogs: ProtocolLogs;
  /** Open connections, for shutdown. */
  readonly connections: Set<{ drain(): void; forceClose(): void }>;
  /** Shutting down: finish transactions in progress, accept nothing new. */
  draining: boolean;
  /** Told about connections, messages, refusals and AUTH failures (metrics, tracking). */
  readonly observer?: ListenerObserver;
  /** Message filters (sender authentication, rspamd, milters), in the order they were configured. */
  readonly filters?: readonly MessageFilter[];
  /** Backstop for a filter's answer at the end of DATA. */
  readonly filterTimeoutMs?: number;
  /** Quarantined messages go here instead of to their recipients. */
  readonly quarantineMailbox?: MailAddress | null;
  /** DNS list lookups of connection filtering (started at connect, judged at RCPT); none: no lookups, nobody is block-listed. */
  readonly ipLists?: IpListLookup;
  /** The IP Block List (sender reputation's and the admins' entries), judged at RCPT; none: nobody is on it. */
  readonly ipBlockList?: IpBlockListSource;
  /** Sender reputation's counting of what rated sessions sent; none: nothing is counted. */
  readonly reputation?: ReputationRecorder;
  /** The directory (gateway.yaml directory): AUTH of names no local user has, and recipients: { directory: true }. */
  readonly directory?: DirectoryLookup;
  /** Asks recipients' next hops (gateway.yaml recipientVerification); none: nobody is verified. */
  readonly recipientVerification?: RecipientVerification;
  /** Back pressure from the queue's Redis memory, asked at MAIL FROM; none: always normal. */
  readonly backPressure?: BackPressureGauge;
}

/** Answers every query (a failed or slow one as "timeout"/"error"); never rejects. */
export type IpListLookup = (queries: readonly IpListQuery[]) => Promise<IpListAnswer[]>;

/** The lookups' answers, a lookup that threw anyway being an "error" answer for each query: nothing is left to reject unawaited when the client goes. */
export function askIpLists(lookup: IpListLookup, queries: readonly IpListQuery[]): Promise<IpListAnswer[]> {
  return lookup(queries).catch((e: unknown): IpListAnswer[] => queries.map((q) => ({ ...q, result: 'error', detail: e instanceof Error ? e.message : String(e) })));
}
