// A Redis, a Sentinel set or a Redis Cluster with a password (requirepass), as production runs
// them: gateway.yaml's redis.username/password become the target string's credentials, which
// every process parses back into its connections; real redis-servers check them.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { connectRedis, findFreePort, findRedisServer, isClusterTarget, isRedisTarget, multiNodeTarget, redisTarget, redisUrlForDisplay } from '@mailgw/queue';

const PASSWORD = 'q/u@e:ue-s3cret';
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

test('credentials of a Sentinel set or Cluster travel in the target string and come back out', () => {
  const sentinel = redisTarget({ sentinels: ['10.0.0.1:26379', '10.0.0.2:26379'], name: 'queue master', password: PASSWORD })!;
  assert.equal(sentinel, `redis+sentinel://:${encodeURIComponent(PASSWORD)}@queue%20master@10.0.0.1:26379,10.0.0.2:26379`);
  assert.deepEqual(multiNodeTarget(sentinel), { kind: 'sentinel', nodes: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }], name: 'queue master', password: PASSWORD, tls: false });
  const cluster = redisTarget({ cluster: ['10.0.0.1:7000'], username: 'mailgw', password: PASSWORD })!;
  assert.deepEqual(multiNodeTarget(cluster), { kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }], username: 'mailgw', password: PASSWORD, tls: false });
  // Without credentials, as before.
  assert.deepEqual(multiNodeTarget('redis+sentinel://mymaster@10.0.0.1:26379/2'), { kind: 'sentinel', nodes: [{ host: '10.0.0.1', port: 26379 }], name: 'mymaster', db: 2, tls: false });
  assert.equal(multiNodeTarget('redis://10.0.0.1:6379'), null);
  // Shown without the password; a Sentinel set keeps its master name.
  assert.equal(redisUrlForDisplay(sentinel), 'redis+sentinel://:***@queue%20master@10.0.0.1:26379,10.0.0.2:26379');
  assert.equal(redisUrlForDisplay(cluster), 'redis+cluster://mailgw:***@10.0.0.1:7000');
  assert.ok(!redisUrlForDisplay(sentinel).includes(encodeURIComponent(PASSWORD)));
});

test("the Sentinels' own password travels in the target's query and is never shown", () => {
  const t = redisTarget({ sentinels: ['10.0.0.1:26379'], name: 'queue', password: PASSWORD, sentinelPassword: `s-${PASSWORD}` })!;
  assert.equal(t, `redis+sentinel://:${encodeURIComponent(PASSWORD)}@queue@10.0.0.1:26379?sentinelPassword=${encodeURIComponent(`s-${PASSWORD}`)}`);
  assert.deepEqual(multiNodeTarget(t), { kind: 'sentinel', nodes: [{ host: '10.0.0.1', port: 26379 }], name: 'queue', password: PASSWORD, sentinelPassword: `s-${PASSWORD}`, tls: false });
  assert.deepEqual(multiNodeTarget('redis+sentinel://queue@10.0.0.1:26379/3?sentinelPassword=x'), { kind: 'sentinel', nodes: [{ host: '10.0.0.1', port: 26379 }], name: 'queue', db: 3, sentinelPassword: 'x', tls: false });
  assert.equal(redisUrlForDisplay(t), 'redis+sentinel://:***@queue@10.0.0.1:26379?sentinelPassword=***');
});

test('TLS to a Sentinel set or a Cluster: rediss+sentinel:// and rediss+cluster://', () => {
  const sentinel = redisTarget({ sentinels: ['10.0.0.1:26379'], name: 'queue', password: PASSWORD, tls: true })!;
  assert.equal(sentinel, `rediss+sentinel://:${encodeURIComponent(PASSWORD)}@queue@10.0.0.1:26379`);
  assert.deepEqual(multiNodeTarget(sentinel), { kind: 'sentinel', nodes: [{ host: '10.0.0.1', port: 26379 }], name: 'queue', password: PASSWORD, tls: true });
  assert.equal(redisUrlForDisplay(sentinel), 'rediss+sentinel://:***@queue@10.0.0.1:26379');
  const cluster = redisTarget({ cluster: ['10.0.0.1:7000'], tls: true })!;
  assert.equal(cluster, 'rediss+cluster://10.0.0.1:7000');
  assert.deepEqual(multiNodeTarget(cluster), { kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }], tls: true });
  assert.equal(isClusterTarget(cluster), true);
  assert.equal(isRedisTarget(cluster) && isRedisTarget(sentinel), true);
});

