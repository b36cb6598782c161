// Prometheus metrics of one mailgw process (prom-client, a registry of its own): SMTP counters
// from the listener's observer, delivery counters and latency from the tracking events the
// workers write, and, read from Redis at scrape time, queue depth per state and per next hop and
// whether Redis answers. Also keeps the per-connector counters the dashboard shows.
import os from 'node:os';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { ListenerEvent, ResourcePressure } from '@mailgw/listener';
import { deliveryLatencySeconds, tapTracking } from '@mailgw/queue';
import type { TrackingEvent, TrackingLog } from '@mailgw/queue';
import type { HopRow } from './hop-view.js';
import { highestPressure, type HeartbeatPressure, type ProcessHeartbeat } from './process-registry.js';
import type { ShardsView } from './queue-admin.js';

/** What the metrics read from Redis at scrape time (a QueueAdmin). */
export interface QueueSource {
  counts(): Promise<Record<string, number>>;
  hops(): Promise<{ rows: HopRow[]; poison: number }>;
  ping(): Promise<void>;
  /** Messages per queue shard (a QueueAdmin has it); without it the per-shard gauge is left out. */
  shards?(): Promise<ShardsView>;
  /** Live processes of the gateway from their heartbeats (a QueueAdmin has it); without it mailgw_processes_live is left out. */
  processes?(): Promise<readonly ProcessHeartbeat[]>;
  /** gateway.yaml queue.delayNotificationTimeout in force (ms), for the "oldest message" alert. */
  delayNotificationTimeoutMs?(): number;
}

export interface QueueSnapshot {
  readonly redisUp: boolean;
  readonly error: string | null;
  readonly counts: Record<string, number>;
  readonly hops: readonly HopRow[];
  readonly poison: number;
  /** Undelivered messages per queue shard (empty when the source has no shard view). */
  readonly shards?: ReadonlyArray<{ readonly shard: number; readonly prefix: string; readonly master: string; readonly messages: number }>;
  /** Live processes of the gateway by role (heartbeats); absent when the source cannot say. */
  readonly liveByRole?: Readonly<Record<string, number>>;
  readonly at: number;
}

/** Live counters of one connector in this process, for the dashboard. */
export interface ConnectorCounters {
  connections: number;
  accepted: number;
  rejected: number;
  relayDenied: number;
  authFailures: number;
}

/**
 * What one process of a supervised gateway (`mailgw start` with several processes) reports to
 * the supervisor, which serves /metrics, /healthz and the dashboard for the whole gateway.
 */
export interface ProcessReport {
  /** This process's registry (getMetricsAsJSON), aggregated by the supervisor (prom-client's cluster aggregator). */
  readonly metrics: MetricObjectWithValues<MetricValue<string>>[];
  readonly connectors: Record<string, ConnectorCounters>;
  /** Numbers for /healthz, summed over the processes (connections, deliveriesInProgress). */
  readonly facts: Record<string, number>;
  /** A listener process's back pressure (the supervisor reports the highest). */
  readonly backPressure?: HeartbeatPressure;
}

/** Where the back pressure levels come from (@mailgw/listener's BackPressureMonitor). */
export interface BackPressureSource {
  resources(): ReadonlyArray<ResourcePressure>;
}

/** The delivery workers of this process, as @mailgw/worker's WorkerHandle shows them. */
export interface WorkerSource {
  /** Deliveries in progress (those waiting for room within queue.workerMessageBytes included). */
  readonly active: number;
  readonly messageMemory: { readonly heldBytes: number; readonly waiting: number; readonly limit: number };
  /** Deliveries sent back for a turn at a crowded next hop since start; next hops with turns to come. */
  readonly crowding: { readonly sentBack: number; readonly crowdedNextHops: number };
}

/** What @mailgw/directory's service tells (its DirectoryEvent), as the metrics read it. */
export type DirectoryMetricEvent =
  | { readonly type: 'question'; readonly question: string; readonly result: string; readonly source: 'cache' | 'directory'; readonly seconds?: number }
  | { readonly type: 'connected'; readonly server: string }
  | { readonly type: 'server-failed'; readonly server: string }
  | { readonly type: 'closed'; readonly server: string; readonly why: string };

