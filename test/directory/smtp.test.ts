// The directory end to end over real SMTP (in-process listeners, real Redis, real slapd): the
// README's Active Directory recipe on one port — printers by IP relay anonymously, people log on
// with their directory login, relay for the Relay Users group (nested: Helpdesk is in it), a
// deny to another group wins, a grant to the primary group Domain Users (primaryGroupID, in no
// memberOf) works; Send As from the directory's addresses; recipients checked in the
// directory (250 / 550 5.1.1); local users first; an outage answers AUTH 454 4.7.0 and RCPT
// 451 4.4.3 and accepts nothing it could not check.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDirectoryService, type DirectoryService } from '@mailgw/directory';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { BASE_DN, FIXTURE_PASSWORD, SERVICE_DN, adDirectory, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';
import { PASSWORD, baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const skip = slapdSkip();
const AUTH_OK = '235 2.7.0 Authentication successful';
const AUTH_FAILED = '535 5.7.3 Authentication unsuccessful';
const AUTH_TEMP = '454 4.7.0 Temporary authentication failure';
const RCPT_OK = '250 2.1.5 Recipient OK';
const UNKNOWN = '550 5.1.1 User unknown';
const NO_RELAY = '550 5.7.1 Unable to relay';
const DIR_DOWN = '451 4.4.3 Directory lookup failed, please try again later';
const AUTH_REQUIRED = '550 5.7.1 RESOLVER.RST.AuthRequired; authentication required';

let ldap: TestSlapd;
let redis: TestRedis;
let gw: TestGateway;
let dir: DirectoryService;
let port: number;
/** The openLDAP-preset gateway, with authBackoff 2 and a count of what reached the directory. */
let gw2: TestGateway;
let dir2: DirectoryService;
let port2: number;
let logons = 0;

before(async () => {
  if (skip) return;
  ldap = (await startSlapd())!;
  redis = await startRedis({ appendonly: false });
  port = await freePort();
  const gateway = await baseGateway({
    recipients: { directory: true },
    directory: adDirectory(ldap),
  });
  const connectors = {
    'printers.yaml': {
      name: 'Printers',
      bindings: [`127.0.0.1:${port}`],
      remoteIPRanges: ['127.0.0.20'],
      tarpitInterval: '0s',
      permissionGroups: ['AnonymousUsers'],
      permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] }],
    },
    // The Exchange servers behind, trusted by IP (ExternalAuthoritative): their senders count as authenticated.
    'exchange.yaml': {
      name: 'Exchange',
      bindings: [`127.0.0.1:${port}`],
      remoteIPRanges: ['127.0.0.30'],
      tarpitInterval: '0s',
      authMechanism: ['ExternalAuthoritative'],
      permissionGroups: ['ExchangeServers'],
    },
    'people.yaml': {
      name: 'People',
      bindings: [`127.0.0.1:${port}`],
      authMechanism: ['Tls', 'BasicAuth'],
      permissionGroups: ['None'],
      tarpitInterval: '0s',
      maxLogonFailures: 0,
      permissions: [
        { user: 'AuthenticatedUsers', extendedRights: ['ms-Exch-SMTP-Submit'] },
        { group: 'Relay Users', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] },
        { group: 'Sales', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] },
        { group: `cn=Deny Relay,ou=Groups,${BASE_DN}`, extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'], deny: true },
        { group: 'Domain Users', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] },
      ],
    },
  };
  const policy = compile(gateway, connectors);
  dir = createDirectoryService({ config: policy.config.gateway.directory!, redisUrl: redis.url });
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors, directory: dir });

  port2 = await freePort();
  const gateway2 = await baseGateway({
    users: [],
    recipients: { directory: true },
    authBackoff: { failures: 2, window: '15m' },
    directory: { url: [ldap.url], bindDn: SERVICE_DN, bindPasswordEnv: 'MAILGW_TEST_LDAP_PASSWORD', baseDn: BASE_DN, preset: 'openLDAP', timeout: '2s' },
  });
  const connectors2 = {
    'people.yaml': {
      name: 'People',
      bindings: [`127.0.0.1:${port2}`],
      authMechanism: ['Tls', 'BasicAuth'],
      permissionGroups: ['None'],
      tarpitInterval: '0s',
      permissions: [
        { user: 'AuthenticatedUsers', extendedRights: ['ms-Exch-SMTP-Submit'] },
        { group: 'Relay Users', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] },
      ],
    },
  };
  const real = createDirectoryService({ config: compile(gateway2, connectors2).config.gateway.directory!, redisUrl: redis.url });
  dir2 = real;
  // The real service, counted: how many logons reached the directory.
  const counted = { logon: (u: string, p: string) => (logons++, real.logon(u, p)), recipientEntry: (a: string) => real.recipientEntry(a) };
  gw2 = await startGateway({ redisUrl: redis.url, gateway: gateway2, connectors: connectors2, directory: counted });
});

