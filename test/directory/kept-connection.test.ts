// The service account's connection kept between questions (directory.idleTimeout), against a
// real OpenLDAP behind a loopback TCP proxy (test/harness/tcp-proxy.ts) that counts and breaks
// connections: questions share one bound connection (a burst of them too); idleTimeout 0 opens
// one per question; a connection the server or the network closes, between questions or under
// one, is replaced and the question answered; a connection that stops answering costs one
// timeout; after idleTimeout it is closed; after a failover the first server is tried again;
// AUTH's password checks on a kept connection of their own; a reconnection is bound and TLS
// again (a directory that answers only such sessions); and a process that never closes the
// client still exits.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { DirectoryConfig } from '@mailgw/config';
import { createDirectoryClient } from '@mailgw/directory';
import { BASE_DN, FIXTURE_PASSWORD, SERVICE_DN, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';

const skip = slapdSkip();
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let ldap: TestSlapd;
let strict: TestSlapd;
const proxies: TcpProxy[] = [];

async function proxy(port: number): Promise<TcpProxy> {
  const p = await startTcpProxy(port);
  proxies.push(p);
  return p;
}

function cfg(urls: string[], extra: Partial<DirectoryConfig> = {}): DirectoryConfig {
  return {
    url: urls,
    startTLS: false,
    bindDn: SERVICE_DN,
    bindPasswordEnv: 'X',
    baseDn: BASE_DN,
    preset: 'activeDirectory',
    cacheTtl: 300_000,
    negativeCacheTtl: 60_000,
    timeout: 2000,
    idleTimeout: 60_000,
    maxGroupDepth: 10,
    groupMembership: 'memberOf',
    bindPassword: FIXTURE_PASSWORD,
    caPem: null,
    userFilter: '(objectClass=mailgwTestADUser)',
    addressAttributes: ['proxyAddresses', 'mail'],
    ...extra,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

before(async () => {
  if (skip) return;
  ldap = (await startSlapd())!;
  strict = (await startSlapd({ tlsAndBindRequired: true }))!;
});
after(async () => {
  for (const p of proxies) await p.close();
  await ldap?.close();
  await strict?.close();
});

describe('directory: the kept service connection', { skip }, () => {
  it('questions in a row share one bound connection; with idleTimeout 0 each opens its own', async () => {
    const p = await proxy(ldap.port);
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`]));
    const trace: string[] = [];
    assert.equal(await client.hasAddress('alice@contoso.test', (l) => trace.push(l)), 'found');
    assert.equal(await client.hasAddress('nobody@contoso.test', (l) => trace.push(l)), 'not-found');
    const m = await client.memberships('a.smith@contoso.test', (l) => trace.push(l));
    assert.equal(m.kind, 'found');
    assert.ok(m.kind === 'found' && m.groups.some((g) => /^cn=Helpdesk,/i.test(g)), JSON.stringify(m));
    const e = await client.entryAttributes('alice@contoso.test', ['department']);
    assert.equal(e.kind, 'found');
    const d = await client.describe('alice');
    assert.equal(d.kind, 'ok');
    assert.equal(p.accepted, 1, 'five questions, one connection');
    assert.equal(p.open, 1);
    assert.equal(trace.filter((l) => l.endsWith(`bound as ${SERVICE_DN}`) && !l.includes('open connection')).length, 1, trace.join('\n'));
    assert.equal(trace.filter((l) => l.includes('the open connection')).length, 2, trace.join('\n'));
    // AUTH checks passwords on a connection of their own (a bind as the user would change who the
    // service connection is), kept too: one for every logon, wrong passwords included.
    assert.equal((await client.logon('alice', FIXTURE_PASSWORD)).kind, 'ok');
    assert.equal(p.accepted, 2);
    const wrong = await client.logon('erin', 'not-her-password');
    assert.deepEqual(wrong.kind === 'invalid' && wrong.why, 'wrong password for cn=Erin Black,ou=People,dc=contoso,dc=test');
    assert.equal((await client.logon('CONTOSO\\alice', FIXTURE_PASSWORD)).kind, 'ok', 'a right one after a wrong one, on the same connection');
    const many = await Promise.all(Array.from({ length: 10 }, (_, i) => client.logon(i % 2 ? 'alice' : 'erin', i % 3 ? FIXTURE_PASSWORD : 'nope')));
    assert.deepEqual(many.map((r) => r.kind), Array.from({ length: 10 }, (_, i) => (i % 3 ? 'ok' : 'invalid')), 'checks at once are answered each for its own password');
    assert.equal(p.accepted, 2, 'fourteen logons: the service connection and the password connection');
    assert.equal(await client.hasAddress('alice@contoso.test'), 'found', 'the service connection still serves after logons');
    assert.equal(p.accepted, 2);
    await client.close();
    await until('the kept connections to close', () => p.open === 0);

    const q = await proxy(ldap.port);
    const each = createDirectoryClient(cfg([`ldap://127.0.0.1:${q.port}`], { idleTimeout: 0 }));
    for (const a of ['alice@contoso.test', 'nobody@contoso.test', 'bob@contoso.test']) await each.hasAddress(a);
    assert.equal(q.accepted, 3, 'idleTimeout 0: a connection per question');
    await until('each connection to close', () => q.open === 0);
  });

  it('a burst of questions with no connection yet opens one, and every question is answered', async () => {
    const p = await proxy(ldap.port);
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`]));
    const addresses = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? 'alice@contoso.test' : i % 3 === 1 ? 'a.smith@contoso.test' : `nobody${i}@contoso.test`));
    const answers = await Promise.all(addresses.map((a) => client.hasAddress(a)));
    assert.deepEqual(answers, addresses.map((a) => (a.startsWith('nobody') ? 'not-found' : 'found')));
    assert.equal(p.accepted, 1);
    await client.close();
  });

  it('a connection the server closes between questions is replaced: slapd restarted, and the proxy cutting it', async () => {
    const p = await proxy(ldap.port);
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`]));
    assert.equal(await client.hasAddress('alice@contoso.test'), 'found');
    await ldap.stop();
    await ldap.start();
    await until('the old connection to be gone', () => p.open === 0);
    const trace: string[] = [];
    assert.equal(await client.hasAddress('bob@contoso.test', (l) => trace.push(l)), 'found');
    assert.ok(trace.some((l) => l.endsWith(`bound as ${SERVICE_DN}`)), `a new connection, bound again:\n${trace.join('\n')}`);
    assert.equal(p.accepted, 2);
    p.cut();
    assert.equal(await client.hasAddress('a.smith@contoso.test'), 'found');
    assert.equal(p.accepted, 3);
    await client.close();
  });

  it('a connection closed under a question: the question is asked again on a new connection and answered', async () => {
    const p = await proxy(ldap.port);
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`]));
    assert.equal(await client.hasAddress('alice@contoso.test'), 'found');
    // The server's answer never comes back on the open connection; the question is on the wire when it is cut.
    p.silence();
    const sent = p.bytesFromClients;
    const trace: string[] = [];
    const answer = client.memberships('alice@contoso.test', (l) => trace.push(l));
    await until('the question to reach the server', () => p.bytesFromClients > sent);
    p.cut();
    const m = await answer;
    assert.equal(m.kind, 'found', JSON.stringify(m));
    assert.ok(trace.some((l) => /the connection closed .*; opening a new connection/.test(l)), trace.join('\n'));
    assert.equal(p.accepted, 2);
    await client.close();
  });

  it('a connection that stops answering (a firewall forgot it) costs one timeout, then a new connection answers', async () => {
    const p = await proxy(ldap.port);
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`], { timeout: 400 }));
    assert.equal(await client.hasAddress('alice@contoso.test'), 'found');
    p.silence();
    const trace: string[] = [];
    assert.equal(await client.hasAddress('bob@contoso.test', (l) => trace.push(l)), 'found');
    assert.ok(trace.some((l) => /timed out; opening a new connection/i.test(l)), trace.join('\n'));
    assert.equal(p.accepted, 2);
    await client.close();
  });

  it('an idle connection is closed after idleTimeout; the next question opens another', async () => {
    const p = await proxy(ldap.port);
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`], { idleTimeout: 300 }));
    assert.equal(await client.hasAddress('alice@contoso.test'), 'found');
    assert.equal(p.open, 1);
    await until('the idle connection to close', () => p.open === 0, 5000);
    assert.equal(await client.hasAddress('alice@contoso.test'), 'found');
    assert.equal(p.accepted, 2);
    await client.close();
  });

  it('after a failover the second server serves while the first is down; the first serves again once it is back', async () => {
    const first = await proxy(ldap.port);
    const second = await proxy(ldap.port);
    await first.refuse();
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${first.port}`, `ldap://127.0.0.1:${second.port}`]), { failbackAfterMs: 400 });
    const trace: string[] = [];
    assert.equal(await client.hasAddress('alice@contoso.test', (l) => trace.push(l)), 'found');
    assert.ok(trace.some((l) => l.includes(`ldap://127.0.0.1:${first.port}`) && l.endsWith('trying the next server')), trace.join('\n'));
    assert.equal(second.accepted, 1);
    await first.listen();
    assert.equal(await client.hasAddress('bob@contoso.test'), 'found');
    assert.equal(first.accepted, 0, 'within failbackAfter the fallback connection is used');
    await sleep(450);
    assert.equal(await client.hasAddress('bob@contoso.test'), 'found');
    assert.equal(first.accepted, 1, 'then the first server again');
    await until('the fallback connection to close', () => second.open === 0);
    assert.equal(await client.hasAddress('a.smith@contoso.test'), 'found');
    assert.equal(first.accepted, 1);
    await client.close();
  });

  it('a password connection closed between logons or under a check: the password is checked again on a new one', async () => {
    const p = await proxy(ldap.port);
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`]));
    assert.equal((await client.logon('alice', FIXTURE_PASSWORD)).kind, 'ok');
    p.cut();
    const trace: string[] = [];
    assert.equal((await client.logon('alice', FIXTURE_PASSWORD, (l) => trace.push(l))).kind, 'ok');
    assert.equal(p.accepted, 4, 'both connections again');
    const wrong = await client.logon('erin', 'wrong');
    assert.deepEqual(wrong.kind === 'invalid' && wrong.why, 'wrong password for cn=Erin Black,ou=People,dc=contoso,dc=test', 'a wrong password is still wrong after a reconnection');
    // Under a check: the password connection (the newest) stops answering, and is cut while the bind is on the wire.
    p.silence('newest');
    const sent = p.bytesFromNewest;
    const under: string[] = [];
    const pending = client.logon('alice', FIXTURE_PASSWORD, (l) => under.push(l));
    await until('the bind to be sent on the password connection', () => p.bytesFromNewest > sent);
    p.cut();
    assert.equal((await pending).kind, 'ok');
    assert.ok(under.some((l) => /the connection closed .*; checking the password again on a new connection/.test(l)), under.join('\n'));
    await client.close();
  });

  it('a reconnection is TLS and bound again: a directory that answers only bound StartTLS sessions keeps answering', async () => {
    const p = await proxy(strict.port);
    const client = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`], { startTLS: true, caPem: strict.caPem }));
    // The directory itself refuses what a careless reconnect would send.
    const clear = createDirectoryClient(cfg([`ldap://127.0.0.1:${p.port}`], { idleTimeout: 0 }));
    assert.equal(await clear.hasAddress('alice@contoso.test'), 'unavailable', 'in clear the service bind is refused');
    assert.equal(await client.hasAddress('alice@contoso.test'), 'found');
    assert.equal((await client.logon('alice', FIXTURE_PASSWORD)).kind, 'ok', 'the password is checked over TLS');
    for (let i = 0; i < 3; i++) {
      p.cut();
      assert.equal(await client.hasAddress('alice@contoso.test'), 'found', `after cut ${i + 1}`);
      assert.equal(await client.hasAddress('nobody@contoso.test'), 'not-found');
      // A password sent in clear would be refused (confidentiality required), not taken.
      assert.equal((await client.logon('alice', FIXTURE_PASSWORD)).kind, 'ok', `a logon after cut ${i + 1}`);
    }
    assert.equal(p.accepted, 9, 'one clear attempt, then per cut a StartTLS service connection and a StartTLS password connection');
    await client.close();
  });

  it('a process that asked and never closed the client still exits (the idle connection does not hold it)', () => {
    const url = `ldap://127.0.0.1:${ldap.port}`;
    const script = [
      "import { createDirectoryClient } from '@mailgw/directory';",
      `const c = createDirectoryClient(${JSON.stringify({ ...cfg([url]), startTLS: true, caPem: ldap.caPem, idleTimeout: 600_000 })});`,
      "console.log(await c.hasAddress('alice@contoso.test'));",
    ].join('\n');
    const r = spawnSync(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.error, undefined, 'the process did not exit by itself');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'found');
  });
});
