// Back pressure over real SMTP and a real Redis: the monitor reads the Redis' memory use (INFO
// memory) against its maxmemory, which the test moves with CONFIG SET; MAIL FROM is answered
// 452 4.3.1 Insufficient system resources at high (everyone) and at medium (anonymous senders
// only; an authenticated user goes on), and 250 again once the level is over, each change
// logged once with its figures. Switching it off (backPressure.enabled: false) applies live.
// The disk under the data directory (statfs of a real temp dir, thresholds set around its real
// use) does the same; the levels reach /metrics (mailgw_back_pressure_level, the highest of the
// listener processes under mailgw start).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findRedisServer } from '@mailgw/queue';
import { BackPressureMonitor, diskReading, memoryReading, persistenceReading } from '@mailgw/listener';
import { GatewayMetrics } from '@mailgw/ops';
import type { PressureLevel } from '@mailgw/policy';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp } from './helpers/smtp-client.js';
import { eventually } from '../worker/helpers/gateway.js';
import { ACCEPTED, makeConfigDir } from '../ops/helpers/config-dir.js';
import { startGatewayProcess } from '../ops/helpers/gateway-process.js';
import { capturedLogger } from '../worker/helpers/tls-far.js';

let redis: TestRedis;
let admin: Redis;
let monitorClient: Redis;
let monitor: BackPressureMonitor;
let gw: TestGateway;
let port = 0;
const { logger: monitorLogger, lines: logs } = capturedLogger('info');
// Wide apart, so that the few KB a connection adds to Redis' memory never cross a threshold.
const settings = { enabled: true, mediumPercent: 50, highPercent: 90, checkInterval: 50 };

before(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  monitorClient = new Redis(redis.url);
  monitor = new BackPressureMonitor({ redis: monitorClient, settings: () => settings, logger: monitorLogger });
  await monitor.start();
  port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    backPressure: monitor,
    // Anonymous senders may submit (AnonymousUsers); alice may AUTH without TLS (BasicAuth). The
    // tarpit is ten minutes: the 452 4.3.1 (the gateway's own trouble) must not be held back.
    connectors: { smtp: { name: 'Mixed', usage: 'Custom', bindings: [`127.0.0.1:${port}`], authMechanism: ['BasicAuth'], permissionGroups: ['AnonymousUsers', 'ExchangeUsers'], tarpitInterval: '10m' } },
  });
});

after(async () => {
  await admin?.config('SET', 'maxmemory', '0');
  monitor?.stop();
  await gw?.close();
  monitorClient?.disconnect();
  admin?.disconnect();
  await redis?.stop();
});

/** Sets maxmemory so that what Redis uses now is `pct` % of it, and waits for the monitor to see `level`. */
async function use(pct: number, level: PressureLevel): Promise<void> {
  const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
  await admin.config('SET', 'maxmemory', String(Math.ceil(used / (pct / 100))));
  await eventually(() => monitor.current().level === level, `back pressure ${level} at ${pct}% (now ${monitor.current().level}: ${monitor.current().reason})`, 5000);
}

/** The reply, or a failure if it does not come within 20 s: the connector's tarpit (10 minutes) held it back. */
async function notHeldBack<T>(reply: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const held = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the reply was held back by the tarpit (tarpitInterval 10m)')), 20_000)));
  try {
    return await Promise.race([reply, held]);
  } finally {
    clearTimeout(timer);
  }
}

/** MAIL FROM's reply for an anonymous session and for alice after AUTH; both sessions left open and usable. */
async function mailReplies(): Promise<{ anonymous: string; alice: string }> {
  const anon = await RawSmtp.connect({ host: '127.0.0.1', port });
  const alice = await RawSmtp.connect({ host: '127.0.0.1', port });
  let out: { anonymous: string; alice: string };
  try {
    await anon.ehlo();
    await alice.ehlo();
    assert.equal((await alice.authPlain('alice', PASSWORD)).last, '235 2.7.0 Authentication successful');
    out = { anonymous: (await notHeldBack(anon.cmd('MAIL FROM:<someone@example.net>'))).last, alice: (await alice.cmd('MAIL FROM:<alice@contoso.test>')).last };
    // Refused or not, the connection goes on.
    for (const c of [anon, alice]) assert.equal((await c.cmd('RSET')).last, '250 2.0.0 Resetting');
  } catch (e) {
    // A reply held back would hold QUIT's too: drop the connections.
    anon.destroy();
    alice.destroy();
    throw e;
  }
  await anon.quit();
  await alice.quit();
  return out;
}

