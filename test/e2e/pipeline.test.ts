// The whole pipeline as an admin runs it: `mailgw start` (listeners + workers in one process)
// on a real Redis; swaks in; mail out to a Maildir (authoritative domain) and to a smarthost
// (relay by an authenticated client); anonymous relay refused.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { hashPassword } from '@mailgw/config';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort } from '../listener/helpers/gateway.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { NO_REAL_DNS_YAML } from '../harness/dns-server.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let redis: TestRedis;
let smarthost: FarSide;
let tmp: string;
let child: ChildProcess;
let output = '';
let port25: number;
let port587: number;

async function waitUntil<T>(what: string, f: () => T | undefined | null | false, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  redis = await startRedis();
  smarthost = await startFarSide();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mailgw-e2e-'));
  [port25, port587] = [await freePort(), await freePort()];
  mkdirSync(path.join(tmp, 'connectors.d'));
  const hash = await hashPassword('alice-secret', { ln: 4 });
  writeFileSync(
    path.join(tmp, 'gateway.yaml'),
    [
      'fqdn: mail.contoso.test',
      'dataDir: ./var',
      'acceptedDomains:',
      '  - { domain: contoso.test, default: true }',
      'users:',
      `  - { name: alice, passwordHash: "${hash}", addresses: [alice@contoso.test] }`,
      'routes:',
      '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }',
      `  - { domains: ["*"], to: "smtp://127.0.0.1:${smarthost.port}" }`,
      'queue: { transientRetryInterval: 1s, messageRetryInterval: 1s, outboundConnectionFailureRetryInterval: 1s }',
      NO_REAL_DNS_YAML,
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(tmp, 'connectors.d/default.yaml'), `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port25}"]\ntarpitInterval: 0\n`);
  writeFileSync(path.join(tmp, 'connectors.d/client.yaml'), `name: Client\nusage: Client\nbindings: ["127.0.0.1:${port587}"]\nmessageRateLimit: unlimited\n`);
  child = spawn(process.execPath, [path.join(root, 'packages/cli/bin/mailgw.js'), 'start', '--config', path.join(tmp, 'gateway.yaml')], {
    env: { ...process.env, REDIS_URL: redis.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  await waitUntil('mailgw to start', () => /mailgw is running/.test(output));
});

after(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  await smarthost?.close();
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function swaks(args: string[]): Promise<string> {
  return run('swaks', ['--server', '127.0.0.1', '--helo', 'client.example.net', ...args], { timeout: 30_000 }).then(
    (r) => r.stdout,
    (e: { stdout?: string }) => e.stdout ?? '',
  );
}

describe('mailgw start: SMTP in, delivery out', () => {
  it('mail to an authoritative mailbox lands in its Maildir with our Received header', async () => {
    const out = await swaks(['--port', String(port25), '--from', 'sender@example.net', '--to', 'Someone@CONTOSO.test', '--header', 'Subject: e2e-maildir-test']);
    assert.match(out, /<- {2}250 2\.6\.0 <[^>]+> \[InternalId=[0-9A-Z]+\] Queued mail for delivery/);
    const dir = path.join(tmp, 'var/mailboxes/contoso.test/someone/new');
    const file = await waitUntil('the Maildir file', () => existsSync(dir) && readdirSync(dir)[0]);
    const msg = readFileSync(path.join(dir, file), 'utf8');
    assert.match(msg, /^Return-Path: <sender@example\.net>\r?\n/);
    assert.match(msg, /Delivered-To: someone@contoso\.test/i);
    assert.match(msg, /Received: from client\.example\.net .*by mail\.contoso\.test/s);
    assert.match(msg, /Subject: e2e-maildir-test/);
  });

  it('an authenticated client relays to the smarthost; the body arrives intact', async () => {
    const out = await swaks(['--port', String(port587), '--tls', '--auth', 'LOGIN', '--auth-user', 'alice', '--auth-password', 'alice-secret', '--from', 'alice@contoso.test', '--to', 'friend@example.org', '--header', 'Subject: e2e-relay-test', '--body', 'line one\nline two.\n..leading dot\n']);
    assert.match(out, /<~ {2}235 2\.7\.0 Authentication successful/);
    assert.match(out, /<~ {2}250 2\.6\.0 /);
    const m = await waitUntil('the smarthost to receive it', () => smarthost.messages.find((x) => /e2e-relay-test/.test(x.raw.toString())));
    assert.equal(m.mailFrom, 'alice@contoso.test');
    assert.deepEqual(m.rcptTo, ['friend@example.org']);
    const raw = m.raw.toString();
    assert.match(raw, /^Received: from client\.example\.net \(\[127\.0\.0\.1\]\)\r\n\tby mail\.contoso\.test \(mailgw, connector Client\)\r\n\twith ESMTPSA \(TLS[^)]*\) \(authenticated as alice\)/);
    // Dot-stuffing undone on the way in and redone on the way out: the body is what was sent.
    assert.ok(raw.endsWith('\r\n\r\nline one\r\nline two.\r\n..leading dot\r\n\r\n\r\n'), JSON.stringify(raw.slice(-80)));
  });

  it('a quoted local part is delivered to its own mailbox (parsed once at RCPT, kept as parts)', async () => {
    // Regression: the worker used to split the quoted text itself and wrote to "%22john%20doe%22".
    const out = await swaks(['--port', String(port25), '--from', 'sender@example.net', '--to', '"john doe"@contoso.test', '--header', 'Subject: e2e-quoted-local']);
    assert.match(out, /<- {2}250 2\.1\.5 Recipient OK/);
    assert.match(out, /<- {2}250 2\.6\.0 /);
    const box = path.join(tmp, 'var/mailboxes/contoso.test');
    const dir = path.join(box, 'john%20doe/new');
    const file = await waitUntil('the Maildir file of "john doe"', () => existsSync(dir) && readdirSync(dir)[0]);
    assert.match(readFileSync(path.join(dir, file), 'utf8'), /Subject: e2e-quoted-local/);
    assert.ok(!existsSync(path.join(box, '%22john%20doe%22')), 'no mailbox named after the quoted text');

  });

  it('an anonymous client may not relay, and nothing reaches the smarthost', async () => {
    const before = smarthost.messages.length;
    const out = await swaks(['--port', String(port25), '--from', 'sender@example.net', '--to', 'victim@example.org']);
    assert.match(out, /<\*\* 550 5\.7\.1 Unable to relay/);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(smarthost.messages.length, before);
  });
});
