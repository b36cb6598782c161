// startWorkers: one BullMQ Worker (with `concurrency` deliveries at once) on the queue the
// listeners fill, plus what it delivers with: the route table, the mail store (bodies, DSNs),
// pooled SMTP sessions with cross-worker destination leases, and the tracking log. Run as
// many processes as you like against one Redis: each job is claimed by one of them.
import path from 'node:path';
import { Worker } from 'bullmq';
import { pino, type Logger } from 'pino';
import { formatIssue, type GatewayConfig } from '@mailgw/config';
import { loadArcSealKey, loadDkimKeys, recordName } from '@mailgw/dkim';
import { readDomainSecureSending, type DomainSecureSending } from './domain-security.js';
import { OutboundDkim, type DkimCounters } from './dkim-signing.js';
import { OutboundArc, type ArcCounters } from './arc-sealing.js';
import { DEFAULT_QUEUE_NAME, RedisOutageLog, connectRedis, evictionWarning, keySpace, logShardMap, openShardedMailStore, shardView, type ShardedMailStore } from '@mailgw/queue';
import { ConnectionPool } from './connection-pool.js';
import { abandonWorker } from './library-overrides.js';
import { DestinationLeases } from './destination-leases.js';
import { systemResolver, type DnsResolver } from './dns-resolver.js';
import { DsnSender, dsnSenderOptions } from '@mailgw/queue';
import { processDelivery, type AddressRewriting, type DeliverySummary, type ProcessorContext } from './processor.js';
import { insideDomains } from '@mailgw/config';
import { bounceTagging, compileAddressRewrite } from '@mailgw/policy';
import { ByteBudget } from './byte-budget.js';
import { jobRetention } from './retention.js';
import { RouteTable } from '@mailgw/queue';
import { DEFAULT_TIMEOUTS, type SmtpTimeouts } from './smtp-session.js';
import { SendProtocolLogs } from './send-protocol-log.js';
import { ConnectorRates } from './connector-rates.js';
import { httpsStsFetch, MtaSts, type StsFetch } from './mta-sts.js';
import { scheduleTlsReports, TlsReporter, TlsReportRecorder, tlsReportSettings } from './tls-report.js';
import { SuspendedHops, SuspendedMessages } from '@mailgw/queue';
import { openGatewayTracking, type TrackingLog } from '@mailgw/queue';

export interface StartWorkersOptions {
  /** The validated gateway configuration (loadConfig(...).config.gateway). */
  gateway: GatewayConfig;
  /** Absolute data dir (tracking logs go to <dataDir>/logs/tracking). */
  dataDir: string;
  /** redis://… of the queue. */
  redisUrl: string;
  /** Deliveries at once in this process (default gateway.queue.workerConcurrency). */
  concurrency?: number;
  logger?: Logger;
  /**
   * The process's log of Redis outages (one warning per outage, however many connections report
   * it: redis-outage-log.ts), shared with the rest of the process; default: one of its own.
   */
  redisOutage?: RedisOutageLog;
  /** DNS for mx routes and named smtp:// hosts (default: the system resolver). */
  resolver?: DnsResolver;
  /** Port for mx delivery (default 25). */
  mxPort?: number;
  smtpTimeouts?: Partial<SmtpTimeouts>;
  /** Shown in logs and on the jobs (default worker-<pid>). */
  name?: string;
  /** Destination lease lifetime without refresh (default 30 s). */
  leaseTtlMs?: number;
  /** Idle outbound sessions are closed after this (default 5 s). */
  sessionIdleMs?: number;
  /** Retry delay when a destination has no free connection (default 2 s, jittered). */
  busyRetryMs?: number;
  /** Tracking log; default: a file log under dataDir. */
  tracking?: TrackingLog;
  /** The caller checked Redis' maxmemory-policy already (mailgw start's supervisor, mailgw listen): not warned about again. */
  evictionChecked?: boolean;
  /**
   * CA certificates (PEM) trusted besides the system's for send connectors with
   * tlsAuthLevel CertificateValidation/DomainValidation (tests; NODE_EXTRA_CA_CERTS in production).
   */
  extraCAs?: readonly string[];
  /**
   * MTA-STS on MX delivery (RFC 8461): on by default, the policy fetched over HTTPS from
   * mta-sts.<domain> (host looked up through `resolver`, certificate checked against the system
   * CAs plus extraCAs). `httpsPort` (tests) replaces 443; `fetch` replaces the HTTPS fetch;
   * false turns MTA-STS off.
   */
  mtaSts?: false | { httpsPort?: number; fetch?: StsFetch };
  /** Called once per failure episode of a log this process writes (metrics: mailgw_log_write_failures_total). */
  onLogWriteFailed?: (log: 'send-protocol') => void;
  /** Called per DKIM signing result (metrics). */
  onDkim?: (result: 'signed' | 'failed') => void;
  /** Each ARC sealing result (mailgw_arc_seals_total). */
  onArc?: (result: 'sealed' | 'failed') => void;
  /**
   * TLS-RPT's daily run when gateway.yaml has tlsReports: `intervalMs` between checks for the
   * previous UTC day's reports (default 15 min), `clock` (tests); false: count sessions only.
   */
  tlsReportSchedule?: false | { intervalMs?: number; clock?: () => number };
  /** gateway.yaml's path: dkim keyFile paths start from its directory, and key errors name it (default ./gateway.yaml). */
  configFile?: string;
}