test('a url takes the credentials given beside it (gateway.yaml redis.password, passwordEnv or passwordFile)', () => {
  assert.equal(redisTarget({ url: 'redis://10.0.0.1:6379/2', password: PASSWORD }), `redis://:${encodeURIComponent(PASSWORD)}@10.0.0.1:6379/2`);
  assert.equal(redisTarget({ url: 'rediss://redis.contoso.test:6380', username: 'mailgw', password: PASSWORD }), `rediss://mailgw:${encodeURIComponent(PASSWORD)}@redis.contoso.test:6380`);
  assert.equal(redisTarget({ url: 'unix:///run/redis/redis.sock', password: PASSWORD }), `unix://:${encodeURIComponent(PASSWORD)}@/run/redis/redis.sock`);
  assert.equal(redisTarget({ url: 'redis://10.0.0.1:6379' }), 'redis://10.0.0.1:6379', 'none: as given');
  assert.equal(redisUrlForDisplay(redisTarget({ url: 'redis://10.0.0.1:6379', password: PASSWORD })!), 'redis://:***@10.0.0.1:6379');
});

async function redisServer(args: string[]): Promise<{ port: number; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-auth-'));
  const port = await findFreePort();
  const child: ChildProcess = spawn(findRedisServer()!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: 'ignore' });
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  // Commands wait in the offline queue while it starts (connection refused, retried).
  const probe = new Redis({ port, host: '127.0.0.1', password: args.includes('--requirepass') ? PASSWORD : undefined, retryStrategy: () => 50, maxRetriesPerRequest: null });
  probe.on('error', () => undefined);
  const timeout = new Promise<string>((r) => setTimeout(() => r('timeout'), 10_000).unref());
  assert.equal(await Promise.race([probe.ping(), timeout]), 'PONG', `redis-server on ${port} answers`);
  probe.disconnect();
  return { port, dir };
}

/** Resolves with `redis`'s first PONG, or its error message. */
function firstAnswer(redis: Redis): Promise<string> {
  return new Promise((resolve) => {
    redis.once('error', (e: Error) => resolve(e.message));
    redis.ping().then(resolve, (e: Error) => resolve(e.message));
  });
}

