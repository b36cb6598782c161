import { Queue, type DefaultJobOptions } from 'bullmq';
// Writes BullMQ's job hash directly (finish message): see library-overrides.ts.
import './library-overrides.js';
import type { Redis } from 'ioredis';
import { QueueUnavailableError, toQueueUnavailable, withDeadline } from './errors.js';
import {
  DELIVERY_JOB_VERSION,
  InvalidDeliveryJobError,
  JOB_ID_RE,
  parseDeliveryJob,
  type DeliveryJob,
  type DeliveryJobInput,
} from './job.js';
import { keySpace, type KeySpace } from './keys.js';
import { initialState, type DeliveryState } from './delivery-state.js';
import type { Reply } from '@mailgw/mail';
import { createProducerConnection, waitForReady } from './redis-connection.js';
import { defineScripts } from './scripts.js';
import { PIECEWISE_SET_BYTES, corkUntilPipelined, setInPieces } from './piecewise-set.js';

/**
 * The mail store: the only code that writes mail to Redis.
 *
 * A listener streams each message body into Redis while DATA arrives
 * (`beginMessage` → `write`…), then `commit`s the envelope as a BullMQ job
 * (jobId = queueId) or `abort`s. Bodies live under their own key (never in job
 * data), written in chunks of ~256 KiB with backpressure, with a TTL until
 * the commit so that a listener killed mid-DATA leaves nothing permanent.
 *
 * Every Redis failure surfaces as a QueueUnavailableError within
 * `commandTimeoutMs` (plus a small margin): the connection does not queue
 * commands while Redis is away, and reconnects in the background forever.
 */

export interface MailStoreOptions {
  /** redis://host:port[/db] */
  url: string;
  /** Key prefix (default `{mailgw}`, a Redis Cluster hash tag). */
  prefix?: string;
  /** BullMQ queue name (default `delivery`). */
  queueName?: string;
  /** Bound on each Redis command (default 3000 ms). */
  commandTimeoutMs?: number;
  /**
   * openMailStore waits until Redis answers (at most `connectTimeoutMs`) and
   * throws QueueUnavailableError otherwise (default true). With false it
   * returns at once and operations fail with QueueUnavailableError until
   * Redis is reachable.
   */
  requireReady?: boolean;
  /** How long openMailStore waits for Redis (default 5000 ms). */
  connectTimeoutMs?: number;
  /** TTL of a body until its commit, refreshed at every flush (default 3600 s). */
  bodyTtlSeconds?: number;
  /** Body bytes buffered in memory before an APPEND (default 256 KiB). */
  flushThresholdBytes?: number;
  /** BullMQ job name (default `deliver`). */
  jobName?: string;
  /**
   * Options of every job (default: completed jobs kept 1 day, failed 7 days). Only those the
   * enqueue script stores as BullMQ would (see MailJobOptions); others are refused at open.
   */
  defaultJobOptions?: MailJobOptions;
  /**
   * Replicas that must have a committed message before commit() resolves (Redis WAIT after
   * the writes); fewer within replicaTimeoutMs and the commit fails, the message removed
   * (default 0: no waiting). Not for Redis Cluster.
   */
  waitForReplicas?: number;
  /** How long commit() waits for them (default 1000 ms; keep it under commandTimeoutMs). */
  replicaTimeoutMs?: number;
  /** Connection name shown by CLIENT LIST. */
  connectionName?: string;
  /** Background errors (connection lost, reconnect failures…), for logging. */
  onError?: (err: Error) => void;
}

/** What `commit` takes: the job without `v` and `bodyKey`; `size` defaults to the bytes written. */
export type CommitInput = Omit<DeliveryJobInput, 'v' | 'bodyKey' | 'size'> & { size?: number };

export type WriterState = 'open' | 'committing' | 'committed' | 'aborted' | 'failed';

