// A gateway's listeners in a process of their own, for what a test cannot do to its own
// process: measure the listener's memory (RSS) alone, and SIGKILL it in the middle of DATA.
//
//   const child = await spawnListener({ redisUrl, gateway, connectors });
//   child.ports                 // what it listens on
//   await child.memory()        // { rss, peakRss, heapUsed, arrayBuffers } of the child
//   child.kill('SIGKILL')       // dies as a crashed listener does
//   await child.stop()          // graceful close, then exit
//
// The child runs this file (the `child` branch below) on the TypeScript sources, as the test
// runner does, and talks over IPC. Config objects go through the same validation as files.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ChildConfig {
  redisUrl: string;
  gateway: Record<string, unknown>;
  connectors: Record<string, Record<string, unknown>>;
  /** Use the Redis rate counter (as `mailgw listen` does) instead of the in-memory one. */
  redisRateCounter?: boolean;
}

export interface ChildMemory {
  rss: number;
  /** Highest RSS sampled (every 25 ms) since start or the last resetPeak(). */
  peakRss: number;
  heapUsed: number;
  arrayBuffers: number;
}

export interface ListenerProcess {
  readonly pid: number;
  readonly ports: number[];
  memory(): Promise<ChildMemory>;
  resetPeak(): Promise<void>;
  kill(signal: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
  /** Whatever the child wrote on stderr (its crash, if any). */
  stderr(): string;
}

type ToChild = { type: 'memory' } | { type: 'resetPeak' } | { type: 'stop' };
type FromChild = { type: 'ready'; ports: number[] } | ({ type: 'memory' } & ChildMemory) | { type: 'reset' } | { type: 'error'; message: string };

const self = fileURLToPath(import.meta.url);

export async function spawnListener(cfg: ChildConfig, timeoutMs = 30_000): Promise<ListenerProcess> {
  const child: ChildProcess = fork(self, ['--mailgw-listener-child'], {
    execArgv: ['--conditions=mailgw-src', '--import', 'tsx'],
    env: { ...process.env, MAILGW_CHILD_CONFIG: JSON.stringify(cfg) },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const next = (type: FromChild['type']) =>
    new Promise<FromChild>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`listener child: no "${type}" within ${timeoutMs} ms\n${err}`)), timeoutMs);
      const onMsg = (m: FromChild) => {
        if (m.type === 'error') {
          clearTimeout(t);
          child.off('message', onMsg);
          reject(new Error(`listener child: ${m.message}`));
        } else if (m.type === type) {
          clearTimeout(t);
          child.off('message', onMsg);
          resolve(m);
        }
      };
      child.on('message', onMsg);
      child.once('exit', (code, signal) => {
        clearTimeout(t);
        reject(new Error(`listener child exited (${code ?? signal}) before "${type}"\n${err}`));
      });
    });
  const ready = (await next('ready')) as { type: 'ready'; ports: number[] };
  const send = (m: ToChild) => child.send(m);
  return {
    pid: child.pid!,
    ports: ready.ports,
    async memory() {
      send({ type: 'memory' });
      const { type: _t, ...m } = (await next('memory')) as { type: 'memory' } & ChildMemory;
      return m;
    },
    async resetPeak() {
      send({ type: 'resetPeak' });
      await next('reset');
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        send({ type: 'stop' });
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      }
    },
    stderr: () => err,
  };
}

async function runChild(): Promise<void> {
  const cfg = JSON.parse(process.env.MAILGW_CHILD_CONFIG!) as ChildConfig;
  const [{ compile }, { startListeners, createRedisRateCounter }, { openMailStore }, { pino }] = await Promise.all([
    import('../../listener/helpers/gateway.js'),
    import('@mailgw/listener'),
    import('@mailgw/queue'),
    import('pino'),
  ]);
  const policy = compile(cfg.gateway, cfg.connectors);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-child-'));
  const logger = pino({ level: 'warn' }, process.stderr);
  const store = await openMailStore({ url: cfg.redisUrl, prefix: '{mailgw}', commandTimeoutMs: 1000, connectTimeoutMs: 3000 });
  const rate = cfg.redisRateCounter ? createRedisRateCounter({ url: cfg.redisUrl, prefix: '{mailgw}' }) : undefined;
  const listeners = await startListeners({ policy, store, logger, dataDir, ...(rate ? { rateCounter: rate } : {}) });
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
  const reply = (m: FromChild) => process.send!(m);
  process.on('message', (m: ToChild) => {
    if (m.type === 'memory') {
      const u = process.memoryUsage();
      peak = Math.max(peak, u.rss);
      reply({ type: 'memory', rss: u.rss, peakRss: peak, heapUsed: u.heapUsed, arrayBuffers: u.arrayBuffers });
    } else if (m.type === 'resetPeak') {
      peak = process.memoryUsage().rss;
      reply({ type: 'reset' });
    } else if (m.type === 'stop') {
      clearInterval(sampler);
      void (async () => {
        await listeners.close({ graceMs: 2000 });
        await store.close();
        await rate?.close();
        rmSync(dataDir, { recursive: true, force: true });
        process.exit(0);
      })();
    }
  });
  process.on('disconnect', () => process.exit(0));
  reply({ type: 'ready', ports: [...new Set(listeners.addresses().map((a) => a.port))] });
}

if (process.argv.includes('--mailgw-listener-child')) {
  runChild().catch((e: unknown) => {
    process.send?.({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    process.exit(1);
  });
}