const levelLogs = () => logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('back pressure')).map((l) => [l.level, l.backPressure, l.previous, l.msg]);

describe('back pressure from the queue\'s Redis memory', () => {
  it('the memory reading: used_memory against maxmemory, or the machine\'s memory without one', () => {
    assert.deepEqual(memoryReading('# Memory\r\nused_memory:1000\r\nmaxmemory:4000\r\ntotal_system_memory:9000\r\n'), { usedBytes: 1000, limitBytes: 4000, limitFrom: 'maxmemory' });
    assert.deepEqual(memoryReading('used_memory:1000\r\nmaxmemory:0\r\ntotal_system_memory:9000\r\n', '10.0.0.1:7000'), { usedBytes: 1000, limitBytes: 9000, limitFrom: 'system memory', node: '10.0.0.1:7000' });
    assert.equal(memoryReading('used_memory:1000\r\nmaxmemory:0\r\n'), null);
    assert.equal(memoryReading('garbage'), null);
  });

  it('normal: everyone gets 250', async () => {
    await use(10, 'normal');
    assert.deepEqual(await mailReplies(), { anonymous: '250 2.1.0 Sender OK', alice: '250 2.1.0 Sender OK' });
  });

  it('high: everyone gets 452 4.3.1, and the change is logged once with its figures', async () => {
    await use(97, 'high');
    assert.deepEqual(await mailReplies(), { anonymous: '452 4.3.1 Insufficient system resources', alice: '452 4.3.1 Insufficient system resources' });
    const warn = logs.find((l) => l.level === 40 && l.previous === 'normal');
    assert.ok(warn, JSON.stringify(logs));
    assert.equal(warn.msg, "back pressure high: all new mail is refused (452 4.3.1) until the queue's Redis has memory again");
    assert.match(String(warn.why), /^the queue's Redis uses \d+\.\d MB, 9\d\.\d% of its maxmemory \(\d+\.\d MB\): at or above highPercent 90%$/);
  });

  it('medium (coming down from high): anonymous senders get 452 4.3.1, an authenticated user goes on', async () => {
    await use(70, 'medium');
    assert.deepEqual(await mailReplies(), { anonymous: '452 4.3.1 Insufficient system resources', alice: '250 2.1.0 Sender OK' });
  });

  it('over: 250 for everyone again, logged at info', async () => {
    await use(10, 'normal');
    assert.deepEqual(await mailReplies(), { anonymous: '250 2.1.0 Sender OK', alice: '250 2.1.0 Sender OK' });
    assert.deepEqual(levelLogs(), [
      [40, 'high', 'normal', "back pressure high: all new mail is refused (452 4.3.1) until the queue's Redis has memory again"],
      [40, 'medium', 'high', 'back pressure medium: mail from anonymous senders is refused (452 4.3.1); authenticated and externally secured sessions go on'],
      [30, 'normal', 'medium', 'back pressure over: mail is accepted again'],
    ]);
  });

  it('mailgw start (two listener processes) on that Redis: each listener process refuses at high, and says so in its log', async () => {
    const cfg = makeConfigDir('mailgw-backpressure-');
    const p = await freePort();
    const httpPort = await freePort();
    cfg.writeGateway([ 'fqdn: mx.pressure.test', 'dataDir: ./var', ACCEPTED, 'processes: { listeners: 2, workers: 1 }', 'backPressure: { checkInterval: 100ms }', 'queue: { drainTimeout: 2s }', `http: { listen: "127.0.0.1:${httpPort}" }`, ''].join('\n'));
    cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${p}"]\ntarpitInterval: 0\n`);
    const g = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url });
    try {
      // Raised once it runs (its own start writes to Redis).
      await use(97, 'high');
      const warned = () => new Set(g.logs.filter((l) => l.msg === "back pressure high: all new mail is refused (452 4.3.1) until the queue's Redis has memory again").map((l) => l.pid));
      await eventually(() => warned().size === 2, 'both listener processes to see back pressure high');
      for (let i = 0; i < 4; i++) {
        const c = await RawSmtp.connect({ host: '127.0.0.1', port: p });
        await c.ehlo();
        assert.equal((await c.cmd('MAIL FROM:<someone@example.net>')).last, '452 4.3.1 Insufficient system resources');
        await c.quit();
      }
      // The process list (dashboard, /api/state) has it at once: each listener's heartbeat carries its level.
      await eventually(async () => {
        const beats = Object.values(await admin.hgetall('{mailgw}:processes')).map((v) => JSON.parse(v) as { role: string; backPressure?: { level: string; reason: string } });
        const listeners = beats.filter((b) => b.role === 'listener');
        return listeners.length === 2 && listeners.every((b) => b.backPressure?.level === 'high' && /at or above highPercent 90%/.test(b.backPressure.reason));
      }, 'both listener heartbeats to say back pressure high', 5000);
      // /healthz stays 200 (a restart would not help) and says so; /readyz is 503 (a load balancer takes it out).
      const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      assert.equal(health.status, 200);
      const hb = (await health.json()) as Record<string, unknown>;
      assert.deepEqual([hb.status, hb.backPressure], ['ok', 'high']);
      assert.match(String(hb.backPressureReason), /at or above highPercent 90%$/);
      const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
      assert.equal(ready.status, 503);
      const rb = (await ready.json()) as Record<string, unknown>;
      assert.equal(rb.status, 'not ready');
      assert.match(String(rb.why), /^back pressure high: all new mail is refused \(452 4\.3\.1\): the queue's Redis uses /);
      // One endpoint for the gateway: the highest level of its listener processes, not their sum.
      const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      assert.match(text, /^mailgw_back_pressure_level\{resource="memory",role="listener"\} 2$/m, text);
      assert.match(text, /^mailgw_back_pressure_level\{resource="redis-writes",role="listener"\} 0$/m);
      assert.match(text, /^mailgw_back_pressure_used_percent\{resource="memory",role="listener"\} 9\d(\.\d+)?$/m);
      assert.match(text, /^mailgw_back_pressure_level\{resource="disk",role="listener"\} [01]$/m);
      assert.match(text, /^mailgw_smtp_refusals_total\{connector="Default",reason="back-pressure-high",role="listener"\} 4$/m);
    } finally {
      await use(10, 'normal');
      await eventually(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200, '/readyz 200 once back pressure is over', 5000);
      assert.equal(await g.stop(), 0, g.output());
      cfg.remove();
    }
  });

  it('backPressure.enabled: false applies at the next check: normal whatever the memory use', async () => {
    await use(97, 'high');
    settings.enabled = false;
    try {
      await eventually(() => monitor.current().level === 'normal', 'back pressure off');
      assert.deepEqual(await mailReplies(), { anonymous: '250 2.1.0 Sender OK', alice: '250 2.1.0 Sender OK' });
    } finally {
      settings.enabled = true;
    }
  });
});

