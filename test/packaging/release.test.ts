// `npm run release` (scripts/release.mjs): the tarball, unpacked in a temporary directory far
// from this checkout, is a working mailgw: `mailgw --version`, `mailgw init` + `mailgw check`,
// and `mailgw start` on the init'd configuration (moved to free loopback ports) takes a
// message over SMTP and delivers it to the mailbox; SIGTERM stops it cleanly. And as the
// systemd unit runs it: an unprivileged user whose only capability is an ambient
// CAP_NET_BIND_SERVICE listens on privileged ports and takes mail; without it, it cannot.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { NO_REAL_DNS_YAML } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { eventually, mailbox, message } from '../worker/helpers/gateway.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const version = (JSON.parse(readFileSync(path.join(repo, 'packages/cli/package.json'), 'utf8')) as { version: string }).version;
const scratch = mkdtempSync(path.join(tmpdir(), 'mailgw-release-'));
chmodSync(scratch, 0o755); // the unprivileged user runs the release from here
const NOBODY = 65534;
const SETPRIV = '/usr/bin/setpriv';
const isRoot = process.getuid?.() === 0;

let redis: TestRedis;
let bin: string;
before(async () => {
  redis = await startRedis();
  const out = path.join(scratch, 'out');
  const built = spawnSync(process.execPath, [path.join(repo, 'scripts/release.mjs'), '--out', out], { cwd: repo, encoding: 'utf8', timeout: 300_000 });
  assert.equal(built.status, 0, built.stdout + built.stderr);
  const tarball = path.join(out, `mailgw-${version}.tar.gz`);
  assert.ok(built.stdout.includes(`release: ${tarball}\n`), built.stdout);
  // Unpacked where an admin would (/opt), here a scratch dir; the build output is gone.
  const opt = path.join(scratch, 'opt');
  mkdirSync(opt);
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', opt], { encoding: 'utf8' });
  assert.equal(untar.status, 0, untar.stderr);
  rmSync(out, { recursive: true, force: true });
  bin = path.join(opt, `mailgw-${version}`, 'bin', 'mailgw');
});
after(async () => {
  await redis?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** PATH with this node and the system's tools only: nothing of the checkout. */
const envFor = (home: string) => ({ PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: home });

/** `mailgw init` into `dir`/etc, moved from 25/587 to the given loopback ports; returns the gateway.yaml path. */
function initConfig(dir: string, ports: { smtp: number; submission: number }): string {
  const r = spawnSync(bin, ['init', 'etc', '--domain', 'contoso.test', '--hostname', 'mail.contoso.test'], { cwd: dir, env: envFor(dir), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const cdir = path.join(dir, 'etc', 'connectors.d');
  for (const f of readdirSync(cdir)) {
    const text = readFileSync(path.join(cdir, f), 'utf8')
      .replace(/^\s+- "\[::\]:(25|587)"\n/gm, '')
      .replace(/0\.0\.0\.0:25\b/g, `127.0.0.1:${ports.smtp}`)
      .replace(/0\.0\.0\.0:587\b/g, `127.0.0.1:${ports.submission}`);
    writeFileSync(path.join(cdir, f), text);
  }
  const gw = path.join(dir, 'etc', 'gateway.yaml');
  writeFileSync(gw, `${readFileSync(gw, 'utf8')}processes: { listeners: 1, workers: 1 }\n${NO_REAL_DNS_YAML}\n`);
  return gw;
}

/** Runs `argv` (the release's mailgw start, maybe behind setpriv) until `check` passes, sends one message, stops it. */
async function startAndSend(argv: string[], cwd: string, port: number, mailboxes: string): Promise<void> {
  const child = spawn(argv[0]!, argv.slice(1), { cwd, env: { ...envFor(cwd), REDIS_URL: redis.url }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await eventually(() => {
      if (child.exitCode !== null) throw new Error(`mailgw start exited (${child.exitCode}):\n${output}`);
      return output.includes('"msg":"mailgw is running"');
    }, 'the released mailgw to start', 60_000);
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    try {
      assert.equal((await c.ehlo()).code, 250);
      const t = await c.transaction('sender@example.net', ['postmaster@contoso.test'], message('from the release'));
      assert.equal(t.end?.code, 250, t.end?.last);
    } finally {
      await c.quit();
    }
    await eventually(async () => (await mailbox(mailboxes, 'postmaster@contoso.test')).length === 1, 'the message in the mailbox');
    // The release's launcher linked as "sendmail" (as /usr/sbin/sendmail), run as cron runs it:
    // into the init'd pickup directory, picked up by the running gateway, in the mailbox.
    const link = path.join(cwd, 'sendmail');
    if (!existsSync(link)) symlinkSync(argv[argv.indexOf('start') - 1]!, link);
    const gw = argv[argv.indexOf('--config') + 1]!;
    const sent = spawnSync(link, ['-C', gw, '-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'postmaster'], { cwd, env: envFor(cwd), input: 'Subject: Cron <root@mail> daily\n\ndone\n', encoding: 'utf8', timeout: 60_000 });
    assert.equal(sent.status, 0, sent.stderr);
    await eventually(async () => (await mailbox(mailboxes, 'postmaster@contoso.test')).length === 2, 'the sendmail message in the mailbox');
    // Linked as "mailq": the running gateway's queue in Postfix's format (the Redis it was
    // started with), empty once both messages are delivered.
    const mailq = path.join(cwd, 'mailq');
    if (!existsSync(mailq)) symlinkSync(argv[argv.indexOf('start') - 1]!, mailq);
    await eventually(() => {
      const q = spawnSync(mailq, ['-C', gw], { cwd, env: { ...envFor(cwd), REDIS_URL: redis.url }, encoding: 'utf8', timeout: 60_000 });
      assert.equal(q.status, 0, q.stderr);
      return q.stdout === 'Mail queue is empty\n';
    }, 'mailq through the release launcher: an empty queue');
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, output.slice(-3000));
}

/** A privileged port (below 1024) nothing listens on at 127.0.0.1. */
async function freePrivilegedPort(exclude: number[] = []): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 600 + Math.floor(Math.random() * 420);
    if (exclude.includes(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port below 1024 on 127.0.0.1');
}

describe('npm run release', () => {
  it('builds a tarball that, unpacked elsewhere, runs --version, init, check and start', async () => {
    const work = path.join(scratch, 'work');
    mkdirSync(work);
    const run = (args: string[]) => spawnSync(bin, args, { cwd: work, env: envFor(work), encoding: 'utf8', timeout: 60_000 });

    const v = run(['--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout, `mailgw ${version}\n`);
    assert.ok(!existsSync(path.join(path.dirname(bin), '..', 'node_modules', 'typescript')), 'no development dependencies in the release');

    const gw = initConfig(work, { smtp: await freePort(), submission: await freePort() });
    const check = run(['check', '--config', 'etc/gateway.yaml']);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /^Configuration OK: etc\/gateway\.yaml, 3 connector\(s\), fqdn mail\.contoso\.test$/m);

    const port = Number(/127\.0\.0\.1:(\d+)/.exec(readFileSync(path.join(work, 'etc', 'connectors.d', '10-default.yaml'), 'utf8'))![1]);
    await startAndSend([bin, 'start', '--config', gw], work, port, path.join(work, 'etc', 'var', 'mailboxes'));
  });

  it('as an unprivileged user with only CAP_NET_BIND_SERVICE (as mailgw.service runs it), it listens on ports below 1024', { skip: !isRoot ? 'needs root to switch users' : !existsSync(SETPRIV) && `${SETPRIV} (util-linux) is missing` }, async () => {
    const svc = path.join(scratch, 'svc');
    mkdirSync(svc);
    const smtp = await freePrivilegedPort();
    const submission = await freePrivilegedPort([smtp]);
    const gw = initConfig(svc, { smtp, submission });
    // Everything of the service's belongs to the unprivileged user, as StateDirectory= does it.
    const chownR = (p: string) => {
      chownSync(p, NOBODY, NOBODY);
      if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownR(path.join(p, e));
    };
    chownR(svc);
    const as = (caps: boolean) => [
      SETPRIV,
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      '--no-new-privs',
      ...(caps ? ['--inh-caps=-all,+net_bind_service', '--ambient-caps=-all,+net_bind_service', '--bounding-set=-all,+net_bind_service'] : ['--inh-caps=-all', '--bounding-set=-all']),
      bin,
      'start',
      '--config',
      gw,
    ];

    // Without the capability: it cannot listen, says so, and exits.
    const denied = spawnSync(as(false)[0]!, as(false).slice(1), { cwd: svc, env: { ...envFor(svc), REDIS_URL: redis.url }, encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(denied.status, 0, denied.stdout);
    assert.match(denied.stdout + denied.stderr, /EACCES/);

    await startAndSend(as(true), svc, smtp, path.join(svc, 'etc', 'var', 'mailboxes'));
    const delivered = readdirSync(path.join(svc, 'etc', 'var', 'mailboxes', 'contoso.test', 'postmaster', 'new'));
    assert.equal(statSync(path.join(svc, 'etc', 'var', 'mailboxes', 'contoso.test', 'postmaster', 'new', delivered[0]!)).uid, NOBODY, 'delivered by the unprivileged user');
  });
});