after(async () => {
  await gw?.close();
  await gw2?.close();
  await dir?.close();
  await dir2?.close();
  await ldap?.close();
  await redis?.stop();
});

async function session(from = '127.0.0.1'): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: from });
  await c.ehlo();
  return c;
}

describe('the Active Directory recipe over SMTP', { skip }, () => {
  it('printers by IP: anonymous relay from their address, no AUTH needed', async () => {
    const c = await session('127.0.0.20');
    const t = await c.transaction('scanner@contoso.test', ['someone@fabrikam.example'], 'Subject: scan\r\n\r\nscan\r\n');
    assert.equal(t.rcpt[0]!.last, RCPT_OK);
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    await c.quit();
  });

  it('people by AD login (UPN, DOMAIN\\name); relay through the nested Relay Users group; message queued', async () => {
    for (const login of ['alice@contoso.test', 'CONTOSO\\alice']) {
      const c = await session();
      assert.equal((await c.authPlain(login, FIXTURE_PASSWORD)).last, AUTH_OK, login);
      const before = (await gw.stored()).jobs;
      const t = await c.transaction('alice@contoso.test', ['partner@fabrikam.example', 'a.smith@contoso.test'], 'Subject: hi\r\n\r\nhi\r\n');
      assert.deepEqual(t.rcpt.map((r) => r.last), [RCPT_OK, RCPT_OK]);
      assert.match(t.end!.last, /^250 2\.6\.0 /);
      assert.equal((await gw.stored()).jobs, before + 1);
      await c.quit();
    }
  });

  it('a deny to a group wins over a grant to another (carol: Sales granted, Deny Relay denied)', async () => {
    const c = await session();
    assert.equal((await c.authPlain('carol', FIXTURE_PASSWORD)).last, AUTH_OK);
    const t = await c.transaction('carol@contoso.test', ['partner@fabrikam.example']);
    assert.equal(t.rcpt[0]!.last, NO_RELAY);
    await c.quit();
  });

  it('a grant to the primary group Domain Users (primaryGroupID 513, not in memberOf) lets erin relay; frank (primaryGroupID of no group) and gina (no objectSid) log on but may not', async () => {
    const e = await session();
    assert.equal((await e.authPlain('erin', FIXTURE_PASSWORD)).last, AUTH_OK);
    const before = (await gw.stored()).jobs;
    const t = await e.transaction('erin@contoso.test', ['partner@fabrikam.example'], 'Subject: via Domain Users\r\n\r\nhi\r\n');
    assert.equal(t.rcpt[0]!.last, RCPT_OK);
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    assert.equal((await gw.stored()).jobs, before + 1);
    await e.quit();
    for (const login of ['frank', 'gina']) {
      const c = await session();
      assert.equal((await c.authPlain(login, FIXTURE_PASSWORD)).last, AUTH_OK, login);
      const u = await c.transaction(`${login}@contoso.test`, ['partner@fabrikam.example', 'alice@contoso.test']);
      assert.deepEqual(u.rcpt.map((r) => r.last), [NO_RELAY, RCPT_OK], login);
      await c.quit();
    }
  });

  it('Send As: the directory addresses (proxyAddresses SMTP:/smtp:) only', async () => {
    const c = await session();
    assert.equal((await c.authPlain('alice@contoso.test', FIXTURE_PASSWORD)).last, AUTH_OK);
    assert.equal((await c.cmd('MAIL FROM:<a.smith@contoso.test>')).last, '250 2.1.0 Sender OK');
    await c.cmd('RSET');
    assert.equal((await c.cmd('MAIL FROM:<bob@contoso.test>')).last, '550 5.7.1 Client does not have permissions to send as this sender');
    await c.quit();
  });

  it('wrong password, disabled account, empty password: 535', async () => {
    const c = await session();
    assert.equal((await c.authPlain('alice@contoso.test', 'wrong')).last, AUTH_FAILED);
    assert.equal((await c.authPlain('dave', FIXTURE_PASSWORD)).last, AUTH_FAILED);
    assert.equal((await c.authPlain('alice@contoso.test', '')).last, AUTH_FAILED);
    await c.quit();
  });

  it('local gateway.yaml users are tried first: local "alice" logs on with the local password, not the directory one', async () => {
    const c = await session();
    assert.equal((await c.authPlain('alice', 'wrong-for-both')).last, AUTH_FAILED);
    assert.equal((await c.authPlain('alice', PASSWORD)).last, AUTH_OK);
    await c.quit();
  });

  it('recipients of the authoritative domain: 250 for any object holding the address, 550 5.1.1 for the rest', async () => {
    const c = await session('127.0.0.20');
    await c.cmd('MAIL FROM:<scanner@contoso.test>');
    for (const a of ['alice@contoso.test', 'a.smith@contoso.test', 'partner-list@contoso.test']) assert.equal((await c.cmd(`RCPT TO:<${a}>`)).last, RCPT_OK, a);
    for (const a of ['nobody@contoso.test', '*@contoso.test', 'x)(mail=*@contoso.test']) assert.equal((await c.cmd(`RCPT TO:<${a}>`)).last, UNKNOWN, a);
    await c.quit();
  });

  it('a group that requires authenticated senders (msExchRequireAuthToSendTo TRUE): 550 5.7.1 RESOLVER.RST.AuthRequired to an anonymous session, 250 after AUTH and from an externally secured connector', async () => {
    const c = await session('127.0.0.20');
    const before = (await gw.stored()).jobs;
    const t = await c.transaction('scanner@contoso.test', ['allstaff@contoso.test', 'sales@contoso.test'], 'Subject: to everybody\r\n\r\nhi\r\n');
    assert.deepEqual(t.rcpt.map((r) => r.last), [AUTH_REQUIRED, RCPT_OK], 'the restricted group refused, the unrestricted one (FALSE) accepted');
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    assert.equal((await gw.stored()).jobs, before + 1);
    const job = await gw.job(queueIdOf(t.end!));
    assert.deepEqual(job?.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['sales@contoso.test'], 'only the accepted recipient is queued');
    await c.quit();
    const refusal = gw.logs.find((l) => l.reason === 'recipient-auth-required');
    assert.ok(refusal, 'the refusal is logged with its reason');
    assert.match(String(refusal.why), /allstaff@contoso\.test accepts mail only from authenticated senders .*msExchRequireAuthToSendTo TRUE.*anonymous session/);

    const a = await session();
    assert.equal((await a.authPlain('alice@contoso.test', FIXTURE_PASSWORD)).last, AUTH_OK);
    const u = await a.transaction('alice@contoso.test', ['allstaff@contoso.test'], 'Subject: to everybody\r\n\r\nhi\r\n');
    assert.equal(u.rcpt[0]!.last, RCPT_OK);
    assert.match(u.end!.last, /^250 2\.6\.0 /);
    await a.quit();

    const x = await session('127.0.0.30');
    const v = await x.transaction('hr@contoso.test', ['allstaff@contoso.test'], 'Subject: from Exchange\r\n\r\nhi\r\n');
    assert.equal(v.rcpt[0]!.last, RCPT_OK);
    assert.match(v.end!.last, /^250 2\.6\.0 /);
    await x.quit();
  });

  it('directory down: AUTH 454 4.7.0, RCPT of an address not in the cache 451 4.4.3, nothing accepted unchecked', async () => {
    await ldap.stop();
    try {
      const c = await session();
      assert.equal((await c.authPlain('carol@contoso.test', FIXTURE_PASSWORD)).last, AUTH_TEMP);
      await c.quit();
      const p = await session('127.0.0.20');
      await p.cmd('MAIL FROM:<scanner@contoso.test>');
      assert.equal((await p.cmd('RCPT TO:<bob@contoso.test>')).last, DIR_DOWN);
      assert.equal((await p.cmd('RCPT TO:<never-seen@contoso.test>')).last, DIR_DOWN);
      // Cached answers still serve (alice was found above, within cacheTtl).
      assert.equal((await p.cmd('RCPT TO:<alice@contoso.test>')).last, RCPT_OK);
      await p.quit();
    } finally {
      await ldap.start();
    }
    const c = await session();
    assert.equal((await c.authPlain('carol@contoso.test', FIXTURE_PASSWORD)).last, AUTH_OK, 'works again once slapd is back');
    await c.quit();
  });

  it('a deleted user stops working at once (AUTH is never cached)', async () => {
    const c = await session();
    assert.equal((await c.authPlain('carol', FIXTURE_PASSWORD)).last, AUTH_OK);
    await c.quit();
    ldap.modify(`dn: cn=Carol White,ou=People,${BASE_DN}\nchangetype: delete\n`);
    const d = await session();
    assert.equal((await d.authPlain('carol', FIXTURE_PASSWORD)).last, AUTH_FAILED);
    await d.quit();
  });
});