export interface CommitOptions {
  /** The message's header section (see commit). */
  readonly header?: Buffer;
  /** Replaces every body byte written (a filter replaced the body). */
  readonly body?: Buffer;
  /**
   * Recipients (indexes in the job's rcptTo) failed before delivery began, with the reply their
   * DSN gives (a recipient's own size limit): the job starts with them failed in its delivery
   * state, so the first attempt reports them and delivers to the others. A job of an older
   * version reads the same state (no field is added to the job itself).
   */
  readonly failedRecipients?: ReadonlyArray<{ readonly index: number; readonly reply: Reply }>;
}

export interface MessageWriter {
  readonly queueId: string;
  readonly bodyKey: string;
  /** Body bytes accepted by write() so far. */
  readonly bytesWritten: number;
  readonly state: WriterState;
  /**
   * Appends body bytes. Resolves when the chunk is accepted; await it before
   * reading more (backpressure: at most ~2 × flushThresholdBytes are held).
   * The chunk is kept by reference until flushed: do not modify it.
   * Rejects with QueueUnavailableError when Redis fails.
   */
  write(chunk: Buffer): Promise<void>;
  /**
   * Stores the tail of the body, removes its TTL and adds the delivery job
   * (jobId = queueId). `header`, when given, is the message's header section
   * (ending with its empty line) and goes before the bytes written: the
   * listener holds the header until the filters have run and writes only the
   * body while DATA streams in. The job's size counts both. On any failure the
   * body (and the job, if it was added) is removed and the promise rejects:
   * with QueueUnavailableError for Redis failures, InvalidDeliveryJobError for
   * a bad job. `body`, when given, replaces every byte written (a filter
   * replaced the body).
   */
  commit(job: CommitInput, opts?: CommitOptions): Promise<DeliveryJob>;
  /** Drops the message and its body. Never throws. */
  abort(): Promise<void>;
}

export interface StoredDeliveryJob {
  /** BullMQ job id (= queueId). */
  id: string;
  name: string;
  data: DeliveryJob;
  /** When the job was added (ms since epoch). */
  timestamp: number;
  attemptsMade: number;
}

export interface MailStore {
  readonly keys: KeySpace;
  readonly prefix: string;
  readonly queueName: string;
  /** ioredis connection status (`ready` when usable). */
  readonly status: string;
  /**
   * The store's Redis connection. It auto-pipelines: a small read issued on it in the same
   * tick as readBody() goes out in the same write and comes back in the same round trip.
   */
  readonly connection: Redis;
  /** Starts a message; `queueId` is a newQueueId() (any [A-Za-z0-9_-]{1,128}). */
  beginMessage(queueId: string): MessageWriter;
  /** The stored message (its header section and body, wherever the header is kept), or null. */
  readBody(queueId: string): Promise<Buffer | null>;
  /** Deletes a message body (after delivery). */
  deleteBody(queueId: string): Promise<void>;
  /**
   * A message every recipient of which is final: records `progress` (its final delivery
   * state, as JSON, where BullMQ keeps a job's progress) in its job, if the job still exists,
   * and deletes its body, atomically in one round trip. A crash can then never leave the
   * job pending with its body gone (which would bounce mail that was delivered).
   */
  finishMessage(queueId: string, progress: unknown): Promise<void>;
  /** The delivery job of a message (validated), or null. */
  getJob(queueId: string): Promise<StoredDeliveryJob | null>;
  /** Resolves when Redis answers PING. */
  ping(): Promise<void>;
  /** Redis' maxmemory-policy (callers should warn unless `noeviction`: evictionWarning); 'unknown' if hidden. */
  checkEvictionPolicy(): Promise<string>;
  close(): Promise<void>;
}

/**
 * The job options mailgw gives its jobs. enqueue-message.lua writes them into the job as
 * BullMQ 6.7.0's Job + optsAsJSON would: these keep their names there (unlike deduplication,
 * keepLogs, …, which BullMQ renames) and none of them makes BullMQ add a job by another script
 * (delay, priority, lifo, parent, repeat do).
 */
