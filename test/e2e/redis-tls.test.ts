// `mailgw start` on a Redis that speaks only TLS (rediss://), its certificate from a private CA
// given with NODE_EXTRA_CA_CERTS, as a managed Redis with in-transit encryption is used. The
// Redis has no plain port at all: every connection mailgw opens (the listeners' store, BullMQ's
// blocking and event connections, the DNS cache, rate counters, heartbeats, the supervisor's
// checks) has to speak TLS, or mail stops. Small and large messages (the large one takes the
// store's corked, piecewise SET) are accepted and reach the far side intact. Without the CA,
// mailgw start refuses to start and says what to do, without printing the Redis password.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { findFreePort, findRedisServer } from '@mailgw/queue';
import { makeCertificates } from '../harness/tls-certs.js';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { eventually } from '../worker/helpers/gateway.js';
import { cliMain, repoRoot } from '../worker/helpers/worker-process.js';
import { makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess } from '../ops/helpers/gateway-process.js';

let dir: string;
let redisChild: ChildProcess;
let redisPort: number;
let ca: Buffer;
let far: FarSide;
let cfg: ConfigDir;
let gw: GatewayProcess;
let smtpPort: number;
let caFile: string;
/** The Redis' password (requirepass): in REDIS_URL, never in what mailgw prints. */
const PASSWORD = 'tls-redis-s3cret';
const redisUrl = () => `rediss://:${PASSWORD}@127.0.0.1:${redisPort}`;

/** The test's own client: over TLS, trusting the private CA. */
const tlsClient = () => new Redis({ host: '127.0.0.1', port: redisPort, password: PASSWORD, tls: { ca }, maxRetriesPerRequest: 1, retryStrategy: (n) => (n > 100 ? null : 100), lazyConnect: true });

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-redis-tls-e2e-'));
  const made = makeCertificates(dir);
  const { cert, key } = made;
  caFile = made.caFile;
  ca = readFileSync(caFile);
  redisPort = await findFreePort();
  const binary = findRedisServer();
  assert.ok(binary, 'redis-server is installed');
  // --port 0: no plain-text port. appendfsync always: what redis.durability fsync (the default) asks of an external Redis.
  redisChild = spawn(binary, ['--port', '0', '--tls-port', String(redisPort), '--bind', '127.0.0.1', '--tls-cert-file', cert, '--tls-key-file', key, '--tls-auth-clients', 'no', '--requirepass', PASSWORD, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], { stdio: 'ignore' });
  const probe = tlsClient();
  probe.on('error', () => undefined); // refusals while it starts; retried
  await eventually(async () => (await probe.connect().then(() => probe.ping()).catch(() => null)) === 'PONG', 'the TLS Redis to answer');
  probe.disconnect();

  far = await startFarSide();
  smtpPort = await freePort();
  cfg = makeConfigDir('mailgw-redis-tls-');
  cfg.writeGateway(
    [
      'fqdn: mx.tls-redis.test',
      'dataDir: ./var',
      'acceptedDomains:',
      '  - { domain: contoso.test, default: true }',
      '  - { domain: fabrikam.test, type: InternalRelay }',
      'routes:',
      `  - { domains: ["*"], to: "smtp://127.0.0.1:${far.port}" }`,
      // The password from a file beside gateway.yaml (as a systemd credential would be), put
      // into the url by mailgw; the "without the CA" runs below give it in REDIS_URL instead.
      `redis: { url: "rediss://127.0.0.1:${redisPort}", passwordFile: redis.pass }`,
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(path.dirname(cfg.gatewayFile), 'redis.pass'), `${PASSWORD}\n`, { mode: 0o600 });
  cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${smtpPort}"]\ntarpitInterval: 0\n`);
  gw = await startGatewayProcess(cfg.gatewayFile, { NODE_EXTRA_CA_CERTS: caFile });
  await gw.waitForLog((l) => l.msg === 'mailgw is running', 'mailgw is running', 0, 60_000);
});

after(async () => {
  const code = await gw?.stop();
  await far?.close();
  redisChild?.kill('SIGTERM');
  if (redisChild && redisChild.exitCode === null) await new Promise((r) => redisChild.once('exit', r));
  cfg?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0, gw?.output().slice(-3000));
});