/** addressRewriteEntries compiled for the processor; null when there are none. */
function addressRewriting(g: GatewayConfig): AddressRewriting | null {
  const rewriter = compileAddressRewrite(g.addressRewriteEntries);
  return rewriter ? { rewriter, inside: insideDomains(g.acceptedDomains) } : null;
}

/** The DKIM keys of `g`, loaded and checked; throws with every problem (file, key, what is wrong). */
function loadDkim(g: GatewayConfig, opts: StartWorkersOptions): OutboundDkim | null {
  if (!g.dkim) return null;
  const configFile = opts.configFile ?? 'gateway.yaml';
  const r = loadDkimKeys(g.dkim, g.acceptedDomains.map((d) => d.domain), { configFile, baseDir: path.dirname(path.resolve(configFile)), dataDir: path.resolve(opts.dataDir) });
  if (!r.ok) throw new Error(`DKIM keys: ${r.errors.map(formatIssue).join('; ')}`);
  return new OutboundDkim(r.setup, opts.onDkim);
}

/** The ARC sealing key of `g` (senderAuthentication.arcSeal), loaded and checked; throws naming the file and key. */
function loadArc(g: GatewayConfig, opts: StartWorkersOptions): OutboundArc | null {
  const seal = g.senderAuthentication.arcSeal;
  if (!seal) return null;
  const configFile = opts.configFile ?? 'gateway.yaml';
  const r = loadArcSealKey(seal, { configFile, baseDir: path.dirname(path.resolve(configFile)), dataDir: path.resolve(opts.dataDir) });
  if (!r.ok) throw new Error(`ARC sealing key: ${formatIssue(r.error)}`);
  return new OutboundArc(r.key, g.fqdn, opts.onArc);
}

export interface WorkerHandle {
  readonly name: string;
  readonly concurrency: number;
  /** Deliveries in progress now (those waiting for room within workerMessageBytes included). */
  readonly active: number;
  /** Message bytes the deliveries in progress hold, and how many wait for room (queue.workerMessageBytes). */
  readonly messageMemory: { readonly heldBytes: number; readonly waiting: number; readonly limit: number };
  /**
   * Deliveries sent back to the queue before their bodies were read, to come back for their turn
   * at a crowded next hop (@mailgw/policy's crowded-next-hop.ts), since start; and the next hops with turns
   * still to come now.
   */
  readonly crowding: { readonly sentBack: number; readonly crowdedNextHops: number };
  /**
   * Stops taking new messages and waits up to `timeoutMs` (default queue.drainTimeout) for the
   * deliveries in progress; after that they are abandoned (their jobs are picked up again by
   * any worker after lockDuration). Then closes every connection. Idempotent.
   */
  close(opts?: { timeoutMs?: number }): Promise<{ drained: boolean }>;
  /**
   * Live reload: messages attempted from now on use `gateway`'s routes, retry/expiry/DSN timing,
   * fqdn, default domain, DKIM keys and address rewrite entries. `gateway` is a validated configuration (its routes compiled by
   * the config layer), so this cannot fail: an invalid file is refused before it gets here.
   * Concurrency, lock/stall settings, maxConnectionsPerDestination and Redis need a restart.
   */
  reload(gateway: GatewayConfig): void;
  /** DKIM messages signed and signing failures (sent unsigned) since start; null without dkim. */
  readonly dkim: DkimCounters | null;
  /** ARC copies sealed and sealing failures (sent unsealed) since start; null without arcSeal. */
  readonly arc: ArcCounters | null;
}

