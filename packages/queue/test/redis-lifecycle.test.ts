// One embedded redis-server per data directory, and none left behind: the lock, the leftover
// server of a dead run (shut down cleanly, its data kept), and a server whose parent is killed.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { REDIS_LOCK_FILE, REDIS_PID_FILE, RedisDataDirBusyError, findFreePort, findRedisServer, startRedisServer, type RedisServer } from '@mailgw/queue';
import { redisServersIn, running, until } from '../../../test/harness/procs.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const dirs: string[] = [];
const servers: RedisServer[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers) await s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'mailgw-lifecycle-'));
  dirs.push(d);
  return d;
}

/** The pid of a process that has exited (so a lock naming it is stale). */
function deadPid(): number {
  const r = spawnSync('true');
  assert.ok(r.pid && !running(r.pid));
  return r.pid;
}

const lockOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, REDIS_LOCK_FILE), 'utf8')) as { pid: number; redisPid: number; port: number };

/** A node process that runs startRedisServer on `dir` and prints the server's pid when it answers. */
function helperProcess(dir: string): Promise<{ child: ChildProcess; redisPid: number }> {
  const code = `import { startRedisServer } from '@mailgw/queue';
const s = await startRedisServer({ dataDir: ${JSON.stringify(dir)}, unixSocket: ${JSON.stringify(path.join(dir, 'redis.sock'))} });
process.stdout.write('ready ' + s.process.pid + '\\n');
setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', '--input-type=module', '-e', code], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) resolve({ child, redisPid: Number(m[1]) });
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (c) => reject(new Error(`helper exited (${c}): ${out}`)));
  });
}

describe('embedded redis-server lifecycle', () => {
  it('its parent SIGKILLed, the server exits by itself; the dir is then free again, for one server', async () => {
    const dir = tmp();
    const { child, redisPid } = await helperProcess(dir);
    assert.deepEqual(redisServersIn(dir), [redisPid]);
    assert.equal(lockOf(dir).pid, child.pid);

    // While it lives, nobody else gets the directory, and no second server is started.
    await assert.rejects(startRedisServer({ dataDir: dir }), (e: unknown) => {
      assert.ok(e instanceof RedisDataDirBusyError, String(e));
      assert.equal(e.ownerPid, child.pid);
      assert.match(e.message, new RegExp(`another mailgw \\(pid ${child.pid}\\) already runs the embedded redis-server of ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      return true;
    });
    assert.deepEqual(redisServersIn(dir), [redisPid]);

    child.kill('SIGKILL');
    await until(() => !running(redisPid), 'the orphaned redis-server to exit', 5000);
    assert.equal(existsSync(path.join(dir, REDIS_PID_FILE)), false, 'a clean shutdown removes redis.pid');

    const next = await startRedisServer({ dataDir: dir, unixSocket: path.join(dir, 'redis.sock') });
    servers.push(next);
    assert.equal(next.retired, null, 'nothing was left to shut down');
    assert.deepEqual(redisServersIn(dir), [next.process.pid]);
    assert.equal(lockOf(dir).pid, process.pid);
    await next.stop();
    assert.deepEqual(redisServersIn(dir), []);
    assert.equal(existsSync(path.join(dir, REDIS_LOCK_FILE)), false, 'stop releases the lock');
  });

  it('a stale lock and a stale redis.pid (their processes are gone) do not stop a start', async () => {
    const dir = tmp();
    const gone = deadPid();
    writeFileSync(path.join(dir, REDIS_LOCK_FILE), JSON.stringify({ pid: gone, start: null, boot: null, redisPid: gone, port: 1 }));
    writeFileSync(path.join(dir, REDIS_PID_FILE), `${gone}\n`);
    const s = await startRedisServer({ dataDir: dir });
    servers.push(s);
    assert.equal(s.retired, null);
    assert.equal(lockOf(dir).pid, process.pid);
    assert.equal(lockOf(dir).redisPid, s.process.pid);
    assert.equal(readFileSync(path.join(dir, REDIS_PID_FILE), 'utf8').trim(), String(s.process.pid));
    await s.stop();
  });

  it('a lock naming a live process that is not its writer (pid reused, e.g. after a reboot) is stale', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, REDIS_LOCK_FILE), JSON.stringify({ pid: 1, start: '1', boot: 'another-boot' }));
    const s = await startRedisServer({ dataDir: dir });
    servers.push(s);
    assert.equal(lockOf(dir).pid, process.pid);
    await s.stop();
  });

  for (const via of ['socket', 'port'] as const) {
    it(`a live server a dead run left on the dir (reached by its ${via}) is shut down cleanly first, its data kept`, async () => {
      const dir = tmp();
      const socket = path.join(dir, 'redis.sock');
      const port = await findFreePort();
      // An orphan as an older mailgw (no watchdog) leaves it: our socket, our dir, AOF on.
      const orphan = spawn(
        findRedisServer()!,
        ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--pidfile', path.join(dir, REDIS_PID_FILE), ...(via === 'socket' ? ['--unixsocket', socket] : [])],
        { cwd: dir, stdio: 'ignore', detached: true },
      );
      children.push(orphan);
      const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 200 });
      c.on('error', () => undefined);
      await until(() => existsSync(path.join(dir, REDIS_PID_FILE)), 'the orphan to write its pid file');
      for (let i = 0; ; i++) {
        try {
          await c.connect();
          break;
        } catch {
          if (i > 50) throw new Error('the orphan does not answer');
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await c.set('queued', 'mail'); // not yet fsynced (everysec): SHUTDOWN must flush it
      c.disconnect();
      const gone = deadPid();
      writeFileSync(path.join(dir, REDIS_LOCK_FILE), JSON.stringify({ pid: gone, start: null, boot: null, redisPid: orphan.pid, host: '127.0.0.1', port, socket: via === 'socket' ? socket : null }));

      const s = await startRedisServer({ dataDir: dir, ...(via === 'socket' ? { unixSocket: socket } : {}) });
      servers.push(s);
      assert.deepEqual(s.retired, { pid: orphan.pid, via: via === 'socket' ? socket : `127.0.0.1:${port}` });
      assert.equal(running(orphan.pid!), false);
      assert.deepEqual(redisServersIn(dir), [s.process.pid]);
      const n = new Redis(s.url);
      try {
        assert.equal(await n.get('queued'), 'mail');
      } finally {
        n.disconnect();
      }
      await s.stop();
    });
  }
});

