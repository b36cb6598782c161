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
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRedisServer } from '@mailgw/queue';

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
