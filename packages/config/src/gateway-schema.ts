// gateway.yaml: what is true for the whole organisation (accepted domains, mailboxes, users,
// global deny lists, routes, Redis). Every key declared once with its default.
import { z } from 'zod';
import { parseDomainPattern, type DomainPattern } from './domain.js';
import { parseRouteTo, type ParsedRouteTo } from './routes.js';
import { processesSchema } from './processes-schema.js';
import { ACCEPTED_DOMAIN_TYPES } from './vocabulary.js';
import { parseSize } from './units.js';
import { antispamGatewayShape } from './antispam-schema.js';
import { milterListSchema, rspamdSchema } from './content-filter-schema.js';
import { attachmentFilterSchema } from './attachment-filter-schema.js';
import { addressRewriteEntriesSchema } from './address-rewrite-schema.js';
import { transportRulesSchema } from './transport-rule-schema.js';
import { directorySchema } from './directory-schema.js';
import { recipientVerificationSchema } from './recipient-verification-schema.js';
import { dkimSchema } from './dkim-schema.js';
import { remoteDomainsSchema } from './remote-domain-schema.js';
import { journalRulesSchema } from './journal-schema.js';
import { bounceVerificationSchema } from './bounce-verification-schema.js';
import { binding, ciEnum, countOrUnlimited, durationMs, envName, hostname, intIn, ipRange, listOf, mailboxAddress, secretSources, sizeBytes, sizeOrUnlimited } from './zod-helpers.js';

export { mailboxAddress };

const domainPattern = z.string().transform((s, ctx): DomainPattern => {
  const r = parseDomainPattern(s);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  }
  return r.value;
});

// `tlsReports`: SMTP TLS Reporting (RFC 8460) of mail mailgw sends. Off unless present. With it,
// workers count TLS sessions per recipient domain where MTA-STS or DANE applied, and once a day
// (after UTC midnight) one process sends each domain's aggregate report to the rua of its
// `_smtp._tls` TXT record and/or writes it to a directory.
export const TLS_REPORT_KEYS = ['enabled', 'organizationName', 'contactInfo', 'submitter', 'sender', 'directory', 'sendReports'] as const;

export const tlsReportsSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Count sessions and produce reports (default true once tlsReports is present; false keeps the settings but turns it off).'),
    organizationName: z.string().trim().min(1).max(200).describe('The report\'s organization-name: who sends it ("Contoso Ltd").'),
    contactInfo: z.string().trim().min(1).max(200).describe('The report\'s contact-info: an address or URL the domain\'s admins can write to (postmaster@contoso.com).'),
    submitter: hostname.optional().describe('The domain named in report file names and the TLS-Report-Submitter header field. Default: the default accepted domain.'),
    sender: mailboxAddress.optional().describe('From of reports sent to mailto: rua addresses (they are queued as mailgw\'s own mail, DKIM-signed when dkim covers its domain). Default: tlsrpt-noreply@<default accepted domain>.'),
    directory: z.string().min(1).optional().describe('Also write every report (<submitter>!<domain>!<begin>!<end>!<id>.json.gz) to this directory, relative to gateway.yaml.'),
    sendReports: z.boolean().default(true).describe('Send each report to the rua its domain publishes (https: POST as application/tlsrpt+gzip, mailto: a multipart/report message). false: only the directory.'),
  });
export type TlsReportsConfig = z.output<typeof tlsReportsSchema>;

const fileRef = z.strictObject({ file: z.string().min(1).describe('Path relative to gateway.yaml.') });

export const PHC_SCRYPT = /^\$scrypt\$ln=\d+,r=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;

export const userSchema = z.strictObject({
  name: z.string().trim().min(1).max(256).describe('Login name for AUTH PLAIN/LOGIN.'),
  passwordHash: z.string().regex(PHC_SCRYPT, 'must be a hash from `mailgw hash-password` ($scrypt$ln=…,r=…,p=…$salt$hash)'),
  addresses: listOf(mailboxAddress).default([]).describe('Addresses the user may send as (MAIL FROM); also mailboxes for recipient lookup.'),
  recipientRateLimit: countOrUnlimited(1, 10_000_000).optional().describe("This user's own throttlingPolicy.recipientRateLimit (recipients in 24 hours, or unlimited), e.g. for a newsletter account."),
});
export type UserConfig = z.output<typeof userSchema>;

const acceptedDomain = z.strictObject({
  domain: domainPattern.describe('contoso.com, or *.contoso.com for it and all subdomains.'),
  type: ciEnum(ACCEPTED_DOMAIN_TYPES).default('Authoritative'),
  default: z.boolean().default(false).describe('The domain DSNs come from (postmaster@).'),
});

const routeTo = z.string().transform((s, ctx): ParsedRouteTo => {
  const r = parseRouteTo(s);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  }
  return r.value;
});
const routeAuth = z
  .strictObject({
    user: z.string().min(1).max(256).describe('User name for AUTH at the next hop.'),
    pass: z.string().max(1024).optional().describe('Password, written here (prefer passEnv).'),
    passEnv: envName.optional().describe('Name of the environment variable holding the password.'),
  })
  .refine((a) => (a.pass === undefined) !== (a.passEnv === undefined), 'give exactly one of pass or passEnv')
  .describe('SMTP AUTH at the next hop (smtp://, smtps://, lmtp:// targets): { user, pass } or { user, passEnv }.');
const route = z
  .strictObject({
    domains: listOf(domainPattern).refine((a) => a.length > 0, 'list at least one domain, or "*"').describe('Recipient domains this route serves: contoso.com, *.contoso.com (it and its subdomains), or * (everything else).'),
    to: routeTo.describe('Next hop: maildir:<path> (local mailboxes, path relative to gateway.yaml), smtp://host:port (STARTTLS when offered), smtps://host:port (TLS from the start), lmtp://host:port, or mx (direct delivery by MX lookup, opportunistic STARTTLS).'),
    requireTLS: z.boolean().default(false).describe('smtp://, lmtp:// and mx: refuse to send unless STARTTLS succeeds (the message is retried).'),
    verifyTLS: z.boolean().default(false).describe("Check the next hop's certificate and host name; without it TLS encrypts but does not authenticate (as Postfix's `encrypt` level)."),
    auth: routeAuth.optional(),
  })
  .superRefine((r, ctx) => {
    if (!r.to) return; // `to` itself is wrong: reported there
    if (r.to.kind !== 'smtp' && r.auth) ctx.addIssue({ code: 'custom', path: ['auth'], message: 'auth applies to smtp://, smtps:// and lmtp:// targets only' });
    if (!((r.to.kind === 'smtp' && r.to.scheme !== 'smtps') || r.to.kind === 'mx') && r.requireTLS) ctx.addIssue({ code: 'custom', path: ['requireTLS'], message: 'requireTLS applies to smtp://, lmtp:// and mx targets (smtps:// is always TLS; maildir: is local)' });
  });
