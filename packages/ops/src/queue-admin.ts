// Queue administration against the shared Redis, from any machine with the gateway's config:
// what Exchange's Get-Queue / Get-Message / Retry-Queue / Suspend-Queue / Remove-Message do,
// on BullMQ jobs and their per-recipient state. Reads never change a job; writes go through
// BullMQ (promote, retry, remove) and the worker's own DSN code, so workers see nothing unusual.
import path from 'node:path';
import { Queue, type Job, type JobType } from 'bullmq';
import type { Redis } from 'ioredis';
import { liveProcesses, type ProcessHeartbeat } from './process-registry.js';
import { readStats, sampleHopDepths, type StatsRange, type StatsSeries } from './stats.js';
import type { Logger } from 'pino';
import type { GatewayConfig, RouteSecret } from '@mailgw/config';
import { formatReply, headerValue, messageHeaderFields } from '@mailgw/mail';
import {
  DEFAULT_QUEUE_NAME,
  DsnSender,
  RouteTable,
  clusterMasters,
  placementWarnings,
  shardRows,
  SuspendedHops,
  SuspendedMessages,
  createProducerConnection,
  dsnSenderOptions,
  keySpace,
  openShardedMailStore,
  openTrackingLog,
  shardProbeOrder,
  trackingBase,
  trackingDir,
  readTrackingStreams,
  streamDays,
  readMessageRecord,
  readEnvelope,
  readHeads,
  jobIds,
  readJobs,
  scanJobs,
  SCANNABLE_STATES,
  initialState,
  IpBlockListStore,
  waitForReady,
  type DeliveryJob,
  type DeliveryState,
  type HopTls,
  type KeySpace,
  type ScannableState,
  type ScannedJob,
  type ShardedMailStore,
  type ShardRow,
  type TrackingEvent,
  type TrackingLog,
} from '@mailgw/queue';
import { searchTracking, type TrackingRecord } from './tracking-search.js';
import { readTraffic } from './traffic-read.js';
import type { TrafficSummary } from './traffic-summary.js';
import { ADMIN_REMOVED_REPLY, sendAdministrativeNdr } from './admin-ndr.js';
import { hopRows, nextAttempt, pendingHops, type HopRow, type QueuedMessage } from './hop-view.js';
import { STATES_OF, compileFilter, isEmptyFilter, messageFacts, messageRow, messageStatus, needsSubject, type MessageFacts, type MessageFilter, type MessageRow } from './message-filter.js';

export interface QueueAdminOptions {
  /** redis://… of the queue (REDIS_URL or redis.url). */
  readonly redisUrl: string;
  /**
   * The gateway configuration: key prefix, routes (for hops), queue timing and DSN sender.
   * Route passwords are never needed (hop keys do not contain them): a configuration loaded
   * with secrets: 'unresolved' will do, so this works without the smarthosts' passEnv variables.
   */
  readonly gateway: GatewayConfig<RouteSecret>;
  /** Data dir: `remove` writes its tracking events under it. */
  readonly dataDir: string;
  /** Bound on each Redis command (default 3000 ms). */
  readonly commandTimeoutMs?: number;
  /** How long open() waits for Redis (default 5000 ms). */
  readonly connectTimeoutMs?: number;
  readonly logger?: Logger;
  /** Where `remove` records its events; default a tracking log under dataDir. */
  readonly tracking?: TrackingLog;
}

export interface RecipientView {
  readonly address: string;
  readonly status: 'pending' | 'delivered' | 'failed';
  readonly attempts: number;
  readonly lastAttemptAt: number | null;
  readonly lastReply: string | null;
  readonly remoteMta: string | null;
  /** Next hop of a pending recipient. */
  readonly hop: string | null;
  /** The send connector (or route) of that hop. */
  readonly connector: string | null;
  readonly suspended: boolean;
  readonly notify: readonly string[] | null;
}

export interface MessageView {
  readonly id: string;
  readonly state: string;
  readonly job: DeliveryJob | null;
  readonly nextAttemptAt: number | null;
  /** Attempts that ended with a recipient deferred. */
  readonly deferrals: number;
  readonly failedReason: string | null;
  readonly recipients: readonly RecipientView[];
  /** Per next hop tried: the TLS policy of its last attempt (DANE, MTA-STS enforce|testing, connector, opportunistic) and why. */
  readonly hopTls: ReadonlyArray<HopTls & { readonly hop: string }>;
}