describe('embedded redis-server keepAlive', () => {
  type Event = { kind: 'exit'; signal: string | null; code: number | null; restartInMs: number; log: string } | { kind: 'restarted'; attempts: number } | { kind: 'failed'; error: string; restartInMs: number };
  const start = async (dir: string, events: Event[]) => {
    const s = await startRedisServer({
      dataDir: dir,
      unixSocket: path.join(dir, 'redis.sock'),
      keepAlive: {
        onExit: (e) => events.push({ kind: 'exit', signal: e.signal, code: e.code, restartInMs: e.restartInMs, log: e.log }),
        onRestarted: (e) => events.push({ kind: 'restarted', attempts: e.attempts }),
        onRestartFailed: (e) => events.push({ kind: 'failed', error: e.error.message, restartInMs: e.restartInMs }),
      },
    });
    servers.push(s);
    return s;
  };

  it('a server that dies is started again on the same port and socket, with what it had acknowledged', async () => {
    const dir = tmp();
    const events: Event[] = [];
    const s = await start(dir, events);
    const port = s.port;
    const c = new Redis({ path: path.join(dir, 'redis.sock'), retryStrategy: () => 50 });
    c.on('error', () => {});
    try {
      await c.set('acknowledged', 'kept');
      const first = s.process.pid!;
      await s.kill('SIGKILL');
      await until(() => events.some((e) => e.kind === 'restarted'), 'the server to be started again', 10_000);
      assert.deepEqual(events.map((e) => e.kind), ['exit', 'restarted']);
      assert.deepEqual({ ...events[0], log: undefined }, { kind: 'exit', signal: 'SIGKILL', code: null, restartInMs: 500, log: undefined });
      assert.equal(s.running, true);
      assert.notEqual(s.process.pid, first);
      assert.equal(s.port, port);
      assert.equal(lockOf(dir).redisPid, s.process.pid, 'the lock names the new server');
      // The same client, reconnected over the same socket: the acknowledged write was replayed from the AOF.
      assert.equal(await c.get('acknowledged'), 'kept');
      assert.equal(await new Redis(port, '127.0.0.1').quit(), 'OK');
    } finally {
      c.disconnect();
    }
    // stop() and restart() are asked for: neither counts as an exit.
    await s.restart();
    await s.stop();
    await new Promise((r) => setTimeout(r, 1200));
    assert.deepEqual(events.map((e) => e.kind), ['exit', 'restarted']);
    assert.equal(s.running, false);
  });

  it('a start that fails is tried again with a longer wait, until the server runs', async () => {
    const dir = tmp();
    const events: Event[] = [];
    const s = await start(dir, events);
    const manifest = path.join(dir, 'appendonlydir', 'appendonly.aof.manifest');
    const good = readFileSync(manifest, 'utf8');
    // Killed, with its AOF manifest broken: Redis refuses to start until it is mended.
    writeFileSync(manifest, 'not a manifest\n');
    await s.kill('SIGKILL');
    await until(() => events.filter((e) => e.kind === 'failed').length >= 2, 'two failed starts', 15_000);
    const failed = events.filter((e): e is Extract<Event, { kind: 'failed' }> => e.kind === 'failed');
    assert.deepEqual(failed.slice(0, 2).map((e) => e.restartInMs), [1000, 2000]);
    assert.match(failed[0]!.error, /redis-server exited \(1\)/);
    writeFileSync(manifest, good);
    await until(() => events.some((e) => e.kind === 'restarted'), 'the server to run once the manifest is mended', 15_000);
    assert.equal(s.running, true);
    const c = new Redis({ path: path.join(dir, 'redis.sock') });
    try {
      assert.equal(await c.ping(), 'PONG');
    } finally {
      c.disconnect();
    }
  });
});
