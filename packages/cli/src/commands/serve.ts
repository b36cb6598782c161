// mailgw start / listen: load and compile the configuration (every error printed, nothing
// started when there is one), reach Redis (REDIS_URL, else redis.url, else a redis-server of
// our own in dataDir/redis), start every enabled connector's listener (and, for start, a
// delivery worker), the operations HTTP server when gateway.yaml has `http`, and watch the
// configuration: a change to gateway.yaml or connectors.d/ (or SIGHUP) reloads it live, after
// validating it; an invalid one is logged and the running one stays. On SIGTERM/SIGINT: stop
// accepting, let transactions in progress finish (bounded) and close.
//
// `mailgw start` runs this under its supervisor (supervisor.ts), once per child process: a
// listener child (listeners only) or a worker child (workers only). A child takes Redis from
// the supervisor, asks it about connection limits, reloads when it says so and reports its
// metrics to it; the supervisor owns the embedded Redis, the config watch and the HTTP server.
import os from 'node:os';
import path from 'node:path';
import { createAntispam, openDnsCache, reverseLookup, SenderReputation } from '@mailgw/antispam';
import { formatIssue, quarantineMailboxOf } from '@mailgw/config';
import { restartOnlyFilters, reloadableFilters } from '@mailgw/content-filter';
import { createDirectoryService, type DirectoryService } from '@mailgw/directory';
import { parseEnvelopeAddress, type MailAddress } from '@mailgw/mail';
import { BackPressureMonitor, createRedisRateCounter, startListeners, type ListenerEvent, type ListenerObserver, type Listeners, type RateCounter } from '@mailgw/listener';
import {
  GatewayMetrics,
  QueueAdmin,
  announceEmbeddedRedis,
  forgetEmbeddedRedis,
  receiveTracker,
  AgentLog,
  agentLogDir,
  restartOnlyChanges,
  startHeartbeat,
  StatsRecorder,
  watchConfig,
  type ConfigWatch,
  type HeartbeatPressure,
  type OpsHttpServer,
  type ProcessRole,
} from '@mailgw/ops';
import { version } from '../usage.js';
import { senderBlockRecord, type Policy } from '@mailgw/policy';
import { agentLogStreamKey, IpBlockListStore, IpBlockListView, openTrackingStream, RedisDataDirBusyError, RedisServerNotFoundError, durabilityGap, embeddedAppendFsync, evictionWarning, embeddedMaxMemory, logSets, logShardMap, openGatewayTracking, openShardedMailStore, readPersistence, redisTarget, redisUrlForDisplay, RedisOutageLog, startLogRetention, startRedisServer, type AofJanitorEvent, type LogRetention, type RedisKeepAlive, type RedisServer, type ShardedMailStore, type TrackingLog } from '@mailgw/queue';
import { httpsStsFetch, jobRetention, MtaSts, PROBE_TIMEOUTS, RecipientVerifier, startWorkers, systemResolver, type WorkerHandle } from '@mailgw/worker';
import type { Logger } from 'pino';
import { flushLog, mailLogger, trackingFailures } from '../logger.js';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';
import type { ReloadOutcome, SupervisedChild } from '../supervision.js';
import { serveOpsHttp, workerFacts } from '../ops-http.js';
import { cannotReachRedis } from '../redis-messages.js';
import { firstSignal } from '../signals.js';

export interface ServeOptions extends PathOptions {
  /** `start` (listeners and delivery workers) rather than `listen` (listeners only). */
  workers: boolean;
  /** Run the listeners (default true; false in a supervised worker child). */
  listeners?: boolean;
}

export interface ServeIO {
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /** Resolves when the process is asked to stop; default: the first SIGTERM or SIGINT. */
  readonly stopSignal?: Promise<string>;
  readonly logger?: Logger;
  /** Set in a child of the `mailgw start` supervisor. */
  readonly supervised?: SupervisedChild | null;
}

/** How long transactions in progress may take to finish after SIGTERM. */
export const SHUTDOWN_GRACE_MS = 10_000;


const enabledNames = (p: Policy) => p.connectors.filter((c) => c.config.enabled).map((c) => c.name);

