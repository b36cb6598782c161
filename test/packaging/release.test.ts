// `npm run release` (scripts/release.mjs): the tarball, unpacked in a temporary directory far
// from this checkout, is a working mailgw: `mailgw --version`, `mailgw init` + `mailgw check`,
// and `mailgw start` on the init'd configuration (moved to free loopback ports) takes a
// message over SMTP and delivers it to the mailbox; SIGTERM stops it cleanly.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { NO_REAL_DNS_YAML } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { eventually, mailbox, message } from '../worker/helpers/gateway.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const version = (JSON.parse(readFileSync(path.join(repo, 'packages/cli/package.json'), 'utf8')) as { version: string }).version;
const scratch = mkdtempSync(path.join(tmpdir(), 'mailgw-release-'));
let redis: TestRedis | null = null;
after(async () => {
  await redis?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** PATH with this node and the system's tools only: nothing of the checkout. */
const env = { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: scratch };

describe('npm run release', () => {
  it('builds a tarball that, unpacked elsewhere, runs --version, init, check and start', async () => {
    const out = path.join(scratch, 'out');
    const built = spawnSync(process.execPath, [path.join(repo, 'scripts/release.mjs'), '--out', out], { cwd: repo, encoding: 'utf8', timeout: 300_000 });
    assert.equal(built.status, 0, built.stdout + built.stderr);
    const tarball = path.join(out, `mailgw-${version}.tar.gz`);
    assert.match(built.stdout, new RegExp(`release: ${tarball.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

    // Unpacked where an admin would (/opt), here a scratch dir; the build output is gone.
    const opt = path.join(scratch, 'opt');
    mkdirSync(opt);
    const untar = spawnSync('tar', ['-xzf', tarball, '-C', opt], { encoding: 'utf8' });
    assert.equal(untar.status, 0, untar.stderr);
    rmSync(out, { recursive: true, force: true });
    const bin = path.join(opt, `mailgw-${version}`, 'bin', 'mailgw');
    const work = path.join(scratch, 'work');
    mkdirSync(work);
    const run = (args: string[]) => spawnSync(bin, args, { cwd: work, env, encoding: 'utf8', timeout: 60_000 });

    const v = run(['--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout, `mailgw ${version}\n`);
    assert.equal(spawnSync('test', ['-e', path.join(opt, `mailgw-${version}`, 'node_modules', 'typescript')]).status, 1, 'no development dependencies in the release');

    const init = run(['init', 'etc', '--domain', 'contoso.test', '--hostname', 'mail.contoso.test']);
    assert.equal(init.status, 0, init.stderr);
    const check = run(['check', '--config', 'etc/gateway.yaml']);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /^Configuration OK: etc\/gateway\.yaml, 3 connector\(s\), fqdn mail\.contoso\.test$/m);

    // mailgw start on it, moved from ports 25/587 to free loopback ports, with the test Redis.
    const [p25, p587] = [await freePort(), await freePort()];
    const cdir = path.join(work, 'etc', 'connectors.d');
    for (const f of ['10-default.yaml', '20-printers-relay.yaml', '30-client.yaml']) {
      const text = readFileSync(path.join(cdir, f), 'utf8')
        .replace(/^\s+- "\[::\]:(25|587)"\n/gm, '')
        .replace(/0\.0\.0\.0:25\b/g, `127.0.0.1:${p25}`)
        .replace(/0\.0\.0\.0:587\b/g, `127.0.0.1:${p587}`);
      writeFileSync(path.join(cdir, f), text);
    }
    writeFileSync(path.join(work, 'etc', 'gateway.yaml'), `${readFileSync(path.join(work, 'etc', 'gateway.yaml'), 'utf8')}processes: { listeners: 1, workers: 1 }\n${NO_REAL_DNS_YAML}\n`);
    redis = await startRedis();
    const child = spawn(bin, ['start', '--config', 'etc/gateway.yaml'], { cwd: work, env: { ...env, REDIS_URL: redis.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually(() => {
        if (child.exitCode !== null) throw new Error(`mailgw start exited (${child.exitCode}):\n${output}`);
        return output.includes('"msg":"mailgw is running"');
      }, 'the released mailgw to start', 60_000);
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: p25 });
      try {
        assert.equal((await c.ehlo()).code, 250);
        const t = await c.transaction('sender@example.net', ['postmaster@contoso.test'], message('from the release'));
        assert.equal(t.end?.code, 250, t.end?.last);
      } finally {
        await c.quit();
      }
      await eventually(async () => (await mailbox(path.join(work, 'etc', 'var', 'mailboxes'), 'postmaster@contoso.test')).length === 1, 'the message in the mailbox');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, output.slice(-3000));
  });
});
