// One embedded redis-server per data directory, and none left behind.
//
// Files in the redis data directory:
//   mailgw-redis.lock  the process that runs the server there: { pid, start, boot } (plus the
//                      server's pid, port and socket once it runs). Created with link(2), so
//                      only one process can hold it; a lock whose process is gone (or is a
//                      different process that reuses the pid, e.g. after a reboot) is stale.
//   redis.pid          written by redis-server itself (--pidfile), removed at its clean exit.
//
// A live redis-server left from a previous run (its mailgw was SIGKILLed and the watchdog could
// not act, e.g. the whole process group was frozen, or it came from an older mailgw) is shut
// down with SHUTDOWN, which flushes the AOF, before a new one starts: it is not adopted, because
// this process could not watch it (it is not our child), and its configuration is whatever the
// previous run gave it.
import { linkSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const LOCK_FILE = 'mailgw-redis.lock';
export const PID_FILE = 'redis.pid';

/** Another live process already runs the embedded redis-server of this data directory. */
export class RedisDataDirBusyError extends Error {
  override readonly name = 'RedisDataDirBusyError';
  readonly code = 'EREDISDATADIRBUSY';
  constructor(
    readonly dataDir: string,
    readonly ownerPid: number,
  ) {
    super(
      `another mailgw (pid ${ownerPid}) already runs the embedded redis-server of ${dataDir}; ` +
        'two servers must never share one data directory: stop that one first, or give this one another dataDir',
    );
  }
}

interface LockRecord {
  readonly pid: number;
  /** Process start time (clock ticks since boot, /proc/<pid>/stat), null where unknown. */
  readonly start: string | null;
  /** /proc/sys/kernel/random/boot_id, null where unknown. */
  readonly boot: string | null;
  readonly redisPid?: number;
  readonly host?: string;
  readonly port?: number;
  readonly socket?: string | null;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

const bootId = (): string | null => readText('/proc/sys/kernel/random/boot_id')?.trim() || null;

/** /proc/<pid>/stat: state and start time, or null (no /proc, or no such process). */
function procStat(pid: number): { state: string; start: string } | null {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return null;
  // "pid (comm) state ppid …": comm may contain spaces and parentheses; fields follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '?', start: fields[19] ?? '' };
}

/** The process exists and is not a zombie (a killed child nobody reaped is gone for us). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(pid);
  return stat === null || stat.state !== 'Z';
}

function ownerAlive(rec: LockRecord): boolean {
  if (!processAlive(rec.pid)) return false;
  const boot = bootId();
  if (rec.boot && boot && rec.boot !== boot) return false; // written before a reboot
  const stat = procStat(rec.pid);
  if (rec.start && stat && stat.start !== rec.start) return false; // the pid was reused
  return true;
}

function parseLock(text: string | null): LockRecord | null {
  if (text === null) return null;
  try {
    const v = JSON.parse(text) as Partial<LockRecord>;
    return typeof v.pid === 'number' ? { pid: v.pid, start: v.start ?? null, boot: v.boot ?? null, ...v } : null;
  } catch {
    return null;
  }
}

export interface DataDirLock {
  /** What the previous, dead holder recorded (its server may still run), or null. */
  readonly previous: LockRecord | null;
  /** Records the running server in the lock (for the next start, should this process die). */
  update(server: { redisPid: number; host: string; port: number; socket: string | null }): void;
  /** Removes the lock if it is still ours. Idempotent. */
  release(): void;
}

/** Takes the data directory's lock, or throws RedisDataDirBusyError naming the live holder. */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.join(dataDir, LOCK_FILE);
  const self: LockRecord = { pid: process.pid, start: procStat(process.pid)?.start ?? null, boot: bootId() };
  const tmp = path.join(dataDir, `.${LOCK_FILE}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  let previous: LockRecord | null = null;
  writeFileSync(tmp, `${JSON.stringify(self)}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, file); // atomic: fails if the lock exists
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 10) throw e;
      }
      const text = readText(file);
      if (text === null) continue; // released meanwhile
      const held = parseLock(text);
      if (held && ownerAlive(held)) throw new RedisDataDirBusyError(dataDir, held.pid);
      // Stale: move it aside, and put it back if what we moved is not what we judged stale (a
      // racing process took the lock between our read and our rename).
      const aside = `${tmp}.stale`;
      try {
        renameSync(file, aside);
      } catch {
        continue;
      }
      if (readText(aside) !== text) {
        try {
          linkSync(aside, file);
        } catch {
          // someone else holds it now; the loop looks again
        }
        rmSync(aside, { force: true });
        continue;
      }
      rmSync(aside, { force: true });
      previous = held;
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  let released = false;
  const ours = () => parseLock(readText(file))?.pid === process.pid;
  return {
    previous,
    update(server) {
      if (released || !ours()) return;
      const next = path.join(dataDir, `.${LOCK_FILE}.${process.pid}.next`);
      writeFileSync(next, `${JSON.stringify({ ...self, ...server })}\n`, { mode: 0o600 });
      renameSync(next, file);
    },
    release() {
      if (released) return;
      released = true;
      if (ours()) rmSync(file, { force: true });
    },
  };
}

