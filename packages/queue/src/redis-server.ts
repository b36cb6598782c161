import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdirSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PID_FILE, lockDataDir, retireLeftoverServer, type DataDirLock, type Leftover } from './redis-lock.js';
import { startAofJanitor, type AofJanitorOptions } from './aof-janitor.js';

/**
 * Runs a private redis-server (used by `mailgw start` when no REDIS_URL is
 * given, and by the test harness). Configuration: AOF on with fsync every
 * second, no RDB snapshots, `noeviction` (BullMQ and message bodies must never
 * be evicted), bound to one address only.
 *
 * One server per data directory, and none left behind (see redis-lock.ts): the directory is
 * locked for the life of the server (a second start on it fails with RedisDataDirBusyError), a
 * server a dead previous run left serving it is shut down cleanly first, and each server is
 * watched by a tiny `sh` whose stdin is a pipe from this process: when this process dies, even
 * by SIGKILL, the pipe closes, the watchdog reads EOF and sends the server SIGTERM (a clean
 * shutdown, AOF flushed). Node cannot ask the kernel for that (no PR_SET_PDEATHSIG).
 */

/** The embedded server's auto-aof-rewrite-min-size (see the start arguments). */
const AOF_REWRITE_MIN_SIZE = '512mb';

export const REDIS_INSTALL_HINT =
  'install it with `apt-get install -y redis-server` (as root, or with sudo), ' +
  'or point mailgw at an existing Redis with REDIS_URL=redis://host:6379';

export class RedisServerNotFoundError extends Error {
  override readonly name = 'RedisServerNotFoundError';
  readonly code = 'ENOREDISSERVER';
  constructor() {
    super(`redis-server was not found on PATH nor in /usr/bin, /usr/sbin, /usr/local/bin: ${REDIS_INSTALL_HINT}`);
  }
}

const EXTRA_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];

/** Absolute path of an executable `name` on PATH (plus the usual system dirs), or null. */
export function findExecutable(name: string, envPath: string = process.env.PATH ?? ''): string | null {
  const dirs = [...envPath.split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

export function findRedisServer(): string | null {
  return findExecutable('redis-server');
}

export interface RedisServerOptions {
  /** Working directory of the server (AOF files live here). Created if missing. */
  dataDir: string;
  /** TCP port; a free one is picked when omitted. */
  port?: number;
  host?: string;
  /** AOF persistence (default true). */
  appendonly?: boolean;
  /**
   * When the AOF is fsynced (default `always`: every write is on disk before Redis answers it,
   * so a 250 survives a power loss; `everysec`: up to about a second can be lost in an OS crash).
   */
  appendfsync?: 'always' | 'everysec';
  /** maxmemory in bytes (default 0: no limit). mailgw's back pressure refuses mail before it is reached. */
  maxmemory?: number;
  /** How long to wait for the first PONG (default 10 s). */
  startTimeoutMs?: number;
  /** Extra `--name value` arguments. */
  extraArgs?: string[];
  /**
   * Also listen on this Unix socket (mode 700): clients on this machine reach it as
   * `socketUrl`, cheaper per round trip than TCP. Left out when the path is too long for a
   * socket address (108 bytes on Linux).
   */
  unixSocket?: string;
  /**
   * Start the server again, on the same port, socket and data dir (its AOF replayed), whenever
   * it exits without stop() or restart() having asked: a crash, the OOM killer, a full disk
   * under appendfsync always. Backoff from 0.5 s, doubling to 30 s, reset once it has run a
   * minute; it keeps trying until stop(). The callbacks say what happened (for the log).
   */
  keepAlive?: RedisKeepAlive;
  /**
   * Free the append-only files each rewrite leaves behind a slice at a time (aof-janitor.ts),
   * not all at once as Redis does: on by default with AOF and Redis 7; false turns it off.
   */
  historyGc?: false | Pick<AofJanitorOptions, 'stepBytes' | 'pauseMs' | 'intervalMs' | 'onEvent'>;
}

const versions = new Map<string, number>();
/** The major version of a redis-server binary (0 when it cannot be told). */
export function redisServerMajorVersion(binary: string): number {
  let v = versions.get(binary);
  if (v === undefined) {
    try {
      v = Number(/\bv=(\d+)\./.exec(execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 5000 }))?.[1] ?? 0);
    } catch {
      v = 0;
    }
    versions.set(binary, v);
  }
  return v;
}

