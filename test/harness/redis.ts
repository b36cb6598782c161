/**
 * Test harness: a real, private redis-server per call, on a free 127.0.0.1
 * port with its own temporary data dir. A thin wrapper around the product's
 * own startRedisServer (@mailgw/queue), so tests run Redis exactly as
 * `mailgw start` does.
 *
 *   const redis = await startRedis();
 *   after(() => redis.stop());          // also removes the data dir
 *   await redis.kill();                 // SIGKILL: "Redis died mid-test"
 *   await redis.restart();              // same port, same data dir (AOF replayed)
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { findFreePort, findRedisServer, startRedisServer } from '@mailgw/queue';

export interface TestRedis {
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** Stops the server (SIGTERM) and removes its data dir. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) and waits for the exit; SIGSTOP/SIGCONT only freeze/thaw it. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and data dir (stops it first if it runs). */
  restart(): Promise<void>;
}

export async function startRedis(opts: { appendonly?: boolean } = {}): Promise<TestRedis> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-redis-'));
  let server;
  try {
    server = await startRedisServer({ dataDir, appendonly: opts.appendonly ?? true });
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  const srv = server;
  return {
    url: srv.url,
    port: srv.port,
    host: srv.host,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await srv.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
    kill: (signal?: NodeJS.Signals) => srv.kill(signal),
    restart: () => srv.restart(),
  };
}

export interface TestSentinel {
  /** The sentinel's port on 127.0.0.1 (gateway.yaml `redis: { sentinels: ["127.0.0.1:<port>"], name }`). */
  readonly port: number;
  /** host:port of the master the sentinel names now. */
  currentMaster(): Promise<string>;
  /** Kills the sentinel and removes its directory. */
  stop(): Promise<void>;
}

/**
 * A real Redis Sentinel (redis-server --sentinel) on a free port, watching the master at
 * 127.0.0.1:`masterPort` under `name` (quorum 1); resolves once it names that master.
 */
export async function startSentinel(masterPort: number, name: string, o: { downAfterMs?: number; failoverTimeoutMs?: number } = {}): Promise<TestSentinel> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-sentinel-'));
  const port = await findFreePort();
  const conf = path.join(dir, 'sentinel.conf');
  await writeFile(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
      ...(o.downAfterMs ? [`sentinel down-after-milliseconds ${name} ${o.downAfterMs}`] : []),
      ...(o.failoverTimeoutMs ? [`sentinel failover-timeout ${name} ${o.failoverTimeoutMs}`] : []),
      '',
    ].join('\n'),
  );
  const child = spawn(findRedisServer()!, [conf, '--sentinel'], { stdio: 'ignore' });
  const ask = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 100 });
  ask.on('error', () => undefined);
  const currentMaster = async () => {
    const [host, p] = (await ask.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string];
    return `${host}:${p}`;
  };
  const stop = async () => {
    ask.disconnect();
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    await ask.connect().catch(() => undefined);
    if (ask.status === 'ready' && (await currentMaster().catch(() => '')) === `127.0.0.1:${masterPort}`) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the sentinel on port ${port} did not name the master 127.0.0.1:${masterPort} within 20 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, currentMaster, stop };
}
