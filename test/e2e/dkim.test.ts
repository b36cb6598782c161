// DKIM end to end, as an admin does it: `mailgw dkim keygen` for two selectors (RSA-2048 and
// Ed25519), the printed records published in a DNS server on loopback, `mailgw dkim check`
// through the gateway's resolver (dns.servers), then `mailgw start` with both selectors: mail
// an authenticated client relays reaches a real SMTP far side carrying two signatures that
// mailauth verifies against the published records, as does OpenDKIM (`opendkim -t`, the
// records as its test keys; skipped without opendkim), and the RSA one the harness's own RFC 6376
// verifier, with folded headers, an 8-bit body and a 30 MB body; copies for the accepted
// domain's mailboxes and forged inbound mail stay unsigned. Key file problems stop `check`.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { hashPassword } from '@mailgw/config';
import { startDnsServer, type TestDns, NO_REAL_DNS_YAML } from '../harness/dns-server.js';
import { openDkimSkip, openDkimVerify, verifyDkim } from '../harness/opendkim.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort } from '../listener/helpers/gateway.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';

const exec = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAILGW = path.join(root, 'packages/cli/bin/mailgw.js');
let redis: TestRedis;
let dns: TestDns;
let farSide: FarSide;
let tmp: string;
let child: ChildProcess | undefined;
let output = '';
let port25: number;
let port587: number;
const published = new Map<string, string>();