export type RetryTarget = { readonly id: string } | { readonly hop: string } | { readonly all: true };

export interface RetryResult {
  /** Messages moved to the front of the queue now. */
  readonly retried: readonly string[];
  readonly skipped: ReadonlyArray<{ readonly id: string; readonly why: string }>;
}

export interface SelectResult {
  /** The first `limit` matching messages after the `after` bookmark, oldest first (queue id order). */
  readonly rows: readonly MessageRow[];
  /** Every matching message, before the bookmark too. */
  readonly matched: number;
  /** Matching messages after the bookmark (the rows are the first of them). */
  readonly remaining: number;
  /** Queue ids of every matching message (for bulk actions); with an empty filter only those read before `limit` rows were found. */
  readonly ids: readonly string[];
}

export interface BulkResult {
  readonly done: readonly string[];
  readonly skipped: ReadonlyArray<{ readonly id: string; readonly why: string }>;
}

export type ResubmitResult = { readonly ok: true; readonly id: string; readonly reset: boolean } | { readonly ok: false; readonly id: string; readonly why: string };

export type RemoveResult =
  | { readonly ok: true; readonly id: string; readonly pending: number; readonly ndr: string | null; readonly ndrRecipients: readonly string[]; readonly ndrWithheld?: string }
  | { readonly ok: false; readonly id: string; readonly why: string };

const LIVE_STATES = ['active', 'waiting', 'prioritized', 'delayed'] as const;

/** One queue shard: where it lives (shard → prefix → slot → master) and the messages it holds. */
export interface ShardStatus extends ShardRow {
  /** Undelivered messages (waiting, prioritized, active, delayed jobs) on this shard. */
  readonly messages: number;
}

/** The shard map as `mailgw queue status` and /metrics show it. */
export interface ShardsView {
  /** True on a Redis Cluster (tags placed over the masters and stored in Redis). */
  readonly cluster: boolean;
  readonly shards: readonly ShardStatus[];
  /** Masters (host:port) of the cluster, with the shards each serves. */
  readonly masters: ReadonlyArray<{ readonly addr: string; readonly shards: readonly number[] }>;
  readonly warnings: readonly string[];
}

/** The Subject in the first bytes of a stored message; null when it has none or is gone. */
const subjectOf = (head: Buffer | null): string | null => (head ? headerValue(messageHeaderFields(head), 'subject') : null);
const PAGE = 1000;

/** Keeps the `limit` entries with the smallest ids offered (a page of a listing sorted by id). */
class FirstIds<T> {
  private entries: Array<[string, T]> = [];
  /** Entries offered in all. */
  offered = 0;

  constructor(private readonly limit: number) {}

  offer(id: string, value: T): void {
    this.offered++;
    if (this.limit <= 0) return;
    this.entries.push([id, value]);
    if (this.entries.length >= 2 * this.limit) this.trim();
  }

  private trim(): void {
    this.entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    if (this.entries.length > this.limit) this.entries.length = this.limit;
  }

  first(): T[] {
    this.trim();
    return this.entries.map((e) => e[1]);
  }
}
/** Bytes of a stored message read to find its Subject (`--subject`). */
const HEAD_BYTES = 64 * 1024;

function toMessage(job: Job, state: string): QueuedMessage {
  return readMessageRecord(job, state);
}

export class QueueAdmin {
  private routes: RouteTable<RouteSecret>;
  private gateway: GatewayConfig<RouteSecret>;
  private trackingLog: TrackingLog | null;
  private readonly ownTracking: boolean;
  /** The IP Block List (sender reputation's and the admins' entries), gateway-wide. */
  readonly ipBlockList: IpBlockListStore;

  private constructor(
    private readonly opts: QueueAdminOptions,
    readonly keys: KeySpace,
    private readonly store: ShardedMailStore,
    private readonly redis: Redis,
    /** One BullMQ queue per shard (index = shard). */
    private readonly queues: readonly Queue[],
  ) {
    this.gateway = opts.gateway;
    this.ipBlockList = new IpBlockListStore(redis, keys);
    this.routes = new RouteTable(opts.gateway.sendConnectors);
    this.trackingLog = opts.tracking ?? null;
    this.ownTracking = !opts.tracking;
  }

