// Log retention as Exchange does it (MessageTrackingLogMaxAge/MaxDirectorySize,
// Receive/SendProtocolLogMaxAge/MaxDirectorySize): files older than the maximum age are deleted, then
// the oldest files while the directory is larger than its maximum size. Every process that
// writes logs runs it, at start and hourly, so it must be safe when several do it at once: a
// file another process deleted first (ENOENT) is fine, and a file that may be written now (the
// current UTC day's, or one modified in the last minutes) is never deleted.
// The decision (planLogPrune) is pure; pruneLogs and startLogRetention are the thin I/O shell.
import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { LogsConfig } from '@mailgw/config';

/** One log file as the retention sees it. */
export interface LogFileInfo {
  /** Path (relative or absolute: only used to name the file back). */
  readonly file: string;
  /** The yyyymmdd date in its name (UTC day it was written). */
  readonly day: string;
  readonly size: number;
  readonly mtimeMs: number;
}

export interface LogLimits {
  /** Maximum age by last modification, ms; 0 = no age limit. */
  readonly maxAgeMs: number;
  /** Maximum total size of the files, bytes; 0 = no size limit. */
  readonly maxBytes: number;
}

export interface PruneVerdict {
  readonly file: string;
  readonly reason: 'max-age' | 'max-directory-size';
}

/** A file modified this recently may still be written by some process (around midnight): kept. */
export const RECENT_WRITE_MS = 10 * 60_000;

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
}

/** Which files to delete, and why: pure. The current UTC day's files and recently written ones are never chosen. */
export function planLogPrune(files: readonly LogFileInfo[], limits: LogLimits, nowMs: number): PruneVerdict[] {
  const today = utcDay(nowMs);
  const inUse = (f: LogFileInfo) => f.day >= today || nowMs - f.mtimeMs < RECENT_WRITE_MS;
  const out: PruneVerdict[] = [];
  const gone = new Set<string>();
  if (limits.maxAgeMs > 0) {
    for (const f of files) {
      if (!inUse(f) && nowMs - f.mtimeMs > limits.maxAgeMs) {
        out.push({ file: f.file, reason: 'max-age' });
        gone.add(f.file);
      }
    }
  }
  if (limits.maxBytes > 0) {
    const left = files.filter((f) => !gone.has(f.file));
    let total = left.reduce((n, f) => n + f.size, 0);
    // Oldest first: by the day in the name, then by modification time.
    const candidates = left.filter((f) => !inUse(f)).sort((a, b) => a.day.localeCompare(b.day) || a.mtimeMs - b.mtimeMs || a.file.localeCompare(b.file));
    for (const f of candidates) {
      if (total <= limits.maxBytes) break;
      out.push({ file: f.file, reason: 'max-directory-size' });
      total -= f.size;
    }
  }
  return out;
}

/** The files one log kind keeps, and where. */
export interface LogSet {
  /** tracking, protocol (receive) or send-protocol: for log lines and metrics. */
  readonly name: string;
  readonly dir: string;
  /** File names this retention may delete, with the yyyymmdd day as group 1. Nothing else is touched. */
  readonly pattern: RegExp;
  /** Also look one directory level down (protocol logs: one directory per connector). */
  readonly subdirs: boolean;
  readonly limits: LogLimits;
}

export const TRACKING_LOG_FILE = /^MSGTRK(\d{8})\.log$/;
export const PROTOCOL_LOG_FILE = /^RECV(\d{8})\.LOG$/;
export const SEND_PROTOCOL_LOG_FILE = /^SEND(\d{8})\.LOG$/;
export const AGENT_LOG_FILE = /^AGENTLOG(\d{8})\.LOG$/;

