// TLS to a Sentinel set or a Redis Cluster (rediss+sentinel://, rediss+cluster://, gateway.yaml
// redis.tls), against real redis-servers that have only TLS ports and a certificate from a
// private CA (given here as the connection's tls.ca; mailgw gives it with NODE_EXTRA_CA_CERTS).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { connectRedis, findFreePort, findRedisServer, redisTarget } from '@mailgw/queue';
import { makeCertificates, type TestCertificates } from '../../../test/harness/tls-certs.js';

const PASSWORD = 'tls-n0des';
const cleanups: Array<() => Promise<void>> = [];
let dir: string;
let certs: TestCertificates;
let ca: Buffer;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-tls-nodes-'));
  certs = makeCertificates(dir);
  ca = await readFile(certs.caFile);
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

const tlsArgs = () => ['--tls-cert-file', certs.cert, '--tls-key-file', certs.key, '--tls-ca-cert-file', certs.caFile, '--tls-auth-clients', 'no'];

function serve(args: string[]): void {
  const child = spawn(findRedisServer()!, args, { stdio: 'ignore' });
  cleanups.push(async () => void child.kill('SIGKILL'));
}

/** The test's own client of one node, over TLS. */
async function direct(port: number): Promise<Redis> {
  const r = new Redis({ host: '127.0.0.1', port, password: PASSWORD, tls: { ca }, retryStrategy: (n) => (n > 100 ? null : 50), maxRetriesPerRequest: null });
  r.on('error', () => undefined); // refused while it starts: retried
  cleanups.push(async () => r.disconnect());
  assert.equal(await r.ping(), 'PONG');
  return r;
}

test('a Sentinel set over TLS: the Sentinels and the master they name, each on a TLS-only port', { timeout: 30_000 }, async () => {
  const masterPort = await findFreePort();
  const sentinelPort = await findFreePort();
  const d = await mkdtemp(path.join(dir, 'sentinel-'));
  serve(['--port', '0', '--tls-port', String(masterPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', d, '--requirepass', PASSWORD, ...tlsArgs()]);
  const master = await direct(masterPort);
  const conf = path.join(d, 'sentinel.conf');
  await writeFile(conf, [`port 0`, `tls-port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${d}`, `tls-cert-file ${certs.cert}`, `tls-key-file ${certs.key}`, `tls-ca-cert-file ${certs.caFile}`, 'tls-auth-clients no', 'tls-replication yes', `sentinel monitor queue 127.0.0.1 ${masterPort} 1`, `sentinel auth-pass queue ${PASSWORD}`, ''].join('\n'));
  serve([conf, '--sentinel']);
  const target = redisTarget({ sentinels: [`127.0.0.1:${sentinelPort}`], name: 'queue', password: PASSWORD, tls: true })!;
  assert.match(target, /^rediss\+sentinel:\/\//);
  const r = connectRedis(target, { tls: { ca }, maxRetriesPerRequest: 3, retryStrategy: (n) => (n > 100 ? null : 100) });
  r.on('error', () => undefined); // the Sentinel still starting: retried
  cleanups.push(async () => r.disconnect());
  await r.set('mailgw:tls', 'through a TLS Sentinel');
  assert.equal(await master.get('mailgw:tls'), 'through a TLS Sentinel');
});

test('a Redis Cluster over TLS: every node it talks to on its TLS port', { timeout: 30_000 }, async () => {
  const port = await findFreePort();
  const bus = await findFreePort();
  const d = await mkdtemp(path.join(dir, 'cluster-'));
  serve(['--port', '0', '--tls-port', String(port), '--tls-cluster', 'yes', '--cluster-port', String(bus), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', d, '--requirepass', PASSWORD, '--masterauth', PASSWORD, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1', ...tlsArgs()]);
  const admin = await direct(port);
  await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  const deadline = Date.now() + 10_000;
  while (!/cluster_state:ok/.test(String(await admin.call('CLUSTER', 'INFO')))) {
    if (Date.now() > deadline) throw new Error('the one-node cluster did not become ok');
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = connectRedis(redisTarget({ cluster: [`127.0.0.1:${port}`], password: PASSWORD, tls: true })!, { tls: { ca }, maxRetriesPerRequest: 3 });
  r.on('error', () => undefined); // reported through the commands
  cleanups.push(async () => r.disconnect());
  await r.set('{mailgw}:tls', 'through a TLS cluster');
  assert.equal(await admin.get('{mailgw}:tls'), 'through a TLS cluster');
});