describe('back pressure from the disk under the data directory', () => {
  let dir: string;
  let diskMonitor: BackPressureMonitor;
  let diskGw: TestGateway;
  let diskPort = 0;
  const { logger: diskLogger, lines: diskLogs } = capturedLogger('info');
  // Memory far from its thresholds; the disk's are set around the real use of the test's disk.
  const diskSettings = { enabled: true, mediumPercent: 98, highPercent: 99, checkInterval: 50, disk: { mediumPercent: 90, highPercent: 95 } };
  let pct = 0;

  before(async () => {
    await admin.config('SET', 'maxmemory', '0');
    dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-disk-'));
    const r = await diskReading(dir);
    pct = (100 * r.usedBytes) / (r.usedBytes + r.availableBytes);
    diskMonitor = new BackPressureMonitor({ redis: monitorClient, settings: () => diskSettings, logger: diskLogger, diskPath: dir });
    await diskMonitor.start();
    diskPort = await freePort();
    diskGw = await startGateway({
      redisUrl: redis.url,
      backPressure: diskMonitor,
      connectors: { smtp: { name: 'Mixed', usage: 'Custom', bindings: [`127.0.0.1:${diskPort}`], authMechanism: ['BasicAuth'], permissionGroups: ['AnonymousUsers', 'ExchangeUsers'], tarpitInterval: 0 } },
    });
  });

  after(async () => {
    diskMonitor?.stop();
    await diskGw?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Sets the disk thresholds so that the disk's real use is at `level`, and waits for the monitor to see it. */
  async function diskAt(level: PressureLevel): Promise<void> {
    const p = Math.floor(pct);
    // Each a few points from the real use, so a file written meanwhile does not move the level.
    diskSettings.disk = level === 'high' ? { mediumPercent: Math.max(1, p - 3), highPercent: Math.max(2, p - 2) } : level === 'medium' ? { mediumPercent: Math.max(1, p - 2), highPercent: p + 8 } : { mediumPercent: p + 8, highPercent: p + 9 };
    await eventually(() => diskMonitor.current().level === level, `disk back pressure ${level} (now ${diskMonitor.current().level}: ${diskMonitor.current().reason})`, 5000);
  }

  async function replies(): Promise<{ anonymous: string; alice: string }> {
    const anon = await RawSmtp.connect({ host: '127.0.0.1', port: diskPort });
    const alice = await RawSmtp.connect({ host: '127.0.0.1', port: diskPort });
    try {
      await anon.ehlo();
      await alice.ehlo();
      assert.equal((await alice.authPlain('alice', PASSWORD)).last, '235 2.7.0 Authentication successful');
      return { anonymous: (await anon.cmd('MAIL FROM:<someone@example.net>')).last, alice: (await alice.cmd('MAIL FROM:<alice@contoso.test>')).last };
    } finally {
      await anon.quit();
      await alice.quit();
    }
  }

  it('the disk reading is what df counts: used of used + available', async (t) => {
    if (pct < 4 || pct > 85) return t.skip(`this disk is ${pct.toFixed(1)}% full: the thresholds cannot be set around it`);
    const r = await diskReading(dir);
    assert.equal(r.path, dir);
    assert.ok(r.usedBytes > 0 && r.availableBytes > 0, JSON.stringify(r));
  });

  it('normal, high, medium, normal: the replies, the log naming the disk, and the metrics', async (t) => {
    if (pct < 4 || pct > 85) return t.skip(`this disk is ${pct.toFixed(1)}% full: the thresholds cannot be set around it`);
    const metrics = new GatewayMetrics({ processMetrics: false });
    metrics.watchBackPressure(diskMonitor);
    const gauge = async () => (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('mailgw_back_pressure_level{'));

    await diskAt('normal');
    assert.deepEqual(await replies(), { anonymous: '250 2.1.0 Sender OK', alice: '250 2.1.0 Sender OK' });

    await diskAt('high');
    assert.deepEqual(await replies(), { anonymous: '452 4.3.1 Insufficient system resources', alice: '452 4.3.1 Insufficient system resources' });
    const warn = diskLogs.find((l) => l.backPressure === 'high');
    assert.ok(warn, JSON.stringify(diskLogs));
    assert.equal(warn.msg, 'back pressure high: all new mail is refused (452 4.3.1) until the disk under the data directory has room again');
    assert.equal(warn.resource, 'disk');
    assert.match(String(warn.why), new RegExp(`^the disk under ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is \\d+\\.\\d% full \\(\\d+(\\.\\d)? [GM]B available of \\d+(\\.\\d)? [GM]B\\): at or above disk\\.highPercent \\d+%$`));
    assert.deepEqual(await gauge(), ['mailgw_back_pressure_level{resource="memory"} 0', 'mailgw_back_pressure_level{resource="redis-writes"} 0', 'mailgw_back_pressure_level{resource="disk"} 2']);

    await diskAt('medium');
    assert.deepEqual(await replies(), { anonymous: '452 4.3.1 Insufficient system resources', alice: '250 2.1.0 Sender OK' });
    assert.deepEqual(await gauge(), ['mailgw_back_pressure_level{resource="memory"} 0', 'mailgw_back_pressure_level{resource="redis-writes"} 0', 'mailgw_back_pressure_level{resource="disk"} 1']);

    await diskAt('normal');
    assert.deepEqual(await replies(), { anonymous: '250 2.1.0 Sender OK', alice: '250 2.1.0 Sender OK' });
    assert.deepEqual(diskLogs.filter((l) => typeof l.backPressure === 'string').map((l) => [l.backPressure, l.resource]), [['high', 'disk'], ['medium', 'disk'], ['normal', undefined]]);
  });

  it('a data directory that cannot be read keeps the other resources going (memory is still watched)', async () => {
    const gone = path.join(dir, 'not-there');
    const m = new BackPressureMonitor({ redis: monitorClient, settings: () => diskSettings, logger: pino({ level: 'silent' }), diskPath: gone });
    await m.start();
    try {
      assert.deepEqual(m.resources().map((r) => r.resource).sort(), ['memory', 'redis-writes']);
    } finally {
      m.stop();
    }
  });

  it('the persistence reading: a Redis with AOF whose last write failed refuses writes; one without AOF is not judged by it', () => {
    assert.deepEqual(persistenceReading('# Persistence\r\naof_enabled:1\r\naof_last_write_status:err\r\n'), { aofWriteFailed: true });
    assert.deepEqual(persistenceReading('aof_enabled:1\r\naof_last_write_status:ok\r\n', '10.0.0.1:7000'), { aofWriteFailed: false, node: '10.0.0.1:7000' });
    assert.deepEqual(persistenceReading('aof_enabled:0\r\naof_last_write_status:err\r\n'), { aofWriteFailed: false });
  });
});

describe('back pressure while the queue\'s Redis cannot write its append-only file', () => {
  // A real redis-server whose files may not grow past 1 MB (RLIMIT_FSIZE, SIGXFSZ ignored), with
  // appendfsync everysec: past that, its AOF writes fail as on a full disk, it answers every write
  // with MISCONF and says aof_last_write_status:err. (With appendfsync always, mailgw's default,
  // Redis exits instead: the disk thresholds are there so it never gets that far.)
  let dir: string;
  let child: ChildProcess;
  let capped: Redis;
  let url = '';
  let wMonitor: BackPressureMonitor;
  let wGw: TestGateway;
  let wPort = 0;
  const { logger: wLogger, lines: wLogs } = capturedLogger('info');
  const wSettings = { enabled: true, mediumPercent: 98, highPercent: 99, checkInterval: 50 };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-aof-full-'));
    const p = await freePort();
    const cmd = `trap "" XFSZ; ulimit -f 2048; exec ${findRedisServer() ?? 'redis-server'} --port ${p} --bind 127.0.0.1 --dir ${dir} --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction`;
    child = spawn('sh', ['-c', cmd], { stdio: 'ignore' });
    url = `redis://127.0.0.1:${p}`;
    capped = new Redis(url, { lazyConnect: true, retryStrategy: () => 100 });
    capped.on('error', () => {}); // refused until the server is up; the ping below retries
    await eventually(async () => (await capped.ping().catch(() => '')) === 'PONG', 'the capped redis-server to answer');
    wMonitor = new BackPressureMonitor({ redis: capped, settings: () => wSettings, logger: wLogger });
    await wMonitor.start();
    wPort = await freePort();
    wGw = await startGateway({ redisUrl: url, backPressure: wMonitor, connectors: { smtp: { name: 'Default', usage: 'Internet', bindings: [`127.0.0.1:${wPort}`], tarpitInterval: 0 } } });
  });

  after(async () => {
    wMonitor?.stop();
    await wGw?.close();
    capped?.disconnect();
    child?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('MAIL FROM gets 452 4.3.1 for everyone, said once in the log; with back pressure off the body gets 451 4.3.0, never 250', async () => {
    assert.equal(wMonitor.current().level, 'normal', wMonitor.current().reason);
    // 2 MB of writes: more than the file may hold.
    await capped.eval("for i=1,200 do redis.call('set','fill:'..i, string.rep('x',10000)) end return 1", 0);
    await eventually(() => wMonitor.current().level === 'high', `back pressure high (now ${wMonitor.current().level}: ${wMonitor.current().reason})`, 10_000);
    assert.equal(wMonitor.current().resource, 'redis-writes');
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: wPort });
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<someone@example.net>')).last, '452 4.3.1 Insufficient system resources');
    const warn = wLogs.find((l) => l.backPressure === 'high');
    assert.ok(warn, JSON.stringify(wLogs));
    assert.equal(warn.msg, "back pressure high: all new mail is refused (452 4.3.1) until the queue's Redis can write again");
    assert.equal(warn.why, "the queue's Redis cannot write its append-only file (aof_last_write_status:err; a full disk?) and refuses every write");

    // Without back pressure the same Redis refuses the commit: the sender is told to retry.
    wSettings.enabled = false;
    await eventually(() => wMonitor.current().level === 'normal', 'back pressure off');
    const t = await c.transaction('someone@example.net', ['postmaster@contoso.test'], 'Subject: t\r\n\r\nbody\r\n');
    assert.equal(t.mail.last, '250 2.1.0 Sender OK');
    assert.equal(t.end?.last, '451 4.3.0 Temporary server error, please try again later');
    await c.quit();
  });
});