  /** Connects (throws QueueUnavailableError when Redis does not answer within connectTimeoutMs). */
  static async open(opts: QueueAdminOptions): Promise<QueueAdmin> {
    const keys = keySpace(opts.gateway.redis.prefix, DEFAULT_QUEUE_NAME);
    const commandTimeoutMs = opts.commandTimeoutMs ?? 3000;
    const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    const onError = (err: Error) => opts.logger?.debug({ err: err.message }, 'queue admin Redis error');
    const store = await openShardedMailStore({ url: opts.redisUrl, prefix: keys.prefix, queueName: keys.queueName, shards: opts.gateway.queue.shards, commandTimeoutMs, connectTimeoutMs, connectionName: `mailgw:admin:${process.pid}:store`, onError });
    // Fails fast while Redis is away (a scrape or a CLI call gets an error, never hangs) and reconnects by itself.
    const redis = createProducerConnection({ url: opts.redisUrl, commandTimeoutMs, connectTimeoutMs, connectionName: `mailgw:admin:${process.pid}`, onError });
    const queues = store.shards.map((shard) => new Queue(shard.queueName, { connection: redis, prefix: shard.keys.bullPrefix }));
    for (const queue of queues) queue.on('error', onError);
    try {
      await waitForReady(redis, connectTimeoutMs);
      await Promise.all(queues.map((queue) => queue.waitUntilReady()));
    } catch (err) {
      await Promise.all(queues.map((queue) => queue.close().catch(() => undefined)));
      redis.disconnect();
      await store.close();
      throw err;
    }
    return new QueueAdmin(opts, keys, store, redis, queues);
  }

  /** Live reload: hops and NDRs follow the new (validated, compiled) routes and queue settings. */
  useGateway(g: GatewayConfig<RouteSecret>): void {
    this.routes = new RouteTable(g.sendConnectors);
    this.gateway = g;
  }

  private suspendedHops(): SuspendedHops {
    return new SuspendedHops(this.redis, this.keys);
  }

