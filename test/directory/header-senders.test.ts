// The header's From: and Sender: of a directory user's message: Send As (the object's DACL,
// as for MAIL FROM) and Send on Behalf (the From object's publicDelegates, Exchange's
// GrantSendOnBehalfTo, listing the user or a group of it, with Sender: the user's own). End to
// end over real SMTP: in-process listeners, real Redis, real slapd.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDirectoryService, type DirectoryService } from '@mailgw/directory';
import { sendOnBehalfDecision } from '@mailgw/policy';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { BASE_DN, FIXTURE_PASSWORD, adDirectory, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';

const skip = slapdSkip();
const DENIED = '550 5.7.60 SMTP; Client does not have permissions to send as this sender';
const DIR_DOWN = '451 4.4.3 Directory lookup failed, please try again later';
const QUEUED = /^250 2\.6\.0 /;
const HENRY = `cn=Henry Ford,ou=People,${BASE_DN}`;

let ldap: TestSlapd;
let redis: TestRedis;
let gw: TestGateway;
let dir: DirectoryService;
let port: number;
/** The same gateway with sendOnBehalfAttribute: false. */
let gwOff: TestGateway;
let dirOff: DirectoryService;
let portOff: number;

before(async () => {
  if (skip) return;
  ldap = (await startSlapd())!;
  redis = await startRedis({ appendonly: false });
  [port, portOff] = await Promise.all([freePort(), freePort()]);
  const people = (p: number) => ({ 'people.yaml': { name: 'People', bindings: [`127.0.0.1:${p}`], tarpitInterval: '0s', authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['ExchangeUsers'] } });
  const gateway = await baseGateway({ directory: adDirectory(ldap) });
  dir = createDirectoryService({ config: compile(gateway, people(port)).config.gateway.directory!, redisUrl: redis.url });
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors: people(port), directory: dir });
  const gatewayOff = await baseGateway({ directory: { ...adDirectory(ldap), sendOnBehalfAttribute: false } });
  dirOff = createDirectoryService({ config: compile(gatewayOff, people(portOff)).config.gateway.directory!, redisUrl: redis.url });
  gwOff = await startGateway({ redisUrl: redis.url, gateway: gatewayOff, connectors: people(portOff), directory: dirOff });
});

after(async () => {
  await gw?.close();
  await gwOff?.close();
  await dir?.close();
  await dirOff?.close();
  await ldap?.close();
  await redis?.stop();
});

async function logOn(login: string, p = port): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: p, localAddress: '127.0.0.9' });
  await c.ehlo();
  assert.equal((await c.authPlain(login, FIXTURE_PASSWORD)).last, '235 2.7.0 Authentication successful', login);
  return c;
}

/** One message on a logged-on session; the reply to the final dot (or the refusal before it). */
async function message(c: RawSmtp, mailFrom: string, header: string): Promise<string> {
  const body = `${header}To: <rcpt@example.net>\r\nSubject: header senders\r\nMessage-ID: <hs-${Math.random().toString(36).slice(2)}@client.test>\r\n\r\nHello.\r\n`;
  const r = await c.transaction(mailFrom, ['rcpt@example.net'], body);
  return r.end?.last ?? r.data?.last ?? r.rcpt.at(-1)?.last ?? r.mail.last;
}

async function send(login: string, mailFrom: string, header: string, p = port): Promise<string> {
  const c = await logOn(login, p);
  const reply = await message(c, mailFrom, header);
  await c.quit();
  return reply;
}

const lastRefusal = (g: TestGateway) => String(g.logs.filter((l) => l.reason === 'header-sender-not-permitted').at(-1)?.why);