export async function runServe(opts: ServeOptions, io: ServeIO = { stderr: process.stderr, env: process.env }): Promise<number> {
  const loaded = loadPolicy(opts, io.env);
  if (!loaded.ok) {
    io.stderr.write(`mailgw: the configuration has ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}; nothing was started.\n`);
    printIssues(io.stderr, 'Errors:', loaded.errors);
    printIssues(io.stderr, 'Warnings:', loaded.warnings);
    return 1;
  }
  // A supervised child's warnings were printed once, by the supervisor.
  if (!io.supervised) printIssues(io.stderr, 'Warnings:', loaded.warnings);
  const { dataDir, baseDir } = loaded;
  let policy = loaded.policy;
  const gateway = policy.config.gateway;
  const sup = io.supervised ?? null;
  const logger = io.logger ?? mailLogger({ level: gateway.logLevel, base: { pid: process.pid, ...(sup ? { process: sup.role } : {}) } });
  // What this process is, in its heartbeat and in mailgw_process_info.
  const listens = opts.listeners ?? true;
  const role: ProcessRole = sup ? sup.role : listens && opts.workers ? 'listener+worker' : opts.workers ? 'worker' : 'listener';
  // Listening for SIGTERM/SIGINT from the start: a stop asked for during start-up is kept, not fatal.
  const stopRequested = io.stopSignal ?? sup?.stopSignal ?? firstSignal(logger, 'second signal: exiting without waiting');

  let redis: RedisServer | null = null;
  let store: ShardedMailStore | null = null;
  let rate: RateCounter | null = null;
  let directory: DirectoryService | null = null;
  let pressure: BackPressureMonitor | null = null;
  let listeners: Listeners | null = null;
  let workers: WorkerHandle | null = null;
  let tracking: TrackingLog | null = null;
  let admin: QueueAdmin | null = null;
  let http: OpsHttpServer | null = null;
  let watch: ConfigWatch | null = null;
  let dnsCache: ReturnType<typeof openDnsCache> | null = null;
  let blockList: IpBlockListView | null = null;
  let reputation: SenderReputation | null = null;
  let verifier: RecipientVerifier | null = null;
  let agentLog: AgentLog | null = null;
  let retention: LogRetention | null = null;
  let metrics: GatewayMetrics | null = null;
  let heartbeat: { stop(): Promise<void>; beatNow(): void } | null = null;
  let stats: StatsRecorder | null = null;
  const cleanup = async () => {
    watch?.close();
    await heartbeat?.stop();
    await retention?.stop();
    await http?.close();
    await listeners?.close({ graceMs: SHUTDOWN_GRACE_MS });
    verifier?.close();
    pressure?.stop();
    blockList?.stop();
    await reputation?.settled();
    await agentLog?.close();
    await dnsCache?.close();
    // Workers drain after the listeners so mail accepted during the grace period is not stranded
    // half-delivered; what they cannot finish within queue.drainTimeout is retried later.
    await workers?.close();
    await tracking?.close();
    await stats?.close();
    await admin?.close();
    await rate?.close();
    await directory?.close();
    await store?.close();
    if (redis) {
      forgetEmbeddedRedis(dataDir);
      await redis.stop();
    }
  };

  try {
    const prepared = await prepareRedis(opts, io, gateway, dataDir, logger, sup);
    if (!prepared.ok) {
      await cleanup();
      return prepared.code;
    }
    const url = prepared.url;
    redis = prepared.redis;
    store = prepared.store;
    const prefix = gateway.redis.prefix;
    rate = createRedisRateCounter({ url, prefix, onError: (err) => logger.debug({ err: err.message }, 'rate counter redis error') });
    const trackingFile = openGatewayTracking({
      dataDir,
      redis: store.connection,
      prefix,
      settings: () => policy.config.gateway.logs,
      ...trackingFailures(logger, () => metrics),
    });
    tracking = trackingFile;
    // Log retention (gateway.yaml logs, read afresh each run so a reload applies): every process
    // that writes logs enforces it, at start and hourly.
    retention = startLogRetention({
      sets: () => logSets(dataDir, policy.config.gateway.logs),
      logger,
      onRun: (set, r) => {
        if (!(r instanceof Error)) for (const d of r.deleted) metrics?.logFilesDeleted(set.name, d.reason);
      },
    });
    // Metrics and the dashboard only with an HTTP server to show them.
    if (gateway.http && sup) {
      // The supervisor serves them for the whole gateway, from every child's report.
      metrics = new GatewayMetrics({ role });
      tracking = metrics.tapTracking(trackingFile);
    } else if (gateway.http) {
      admin = await QueueAdmin.open({ redisUrl: url, gateway, dataDir, logger, tracking: trackingFile });
      metrics = new GatewayMetrics({ queue: admin, process: { role, version: version() } });
      tracking = metrics.tapTracking(trackingFile);
    }
    // The gateway-wide per-minute counters behind the dashboard's charts (every process adds its own).
    stats = new StatsRecorder(store.connection, prefix, (err) => logger.debug({ err: err.message }, 'activity counters not written'));
    tracking = stats.tapTracking(tracking);
    const observers: ListenerObserver[] = [receiveTracker(tracking), stats.observeListener, ...(metrics ? [metrics.observeListener] : [])];
    if (opts.listeners ?? true) {
      // The anti-spam agent log (gateway.yaml logs.agentLogEnabled, read at each line: a reload applies).
      // Its gateway-wide copy: a capped stream per UTC day in the queue's Redis (logs.agentLogStream…).
      const agentStream = openTrackingStream({
        redis: store.connection,
        prefix,
        key: agentLogStreamKey,
        settings: () => ({ maxLength: policy.config.gateway.logs.agentLogStreamMaxLength, maxAgeMs: policy.config.gateway.logs.agentLogStreamMaxAge }),
        onError: (err) => logger.warn({ err: err.message }, 'agent log stream not written: the lines stay in the files of this machine'),
      });
      agentLog = new AgentLog(
        agentLogDir(dataDir),
        (err) => {
          logger.error({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'agent log write failed: lines are dropped (mail flow goes on; tried again each minute)');
          metrics?.logWriteFailed('agent');
        },
        agentStream,
      );
      observers.push(agentLog.observer(() => policy.config.gateway.logs.agentLogEnabled));
    }
    const observer = (e: ListenerEvent) => {
      for (const o of observers) o(e);
    };
    if (opts.listeners ?? true) {
      // The Edge anti-spam agents: one DNS resolver cached in the queue's Redis, the block list lookups, sender authentication.
      dnsCache = openDnsCache({ url, prefix, onError: (err) => logger.debug({ err: err.message }, 'dns cache redis error') });
      const antispam = createAntispam({ settings: () => policy.config.gateway, cache: dnsCache, onCacheError: (err) => logger.debug({ err }, 'dns cache unavailable: looking up without it') });
      // The IP Block List (every listener of the gateway reads it) and sender reputation, which
      // adds to it; the counting runs whatever the config says now, so a reload can turn it on.
      const blockStore = new IpBlockListStore(dnsCache.redis, dnsCache.keys);
      blockList = new IpBlockListView(blockStore, { onError: (err) => logger.debug({ err }, 'IP Block List not read: the last copy stays in force') });
      await blockList.start();
      reputation = new SenderReputation({
        redis: dnsCache.redis,
        keys: dnsCache.keys,
        blockList: blockStore,
        policy: () => policy,
        resolver: antispam.resolver,
        onRated: (subject, v) => logger.debug({ subject, srl: v.level.srl, why: v.reason }, 'sender rated'),
        onBlocked: (entry, v) => {
          logger.warn({ subject: entry.range, srl: v.level.srl, until: entry.expiresAt === null ? null : new Date(entry.expiresAt).toISOString(), why: v.reason }, 'sender blocked by sender reputation');
          observer({ type: 'sender-blocked', range: entry.range, srl: v.level.srl ?? 0 });
          observer({ type: 'agent-action', record: senderBlockRecord(entry, v) });
          blockList?.refresh().catch(() => undefined);
        },
        onError: (err) => logger.warn({ err }, 'sender reputation not counted (Redis)'),
      });
      // The attachment filter, rspamd and milters: off unless configured; changed only by a restart.
      // The transport rules and the remote domains come with the policy: a reload changes them.
      const content = restartOnlyFilters(gateway);
      const rules = reloadableFilters(gateway);
      if (content.length + rules.length) logger.info({ filters: [...rules, ...content].map((f) => f.name) }, 'content filters configured');
      // Sender authentication first (its Authentication-Results on top), then rspamd and the milters in file order.
      // The directory (gateway.yaml directory): changed only by a restart, like the content filters.
      const dir = gateway.directory ? createDirectoryService({ config: gateway.directory, redisUrl: url, prefix, onProblem: (what, detail) => logger.warn({ detail }, what), ...(metrics ? { onEvent: metrics.observeDirectory } : {}) }) : null;
      directory = dir;
      if (dir) logger.info({ url: gateway.directory!.url, preset: gateway.directory!.preset }, 'directory configured');
      // Back pressure (gateway.yaml backPressure, read at every check so a reload applies): the
      // memory use of the queue's Redis, its append-only file's writes and the disk under the
      // data directory, known before the first connection.
      // A change reaches the process list (dashboard, /api/state) at once, not at the next heartbeat.
      pressure = new BackPressureMonitor({ redis: store.connection, settings: () => policy.config.gateway.backPressure, logger, diskPath: dataDir, onChange: () => heartbeat?.beatNow() });
      await pressure.start();
      metrics?.watchBackPressure(pressure);
      // Recipient verification (gateway.yaml recipientVerification, read at each RCPT: a reload
      // applies): next hops asked as delivery reaches them, answers shared in the queue's Redis.
      const verifyResolver = systemResolver();
      verifier = new RecipientVerifier({
        settings: () => policy.config.gateway,
        redis: dnsCache.redis,
        keys: dnsCache.keys,
        hops: {
          resolver: verifyResolver,
          mxPort: 25,
          timeouts: PROBE_TIMEOUTS,
          mtaSts: new MtaSts({ redis: dnsCache.redis, prefix, resolver: verifyResolver, fetch: httpsStsFetch({ resolver: verifyResolver }), logger }),
        },
        logger,
        ...(metrics ? { onAnswer: metrics.observeRecipientVerification } : {}),
      });
      if (gateway.recipientVerification) logger.info({ domains: gateway.recipientVerification.domains.map((d) => d.text), failureAction: gateway.recipientVerification.failureAction }, 'recipient verification configured');
      listeners = await startListeners({
        ...(dir ? { directory: dir } : {}),
        recipientVerification: verifier,
        backPressure: pressure,
        policy,
        store,
        logger,
        dataDir,
        configDir: baseDir,
        rateCounter: rate,
        observer,
        filtersFor: (p) => [...antispam.filters, ...reloadableFilters(p.config.gateway, dir), ...content],
        ipLists: antispam.ipLists,
        // Client host names (Received, rspamd's Hostname): forward-confirmed PTRs, as Postfix.
        ...(gateway.dns.reverseLookup ? { resolver: reverseLookup(antispam.resolver) } : {}),
        ipBlockList: blockList,
        reputation,
        quarantineMailbox: quarantineMailbox(gateway),
        ...(sup ? { connectionLimits: sup.limits } : {}),
      });
    }
    if (opts.workers) workers = await startWorkers({ gateway, dataDir, redisUrl: url, logger, tracking, configFile: opts.config, redisOutage: prepared.outage, evictionChecked: true, ...(metrics ? { onDkim: metrics.observeDkim, onArc: metrics.observeArc, onLogWriteFailed: (log: string) => metrics!.logWriteFailed(log) } : {}) });
    if (workers) metrics?.watchWorkers(workers);
    if (gateway.http && metrics && admin && !sup) {
      const l = listeners;
      const w = workers;
      const bp = pressure;
      http = await serveOpsHttp({
        http: gateway.http,
        policy: () => policy,
        metrics,
        admin,
        logger,
        facts: () => ({ connections: l?.connectionCount() ?? 0, ...(w ? workerFacts(w) : {}) }),
        ...(bp ? { backPressure: () => pressureSummary(bp) } : {}),
      });
    }
    // The gateway's process list (dashboard, /api/state anywhere): this process says it is alive.
    {
      const l = listeners;
      const w = workers;
      const bp = pressure;
      heartbeat = startHeartbeat({
        redis: store.connection,
        prefix,
        role,
        version: version(),
        figures: () => ({ ...(l ? { connections: l.connectionCount() } : {}), ...(w ? workerFacts(w) : {}), ...(bp ? { backPressure: pressureSummary(bp) } : {}) }),
        onError: (err) => logger.debug({ err: err.message }, 'heartbeat not written'),
      });
    }
    if (sup && metrics) {
      const m = metrics;
      const bp = pressure;
      sup.onReport(() => m.report({ ...(listeners ? { connections: listeners.connectionCount() } : {}), ...(workers ? workerFacts(workers) : {}) }, bp ? pressureSummary(bp) : undefined));
    }
    if (sup) {
      logger.debug({ connectors: enabledNames(policy) }, `${sup.role} process is running`);
      await flushLog(logger);
      sup.ready();
    } else {
      logger.info({ connectors: enabledNames(policy) }, 'mailgw is running');
      await flushLog(logger);
    }
  } catch (e) {
    logger.error({ err: e }, `mailgw could not start: ${(e as Error).message}`);
    io.stderr.write(`mailgw: ${(e as Error).message}\n`);
    await cleanup();
    return 1;
  }

  // Live reload, one at a time: validate first; listeners and workers switch together or not at all.
  const running = { listeners, workers, admin };
  const reload = async (trigger: string): Promise<ReloadOutcome> => {
    const next = loadPolicy(opts, io.env);
    if (!next.ok) {
      logger.error({ trigger, errors: next.errors.map(formatIssue) }, 'configuration reload refused: the new configuration has errors; the running configuration stays');
      return { ok: false, error: next.errors.map(formatIssue).join('; ') };
    }
    // Under the supervisor, it reports warnings, the outcome and restart-only keys once for all children.
    if (!sup) for (const w of next.warnings) logger.warn({ trigger, warning: formatIssue(w) }, 'configuration warning');
    const before = policy.config.gateway;
    const after = next.policy.config.gateway;
    try {
      running.workers?.reload(after);
    } catch (e) {
      logger.error({ trigger, err: (e as Error).message }, 'configuration reload refused: the delivery worker could not take it; the running configuration stays');
      return { ok: false, error: (e as Error).message };
    }
    let summary;
    try {
      summary = running.listeners ? await running.listeners.reload(next.policy) : { opened: [], stopped: [] };
    } catch (e) {
      running.workers?.reload(before);
      logger.error({ trigger, err: (e as Error).message }, 'configuration reload failed; the running configuration stays');
      return { ok: false, error: (e as Error).message };
    }
    running.admin?.useGateway(after);
    policy = next.policy;
    logger.level = after.logLevel;
    const outcome: ReloadOutcome = { ok: true, connectors: enabledNames(policy), opened: [...summary.opened], stopped: [...summary.stopped] };
    if (sup) {
      logger.debug({ trigger, ...outcome }, 'configuration reloaded in this process');
      return outcome;
    }
    logger.info({ trigger, connectors: outcome.connectors, opened: outcome.opened, stopped: outcome.stopped }, 'configuration reloaded');
    const later = restartOnlyChanges(before, after);
    if (later.length > 0) logger.warn({ keys: later }, 'these changes take effect after a restart');
    return outcome;
  };
  let reloads: Promise<unknown> = Promise.resolve();
  if (sup) {
    // The supervisor watches the files (and takes SIGHUP) and tells every child, in order.
    sup.onReload((trigger) => {
      const run = reloads.then(() => reload(trigger));
      reloads = run.catch(() => undefined);
      return run;
    });
  }
  const connectorsDir = opts.connectors ?? path.join(path.dirname(path.resolve(opts.config)), 'connectors.d');
  if (!sup) watch = watchConfig({
    gatewayFile: opts.config,
    connectorsDir,
    sendConnectorsDir: opts['send-connectors'] ?? path.join(path.dirname(path.resolve(opts.config)), 'send-connectors.d'),
    onChange: (why) => {
      reloads = reloads.then(() => reload(why)).catch((e: unknown) => logger.error({ err: e }, 'configuration reload failed'));
    },
    onWatchError: (err, dir) => logger.warn({ err: err.message, dir }, 'cannot watch the configuration for changes: reload with SIGHUP'),
  });

  const signal = await stopRequested;
  logger.info({ signal, graceMs: SHUTDOWN_GRACE_MS }, 'stopping: no new connections, finishing transactions in progress');
  watch?.close();
  await reloads;
  await cleanup();
  logger.info('stopped');
  // Nothing should be left; if a stray handle remains, do not hang around for it.
  setTimeout(() => process.exit(0), 2000).unref();
  return 0;
}

export type PreparedRedis = { ok: true; url: string; redis: RedisServer | null; store: ShardedMailStore; outage: RedisOutageLog } | { ok: false; code: number };

/**
 * Reaches the queue's Redis: the supervisor's (in a supervised child), REDIS_URL, redis.url,
 * else an embedded redis-server of our own in dataDir/redis; opens the mail store on it and,
 * once per start (not in a child: the supervisor did), checks that this Redis can keep what
 * redis.durability promises. On failure: the message is printed and nothing is left running.
 */
export async function prepareRedis(opts: PathOptions, io: Pick<ServeIO, 'env' | 'stderr'>, gateway: Policy['config']['gateway'], dataDir: string, logger: Logger, sup: SupervisedChild | null = null): Promise<PreparedRedis> {
  let redis: RedisServer | null = null;
  let store: ShardedMailStore | null = null;
  // One outage, one warning and one line when it ends, however many connections report it.
  const outage = new RedisOutageLog(logger);
  const fail = async (code: number): Promise<PreparedRedis> => {
    await store?.close();
    if (redis) {
      forgetEmbeddedRedis(dataDir);
      await redis.stop();
    }
    return { ok: false, code };
  };
  let url = sup?.redisUrl || io.env.REDIS_URL || redisTarget(gateway.redis);
  const durability = gateway.redis.durability;
  try {
    if (!url) {
      const dir = path.join(dataDir, 'redis');
      // Back pressure (gateway.yaml backPressure) refuses new mail before Redis reaches it.
      const maxmemory = embeddedMaxMemory(gateway.redis.maxMemory, os.totalmem());
      if (durability === 'replicas') {
        io.stderr.write(`mailgw: ${opts.config}: redis.durability: replicas needs a Redis with replicas (redis.url or redis.sentinels, or REDIS_URL); the embedded redis-server has none. Use fsync (the default) with it.\n`);
        return fail(1);
      }
      try {
        // Listeners and workers of this process reach it over its Unix socket (cheaper per
        // round trip than loopback TCP); the TCP port serves `mailgw queue` and extra workers.
        // redis.durability fsync: every write is on disk before Redis acknowledges it.
        // Kept alive: one that dies (a crash, the OOM killer, a full disk under appendfsync
        // always) is started again on the same socket and port, its AOF replayed; meanwhile the
        // listeners answer 451 4.3.0 and the children's connections retry.
        redis = await startRedisServer({ dataDir: dir, unixSocket: path.join(dir, 'redis.sock'), appendfsync: embeddedAppendFsync(durability), maxmemory, keepAlive: embeddedRedisKeepAlive(logger), historyGc: { onEvent: embeddedAofJanitorLog(logger) } });
      } catch (e) {
        if (e instanceof RedisServerNotFoundError || e instanceof RedisDataDirBusyError) {
          io.stderr.write(`mailgw: ${e.message}\n`);
          return fail(1);
        }
        throw e;
      }
      url = redis.socketUrl ?? redis.url;
      if (redis.retired) {
        logger.warn({ pid: redis.retired.pid, via: redis.retired.via, dataDir: dir }, 'a redis-server left running by a previous mailgw was shut down cleanly (SHUTDOWN, AOF flushed) before starting ours');
      }
      // So that `mailgw queue …` on this machine finds it.
      announceEmbeddedRedis(dataDir, redis.url);
      logger.info({ url: redis.url, socket: redis.socketUrl, dataDir: dir, maxmemory, maxMemory: gateway.redis.maxMemory }, 'started an embedded redis-server (set REDIS_URL or redis.url to use your own)');
    }
    const prefix = gateway.redis.prefix;
    try {
      store = await openShardedMailStore({ url, prefix, shards: gateway.queue.shards, defaultJobOptions: jobRetention(gateway.queue), waitForReplicas: gateway.redis.waitForReplicas, replicaTimeoutMs: gateway.redis.replicaTimeout, onError: (err) => outage.failed(err) || logger.warn({ err: err.message }, 'redis error') });
    } catch (e) {
      io.stderr.write(`mailgw: ${cannotReachRedis(url, e)}\n`);
      return fail(1);
    }
    logShardMap(logger, store);
    for (const shard of store.shards) outage.watch(shard.connection);
    // Open means Redis answered: an outage logged while connecting is over.
    outage.ready();
    if (sup) {
      // The supervisor checked this Redis once for the whole gateway.
    } else if (!redis) {
      const eviction = await store.checkEvictionPolicy().catch(() => 'unknown');
      if (eviction !== 'noeviction') {
        logger.warn({ url: redisUrlForDisplay(url), maxmemoryPolicy: eviction }, evictionWarning(eviction));
      }
      // Once per start: can this Redis keep what redis.durability promises?
      const gaps = new Set<string>();
      for (const shard of store.shards) {
        const gap = durabilityGap(durability, await readPersistence(shard.connection), gateway.redis.waitForReplicas);
        if (gap) gaps.add(gap);
      }
      for (const gap of gaps) logger.warn({ url: redisUrlForDisplay(url), durability }, gap);
    } else {
      logger.info({ durability, appendfsync: embeddedAppendFsync(durability) }, `redis.durability ${durability}: the embedded Redis runs appendfsync ${embeddedAppendFsync(durability)}`);
    }
  } catch (e) {
    await fail(1);
    throw e;
  }
  return { ok: true, url, redis, store, outage };
}

/** This listener process's back pressure as the heartbeat, the supervisor's report and /healthz carry it. */
function pressureSummary(bp: BackPressureMonitor): HeartbeatPressure {
  const s = bp.current();
  return { level: s.level, reason: s.reason };
}

/** What the janitor of the embedded redis-server's old append-only files says in the log. */
function embeddedAofJanitorLog(logger: Logger): (e: AofJanitorEvent) => void {
  return (e) => {
    if (e.kind === 'error') logger.warn({ err: e.error }, 'the old append-only files of the embedded redis-server could not be freed yet; tried again in a second');
    else logger.debug({ ...e }, 'old append-only files of the embedded redis-server freed a slice at a time');
  };
}

/** What the keep-alive of the embedded redis-server says in the log. */
function embeddedRedisKeepAlive(logger: Logger): RedisKeepAlive {
  const secs = (ms: number) => `${ms < 1000 ? (ms / 1000).toFixed(1) : Math.round(ms / 1000)} s`;
  return {
    onExit: (e) =>
      logger.error(
        { pid: e.pid, code: e.code, signal: e.signal, redisLog: e.log, restartInMs: e.restartInMs },
        `the embedded redis-server exited (${e.signal ?? `code ${e.code}`}); starting it again in ${secs(e.restartInMs)}: until it runs, new mail gets 451 4.3.0 and deliveries wait`,
      ),
    onRestarted: (e) => logger.warn({ pid: e.pid, attempts: e.attempts }, 'the embedded redis-server runs again (its append-only file replayed); mail is accepted and delivered again'),
    onRestartFailed: (e) => logger.error({ err: e.error.message, restartInMs: e.restartInMs }, `the embedded redis-server could not be started again; next try in ${secs(e.restartInMs)}`),
  };
}

/** The one quarantine mailbox of the gateway (Exchange's Set-ContentFilterConfig -QuarantineMailbox), for every filter that quarantines. */
function quarantineMailbox(g: Parameters<typeof quarantineMailboxOf>[0]): MailAddress | null {
  const text = quarantineMailboxOf(g);
  if (!text) return null;
  const p = parseEnvelopeAddress(text);
  return p.ok ? { local: p.value.local, domain: p.value.domain } : null;
}