/** The tracking, receive protocol and send protocol log sets of a data dir, with the limits of gateway.yaml `logs`. */
export function logSets(dataDir: string, logs: LogsConfig): LogSet[] {
  return [
    { name: 'tracking', dir: path.join(dataDir, 'logs', 'tracking'), pattern: TRACKING_LOG_FILE, subdirs: false, limits: { maxAgeMs: logs.messageTrackingLogMaxAge, maxBytes: logs.messageTrackingLogMaxDirectorySize } },
    { name: 'protocol', dir: path.join(dataDir, 'logs', 'protocol'), pattern: PROTOCOL_LOG_FILE, subdirs: true, limits: { maxAgeMs: logs.receiveProtocolLogMaxAge, maxBytes: logs.receiveProtocolLogMaxDirectorySize } },
    { name: 'send-protocol', dir: path.join(dataDir, 'logs', 'smtp-send'), pattern: SEND_PROTOCOL_LOG_FILE, subdirs: true, limits: { maxAgeMs: logs.sendProtocolLogMaxAge, maxBytes: logs.sendProtocolLogMaxDirectorySize } },
    { name: 'agent', dir: path.join(dataDir, 'logs', 'agent'), pattern: AGENT_LOG_FILE, subdirs: false, limits: { maxAgeMs: logs.agentLogMaxAge, maxBytes: logs.agentLogMaxDirectorySize } },
  ];
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code;

async function listDir(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') return []; // nothing logged yet (or no directory at all)
    throw e;
  }
}

async function collect(set: LogSet): Promise<LogFileInfo[]> {
  const dirs = [set.dir];
  if (set.subdirs) for (const e of await listDir(set.dir)) if (e.isDirectory()) dirs.push(path.join(set.dir, e.name));
  const out: LogFileInfo[] = [];
  for (const d of dirs) {
    for (const e of await listDir(d)) {
      const m = e.isFile() ? set.pattern.exec(e.name) : null;
      if (!m) continue;
      const file = path.join(d, e.name);
      try {
        const s = await stat(file);
        out.push({ file, day: m[1]!, size: s.size, mtimeMs: s.mtimeMs });
      } catch (err) {
        if (errCode(err) !== 'ENOENT') throw err; // deleted by another process meanwhile
      }
    }
  }
  return out;
}

export interface PruneResult {
  readonly deleted: PruneVerdict[];
  /** Bytes the set holds afterwards. */
  readonly bytes: number;
}

/** Enforces one set's limits now. Throws only when the directory cannot be read at all. */
export async function pruneLogs(set: LogSet, nowMs: number = Date.now()): Promise<PruneResult> {
  const files = await collect(set);
  const plan = planLogPrune(files, set.limits, nowMs);
  const deleted: PruneVerdict[] = [];
  for (const v of plan) {
    try {
      await unlink(v.file);
      deleted.push(v);
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e; // ENOENT: another process deleted it first
    }
  }
  const gone = new Set(plan.map((v) => v.file));
  return { deleted, bytes: files.filter((f) => !gone.has(f.file)).reduce((n, f) => n + f.size, 0) };
}

/** What startLogRetention reports; a logger fits. */
export interface RetentionLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LogRetentionOptions {
  readonly sets: () => readonly LogSet[];
  readonly logger: RetentionLogger;
  /** How often, ms (default hourly, as Exchange). */
  readonly intervalMs?: number;
  /** Called after each run of a set (for a metric). */
  readonly onRun?: (set: LogSet, result: PruneResult | Error) => void;
}

export interface LogRetention {
  /** Runs every set now (the start-up run is already under way when this is created). */
  run(): Promise<void>;
  stop(): Promise<void>;
}

/** Enforces the limits at once and then every intervalMs; never throws (a failure is logged). */
export function startLogRetention(opts: LogRetentionOptions): LogRetention {
  let running: Promise<void> = Promise.resolve();
  const once = async () => {
    for (const set of opts.sets()) {
      try {
        const r = await pruneLogs(set);
        if (r.deleted.length) {
          opts.logger.info({ log: set.name, deleted: r.deleted.map((d) => ({ file: path.basename(d.file), reason: d.reason })), bytesLeft: r.bytes }, `log retention deleted ${r.deleted.length} old ${set.name} log file${r.deleted.length === 1 ? '' : 's'}`);
        }
        opts.onRun?.(set, r);
      } catch (e) {
        opts.logger.warn({ log: set.name, dir: set.dir, err: (e as Error).message }, `log retention could not clean the ${set.name} log directory`);
        opts.onRun?.(set, e as Error);
      }
    }
  };
  const run = () => (running = running.then(once));
  void run();
  const timer = setInterval(() => void run(), opts.intervalMs ?? 3_600_000);
  timer.unref();
  return {
    run,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