/** A directory question's time: a kept connection answers in about a millisecond, a new one (TCP, TLS, bind) in several, a timeout in seconds. */
const DIRECTORY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface GatewayMetricsOptions {
  /** Queue depth and Redis health; without it those metrics are left out (a listener-only view). */
  readonly queue?: QueueSource;
  /** A snapshot is reused for this long, so a scrape and a dashboard refresh read Redis once (default 2000 ms). */
  readonly snapshotMs?: number;
  /** Node.js process metrics (default true). */
  readonly processMetrics?: boolean;
  /** mailgw_process_info{role, host, version}: which process this endpoint is (a worker on another machine, the gateway's supervisor, …). */
  readonly process?: { readonly role: string; readonly version: string };
  /**
   * The process role put as a `role` label on every series of this registry (default:
   * process.role): the same mailgw_* names in every process, told apart by role. A series with
   * a role label of its own (mailgw_processes_live counts processes by role) keeps it.
   */
  readonly role?: string;
}

const RELAY_DENIED = new Set(['relay-denied', 'relay-denied-ip']);
const NO_CONNECTOR = '(none)';
/** Receipt to delivery: seconds to the 2-day expiry. */
const LATENCY_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86_400, 2 * 86_400];

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly connectors = new Map<string, ConnectorCounters>();
  private readonly queueSource: QueueSource | null;
  private readonly snapshotMs: number;
  private cached: Promise<QueueSnapshot> | null = null;
  /** The other processes of the gateway (supervisor only). */
  private processes: (() => Promise<ProcessReport[]>) | null = null;
  private cachedAt = 0;

  private readonly connectionsTotal = new Counter({ name: 'mailgw_smtp_connections_total', help: 'SMTP connections ended, by connector and result (quit, idle-timeout, refused:<reason>, connection-limit, …).', labelNames: ['connector', 'result'] as const, registers: [this.registry] });
  private readonly messagesTotal = new Counter({ name: 'mailgw_smtp_messages_total', help: 'Messages after DATA, by connector and result (accepted, rejected) and reject reason code.', labelNames: ['connector', 'result', 'reason'] as const, registers: [this.registry] });
  private readonly refusalsTotal = new Counter({ name: 'mailgw_smtp_refusals_total', help: 'MAIL and RCPT commands the policy refused, by connector and reason code.', labelNames: ['connector', 'reason'] as const, registers: [this.registry] });
  private readonly relayDeniedTotal = new Counter({ name: 'mailgw_smtp_relay_denied_total', help: 'Recipients refused with 550 5.7.1 Unable to relay, by connector.', labelNames: ['connector'] as const, registers: [this.registry] });
  private readonly authFailuresTotal = new Counter({ name: 'mailgw_smtp_auth_failures_total', help: 'Failed SMTP AUTH attempts, by connector.', labelNames: ['connector'] as const, registers: [this.registry] });
  private readonly deliveriesTotal = new Counter({ name: 'mailgw_delivery_recipients_total', help: 'Recipient delivery outcomes of this process (tracking events SEND, DELIVER, DEFER, FAIL).', labelNames: ['event'] as const, registers: [this.registry] });
  private readonly latency = new Histogram({ name: 'mailgw_delivery_latency_seconds', help: 'Time from receipt to delivery per recipient (SEND to a next hop, DELIVER to a mailbox).', labelNames: ['event'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry] });
  private readonly logWriteFailuresTotal = new Counter({ name: 'mailgw_log_write_failures_total', help: 'Times this process could not write a log (full disk, EACCES, directory gone), by log (tracking, protocol, send-protocol): logging is degraded, mail flow goes on. Counted once per failure episode.', labelNames: ['log'] as const, registers: [this.registry] });
  private readonly logRetentionDeletedTotal = new Counter({ name: 'mailgw_log_retention_deleted_files_total', help: 'Log files deleted by the log retention of this process, by log (tracking, protocol) and reason (max-age, max-directory-size).', labelNames: ['log', 'reason'] as const, registers: [this.registry] });
  private readonly dkimTotal = new Counter({ name: 'mailgw_dkim_messages_total', help: 'Outbound messages this process DKIM-signed (result signed), or sent unsigned because signing failed (result failed).', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly arcTotal = new Counter({ name: 'mailgw_arc_seals_total', help: 'Copies this process ARC-sealed as they left (result sealed; senderAuthentication.arcSeal), or sent unsealed because sealing failed (result failed).', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly filterVerdictsTotal = new Counter({ name: 'mailgw_content_filter_verdicts_total', help: 'Messages each content filter judged at the end of DATA, by filter (transport-rules, attachment-filter, rspamd, a milter\'s name) and verdict (accept, reject, tempfail, discard, quarantine, error: it could not judge).', labelNames: ['filter', 'verdict'] as const, registers: [this.registry] });
  private readonly ruleMatchesTotal = new Counter({ name: 'mailgw_transport_rule_matches_total', help: 'Messages each transport rule matched, by rule and mode (Enforce: its actions applied; Audit: only counted and logged).', labelNames: ['rule', 'mode'] as const, registers: [this.registry] });
  private readonly pickupFilesTotal = new Counter({ name: 'mailgw_pickup_files_total', help: 'Files of the pickup directory (pickupDirectoryPath) by result: queued (sent, or deleted by a transport rule), bad (renamed *.bad; reason says why), deferred (left as *.eml: the queue or the directory unavailable).', labelNames: ['result', 'reason'] as const, registers: [this.registry] });
  private readonly journalReportsTotal = new Counter({ name: 'mailgw_journal_reports_total', help: 'Journal reports stored beside messages (journalRules), by rule (a report sent for two rules counts for each).', labelNames: ['rule'] as const, registers: [this.registry] });
  private readonly senderBlocksTotal = new Counter({ name: 'mailgw_sender_reputation_blocks_total', help: 'Senders (an IPv4 address or an IPv6 /64) sender reputation put on the IP Block List, by the SRL that did it.', labelNames: ['srl'] as const, registers: [this.registry] });
  private readonly recipientVerificationTotal = new Counter({ name: 'mailgw_recipient_verification_total', help: 'Recipients verified at their next hop (recipientVerification), by result (accepted, refused, unknown: the next hop could not say) and source (cache, probe, timeout: no answer within the timeout).', labelNames: ['result', 'source'] as const, registers: [this.registry] });
  private readonly directoryQuestionsTotal = new Counter({ name: 'mailgw_directory_questions_total', help: 'Questions for the directory, by question (recipient: a recipient lookup at RCPT; logon: AUTH; groups and attributes: transport rule conditions; send-as: a directory user sending as another object), result (found, found-auth-required, not-found, ok, invalid, granted, not-granted, unavailable) and source (cache: answered from the recipient cache in Redis or this process\'s cache; directory: asked).', labelNames: ['question', 'result', 'source'] as const, registers: [this.registry] });
  private readonly directorySeconds = new Histogram({ name: 'mailgw_directory_question_seconds', help: 'Time the directory took to answer a question this process asked it (cache answers not counted), by question.', labelNames: ['question'] as const, buckets: DIRECTORY_BUCKETS, registers: [this.registry] });
  private readonly directoryConnectionsTotal = new Counter({ name: 'mailgw_directory_connections_total', help: "The service account's connections to directory servers, by server (its URL) and event (opened: connected and bound; failed: could not connect, StartTLS, bind or answer, the next server tried; closed-idle: idleTimeout; closed-lost: the server or the network closed it, or it stopped answering; closed-done: done with it).", labelNames: ['server', 'event'] as const, registers: [this.registry] });
  private readonly directoryOpen = new Gauge({ name: 'mailgw_directory_connections_open', help: "The service account's connections open now, by server (one per process while it is in use; summed over the gateway's processes): a server other than the first means a failover.", labelNames: ['server'] as const, registers: [this.registry] });
  private readonly dsnTotal = new Counter({ name: 'mailgw_dsn_sent_total', help: 'DSNs queued by this process, by kind (failed, delayed, success).', labelNames: ['kind'] as const, registers: [this.registry] });

  constructor(opts: GatewayMetricsOptions = {}) {
    this.queueSource = opts.queue ?? null;
    this.snapshotMs = opts.snapshotMs ?? 2000;
    const role = opts.role ?? opts.process?.role;
    if (role) this.registry.setDefaultLabels({ role });
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    if (opts.process) {
      // An info metric (as node_uname_info): join on it by instance to see what a series came from.
      new Gauge({ name: 'mailgw_process_info', help: 'This endpoint\'s mailgw process: role (gateway = mailgw start\'s supervisor for all its processes, listener, worker, listener+worker), host and version.', labelNames: ['role', 'host', 'version'] as const, registers: [this.registry] }).set({ role: opts.process.role, host: os.hostname(), version: opts.process.version }, 1);
    }
    if (!this.queueSource) return;
    const self = this;
    new Gauge({
      name: 'mailgw_redis_up',
      help: '1 when Redis answered the last check, else 0.',
      registers: [this.registry],
      async collect() {
        this.set((await self.snapshot()).redisUp ? 1 : 0);
      },
    });
    new Gauge({
      name: 'mailgw_queue_jobs',
      help: 'Messages in the delivery queue by BullMQ state (waiting, active, delayed, completed, failed = poison).',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const [state, n] of Object.entries((await self.snapshot()).counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'mailgw_queue_hop_messages',
      help: 'Messages with recipients pending for each next hop.',
      labelNames: ['hop', 'status'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const h of (await self.snapshot()).hops) this.set({ hop: h.hop, status: h.status }, h.messages);
      },
    });
    new Gauge({
      name: 'mailgw_queue_shard_messages',
      help: 'Undelivered messages (waiting, active, delayed) per queue shard, with its key prefix and the Redis Cluster master serving it.',
      labelNames: ['shard', 'prefix', 'master'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const s of (await self.snapshot()).shards ?? []) this.set({ shard: String(s.shard), prefix: s.prefix, master: s.master }, s.messages);
      },
    });
    new Gauge({
      name: 'mailgw_queue_oldest_message_age_seconds',
      help: 'Age of the oldest message with recipients still pending (any next hop), in seconds; 0 when none is queued.',
      registers: [this.registry],
      async collect() {
        const snap = await self.snapshot();
        const oldest = snap.hops.reduce<number | null>((m, h) => (h.oldest !== null && (m === null || h.oldest < m) ? h.oldest : m), null);
        this.set(oldest === null ? 0 : Math.max(0, (snap.at - oldest) / 1000));
      },
    });
    if (this.queueSource.delayNotificationTimeoutMs) {
      const source = this.queueSource;
      new Gauge({
        name: 'mailgw_queue_delay_notification_timeout_seconds',
        help: 'gateway.yaml queue.delayNotificationTimeout in force, in seconds (the alert on the oldest message compares with it).',
        registers: [this.registry],
        collect() {
          this.set((source.delayNotificationTimeoutMs?.() ?? 0) / 1000);
        },
      });
    }
    if (this.queueSource.processes) {
      new Gauge({
        name: 'mailgw_processes_live',
        help: 'Live mailgw processes of the whole gateway (every machine) by role, from their heartbeats in Redis.',
        labelNames: ['role'] as const,
        registers: [this.registry],
        async collect() {
          this.reset();
          const live = (await self.snapshot()).liveByRole;
          if (!live) return;
          // Every role is reported, 0 included: "no worker alive" is a 0, not a missing series.
          for (const role of ['listener', 'worker', 'listener+worker', ...Object.keys(live)]) this.set({ role }, live[role] ?? 0);
        },
      });
    }
    new Gauge({
      name: 'mailgw_queue_hop_recipients',
      help: 'Recipients pending for each next hop.',
      labelNames: ['hop'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const h of (await self.snapshot()).hops) this.set({ hop: h.hop }, h.recipients);
      },
    });
  }

  /**
   * The back pressure of this listener process (BackPressureMonitor): each resource's level
   * (0 normal, 1 medium, 2 high) and use. The supervisor keeps the highest over its listener
   * processes (they read the same Redis and disk, a few seconds apart).
   */
  watchBackPressure(source: BackPressureSource): void {
    new Gauge({
      name: 'mailgw_back_pressure_level',
      help: 'Back pressure by resource (memory and redis-writes of the queue\'s Redis, disk under dataDir): 0 normal, 1 medium (anonymous senders get 452 4.3.1), 2 high (everyone does).',
      labelNames: ['resource'] as const,
      aggregator: 'max',
      registers: [this.registry],
      collect() {
        this.reset();
        for (const r of source.resources()) this.set({ resource: r.resource }, r.rank);
      },
    });
    new Gauge({
      name: 'mailgw_back_pressure_used_percent',
      help: 'Use of each resource back pressure measures, in percent of its limit (memory: of the Redis maxmemory or the machine\'s memory; disk: of the filesystem under dataDir, as df counts it).',
      labelNames: ['resource'] as const,
      aggregator: 'max',
      registers: [this.registry],
      collect() {
        this.reset();
        for (const r of source.resources()) if (r.state.percent !== undefined) this.set({ resource: r.resource }, Math.round(r.state.percent * 100) / 100);
      },
    });
  }

  /**
   * The delivery workers of this process: deliveries in progress, and what queue.workerMessageBytes
   * does to them (the bytes held, the deliveries waiting for room). Summed over the processes
   * under mailgw start, as every gauge without an aggregator.
   */
  watchWorkers(source: WorkerSource): void {
    const gauges: Array<[name: string, help: string, read: () => number]> = [
      ['mailgw_worker_deliveries_in_progress', 'Deliveries in progress in the delivery workers (at most queue.workerConcurrency per process), those waiting for room within queue.workerMessageBytes included.', () => source.active],
      ['mailgw_worker_deliveries_waiting_for_memory', 'Deliveries that wait for room within queue.workerMessageBytes (the message bytes one worker process holds at once) before they read their message.', () => source.messageMemory.waiting],
      ['mailgw_worker_message_bytes_held', 'Message bytes the deliveries in progress hold in memory.', () => source.messageMemory.heldBytes],
      ['mailgw_worker_message_bytes_limit', 'queue.workerMessageBytes of each worker process (summed: the bytes all of them may hold).', () => source.messageMemory.limit],
      ['mailgw_worker_next_hops_crowded', 'Next hops so slow that deliveries for them are sent back to the queue, unread, until their turn (turns still to come).', () => source.crowding.crowdedNextHops],
    ];
    for (const [name, help, read] of gauges) {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    }
    let counted = 0;
    new Counter({
      name: 'mailgw_worker_deliveries_sent_back_total',
      help: 'Deliveries sent back to the queue before their message was read, to come back for their turn at a crowded next hop (a round already waited for its sessions).',
      registers: [this.registry],
      collect() {
        const now = source.crowding.sentBack;
        if (now > counted) this.inc(now - counted);
        counted = now;
      },
    });
  }

  /** The listener observer. */
  readonly observeListener = (e: ListenerEvent): void => {
    switch (e.type) {
      case 'connection': {
        const connector = e.connector ?? NO_CONNECTOR;
        this.connectionsTotal.inc({ connector, result: e.result });
        if (e.connector) this.counters(e.connector).connections++;
        return;
      }
      case 'message-accepted':
        this.messagesTotal.inc({ connector: e.connector, result: 'accepted', reason: '' });
        this.counters(e.connector).accepted++;
        return;
      case 'message-rejected':
        this.messagesTotal.inc({ connector: e.connector, result: 'rejected', reason: e.reason });
        this.counters(e.connector).rejected++;
        return;
      case 'refused':
        this.refusalsTotal.inc({ connector: e.connector, reason: e.reason });
        if (RELAY_DENIED.has(e.reason)) {
          this.relayDeniedTotal.inc({ connector: e.connector });
          this.counters(e.connector).relayDenied++;
        }
        return;
      case 'auth-failure':
        this.authFailuresTotal.inc({ connector: e.connector });
        this.counters(e.connector).authFailures++;
        return;
      case 'log-write-failed':
        this.logWriteFailed(e.log);
        return;
      case 'filter-outcome':
        this.filterVerdictsTotal.inc({ filter: e.filter, verdict: e.verdict });
        for (const m of e.rules ?? []) this.ruleMatchesTotal.inc({ rule: m.rule, mode: m.mode });
        return;
      case 'sender-blocked':
        this.senderBlocksTotal.inc({ srl: String(e.srl) });
        return;
      case 'pickup-file':
        this.pickupFilesTotal.inc({ result: e.result, reason: e.reason });
        return;
      case 'journal-report':
        for (const rule of e.rules) this.journalReportsTotal.inc({ rule });
        return;
    }
  };

  /** A log (tracking, protocol, send-protocol) could not be written. */
  logWriteFailed(log: string): void {
    this.logWriteFailuresTotal.inc({ log });
  }

  /** Files the log retention deleted. */
  logFilesDeleted(log: string, reason: string, n = 1): void {
    this.logRetentionDeletedTotal.inc({ log, reason }, n);
  }

  /** Records a tracking event written by the workers of this process. */
  observeTracking(e: TrackingEvent, now = Date.now()): void {
    switch (e.eventId) {
      case 'SEND':
      case 'DELIVER':
      case 'DEFER':
      case 'FAIL': {
        this.deliveriesTotal.inc({ event: e.eventId }, e.recipientAddress.length);
        const seconds = deliveryLatencySeconds(e, now);
        if (seconds !== null) for (let i = 0; i < e.recipientAddress.length; i++) this.latency.observe({ event: e.eventId }, seconds);
        return;
      }
      case 'DSN':
        this.dsnTotal.inc({ kind: e.sourceContext ?? 'unknown' });
        return;
      default:
        return;
    }
  }

  /** A directory question answered, or a directory connection's event (@mailgw/directory's onEvent). */
  readonly observeDirectory = (e: DirectoryMetricEvent): void => {
    switch (e.type) {
      case 'question':
        this.directoryQuestionsTotal.inc({ question: e.question, result: e.result, source: e.source });
        if (e.seconds !== undefined) this.directorySeconds.observe({ question: e.question }, e.seconds);
        return;
      case 'connected':
        this.directoryConnectionsTotal.inc({ server: e.server, event: 'opened' });
        this.directoryOpen.inc({ server: e.server });
        return;
      case 'server-failed':
        this.directoryConnectionsTotal.inc({ server: e.server, event: 'failed' });
        return;
      case 'closed':
        this.directoryConnectionsTotal.inc({ server: e.server, event: `closed-${e.why}` });
        this.directoryOpen.dec({ server: e.server });
        return;
    }
  };

  /** Records one DKIM signing result of the workers of this process (startWorkers' onDkim). */
  readonly observeDkim = (result: 'signed' | 'failed'): void => {
    this.dkimTotal.inc({ result });
  };

  /** Records one ARC sealing result of the workers of this process (startWorkers' onArc). */
  readonly observeArc = (result: 'sealed' | 'failed'): void => {
    this.arcTotal.inc({ result });
  };

  /** Records one answer of recipient verification in this process (RecipientVerifier's onAnswer). */
  readonly observeRecipientVerification = (result: 'accepted' | 'refused' | 'unknown', source: 'cache' | 'probe' | 'timeout'): void => {
    this.recipientVerificationTotal.inc({ result, source });
  };

  /** A tracking log that also feeds these metrics (give it to startWorkers). */
  tapTracking(log: TrackingLog): TrackingLog {
    return tapTracking(log, (e) => this.observeTracking(e));
  }

  private counters(connector: string): ConnectorCounters {
    let c = this.connectors.get(connector);
    if (!c) {
      c = { connections: 0, accepted: 0, rejected: 0, relayDenied: 0, authFailures: 0 };
      this.connectors.set(connector, c);
    }
    return c;
  }

  /** This process's counters of a connector (zeros before its first connection). */
  connectorCounters(connector: string): Readonly<ConnectorCounters> {
    return this.connectors.get(connector) ?? { connections: 0, accepted: 0, rejected: 0, relayDenied: 0, authFailures: 0 };
  }

  /** In a supervised child: what the supervisor aggregates. */
  async report(facts: Record<string, number> = {}, backPressure?: HeartbeatPressure): Promise<ProcessReport> {
    return { metrics: await this.registry.getMetricsAsJSON(), connectors: Object.fromEntries(this.connectors), facts, ...(backPressure ? { backPressure } : {}) };
  }

  /** In the supervisor: the reports of its children, added to this registry's figures in text() and gatewayCounters(). */
  aggregate(children: () => Promise<ProcessReport[]>): void {
    this.processes = children;
  }

  /** Prometheus text for the whole gateway: this process, plus its children's counters summed. */
  async text(): Promise<string> {
    if (!this.processes) return this.registry.metrics();
    const [own, children] = await Promise.all([this.registry.getMetricsAsJSON(), this.processes()]);
    return AggregatorRegistry.aggregate([own, ...children.map((c) => c.metrics)]).metrics();
  }

  /** Per-connector counters of the whole gateway (this process and its children), and the children's facts summed. */
  async gatewayCounters(): Promise<{ connectors: (name: string) => Readonly<ConnectorCounters>; facts: Record<string, number>; backPressure: HeartbeatPressure | null }> {
    const children = this.processes ? await this.processes() : [];
    const sum = new Map<string, ConnectorCounters>();
    const facts: Record<string, number> = {};
    for (const [name, c] of [...this.connectors, ...children.flatMap((r) => Object.entries(r.connectors))]) {
      const t = sum.get(name) ?? { connections: 0, accepted: 0, rejected: 0, relayDenied: 0, authFailures: 0 };
      t.connections += c.connections;
      t.accepted += c.accepted;
      t.rejected += c.rejected;
      t.relayDenied += c.relayDenied;
      t.authFailures += c.authFailures;
      sum.set(name, t);
    }
    for (const r of children) for (const [k, v] of Object.entries(r.facts)) facts[k] = (facts[k] ?? 0) + v;
    const backPressure = highestPressure(children.flatMap((r) => (r.backPressure ? [r.backPressure] : [])));
    return { connectors: (name) => sum.get(name) ?? { connections: 0, accepted: 0, rejected: 0, relayDenied: 0, authFailures: 0 }, facts, backPressure };
  }

  /** Queue state and Redis health, read at most once per snapshotMs; never rejects. */
  snapshot(now = Date.now()): Promise<QueueSnapshot> {
    if (this.cached && now - this.cachedAt < this.snapshotMs) return this.cached;
    this.cachedAt = now;
    this.cached = this.read(now);
    return this.cached;
  }

  /** Forgets the cached snapshot (after a retry or suspend from the dashboard). */
  invalidate(): void {
    this.cached = null;
  }

  private async read(now: number): Promise<QueueSnapshot> {
    const q = this.queueSource;
    if (!q) return { redisUp: false, error: 'no queue', counts: {}, hops: [], poison: 0, shards: [], at: now };
    try {
      await q.ping();
      const [counts, hops, view, live] = await Promise.all([q.counts(), q.hops(), q.shards?.(), q.processes?.()]);
      const shards = (view?.shards ?? []).map((s) => ({ shard: s.index, prefix: s.prefix, master: s.master, messages: s.messages }));
      const liveByRole: Record<string, number> = {};
      for (const p of live ?? []) liveByRole[p.role] = (liveByRole[p.role] ?? 0) + 1;
      return { redisUp: true, error: null, counts, hops: hops.rows, poison: hops.poison, shards, ...(live ? { liveByRole } : {}), at: now };
    } catch (err) {
      return { redisUp: false, error: (err as Error).message, counts: {}, hops: [], poison: 0, shards: [], at: now };
    }
  }
}