/** A Sentinel watching `master` as "queue" (with its password), plus `extra` lines of sentinel.conf; its port. */
async function startSentinel(master: { port: number; dir: string }, extra: string[] = []): Promise<number> {
  const port = await findFreePort();
  const conf = path.join(master.dir, `sentinel-${port}.conf`);
  await writeFile(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${master.dir}`, ...extra, `sentinel monitor queue 127.0.0.1 ${master.port} 1`, `sentinel auth-pass queue ${PASSWORD}`, ''].join('\n'));
  const sentinel = spawn(findRedisServer()!, [conf, '--sentinel'], { stdio: 'ignore' });
  cleanups.push(async () => void sentinel.kill('SIGKILL'));
  return port;
}

/** A connection through `target` that waits out a Sentinel still starting; and the master's own. */
function through(target: string, master: { port: number }): { r: Redis; direct: Redis } {
  const r = connectRedis(target, { maxRetriesPerRequest: 3, retryStrategy: (n) => (n > 100 ? null : 100) });
  r.on('error', () => undefined); // the sentinel still starting: retried
  const direct = new Redis({ port: master.port, host: '127.0.0.1', password: PASSWORD });
  cleanups.push(async () => {
    r.disconnect();
    direct.disconnect();
  });
  return { r, direct };
}

// A broken credential path shows as a client that never gets ready: bounded, so it fails, not hangs.
test('a Sentinel set whose master has requirepass: the password in the target reaches the master', { timeout: 30_000 }, async () => {
  const master = await redisServer(['--requirepass', PASSWORD]);
  const sentinelPort = await startSentinel(master);
  const { r, direct } = through(redisTarget({ sentinels: [`127.0.0.1:${sentinelPort}`], name: 'queue', password: PASSWORD })!, master);
  await r.set('mailgw:k', 'through the sentinel');
  assert.equal(await direct.get('mailgw:k'), 'through the sentinel');
  // Without the password the master refuses.
  const without = connectRedis(redisTarget({ sentinels: [`127.0.0.1:${sentinelPort}`], name: 'queue' })!, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: false });
  cleanups.push(async () => without.disconnect());
  assert.match(await firstAnswer(without), /NOAUTH|Authentication required/i);
});

test("Sentinels with a password of their own (requirepass in sentinel.conf): sentinelPassword reaches them", { timeout: 30_000 }, async () => {
  const master = await redisServer(['--requirepass', PASSWORD]);
  const SENTINEL_PW = `own-${PASSWORD}`;
  const sentinelPort = await startSentinel(master, [`requirepass "${SENTINEL_PW}"`]);
  const { r, direct } = through(redisTarget({ sentinels: [`127.0.0.1:${sentinelPort}`], name: 'queue', password: PASSWORD, sentinelPassword: SENTINEL_PW })!, master);
  await r.set('mailgw:own', 'past a sentinel with a password');
  assert.equal(await direct.get('mailgw:own'), 'past a sentinel with a password');
  // The Sentinel refuses a client without its password.
  const probe = new Redis({ port: sentinelPort, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
  cleanups.push(async () => probe.disconnect());
  assert.match(await firstAnswer(probe), /NOAUTH|Authentication required/i);
});

test('a single Redis with requirepass, over TCP and over its Unix socket: the password put into the url reaches it', { timeout: 30_000 }, async () => {
  const server = await redisServer(['--requirepass', PASSWORD, '--unixsocket', 'redis.sock', '--unixsocketperm', '700']);
  for (const url of [`redis://127.0.0.1:${server.port}`, `unix://${path.join(server.dir, 'redis.sock')}`]) {
    const r = connectRedis(redisTarget({ url, password: PASSWORD })!, { maxRetriesPerRequest: 1 });
    cleanups.push(async () => r.disconnect());
    await r.set('mailgw:k', url);
    assert.equal(await r.get('mailgw:k'), url);
    const without = connectRedis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    cleanups.push(async () => without.disconnect());
    assert.match(await firstAnswer(without), /NOAUTH|Authentication required/i, `${url} without the password`);
  }
});

test('a Redis Cluster with requirepass: the password in the target reaches every node it talks to', { timeout: 30_000 }, async () => {
  const node = await redisServer(['--requirepass', PASSWORD, '--masterauth', PASSWORD, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1']);
  const admin = new Redis({ port: node.port, host: '127.0.0.1', password: PASSWORD });
  cleanups.push(async () => admin.disconnect());
  await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  const deadline = Date.now() + 10_000;
  while (!/cluster_state:ok/.test(String(await admin.call('CLUSTER', 'INFO')))) {
    if (Date.now() > deadline) throw new Error('the one-node cluster did not become ok');
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = connectRedis(redisTarget({ cluster: [`127.0.0.1:${node.port}`], password: PASSWORD })!, { maxRetriesPerRequest: 3 });
  r.on('error', () => undefined); // reported through the commands
  cleanups.push(async () => r.disconnect());
  await r.set('{mailgw}:k', 'through the cluster');
  assert.equal(await admin.get('{mailgw}:k'), 'through the cluster');
});
