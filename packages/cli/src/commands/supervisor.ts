// mailgw start: the supervisor. It owns the embedded Redis (started before the children,
// stopped after them), runs `processes` listener processes sharing every binding and delivery
// worker processes (node:cluster workers running serve.ts), and:
//   - restarts a child that dies, with backoff; a crash loop is reported and slowed, not spun;
//   - counts connections for all listener processes (maxInboundConnection, per-source limits
//     stay global; the policy decides from the counts);
//   - watches the configuration (and takes SIGHUP), validates it once and tells every child;
//   - serves /metrics, /healthz and the dashboard for the whole gateway, aggregating the
//     children's registries;
//   - on SIGTERM/SIGINT drains the listeners, then the workers, then stops Redis.
// Why node:cluster: Node 20's net has no reusePort; cluster shares each listening socket (also
// those a live reload opens later) between the children. Scheduling is SCHED_NONE: every child
// accepts on the shared socket itself. The default on Linux, round-robin, has the supervisor
// accept every connection and hand it to a child over IPC: measured under the bench load, that
// was an accept, a sendmsg and two IPC messages per connection, and a third busy process on the
// cores. A busy child does not return to accept(), so the idle ones take the new connections.
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import path from 'node:path';
import { formatIssue, processCounts } from '@mailgw/config';
import { ConnectionCounter, isAdmissionMessage, type AdmissionReply } from '@mailgw/listener';
import { GatewayMetrics, QueueAdmin, forgetEmbeddedRedis, restartOnlyChanges, watchConfig, type ConfigWatch, type OpsHttpServer, type ProcessReport } from '@mailgw/ops';
import { openGatewayTracking, type TrackingLog } from '@mailgw/queue';
import { pino, type Logger } from 'pino';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';
import { DEADLINE_ENV, REDIS_ENV, ROLE_ENV, childExecArgv, type ChildRole, type FromChild, type ReloadOutcome, type ToChild } from '../supervision.js';
import { SHUTDOWN_GRACE_MS, prepareRedis } from './serve.js';
import { serveOpsHttp } from '../ops-http.js';
import { trackingFailures } from '../logger.js';
import { version } from '../usage.js';
import { firstSignal } from '../signals.js';

export interface SupervisorIO {
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  readonly stopSignal?: Promise<string>;
  readonly logger?: Logger;
  /** Cores for `processes: auto` (default os.availableParallelism()). */
  readonly cores?: number;
}

/** Restart backoff: 250 ms doubling per exit in the last minute, at most 30 s. */
const RESTART_BASE_MS = 250;
const RESTART_MAX_MS = 30_000;
const CRASH_WINDOW_MS = 60_000;
/** This many exits within CRASH_WINDOW_MS is a crash loop. */
const CRASH_LOOP_EXITS = 5;
const START_TIMEOUT_MS = 60_000;
const REPLY_TIMEOUT_MS = 30_000;
const REPORT_TIMEOUT_MS = 2_000;

interface Slot {
  readonly role: ChildRole;
  /** 1-based, per role: "listener 2". */
  readonly index: number;
  worker: Worker | null;
  ready: boolean;
  /** Times of recent exits, for the backoff. */
  exits: number[];
  restartTimer: NodeJS.Timeout | null;
  /** Connection slots this child holds in the shared counts, by its admission id. */
  tickets: Map<number, () => void>;
  /** Answers awaited from this child, by sequence number. */
  waiting: Map<number, (m: FromChild | null) => void>;
  /** Resolves when the current worker exits. */
  exited: Promise<void>;
  inLoop: boolean;
}

const plural = (n: number, one: string, many = `${one}es`) => `${n} ${n === 1 ? one : many}`;
const slotName = (s: Slot) => `${s.role} process ${s.index}`;