export type RedisCallTarget = { path: string } | { host: string; port: number };

/**
 * Sends one inline command; resolves with the first reply (a bulk string's contents, or the
 * status/error line) and whether the server closed the connection, or null when unreachable.
 */
export function call(target: RedisCallTarget, command: string, timeoutMs = 2000): Promise<{ reply: string; closed: boolean } | null> {
  return new Promise((resolve) => {
    const sock = 'path' in target ? net.connect({ path: target.path }) : net.connect({ host: target.host, port: target.port });
    let buf = Buffer.alloc(0);
    let connected = false;
    let settled = false;
    const done = (v: { reply: string; closed: boolean } | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(connected ? { reply: buf.toString('latin1'), closed: false } : null), timeoutMs);
    sock.on('connect', () => {
      connected = true;
      sock.write(`${command}\r\n`);
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString('latin1');
      const eol = text.indexOf('\r\n');
      if (eol < 0) return;
      if (text[0] !== '$') return done({ reply: text.slice(0, eol), closed: false });
      const len = Number(text.slice(1, eol));
      if (buf.length >= eol + 2 + len) done({ reply: buf.subarray(eol + 2, eol + 2 + len).toString('utf8'), closed: false });
    });
    sock.on('error', () => done(connected ? { reply: buf.toString('latin1'), closed: true } : null));
    sock.on('close', () => done(connected ? { reply: buf.toString('latin1'), closed: true } : null));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (processAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** The pid of the redis-server answering on `target`, or null. */
async function serverPid(target: RedisCallTarget): Promise<number | null> {
  const r = await call(target, 'INFO server');
  const m = r ? /^process_id:(\d+)/m.exec(r.reply) : null;
  return m ? Number(m[1]) : null;
}

/** A redis-server process whose working directory is `dataDir` (Linux; false where unknown). */
function servesDir(pid: number, dataDir: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(dataDir) && (readText(`/proc/${pid}/comm`) ?? '').startsWith('redis-server');
  } catch {
    return false;
  }
}

export interface Leftover {
  readonly pid: number;
  /** How it was reached to be shut down, or null when it does not answer. */
  readonly via: string | null;
}

/**
 * Shuts down a redis-server that a previous run left serving `dataDir` (found on our socket, at
 * the port the previous lock recorded, or by the pid in redis.pid), with SHUTDOWN (the AOF is
 * flushed), then SIGTERM if it does not exit within 10 s. Returns what was stopped, or null.
 * Throws when it cannot be stopped: two servers must never share the directory.
 */
export async function retireLeftoverServer(dataDir: string, socket: string | null, previous: LockRecord | null): Promise<Leftover | null> {
  const targets: RedisCallTarget[] = [];
  if (socket) targets.push({ path: socket });
  if (previous?.socket && previous.socket !== socket) targets.push({ path: previous.socket });
  if (previous?.port) targets.push({ host: previous.host ?? '127.0.0.1', port: previous.port });
  let pid: number | null = null;
  let via: RedisCallTarget | null = null;
  for (const t of targets) {
    const p = await serverPid(t);
    // On our socket it is ours whatever its directory; on a TCP port only if it serves our dir
    // (or /proc cannot tell and it is the pid the previous run recorded).
    if (p !== null && ('path' in t || servesDir(p, dataDir) || (p === previous?.redisPid && !readText(`/proc/${p}/comm`)))) {
      pid = p;
      via = t;
      break;
    }
  }
  const pidFile = path.join(dataDir, PID_FILE);
  if (pid === null) {
    // Not answering (frozen, or listening elsewhere): the pid redis wrote, if it still serves our dir.
    const recorded = Number(readText(pidFile)?.trim());
    if (processAlive(recorded) && servesDir(recorded, dataDir)) pid = recorded;
  }
  if (pid === null) {
    rmSync(pidFile, { force: true }); // a server killed with SIGKILL leaves it behind
    return null;
  }
  const where = via ? ('path' in via ? via.path : `${via.host}:${via.port}`) : null;
  // SHUTDOWN flushes the AOF and exits; if it answers an error instead ("-ERR Errors trying to
  // SHUTDOWN") the SIGTERM below tries again, which also flushes it.
  if (via) await call(via, 'SHUTDOWN', 15_000);
  if (!(await waitGone(pid, 10_000))) {
    try {
      process.kill(pid, 'SIGTERM');
      process.kill(pid, 'SIGCONT'); // a frozen server must wake up to exit
    } catch {
      // gone meanwhile
    }
    if (!(await waitGone(pid, 10_000))) {
      throw new Error(
        `a redis-server (pid ${pid}) left by a previous run still uses ${dataDir} and did not stop on SHUTDOWN nor SIGTERM; ` +
          `stop it (kill ${pid}) and start again: two servers must never share one data directory`,
      );
    }
  }
  return { pid, via: where };
}
