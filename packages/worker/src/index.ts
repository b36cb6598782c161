// @mailgw/worker: delivery workers. They take messages off the queue the listeners fill and
// deliver them by route (maildir, SMTP/LMTP, MX), retry on Exchange's schedule, send DSNs,
// and write the message tracking log.
export { startWorkers, type StartWorkersOptions, type WorkerHandle } from './workers.js';
export { jobRetention } from './retention.js';
export { lookupMx, lookupHost, lookupTargetHost, literalAddress, systemResolver, type DnsResolver, type MxRecord, type NextHopHost, type HostLookup } from './dns-resolver.js';
export { deliverToMaildir, mailboxDir, mailboxName, uniqueName, type MaildirMessage } from './maildir.js';
export { DestinationLeases, type Lease, type DestinationLeasesOptions } from './destination-leases.js';
export { DEFAULT_TIMEOUTS, type SmtpTimeouts } from './smtp-session.js';
export type { DeliverySummary } from './processor.js';
export { OutboundDkim, type DkimCounters, type HopSigner } from './dkim-signing.js';
export { daneMismatch, queryDnssecStatus, queryTlsa, usableTlsa, type DnssecStatus, type TlsaAnswer, type TlsaRecord } from './dane.js';
export { MtaSts, httpsStsFetch, type StsFetch, type StsLookup } from './mta-sts.js';
export { TlsReporter, TlsReportRecorder, countsFromFields, previousUtcDay, reportDays, scheduleTlsReports, tlsReportSettings, type TlsReport, type TlsReportDelivery, type TlsReportSendResult, type TlsReportSettings, type TlsReporterOptions } from './tls-report.js';
export { abandonWorker } from './library-overrides.js';
export { PROBE_TIMEOUTS, RecipientVerifier, parseCached, type CachedVerification, type ProbeAnswer, type RecipientVerifierOptions } from './recipient-verifier.js';
export { readDomainSecureSending, type DomainSecureSending } from './domain-security.js';
