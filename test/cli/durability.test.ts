// redis.durability: what a 250 promises, and whether the Redis in use keeps it. The embedded
// Redis runs appendfsync always by default; an external one is read at start and a setting that
// cannot keep the promise is named in one warning; `check` says what os-buffered gives up.
import assert from 'node:assert/strict';
import os from 'node:os';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { findFreePort, startRedisServer, type RedisServer } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startGatewayProcess, type GatewayProcess } from '../ops/helpers/gateway-process.js';
import { ACCEPTED, makeConfigDir } from '../ops/helpers/config-dir.js';
import { mailgw } from './helpers/binary.js';

const cfg = makeConfigDir('mailgw-durability-');
const running: GatewayProcess[] = [];
let external: TestRedis;
let noConfig: RedisServer;
let noConfigDir: ReturnType<typeof makeConfigDir>;

before(async () => {
  external = await startRedis();
  // A "managed" Redis: CONFIG renamed away, as hosted services do.
  noConfigDir = makeConfigDir('mailgw-durability-managed-');
  noConfig = await startRedisServer({ dataDir: noConfigDir.dir, extraArgs: ['--rename-command', 'CONFIG', ''] });
});

after(async () => {
  for (const g of running) if (g.child.exitCode === null && g.child.signalCode === null) await g.stop();
  await external?.stop();
  await noConfig?.stop();
  noConfigDir?.remove();
  cfg.remove();
});

async function config(redis: string, extra = ''): Promise<void> {
  const port = await findFreePort();
  cfg.writeGateway(['fqdn: mx.durable.test', 'dataDir: ./var', ACCEPTED, `redis: { ${redis} }`, 'queue: { drainTimeout: 2s }', extra, ''].join('\n'));
  cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port}"]\n`);
}

async function start(env: NodeJS.ProcessEnv = {}, command: 'start' | 'listen' = 'start'): Promise<GatewayProcess> {
  const g = await startGatewayProcess(cfg.gatewayFile, env, command);
  running.push(g);
  return g;
}

const durabilityWarnings = (g: GatewayProcess) => g.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('redis.durability is'));

describe('redis.durability', () => {
  it('default (fsync): the embedded Redis runs appendonly yes, appendfsync always', async () => {
    await config('prefix: "{mailgw}"');
    const g = await start();
    const line = g.logs.find((l) => l.msg === 'started an embedded redis-server (set REDIS_URL or redis.url to use your own)');
    assert.ok(line, g.output());
    const c = new Redis({ path: String(line.socket).replace(/^unix:\/\//, '') });
    try {
      assert.deepEqual(await c.call('CONFIG', 'GET', 'appendfsync'), ['appendfsync', 'always']);
      assert.deepEqual(await c.call('CONFIG', 'GET', 'appendonly'), ['appendonly', 'yes']);
      // redis.maxMemory auto: half the machine's memory, so back pressure (80% / 90% of it) acts before the OOM killer.
      const half = Math.floor(os.totalmem() / 2);
      assert.deepEqual(await c.call('CONFIG', 'GET', 'maxmemory'), ['maxmemory', String(half)]);
      assert.equal(line.maxmemory, half);
    } finally {
      c.disconnect();
    }
    assert.equal(await g.stop(), 0, g.output());
  });

  it('os-buffered with maxMemory 64mb: the embedded Redis runs appendfsync everysec with that maxmemory, and check says what os-buffered gives up', async () => {
    await config('durability: os-buffered, maxMemory: 64mb');
    const r = mailgw(['check', '--config', cfg.gatewayFile]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out + r.err, /gateway\.yaml: redis\.durability: os-buffered: .*an OS crash or power loss can lose up to about a second of mail/);
    const g = await start();
    const line = g.logs.find((l) => l.msg === 'started an embedded redis-server (set REDIS_URL or redis.url to use your own)')!;
    const c = new Redis({ path: String(line.socket).replace(/^unix:\/\//, '') });
    try {
      assert.deepEqual(await c.call('CONFIG', 'GET', 'appendfsync'), ['appendfsync', 'everysec']);
      assert.deepEqual(await c.call('CONFIG', 'GET', 'maxmemory'), ['maxmemory', String(64 * 1024 ** 2)]);
    } finally {
      c.disconnect();
    }
    assert.equal(await g.stop(), 0, g.output());
  });

  it('an external Redis with appendfsync everysec: one warning at start naming the setting and the fix', async () => {
    const admin = new Redis(external.url);
    await admin.call('CONFIG', 'SET', 'appendfsync', 'everysec');
    admin.disconnect();
    await config('prefix: "{mailgw}"');
    const g = await start({ REDIS_URL: external.url }, 'listen');
    await g.waitForLog((l) => l.msg === 'mailgw is running', 'mailgw to run');
    const w = durabilityWarnings(g);
    assert.equal(w.length, 1, g.output());
    assert.match(String(w[0]!.msg), /appendfsync everysec: an OS crash or power loss can lose up to about a second of mail already answered 250\. Set appendfsync always/);
    assert.equal(await g.stop(), 0, g.output());
  });

  it('an external Redis with appendfsync always: no warning', async () => {
    const admin = new Redis(external.url);
    await admin.call('CONFIG', 'SET', 'appendfsync', 'always');
    admin.disconnect();
    const g = await start({ REDIS_URL: external.url }, 'listen');
    await g.waitForLog((l) => l.msg === 'mailgw is running', 'mailgw to run');
    assert.deepEqual(durabilityWarnings(g), []);
    assert.equal(await g.stop(), 0, g.output());
  });

  it('a Redis without CONFIG (managed): the guarantee cannot be checked, and the warning says so', async () => {
    const g = await start({ REDIS_URL: noConfig.url }, 'listen');
    await g.waitForLog((l) => l.msg === 'mailgw is running', 'mailgw to run');
    const w = durabilityWarnings(g);
    assert.equal(w.length, 1, g.output());
    assert.match(String(w[0]!.msg), /does not allow CONFIG GET .*cannot be checked/);
    assert.equal(await g.stop(), 0, g.output());
  });

  it('replicas: refused without waitForReplicas (check names the key), and with the embedded Redis (it has none)', async () => {
    await config('durability: replicas');
    const r = mailgw(['check', '--config', cfg.gatewayFile]);
    assert.equal(r.code, 1);
    assert.match(r.err + r.out, /gateway\.yaml: redis\.durability: durability: replicas promises that replicas have each message before the 250: set waitForReplicas/);
    await config('durability: replicas, waitForReplicas: 1');
    const refused = await startGatewayProcess(cfg.gatewayFile, {}).then(
      (g) => (running.push(g), null),
      (e: Error) => e,
    );
    assert.ok(refused, 'mailgw start ran with durability: replicas and the embedded Redis');
    assert.match(refused.message, /redis\.durability: replicas needs a Redis with replicas .*the embedded redis-server has none/);
  });
});