describe('mailgw start on a TLS-only Redis (rediss://, private CA)', () => {
  it('accepts small and large mail and delivers it intact', async () => {
    const line = `${'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(1)}\r\n`;
    const bodies = {
      'small@fabrikam.test': 'Hello over TLS.\r\n',
      // 120 KB: past the store's 16 KiB threshold for the piecewise SET on the TLS socket.
      'large@fabrikam.test': line.repeat(Math.ceil((120 * 1024) / line.length)),
    };
    for (const [rcpt, text] of Object.entries(bodies)) {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: smtpPort });
      try {
        await c.ehlo();
        const t = await c.transaction('sender@example.net', [rcpt], `From: <sender@example.net>\r\nTo: <${rcpt}>\r\nSubject: tls ${rcpt}\r\n\r\n${text}`);
        assert.equal(t.end?.code, 250, t.end?.last);
        assert.match(t.end?.last ?? '', /^250 2\.6\.0 /);
      } finally {
        await c.quit();
      }
    }
    await eventually(() => far.messages.length === 2, 'both messages at the far side', 30_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${gw.output().slice(-3000)}`);
    });
    for (const [rcpt, text] of Object.entries(bodies)) {
      const got = far.messages.find((m) => m.rcptTo.includes(rcpt));
      assert.ok(got, `${rcpt} delivered`);
      assert.ok(got.raw.toString('latin1').endsWith(`\r\n\r\n${text}`), `${rcpt}: the body arrived as sent`);
    }
  });

  it('left nothing in the queue, and no connection of mailgw failed its TLS handshake', async () => {
    const r = tlsClient();
    r.on('error', () => undefined);
    await r.connect();
    try {
      // Every mailgw process is connected over TLS (the server has no other port).
      const clients = String(await r.call('CLIENT', 'LIST')).trim().split('\n');
      assert.ok(clients.length >= 5, `mailgw's connections: ${clients.length}`);
      const keys = [...(await r.keys('{mailgw}:body:*')), ...(await r.keys('{mailgw}:head:*'))];
      assert.deepEqual(keys, [], 'message bodies are deleted once delivered');
    } finally {
      r.disconnect();
    }
    // No warning or error in any process's log, but the one about the SMTP side's generated certificate.
    const problems = gw.logs.filter((l) => Number(l['level']) >= 40 && !String(l.msg).startsWith('connector "Default" offers TLS without tlsCertificate/tlsKey'));
    assert.deepEqual(problems, []);
    assert.doesNotMatch(gw.output(), /Unhandled error event|ECONNRESET|EPROTO|self[- ]signed certificate in certificate chain|unable to verify/i);
    assert.ok(!gw.output().includes(PASSWORD), 'the Redis password is not in the log');
  });

  /** `mailgw <command>` on the TLS Redis without the CA: it must exit 1, saying what to do, never printing the password. */
  const withoutCa = (command: 'start' | 'worker'): string => {
    const r = spawnSync(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', cliMain, command, '--config', cfg.gatewayFile], {
      cwd: repoRoot,
      env: { ...process.env, REDIS_URL: redisUrl(), NODE_EXTRA_CA_CERTS: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^  the Redis' TLS certificate is not trusted here: if a private CA signed it, give that CA to mailgw with NODE_EXTRA_CA_CERTS=\/path\/to\/ca\.pem/m);
    assert.ok(!(r.stdout + r.stderr).includes(PASSWORD), 'the Redis password is never printed');
    return r.stderr;
  };

  it('without the CA, mailgw start does not start, and says to give it with NODE_EXTRA_CA_CERTS (the password not shown)', () => {
    assert.match(withoutCa('start'), new RegExp(`^mailgw: cannot reach Redis at rediss://:\\*\\*\\*@127\\.0\\.0\\.1:${redisPort}: .*unable to verify the first certificate`, 'm'));
  });

  it('without the CA, mailgw worker does not start either, with the same advice', () => {
    assert.match(withoutCa('worker'), /^mailgw worker: .*unable to verify the first certificate/m);
  });
});
