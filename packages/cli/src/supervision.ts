// The IPC between the `mailgw start` supervisor and its children (node:cluster workers): what
// each side sends, and the child's end of it. The supervisor's end is commands/supervisor.ts.
//
// supervisor → child: admitted (connection limits), reload, report (metrics), stop
// child → supervisor: ready, admit / release (connection limits), reloaded, report
import cluster from 'node:cluster';
import { RemoteConnectionLimits, type AdmissionMessage } from '@mailgw/listener';
import type { ProcessReport } from '@mailgw/ops';

export type ChildRole = 'listener' | 'worker';

/** Environment of a child: its role and the Redis the supervisor gives it. */
export const ROLE_ENV = 'MAILGW_SUPERVISED_ROLE';
export const REDIS_ENV = 'MAILGW_SUPERVISED_REDIS_URL';
/** How long a child may take to drain once the supervisor is gone, before it exits anyway. */
export const DEADLINE_ENV = 'MAILGW_SUPERVISED_DEADLINE_MS';

/** What a live reload did in one child. */
export type ReloadOutcome =
  | { ok: true; connectors: string[]; opened: string[]; stopped: string[] }
  | { ok: false; error: string };

export type ToChild =
  | { type: 'mailgw:reload'; seq: number; trigger: string }
  | { type: 'mailgw:report'; seq: number }
  | { type: 'mailgw:stop' };

export type FromChild =
  | { type: 'mailgw:ready' }
  | { type: 'mailgw:reloaded'; seq: number; outcome: ReloadOutcome }
  | { type: 'mailgw:report'; seq: number; report: ProcessReport }
  | AdmissionMessage;

/**
 * V8 options of the children: the parent's, plus
 * - a larger initial old generation (CHILD_INITIAL_OLD_SPACE_MB) unless the admin sized the heap
 *   (in the command line or NODE_OPTIONS). V8 starts with a small old generation and collects it
 *   whenever it fills, and every message's buffers (socket reads, the body handed to Redis) fill
 *   it: with 100 KB mail a listener ran a full mark-compact several times a second, a tenth of its
 *   CPU. Measured (2 cores, 100 KB, `mailgw start`): 355-375 → 410-425 delivered/s; unchanged at 1 KB.
 * - garbage collection on the process's own thread (CHILD_GC_FLAG) unless the admin chose how V8
 *   uses GC threads. `mailgw start` already runs a process per core, so V8's helper threads (four
 *   per process, for parallel scavenges and concurrent marking) only compete with the other
 *   children for the same cores, and their hand-offs cost CPU of their own. Measured side by side
 *   (two gateways under the same load at the same time, 2 cores): 3-5% less CPU per message at
 *   100 KB, 0.5-2.5% at 1 KB, p99 acceptance unchanged.
 */
export const CHILD_INITIAL_OLD_SPACE_MB = 128;
export const CHILD_GC_FLAG = '--single-threaded-gc';
export function childExecArgv(parentExecArgv: readonly string[], nodeOptions = ''): string[] {
  // node and V8 take `_` for `-` in option names (--max_old_space_size): an admin's choice
  // spelled either way is seen, so ours never lands after it and overrides it.
  const admin = [...parentExecArgv, nodeOptions].map((a) => a.replace(/_/g, '-'));
  const given = (re: RegExp) => admin.some((a) => re.test(a));
  const out = [...parentExecArgv];
  if (!given(/--(initial|max)-(old-space|heap)-size/)) out.push(`--initial-old-space-size=${CHILD_INITIAL_OLD_SPACE_MB}`);
  if (!given(/--(no-)?(single-threaded|concurrent-marking|parallel-(scavenge|marking|compaction))\b|--v8-pool-size/)) out.push(CHILD_GC_FLAG);
  return out;
}

const typed = (m: unknown): m is { type: string } => typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';

/** A child's end of the supervision link; see SupervisedChild in serve.ts's options. */
export interface SupervisedChild {
  readonly role: ChildRole;
  /** The Redis of the gateway (the supervisor's embedded one, or the configured one). */
  readonly redisUrl: string;
  /** Connection counts of the whole gateway, kept by the supervisor. */
  readonly limits: RemoteConnectionLimits;
  /**
   * Resolves when this child should drain and exit: the supervisor says stop, SIGTERM/SIGINT
   * (a terminal's Ctrl-C reaches the whole process group), or the supervisor is gone.
   */
  readonly stopSignal: Promise<string>;
  ready(): void;
  onReload(handler: (trigger: string) => Promise<ReloadOutcome>): void;
  onReport(handler: () => Promise<ProcessReport>): void;
}

/** The link of a cluster worker started by the supervisor; null in any other process. */
export function supervisedChild(env: NodeJS.ProcessEnv = process.env): SupervisedChild | null {
  const role = env[ROLE_ENV];
  const redisUrl = env[REDIS_ENV];
  if (!cluster.isWorker || (role !== 'listener' && role !== 'worker') || !redisUrl) return null;
  // A cluster worker exits at once when its IPC channel closes unexpectedly (the supervisor was
  // killed). Marking it as expected lets the 'disconnect' handler below drain first: finish the
  // SMTP transactions and deliveries in progress when Redis is still there (an external one).
  if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
  const send = (m: FromChild): boolean => {
    if (!process.connected || !process.send) return false;
    return process.send(m);
  };
  const limits = new RemoteConnectionLimits({
    send: (m) => send(m),
    onMessage: (h) => process.on('message', h),
  });
  let reloadHandler: ((trigger: string) => Promise<ReloadOutcome>) | null = null;
  let reportHandler: (() => Promise<ProcessReport>) | null = null;
  let stop!: (why: string) => void;
  const stopSignal = new Promise<string>((resolve) => {
    let done = false;
    stop = (why) => {
      if (done) return;
      done = true;
      resolve(why);
    };
  });
  process.on('message', (m: unknown) => {
    if (!typed(m)) return;
    const msg = m as ToChild;
    switch (msg.type) {
      case 'mailgw:stop':
        stop('supervisor');
        return;
      case 'mailgw:reload':
        void (reloadHandler ? reloadHandler(msg.trigger) : Promise.resolve<ReloadOutcome>({ ok: false, error: 'not running yet' }))
          .catch((e: unknown): ReloadOutcome => ({ ok: false, error: (e as Error).message }))
          .then((outcome) => send({ type: 'mailgw:reloaded', seq: msg.seq, outcome }));
        return;
      case 'mailgw:report':
        if (reportHandler) void reportHandler().then((report) => send({ type: 'mailgw:report', seq: msg.seq, report }), () => undefined);
        return;
    }
  });
  const deadline = Number(env[DEADLINE_ENV]) || 60_000;
  process.on('disconnect', () => {
    limits.disconnect();
    stop('supervisor-gone');
    // Its drain is bounded; this is the backstop should anything hang without the supervisor.
    setTimeout(() => process.exit(1), deadline).unref();
  });
  // Signals sent to the whole process group: the supervisor coordinates the shutdown; a second
  // one does not cut this child's drain short (the supervisor decides when to give up on it).
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => stop(sig));
  // Reload is the supervisor's to trigger; SIGHUP to the group must not kill a child.
  process.on('SIGHUP', () => undefined);
  return {
    role,
    redisUrl,
    limits,
    stopSignal,
    ready: () => void send({ type: 'mailgw:ready' }),
    onReload: (h) => void (reloadHandler = h),
    onReport: (h) => void (reportHandler = h),
  };
}