describe('the openLDAP preset over SMTP', { skip }, () => {
  it('uid login, Send As mailAlternateAddress, relay through the nested group, recipients from mail', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port2 });
    await c.ehlo();
    assert.equal((await c.authPlain('bob', FIXTURE_PASSWORD)).last, AUTH_OK);
    const t = await c.transaction('robert@contoso.test', ['partner@fabrikam.example', 'bob@contoso.test', 'ghost@contoso.test'], 'Subject: x\r\n\r\nx\r\n');
    assert.equal(t.mail.last, '250 2.1.0 Sender OK');
    assert.deepEqual(t.rcpt.map((r) => r.last), [RCPT_OK, RCPT_OK, UNKNOWN]);
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    await c.quit();
  });

  it('the per-address backoff applies before the directory: it never sees more guesses than the backoff lets through', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port2, localAddress: '127.0.0.77' });
    await c.ehlo();
    const before = logons;
    assert.equal((await c.authPlain('bob', 'guess-1')).last, AUTH_FAILED);
    assert.equal((await c.authPlain('bob', 'guess-2')).last, AUTH_FAILED);
    // authBackoff failures: 2 reached: from now on AUTH from this address is 454 without a password check.
    await c.quit().catch(() => undefined);
    const d = await RawSmtp.connect({ host: '127.0.0.1', port: port2, localAddress: '127.0.0.77' });
    await d.ehlo();
    assert.equal((await d.authPlain('bob', FIXTURE_PASSWORD)).last, AUTH_TEMP);
    assert.equal((await d.authPlain('bob', 'guess-3')).last, AUTH_TEMP);
    await d.quit().catch(() => undefined);
    assert.equal(logons - before, 2, 'only the two guesses the backoff allowed reached the directory');
  });
});