export type MailJobOptions = Pick<DefaultJobOptions, 'attempts' | 'removeOnComplete' | 'removeOnFail'>;
const MAIL_JOB_OPTIONS: ReadonlySet<string> = new Set(['attempts', 'removeOnComplete', 'removeOnFail']);

const DEFAULT_DEFAULT_JOB_OPTIONS: MailJobOptions = {
  removeOnComplete: { age: 24 * 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

type ExecResult = [error: Error | null, result: unknown][] | null;

/** Error codes of enqueue-message.lua (the first word of its error replies). */
const JOB_EXISTS = 'MAILGW_JOB_EXISTS';

/** The options as BullMQ stores them in a job (its Job constructor puts `attempts: 0` first); throws on any other option. */
function storedJobOptions(defaults: MailJobOptions): Record<string, unknown> {
  for (const k of Object.keys(defaults)) {
    if (!MAIL_JOB_OPTIONS.has(k)) throw new TypeError(`defaultJobOptions.${k} is not supported: mailgw writes its jobs itself (enqueue-message.lua), with ${[...MAIL_JOB_OPTIONS].join(', ')} only`);
  }
  return { attempts: 0, ...defaults };
}

/** Throws the first error of a MULTI/EXEC result; returns the results. */
function execResults(res: ExecResult): unknown[] {
  if (!res) throw new Error('transaction aborted');
  for (const [err] of res) if (err) throw err;
  return res.map(([, value]) => value);
}

const EMPTY = Buffer.alloc(0);

/** The enqueue script's "job exists already" (through toQueueUnavailable's cause too). */
function isJobExists(err: unknown): boolean {
  const e = err instanceof QueueUnavailableError && err.cause ? err.cause : err;
  return e instanceof Error && e.message.startsWith(`${JOB_EXISTS} `);
}

function assertQueueId(queueId: string): void {
  if (typeof queueId !== 'string' || !JOB_ID_RE.test(queueId)) {
    throw new TypeError(`invalid queueId ${JSON.stringify(queueId)}: must match [A-Za-z0-9_-]{1,128}`);
  }
}

interface QueueSlot {
  queue: Queue;
  state: 'pending' | 'ready' | 'failed';
}

class RedisMailStore implements MailStore {
  readonly keys: KeySpace;
  readonly redis: Redis;
  readonly commandTimeoutMs: number;
  readonly deadlineMs: number;
  readonly bodyTtlSeconds: number;
  readonly flushThresholdBytes: number;
  readonly jobName: string;
  readonly waitForReplicas: number;
  readonly replicaTimeoutMs: number;
  private readonly defaultJobOptions: MailJobOptions;
  /** What every job stores as its options, but its id (storedJobOptions). */
  private readonly jobOptions: Record<string, unknown>;
  /** lua/finish-message.lua on this connection. */
  private readonly finishScript: (...args: Array<string | number | Buffer>) => Promise<unknown>;
  /** lua/enqueue-message.lua on this connection. */
  private readonly enqueueScript: (...args: Array<string | number | Buffer>) => Promise<unknown>;
  private readonly onError: ((err: Error) => void) | undefined;
  private slot: QueueSlot;
  private closed = false;

  constructor(opts: MailStoreOptions) {
    this.keys = keySpace(opts.prefix, opts.queueName);
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 3000;
    if (!(this.commandTimeoutMs > 0)) throw new RangeError('commandTimeoutMs must be > 0');
    // ioredis' own commandTimeout should fire first; this is the backstop.
    this.deadlineMs = this.commandTimeoutMs + 250;
    this.bodyTtlSeconds = opts.bodyTtlSeconds ?? 3600;
    this.flushThresholdBytes = opts.flushThresholdBytes ?? 256 * 1024;
    this.jobName = opts.jobName ?? 'deliver';
    this.waitForReplicas = opts.waitForReplicas ?? 0;
    this.replicaTimeoutMs = opts.replicaTimeoutMs ?? 1000;
    this.defaultJobOptions = opts.defaultJobOptions ?? DEFAULT_DEFAULT_JOB_OPTIONS;
    this.jobOptions = storedJobOptions(this.defaultJobOptions);
    this.onError = opts.onError;
    this.redis = createProducerConnection({
      url: opts.url,
      commandTimeoutMs: this.commandTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
      connectionName: opts.connectionName ?? `mailgw:producer:${process.pid}`,
      onError: (err) => this.onError?.(err),
    });
    const scripts = defineScripts(this.redis, ['finish-message', 'enqueue-message']);
    this.finishScript = scripts['finish-message'];
    this.enqueueScript = scripts['enqueue-message'];
    this.slot = this.createQueueSlot();
  }

  get prefix(): string {
    return this.keys.prefix;
  }

  get queueName(): string {
    return this.keys.queueName;
  }

  get status(): string {
    return this.closed ? 'closed' : this.redis.status;
  }

  get connection(): Redis {
    return this.redis;
  }

  private createQueueSlot(): QueueSlot {
    // BullMQ shares our producer connection (it does not close a connection it
    // was given) and gets the prefix through its own option.
    const queue = new Queue(this.keys.queueName, {
      connection: this.redis,
      prefix: this.keys.bullPrefix,
      defaultJobOptions: this.defaultJobOptions,
    });
    queue.on('error', (err: Error) => this.onError?.(err));
    const slot: QueueSlot = { queue, state: 'pending' };
    queue.waitUntilReady().then(
      () => {
        slot.state = 'ready';
      },
      (err: unknown) => {
        slot.state = 'failed';
        if (!this.closed) this.onError?.(err instanceof Error ? err : new Error(String(err)));
      },
    );
    return slot;
  }

  /** Runs one Redis operation: errors become QueueUnavailableError, bounded in time. */
  run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new QueueUnavailableError('mail queue unavailable: the mail store is closed'));
    let promise: Promise<T>;
    try {
      promise = fn();
    } catch (err) {
      return Promise.reject(toQueueUnavailable(err, operation));
    }
    return withDeadline(promise, this.deadlineMs, operation);
  }

  /** The BullMQ queue once its connection is initialised (scripts loaded). */
  async readyQueue(): Promise<Queue> {
    if (this.closed) throw new QueueUnavailableError('mail queue unavailable: the mail store is closed');
    if (this.slot.state === 'ready') return this.slot.queue;
    if (this.slot.state === 'failed') {
      // A BullMQ connection whose initialisation failed stays failed: start over.
      const old = this.slot.queue;
      this.slot = this.createQueueSlot();
      old.close().catch(() => undefined);
    }
    if (this.redis.status !== 'ready') {
      throw new QueueUnavailableError(`mail queue unavailable: Redis connection is ${this.redis.status}`);
    }
    const slot = this.slot;
    await withDeadline(slot.queue.waitUntilReady(), this.deadlineMs, 'queue initialisation');
    slot.state = 'ready';
    return slot.queue;
  }

  async waitUntilReady(ms: number): Promise<void> {
    await withDeadline(waitForReady(this.redis, ms), ms + 250, 'connect');
    await this.readyQueue();
  }

  beginMessage(queueId: string): MessageWriter {
    assertQueueId(queueId);
    if (this.closed) throw new QueueUnavailableError('mail queue unavailable: the mail store is closed');
    return new RedisMessageWriter(this, queueId);
  }

  /**
   * Stores a message and adds its delivery job: one round trip, the bytes by plain commands and
   * the job by one script (lua/enqueue-message.lua, which says why). "set" stores `pieces`
   * (`bytes` in all) joined as the whole message (SET of the incoming key, renamed to the body
   * by the script) and any header key is removed; "append" appends `pieces` to the body
   * already partly written and stores `header` apart. Rejects when the job exists already
   * (isJobExists) or the stored size is not the job's.
   */
  enqueue(job: DeliveryJob, mode: 'set' | 'append', pieces: readonly Buffer[], bytes: number, header: Buffer, progress?: DeliveryState): Promise<unknown> {
    const id = job.queueId;
    const incoming = this.keys.incoming(id);
    // Issued in the same tick: one pipeline on the auto-pipelined connection, in this order. A
    // large whole message is written uncopied ahead of it, in the same writev (piecewise-set.ts).
    const writes: Promise<unknown>[] = [];
    const release = mode === 'set' && bytes >= PIECEWISE_SET_BYTES ? corkUntilPipelined(this.redis) : false;
    if (release) writes.push(setInPieces(this.redis, incoming, pieces, bytes, this.bodyTtlSeconds));
    else {
      const data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, bytes);
      if (mode === 'set') writes.push(this.redis.set(incoming, data, 'EX', this.bodyTtlSeconds));
      else {
        if (data.length > 0) writes.push(this.redis.append(job.bodyKey, data));
        if (header.length > 0) writes.push(this.redis.set(this.keys.head(id), header, 'EX', this.bodyTtlSeconds));
      }
    }
    let added: Promise<unknown>;
    try {
      added = this.enqueueScript(
        job.bodyKey,
        this.keys.head(id),
        this.keys.job(id),
        this.keys.bullState('waiting'),
        this.keys.bullQueueKey('meta'),
        this.keys.bullState('active'),
        this.keys.bullQueueKey('events'),
        this.keys.bullQueueKey('marker'),
        incoming,
        mode,
        job.size,
        id,
        this.jobName,
        JSON.stringify(job),
        JSON.stringify({ ...this.jobOptions, jobId: id }),
        Date.now(),
        ...(progress ? [JSON.stringify(progress)] : []),
      );
    } finally {
      if (release) release();
    }
    // The script's answer decides (it sees a failed write as a size mismatch); the write's own
    // error, if any, is only observed.
    for (const w of writes) w.catch(() => undefined);
    return added;
  }

  async readBody(queueId: string): Promise<Buffer | null> {
    assertQueueId(queueId);
    // Issued together: one round trip on the auto-pipelined connection.
    return this.run('read body', async () => {
      const [head, body] = await Promise.all([this.redis.getBuffer(this.keys.head(queueId)), this.redis.getBuffer(this.keys.body(queueId))]);
      if (body === null) return null;
      return head === null ? body : Buffer.concat([head, body]);
    });
  }

  async deleteBody(queueId: string): Promise<void> {
    assertQueueId(queueId);
    await this.run('delete body', () => this.redis.del(this.keys.body(queueId), this.keys.head(queueId)));
  }

  async finishMessage(queueId: string, progress: unknown): Promise<void> {
    assertQueueId(queueId);
    const json = JSON.stringify(progress);
    await this.run('finish message', () => this.finishScript(this.keys.job(queueId), this.keys.body(queueId), this.keys.head(queueId), json));
  }

  async getJob(queueId: string): Promise<StoredDeliveryJob | null> {
    assertQueueId(queueId);
    const queue = await this.readyQueue();
    const job = await this.run('get job', () => queue.getJob(queueId));
    if (!job) return null;
    return {
      id: String(job.id),
      name: job.name,
      data: parseDeliveryJob(job.data),
      timestamp: job.timestamp,
      attemptsMade: job.attemptsMade,
    };
  }

  async ping(): Promise<void> {
    await this.run('ping', () => this.redis.ping());
  }

  async checkEvictionPolicy(): Promise<string> {
    // INFO works where CONFIG is disabled (managed Redis).
    const info = await this.run('info', () => this.redis.info('memory'));
    const match = /^maxmemory_policy:(\S+)/m.exec(info);
    return match ? match[1]! : 'unknown';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await withDeadline(this.slot.queue.close(), this.deadlineMs, 'close queue');
    } catch {
      // closing anyway
    }
    if (this.redis.status === 'ready') {
      try {
        await withDeadline(this.redis.quit(), this.deadlineMs, 'quit');
      } catch {
        // fall through to disconnect
      }
    }
    // Also stops the background reconnect loop.
    this.redis.disconnect(false);
  }
}