export type RouteConfig = z.output<typeof route>;

const QUEUE_DEFAULTS = {
  transientRetryAttempts: 6,
  transientRetryInterval: 5 * 60_000,
  messageRetryInterval: 15 * 60_000,
  outboundConnectionFailureRetryInterval: 10 * 60_000,
  delayNotificationTimeout: 4 * 3_600_000,
  messageExpirationTimeout: 2 * 86_400_000,
  // Exchange's MaxPerDomainOutboundConnections and Postfix's default_destination_concurrency_limit
  // are both 20. With 100 deliveries at once, 10 made the rest wait for a session to one slow
  // smart host and go back to the queue as "destination busy".
  maxConnectionsPerDestination: 20,
  // Postfix's default_process_limit: deliveries to slow next hops (hundreds of ms each) must
  // not cap a worker at a few dozen messages a second.
  workerConcurrency: 100,
  workerMessageBytes: 256 * 1024 * 1024,
  completedJobRetention: 86_400_000,
  completedJobMaxCount: 10_000,
  failedJobRetention: 7 * 86_400_000,
  failedJobMaxCount: 10_000,
  lockDuration: 30_000,
  stalledInterval: 30_000,
  maxStalledCount: 2,
  drainTimeout: 30_000,
} as const;

const queueSchema = z
  .strictObject({
    transientRetryAttempts: intIn(0, 100).default(QUEUE_DEFAULTS.transientRetryAttempts).describe('Retries after a 4xx reply or a failed connection, transientRetryInterval apart, before the slower intervals apply (Exchange: 6).'),
    transientRetryInterval: durationMs(1).default(QUEUE_DEFAULTS.transientRetryInterval).describe('Interval of those first retries (Exchange: 5m).'),
    messageRetryInterval: durationMs(1).default(QUEUE_DEFAULTS.messageRetryInterval).describe('Interval of later retries after a 4xx reply (Exchange: 15m).'),
    outboundConnectionFailureRetryInterval: durationMs(1).default(QUEUE_DEFAULTS.outboundConnectionFailureRetryInterval).describe('Interval of later retries when the next hop could not be reached (Exchange: 10m).'),
    delayNotificationTimeout: durationMs().default(QUEUE_DEFAULTS.delayNotificationTimeout).describe('After this long still queued, the sender gets one delay DSN (Exchange: 4h).'),
    messageExpirationTimeout: durationMs(1).default(QUEUE_DEFAULTS.messageExpirationTimeout).describe('After this long undelivered a recipient fails with a DSN (Exchange: 2d).'),
    maxConnectionsPerDestination: intIn(1, 1000).default(QUEUE_DEFAULTS.maxConnectionsPerDestination).describe('Simultaneous SMTP/LMTP connections to one next hop, counted across all workers through Redis.'),
    workerConcurrency: intIn(1, 1000).default(QUEUE_DEFAULTS.workerConcurrency).describe('Messages one worker process delivers at once (mailgw worker --concurrency overrides).'),
    workerMessageBytes: sizeBytes(64 * 1024, 64 * 1024 ** 3).default(QUEUE_DEFAULTS.workerMessageBytes).describe('Message bytes one worker process holds in memory for its deliveries at once (default 256MB): a delivery that would go over waits for others to finish; a message larger than this is delivered alone.'),
    completedJobRetention: durationMs().default(QUEUE_DEFAULTS.completedJobRetention).describe('How long finished (delivered or bounced) jobs stay in Redis for inspection.'),
    completedJobMaxCount: intIn(0, 10_000_000).default(QUEUE_DEFAULTS.completedJobMaxCount).describe('At most this many finished jobs are kept.'),
    failedJobRetention: durationMs().default(QUEUE_DEFAULTS.failedJobRetention).describe('How long jobs that could not be processed at all (invalid, poison) stay in Redis.'),
    failedJobMaxCount: intIn(0, 10_000_000).default(QUEUE_DEFAULTS.failedJobMaxCount).describe('At most this many such jobs are kept.'),
    lockDuration: durationMs(100).default(QUEUE_DEFAULTS.lockDuration).describe("A worker's claim on a message it delivers, renewed while it lives; a dead worker's claim lapses after this."),
    stalledInterval: durationMs(100).default(QUEUE_DEFAULTS.stalledInterval).describe('How often workers look for messages whose worker died, to deliver them again.'),
    maxStalledCount: intIn(1, 100).default(QUEUE_DEFAULTS.maxStalledCount).describe('A message that kills its worker this many times is set aside (failed) instead of retried: a poison message.'),
    shards: intIn(1, 64).optional().describe('Number of queue shards: BullMQ queues with their own hash tag, so on a Redis Cluster the queue spreads over the masters. Unset: 1 on a single Redis; on a Cluster two per master at the first start (never fewer than the stored map has). On a Cluster each shard\'s tag is placed on a master and stored in Redis (<prefix>:shards); elsewhere {mailgw}, {mailgw-1}, … from redis.prefix. Listeners spread messages over them; every worker consumes all. Lowering it strands mail on the dropped shards.'),
    drainTimeout: durationMs().default(QUEUE_DEFAULTS.drainTimeout).describe('On SIGTERM, how long a worker waits for deliveries in progress before it exits (unfinished ones are retried by other workers).'),
  })
  .default(QUEUE_DEFAULTS);
export type QueueConfig = z.output<typeof queueSchema>;