describe('the header senders of a directory user (Send As, Send on Behalf)', { skip }, () => {
  it('From: the shared mailbox alice has Send As on, under her own MAIL FROM or its: queued, with an audit line; carol (denied) and erin (no grant): 550 5.7.60', async () => {
    const jobs = (await gw.stored()).jobs;
    assert.match(await send('alice@contoso.test', 'alice@contoso.test', 'From: Info Desk <info@contoso.test>\r\n'), QUEUED);
    const granted = gw.logs.filter((l) => l.msg === 'header sender granted by the directory').at(-1);
    assert.equal(granted?.user, 'alice@contoso.test');
    assert.match(String(granted?.why), /^header From: info@contoso\.test is held by cn=Info Desk,ou=People,dc=contoso,dc=test, on which directory user alice@contoso\.test has Send As/);
    assert.match(await send('alice@contoso.test', 'info@contoso.test', 'From: Info Desk <info@contoso.test>\r\n'), QUEUED);
    assert.equal((await gw.stored()).jobs, jobs + 2);
    assert.equal(await send('carol', 'carol@contoso.test', 'From: <info@contoso.test>\r\n'), DENIED);
    assert.match(lastRefusal(gw), /^header From info@contoso\.test: .*; Send As: cn=Info Desk,ou=People,dc=contoso,dc=test: Send As is denied to /);
    assert.equal(await send('erin', 'erin@contoso.test', 'From: <info@contoso.test>\r\n'), DENIED);
    assert.equal((await gw.stored()).jobs, jobs + 2, 'nothing stored for the refused ones');
  });

  it("Send on Behalf: From henry (whose GrantSendOnBehalfTo lists alice), Sender alice's own address or alias: queued", async () => {
    assert.match(await send('alice@contoso.test', 'alice@contoso.test', 'From: Henry Ford <henry@contoso.test>\r\nSender: Alice Smith <alice@contoso.test>\r\n'), QUEUED);
    const granted = gw.logs.filter((l) => l.msg === 'header sender granted by the directory').at(-1);
    assert.equal(granted?.why, `header From henry@contoso.test: sent on behalf of ${HENRY} by alice@contoso.test (Sender alice@contoso.test): its GrantSendOnBehalfTo lists cn=Alice Smith,ou=People,dc=contoso,dc=test`);
    assert.match(await send('alice@contoso.test', 'alice@contoso.test', 'From: <henry@contoso.test>\r\nSender: <a.smith@contoso.test>\r\n'), QUEUED);
  });

  it('Send on Behalf through a group: carol, in Sales, on behalf of Board; alice, not in Sales, not', async () => {
    assert.match(await send('carol', 'carol@contoso.test', 'From: Board <board@contoso.test>\r\nSender: <carol@contoso.test>\r\n'), QUEUED);
    assert.match(String(gw.logs.filter((l) => l.msg === 'header sender granted by the directory').at(-1)?.why), /its GrantSendOnBehalfTo lists Sales, a group the user is in$/);
    assert.equal(await send('alice@contoso.test', 'alice@contoso.test', 'From: <board@contoso.test>\r\nSender: <alice@contoso.test>\r\n'), DENIED);
    assert.match(lastRefusal(gw), /; Send on Behalf: cn=Board,ou=Groups,dc=contoso,dc=test: its GrantSendOnBehalfTo \(1\) lists neither the user nor a group it is in$/);
  });

  it("no Sender, a Sender that is not the user's, a delegate of another object, an object nobody holds: 550 5.7.60", async () => {
    assert.equal(await send('alice@contoso.test', 'alice@contoso.test', 'From: <henry@contoso.test>\r\n'), DENIED);
    assert.match(lastRefusal(gw), /no Sender field names the user \(Send on Behalf\)$/);
    assert.equal(await send('alice@contoso.test', 'alice@contoso.test', 'From: <henry@contoso.test>\r\nSender: <carol@contoso.test>\r\n'), DENIED);
    assert.match(lastRefusal(gw), /^header Sender carol@contoso\.test: /);
    assert.equal(await send('erin', 'erin@contoso.test', 'From: <henry@contoso.test>\r\nSender: <erin@contoso.test>\r\n'), DENIED);
    assert.match(lastRefusal(gw), /Send on Behalf: cn=Henry Ford,ou=People,dc=contoso,dc=test: its GrantSendOnBehalfTo \(1\) lists neither/);
    assert.equal(await send('alice@contoso.test', 'alice@contoso.test', 'From: <nobody@contoso.test>\r\nSender: <alice@contoso.test>\r\n'), DENIED);
    assert.match(lastRefusal(gw), /Send on Behalf: no directory object holds nobody@contoso\.test$/);
  });

  it('sendOnBehalfAttribute: false: Send As still counts, Send on Behalf does not', async () => {
    assert.equal(await send('alice@contoso.test', 'alice@contoso.test', 'From: <henry@contoso.test>\r\nSender: <alice@contoso.test>\r\n', portOff), DENIED);
    assert.match(await send('alice@contoso.test', 'alice@contoso.test', 'From: <info@contoso.test>\r\n', portOff), QUEUED);
  });

  it('the directory down after AUTH: 451 4.4.3 where it must be asked, never a guess; own addresses still pass', async () => {
    const c = await logOn('alice@contoso.test');
    await ldap.stop();
    try {
      assert.equal(await message(c, 'alice@contoso.test', 'From: <henry@contoso.test>\r\nSender: <alice@contoso.test>\r\n'), DIR_DOWN);
      assert.equal(await message(c, 'alice@contoso.test', 'From: <info@contoso.test>\r\n'), DIR_DOWN);
      assert.match(await message(c, 'alice@contoso.test', 'From: <a.smith@contoso.test>\r\n'), QUEUED);
    } finally {
      await ldap.start();
    }
    await c.quit();
  });
});

describe('sendOnBehalfDecision (pure)', () => {
  const user = { dn: 'CN=Alice Smith,OU=People,DC=contoso,DC=test', groups: ['cn=Sales,ou=Groups,dc=contoso,dc=test'] };
  it('the user by DN in any case or spacing, a group of it, neither, nobody', () => {
    assert.equal(sendOnBehalfDecision(['cn=alice smith, ou=people, dc=contoso, dc=test'], user).granted, true);
    assert.deepEqual(sendOnBehalfDecision(['CN=Sales,OU=Groups,DC=contoso,DC=test'], user), { granted: true, why: 'its GrantSendOnBehalfTo lists Sales, a group the user is in' });
    assert.deepEqual(sendOnBehalfDecision(['cn=Bob,ou=People,dc=contoso,dc=test'], user), { granted: false, why: 'its GrantSendOnBehalfTo (1) lists neither the user nor a group it is in' });
    assert.deepEqual(sendOnBehalfDecision([], user), { granted: false, why: 'it grants nobody Send on Behalf' });
  });
});