export interface RedisKeepAlive {
  /** It exited on its own; the next start is in `restartInMs`. `log` is the end of what it printed. */
  onExit(e: { pid: number | undefined; code: number | null; signal: NodeJS.Signals | null; log: string; restartInMs: number }): void;
  onRestarted(e: { pid: number | undefined; attempts: number }): void;
  /** A start failed (its error says why); the next is in `restartInMs`. */
  onRestartFailed(e: { error: Error; restartInMs: number }): void;
}

/** Delays of the keep-alive's restarts. */
export const REDIS_RESTART_BACKOFF = { firstMs: 500, maxMs: 30_000, resetAfterMs: 60_000 } as const;

export interface RedisServer {
  readonly url: string;
  /** unix:///… of the server's Unix socket, or null without one. */
  readonly socketUrl: string | null;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** The current child process (changes on restart). */
  readonly process: ChildProcess;
  readonly running: boolean;
  /** Graceful stop (SIGTERM: redis fsyncs the AOF), SIGKILL after 10 s. Idempotent. */
  stop(): Promise<void>;
  /**
   * Sends `signal` (default SIGKILL) and waits for the process to exit
   * (SIGSTOP/SIGCONT are only sent: freeze and thaw a server). With keepAlive this is a crash:
   * the server is started again.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts again on the same port and data dir (stops first if running). */
  restart(): Promise<void>;
  /** A server a previous run left serving this data dir, shut down before this one started. */
  readonly retired: Leftover | null;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Never leave a redis-server behind when the parent process ends: SIGTERM is a clean
    // shutdown (AOF flushed); SIGCONT wakes a server a test froze. (When this process is killed
    // outright, the watchdog does the same.)
    process.once('exit', () => {
      for (const c of liveChildren) {
        c.kill('SIGTERM');
        c.kill('SIGCONT');
      }
    });
  }
}

// Reads its stdin (a pipe from this process, never written to) until EOF, which comes when
// this process is gone, however it died; then stops the server ($1) cleanly.
const WATCHDOG_SCRIPT = 'while read -r _; do :; done; kill -TERM "$1" 2>/dev/null; kill -CONT "$1" 2>/dev/null; exit 0';

function spawnWatchdog(pid: number | undefined): ChildProcess | null {
  const sh = findExecutable('sh');
  if (pid === undefined || !sh) return null;
  const w = spawn(sh, ['-c', WATCHDOG_SCRIPT, 'mailgw-redis-watchdog', String(pid)], { stdio: ['pipe', 'ignore', 'ignore'] });
  w.on('error', () => undefined);
  w.stdin!.on('error', () => undefined);
  // Neither the watchdog nor its pipe may keep this process alive.
  w.unref();
  (w.stdin as unknown as { unref?: () => void }).unref?.();
  return w;
}

/** Ports findFreePort handed out in this process: the kernel may offer a just-closed port again. */
const handedOut = new Set<number>();