async function waitUntil<T>(what: string, f: () => T | undefined | null | false, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function mailgw(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [MAILGW, ...args, '--config', path.join(tmp, 'gateway.yaml')], { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

function swaks(args: string[]): Promise<string> {
  return exec('swaks', ['--server', '127.0.0.1', '--helo', 'client.example.net', ...args], { timeout: 120_000, maxBuffer: 256 * 1024 * 1024 }).then(
    (r) => r.stdout.slice(-4000),
    (e: { stdout?: string }) => (e.stdout ?? '').slice(-4000),
  );
}

const AUTH = ['--port', '', '--tls', '--auth', 'LOGIN', '--auth-user', 'alice', '--auth-password', 'alice-secret', '--from', 'alice@contoso.test'];
const auth = () => AUTH.map((a, i) => (i === 1 ? String(port587) : a));

/** What mailauth says of each signature, the keys coming from the loopback DNS server. */
async function verdicts(raw: Buffer): Promise<string[]> {
  const resolver = new Resolver();
  resolver.setServers([dns.server]);
  const r = await dkimVerify(raw, { resolver: ((name: string, type: string) => (type === 'TXT' ? resolver.resolveTxt(name) : Promise.reject(Object.assign(new Error('no'), { code: 'ENODATA' })))) as never });
  return r.results.map((x) => `${x.signingDomain}/${x.selector}:${x.status.result}`).sort();
}

function writeMessage(name: string, body: Buffer | string, subject: string): string {
  const head =
    'From: "Alice (Sales)" <alice@contoso.test>\r\n' +
    'To: friend@example.org,\r\n\tother@example.org\r\n' +
    `Subject: ${subject}\r\n  folded   subject line\r\n` +
    'Date: Wed, 02 Dec 2026 15:00:00 +0000\r\n' +
    `Message-ID: <${subject}@contoso.test>\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';
  const file = path.join(tmp, name);
  // swaks --no-data-fixup sends the file as it is: the end-of-data dot is ours to write.
  writeFileSync(file, Buffer.concat([Buffer.from(head), Buffer.isBuffer(body) ? body : Buffer.from(body), Buffer.from('.\r\n')]));
  return file;
}

before(async () => {
  redis = await startRedis();
  dns = await startDnsServer({});
  farSide = await startFarSide();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mailgw-dkim-e2e-'));
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
      `  - { domains: ["*"], to: "smtp://127.0.0.1:${farSide.port}" }`,
      'queue: { transientRetryInterval: 1s, messageRetryInterval: 1s, outboundConnectionFailureRetryInterval: 1s }',
      `dns: { servers: ["${dns.server}"] }`,
      'dkim:',
      '  domains:',
      '    - domain: contoso.test',
      '      selectors:',
      '        - { name: s1 }',
      '        - { name: s2, algorithm: ed25519 }',
      NO_REAL_DNS_YAML,
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(tmp, 'connectors.d/default.yaml'), `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port25}"]\ntarpitInterval: 0\n`);
  writeFileSync(path.join(tmp, 'connectors.d/client.yaml'), `name: Client\nusage: Client\nbindings: ["127.0.0.1:${port587}"]\nmessageRateLimit: unlimited\n`);
});

after(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
  }
  await farSide?.close();
  await dns?.close();
  await redis?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('DKIM signing, end to end', () => {
  it('before keygen, check reports the missing key files as configuration errors with file and key', async () => {
    const r = await mailgw('check');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gateway\.yaml: dkim\.domains\[0\]\.selectors\[0\]: key file .*var\/dkim\/contoso\.test\/s1\.key does not exist; create it with `mailgw dkim keygen contoso\.test --selector s1 --algorithm rsa`/);
    assert.match(r.stderr, /dkim\.domains\[0\]\.selectors\[1\]: key file .*s2\.key does not exist/);
  });

  it('keygen writes each key with mode 0600 and prints the exact record to publish', async () => {
    for (const [selector, algorithm] of [['s1', 'rsa'], ['s2', 'ed25519']] as const) {
      const r = await mailgw('dkim', 'keygen', 'contoso.test', '--selector', selector, ...(algorithm === 'rsa' ? [] : ['--algorithm', algorithm]));
      assert.equal(r.code, 0, r.stderr);
      const file = path.join(tmp, 'var/dkim/contoso.test', `${selector}.key`);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const value = /^value: (.*)$/m.exec(r.stdout)![1]!;
      const pub = createPublicKey(createPrivateKey(readFileSync(file)));
      if (algorithm === 'rsa') assert.equal(value, `v=DKIM1; k=rsa; p=${pub.export({ type: 'spki', format: 'der' }).toString('base64')}`);
      else assert.equal(value, `v=DKIM1; k=ed25519; p=${pub.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64')}`);
      assert.match(r.stdout, new RegExp(`^${selector}\\._domainkey\\.contoso\\.test\\. IN TXT \\( "`, 'm'));
      published.set(`${selector}._domainkey.contoso.test`, value);
    }
    const again = await mailgw('dkim', 'keygen', 'contoso.test', '--selector', 's1');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists; keys are never overwritten/);
  });

  it('dkim check: nothing published, then the right records, then a wrong one', async () => {
    const none = await mailgw('dkim', 'check', 'contoso.test');
    assert.equal(none.code, 1);
    assert.match(none.stdout, /s1\._domainkey\.contoso\.test: MISMATCH: no TXT record is published/);
    for (const [name, value] of published) dns.set(name, { TXT: [value] });
    const ok = await mailgw('dkim', 'check', 'contoso.test');
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /s1\._domainkey\.contoso\.test: OK, the published rsa key matches/);
    assert.match(ok.stdout, /s2\._domainkey\.contoso\.test: OK, the published ed25519 key matches/);
    dns.set('s1._domainkey.contoso.test', { TXT: [published.get('s2._domainkey.contoso.test')!.replace('k=ed25519', 'k=rsa')] });
    const wrong = await mailgw('dkim', 'check', 'contoso.test');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /s1\._domainkey\.contoso\.test: MISMATCH: the published p= is not the public half of this key/);
    dns.set('s1._domainkey.contoso.test', { TXT: [published.get('s1._domainkey.contoso.test')!] });
  });

  it('with the keys in place check passes and says what signs; a key file readable by others is refused', async () => {
    const good = await mailgw('check');
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /^DKIM signing: contoso\.test \(s1 rsa, s2 ed25519\), relaxed\/relaxed, keys OK$/m);
    const file = path.join(tmp, 'var/dkim/contoso.test/s2.key');
    chmodSync(file, 0o640);
    const r = await mailgw('check');
    chmodSync(file, 0o600);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gateway\.yaml: dkim\.domains\[0\]\.selectors\[1\]: key file .*s2\.key has mode 0640: a private key must not be readable by group or others/);
  });

  it('mailgw start: relayed mail arrives signed by both selectors and verifies; local copies are not signed', async () => {
    child = spawn(process.execPath, [MAILGW, 'start', '--config', path.join(tmp, 'gateway.yaml')], { env: { ...process.env, REDIS_URL: redis.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitUntil('mailgw to start', () => /mailgw is running/.test(output));

    const file = writeMessage('m1.eml', 'Grüße aus Zürich, 8-bit\r\n\r\nsecond  paragraph\twith tabs   \r\n\r\n\r\n', 'dkim-e2e-small');
    const out = await swaks([...auth(), '--to', 'friend@example.org,bob@contoso.test', '--data', `@${file}`, '--no-data-fixup']);
    assert.match(out, /<~ {2}250 2\.6\.0 /, out);
    const m = await waitUntil('the far side to receive it', () => farSide.messages.find((x) => x.raw.includes('dkim-e2e-small')));
    assert.deepEqual(m.rcptTo, ['friend@example.org']);
    const head = m.raw.toString('latin1', 0, m.raw.indexOf('\r\n\r\n')).replace(/\r\n\s+/g, ' ');
    assert.deepEqual(head.match(/^DKIM-Signature:.*$/gm)?.map((h) => /\ba=([\w-]+)/.exec(h)![1]), ['rsa-sha256', 'ed25519-sha256']);
    assert.deepEqual(await verdicts(m.raw), ['contoso.test/s1:pass', 'contoso.test/s2:pass']);
    assert.equal(verifyDkim(m.raw, createPublicKey(createPrivateKey(readFileSync(path.join(tmp, 'var/dkim/contoso.test/s1.key'))))), null);
    if (!openDkimSkip()) assert.deepEqual(openDkimVerify(m.raw, published), ['s1:pass', 's2:pass'], 'OpenDKIM with the records keygen printed');
    else console.log(`# OpenDKIM check skipped: ${openDkimSkip()}`);

    // The same message's copy for the organisation's own mailbox is delivered as stored.
    const dir = path.join(tmp, 'var/mailboxes/contoso.test/bob/new');
    const local = await waitUntil('the Maildir copy', () => existsSync(dir) && readdirSync(dir)[0]);
    assert.doesNotMatch(readFileSync(path.join(dir, local), 'latin1'), /DKIM-Signature:/);
  });

  it('forged inbound mail with From: of the signing domain is delivered unsigned', async () => {
    const file = writeMessage('m2.eml', 'pretending to be alice\r\n', 'dkim-e2e-forged');
    const out = await swaks(['--port', String(port25), '--from', 'someone@example.net', '--to', 'carol@contoso.test', '--data', `@${file}`, '--no-data-fixup']);
    assert.match(out, /<- {2}250 2\.6\.0 /, out);
    const dir = path.join(tmp, 'var/mailboxes/contoso.test/carol/new');
    const local = await waitUntil('the Maildir copy', () => existsSync(dir) && readdirSync(dir)[0]);
    assert.doesNotMatch(readFileSync(path.join(dir, local), 'latin1'), /DKIM-Signature:/);
  });

  it('a 30 MB message is signed on its way out and verifies', async () => {
    const line = Buffer.from('30 MB of 8-bit text: äöü ÄÖÜ ß, some   spaces and\ttabs \r\n');
    const body = Buffer.alloc(Math.floor((30 * 1024 * 1024) / line.length) * line.length);
    for (let i = 0; i < body.length; i += line.length) line.copy(body, i);
    const file = writeMessage('m3.eml', body, 'dkim-e2e-large');
    const out = await swaks([...auth(), '--to', 'friend@example.org', '--data', `@${file}`, '--no-data-fixup', '--suppress-data']);
    assert.match(out, /<~ {2}250 2\.6\.0 /, out);
    const m = await waitUntil('the far side to receive the 30 MB message', () => farSide.messages.find((x) => x.raw.includes('dkim-e2e-large')), 180_000);
    assert.ok(m.raw.length > 30 * 1024 * 1024 - 100);
    assert.deepEqual(await verdicts(m.raw), ['contoso.test/s1:pass', 'contoso.test/s2:pass']);
    if (!openDkimSkip()) assert.deepEqual(openDkimVerify(m.raw, published), ['s1:pass', 's2:pass']);
    else console.log(`# OpenDKIM check skipped: ${openDkimSkip()}`);
  });
});
