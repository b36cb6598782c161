// `mailgw listen` / `mailgw start` as a process: config errors stop it with exit 1; with
// REDIS_URL it uses that Redis (and warns about an evicting one); without, it runs its own
// redis-server in dataDir/redis; swaks gets 250; SIGTERM stops everything with exit 0.
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort } from './helpers/gateway.js';
import { withoutRealDns } from '../harness/dns-server.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let redis: TestRedis;
let tmp: string;

before(async () => {
  redis = await startRedis();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mailgw-serve-'));
});

after(async () => {
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function writeConfig(name: string, port: number, gatewayExtra = ''): string {
  const dir = path.join(tmp, name);
  mkdirSync(path.join(dir, 'connectors.d'), { recursive: true });
  writeFileSync(
    path.join(dir, 'gateway.yaml'),
    withoutRealDns(`fqdn: mx.serve.test\ndataDir: ./var\nacceptedDomains:\n  - { domain: contoso.test, default: true }\n${gatewayExtra}`),
  );
  writeFileSync(path.join(dir, 'connectors.d', 'default.yaml'), `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port}"]\ntarpitInterval: 0\n`);
  return dir;
}

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function mailgw(args: string[], env: Record<string, string | undefined>): Proc {
  const child = spawn(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', path.join(root, 'packages/cli/src/main.ts'), ...args], {
    cwd: root,
    env: { ...process.env, REDIS_URL: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => text, exited };
}

async function waitFor(p: Proc, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (pattern.test(p.out())) return;
    if (p.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never saw ${pattern} in:\n${p.out()}`);
}

describe('mailgw listen / start', () => {
  it('prints every configuration error and exits 1 without starting', async () => {
    const dir = writeConfig('broken', await freePort(), 'nonsense: 1\n');
    writeFileSync(path.join(dir, 'connectors.d', 'bad.yaml'), 'name: Bad\nbindings: ["0.0.0.0:99999"]\n');
    const p = mailgw(['listen', '--config', path.join(dir, 'gateway.yaml')], { REDIS_URL: redis.url });
    assert.equal(await p.exited, 1);
    assert.match(p.out(), /the configuration has 2 errors; nothing was started/);
    assert.match(p.out(), /gateway\.yaml: nonsense: unknown key/);
    assert.match(p.out(), /bad\.yaml: bindings\[0\]: .*port must be 1-65535/);
  });

  it('with REDIS_URL: warns about an evicting Redis, queues mail from swaks, stops on SIGTERM', async () => {
    const admin = new Redis(redis.url);
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    const port = await freePort();
    const dir = writeConfig('external', port);
    const p = mailgw(['listen', '--config', path.join(dir, 'gateway.yaml')], { REDIS_URL: redis.url });
    try {
      await waitFor(p, /mailgw is running/);
      assert.match(p.out(), /maxmemory-policy is \\?"allkeys-lru\\?", not \\?"noeviction\\?"/);
      const { stdout } = await run('swaks', ['--server', `127.0.0.1:${port}`, '--to', 'someone@contoso.test', '--from', 'a@example.net']);
      const m = /250 2\.6\.0 <\S+> \[InternalId=([0-9A-Z]{26})\] Queued mail for delivery/.exec(stdout);
      assert.ok(m, stdout);
      assert.equal(await admin.exists(`{mailgw}:body:${m[1]}`), 1, 'the body is in the external Redis');
    } finally {
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      admin.disconnect();
      p.child.kill('SIGTERM');
    }
    assert.equal(await p.exited, 0, p.out());
    assert.match(p.out(), /"msg":"stopped"/);
  });

  it('without any Redis configured: runs its own redis-server in dataDir/redis and stops it', async () => {
    const port = await freePort();
    const dir = writeConfig('embedded', port);
    const p = mailgw(['start', '--config', path.join(dir, 'gateway.yaml')], {});
    let url = '';
    try {
      await waitFor(p, /mailgw is running/);
      url = /"url":"(redis:\/\/[^"]+)"/.exec(p.out())![1]!;
      // Its own processes talk to it over its Unix socket.
      assert.match(p.out(), new RegExp(`"socket":"unix://${path.join(dir, 'var', 'redis', 'redis.sock').replace(/[/.]/g, '\\$&')}"`));
      assert.match(p.out(), new RegExp(`"dataDir":"${path.join(dir, 'var', 'redis').replace(/[/.]/g, '\\$&')}"`));
      const { stdout } = await run('swaks', ['--server', `127.0.0.1:${port}`, '--to', 'someone@contoso.test', '--from', 'a@example.net']);
      assert.match(stdout, /250 2\.6\.0 .* Queued mail for delivery/);
    } finally {
      p.child.kill('SIGTERM');
    }
    assert.equal(await p.exited, 0, p.out());
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    await assert.rejects(probe.connect(), 'the embedded redis-server was stopped');
    probe.disconnect();
  });
});
