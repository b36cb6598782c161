// Child processes for the benchmark: the sink, smtp-source, mailgw listener/worker, and their
// peak memory (VmHWM from /proc, so a short spike is not missed between samples).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findFreePort } from '@mailgw/queue';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const mailgwBin = path.join(root, 'packages/cli/bin/mailgw.js');

export function which(name: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin']) {
    const p = path.join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

/** smtp-source/smtp-sink come with Debian's postfix; install it unconfigured when root. */
export function ensurePostfixTools(): boolean {
  if (which('smtp-source') && which('smtp-sink')) return true;
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: smtp-source/smtp-sink missing; install with:\n  echo "postfix postfix/main_mailer_type select No configuration" | sudo debconf-set-selections\n  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postfix\n');
    return false;
  }
  process.stderr.write('bench: installing postfix (No configuration) for smtp-source/smtp-sink\n');
  spawnSync('sh', ['-c', 'echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix'], { stdio: 'inherit' });
  return !!(which('smtp-source') && which('smtp-sink'));
}

/** A port free on 127.0.0.1 a moment ago, never one this run was given before. */
export const freePort = (): Promise<number> => findFreePort();

export function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tryOnce = () => {
      const s = net.connect({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${host}:${port}`));
        else setTimeout(tryOnce, 100);
      });
    };
    tryOnce();
  });
}

/** Peak resident set (KiB) of a process so far. */
export function peakRssKiB(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** CPU time (user + system, ms) a process has used so far; NaN when it is gone. */
export function cpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15 (clock ticks).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export function rssKiB(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export interface Sink {
  port: number;
  /** Arrival times (unix ms) of messages with X-Bench-Id, by id. */
  arrivals: Map<string, number>;
  count(): number;
  /** Of those, messages that arrived with a DKIM-Signature. */
  signed(): number;
  /** Of those, messages that arrived with an ARC-Seal. */
  sealed(): number;
  waitFor(n: number, timeoutMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startLatencySink(): Promise<Sink> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(root, 'bench/lib/latency-sink.mjs'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const arrivals = new Map<string, number>();
  let total = 0;
  let signed = 0;
  let sealed = 0;
  let rest = '';
  child.stdout!.on('data', (c: Buffer) => {
    const text = rest + c.toString('latin1');
    const lines = text.split('\n');
    rest = lines.pop()!;
    for (let l of lines) {
      if (l.endsWith(' arc')) {
        sealed++;
        l = l.slice(0, -4);
      }
      if (l.endsWith(' dkim')) {
        signed++;
        l = l.slice(0, -5);
      }
      const sp = l.indexOf(' ');
      total++;
      arrivals.set(l.slice(sp + 1), Number(l.slice(0, sp)));
    }
  });
  await waitForPort(port);
  return {
    port,
    arrivals,
    count: () => total,
    signed: () => signed,
    sealed: () => sealed,
    async waitFor(n, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (total < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return total >= n;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** smtp-source's wall time for a run; `reuse` sends all messages of a session over one connection.
 * Asynchronous on purpose: a blocking spawnSync would stop us reading the sink's pipe, and a
 * sink blocked on a full stdout pipe stops accepting mail. */
export function smtpSource(o: { port: number; messages: number; sessions: number; size: number; reuse: boolean; to: string; from: string }): Promise<{ seconds: number; ok: boolean }> {
  const args = ['-s', String(o.sessions), '-m', String(o.messages), '-l', String(o.size), '-f', o.from, '-t', o.to, ...(o.reuse ? ['-d'] : []), `127.0.0.1:${o.port}`];
  const t0 = performance.now();
  const child = spawn(which('smtp-source')!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) process.stderr.write(`bench: smtp-source failed (${code}): ${err}\n`);
      resolve({ seconds: (performance.now() - t0) / 1000, ok: code === 0 });
    });
  });
}

/** Postfix's smtp-sink, counting messages (-c); returns the count parsed from its output. */
export async function startSmtpSink(): Promise<{ port: number; pid: number | undefined; count(): number; stop(): Promise<void> }> {
  const port = await freePort();
  const args = [...(process.getuid?.() === 0 ? ['-u', 'postfix'] : []), '-c', `127.0.0.1:${port}`, '1000'];
  const child = spawn(which('smtp-sink')!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let last = 0;
  child.stdout!.on('data', (c: Buffer) => {
    const m = /mesg=(\d+)(?![\s\S]*mesg=)/.exec(c.toString('latin1'));
    if (m) last = Number(m[1]);
  });
  await waitForPort(port);
  return {
    port,
    pid: child.pid,
    count: () => last,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** A mailgw process; its log (stdout, pino) goes to `stdout` (a file descriptor) or nowhere. */
export function mailgw(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = [], stdout: number | 'ignore' = 'ignore'): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, mailgwBin, ...args], { stdio: ['ignore', stdout, 'pipe'], env: { ...process.env, ...env } });
  child.stderr!.on('data', (c: Buffer) => {
    const s = c.toString();
    if (/error|fatal/i.test(s)) process.stderr.write(`[mailgw ${args[0]}] ${s}`);
  });
  return child;
}

export async function stopChild(c: ChildProcess | undefined, graceMs = 10_000): Promise<void> {
  if (!c || c.exitCode !== null) return;
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await new Promise((r) => c.once('exit', r));
  clearTimeout(timer);
}

/** A process and all its descendants (from /proc/<pid>/task/<tid>/children). */
export function processTree(pid: number | undefined): number[] {
  if (!pid) return [];
  const out: number[] = [];
  const visit = (p: number) => {
    out.push(p);
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tids) {
      let kids = '';
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {}
      for (const k of kids.split(' ').filter(Boolean)) visit(Number(k));
    }
  };
  visit(pid);
  return out;
}

/** The command name of a process ('' when gone). */
export function commName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** CPU time (ms) a process tree has used so far, including its reaped children (cutime/cstime),
 * split by `group(comm)`. Differences between two readings count processes that started or
 * were reaped in between (Postfix's short-lived daemons) exactly once. */
export function treeCpuMs(pid: number | undefined, group: (comm: string) => string = () => 'all'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / CLOCK_TICKS;
      const g = group(commName(p));
      out[g] = (out[g] ?? 0) + ms;
    } catch {}
  }
  return out;
}
