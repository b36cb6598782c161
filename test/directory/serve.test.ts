// `mailgw listen` as a process with a directory: the wiring of serve.ts (the directory service on
// the queue's Redis) seen from outside. AUTH by AD login and a recipient checked in the directory
// over real SMTP, Send As on a shared mailbox; the recipient answer lands in the shared Redis cache; the process keeps one
// connection to the directory for its lookups (counted by a loopback proxy in front of slapd);
// slapd stopped: 454 / 451; slapd back: lookups work again on a new connection.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keySpace } from '@mailgw/queue';
import { Redis } from 'ioredis';
import { withoutRealDns } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { BASE_DN, FIXTURE_PASSWORD, SERVICE_DN, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';
import { root } from '../cli/helpers/binary.js';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';

const skip = slapdSkip();
let ldap: TestSlapd;
let redis: TestRedis;
let tmp: string;
let child: ChildProcess | null = null;
let output = '';
let port: number;
let httpPort: number;
let proxy: TcpProxy;

/** A metric's value in the process's /metrics (0 when absent). */
async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

before(async () => {
  if (skip) return;
  ldap = (await startSlapd())!;
  proxy = await startTcpProxy(ldap.port);
  redis = await startRedis({ appendonly: false });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mailgw-dir-serve-'));
  port = await freePort();
  httpPort = await freePort();
  mkdirSync(path.join(tmp, 'connectors.d'));
  writeFileSync(
    path.join(tmp, 'gateway.yaml'),
    withoutRealDns(
      [
        'fqdn: mx.contoso.test',
        'dataDir: ./var',
        'acceptedDomains: [{ domain: contoso.test, default: true }]',
        'recipients: { directory: true }',
        'processes: { listeners: 1, workers: 0 }',
        `http: { listen: "127.0.0.1:${httpPort}" }`,
        'directory:',
        `  url: [ldap://127.0.0.1:${proxy.port}]`,
        '  startTLS: true',
        '  caFile: ldap-ca.pem',
        `  bindDn: "${SERVICE_DN}"`,
        '  bindPasswordEnv: MAILGW_TEST_LDAP_PASSWORD',
        `  baseDn: "${BASE_DN}"`,
        '  preset: activeDirectory',
        '  userFilter: (objectClass=mailgwTestADUser)',
        '  timeout: 2s',
        '',
      ].join('\n'),
    ),
  );
  writeFileSync(path.join(tmp, 'ldap-ca.pem'), ldap.caPem);
  writeFileSync(
    path.join(tmp, 'connectors.d', 'people.yaml'),
    [`name: People`, `bindings: ["127.0.0.1:${port}"]`, 'authMechanism: [Tls, BasicAuth]', 'permissionGroups: [None]', 'tarpitInterval: 0', 'permissions:', '  - { user: AuthenticatedUsers, extendedRights: [ms-Exch-SMTP-Submit] }', "  - { user: Anonymous, extendedRights: [ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Sender] }", ''].join('\n'),
  );
  child = spawn(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', path.join(root, 'packages/cli/src/main.ts'), 'listen', '--config', path.join(tmp, 'gateway.yaml')], {
    cwd: root,
    env: { ...process.env, REDIS_URL: redis.url, MAILGW_TEST_LDAP_PASSWORD: FIXTURE_PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  for (let i = 0; i < 400 && !/mailgw is running/.test(output); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!/mailgw is running/.test(output)) throw new Error(`mailgw listen did not start:\n${output}`);
});

after(async () => {
  if (child && child.exitCode === null) {
    const gone = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  }
  await proxy?.close();
  await ldap?.close();
  await redis?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('mailgw listen with a directory', { skip }, () => {
  it('logs the directory, authenticates an AD login over StartTLS to slapd, checks recipients and caches them in Redis', async () => {
    assert.match(output, /directory configured/);
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await c.authPlain('CONTOSO\\alice', FIXTURE_PASSWORD)).last, '235 2.7.0 Authentication successful');
    assert.equal((await c.cmd('MAIL FROM:<a.smith@contoso.test>')).last, '250 2.1.0 Sender OK');
    assert.equal((await c.cmd('RCPT TO:<partner-list@contoso.test>')).last, '250 2.1.5 Recipient OK');
    assert.equal((await c.cmd('RCPT TO:<nobody@contoso.test>')).last, '550 5.1.1 User unknown');
    // Send As on the shared mailbox info@ (its DACL grants Helpdesk, which alice is in), read
    // by the process on the service account's connection.
    assert.match((await c.cmd('RSET')).last, /^250 /);
    assert.equal((await c.cmd('MAIL FROM:<info@contoso.test>')).last, '250 2.1.0 Sender OK');
    await c.quit();
    assert.match(output, /"msg":"sending as another object \(Send As\)"/);
    const peek = new Redis(redis.url);
    try {
      const keys = keySpace('{mailgw}');
      assert.equal(await peek.get(keys.directoryRecipient('partner-list@contoso.test')), '1');
      assert.equal(await peek.get(keys.directoryRecipient('nobody@contoso.test')), '0');
    } finally {
      peek.disconnect();
    }
  });

  it('one connection to the directory serves every lookup of the process, and one more its password checks', async () => {
    // So far: the service connection and the one that checked alice's password, both kept.
    assert.equal(proxy.accepted, 2);
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).last, '250 2.1.0 Sender OK');
    for (const [to, reply] of [
      ['alice@contoso.test', '250 2.1.5 Recipient OK'],
      ['bob@contoso.test', '250 2.1.5 Recipient OK'],
      ['allstaff@contoso.test', '550 5.7.1 RESOLVER.RST.AuthRequired; authentication required'],
      ...Array.from({ length: 5 }, (_, i) => [`unknown-${i}@contoso.test`, '550 5.1.1 User unknown']),
    ] as const)
      assert.equal((await c.cmd(`RCPT TO:<${to}>`)).last, reply, to);
    await c.quit();
    assert.equal(proxy.accepted, 2, 'eight uncached lookups, no new connection');
    assert.equal(proxy.open, 2, 'both are kept open');
    // /metrics counts what happened: the questions by result and source, the connections.
    const server = `server="ldap://127.0.0.1:${proxy.port}"`;
    assert.equal(await metric('mailgw_directory_connections_total', `${server},event="opened"`), 1, "the kept one (a logon's password bind is the user's, not counted)");
    assert.equal(await metric('mailgw_directory_connections_open', server), 1);
    assert.equal(await metric('mailgw_directory_questions_total', 'question="logon",result="ok",source="directory"'), 1);
    assert.equal(await metric('mailgw_directory_questions_total', 'question="recipient",result="not-found",source="directory"'), 6, 'nobody@ and five unknown');
    assert.equal(await metric('mailgw_directory_questions_total', 'question="recipient",result="found-auth-required",source="directory"'), 1);
    assert.ok((await metric('mailgw_directory_question_seconds_count', 'question="recipient"')) >= 9);
    const again = await RawSmtp.connect({ host: '127.0.0.1', port });
    await again.ehlo();
    await again.cmd('MAIL FROM:<x@example.net>');
    assert.equal((await again.cmd('RCPT TO:<alice@contoso.test>')).last, '250 2.1.5 Recipient OK');
    await again.quit();
    assert.equal(await metric('mailgw_directory_questions_total', 'question="recipient",result="found",source="cache"'), 1, 'alice again: from the Redis cache');
  });

  it('slapd stopped: AUTH 454 4.7.0, an unchecked recipient 451 4.4.3, and the outage is logged', async () => {
    await ldap.stop();
    try {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port });
      await c.ehlo();
      assert.equal((await c.authPlain('alice@contoso.test', FIXTURE_PASSWORD)).last, '454 4.7.0 Temporary authentication failure');
      assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).last, '250 2.1.0 Sender OK');
      assert.equal((await c.cmd('RCPT TO:<someone-new@contoso.test>')).last, '451 4.4.3 Directory lookup failed, please try again later');
      await c.quit();
      // Logged as a warning: written at once, but by another process.
      for (let i = 0; i < 50 && !/directory unavailable/.test(output); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(output, /directory unavailable/);
    } finally {
      await ldap.start();
    }
  });

  it('slapd back: a new recipient is checked again, on a new connection', async () => {
    const before = proxy.accepted;
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).last, '250 2.1.0 Sender OK');
    assert.equal((await c.cmd('RCPT TO:<a.smith@contoso.test>')).last, '250 2.1.5 Recipient OK');
    assert.equal((await c.cmd('RCPT TO:<still-nobody@contoso.test>')).last, '550 5.1.1 User unknown');
    await c.quit();
    assert.equal(proxy.accepted, before + 1);
    const server = `server="ldap://127.0.0.1:${proxy.port}"`;
    assert.equal(await metric('mailgw_directory_connections_total', `${server},event="closed-lost"`), 1, 'slapd stopped under the kept connection');
    assert.ok((await metric('mailgw_directory_connections_total', `${server},event="failed"`)) >= 1, 'the tries while it was down');
    assert.ok((await metric('mailgw_directory_questions_total', 'question="recipient",result="unavailable",source="directory"')) >= 1);
    assert.equal(await metric('mailgw_directory_connections_open', server), 1, 'the new kept connection');
  });
});
