// What every connection of one listener process shares.
import type { Policy } from '@mailgw/policy';
import type { MailStore } from '@mailgw/queue';
import type { Logger } from 'pino';
import type { ConnectionLimits } from './connection-limits.js';
import type { ProtocolLogs } from './protocol-log.js';
import type { RateCounter } from './rate-counter.js';
import type { TlsMaterial } from './tls-material.js';

export interface ListenerContext {
  readonly policy: Policy;
  readonly store: MailStore;
  readonly rate: RateCounter;
  readonly logger: Logger;
  /** Certificates by connector name (connectors that offer TLS). */
  readonly tls: ReadonlyMap<string, TlsMaterial>;
  readonly limits: ConnectionLimits;
  readonly protocolLogs: ProtocolLogs;
  /** Open connections, for shutdown. */
  readonly connections: Set<{ drain(): void; forceClose(): void }>;
  /** Shutting down: finish transactions in progress, accept nothing new. */
  draining: boolean;
}
