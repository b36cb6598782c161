// Back pressure over real SMTP and a real Redis: the monitor reads the Redis' memory use (INFO
// memory) against its maxmemory, which the test moves with CONFIG SET; MAIL FROM is answered
// 452 4.3.1 Insufficient system resources at high (everyone) and at medium (anonymous senders
// only; an authenticated user goes on), and 250 again once the level is over, each change
// logged once with its figures. Switching it off (backPressure.enabled: false) applies live.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { BackPressureMonitor, memoryReading } from '@mailgw/listener';
import type { PressureLevel } from '@mailgw/policy';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp } from './helpers/smtp-client.js';
import { eventually } from '../worker/helpers/gateway.js';
import { ACCEPTED, makeConfigDir } from '../ops/helpers/config-dir.js';
import { startGatewayProcess } from '../ops/helpers/gateway-process.js';

let redis: TestRedis;
let admin: Redis;
let monitorClient: Redis;
let monitor: BackPressureMonitor;
let gw: TestGateway;
let port = 0;
const logs: Array<Record<string, unknown>> = [];
// Wide apart, so that the few KB a connection adds to Redis' memory never cross a threshold.
const settings = { enabled: true, mediumPercent: 50, highPercent: 90, checkInterval: 50 };

before(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  monitorClient = new Redis(redis.url);
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  monitor = new BackPressureMonitor({ redis: monitorClient, settings: () => settings, logger: pino({ level: 'info' }, sink) });
  await monitor.start();
  port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    backPressure: monitor,
    // Anonymous senders may submit (AnonymousUsers); alice may AUTH without TLS (BasicAuth).
    connectors: { smtp: { name: 'Mixed', usage: 'Custom', bindings: [`127.0.0.1:${port}`], authMechanism: ['BasicAuth'], permissionGroups: ['AnonymousUsers', 'ExchangeUsers'], tarpitInterval: 0 } },
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

/** MAIL FROM's reply for an anonymous session and for alice after AUTH; both sessions left open and usable. */
async function mailReplies(): Promise<{ anonymous: string; alice: string }> {
  const anon = await RawSmtp.connect({ host: '127.0.0.1', port });
  const alice = await RawSmtp.connect({ host: '127.0.0.1', port });
  try {
    await anon.ehlo();
    await alice.ehlo();
    assert.equal((await alice.authPlain('alice', PASSWORD)).last, '235 2.7.0 Authentication successful');
    const out = { anonymous: (await anon.cmd('MAIL FROM:<someone@example.net>')).last, alice: (await alice.cmd('MAIL FROM:<alice@contoso.test>')).last };
    // Refused or not, the connection goes on.
    for (const c of [anon, alice]) assert.equal((await c.cmd('RSET')).last, '250 2.0.0 Resetting');
    return out;
  } finally {
    await anon.quit();
    await alice.quit();
  }
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
    cfg.writeGateway([ 'fqdn: mx.pressure.test', 'dataDir: ./var', ACCEPTED, 'processes: { listeners: 2, workers: 1 }', 'backPressure: { checkInterval: 100ms }', 'queue: { drainTimeout: 2s }', ''].join('\n'));
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
    } finally {
      await use(10, 'normal');
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