/**
 * The budget, saying at info (at most once a minute) when deliveries wait for room: large mail
 * that is slow to leave for this reason should not be a mystery.
 */
function budgetWithLog(budget: ByteBudget, logger: Logger): Pick<ByteBudget, 'acquire'> {
  let lastLog = 0;
  return {
    acquire(bytes) {
      const now = Date.now();
      if (budget.wouldWait(bytes) && now - lastLog >= 60_000) {
        lastLog = now;
        logger.info(
          { heldBytes: budget.inUse, waiting: budget.queued + 1, messageBytes: bytes, workerMessageBytes: budget.limit },
          'deliveries wait for room within queue.workerMessageBytes (the message bytes this worker holds at once); logged at most once a minute',
        );
      }
      return budget.acquire(bytes);
    },
  };
}

/** The send connectors of a route table, for the start and reload log lines. */
const connectorList = (t: RouteTable): string[] => t.connectors.map((c) => `${c.name}: ${c.text}`);

/** The longest one step of a worker's shutdown may take before the next one goes ahead. */
const CLOSE_STEP_MS = 5000;

/** Waits for `p` at most `ms`; `late` is called when it did not settle in time (a failure counts as settled). */
async function bounded(p: Promise<unknown>, ms: number, late: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  if (!settled) late();
}

