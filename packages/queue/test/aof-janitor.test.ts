// The embedded Redis' old append-only files, freed a slice at a time: the manifest's history
// files are found, truncated in steps, then dropped by Redis itself; with a real redis-server 7
// (aof-disable-auto-gc yes), its data untouched.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { AOF_MANIFEST, findRedisServer, historyFiles, redisServerMajorVersion, startAofJanitor, startRedisServer, type AofJanitorEvent, type RedisServer } from '@mailgw/queue';

const dirs: string[] = [];
const servers: RedisServer[] = [];
after(async () => {
  for (const s of servers) await s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
/** The server's aof-disable-auto-gc, asked over a connection of its own. */
async function autoGcDisabled(s: RedisServer): Promise<string | undefined> {
  const c = new Redis(s.port, s.host);
  try {
    return ((await c.config('GET', 'aof-disable-auto-gc')) as string[])[1];
  } finally {
    c.disconnect();
  }
}

const tmp = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'mailgw-aof-janitor-'));
  dirs.push(d);
  return d;
};

describe('AOF history janitor', () => {
  it('reads the history files of a Redis 7 manifest', () => {
    const manifest = 'file appendonly.aof.1.base.rdb seq 1 type h\nfile appendonly.aof.1.incr.aof seq 1 type h\nfile appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n';
    assert.deepEqual(historyFiles(manifest), ['appendonly.aof.1.base.rdb', 'appendonly.aof.1.incr.aof']);
    assert.deepEqual(historyFiles('file appendonly.aof.3.base.rdb seq 3 type b\n'), []);
    assert.deepEqual(historyFiles(''), []);
  });

  it('tells a Redis 7 from an older one by its --version', () => {
    const d = tmp();
    const fake = path.join(d, 'redis-server-6');
    writeFileSync(fake, '#!/bin/sh\necho "Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc-5.2.1 bits=64 build=1"\n');
    chmodSync(fake, 0o755);
    assert.equal(redisServerMajorVersion(fake), 6);
    assert.equal(redisServerMajorVersion(path.join(d, 'missing')), 0);
    assert.ok(redisServerMajorVersion(findRedisServer()!) >= 7, 'the redis-server the tests use is 7 or later');
  });

  it('after a rewrite, the old incr file is truncated in steps, then Redis drops it from the manifest; the data stays', async () => {
    const dir = tmp();
    const events: AofJanitorEvent[] = [];
    const s = await startRedisServer({ dataDir: dir, unixSocket: path.join(dir, 'redis.sock'), historyGc: { stepBytes: 1024 * 1024, pauseMs: 5, intervalMs: 100, onEvent: (e) => events.push(e) } });
    servers.push(s);
    const c = new Redis({ path: path.join(dir, 'redis.sock') });
    try {
      assert.deepEqual(await c.config('GET', 'aof-disable-auto-gc'), ['aof-disable-auto-gc', 'yes']);
      const body = Buffer.alloc(100 * 1024, 'x');
      // 8 MB through the AOF, most of it deleted again (as delivered mail is).
      for (let i = 0; i < 80; i++) {
        await c.set(`m:${i}`, body);
        if (i >= 5) await c.del(`m:${i - 5}`);
      }
      const manifest = () => readFileSync(path.join(dir, AOF_MANIFEST), 'utf8');
      const before = manifest();
      const oldIncr = /file (\S+\.incr\.aof) seq \d+ type i/.exec(before)![1]!;
      await c.bgrewriteaof();
      const deadline = Date.now() + 15_000;
      while (!events.some((e) => e.kind === 'collected') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const truncated = events.find((e): e is Extract<AofJanitorEvent, { kind: 'truncated' }> => e.kind === 'truncated' && e.file === oldIncr);
      assert.ok(truncated, JSON.stringify(events));
      assert.ok(truncated.bytes > 8_000_000, `${truncated.bytes} bytes`);
      assert.equal(truncated.steps, Math.ceil(truncated.bytes / (1024 * 1024)), 'one step per MiB');
      const collected = events.find((e): e is Extract<AofJanitorEvent, { kind: 'collected' }> => e.kind === 'collected')!;
      assert.ok(collected.files.includes(oldIncr));
      assert.deepEqual(historyFiles(manifest()), []);
      assert.equal(existsSync(path.join(dir, 'appendonlydir', oldIncr)), false, `${oldIncr} is gone: ${readdirSync(path.join(dir, 'appendonlydir')).join(', ')}`);
      assert.equal(events.some((e) => e.kind === 'error'), false, JSON.stringify(events));
      // Still on: the next rewrite's files wait for the janitor again.
      assert.deepEqual(await c.config('GET', 'aof-disable-auto-gc'), ['aof-disable-auto-gc', 'yes']);
      for (let i = 75; i < 80; i++) assert.equal((await c.getBuffer(`m:${i}`))?.length, body.length);
    } finally {
      c.disconnect();
    }
    // And after a restart, from the files alone.
    await s.restart();
    const d = new Redis({ path: path.join(dir, 'redis.sock') });
    try {
      assert.equal(await d.dbsize(), 5);
    } finally {
      d.disconnect();
    }
  });

  it('a history file already gone, or one that is empty, does not hold the others up', async () => {
    const redisDir = tmp();
    const s = await startRedisServer({ dataDir: redisDir, historyGc: false });
    servers.push(s);
    // A manifest of our own in another dir: one history file missing, one of 3 MB, one empty.
    const dir = tmp();
    mkdirSync(path.join(dir, 'appendonlydir'));
    writeFileSync(path.join(dir, AOF_MANIFEST), 'file gone.aof seq 1 type h\nfile big.aof seq 2 type h\nfile empty.aof seq 3 type h\nfile live.aof seq 4 type i\n');
    writeFileSync(path.join(dir, 'appendonlydir', 'big.aof'), Buffer.alloc(3 * 1024 * 1024, 'x'));
    writeFileSync(path.join(dir, 'appendonlydir', 'empty.aof'), '');
    writeFileSync(path.join(dir, 'appendonlydir', 'live.aof'), 'live');
    const events: AofJanitorEvent[] = [];
    const j = startAofJanitor({ dir, target: () => ({ host: s.host, port: s.port }), stepBytes: 1024 * 1024, pauseMs: 1, intervalMs: 50, onEvent: (e) => events.push(e) });
    try {
      const deadline = Date.now() + 5000;
      while (!events.some((e) => e.kind === 'truncated') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      // Two sweeps later it still runs (no loop on the missing file), and asked Redis each time.
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(events.filter((e) => e.kind !== 'error'), [{ kind: 'truncated', file: 'big.aof', bytes: 3 * 1024 * 1024, steps: 3 }]);
      assert.equal(events.some((e) => e.kind === 'error'), false, JSON.stringify(events));
      assert.equal(statSync(path.join(dir, 'appendonlydir', 'big.aof')).size, 0);
      assert.equal(readFileSync(path.join(dir, 'appendonlydir', 'live.aof'), 'utf8'), 'live', 'the live file is never touched');
    } finally {
      await j.stop();
    }
    // The sweeps got as far as asking Redis to collect (CONFIG SET … no, then yes; read once the
    // janitor has stopped, as a sweep under way sets both or neither).
    assert.equal(await autoGcDisabled(s), 'yes');
  });

  it('historyGc false: Redis deletes its old files itself, as it does by default', async () => {
    const dir = tmp();
    const s = await startRedisServer({ dataDir: dir, historyGc: false });
    servers.push(s);
    assert.equal(await autoGcDisabled(s), 'no');
  });
});
