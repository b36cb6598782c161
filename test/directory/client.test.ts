// @mailgw/directory against a real OpenLDAP (test/harness/slapd.ts): logon for both presets
// (bind as the user, disabled accounts, wrong and empty passwords), nested groups walked through
// memberOf, AD's primary group (objectSid + primaryGroupID) and its nesting, addresses from proxyAddresses / mail / mailAlternateAddress, recipient lookup with
// the Redis cache (TTL, shared key), filter injection, failover to the second URL and outage.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { DirectoryConfig } from '@mailgw/config';
import { createDirectoryClient, createDirectoryService } from '@mailgw/directory';
import { keySpace, redisTarget } from '@mailgw/queue';
import { Redis } from 'ioredis';
import { startRedis, startSentinel, type TestRedis } from '../harness/redis.js';
import { BASE_DN, DOMAIN_SID, FIXTURE_PASSWORD, SERVICE_DN, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';

const skip = slapdSkip();
let ldap: TestSlapd;
let redis: TestRedis;
let closedPort: number;

/** A loopback port nothing listens on (a dead first server). */
function deadPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function cfg(preset: 'activeDirectory' | 'openLDAP', extra: Partial<DirectoryConfig> = {}): DirectoryConfig {
  return {
    url: [ldap.url],
    startTLS: false,
    bindDn: SERVICE_DN,
    bindPasswordEnv: 'X',
    baseDn: BASE_DN,
    preset,
    cacheTtl: 300_000,
    negativeCacheTtl: 60_000,
    timeout: 2000,
    maxGroupDepth: 10,
    idleTimeout: 60_000,
    groupMembership: 'memberOf',
    bindPassword: FIXTURE_PASSWORD,
    caPem: null,
    // The fixture's AD-shaped accounts are inetOrgPerson entries with the AD attributes added.
    ...(preset === 'activeDirectory' ? { userFilter: '(objectClass=mailgwTestADUser)' } : {}),
    ...extra,
  };
}

before(async () => {
  if (skip) return;
  ldap = (await startSlapd())!;
  redis = await startRedis({ appendonly: false });
  closedPort = await deadPort();
});
after(async () => {
  await ldap?.close();
  await redis?.stop();
});

describe('logon', { skip }, () => {
  it('activeDirectory: UPN, sAMAccountName and DOMAIN\\name bind as the user; addresses from proxyAddresses; nested groups', async () => {
    const c = createDirectoryClient(cfg('activeDirectory'));
    for (const login of ['alice@contoso.test', 'alice', 'CONTOSO\\alice']) {
      const r = await c.logon(login, FIXTURE_PASSWORD);
      assert.equal(r.kind, 'ok', `${login}: ${JSON.stringify(r)}`);
      if (r.kind !== 'ok') continue;
      assert.equal(r.identity.dn, `cn=Alice Smith,ou=People,${BASE_DN}`);
      assert.deepEqual(r.identity.addresses, ['alice@contoso.test', 'a.smith@contoso.test']);
      // memberOf (Helpdesk, and Relay Users through it) plus the primary group Domain Users
      // (primaryGroupID 513, in no memberOf) and All Staff through it.
      assert.deepEqual(r.identity.groups.map((g) => g.split(',')[0]).sort(), ['cn=All Staff', 'cn=Domain Users', 'cn=Helpdesk', 'cn=Relay Users']);
    }
  });

  it('activeDirectory: the primary group is found by objectSid (domain SID + primaryGroupID) and walked like the others', async () => {
    const c = createDirectoryClient(cfg('activeDirectory'));
    const lines: string[] = [];
    const r = await c.logon('erin', FIXTURE_PASSWORD, (l) => lines.push(l));
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    if (r.kind !== 'ok') return;
    const du = `cn=Domain Users,ou=Groups,${BASE_DN}`;
    const staff = `cn=All Staff,ou=Groups,${BASE_DN}`;
    assert.deepEqual(r.identity.groups, [du, staff]);
    assert.deepEqual(r.identity.groupOrigins, { [du]: `primary group (primaryGroupID 513, objectSid ${DOMAIN_SID}-513)`, [staff]: 'memberOf of Domain Users' });
    // The SID has bytes of 0x80 and more (c7 f7 fe d7 …): they reach slapd as bytes, not as UTF-8.
    assert.ok(lines.some((l) => l.includes('(objectSid=\\01\\05\\00\\00\\00\\00\\00\\05\\15\\00\\00\\00\\c7\\f7') && l.endsWith(du)), lines.join('\n'));
    // The same through describe (mailgw directory test, explain --auth).
    const d = await c.describe('erin@contoso.test');
    assert.deepEqual(d.kind === 'ok' ? d.identity.groups : d, [du, staff]);
    // maxGroupDepth 1: the primary group is a direct group; what it is in is not followed.
    const shallow = await createDirectoryClient(cfg('activeDirectory', { maxGroupDepth: 1 })).logon('erin', FIXTURE_PASSWORD);
    assert.deepEqual(shallow.kind === 'ok' ? shallow.identity.groups : shallow, [du]);
  });

  it('no objectSid, or a primaryGroupID no group has: the logon works without a primary group, and the trace says why', async () => {
    const c = createDirectoryClient(cfg('activeDirectory'));
    for (const [login, why] of [
      ['frank', `no object has this SID; primary group ignored`],
      ['gina', 'has primaryGroupID 513 but no objectSid to take the domain SID from'],
    ] as const) {
      const lines: string[] = [];
      const r = await c.logon(login, FIXTURE_PASSWORD, (l) => lines.push(l));
      assert.equal(r.kind, 'ok', `${login}: ${JSON.stringify(r)}`);
      assert.deepEqual(r.kind === 'ok' ? r.identity.groups : null, []);
      assert.ok(lines.some((l) => l.includes(why)), `${login}:\n${lines.join('\n')}`);
    }
    const frank = await c.describe('frank');
    assert.equal(frank.kind, 'ok');
  });

  it('openLDAP preset: no primary group lookup; the memberof overlay does not list groupOfUniqueNames', async () => {
    const lines: string[] = [];
    const r = await createDirectoryClient(cfg('openLDAP')).logon('bob', FIXTURE_PASSWORD, (l) => lines.push(l));
    assert.deepEqual(r.kind === 'ok' ? r.identity.groups.map((g) => g.split(',')[0]) : r, ['cn=Helpdesk', 'cn=Relay Users']);
    assert.ok(!lines.some((l) => /objectSid|primary group/.test(l)), lines.join('\n'));
  });

  it('openLDAP: uid or mail; addresses from mail and mailAlternateAddress', async () => {
    const c = createDirectoryClient(cfg('openLDAP'));
    for (const login of ['bob', 'bob@contoso.test']) {
      const r = await c.logon(login, FIXTURE_PASSWORD);
      assert.equal(r.kind, 'ok', JSON.stringify(r));
      if (r.kind === 'ok') assert.deepEqual(r.identity.addresses, ['bob@contoso.test', 'robert@contoso.test']);
    }
  });

  it('wrong password, unknown login, disabled account (userAccountControl 514): invalid, never unavailable', async () => {
    const c = createDirectoryClient(cfg('activeDirectory'));
    assert.deepEqual(await c.logon('alice', 'wrong'), { kind: 'invalid', why: `wrong password for cn=Alice Smith,ou=People,${BASE_DN}` });
    assert.equal((await c.logon('nobody', FIXTURE_PASSWORD)).kind, 'invalid');
    const dave = await c.logon('dave', FIXTURE_PASSWORD);
    assert.equal(dave.kind, 'invalid');
    assert.match(dave.kind === 'invalid' ? dave.why : '', /disabled/);
  });

  it('an empty password is refused before any bind is sent (slapd would accept it as an unauthenticated bind)', async () => {
    // Proof that the server would say yes: an empty-password bind as alice succeeds on the wire.
    const { Client } = await import('ldapts');
    const raw = new Client({ url: ldap.url });
    await raw.bind(`cn=Alice Smith,ou=People,${BASE_DN}`, '');
    await raw.unbind();
    const c = createDirectoryClient(cfg('openLDAP'));
    assert.deepEqual(await c.logon('alice', ''), { kind: 'invalid', why: 'empty password (an unauthenticated bind is never sent)' });
  });

  it('a login that more than one account answers to is refused (ambiguous), not an outage', async () => {
    const c = createDirectoryClient(cfg('openLDAP', { loginAttributes: ['objectClass'] }));
    assert.deepEqual(await c.logon('inetOrgPerson', FIXTURE_PASSWORD), { kind: 'invalid', why: 'login "inetOrgPerson" matches more than one account' });
  });

  it('filter injection through the login finds nothing (*, parentheses, backslash, NUL)', async () => {
    const c = createDirectoryClient(cfg('openLDAP'));
    for (const login of ['*', 'a*', 'bob)(uid=*', '*)(|(uid=*', 'bob\\', 'bob\0']) {
      const r = await c.logon(login, FIXTURE_PASSWORD);
      assert.equal(r.kind, 'invalid', `${JSON.stringify(login)}: ${JSON.stringify(r)}`);
    }
    // A uid that really contains "*" is found as itself, not as a wildcard.
    assert.equal((await c.logon('star*user', FIXTURE_PASSWORD)).kind, 'ok');
  });
});

describe('recipient lookup', { skip }, () => {
  it('any object holding the address: users, aliases, contacts; injection finds nothing', async () => {
    const c = createDirectoryClient(cfg('activeDirectory', { addressAttributes: ['proxyAddresses', 'mail', 'mailAlternateAddress'] }));
    for (const a of ['alice@contoso.test', 'A.Smith@contoso.test', 'robert@contoso.test', 'partner-list@contoso.test']) assert.equal(await c.hasAddress(a), 'found', a);
    for (const a of ['nobody@contoso.test', '*@contoso.test', '*', 'alice@contoso.test)(mail=*']) assert.equal(await c.hasAddress(a), 'not-found', a);
  });

  it("authenticated senders only: an entry with msExchRequireAuthToSendTo TRUE (activeDirectory's default attribute), FALSE or absent is plainly found; the answer is cached as such", async () => {
    const c = createDirectoryClient(cfg('activeDirectory'));
    assert.equal(c.map.requireSenderAuthenticationAttribute, 'msExchRequireAuthToSendTo');
    const lines: string[] = [];
    assert.equal(await c.hasAddress('AllStaff@contoso.test', (l) => lines.push(l)), 'found-auth-required');
    assert.match(lines.join('\n'), /found cn=All Staff,ou=Groups,dc=contoso,dc=test, msExchRequireAuthToSendTo TRUE \(authenticated senders only\)/);
    assert.equal(await c.hasAddress('sales@contoso.test'), 'found', 'FALSE');
    assert.equal(await c.hasAddress('alice@contoso.test'), 'found', 'no such attribute');
    // openLDAP reads no such attribute unless told to; false switches it off on AD.
    assert.equal(await createDirectoryClient(cfg('openLDAP', { addressAttributes: ['proxyAddresses', 'mail'] })).hasAddress('allstaff@contoso.test'), 'found');
    assert.equal(await createDirectoryClient(cfg('openLDAP', { addressAttributes: ['proxyAddresses', 'mail'], requireSenderAuthenticationAttribute: 'msExchRequireAuthToSendTo' })).hasAddress('allstaff@contoso.test'), 'found-auth-required');
    assert.equal(await createDirectoryClient(cfg('activeDirectory', { requireSenderAuthenticationAttribute: false })).hasAddress('allstaff@contoso.test'), 'found');

    const peek = new Redis(redis.url);
    const keys = keySpace('{dirauth}');
    const svc = createDirectoryService({ config: cfg('activeDirectory'), redisUrl: redis.url, prefix: '{dirauth}' });
    try {
      assert.equal((await svc.recipientEntry('allstaff@contoso.test')).answer, 'found-auth-required');
      assert.equal(await peek.get(keys.directoryRecipient('allstaff@contoso.test')), 'a');
      const ttl = await peek.pttl(keys.directoryRecipient('allstaff@contoso.test'));
      assert.ok(ttl > 60_000 && ttl <= 300_000, `kept for cacheTtl, not negativeCacheTtl: ${ttl}`);
      // From the cache while the directory is down: the restriction holds.
      await ldap.stop();
      try {
        assert.equal((await svc.recipientEntry('allstaff@contoso.test')).answer, 'found-auth-required');
      } finally {
        await ldap.start();
      }
      // An unknown cached value (another version's) is a miss, not an answer.
      await peek.set(keys.directoryRecipient('sales@contoso.test'), 'x');
      assert.equal((await svc.recipientEntry('sales@contoso.test')).answer, 'found');
      assert.equal(await peek.get(keys.directoryRecipient('sales@contoso.test')), '1');
    } finally {
      await svc.close();
      peek.disconnect();
    }
  });

  it('the cache is reached through any queue target, here a Redis Sentinel (ioredis alone took redis+sentinel:// for a host name)', async () => {
    const sentinel = await startSentinel(redis.port, 'dirmaster');
    const peek = new Redis(redis.url);
    const target = redisTarget({ sentinels: [`127.0.0.1:${sentinel.port}`], name: 'dirmaster' })!;
    const svc = createDirectoryService({ config: cfg('openLDAP'), redisUrl: target, prefix: '{dirsentinel}' });
    try {
      assert.match(target, /^redis\+sentinel:\/\//);
      assert.equal((await svc.recipientEntry('bob@contoso.test')).answer, 'found');
      assert.equal(await peek.get(keySpace('{dirsentinel}').directoryRecipient('bob@contoso.test')), '1', 'the answer is in Redis');
    } finally {
      await svc.close();
      peek.disconnect();
      await sentinel.stop();
    }
  });

  it('answers are cached in Redis for cacheTtl / negativeCacheTtl, shared by every listener; an outage is not cached', async () => {
    const peek = new Redis(redis.url);
    const keys = keySpace('{mailgw}');
    const svc = createDirectoryService({ config: cfg('openLDAP', { cacheTtl: 60_000, negativeCacheTtl: 20_000 }), redisUrl: redis.url });
    try {
      assert.equal((await svc.recipientEntry('bob@contoso.test')).answer, 'found');
      assert.equal((await svc.recipientEntry('ghost@contoso.test')).answer, 'not-found');
      assert.equal(await peek.get(keys.directoryRecipient('bob@contoso.test')), '1');
      assert.equal(await peek.get(keys.directoryRecipient('ghost@contoso.test')), '0');
      const ttl = await peek.pttl(keys.directoryRecipient('bob@contoso.test'));
      assert.ok(ttl > 0 && ttl <= 60_000, `found TTL ${ttl}`);
      const nttl = await peek.pttl(keys.directoryRecipient('ghost@contoso.test'));
      assert.ok(nttl > 0 && nttl <= 20_000, `not-found TTL ${nttl}`);
      // A second listener (another service on the same Redis) answers from the cache while slapd is down.
      const other = createDirectoryService({ config: cfg('openLDAP'), redisUrl: redis.url });
      await ldap.stop();
      try {
        assert.equal((await other.recipientEntry('bob@contoso.test')).answer, 'found');
        assert.equal((await other.recipientEntry('ghost@contoso.test')).answer, 'not-found');
        assert.equal((await other.recipientEntry('carol@contoso.test')).answer, 'unavailable');
        assert.equal(await peek.exists(keys.directoryRecipient('carol@contoso.test')), 0, 'an outage is never cached');
      } finally {
        await ldap.start();
        await other.close();
      }
      // When the entry expires the directory is asked again (expired by hand here: no timed waits).
      await peek.del(keys.directoryRecipient('bob@contoso.test'));
      ldap.modify(`dn: cn=Bob Jones,ou=People,${BASE_DN}\nchangetype: modify\nreplace: mail\nmail: bobby@contoso.test\n`);
      assert.equal((await svc.recipientEntry('bob@contoso.test')).answer, 'not-found');
      ldap.modify(`dn: cn=Bob Jones,ou=People,${BASE_DN}\nchangetype: modify\nreplace: mail\nmail: bob@contoso.test\n`);
    } finally {
      await svc.close();
      peek.disconnect();
    }
  });
});

describe('TLS', { skip }, () => {
  it('ldap:// with startTLS and ldaps://, trusting the directory\'s CA from caFile', async () => {
    for (const extra of [{ startTLS: true }, { url: [ldap.ldapsUrl] }]) {
      const lines: string[] = [];
      const c = createDirectoryClient(cfg('openLDAP', { ...extra, caPem: ldap.caPem }));
      const r = await c.logon('bob', FIXTURE_PASSWORD, (l) => lines.push(l));
      assert.equal(r.kind, 'ok', `${JSON.stringify(extra)}: ${JSON.stringify(r)}`);
      if (extra.startTLS) assert.ok(lines.some((l) => l.endsWith('StartTLS done')), lines.join('\n'));
    }
  });

  it('a certificate no trusted CA signed: unavailable (never a plaintext fallback), for StartTLS and ldaps://', async () => {
    for (const extra of [{ startTLS: true }, { url: [ldap.ldapsUrl] }]) {
      const c = createDirectoryClient(cfg('openLDAP', { ...extra, caPem: null }));
      const r = await c.logon('bob', FIXTURE_PASSWORD);
      assert.equal(r.kind, 'unavailable', JSON.stringify(r));
      assert.match(r.kind === 'unavailable' ? r.why : '', /self[- ]signed|certificate/i);
    }
  });
});

describe('failover and outage', { skip }, () => {
  it('a dead first URL fails over to the second', async () => {
    const c = createDirectoryClient(cfg('openLDAP', { url: [`ldap://127.0.0.1:${closedPort}`, ldap.url] }));
    const lines: string[] = [];
    const r = await c.logon('bob', FIXTURE_PASSWORD, (l) => lines.push(l));
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    assert.ok(lines.some((l) => l.includes(`127.0.0.1:${closedPort}`) && l.includes('trying the next server')), lines.join('\n'));
    assert.equal(await c.hasAddress('bob@contoso.test'), 'found');
  });

  it('every server down: unavailable (AUTH 454, RCPT 451), never invalid', async () => {
    const c = createDirectoryClient(cfg('openLDAP', { url: [`ldap://127.0.0.1:${closedPort}`, ldap.url] }));
    await ldap.stop();
    try {
      const r = await c.logon('bob', FIXTURE_PASSWORD);
      assert.equal(r.kind, 'unavailable', JSON.stringify(r));
      assert.equal(await c.hasAddress('bob@contoso.test'), 'unavailable');
    } finally {
      await ldap.start();
    }
  });

  it('a wrong service password is an outage (a configuration problem), not a failed user logon', async () => {
    const c = createDirectoryClient(cfg('openLDAP', { bindPassword: 'wrong' }));
    const r = await c.logon('bob', FIXTURE_PASSWORD);
    assert.equal(r.kind, 'unavailable');
    assert.match(r.kind === 'unavailable' ? r.why : '', /bind as cn=svc-mailgw/);
  });
});