export async function startWorkers(opts: StartWorkersOptions): Promise<WorkerHandle> {
  const g = opts.gateway;
  const q = g.queue;
  const name = opts.name ?? `worker-${process.pid}`;
  const logger = (opts.logger ?? pino({ level: g.logLevel })).child({ component: 'worker', worker: name });
  const concurrency = opts.concurrency ?? q.workerConcurrency;
  const keys = keySpace(g.redis.prefix, DEFAULT_QUEUE_NAME);
  // Compiled and validated by the config layer (loadConfig/buildConfig): nothing here can fail.
  const routes = new RouteTable(g.sendConnectors);
  const dkim = loadDkim(g, opts);
  const arc = loadArc(g, opts);

  // Workers block on Redis and must never give up a command (BullMQ requirement).
  const redis = connectRedis(opts.redisUrl, { maxRetriesPerRequest: null, connectionName: `mailgw:${name}` });
  const outage = opts.redisOutage ?? new RedisOutageLog(logger);
  redis.on('error', (err: Error) => outage.failed(err) || logger.warn({ err }, 'Redis error'));
  outage.watch(redis);
  let store: ShardedMailStore;
  try {
    store = await openShardedMailStore({
      url: opts.redisUrl,
      prefix: keys.prefix,
      shards: q.shards,
      queueName: keys.queueName,
      defaultJobOptions: jobRetention(q),
      connectionName: `mailgw:${name}:store`,
      // DSNs are new messages: they wait for replicas as the listener's mail does.
      waitForReplicas: g.redis.waitForReplicas,
      replicaTimeoutMs: g.redis.replicaTimeout,
      onError: (err) => outage.failed(err) || logger.warn({ err }, 'mail store Redis error'),
    });
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  logShardMap(logger, store);
  for (const shard of store.shards) outage.watch(shard.connection);
  if (!opts.evictionChecked) {
    const policy = await store.checkEvictionPolicy().catch(() => 'unknown');
    if (policy !== 'noeviction' && policy !== 'unknown') logger.warn({ maxmemoryPolicy: policy }, evictionWarning(policy));
  }

  let logs = g.logs;
  const tracking =
    opts.tracking ??
    openGatewayTracking({
      dataDir: path.resolve(opts.dataDir),
      redis: store.connection,
      prefix: g.redis.prefix,
      settings: () => logs,
      onFileError: (err) => logger.error({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'tracking log write failed: message tracking is degraded (lines are dropped, mail flow goes on; tried again each minute)'),
      onStreamError: (err) => logger.error({ err: err.message }, 'tracking events could not be written to Redis: other machines do not see them (the file has them)'),
    });
  const leases = new DestinationLeases(redis, keys, { ttlMs: opts.leaseTtlMs ?? 30_000 });
  const protocolLogs = new SendProtocolLogs(path.join(path.resolve(opts.dataDir), 'logs', 'smtp-send'), (connector, err) => {
    logger.error({ connector, err: err.message, code: (err as NodeJS.ErrnoException).code }, 'send protocol log write failed: protocol logging is degraded (lines are dropped, delivery goes on; tried again each minute)');
    opts.onLogWriteFailed?.('send-protocol');
  });
  const pool = new ConnectionPool(leases, { limit: q.maxConnectionsPerDestination, idleMs: opts.sessionIdleMs ?? 5000, logger });
  const dsnSender = (c: GatewayConfig) =>
    new DsnSender(store, redis, keys, dsnSenderOptions(c));
  // Replaced whole on reload: a delivery in progress keeps the context it started with.
  const resolver = opts.resolver ?? systemResolver();
  const mtaSts =
    opts.mtaSts === false
      ? undefined
      : new MtaSts({
          redis,
          prefix: keys.prefix,
          resolver,
          fetch: opts.mtaSts?.fetch ?? httpsStsFetch({ resolver, ...(opts.extraCAs ? { extraCAs: opts.extraCAs } : {}), ...(opts.mtaSts?.httpsPort ? { port: opts.mtaSts.httpsPort } : {}) }),
          logger,
        });
  const tlsSettings = tlsReportSettings(g, opts.configFile ?? 'gateway.yaml');
  const tlsRecorder = tlsSettings ? new TlsReportRecorder(redis, keys, logger) : undefined;
  const stopTlsReports =
    tlsSettings && opts.tlsReportSchedule !== false
      ? scheduleTlsReports(
          new TlsReporter({ redis, keys, resolver, store, settings: tlsSettings, fqdn: g.fqdn, name, logger, ...(opts.extraCAs ? { extraCAs: opts.extraCAs } : {}) }),
          { ...opts.tlsReportSchedule, logger },
        )
      : null;
  const budget = new ByteBudget(q.workerMessageBytes);
  const gatewayDir = path.dirname(path.resolve(opts.configFile ?? 'gateway.yaml'));
  const domainSecure = (next: GatewayConfig): DomainSecureSending | null => {
    const r = readDomainSecureSending(next, gatewayDir);
    if (!r.ok) throw new Error(`gateway ${r.key}: ${r.message}`);
    return r.sending;
  };
  let ctx: ProcessorContext = {
    queue: q,
    routes,
    store,
    dsn: dsnSender(g),
    smtp: {
      pool,
      resolver,
      clientName: g.fqdn,
      mxPort: opts.mxPort ?? 25,
      timeouts: { ...DEFAULT_TIMEOUTS, ...opts.smtpTimeouts },
      ...(opts.extraCAs ? { extraCAs: opts.extraCAs } : {}),
      protocolLogs,
      rates: new ConnectorRates(redis, keys),
      ...(mtaSts ? { mtaSts } : {}),
      ...(tlsRecorder ? { tlsReports: tlsRecorder } : {}),
      domainSecure: domainSecure(g),
      logger,
    },
    tracking,
    logger,
    busyRetryMs: opts.busyRetryMs ?? 2000,
    // On the store's connection: read in the same round trip as the message body.
    suspendedHops: new SuspendedHops(store.connection, keys),
    suspendedMessages: new SuspendedMessages(store.connection, keys),
    dkim,
    arc,
    addressRewrite: addressRewriting(g),
    bounceTags: bounceTagging(g),
    // One budget for the process, over all shards' Workers (fixed at start, as concurrency).
    messageBytes: budgetWithLog(budget, logger),
  };

  let active = 0;
  // One BullMQ Worker per queue shard, all in this process: each reads and deletes bodies on
  // its own shard; DSNs go through the whole store (any shard).
  // `concurrency` is per process: split it over the shards' Workers.
  const perShard = Math.max(1, Math.ceil(concurrency / store.shards.length));
  const workers = store.shards.map((shard, index) => {
    const view = shardView(store, shard);
    const w = new Worker<unknown, DeliverySummary>(
      shard.queueName,
      async (job, token) => {
        active++;
        try {
          return await processDelivery(job, token, { ...ctx, store: view });
        } finally {
          active--;
        }
      },
      {
        // BullMQ duplicates the connection for its blocking reads; one shared base is enough.
        connection: redis,
        prefix: shard.keys.bullPrefix,
        name,
        concurrency: perShard,
        lockDuration: q.lockDuration,
        stalledInterval: q.stalledInterval,
        maxStalledCount: q.maxStalledCount,
        ...jobRetention(q),
        autorun: true,
      },
    );
    const log = store.shards.length > 1 ? logger.child({ shard: index }) : logger;
    // BullMQ's connections fail with everyone else's when Redis goes: counted in the outage.
    w.on('error', (err) => outage.failed(err) || log.error({ err }, 'worker error'));
    w.on('failed', (job, err) => log.error({ queueId: job?.id, err: err.message }, 'job set aside as failed'));
    w.on('stalled', (jobId) => log.warn({ queueId: jobId }, 'a delivery stalled (its worker died?): it will run again'));
    return w;
  });
  const worker = {
    waitUntilReady: () => Promise.all(workers.map((w) => w.waitUntilReady())),
    close: () => Promise.all(workers.map((w) => w.close())).then(() => undefined),
  };
  await worker.waitUntilReady();
  logger.info({ concurrency, messageBytes: q.workerMessageBytes, queue: keys.queueKeyPrefix, shards: store.shards.length, sendConnectors: connectorList(routes), dkim: dkim ? [...dkim.setup.keys.values()].flat().map((k) => recordName(k.domain, k.selector)) : [], arcSeal: arc ? recordName(arc.key.domain, arc.key.selector) : null }, 'delivery worker started');

  let closing: Promise<{ drained: boolean }> | null = null;
  return {
    name,
    concurrency,
    get active() {
      return active;
    },
    get messageMemory() {
      return { heldBytes: budget.inUse, waiting: budget.queued, limit: budget.limit };
    },
    get crowding() {
      return pool.crowding;
    },
    get dkim() {
      return ctx.dkim?.counters ?? null;
    },
    get arc() {
      return ctx.arc?.counters ?? null;
    },
    reload(next) {
      logs = next.logs;
      const nextRoutes = new RouteTable(next.sendConnectors);
      // Keys are files: one that became unreadable keeps the signer that works, loudly.
      let nextDkim = ctx.dkim ?? null;
      try {
        nextDkim = loadDkim(next, opts);
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'DKIM keys of the new configuration cannot be used; the worker keeps signing with the keys it has');
      }
      let nextArc = ctx.arc ?? null;
      try {
        nextArc = loadArc(next, opts);
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'the ARC sealing key of the new configuration cannot be used; the worker keeps sealing with the key it has');
      }
      // The same for the domain security certificate: the one that works stays.
      let nextDomainSecure = ctx.smtp.domainSecure ?? null;
      try {
        nextDomainSecure = domainSecure(next);
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'the domain security certificate of the new configuration cannot be used; the worker keeps the one it has');
      }
      ctx = { ...ctx, queue: next.queue, routes: nextRoutes, dsn: dsnSender(next), smtp: { ...ctx.smtp, clientName: next.fqdn, domainSecure: nextDomainSecure }, dkim: nextDkim, arc: nextArc, addressRewrite: addressRewriting(next), bounceTags: bounceTagging(next) };
      logger.info({ sendConnectors: connectorList(nextRoutes) }, 'delivery worker reloaded routes, send connectors and queue settings');
    },
    close(closeOpts = {}) {
      closing ??= (async () => {
        const timeoutMs = closeOpts.timeoutMs ?? q.drainTimeout;
        logger.info({ active, timeoutMs }, 'stopping: draining deliveries in progress');
        let timer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([
          worker.close().then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), timeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (!drained) {
          logger.warn({ active }, 'drain timeout: abandoning deliveries in progress (other workers retry them after lockDuration)');
          // BullMQ's close() is memoised: a close(true) now would be the same promise, still
          // waiting for the deliveries in progress, and the Worker's lock renewal timer and
          // blocking connection would keep this process alive for ever (seen on a Redis Cluster:
          // the test process never exited). Stop them ourselves. A stop must end.
          await bounded(Promise.all(workers.map(abandonWorker)), CLOSE_STEP_MS, () => logger.warn('the queue consumer did not close in time; going on'));
        }
        await stopTlsReports?.();
        await pool.close();
        await protocolLogs.close();
        await leases.close().catch(() => undefined);
        await bounded(tracking.close(), CLOSE_STEP_MS, () => logger.warn('the tracking log did not close in time; going on'));
        await bounded(store.close(), CLOSE_STEP_MS, () => logger.warn('the mail store connections did not close in time; going on'));
        redis.disconnect();
        logger.info({ drained }, 'delivery worker stopped');
        return { drained };
      })();
      return closing;
    },
  };
}