export async function runSupervisor(opts: PathOptions, io: SupervisorIO = { stderr: process.stderr, env: process.env }): Promise<number> {
  const loaded = loadPolicy(opts, io.env);
  if (!loaded.ok) {
    io.stderr.write(`mailgw: the configuration has ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}; nothing was started.\n`);
    printIssues(io.stderr, 'Errors:', loaded.errors);
    printIssues(io.stderr, 'Warnings:', loaded.warnings);
    return 1;
  }
  printIssues(io.stderr, 'Warnings:', loaded.warnings);
  const { dataDir } = loaded;
  let policy = loaded.policy;
  const gateway = policy.config.gateway;
  const logger = io.logger ?? pino({ level: gateway.logLevel, base: { pid: process.pid, process: 'supervisor' } });
  // Listening for SIGTERM/SIGINT from the start: a stop asked for during start-up is kept, not fatal.
  const stopRequested = io.stopSignal ?? firstSignal(logger, 'second signal: exiting without waiting for the processes to drain');
  const cores = io.cores ?? os.availableParallelism();
  const wanted = processCounts(gateway.processes, cores);
  const setting = gateway.processes === 'auto' ? `auto, ${plural(cores, 'core', 'cores')}` : 'gateway.yaml';
  logger.info(
    { listeners: wanted.listeners, workers: wanted.workers, processes: gateway.processes, cores },
    `running ${plural(wanted.listeners, 'listener process', 'listener processes')} and ${plural(wanted.workers, 'delivery worker process', 'delivery worker processes')} (processes: ${setting})`,
  );

  // Redis first: the children need it, and it must outlive them.
  const prepared = await prepareRedis(opts, io, gateway, dataDir, logger);
  if (!prepared.ok) return prepared.code;
  // The store was opened for the durability check (the children open their own); closed last.
  const { url, redis, store } = prepared;

  const counter = new ConnectionCounter();
  const slots: Slot[] = [
    ...Array.from({ length: wanted.listeners }, (_, i) => ({ role: 'listener' as const, index: i + 1 })),
    ...Array.from({ length: wanted.workers }, (_, i) => ({ role: 'worker' as const, index: i + 1 })),
  ].map((s) => ({ ...s, worker: null, ready: false, exits: [], restartTimer: null, tickets: new Map(), waiting: new Map(), exited: Promise.resolve(), inLoop: false }));
  let stopping = false;
  let starting = true;
  let seq = 0;
  /** Called when a child exits before it was ready, during the first start. */
  let startFailed: ((why: string) => void) | null = null;
  const readyWaiters = new Set<() => void>();
  // The longest a child may take to drain once the supervisor is gone.
  const deadlineMs = SHUTDOWN_GRACE_MS + gateway.queue.drainTimeout + 5_000;

  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ silent: false, execArgv: childExecArgv(process.execArgv, process.env['NODE_OPTIONS'] ?? '') });

  const fork = (slot: Slot) => {
    slot.restartTimer = null;
    slot.ready = false;
    slot.tickets = new Map();
    const w = cluster.fork({ [ROLE_ENV]: slot.role, [REDIS_ENV]: url, [DEADLINE_ENV]: String(deadlineMs) });
    slot.worker = w;
    slot.exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.on('message', (m: unknown) => onMessage(slot, w, m));
    w.once('exit', (code: number | null, signal: string | null) => onExit(slot, w, code, signal));
  };

  const send = (w: Worker, m: ToChild | AdmissionReply): void => {
    if (w.isConnected()) w.send(m);
  };

  const onMessage = (slot: Slot, w: Worker, m: unknown) => {
    if (isAdmissionMessage(m)) {
      if (m.type === 'mailgw:admit') {
        const r = counter.admit(m.request);
        if (r.release) slot.tickets.set(m.id, r.release);
        send(w, { type: 'mailgw:admitted', id: m.id, decision: r.decision });
      } else {
        slot.tickets.get(m.id)?.();
        slot.tickets.delete(m.id);
      }
      return;
    }
    const msg = m as FromChild;
    if (msg?.type === 'mailgw:ready') {
      slot.ready = true;
      if (!starting) logger.info({ child: w.process.pid }, `${slotName(slot)} is running again`);
      for (const r of readyWaiters) r();
    } else if (msg?.type === 'mailgw:reloaded' || msg?.type === 'mailgw:report') {
      slot.waiting.get(msg.seq)?.(msg);
    }
  };

  const onExit = (slot: Slot, w: Worker, code: number | null, signal: string | null) => {
    // Its connections are gone: so are their slots in the counts.
    for (const release of slot.tickets.values()) release();
    slot.tickets.clear();
    for (const resolve of slot.waiting.values()) resolve(null);
    slot.waiting.clear();
    const wasReady = slot.ready;
    slot.ready = false;
    if (slot.worker === w) slot.worker = null;
    if (stopping) return;
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    if (starting && !wasReady) {
      startFailed?.(`${slotName(slot)} could not start (${how})`);
      return;
    }
    const now = Date.now();
    slot.exits = [...slot.exits.filter((t) => now - t < CRASH_WINDOW_MS), now];
    const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (slot.exits.length - 1));
    if (slot.exits.length >= CRASH_LOOP_EXITS) {
      if (!slot.inLoop) {
        slot.inLoop = true;
        logger.error({ child: w.process.pid, exits: slot.exits.length, restartInMs: delay }, `${slotName(slot)} is in a crash loop: it exited ${slot.exits.length} times within ${CRASH_WINDOW_MS / 1000}s (last: ${how}); restarting it at most every ${RESTART_MAX_MS / 1000}s until it stays up (see its log above)`);
      }
    } else {
      slot.inLoop = false;
      logger.warn({ child: w.process.pid, code, signal, restartInMs: delay }, `${slotName(slot)} exited (${how}); restarting it in ${delay} ms`);
    }
    slot.restartTimer = setTimeout(() => fork(slot), delay);
  };

  /** Sends `make(seq)` to every ready child and collects the answers (null: it exited or did not answer in time). */
  const ask = async (make: (seq: number) => ToChild, timeoutMs: number): Promise<Array<{ slot: Slot; reply: FromChild | null }>> => {
    const n = ++seq;
    return Promise.all(
      slots
        .filter((s) => s.worker && s.ready)
        .map(
          (slot) =>
            new Promise<{ slot: Slot; reply: FromChild | null }>((resolve) => {
              const t = setTimeout(() => done(null), timeoutMs);
              const done = (reply: FromChild | null) => {
                clearTimeout(t);
                slot.waiting.delete(n);
                resolve({ slot, reply });
              };
              slot.waiting.set(n, done);
              send(slot.worker!, make(n));
            }),
        ),
    );
  };

  let http: OpsHttpServer | null = null;
  let admin: QueueAdmin | null = null;
  let tracking: TrackingLog | null = null;
  let watch: ConfigWatch | null = null;
  const stopRedis = async () => {
    if (redis) {
      forgetEmbeddedRedis(dataDir);
      await redis.stop();
    }
  };
  /** Stops the children of `role` (the supervisor says stop; each drains as it does alone), SIGKILL after `ms`. */
  const stopRole = async (role: ChildRole, ms: number) => {
    const mine = slots.filter((s) => s.role === role);
    for (const s of mine) {
      if (s.restartTimer) clearTimeout(s.restartTimer);
      s.restartTimer = null;
      if (s.worker) send(s.worker, { type: 'mailgw:stop' });
    }
    await Promise.all(
      mine.map(async (s) => {
        const w = s.worker;
        if (!w) return;
        const t = setTimeout(() => {
          logger.warn({ child: w.process.pid }, `${slotName(s)} did not stop within ${ms} ms: killing it`);
          w.process.kill('SIGKILL');
        }, ms);
        await s.exited;
        clearTimeout(t);
      }),
    );
  };
  const stopAll = async () => {
    stopping = true;
    watch?.close();
    await http?.close();
    // Listeners first (they finish their transactions), then the workers deliver what is in progress.
    await stopRole('listener', SHUTDOWN_GRACE_MS + 5_000);
    await stopRole('worker', gateway.queue.drainTimeout + 5_000);
    await admin?.close();
    await tracking?.close();
    await store.close();
    await stopRedis();
  };

  try {
    // Every child, then wait until each says it runs (or one cannot start: then nothing runs).
    const started = new Promise<void>((resolve, reject) => {
      startFailed = (why) => reject(new Error(why));
      const check = () => {
        if (slots.every((s) => s.ready)) resolve();
      };
      readyWaiters.add(check);
      setTimeout(() => reject(new Error(`not every process was running after ${START_TIMEOUT_MS / 1000}s`)), START_TIMEOUT_MS).unref();
      for (const s of slots) fork(s);
    });
    await started;
    starting = false;
    startFailed = null;
    readyWaiters.clear();

    if (gateway.http) {
      let metrics: GatewayMetrics | null = null;
      const trackingFile = openGatewayTracking({
        dataDir,
        redis: store.connection,
        prefix: gateway.redis.prefix,
        settings: () => policy.config.gateway.logs,
        ...trackingFailures(logger, () => metrics),
      });
      tracking = trackingFile;
      admin = await QueueAdmin.open({ redisUrl: url, gateway, dataDir, logger, tracking: trackingFile });
      metrics = new GatewayMetrics({ queue: admin, process: { role: 'gateway', version: version() } });
      metrics.aggregate(async () => {
        const replies = await ask((n) => ({ type: 'mailgw:report', seq: n }), REPORT_TIMEOUT_MS);
        return replies.flatMap(({ reply }) => (reply?.type === 'mailgw:report' ? [reply.report as ProcessReport] : []));
      });
      const running = (role: ChildRole) => ({ running: slots.filter((s) => s.role === role && s.ready).length, configured: slots.filter((s) => s.role === role).length });
      // /healthz asks for the facts and the back pressure at once: one round of child reports for both.
      let counters: { at: number; p: ReturnType<GatewayMetrics['gatewayCounters']> } | null = null;
      const gatewayNow = () => {
        if (!counters || Date.now() - counters.at > 250) counters = { at: Date.now(), p: metrics.gatewayCounters() };
        return counters.p;
      };
      http = await serveOpsHttp({
        http: gateway.http,
        policy: () => policy,
        metrics,
        admin,
        logger,
        facts: async () => {
          const { facts } = await gatewayNow();
          return {
            connections: facts.connections ?? 0,
            ...(wanted.workers > 0 ? { deliveriesInProgress: facts.deliveriesInProgress ?? 0, deliveriesWaitingForMemory: facts.deliveriesWaitingForMemory ?? 0, crowdedNextHops: facts.crowdedNextHops ?? 0 } : {}),
            processes: { listeners: running('listener'), workers: running('worker') },
          };
        },
        ...(wanted.listeners > 0 ? { backPressure: async () => (await gatewayNow()).backPressure } : {}),
      });
    }
    logger.info({ connectors: policy.connectors.filter((c) => c.config.enabled).map((c) => c.name), listeners: wanted.listeners, workers: wanted.workers }, 'mailgw is running');
  } catch (e) {
    logger.error({ err: (e as Error).message }, `mailgw could not start: ${(e as Error).message}`);
    io.stderr.write(`mailgw: ${(e as Error).message}; nothing is running\n`);
    await stopAll();
    return 1;
  }

  // Live reload: validated here once, then every child reloads (each validates the same files
  // again and switches all or nothing); one line says how it went for the whole gateway.
  const reload = async (trigger: string) => {
    const next = loadPolicy(opts, io.env);
    if (!next.ok) {
      logger.error({ trigger, errors: next.errors.map(formatIssue) }, 'configuration reload refused: the new configuration has errors; the running configuration stays');
      return;
    }
    for (const w of next.warnings) logger.warn({ trigger, warning: formatIssue(w) }, 'configuration warning');
    const before = policy.config.gateway;
    const after = next.policy.config.gateway;
    const replies = await ask((n) => ({ type: 'mailgw:reload', seq: n, trigger }), REPLY_TIMEOUT_MS);
    const outcomes = replies.map(({ slot, reply }) => ({ slot, outcome: reply?.type === 'mailgw:reloaded' ? reply.outcome : ({ ok: false, error: 'no answer (it exited or timed out)' } as ReloadOutcome) }));
    const failed = outcomes.filter((o) => !o.outcome.ok);
    policy = next.policy;
    admin?.useGateway(after);
    logger.level = after.logLevel;
    if (failed.length === 0) {
      const first = outcomes.find((o) => o.slot.role === 'listener')?.outcome;
      const ok = first?.ok ? first : { connectors: next.policy.connectors.filter((c) => c.config.enabled).map((c) => c.name), opened: [], stopped: [] };
      logger.info({ trigger, connectors: ok.connectors, opened: ok.opened, stopped: ok.stopped, processes: outcomes.length }, 'configuration reloaded');
    } else {
      logger.error(
        { trigger, failed: failed.map((f) => ({ process: slotName(f.slot), error: f.outcome.ok ? null : f.outcome.error })) },
        `configuration reload failed in ${failed.length} of ${outcomes.length} processes; those keep the configuration they had`,
      );
    }
    const later = restartOnlyChanges(before, after);
    if (later.length > 0) logger.warn({ keys: later }, 'these changes take effect after a restart');
  };
  let reloads: Promise<void> = Promise.resolve();
  const connectorsDir = opts.connectors ?? path.join(path.dirname(path.resolve(opts.config)), 'connectors.d');
  watch = watchConfig({
    gatewayFile: opts.config,
    connectorsDir,
    sendConnectorsDir: opts['send-connectors'] ?? path.join(path.dirname(path.resolve(opts.config)), 'send-connectors.d'),
    onChange: (why) => {
      reloads = reloads.then(() => reload(why)).catch((e: unknown) => logger.error({ err: e }, 'configuration reload failed'));
    },
    onWatchError: (err, dir) => logger.warn({ err: err.message, dir }, 'cannot watch the configuration for changes: reload with SIGHUP'),
  });

  const signal = await stopRequested;
  logger.info({ signal, graceMs: SHUTDOWN_GRACE_MS }, 'stopping: the listener processes finish their transactions, then the workers their deliveries');
  watch.close();
  await reloads;
  await stopAll();
  logger.info('stopped');
  setTimeout(() => process.exit(0), 2000).unref();
  return 0;
}