class RedisMessageWriter implements MessageWriter {
  readonly bodyKey: string;
  private _state: WriterState = 'open';
  private _bytesWritten = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Whether anything was sent to Redis (the body key may exist). */
  private started = false;
  private inflight: Promise<void> | null = null;
  private failure: QueueUnavailableError | null = null;

  constructor(
    private readonly store: RedisMailStore,
    readonly queueId: string,
  ) {
    this.bodyKey = store.keys.body(queueId);
  }

  get state(): WriterState {
    return this._state;
  }

  get bytesWritten(): number {
    return this._bytesWritten;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this._state !== 'open') throw new Error(`MessageWriter.write() called on a ${this._state} message`);
    if (this.failure) throw this.failure;
    if (!Buffer.isBuffer(chunk)) throw new TypeError('MessageWriter.write() takes a Buffer');
    if (chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this._bytesWritten += chunk.length;
    if (this.pendingBytes < this.store.flushThresholdBytes) return;
    // Backpressure: at most one flush in flight while the next one fills up.
    if (this.inflight) await this.inflight;
    if (this.failure) throw this.failure;
    if (this._state !== 'open') throw new Error(`MessageWriter.write() called on a ${this._state} message`);
    if (this.pendingBytes >= this.store.flushThresholdBytes) this.startFlush();
  }

