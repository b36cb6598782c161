// The header's From: and Sender: of an authenticated user's message, judged as MAIL FROM is
// (Exchange 2013 and later: 550 5.7.60 at the end of DATA): local users from gateway.yaml, over
// real SMTP into a real Redis. The directory's Send As and Send on Behalf are in
// test/directory/header-senders.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { authComplete, connect, headerSenders } from '@mailgw/policy';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, baseGateway, freePort, passwordHash, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp } from './helpers/smtp-client.js';

const DENIED = '550 5.7.60 SMTP; Client does not have permissions to send as this sender';
let redis: TestRedis;
let gw: TestGateway;
let gwOff: TestGateway;
let gwAudit: TestGateway;
const port: Record<string, number> = {};

before(async () => {
  redis = await startRedis({ appendonly: false });
  for (const k of ['people', 'apps', 'internet', 'off', 'audit']) port[k] = await freePort();
  const users = [
    { name: 'alice', passwordHash: await passwordHash(), addresses: ['alice@contoso.test', 'a.smith@contoso.test'] },
    { name: 'app', passwordHash: await passwordHash(), addresses: ['app@contoso.test'] },
  ];
  const people = (p: number) => ({ name: 'People', usage: 'Custom', bindings: [`127.0.0.1:${p}`], authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['ExchangeUsers'], tarpitInterval: 0 });
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ users }),
    connectors: {
      people: people(port.people!),
      // The application account may send as any outside address (Exchange's fix for an app's 5.7.60), not as internal ones.
      apps: { ...people(port.apps!), name: 'Apps', permissions: [{ user: 'app', extendedRights: ['ms-Exch-SMTP-Accept-Any-Sender'] }] },
      internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port.internet}`], tarpitInterval: 0 },
    },
  });
  gwOff = await startGateway({ redisUrl: redis.url, gateway: await baseGateway({ users, headerSenderCheck: false }), connectors: { people: people(port.off!) } });
  gwAudit = await startGateway({ redisUrl: redis.url, gateway: await baseGateway({ users, headerSenderCheck: 'audit' }), connectors: { people: people(port.audit!) } });
});

after(async () => {
  await gw?.close();
  await gwOff?.close();
  await gwAudit?.close();
  await redis?.stop();
});

const message = (header: string, to = 'rcpt@example.net') => `${header}To: <${to}>\r\nSubject: header senders\r\nMessage-ID: <hs-${Math.random().toString(36).slice(2)}@client.test>\r\n\r\nHello.\r\n`;

/** A message from `login` (or no AUTH) with this header start; the reply to the final dot. */
async function send(o: { port: number; login?: string; mailFrom: string; header: string; to?: string }): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: o.port, localAddress: '127.0.0.1' });
  await c.ehlo();
  if (o.login) assert.equal((await c.authPlain(o.login, PASSWORD)).last, '235 2.7.0 Authentication successful');
  const to = o.to ?? 'rcpt@example.net';
  const r = await c.transaction(o.mailFrom, [to], message(o.header, to));
  await c.quit();
  assert.equal(r.mail.last, '250 2.1.0 Sender OK', `MAIL FROM:<${o.mailFrom}>`);
  return r.end?.last ?? r.data?.last ?? r.rcpt.at(-1)!.last;
}

describe('the header From and Sender of a local user', () => {
  it("the user's own addresses, in any case, quoted, and a display name that is not an address: queued", async () => {
    const before = (await gw.stored()).jobs;
    for (const header of ['From: <"alice"@contoso.test>\r\n', 'From: <alice@contoso.test>\r\n', 'From: Alice <A.Smith@Contoso.TEST>\r\n', 'From: "ceo@contoso.test" <alice@contoso.test>\r\n', 'From: <alice@contoso.test>\r\nSender: <a.smith@contoso.test>\r\n']) {
      assert.match(await send({ port: port.people!, login: 'alice', mailFrom: 'alice@contoso.test', header }), /^250 2\.6\.0 /, header);
    }
    assert.equal((await gw.stored()).jobs, before + 5);
  });

  it("a colleague's or an outside address in From, under the user's own MAIL FROM: 550 5.7.60, nothing stored, the reason logged", async () => {
    const before = await gw.stored();
    assert.equal(await send({ port: port.people!, login: 'alice', mailFrom: 'alice@contoso.test', header: 'From: Bob <bob@contoso.test>\r\n' }), DENIED);
    assert.equal(await send({ port: port.people!, login: 'alice', mailFrom: 'alice@contoso.test', header: 'From: <ceo@example.net>\r\n' }), DENIED);
    assert.deepEqual(await gw.stored(), before);
    const refused = gw.logs.filter((l) => l.msg === 'message rejected' && l.reason === 'header-sender-not-permitted');
    assert.deepEqual(
      refused.slice(-2).map((l) => [l.user, l.reply, l.why]),
      [
        ['alice', DENIED, "header From bob@contoso.test: bob@contoso.test is in an internal domain; user alice lacks ms-Exch-SMTP-Accept-Authoritative-Domain-Sender and it is not one of the user's addresses; no Sender field names the user (Send on Behalf)"],
        ['alice', DENIED, "header From ceo@example.net: ceo@example.net is outside the internal domains; user alice lacks ms-Exch-SMTP-Accept-Any-Sender and it is not one of the user's addresses; no Sender field names the user (Send on Behalf)"],
      ],
    );
  });

  it('every From field and every address in it counts; a Sender the user may not use is refused too', async () => {
    const cases = [
      'From: <alice@contoso.test>\r\nFrom: <bob@contoso.test>\r\n',
      'From: <alice@contoso.test>, <bob@contoso.test>\r\nSender: <alice@contoso.test>\r\n',
      'From: <alice@contoso.test>\r\nSender: <bob@contoso.test>\r\n',
      // A local user has no directory object to list delegates: Sender: the user's does not make bob's From its own.
      'From: <bob@contoso.test>\r\nSender: <alice@contoso.test>\r\n',
    ];
    for (const header of cases) assert.equal(await send({ port: port.people!, login: 'alice', mailFrom: 'alice@contoso.test', header }), DENIED, header);
    assert.match(String(gw.logs.filter((l) => l.reason === 'header-sender-not-permitted').at(-2)?.why), /^header Sender bob@contoso\.test: /);
  });

  it('a From with an @ but no address as written (an obsolete route, spaces around the @, an unclosed bracket, a quoted name alone): refused as unreadable; a From without an @ (cron\'s "root"): queued', async () => {
    const cases: Array<[string, RegExp]> = [
      // The route is read as SMTP reads one (RFC 5321 4.1.2): the address after it is judged.
      ['<@route.example:ceo@contoso.test>', /: ceo@contoso\.test is in an internal domain; /],
      ['ceo @ contoso.test', /^header From ceo @ contoso\.test: "ceo @ contoso\.test" is not an address mailgw can judge /],
      ['CEO <ceo@contoso.test', / is not an address mailgw can judge /],
      ['"ceo@contoso.test"', / is not an address mailgw can judge /],
    ];
    for (const [value, why] of cases) {
      assert.equal(await send({ port: port.people!, login: 'alice', mailFrom: 'alice@contoso.test', header: `From: ${value}\r\n` }), DENIED, value);
      assert.match(String(gw.logs.filter((l) => l.reason === 'header-sender-not-permitted').at(-1)?.why), why, value);
    }
    assert.match(await send({ port: port.people!, login: 'alice', mailFrom: 'alice@contoso.test', header: 'From: root\r\n' }), /^250 2\.6\.0 /);
  });

  it('by BDAT (CHUNKING) as by DATA', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.people!, localAddress: '127.0.0.1' });
    await c.ehlo();
    await c.authPlain('alice', PASSWORD);
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '250 2.1.0 Sender OK');
    assert.match((await c.cmd('RCPT TO:<rcpt@example.net>')).last, /^250 /);
    const m = Buffer.from(message('From: <bob@contoso.test>\r\n'));
    c.write(`BDAT ${m.length} LAST\r\n`);
    c.write(m);
    assert.equal((await c.read()).last, DENIED);
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '250 2.1.0 Sender OK', 'the session goes on');
    await c.quit();
  });

  it("a grant of Accept-Any-Sender covers outside addresses, not the organisation's own", async () => {
    assert.match(await send({ port: port.apps!, login: 'app', mailFrom: 'app@contoso.test', header: 'From: Newsletter <news@example.net>\r\n' }), /^250 2\.6\.0 /);
    assert.equal(await send({ port: port.apps!, login: 'app', mailFrom: 'app@contoso.test', header: 'From: <hr@contoso.test>\r\n' }), DENIED);
    assert.match(String(gw.logs.filter((l) => l.reason === 'header-sender-not-permitted').at(-1)?.why), /user app lacks ms-Exch-SMTP-Accept-Authoritative-Domain-Sender/);
  });

  it('no From and no Sender: nothing to judge, queued', async () => {
    assert.match(await send({ port: port.people!, login: 'alice', mailFrom: 'alice@contoso.test', header: '' }), /^250 2\.6\.0 /);
  });

  it("anonymous mail is not judged here (sender authentication's DMARC judges its From)", async () => {
    assert.match(await send({ port: port.internet!, mailFrom: 'someone@example.net', header: 'From: <bob@contoso.test>\r\n', to: 'alice@contoso.test' }), /^250 2\.6\.0 /);
  });

  it('headerSenderCheck: false: only MAIL FROM is checked', async () => {
    assert.match(await send({ port: port.off!, login: 'alice', mailFrom: 'alice@contoso.test', header: 'From: <bob@contoso.test>\r\n' }), /^250 2\.6\.0 /);
    assert.ok(!gwOff.logs.some((l) => l.reason === 'header-sender-not-permitted'));
  });
});

describe('headerSenderCheck: audit', () => {
  it('what would be refused is queued and logged as a warning with the reason; permitted mail logs nothing', async () => {
    const before = (await gwAudit.stored()).jobs;
    assert.match(await send({ port: port.audit!, login: 'alice', mailFrom: 'alice@contoso.test', header: 'From: <bob@contoso.test>\r\n' }), /^250 2\.6\.0 /);
    assert.match(await send({ port: port.audit!, login: 'alice', mailFrom: 'alice@contoso.test', header: 'From: <alice@contoso.test>\r\n' }), /^250 2\.6\.0 /);
    assert.equal((await gwAudit.stored()).jobs, before + 2);
    const warned = gwAudit.logs.filter((l) => l.msg === 'header sender would be refused (audit)');
    assert.equal(warned.length, 1);
    assert.equal(warned[0]!.user, 'alice');
    assert.match(String(warned[0]!.why), /^headerSenderCheck audit: would answer 550 5\.7\.60 \(header-sender-not-permitted\): header From bob@contoso\.test: bob@contoso\.test is in an internal domain; /);
  });

  it('a value other than true, false or audit: the configuration names the key and the choices', async () => {
    await assert.rejects(baseGateway({ headerSenderCheck: 'maybe' }).then((g) => startGateway({ redisUrl: redis.url, gateway: g, connectors: {} })), /headerSenderCheck.*must be true \(refuse\), audit \(log what would be refused, refuse nothing\) or false/s);
  });
});

describe('headerSenders (pure)', () => {
  it('asks nothing of the directory for a local user, and decides', () => {
    const policy = gw.policy;
    const opened = connect(policy, { localAddress: '127.0.0.1', localPort: port.people!, clientIP: '127.0.0.1' }).session!;
    const { session } = authComplete(policy, opened, 'alice', true);
    const r = headerSenders(policy, session, { from: ['not an address'], sender: null });
    assert.equal(r.kind, 'decided');
    assert.equal(r.kind === 'decided' && r.decision.reason.code, 'header-sender-not-permitted');
    assert.match(r.kind === 'decided' ? r.decision.reason.message : '', /^header From not an address: "not an address" is not an address mailgw can judge/);
  });
});
