// @mailgw/worker: delivery workers. They take messages off the queue the listeners fill and
// deliver them by route (maildir, SMTP/LMTP, MX), retry on Exchange's schedule, send DSNs,
// and write the message tracking log.
export { startWorkers, type StartWorkersOptions, type WorkerHandle } from './workers.js';
export { jobRetention } from './retention.js';
export { RouteTable, groupByHop, hopKey, type Hop, type HopRecipient, type RecipientInput, type Unroutable } from './routing.js';
export { splitAddress, type SplitAddress } from './address.js';
export { lookupMx, lookupHost, lookupTargetHost, literalAddress, systemResolver, type DnsResolver, type MxRecord, type NextHopHost, type HostLookup } from './dns-resolver.js';
export { parseReply, localReply, type Reply } from './reply.js';
export { retryDelay, nextAttemptAt, expiresAt, type DeferralKind, type QueueConfig } from './retry-schedule.js';
export { deliverToMaildir, mailboxDir, mailboxName, uniqueName, type MaildirMessage } from './maildir.js';
export { composeDsn, rfc5322Date, type DsnAction, type DsnInput, type DsnRecipient } from './dsn.js';
export { dueDsns, wants, type DueDsn } from './dsn-policy.js';
export { DsnSender, type DsnSenderOptions } from './dsn-sender.js';
export { DestinationLeases, type Lease, type DestinationLeasesOptions } from './destination-leases.js';
export { SuspendedHops } from './suspended-hops.js';
export { readState, initialState, type DeliveryState, type RecipientState, type DsnKind } from './delivery-state.js';
export { DEFAULT_TIMEOUTS, type SmtpTimeouts } from './smtp-session.js';
export { openTrackingLog, trackingDir, trackingFileName, type TrackingEvent, type TrackingEventId, type TrackingLog, type TrackingLogOptions } from './tracking-log.js';
export type { DeliverySummary } from './processor.js';