  private takePending(): Buffer {
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    return data;
  }

  private startFlush(): void {
    const data = this.takePending();
    const { redis, bodyTtlSeconds } = this.store;
    const key = this.bodyKey;
    this.started = true;
    // APPEND creates the key on the first flush; the TTL is (re)armed with
    // every flush, so only a message idle for bodyTtlSeconds can expire.
    const flush = this.store
      .run('write body', async () => {
        execResults(await redis.multi().append(key, data).expire(key, bodyTtlSeconds).exec());
      })
      .catch((err: unknown) => {
        this.failure ??= toQueueUnavailable(err, 'write body');
        throw this.failure;
      });
    const all: Promise<void> = this.inflight ? Promise.all([this.inflight, flush]).then(() => undefined) : flush;
    all.catch(() => undefined); // observed by the next write()/commit()
    this.inflight = all;
    all.then(
      () => {
        if (this.inflight === all) this.inflight = null;
      },
      () => undefined,
    );
  }

  async commit(input: CommitInput, opts: CommitOptions = {}): Promise<DeliveryJob> {
    if (this._state !== 'open') throw new Error(`MessageWriter.commit() called on a ${this._state} message`);
    this._state = 'committing';
    const header = opts.header ?? Buffer.alloc(0);
    const replacement = opts.body ?? null;
    const total = header.length + (replacement ? replacement.length : this._bytesWritten);
    let job: DeliveryJob;
    let progress: DeliveryState | undefined;
    try {
      if (input.queueId !== this.queueId) {
        throw new InvalidDeliveryJobError(
          `invalid delivery job: queueId ${JSON.stringify(input.queueId)} is not this message's (${this.queueId})`,
        );
      }
      if (input.size !== undefined && input.size !== total) {
        throw new InvalidDeliveryJobError(
          `invalid delivery job: size ${input.size} does not match the ${total} bytes written`,
        );
      }
      job = parseDeliveryJob({ ...input, v: DELIVERY_JOB_VERSION, bodyKey: this.bodyKey, size: total });
      if (opts.failedRecipients && opts.failedRecipients.length > 0) {
        progress = initialState(job);
        for (const { index, reply } of opts.failedRecipients) {
          const r = progress.recipients[index];
          if (!r) throw new InvalidDeliveryJobError(`invalid delivery job: no recipient ${index} to fail`);
          r.status = 'failed';
          r.reply = reply;
        }
      }
    } catch (err) {
      await this.fail();
      throw err;
    }

    let sent = false;
    try {
      if (this.inflight) await this.inflight;
      if (this.failure) throw this.failure;
      await this.store.readyQueue();
      // A message that fit in one buffer (most mail), or whose body a filter replaced, is stored
      // whole, header and body in one copy ("set", which also drops the TTL); a larger one gets
      // its tail appended and its header kept apart ("append").
      const whole = !this.started || replacement !== null;
      const parts = replacement ? [replacement] : this.pending;
      const bytes = replacement ? replacement.length : this.pendingBytes;
      const pieces = whole && header.length > 0 ? [header, ...parts] : parts;
      const pieceBytes = whole ? header.length + bytes : bytes;
      this.pending = [];
      this.pendingBytes = 0;
      this.started = true;
      sent = true;
      await this.store.run('store message', () => this.store.enqueue(job, whole ? 'set' : 'append', pieces, pieceBytes, whole ? EMPTY : header, progress));
      await this.waitForReplicas();
      this._state = 'committed';
      return job;
    } catch (err) {
      if (isJobExists(err)) {
        // Another message's job and body under this id (never seen: ids are 128-bit random):
        // the script wrote nothing, and nothing of that message may be removed.
        this._state = 'failed';
      } else {
        // The job may have been added although something after it failed: take it back too.
        await this.fail(sent);
      }
      throw toQueueUnavailable(err, 'commit');
    }
  }