/** A port that was free a moment ago on `host`, never one this process was given before. */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** One raw PING; resolves true on +PONG. */
function pingOnce(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startRedisServer(opts: RedisServerOptions): Promise<RedisServer> {
  const binary = findRedisServer();
  if (!binary) throw new RedisServerNotFoundError();
  const host = opts.host ?? '127.0.0.1';
  const dataDir = path.resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const appendonly = opts.appendonly ?? true;
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  const fixedPort = opts.port !== undefined;
  let port = opts.port ?? (await findFreePort(host));
  let child: ChildProcess | null = null;
  const socket = opts.unixSocket && Buffer.byteLength(path.resolve(opts.unixSocket)) < 108 ? path.resolve(opts.unixSocket) : null;
  // Multi-part AOF (history files, aof-disable-auto-gc) came with Redis 7.
  const historyGc = appendonly && opts.historyGc !== false && redisServerMajorVersion(binary) >= 7 ? opts.historyGc ?? {} : null;

  // Ours alone from here (or RedisDataDirBusyError); a live server of a dead previous run is
  // shut down before ours starts.
  let lock: DataDirLock | null = lockDataDir(dataDir);
  let retired: Leftover | null;
  try {
    retired = await retireLeftoverServer(dataDir, socket, lock.previous);
  } catch (e) {
    lock.release();
    throw e;
  }

  const args = (p: number): string[] => [
    '--port', String(p),
    '--bind', host,
    '--dir', dataDir,
    '--appendonly', appendonly ? 'yes' : 'no',
    '--appendfsync', opts.appendfsync ?? 'always',
    // Every body passes through the AOF (SET, then DEL once delivered), so it grows by the mail
    // volume and a rewrite (a fork writing the whole data set) is what shrinks it. At Redis'
    // default 64mb a 2-core gateway taking 100 KB mail rewrote every two seconds, and the
    // rewriting children cost about a tenth of its throughput (measured: 415 → 480 delivered/s);
    // at 512mb it is every ten seconds or so, for at most about 1 GB of AOF on disk.
    '--auto-aof-rewrite-min-size', AOF_REWRITE_MIN_SIZE,
    '--maxmemory', String(Math.max(0, Math.floor(opts.maxmemory ?? 0))),
    '--maxmemory-policy', 'noeviction',
    '--save', '',
    '--protected-mode', 'no',
    '--daemonize', 'no',
    '--logfile', '',
    '--pidfile', path.join(dataDir, PID_FILE),
    // Old AOF files are freed by the janitor, a slice at a time (see aof-janitor.ts).
    ...(historyGc ? ['--aof-disable-auto-gc', 'yes'] : []),
    ...(socket ? ['--unixsocket', socket, '--unixsocketperm', '700'] : []),
    ...(opts.extraArgs ?? []),
  ];

  async function spawnOnce(p: number): Promise<ChildProcess> {
    const proc = spawn(binary!, args(p), { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(proc);
    const watchdog = spawnWatchdog(proc.pid);
    proc.once('exit', () => watchdog?.kill('SIGKILL'));
    // A forgotten server must not keep the parent alive (the exit hook stops it).
    proc.unref();
    (proc.stdout as unknown as { unref?: () => void }).unref?.();
    (proc.stderr as unknown as { unref?: () => void }).unref?.();
    let log = '';
    const keep = (d: Buffer) => {
      log = (log + d.toString('utf8')).slice(-4000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    let spawnError: Error | null = null;
    proc.once('error', (err) => {
      spawnError = err;
    });
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (spawnError) throw spawnError;
      if (proc.exitCode !== null || proc.signalCode !== null) {
        const err = new Error(`redis-server exited (${proc.exitCode ?? proc.signalCode}) on ${host}:${p}:\n${log.trim()}`);
        (err as Error & { addressInUse?: boolean }).addressInUse = /address already in use/i.test(log);
        throw err;
      }
      if (await pingOnce(host, p)) break;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await waitForExit(proc);
        throw new Error(`redis-server on ${host}:${p} did not answer PING within ${startTimeoutMs} ms:\n${log.trim()}`);
      }
      await sleep(25);
    }
    // Keep draining output so the pipes never fill up.
    proc.once('exit', (code, signal) => onChildExit(proc, code, signal, log));
    return proc;
  }

  // keepAlive: an exit nobody asked for starts it again (stop() and restart() set `deliberate`).
  let stopped = false;
  let deliberate = false;
  let startedAt = Date.now();
  let failures = 0;
  let restartTimer: NodeJS.Timeout | null = null;
  let respawning: Promise<void> | null = null;
  const backoff = () => Math.min(REDIS_RESTART_BACKOFF.maxMs, REDIS_RESTART_BACKOFF.firstMs * 2 ** Math.min(failures, 16));
  function onChildExit(proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null, log: string): void {
    const keep = opts.keepAlive;
    if (!keep || proc !== child || stopped || deliberate) return;
    if (Date.now() - startedAt > REDIS_RESTART_BACKOFF.resetAfterMs) failures = 0;
    const delay = backoff();
    failures++;
    keep.onExit({ pid: proc.pid, code, signal, log: log.trim().split('\n').slice(-5).join('\n'), restartInMs: delay });
    scheduleRestart(delay);
  }
  function scheduleRestart(delay: number): void {
    const keep = opts.keepAlive!;
    restartTimer = setTimeout(() => {
      restartTimer = null;
      if (stopped || deliberate) return;
      // stop() waits for a start under way, then stops what it started.
      respawning = respawn().finally(() => {
        respawning = null;
      });
      void respawning.then(
        () => {
          startedAt = Date.now();
          if (!stopped) keep.onRestarted({ pid: child?.pid, attempts: failures });
        },
        (err: unknown) => {
          if (stopped || deliberate) return;
          const next = backoff();
          failures++;
          keep.onRestartFailed({ error: err as Error, restartInMs: next });
          scheduleRestart(next);
        },
      );
    }, delay);
    restartTimer.unref();
  }

  async function start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        child = await spawnOnce(port);
        return;
      } catch (err) {
        const inUse = (err as { addressInUse?: boolean }).addressInUse;
        if (!inUse || fixedPort || attempt >= 4) throw err;
        port = await findFreePort(host); // lost a race for the port: pick another
      }
    }
  }

  /** Starts the server again on the same port (clients reconnect to it), waiting briefly for the kernel to release the port. */
  async function respawn(): Promise<void> {
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        child = await spawnOnce(port);
        record();
        return;
      } catch (err) {
        if (!(err as { addressInUse?: boolean }).addressInUse || Date.now() > deadline) throw err;
        await sleep(100);
      }
    }
  }

  async function signalAndWait(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return; // not meant to end it
    if (signal === 'SIGTERM') proc.kill('SIGCONT'); // a stopped server must wake up to exit
    const exited = waitForExit(proc);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      proc.kill('SIGKILL');
      await exited;
    }
  }

  try {
    await start();
  } catch (e) {
    lock.release();
    throw e;
  }
  const record = () => lock?.update({ redisPid: child!.pid!, host, port, socket });
  record();
  const janitor = historyGc ? startAofJanitor({ ...historyGc, dir: dataDir, target: () => (socket ? { path: socket } : { host, port }) }) : null;

  const server: RedisServer = {
    get url() {
      return `redis://${host.includes(':') ? `[${host}]` : host}:${port}`;
    },
    socketUrl: socket ? `unix://${socket}` : null,
    host,
    get port() {
      return port;
    },
    dataDir,
    get process() {
      return child!;
    },
    get running() {
      return !!child && child.exitCode === null && child.signalCode === null;
    },
    retired,
    async stop() {
      stopped = true;
      if (restartTimer) clearTimeout(restartTimer);
      await janitor?.stop();
      await respawning?.catch(() => undefined);
      await signalAndWait('SIGTERM', 10_000);
      lock?.release();
      lock = null;
    },
    kill: (signal: NodeJS.Signals = 'SIGKILL') => signalAndWait(signal, 10_000),
    async restart() {
      deliberate = true;
      if (restartTimer) clearTimeout(restartTimer);
      try {
        await signalAndWait('SIGTERM', 10_000);
        lock ??= lockDataDir(dataDir);
        await respawn();
        startedAt = Date.now();
      } finally {
        deliberate = false;
      }
    },
  };
  return server;
}