const httpSchema = z
  .strictObject({
    listen: binding.prefault('127.0.0.1:9025').describe('IP:port of the HTTP server (/metrics, /healthz, dashboard). Keep it on loopback or a management network.'),
    token: z.string().min(16, 'use at least 16 characters').max(256).optional().describe('Secret for the dashboard and its API (open /?token=… once, or send Authorization: Bearer …). Without it the dashboard is off; /metrics and /healthz need no token.'),
    tokenEnv: envName.optional().describe('Environment variable holding that secret (instead of token).'),
    tokenFile: z.string().min(1).optional().describe('File holding that secret (first line; relative to gateway.yaml), e.g. a systemd credential (instead of token).'),
    allowWrite: z.boolean().default(false).describe('Let the dashboard retry, suspend and resume next hops; without it the dashboard is read-only.'),
  })
  .superRefine((h, ctx) => void secretSources(h, 'token', ctx))
  .describe('The operations HTTP server: Prometheus /metrics, /healthz, and the dashboard.');
export type HttpConfig = z.output<typeof httpSchema>;

/** redis.maxMemory: auto, unlimited, or a size of at least 16mb. */
const maxMemorySetting = z.union([z.number(), z.string()]).transform((v, ctx): 'auto' | 'unlimited' | number => {
  if (v === 'auto' || v === 'unlimited') return v;
  const r = parseSize(v);
  const min = 16 * 1024 ** 2;
  if (!r.ok || r.value < min) {
    ctx.addIssue({ code: 'custom', message: `must be auto, unlimited or a size of at least 16mb such as 4gb${r.ok ? `: ${JSON.stringify(v)} is less` : `: ${r.error}`}` });
    return z.NEVER;
  }
  return r.value;
});

const diskPressureSchema = z
  .strictObject({
    mediumPercent: intIn(1, 100).default(90).describe('Use of the filesystem under dataDir (as df counts it; the embedded Redis\' append-only file lives there) at which mail from anonymous senders is refused.'),
    highPercent: intIn(1, 100).default(95).describe('Disk use (%) at which all new mail is refused: a Redis with appendfsync always exits when it cannot write its append-only file.'),
  })
  .refine((d) => d.mediumPercent < d.highPercent, { message: 'mediumPercent must be below highPercent', path: ['mediumPercent'] })
  .default({ mediumPercent: 90, highPercent: 95 })
  .describe('{ mediumPercent, highPercent }: back pressure on the disk under dataDir (defaults 90 and 95).');

const backPressureSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Refuse new mail (452 4.3.1) while the queue\'s Redis is short of memory.'),
    mediumPercent: intIn(1, 100).default(80).describe('Redis memory use, in % of its maxmemory (of the machine\'s memory when it has none), at which mail from anonymous senders is refused; authenticated and externally secured sessions go on.'),
    highPercent: intIn(1, 100).default(90).describe('Redis memory use (%) at which all new mail is refused. Each level is left 5 points below its threshold.'),
    checkInterval: durationMs(50, 60_000).default(2000).describe('How often each listener process reads the memory use of the queue\'s Redis (INFO memory and INFO persistence) and the disk use under dataDir.'),
    disk: diskPressureSchema,
  })
  .refine((b) => b.mediumPercent < b.highPercent, { message: 'mediumPercent must be below highPercent', path: ['mediumPercent'] })
  .default({ enabled: true, mediumPercent: 80, highPercent: 90, checkInterval: 2000, disk: { mediumPercent: 90, highPercent: 95 } });
export type BackPressureConfig = z.output<typeof backPressureSchema>;

const authBackoffSchema = z
  .strictObject({
    failures: intIn(0, 1_000_000).default(10).describe('Failed AUTH attempts from one client address (any connection, any listener) after which further AUTH is answered 454 4.7.0 without checking the password; 0 turns the backoff off.'),
    window: durationMs(1000).default(15 * 60_000).describe('The sliding window those failures are counted in; AUTH works again once the oldest leave it.'),
  })
  .default({ failures: 10, window: 15 * 60_000 });
export type AuthBackoffConfig = z.output<typeof authBackoffSchema>;

/** Exchange's defaults (Set-TransportService): tracking 30 days / 1000 MB, receive and send protocol logs 30 days / 250 MB each. */
export const LOG_RETENTION_DEFAULTS = {
  messageTrackingLogMaxAge: 30 * 86_400_000,
  messageTrackingLogMaxDirectorySize: 1000 * 1024 ** 2,
  receiveProtocolLogMaxAge: 30 * 86_400_000,
  receiveProtocolLogMaxDirectorySize: 250 * 1024 ** 2,
  sendProtocolLogMaxAge: 30 * 86_400_000,
  sendProtocolLogMaxDirectorySize: 250 * 1024 ** 2,
  messageTrackingStreamMaxLength: 1_000_000,
  messageTrackingStreamMaxAge: 7 * 86_400_000,
  agentLogEnabled: true,
  agentLogMaxAge: 7 * 86_400_000,
  agentLogMaxDirectorySize: 250 * 1024 ** 2,
  agentLogStreamMaxLength: 1_000_000,
  agentLogStreamMaxAge: 7 * 86_400_000,
} as const;