  /** redis.durability replicas: on the same connection, after the writes, counts the replicas that have them. */
  private async waitForReplicas(): Promise<void> {
    const wanted = this.store.waitForReplicas;
    if (wanted <= 0) return;
    const timeout = this.store.replicaTimeoutMs;
    const acked = Number(await this.store.run('wait for replicas', () => this.store.redis.call('WAIT', wanted, timeout) as Promise<number>));
    if (acked < wanted) {
      throw new QueueUnavailableError(`mail queue unavailable: ${acked} of ${wanted} Redis replicas had message ${this.queueId} within ${timeout} ms`);
    }
  }

  /** Marks the message failed and removes what may have been stored. Never throws. */
  private async fail(removeJob = false): Promise<void> {
    this._state = 'failed';
    await this.discard(removeJob);
  }

  private async discard(removeJob: boolean): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    const tasks: Promise<unknown>[] = [];
    if (this.started) tasks.push(this.store.run('discard body', () => this.store.redis.del(this.bodyKey, this.store.keys.head(this.queueId))));
    if (removeJob) {
      tasks.push(this.store.readyQueue().then((q) => this.store.run('remove job', () => q.remove(this.queueId))));
    }
    await Promise.allSettled(tasks);
  }

  async abort(): Promise<void> {
    // Never throws; a committed message is not touched.
    if (this._state === 'committed' || this._state === 'aborted' || this._state === 'committing') return;
    const wasFailed = this._state === 'failed';
    this._state = 'aborted';
    if (wasFailed) return; // already discarded
    try {
      await this.discard(false);
    } catch {
      // the body's TTL removes it eventually
    }
  }
}

/** Opens the mail store (see MailStoreOptions.requireReady). */
/** What every process says about a queue Redis whose maxmemory-policy is not noeviction. */
export function evictionWarning(policy: string): string {
  return `Redis maxmemory-policy is "${policy}", not "noeviction": under memory pressure Redis may drop queued mail (set maxmemory-policy noeviction)`;
}

export async function openMailStore(opts: MailStoreOptions): Promise<MailStore> {
  const store = new RedisMailStore(opts);
  if (opts.requireReady ?? true) {
    try {
      await store.waitUntilReady(opts.connectTimeoutMs ?? 5000);
    } catch (err) {
      await store.close();
      throw toQueueUnavailable(err, 'connect');
    }
  }
  return store;
}