  private suspendedMessages(): SuspendedMessages {
    return new SuspendedMessages(this.redis, this.keys);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /** The per-minute counters of the whole gateway for the charts (stats.ts). */
  stats(range: StatsRange, now = Date.now()): Promise<StatsSeries> {
    return readStats(this.redis, this.keys.prefix, range, now);
  }

  /** This minute's queue depth per next hop, if no process has sampled it yet. */
  sampleHopDepths(hops: ReadonlyArray<{ readonly hop: string; readonly messages: number }>, now = Date.now()): Promise<boolean> {
    return sampleHopDepths(this.redis, this.keys.prefix, hops, now);
  }

  /**
   * A message's tracking history (Get-MessageTrackingLog -InternalMessageId), oldest first: the
   * gateway-wide streams in Redis (every process, every machine; the days still kept) and this
   * machine's files under dataDir, each event once. Events of DSNs about it (reference) too.
   */
  async tracking(queueId: string, now = Date.now()): Promise<TrackingRecord[]> {
    const lines = await readTrackingStreams(this.redis, this.keys.prefix, streamDays(null, now, this.gateway.logs.messageTrackingStreamMaxAge));
    return searchTracking(trackingDir(path.resolve(this.opts.dataDir)), { queueId }, lines);
  }

  /**
   * The traffic summary of [since, now) (the dashboard's Traffic page): every process's tracking
   * and agent log lines from the streams in Redis (traffic-read.ts).
   */
  async traffic(since: Date, now = Date.now(), top = 10): Promise<{ summary: TrafficSummary; where: string }> {
    return readTraffic({ redis: this.redis, prefix: this.keys.prefix, logs: this.gateway.logs, dataDir: this.opts.dataDir }, since, now, top);
  }

  /** gateway.yaml queue.delayNotificationTimeout in force (ms; follows a reload). */
  delayNotificationTimeoutMs(): number {
    return this.gateway.queue.delayNotificationTimeout;
  }

  /** Every live mailgw process of the gateway, from their heartbeats (process-registry.ts). */
  processes(): Promise<ProcessHeartbeat[]> {
    return liveProcesses(this.redis, this.keys.prefix);
  }

  /** The job of a message on whichever shard holds it (its hashed shard first), or undefined. */
  private async getJob(id: string): Promise<Job | undefined> {
    for (const i of shardProbeOrder(id, this.queues.length)) {
      const job = await this.queues[i]!.getJob(id);
      if (job) return job;
    }
    return undefined;
  }

  /** Job counts per BullMQ state, summed over the shards. */
  async counts(...states: JobType[]): Promise<Record<string, number>> {
    const wanted: JobType[] = states.length > 0 ? states : ['waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'];
    const all = await Promise.all(this.queues.map((queue) => queue.getJobCounts(...wanted)));
    const sum: Record<string, number> = {};
    for (const c of all) for (const [k, v] of Object.entries(c)) sum[k] = (sum[k] ?? 0) + v;
    return sum;
  }

  /** Shard → prefix → slot → master and the messages per shard, with the placement warnings (as of open()). */
  async shards(): Promise<ShardsView> {
    const opened = this.store.shardMap;
    // The masters as they are now (a resharding since open() shows), the shards' tags as opened.
    const live = opened.cluster ? await clusterMasters(this.store.connection) : [];
    const rows = opened.cluster ? shardRows(opened.rows, live) : opened.rows;
    const map = opened.cluster ? { masters: live, warnings: [...placementWarnings(rows, live), ...opened.stranded] } : opened;
    const depth = await Promise.all(this.queues.map((queue) => queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed')));
    const shards = rows.map((r, i) => ({ ...r, messages: Object.values(depth[i] ?? {}).reduce((a, b) => a + b, 0) }));
    const masters = [...map.masters].sort((a, b) => a.addr.localeCompare(b.addr, 'en', { numeric: true })).map((m) => ({ addr: m.addr, shards: shards.filter((s) => s.master === m.addr).map((s) => s.index) }));
    return { cluster: opened.cluster, shards, masters, warnings: map.warnings };
  }

  /** Every message still to deliver (and, with `failed`, the poison/invalid ones). */
  async messages(opts: { failed?: boolean } = {}): Promise<QueuedMessage[]> {
    const seen = new Map<string, QueuedMessage>();
    for (const state of [...LIVE_STATES, ...(opts.failed ? (['failed'] as const) : [])]) {
      for (const queue of this.queues) {
        for (let start = 0; ; start += PAGE) {
          const jobs = await queue.getJobs(state, start, start + PAGE - 1, true);
          // A job that moved between two reads is counted where it was seen first.
          for (const j of jobs) if (j && !seen.has(String(j.id))) seen.set(String(j.id), toMessage(j, state));
          if (jobs.length < PAGE) break;
        }
      }
    }
    return [...seen.values()];
  }

  /** Exchange's queues: one row per next hop, plus the number of poison (failed) messages. */
  async hops(now = Date.now()): Promise<{ rows: HopRow[]; poison: number }> {
    const [messages, suspended, counts] = await Promise.all([this.messages(), this.suspendedHops().list(), this.counts('failed')]);
    return { rows: hopRows(messages, this.routes, new Set(suspended), now), poison: counts.failed ?? 0 };
  }

  async suspended(): Promise<string[]> {
    return this.suspendedHops().list();
  }

  async message(id: string, now = Date.now()): Promise<MessageView | null> {
    const job = await this.getJob(id);
    if (!job) return null;
    const m = toMessage(job, await job.getState());
    const suspended = new Set(await this.suspendedHops().list());
    const connectorOf = new Map<string, string>();
    const hops = m.job && m.delivery ? pendingHops(m.job, m.delivery, this.routes, connectorOf) : new Map<number, string>();
    const d: DeliveryState | null = m.delivery;
    const live = (LIVE_STATES as readonly string[]).includes(m.state);
    return {
      id: m.id,
      state: m.state,
      job: m.job,
      nextAttemptAt: live ? nextAttempt(m, now) : null,
      deferrals: d?.deferrals ?? 0,
      failedReason: m.failedReason,
      hopTls: Object.entries(d?.hopTls ?? {})
        .map(([hop, t]) => ({ hop, ...t }))
        .sort((a, b) => a.hop.localeCompare(b.hop)),
      recipients: (m.job?.rcptTo ?? []).map((r, i): RecipientView => {
        const s = d?.recipients[i];
        const hop = live ? (hops.get(i) ?? null) : null;
        return {
          address: r.address,
          status: s?.status ?? 'pending',
          attempts: s?.attempts ?? 0,
          lastAttemptAt: s?.lastAttemptAt ?? null,
          lastReply: s?.reply ? formatReply(s.reply) : null,
          remoteMta: s?.remoteMta ?? null,
          hop,
          connector: hop !== null ? (connectorOf.get(hop) ?? null) : null,
          suspended: hop !== null && suspended.has(hop),
          notify: r.notify ?? null,
        };
      }),
    };
  }

  /** The raw message as queued (our Received header on top), or null. */
  body(id: string): Promise<Buffer | null> {
    return this.store.readBody(id);
  }

  /** Exchange's Retry-Queue / Resume-Message: the messages are tried at once. */
  async retry(target: RetryTarget): Promise<RetryResult> {
    const retried: string[] = [];
    const skipped: Array<{ id: string; why: string }> = [];
    if ('id' in target) {
      const job = await this.getJob(target.id);
      if (!job) return { retried, skipped: [{ id: target.id, why: 'no such message' }] };
      const state = await job.getState();
      const why = await this.retryJob(job, state);
      if (why) skipped.push({ id: target.id, why });
      else retried.push(target.id);
      return { retried, skipped };
    }
    const messages = (await this.messages()).filter((m) => m.state === 'delayed');
    for (const m of messages) {
      if ('hop' in target) {
        if (!m.job || !m.delivery || ![...pendingHops(m.job, m.delivery, this.routes).values()].includes(target.hop)) continue;
      }
      const job = await this.getJob(m.id);
      const why = job ? await this.retryJob(job, 'delayed') : 'no longer queued';
      if (why) skipped.push({ id: m.id, why });
      else retried.push(m.id);
    }
    return { retried, skipped };
  }

  /** Moves one job to the front; returns why not, or null when done. */
  private async retryJob(job: Job, state: string): Promise<string | null> {
    try {
      if (state === 'delayed') await job.promote();
      else if (state === 'failed') await job.retry('failed');
      else if (state === 'active') return 'being delivered now';
      else if (state === 'waiting' || state === 'prioritized') return 'already waiting for a worker';
      else return `not queued (${state})`;
      return null;
    } catch (err) {
      // It moved on its own between the read and the write (a worker took it, it was promoted).
      return `not retried: ${(err as Error).message}`;
    }
  }

  /** Exchange's Suspend-Queue: true if it was not suspended before. */
  suspend(hop: string): Promise<boolean> {
    return this.suspendedHops().suspend(hop);
  }

  /** Exchange's Resume-Queue: the hop is attempted again, its waiting messages at once. */
  async resume(hop: string): Promise<{ wasSuspended: boolean; retried: RetryResult }> {
    const wasSuspended = await this.suspendedHops().resume(hop);
    return { wasSuspended, retried: await this.retry({ hop }) };
  }

  /**
   * Exchange's Remove-Message: the job and its body are deleted; with `withNdr` the pending
   * recipients fail with an NDR to the sender first. A message being delivered right now is not
   * touched (try again, or suspend its hop first).
   */
  async remove(id: string, opts: { withNdr: boolean }): Promise<RemoveResult> {
    const job = await this.getJob(id);
    if (!job) return { ok: false, id, why: 'no such message' };
    const state = await job.getState();
    if (state === 'active') return { ok: false, id, why: 'being delivered now; try again in a moment, or suspend its next hop first' };
    const m = toMessage(job, state);
    if (opts.withNdr && (!m.job || !m.delivery)) return { ok: false, id, why: 'the job is not a valid delivery job: remove it without --with-ndr' };
    const body = m.job ? await this.store.readBody(id) : null;
    try {
      await job.remove();
    } catch (err) {
      return { ok: false, id, why: `not removed: ${(err as Error).message}` };
    }
    const pending = m.delivery?.recipients.filter((r) => r.status === 'pending').length ?? 0;
    let ndr: string | null = null;
    let ndrRecipients: string[] = [];
    let ndrWithheld: string | undefined;
    if (m.job && m.delivery) {
      const data = m.job;
      const before = m.delivery.recipients.map((r) => r.status);
      const pendingAddresses = data.rcptTo.filter((_, i) => before[i] === 'pending').map((r) => r.address);
      const base = trackingBase(data);
      if (opts.withNdr) {
        const r = await sendAdministrativeNdr(data, m.delivery, body, this.dsnSender(), this.gateway.queue);
        ndr = r.ndr;
        ndrWithheld = r.withheld;
        ndrRecipients = r.reported.map((i) => data.rcptTo[i]!.address);
        if (pendingAddresses.length > 0) this.track({ ...base, eventId: 'FAIL', source: 'ADMIN', recipientAddress: pendingAddresses, recipientStatus: pendingAddresses.map(() => formatReply(ADMIN_REMOVED_REPLY)) });
        if (ndr) this.track({ ...base, eventId: 'DSN', source: 'DSN', recipientAddress: ndrRecipients, reference: ndr, sourceContext: 'failed' });
      } else if (pendingAddresses.length > 0) {
        this.track({ ...base, eventId: 'DROP', source: 'ADMIN', recipientAddress: pendingAddresses, recipientStatus: pendingAddresses.map(() => 'message deleted by administrative action without NDR') });
      }
    }
    await this.store.deleteBody(id);
    await this.suspendedMessages().resume([id]);
    this.opts.logger?.info({ queueId: id, pending, ndr, ...(ndrWithheld ? { ndrWithheld } : {}) }, 'message removed by an administrator');
    return { ok: true, id, pending, ndr, ndrRecipients, ...(ndrWithheld ? { ndrWithheld } : {}) };
  }

  /**
   * Exchange's Get-Message: the messages matching `filter`, read from Redis a page of jobs at a
   * time (only the BullMQ states the status filter can be in), oldest first by queue id (ids are
   * time-sortable and never change, so `after`, the last id of the previous page, is a bookmark
   * that stays valid while messages move between states, are delivered or are removed). A
   * snapshot while workers run: a message that moves between two pages of the scan is seen once
   * at most. The Subject is read (the first bytes of the stored message) only with a subject
   * filter, and only for messages the other filters kept.
   */
  async select(filter: MessageFilter, opts: { limit?: number; now?: number; id?: string; after?: string } = {}): Promise<SelectResult> {
    const now = opts.now ?? Date.now();
    if (opts.id !== undefined) return this.selectOne(opts.id, filter, now, opts.limit ?? Number.POSITIVE_INFINITY);
    const limit = opts.limit ?? Number.POSITIVE_INFINITY;
    const after = opts.after ?? '';
    const suspended = await this.suspendedMessages().list();
    if (isEmptyFilter(filter)) return this.selectAll(limit, after, suspended);
    const states = filter.status ? STATES_OF[filter.status] : SCANNABLE_STATES;
    const pre = compileFilter({ ...filter, subject: undefined }, now);
    const full = compileFilter(filter, now);
    const ids: string[] = [];
    const page = new FirstIds<{ raw: ScannedJob; state: ScannableState; facts: MessageFacts }>(limit);
    const seen = new Set<string>();
    for (const state of states as readonly ScannableState[]) {
      for (const shard of this.store.shards) {
        for await (const jobs of scanJobs(shard.connection, shard.keys, state, PAGE)) {
          const kept: Array<{ raw: ScannedJob; facts: MessageFacts }> = [];
          for (const raw of jobs) {
            if (seen.has(raw.id)) continue;
            seen.add(raw.id);
            // The cheap envelope for the filter; the validated record only where needed
            // (hops, rows shown, or a job the cheap reader does not understand).
            const env = readEnvelope(raw);
            const record = env ? null : readMessageRecord(raw, state);
            const status = messageStatus(state, env ? env.deferrals : (record?.delivery?.deferrals ?? 0), suspended.has(raw.id));
            if (!status) continue;
            const hops = filter.hop !== undefined ? this.hopsOf(record ?? readMessageRecord(raw, state)) : [];
            const facts: MessageFacts = env
              ? { status, sender: env.sender, recipients: env.recipients, hops, receivedAt: env.receivedAt, subject: null }
              : messageFacts(record!, status, hops, null);
            if (pre(facts)) kept.push({ raw, facts });
          }
          const subjects = needsSubject(filter) ? (await readHeads(shard.connection, shard.keys, kept.map((k) => k.raw.id), HEAD_BYTES)).map(subjectOf) : null;
          kept.forEach((k, i) => {
            const facts = subjects ? { ...k.facts, subject: subjects[i] ?? null } : k.facts;
            if (!full(facts)) return;
            ids.push(k.raw.id);
            if (k.raw.id > after) page.offer(k.raw.id, { raw: k.raw, state, facts });
          });
        }
      }
    }
    const rows = page.first().map(({ raw, state, facts }) => {
      const r = readMessageRecord(raw, state);
      return messageRow(r, filter.hop !== undefined ? facts : { ...facts, hops: this.hopsOf(r) });
    });
    return { rows, matched: ids.length, remaining: page.offered, ids: ids.sort() };
  }

  private hopsOf(r: QueuedMessage): string[] {
    return r.job && r.delivery && r.state !== 'failed' ? [...new Set(pendingHops(r.job, r.delivery, this.routes).values())] : [];
  }

  /**
   * No filter: every queued message's id is read (ids only, a few MB for 100,000), sorted, and
   * only the jobs of the page are read in full.
   */
  private async selectAll(limit: number, after: string, suspended: ReadonlySet<string>): Promise<SelectResult> {
    const where = new Map<string, { state: ScannableState; shard: number }>();
    for (const state of SCANNABLE_STATES) {
      for (const [i, shard] of this.store.shards.entries()) {
        for (const id of await jobIds(shard.connection, shard.keys, state)) if (!where.has(id)) where.set(id, { state, shard: i });
      }
    }
    const all = [...where.keys()].sort();
    const next = all.filter((id) => id > after);
    const rows: MessageRow[] = [];
    const shown: string[] = [];
    // A job may be gone or finished by the time it is read: read on until the page is full.
    for (let at = 0; at < next.length && rows.length < limit; ) {
      const chunk = next.slice(at, at + Math.min(PAGE, Math.max(limit - rows.length, 50)));
      at += chunk.length;
      const read = new Map<string, ScannedJob>();
      for (const [i, shard] of this.store.shards.entries()) {
        const ids = chunk.filter((id) => where.get(id)!.shard === i);
        for (const j of await readJobs(shard.connection, shard.keys, ids)) read.set(j.id, j);
      }
      for (const id of chunk) {
        const raw = read.get(id);
        if (!raw || rows.length >= limit) continue;
        const state = where.get(id)!.state;
        const r = readMessageRecord(raw, state);
        const status = messageStatus(state, r.delivery?.deferrals ?? 0, suspended.has(id));
        if (!status) continue;
        rows.push(messageRow(r, messageFacts(r, status, this.hopsOf(r), null)));
        shown.push(id);
      }
    }
    return { rows, matched: all.length, remaining: next.length, ids: shown };
  }

  /** select() narrowed to one queue id: that job is read, not the whole queue. */
  private async selectOne(id: string, filter: MessageFilter, now: number, limit: number): Promise<SelectResult> {
    const none: SelectResult = { rows: [], matched: 0, remaining: 0, ids: [] };
    const job = await this.getJob(id);
    if (!job) return none;
    const r = readMessageRecord(job, await job.getState());
    const status = messageStatus(r.state, r.delivery?.deferrals ?? 0, await this.suspendedMessages().has(id));
    if (!status) return none;
    const hops = r.job && r.delivery && r.state !== 'failed' ? [...new Set(pendingHops(r.job, r.delivery, this.routes).values())] : [];
    const subject = needsSubject(filter) ? subjectOf(await this.store.readBody(id)) : null;
    const facts = messageFacts(r, status, hops, subject);
    if (!compileFilter(filter, now)(facts)) return none;
    return { rows: limit > 0 ? [messageRow(r, facts)] : [], matched: 1, remaining: 1, ids: [r.id] };
  }

  /** Runs `fn` for every id, `width` at a time, collecting done and skipped. */
  private async each(ids: readonly string[], width: number, fn: (id: string) => Promise<string | null>): Promise<BulkResult> {
    const done: string[] = [];
    const skipped: Array<{ id: string; why: string }> = [];
    for (let i = 0; i < ids.length; i += width) {
      const batch = ids.slice(i, i + width);
      const whys = await Promise.all(batch.map(async (id) => fn(id).catch((err: unknown) => `failed: ${(err as Error).message}`)));
      batch.forEach((id, k) => (whys[k] === null ? done.push(id) : skipped.push({ id, why: whys[k]! })));
    }
    return { done, skipped };
  }

  /**
   * Exchange's Suspend-Message: each message stays queued, untried, until resumed or expired.
   * The ids go into the suspended set first, so a worker that takes one from then on holds it;
   * one being delivered right now finishes that attempt (reported as skipped).
   */
  async suspendMessages(ids: readonly string[]): Promise<BulkResult> {
    const sm = this.suspendedMessages();
    await sm.suspend(ids);
    const r = await this.each(ids, 50, async (id) => {
      const job = await this.getJob(id);
      const state = job ? await job.getState() : 'gone';
      if (state === 'active') return 'being delivered now: this attempt runs to its end; held from the next one';
      if ((LIVE_STATES as readonly string[]).includes(state)) return null;
      await sm.resume([id]);
      return state === 'failed' ? 'poison (set aside already): see mailgw queue show' : 'no longer queued';
    });
    this.opts.logger?.info({ suspended: r.done.length, skipped: r.skipped.length }, 'messages suspended by an administrator');
    return r;
  }

  /** Exchange's Resume-Message: suspended messages are tried again at once. */
  async resumeMessages(ids: readonly string[]): Promise<BulkResult> {
    const suspended = await this.suspendedMessages().list();
    const held = ids.filter((id) => suspended.has(id));
    await this.suspendedMessages().resume(held);
    const r = await this.each(ids, 50, async (id) => {
      if (!suspended.has(id)) return 'not suspended';
      const job = await this.getJob(id);
      if (!job) return 'no longer queued';
      const state = await job.getState();
      // Waiting or being tried: a worker takes (or finishes) it anyway.
      if (state !== 'delayed') return null;
      const why = await this.retryJob(job, state);
      return why && why.startsWith('not retried') ? why : null;
    });
    this.opts.logger?.info({ resumed: r.done.length, skipped: r.skipped.length }, 'messages resumed by an administrator');
    return r;
  }

  /** Exchange's Retry-Message for many: each waiting message is tried now; suspended and poison ones are left alone. */
  async retryMessages(ids: readonly string[]): Promise<BulkResult> {
    const suspended = await this.suspendedMessages().list();
    return this.each(ids, 50, async (id) => {
      if (suspended.has(id)) return 'suspended: mailgw queue resume it first';
      const job = await this.getJob(id);
      if (!job) return 'no longer queued';
      const state = await job.getState();
      if (state === 'failed') return 'poison: mailgw queue resubmit it after a fix';
      return this.retryJob(job, state);
    });
  }

  /** Remove-Message for many (see remove); NDRs go out one by one, never twice. */
  async removeMessages(ids: readonly string[], opts: { withNdr: boolean }): Promise<BulkResult & { readonly ndrs: readonly string[] }> {
    const ndrs: string[] = [];
    const r = await this.each(ids, 20, async (id) => {
      const res = await this.remove(id, opts);
      if (!res.ok) return res.why;
      if (res.ndr) ndrs.push(res.ndr);
      return null;
    });
    return { ...r, ndrs };
  }

  /**
   * Puts a poison message (BullMQ failed) back in the queue after a fix: its pending
   * recipients are tried again, those delivered are not. A message whose delivery state cannot
   * be read goes back only with `resetState` (every recipient is tried again: the admin's
   * decision, as a delivered recipient may get a second copy). An invalid job cannot be.
   */
  async resubmit(id: string, opts: { resetState: boolean }): Promise<ResubmitResult> {
    const job = await this.getJob(id);
    if (!job) return { ok: false, id, why: 'no such message' };
    const state = await job.getState();
    if (state !== 'failed') return { ok: false, id, why: `not a poison message (it is ${state}): mailgw queue retry tries it now` };
    const m = toMessage(job, state);
    if (!m.job) return { ok: false, id, why: `the job is not a valid delivery job and can only be removed (${m.error ?? 'unreadable'})` };
    let reset = false;
    if (!m.delivery) {
      if (!opts.resetState) return { ok: false, id, why: `${m.error ?? 'its delivery state cannot be read'}; --reset-state puts it back with every recipient pending (one already delivered may get it twice)` };
      await job.updateProgress(initialState(m.job));
      reset = true;
    }
    if ((await this.store.readBody(id)) === null) return { ok: false, id, why: 'its body is no longer in the queue: remove it (--with-ndr tells the sender)' };
    await job.retry('failed');
    this.opts.logger?.info({ queueId: id, reset }, 'poison message resubmitted by an administrator');
    return { ok: true, id, reset };
  }

  private dsnSender(): DsnSender {
    return new DsnSender(this.store, this.redis, this.keys, dsnSenderOptions(this.gateway));
  }

  private track(event: TrackingEvent): void {
    this.trackingLog ??= openTrackingLog(trackingDir(path.resolve(this.opts.dataDir)), { onError: (err) => this.opts.logger?.warn({ err }, 'tracking log write failed') });
    this.trackingLog.write(event);
  }

  async close(): Promise<void> {
    if (this.ownTracking) await this.trackingLog?.close();
    await Promise.all(this.queues.map((queue) => queue.close().catch(() => undefined)));
    this.redis.disconnect();
    await this.store.close();
  }
}