const logsSchema = z
  .strictObject({
    messageTrackingLogMaxAge: durationMs(0, 10 * 365 * 86_400_000).default(LOG_RETENTION_DEFAULTS.messageTrackingLogMaxAge).describe('Message tracking log files (dataDir/logs/tracking) last modified longer ago than this are deleted (Exchange: 30d). 0 = no age limit.'),
    messageTrackingLogMaxDirectorySize: sizeBytes(0, 1024 ** 4).default(LOG_RETENTION_DEFAULTS.messageTrackingLogMaxDirectorySize).describe('While the tracking log directory is larger than this, its oldest files are deleted (Exchange: 1000MB). 0 = no size limit.'),
    receiveProtocolLogMaxAge: durationMs(0, 10 * 365 * 86_400_000).default(LOG_RETENTION_DEFAULTS.receiveProtocolLogMaxAge).describe('Receive protocol log files (dataDir/logs/protocol/<connector>) last modified longer ago than this are deleted (Exchange: 30d). 0 = no age limit.'),
    receiveProtocolLogMaxDirectorySize: sizeBytes(0, 1024 ** 4).default(LOG_RETENTION_DEFAULTS.receiveProtocolLogMaxDirectorySize).describe('While the protocol log directory (all connectors together) is larger than this, its oldest files are deleted (Exchange: 250MB). 0 = no size limit.'),
    sendProtocolLogMaxAge: durationMs(0, 10 * 365 * 86_400_000).default(LOG_RETENTION_DEFAULTS.sendProtocolLogMaxAge).describe('Send protocol log files (dataDir/logs/smtp-send/<send connector>, written for connectors with protocolLoggingLevel: Verbose) last modified longer ago than this are deleted (Exchange: 30d). 0 = no age limit.'),
    sendProtocolLogMaxDirectorySize: sizeBytes(0, 1024 ** 4).default(LOG_RETENTION_DEFAULTS.sendProtocolLogMaxDirectorySize).describe('While the send protocol log directory (all send connectors together) is larger than this, its oldest files are deleted (Exchange: 250MB). 0 = no size limit.'),
    messageTrackingStreamMaxLength: intIn(0, 100_000_000).default(LOG_RETENTION_DEFAULTS.messageTrackingStreamMaxLength).describe('Tracking events kept in Redis per UTC day (a stream <prefix>:tracking:<yyyymmdd>, written by every process, read by mailgw track and the dashboard anywhere); about this many, oldest trimmed first. 0 = no copy in Redis (the files only).'),
    messageTrackingStreamMaxAge: durationMs(60_000, 366 * 86_400_000).default(LOG_RETENTION_DEFAULTS.messageTrackingStreamMaxAge).describe('How long a day\'s tracking stream stays in Redis after its last event (default 7d); the files keep messageTrackingLogMaxAge.'),
    agentLogEnabled: z.boolean().default(LOG_RETENTION_DEFAULTS.agentLogEnabled).describe('Write the anti-spam agent log (dataDir/logs/agent/AGENTLOG<yyyymmdd>.LOG: what connection filtering, sender and recipient filtering, sender authentication, the content filters, transport rules and sender reputation did; read by mailgw agent-log) (Exchange -AgentLogEnabled, on by default).'),
    agentLogMaxAge: durationMs(0, 10 * 365 * 86_400_000).default(LOG_RETENTION_DEFAULTS.agentLogMaxAge).describe('Agent log files last modified longer ago than this are deleted (Exchange -AgentLogMaxAge: 7d). 0 = no age limit.'),
    agentLogMaxDirectorySize: sizeBytes(0, 1024 ** 4).default(LOG_RETENTION_DEFAULTS.agentLogMaxDirectorySize).describe('While the agent log directory is larger than this, its oldest files are deleted (Exchange -AgentLogMaxDirectorySize: 250MB). 0 = no size limit.'),
    agentLogStreamMaxLength: intIn(0, 100_000_000).default(LOG_RETENTION_DEFAULTS.agentLogStreamMaxLength).describe('Agent log lines kept in Redis per UTC day (a stream <prefix>:agentlog:<yyyymmdd>, written by every listener process, read by mailgw agent-log anywhere); about this many, oldest trimmed first. 0 = no copy in Redis (each machine\'s files only).'),
    agentLogStreamMaxAge: durationMs(60_000, 366 * 86_400_000).default(LOG_RETENTION_DEFAULTS.agentLogStreamMaxAge).describe('How long a day\'s agent log stream stays in Redis after its last line (default 7d).'),
  })
  .default(LOG_RETENTION_DEFAULTS);
export type LogsConfig = z.output<typeof logsSchema>;

/**
 * Exchange's New-SystemMessage -DsnCode -Internal -Text: the administrator's own words in the
 * delivery status notifications for one enhanced status code, for senders inside the
 * organisation or outside it. The text is HTML as in Exchange (at most 512 characters); the
 * notification's plain-text part shows it as text.
 */
const systemMessage = z.strictObject({
  dsnCode: z
    .string()
    .trim()
    .regex(/^[45]\.\d{1,3}\.\d{1,3}$/, 'must be an enhanced status code of a failure or a delay, such as 5.1.1 or 4.4.7')
    .describe('The enhanced status code (RFC 3463) whose notifications get this text, e.g. 5.1.1.'),
  internal: z.boolean().describe('true: for senders inside the organisation (Authoritative and InternalRelay domains); false: for senders outside it.'),
  text: z.string().trim().min(1).max(512, 'at most 512 characters (as Exchange)').describe('The text (HTML, as Exchange; shown as text) for each recipient the notification reports with that code.'),
});

export const gatewayShape = {
  fqdn: hostname.optional().describe("This gateway's host name (banner, Received, DSNs). Default: the machine's host name."),
  dataDir: z.string().min(1).default('./var').describe('Where mailgw keeps state (self-signed certificates, logs, embedded Redis), relative to gateway.yaml.'),
  logLevel: ciEnum(['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const).default('info').describe('pino log level: fatal, error, warn, info, debug, trace.'),
  acceptedDomains: z.array(acceptedDomain).min(1, 'list at least one accepted domain').describe('Domains this organisation receives mail for.'),
  recipients: z.union([z.array(mailboxAddress), fileRef, z.strictObject({ directory: z.literal(true) })]).optional().describe('Known mailboxes of Authoritative domains (list, { file } with one per line, or { directory: true }: every address some directory object holds, looked up in `directory`). Unknown ones get 550 5.1.1. Leave out to accept any local part.'),
  recipientVerification: recipientVerificationSchema
    .optional()
    .describe('{ domains, probeSender, timeout, failureAction, cacheTtl, refreshAfter, negativeCacheTtl, maxProbesPerNextHop }: recipients of the listed accepted domains are verified at RCPT by asking their next hop (MAIL FROM:<>, RCPT TO, no DATA; Postfix reject_unverified_recipient), answers cached in Redis: refused there = 550 5.1.1 User unknown here. For domains whose mailboxes are on another server and that have no recipients list or directory. Off unless present.'),
  throttlingPolicy: z
    .strictObject({
      recipientRateLimit: countOrUnlimited(1, 10_000_000).default(null).describe('Recipients an authenticated user may address in 24 hours (Exchange -RecipientRateLimit; unlimited by default, as Exchange).'),
    })
    .default({ recipientRateLimit: null })
    .describe("{ recipientRateLimit }: Exchange's throttling policy (Set-ThrottlingPolicy -RecipientRateLimit) for authenticated users, local and directory ones: the recipients each may address in a sliding 24 hours, counted in Redis by every listener; past it RCPT gets 550 5.1.90 (a stolen password sends a day's worth, not a spam run). users[].recipientRateLimit overrides it per user."),
  users: z.union([z.array(userSchema), fileRef]).default([]).describe('Accounts for SMTP AUTH (list, or { file } holding such a list in YAML).'),
  headerSenderCheck: z
    .preprocess(
      (v) => (typeof v === 'string' ? v.trim().toLowerCase() : v),
      z.custom<boolean | 'audit'>((v) => v === true || v === false || v === 'audit', 'must be true (refuse), audit (log what would be refused, refuse nothing) or false'),
    )
    .default(true)
    .describe(
      "The header's From: and Sender: of an authenticated user's message are judged as MAIL FROM is (the user's own addresses, the connector's Accept-Any-Sender / Accept-Authoritative-Domain-Sender, Send As; for From:, also Send on Behalf with Sender: the user's): otherwise 550 5.7.60 at the end of DATA, as Exchange 2013 and later. Anonymous mail's From: is left to sender authentication (DMARC). audit: judged and logged (header sender would be refused), nothing refused: to see which users and applications would be refused before turning it on. false: only MAIL FROM is checked.",
    ),
  relayDeniedIPRanges: listOf(ipRange).default([]).describe('Clients that may never relay, whatever connector or authentication (Exchange 5.5 "can NEVER route").'),
  blockedIPRanges: listOf(ipRange).default([]).describe('Clients refused at connect (IP Block List).'),
  blockedDomains: listOf(domainPattern).default([]).describe('Recipient domains always refused (5.5 routing "block").'),
  trustedProxies: listOf(ipRange).default([]).describe('Load balancers allowed to send a PROXY header (version 1 or 2) with the real client address.'),
  internalSMTPServers: listOf(ipRange)
    .default([])
    .superRefine((list, ctx) =>
      list.forEach((r, i) => {
        // A client in these ranges is believed about who sent the mail: Internet-wide ranges would believe anyone.
        if (r.last - r.first >= (r.family === 4 ? 2n ** 24n : 2n ** 96n)) ctx.addIssue({ code: 'custom', path: [i], message: `${r.text} is too wide: the Received fields of every client in it would be believed about who sent the mail; list your own relays (at most a /8, or a /32 for IPv6)` });
      }),
    )
    .describe("The organisation's own SMTP servers in front of mailgw (Exchange's Set-TransportConfig -InternalSMTPServers): for mail a client in these ranges relays, sender authentication (SPF) and connection filtering (IP Allow/Block List, block list providers) judge the host that handed the message to the first of them (the newest Received field from outside these ranges), at the end of the header, and sender reputation rates it, not the relay. None by default."),
  tlsReceiveDomainSecureList: listOf(hostname.transform((h) => h.toLowerCase().replace(/\.$/, ''))).default([]).describe("Partner domains for domain security (Exchange's Set-TransportConfig -TLSReceiveDomainSecureList): on a connector with domainSecureEnabled, a client that presents over STARTTLS a trusted certificate naming one of them acts as Partner Servers (permission group Partners) and its mail is marked domain secured."),
  domainSecureCAFile: z.string().min(1).optional().describe("PEM file of CA certificates trusted for partners' client certificates besides the system's (relative to gateway.yaml; Exchange uses the Windows trust store)."),
  tlsSendDomainSecureList: listOf(hostname.transform((h) => h.toLowerCase().replace(/\.$/, ''))).default([]).describe("Partner domains mail goes to with domain security (Exchange's Set-TransportConfig -TLSSendDomainSecureList), through a send connector with domainSecureEnabled: TLS to a server whose trusted certificate names the domain, domainSecureCertificate presented; never in plain text."),
  domainSecureCertificate: z.string().min(1).optional().describe('PEM certificate (chain) mailgw presents to partners under domain security (relative to gateway.yaml); it should name this gateway\'s domain, as the partner checks. With domainSecureKey.'),
  domainSecureKey: z.string().min(1).optional().describe('PEM private key of domainSecureCertificate.'),
  routes: z.array(route).default([]).describe('Ordered next hops by recipient domain, first match wins: { domains, to, requireTLS, verifyTLS, auth }. Shorthand for send connectors (one per route, cost 1); send-connectors.d/ files compete with the first matching route. A recipient domain nothing matches stays queued (4.4.4) until it expires.'),
  redis: z
    .strictObject({
      url: z.string().regex(/^(rediss?:\/\/|unix:\/\/(?:[^@/]*@)?\/)/, 'must be redis://host:port, rediss://… or unix:///path/to/redis.sock').optional().describe('Redis for the queue: redis://host:port, rediss://… (TLS) or unix:///path/to/redis.sock (same machine, cheapest); REDIS_URL overrides. Without either, mailgw start runs its own redis-server.'),
      prefix: z.string().min(1).default('{mailgw}').describe('Key prefix; keep the {hash tag} for Redis Cluster.'),
      sentinels: listOf(z.string().regex(/^\S+:\d{1,5}$/, 'must be host:port')).optional().describe('Redis Sentinel set (host:port list) instead of url; name is the master name.'),
      name: z.string().min(1).optional().describe('Master name of the Sentinel set (default mymaster).'),
      cluster: listOf(z.string().regex(/^\S+:\d{1,5}$/, 'must be host:port')).optional().describe('Redis Cluster seed nodes (host:port list) instead of url; queue shards spread over its masters.'),
      username: z.string().min(1).optional().describe('ACL user of the Redis (with a password): of the url\'s server, the Sentinel set\'s master and replicas, or the Cluster\'s nodes.'),
      password: z.string().min(1).optional().describe('Password (requirepass, or the ACL user\'s) of the url\'s server, the Sentinel set\'s master and replicas, or the Cluster\'s nodes; or keep it out of this file with passwordEnv or passwordFile. Shown as *** in every message and log line.'),
      passwordEnv: envName.optional().describe('Environment variable holding that password (instead of password).'),
      passwordFile: z.string().min(1).optional().describe('File holding that password (first line; relative to gateway.yaml), e.g. a systemd credential (instead of password).'),
      tls: z.boolean().optional().describe('TLS to the Sentinels and the master and replicas, or to every Cluster node (a url says it with rediss://). A private CA goes in NODE_EXTRA_CA_CERTS.'),
      sentinelPassword: z.string().min(1).optional().describe("The Sentinels' own password (requirepass in sentinel.conf), when they have one; with sentinels. Shown as *** in every message and log line."),
      sentinelPasswordEnv: envName.optional().describe("Environment variable holding the Sentinels' password (instead of sentinelPassword)."),
      sentinelPasswordFile: z.string().min(1).optional().describe("File holding the Sentinels' password (first line; relative to gateway.yaml; instead of sentinelPassword)."),
      maxMemory: maxMemorySetting
        .default('auto')
        .describe("maxmemory of the embedded redis-server (mailgw start without a Redis URL): auto (default) = half the machine's memory; a size such as 4gb; unlimited. Back pressure (backPressure) refuses mail before it is reached. An external Redis keeps its own setting."),
      waitForReplicas: intIn(0, 16).default(0).describe("Before the 250 after DATA, wait until this many replicas have the message (Redis WAIT), else answer 451 and drop it: a Sentinel failover then loses nothing accepted (Exchange's shadow redundancy with RejectMessageOnShadowFailure). 0 = don't wait."),
      replicaTimeout: durationMs(10, 2500).default(1000).describe('How long to wait for those replicas.'),
      durability: ciEnum(['fsync', 'replicas', 'os-buffered'] as const)
        .default('fsync')
        .describe("What a 250 after DATA promises. fsync (default): the message is on disk before the 250 (the embedded Redis runs appendfsync always; an external one is checked and warned about), so a power loss or OS crash loses nothing accepted, as Postfix. replicas: it is on waitForReplicas replicas before the 250 (Exchange's shadow redundancy; needs redis.waitForReplicas and a Redis with replicas). os-buffered: it is in Redis' memory and the OS' buffers (appendfsync everysec): a process crash loses nothing, an OS crash or power loss up to about a second of accepted mail."),
    })
    .refine((r) => [r.url, r.sentinels, r.cluster].filter((v) => v !== undefined).length <= 1, 'give at most one of url, sentinels and cluster')
    .superRefine((r, ctx) => {
      const given = secretSources(r, 'password', ctx);
      const key = given[0] ?? (r.username !== undefined ? 'username' : null);
      if (key === null) return;
      if (r.url === undefined && r.sentinels === undefined && r.cluster === undefined) ctx.addIssue({ code: 'custom', message: 'the Redis mailgw start runs itself needs no password: this goes with url, sentinels or cluster', path: [key] });
      else if (r.url !== undefined && /^[a-z]+:\/\/[^/]*@/.test(r.url)) ctx.addIssue({ code: 'custom', message: 'the url carries its own credentials (redis://user:password@host:port): give them there or here, not both', path: [key] });
      if (r.username !== undefined && given.length === 0) ctx.addIssue({ code: 'custom', message: 'username needs a password (password, passwordEnv or passwordFile)', path: ['username'] });
    })
    .superRefine((r, ctx) => {
      const given = secretSources(r, 'sentinelPassword', ctx);
      if (given.length > 0 && r.sentinels === undefined) ctx.addIssue({ code: 'custom', message: "the Sentinels' password goes with sentinels", path: [given[0]!] });
      if (r.tls !== undefined && r.sentinels === undefined && r.cluster === undefined) ctx.addIssue({ code: 'custom', message: r.url !== undefined ? 'a url says TLS with rediss:// (rediss://host:6380)' : 'tls goes with sentinels or cluster', path: ['tls'] });
    })
    .refine((r) => !(r.cluster && r.waitForReplicas > 0), { message: 'waitForReplicas works with url or sentinels, not with cluster', path: ['waitForReplicas'] })
    .refine((r) => r.durability !== 'replicas' || r.waitForReplicas > 0, { message: 'durability: replicas promises that replicas have each message before the 250: set waitForReplicas to how many (1 or more)', path: ['durability'] })
    .default({ prefix: '{mailgw}', maxMemory: 'auto', waitForReplicas: 0, replicaTimeout: 1000, durability: 'fsync' })
    .describe('{ url | sentinels+name | cluster, username, password | passwordEnv | passwordFile, sentinelPassword | sentinelPasswordEnv | sentinelPasswordFile, tls, prefix, maxMemory, waitForReplicas, replicaTimeout, durability }: the Redis that holds the queue (url: redis://… or unix:///path/to/redis.sock; sentinels: [host:port…] with name; cluster: [host:port…]; username and password of its nodes, the password also from an environment variable or a file; the Sentinels\' own password; tls: TLS to a Sentinel set or Cluster; REDIS_URL overrides; without either mailgw start runs its own redis-server), and the key prefix (default "{mailgw}", a hash tag so Redis Cluster works).'),
  directory: directorySchema.optional().describe('{ url, startTLS, caFile, bindDn, bindPasswordEnv | bindPasswordFile, baseDn, preset, loginAttributes, addressAttributes, groupMembership, groupAttribute, userFilter, requireSenderAuthenticationAttribute, maxReceiveSizeAttribute, maxSendSizeAttribute, recipientLimitsAttribute, deliveryRestrictionAttributes, sendAsPermissions, sendOnBehalfAttribute, cacheTtl, negativeCacheTtl, timeout, idleTimeout, maxGroupDepth }: Active Directory or LDAP for SMTP AUTH (after local users), Send As, grants to groups and recipients: { directory: true }. Off unless present; see "The directory".'),
  backPressure: backPressureSchema.describe('{ enabled, mediumPercent, highPercent, checkInterval, disk }: Exchange\'s back pressure for the queue\'s Redis memory and the disk under dataDir: from mediumPercent (80) of its maxmemory (disk.mediumPercent, 90, of the disk) anonymous senders get 452 4.3.1 Insufficient system resources at MAIL FROM, from highPercent (90; disk 95) everyone does, and while Redis cannot write its append-only file; the delivery workers keep room to deliver and free the queue; each level is left 5 points lower. On by default.'),
  authBackoff: authBackoffSchema.describe('{ failures, window }: brute-force backoff per client address, counted in Redis and shared by every listener (default 10 failures in 15m; failures 0 = off). maxLogonFailures still closes each connection.'),
  http: httpSchema.optional().describe('{ listen, token | tokenEnv | tokenFile, allowWrite }: the operations HTTP server of mailgw start/listen (Prometheus /metrics, /healthz, dashboard). Off unless present; `http: {}` listens on 127.0.0.1:9025 with the dashboard off (no token) and read-only (allowWrite false).'),
  ...antispamGatewayShape,
  quarantineMailbox: z
    .string()
    .regex(/^[^\s@<>]+@[^\s@<>]+$/, 'must be a mailbox address')
    .optional()
    .describe("Exchange's Set-ContentFilterConfig -QuarantineMailbox: where a quarantined message goes instead of its recipients, whichever filter quarantines it (rspamd's SCL threshold, a milter, senderAuthentication's DMARC quarantine action, a transport rule's quarantine), stamped with its original envelope for `mailgw quarantine release`. Without it such mail is delivered, stamped X-MS-Exchange-Organization-Quarantine. rspamd.quarantineMailbox is the same setting (give one). Off unless set."),
  rspamd: rspamdSchema.optional().describe('{ url, timeout, onFailure, actions: rspamd|scl, SCL thresholds, … }: rspamd judges each message at the end of DATA over its HTTP protocol (/checkv2). Off unless present.'),
  attachmentFilter: attachmentFilterSchema.optional().describe('{ action: Reject|Strip|SilentDelete, rejectResponse, adminMessage, exceptionConnectors, openArchives, entries }: Exchange\'s Edge attachment filtering (Set-AttachmentFilterListConfig, Add-AttachmentFilterEntry) at the end of DATA: a message with an attachment whose file name or content type matches an entry is refused (550 5.7.1 Message rejected due to unacceptable attachments), delivered with the attachment replaced by a text file (Strip) or deleted (250, delivered to nobody). Default entries: program, script, shortcut and installer types. Off unless present.'),
  addressRewriteEntries: addressRewriteEntriesSchema
    .default([])
    .describe('[{ name, internalAddress, externalAddress, outboundOnly, exceptionList }]: Exchange\'s Edge address rewriting (New-AddressRewriteEntry). Mail leaving the organisation has the sender (MAIL FROM) and the address fields (From, Sender, Reply-To, To, Cc, Resent-*, read-receipt requests) rewritten internal → external before DKIM signing; mail coming in has its recipients (RCPT TO, before they are judged) and destination fields (To, Cc, Bcc, Resent-*) rewritten external → internal, unless outboundOnly. None by default.'),
  transportRules: transportRulesSchema
    .default([])
    .describe('[{ name, mode, conditions…, exceptIf…, actions… }]: Exchange\'s Edge Rules agent (New-TransportRule) at the end of DATA, in order: conditions on the sender, recipients, Subject, header fields, size and client address; actions: refuse (smtpRejectMessage…), deleteMessage, quarantine, prependSubject, set or remove a header field, setScl, redirectMessageTo, addToRecipients, copyTo, blindCopyTo, stopRuleProcessing; mode Audit only logs. None by default.'),
  milters: milterListSchema.describe('[{ name, address, timeouts, defaultAction, antiSpam, connectors, pickup }]: milters (Sendmail/Postfix protocol 6, as Postfix smtpd_milters), in order: each answers MAIL and every RCPT as they come, and the message at the end of DATA. None by default.'),
  dkim: dkimSchema.optional().describe('{ domains: [{ domain, selectors: [{ name, algorithm, keyFile }] }], headers, oversignHeaders, canonicalization, signNonAcceptedDomains }: DKIM signing of mail leaving through SMTP next hops, by the From: domain. Off unless present.'),
  tlsReports: tlsReportsSchema.optional().describe('{ enabled, organizationName, contactInfo, submitter, sender, directory, sendReports }: SMTP TLS Reporting (RFC 8460). Workers count sessions per policy domain where MTA-STS or DANE applied (the recipient domain under MTA-STS, the MX host under DANE; successes, failures by result type) in Redis; once a day after UTC midnight one process sends each domain its report for the day before (rua of `_smtp._tls.<domain>`) and/or writes it to directory; a delivery that fails temporarily is retried with backoff for up to 4 days. `mailgw tls-report` prints or sends one by hand. Off unless present.'),
  systemMessages: z
    .array(systemMessage)
    .default([])
    .superRefine((list, ctx) => {
      const seen = new Map<string, number>();
      list.forEach((m, i) => {
        const key = `${m.dsnCode}/${m.internal}`;
        if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [i, 'dsnCode'], message: `${m.dsnCode} for ${m.internal ? 'internal' : 'external'} senders is already systemMessages[${seen.get(key)}]` });
        else seen.set(key, i);
      });
    })
    .describe("[{ dsnCode, internal, text }]: Exchange's New-SystemMessage: your own text in the delivery status notifications for one enhanced status code (5.1.1 …, 4.4.7), for senders inside (internal: true) or outside the organisation, under each recipient reported with that code. None by default."),
  remoteDomains: remoteDomainsSchema.describe("[{ name, domainName, allowedOOFType, autoReplyEnabled, autoForwardEnabled, deliveryReportEnabled, ndrEnabled }]: Exchange's remote domains (Set-RemoteDomain): for recipients in a domain outside the organisation, whether out-of-office and other automatic replies, automatic forwards and read receipts may go there (withheld: that recipient is dropped, logged), and whether mailgw's own DSNs go to senders there. The most specific domainName applies; without a * entry everything is allowed (Exchange's Default). None by default."),
  externalPostmasterAddress: mailboxAddress
    .optional()
    .describe("Exchange's Set-TransportConfig -ExternalPostmasterAddress: the From of DSNs to senders outside the organisation (senders inside get them from postmaster@<default accepted domain>). Default: postmaster@<default accepted domain> for all."),
  generateCopyOfDSNFor: z
    .array(z.string().trim().regex(/^5\.\d{1,3}\.\d{1,3}$/, 'must be the enhanced status code of a failure, such as 5.1.1 or 5.4.4'))
    .default([])
    .describe("Exchange's Set-TransportConfig -GenerateCopyOfDSNFor: failure codes (5.1.1, 5.4.4, …) whose DSNs are also sent to postmaster@<default accepted domain>, with the original's header only. None by default."),
  maxSendSize: sizeOrUnlimited(1024, 2048 * 1024 * 1024)
    .default(null)
    .describe("Exchange's Set-TransportConfig -MaxSendSize: the organisation's largest message a sender may send, for every sender without a limit of its own (a directory user's MaxSendSize overrides it), those from the Internet included. SIZE= over it gets 552 5.2.3 RESOLVER.RST.SendSizeLimit.Org at MAIL, a larger message the same at the end of DATA. Sessions with ms-Exch-Bypass-Message-Size-Limit (Exchange servers) are exempt. Default unlimited (Exchange's is 10MB)."),
  maxReceiveSize: sizeOrUnlimited(1024, 2048 * 1024 * 1024)
    .default(null)
    .describe("Exchange's Set-TransportConfig -MaxReceiveSize: the organisation's largest message a recipient takes, for every recipient without a limit of its own, inside or outside. A recipient's own MaxReceiveSize (from the directory) overrides it for authenticated senders; for anonymous senders the smaller of the two applies. SIZE= over it gets 552 5.2.3 RESOLVER.RST.RecipSizeLimit for that recipient at RCPT; a message over it for some recipients is accepted and failed for those (a DSN), over it for all refused at the end of DATA. Exempt as maxSendSize. Default unlimited (Exchange's is 10MB)."),
  maxRecipientEnvelopeLimit: countOrUnlimited(1, 2147483647)
    .default(null)
    .describe("Exchange's Set-TransportConfig -MaxRecipientEnvelopeLimit: the most recipients one message may have, beside each connector's maxRecipientsPerMessage (the smaller decides); a directory user's RecipientLimits overrides it. The RCPT past it gets 452 4.5.3 Too many recipients. Exempt as maxSendSize. Default unlimited (Exchange's is 500)."),
  journalRules: journalRulesSchema.describe("[{ name, journalEmailAddress, scope, recipient, enabled }]: Exchange's journal rules (New-JournalRule): each message in a rule's scope (Global, Internal, External; only from or to `recipient` when given) is also sent to journalEmailAddress as an envelope journal report (Exchange's format: X-MS-Journal-Report, the envelope's sender and recipients, Bcc ones too, and the message attached unaltered), stored with the message before the 250. None by default."),
  journalingReportNdrTo: mailboxAddress
    .optional()
    .describe("Exchange's Set-TransportConfig -JournalingReportNdrTo: the envelope sender of journal reports, so that a report the journaling mailbox refuses comes back here as a DSN. Absent: reports are sent with the null sender and a refused one is only logged (the worker's log and the message tracking log)."),
  pickupDirectoryPath: z
    .string()
    .trim()
    .min(1)
    .optional()
    .describe("Exchange's Set-TransportService -PickupDirectoryPath: a directory (relative to gateway.yaml) whose *.eml files are sent: the envelope from the header (Sender or From; To, Cc and Bcc; Resent-* when present) or from leading X-Sender/X-Receiver fields (Exchange's Replay format, what `mailgw sendmail` writes). Each listener process looks every 5 seconds and at once when a file arrives, claims a file by renaming it, and deletes it once queued; a file it cannot send is renamed *.bad. Transport rules and journal rules apply; anti-spam does not. Off unless present; see \"The pickup directory and mailgw sendmail\"."),
  pickupDirectoryMaxHeaderSize: sizeBytes(32 * 1024, 8 * 1024 * 1024)
    .default(64 * 1024)
    .describe("Exchange's -PickupDirectoryMaxHeaderSize: the largest header section of a pickup file; a larger one is renamed *.bad. Default 64KB (32KB to 8MB)."),
  pickupDirectoryMaxMessagesPerMinute: intIn(1, 20000)
    .default(100)
    .describe("Exchange's -PickupDirectoryMaxMessagesPerMinute: how many pickup files the gateway sends per minute, counted in Redis across every listener process; the rest wait for the next minute. Default 100."),
  pickupDirectoryMaxRecipientsPerMessage: intIn(1, 10000)
    .default(100)
    .describe("Exchange's -PickupDirectoryMaxRecipientsPerMessage: a pickup file with more recipients is renamed *.bad. Default 100."),
  bounceVerification: bounceVerificationSchema
    .optional()
    .describe("{ mode, keyFile | keyEnv, maxAgeDays }: bounce verification (BATV's prvs= tags; Cisco's Bounce Verification, Exchange Online's NDR backscatter): mail leaving the organisation has its envelope sender tagged (prvs=<signed, dated tag>=user@domain), and a bounce (MAIL FROM:<>) from outside to a local address without a valid tag, backscatter of mail forged in the organisation's name, is refused at the end of DATA (550 5.7.1; read receipts and automatic replies excepted) or, in Audit mode, logged. Off unless present."),
  processes: processesSchema,
  logs: logsSchema.describe('{ messageTrackingLogMaxAge, messageTrackingLogMaxDirectorySize, receiveProtocolLogMaxAge, receiveProtocolLogMaxDirectorySize, sendProtocolLogMaxAge, sendProtocolLogMaxDirectorySize, messageTrackingStreamMaxLength, messageTrackingStreamMaxAge, agentLogEnabled, agentLogMaxAge, agentLogMaxDirectorySize, agentLogStreamMaxLength, agentLogStreamMaxAge }: log retention as Exchange (defaults 30d / 1000MB for the tracking log, 30d / 250MB for the receive and for the send protocol logs, 7d / 250MB for the agent log), enforced at start and hourly by every process that writes logs; the file of the current day is never deleted.'),
  queue: queueSchema.describe('Delivery retry, expiry and worker settings (Exchange defaults): transientRetryAttempts 6, transientRetryInterval 5m, messageRetryInterval 15m, outboundConnectionFailureRetryInterval 10m, delayNotificationTimeout 4h, messageExpirationTimeout 2d, maxConnectionsPerDestination 20, workerConcurrency 100, workerMessageBytes 256MB; job retention (completedJobRetention 1d, failedJobRetention 7d, 10000 each) and crash recovery (lockDuration 30s, stalledInterval 30s, maxStalledCount 2, drainTimeout 30s); shards: unset = 1, or two per master on a Redis Cluster (queue shards with their own hash tags placed over the masters).'),
} as const;

export const gatewaySchema = z.strictObject(gatewayShape);
export type GatewayInput = z.input<typeof gatewaySchema>;
export type GatewayFileConfig = z.output<typeof gatewaySchema>;

/** The gateway's quarantine mailbox as written: quarantineMailbox, or its older place rspamd.quarantineMailbox; undefined: none. */
export function quarantineMailboxOf(g: { readonly quarantineMailbox?: string | undefined; readonly rspamd?: { readonly quarantineMailbox?: string | undefined } | undefined }): string | undefined {
  return g.quarantineMailbox ?? g.rspamd?.quarantineMailbox;
}
