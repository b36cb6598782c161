// Domain security (Exchange's mutual TLS: a receive connector with DomainSecureEnabled and the
// gateway's TLSReceiveDomainSecureList) over real SMTP and TLS on a real Redis: STARTTLS asks the
// client for a certificate; a trusted one naming a listed partner domain makes the session act as
// Partner Servers (the rights the connector gives the Partners group) and marks its mail; no
// certificate, an untrusted one, or one for another domain leaves the session anonymous.
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { makeTestCa, type KeyPair, type TestCa } from '../worker/helpers/test-ca.js';
import { baseGateway, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf } from './helpers/smtp-client.js';

let redis: TestRedis;
let gw: TestGateway;
let ca: TestCa;
let partner: KeyPair;
let stranger: KeyPair;
let selfSigned: KeyPair;
let port = 0;
let internetPort = 0;
let caFile = '';

before(async () => {
  redis = await startRedis();
  ca = await makeTestCa();
  [partner, stranger, selfSigned] = await Promise.all([ca.issue(['partner.test']), ca.issue(['other.test']), ca.selfSigned(['partner.test'])]);
  caFile = path.join(os.tmpdir(), `mailgw-partner-ca-${process.pid}.pem`);
  await writeFile(caFile, ca.cert);
  port = await freePort();
  internetPort = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ tlsReceiveDomainSecureList: ['Partner.Test.'], domainSecureCAFile: caFile }),
    connectors: {
      // Exchange's Partner usage: permission group Partners, Tls, domain security on.
      partner: { name: 'Partner', usage: 'Partner', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 },
      // A connector without domain security: a certificate there changes nothing.
      internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${internetPort}`], tarpitInterval: 0 },
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
  await ca?.close();
  if (caFile) await rm(caFile, { force: true });
});

async function session(cert: KeyPair | null, p = port): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: p });
  await c.ehlo('mail.partner.test');
  const r = await c.starttls(cert ? { key: cert.key, cert: cert.cert } : {});
  assert.equal(r.last, '220 2.0.0 SMTP server ready');
  await c.ehlo('mail.partner.test');
  return c;
}

const MESSAGE = 'From: <bob@partner.test>\r\nSubject: contract\r\nX-MS-Exchange-Organization-AuthAs: Internal\r\n\r\nSigned copy attached.\r\n';

describe('domain security (domainSecureEnabled, tlsReceiveDomainSecureList)', () => {
  it('a trusted client certificate for a listed domain: the session acts as Partner Servers and its mail is marked', async () => {
    const c = await session(partner);
    const t = await c.transaction('bob@partner.test', ['alice@contoso.test'], MESSAGE);
    assert.equal(t.mail.last, '250 2.1.0 Sender OK');
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    // It sends as its own domain and subdomains, not as anyone.
    assert.equal((await c.cmd('MAIL FROM:<carol@eu.partner.test>')).last, '250 2.1.0 Sender OK');
    await c.cmd('RSET');
    assert.equal((await c.cmd('MAIL FROM:<x@elsewhere.test>')).last, '550 5.7.1 Anonymous client does not have permissions to send as this sender');
    await c.quit();
    const header = (await gw.body(queueIdOf(t.end!)))!.toString('latin1').split('\r\n\r\n')[0]!;
    assert.match(header, /^X-MS-Exchange-Organization-AuthAs: Partner\r$/m);
    assert.match(header, /^X-MS-Exchange-Organization-AuthSource: mx\.contoso\.test\r$/m);
    assert.match(header, /^X-Mailgw-Domain-Secured: partner\.test\r$/m);
    assert.doesNotMatch(header, /AuthAs: Internal/, "the client's own organization header is still removed (no Accept-Headers-Organization)");
    const line = gw.logs.filter((l) => l.msg === 'domain secured').at(-1);
    assert.equal(line?.partnerDomain, 'partner.test');
    assert.match(String(line?.why), /acts as Partner Servers; rights: ms-Exch-SMTP-Submit, ms-Exch-Accept-Headers-Routing/);
  });

  const notSecured: Array<[string, () => KeyPair | null, RegExp]> = [
    ['no client certificate', () => null, /gave no certificate/],
    ['a trusted certificate for a domain not on the list', () => stranger, /names other\.test, no domain of tlsReceiveDomainSecureList/],
    ['a self-signed certificate for the listed domain', () => selfSigned, /is not trusted \(/],
  ];
  for (const [what, cert, why] of notSecured) {
    it(`${what}: the session stays anonymous (530 at MAIL on a Partners-only connector), nothing marked`, async () => {
      const before = gw.logs.length;
      const c = await session(cert());
      const t = await c.transaction('bob@partner.test', ['alice@contoso.test']);
      assert.equal(t.mail.last, '530 5.7.1 Client was not authenticated');
      await c.quit();
      const line = gw.logs.slice(before).find((l) => l.msg === 'not domain secured');
      assert.match(String(line?.why), why);
      assert.equal(gw.logs.slice(before).some((l) => l.msg === 'domain secured'), false);
    });
  }

  it('without STARTTLS nothing is asked and nothing given', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo('mail.partner.test');
    assert.equal((await c.cmd('MAIL FROM:<bob@partner.test>')).last, '530 5.7.1 Client was not authenticated');
    await c.quit();
  });

  it('a connector without domainSecureEnabled does not ask for a certificate, and a given one changes nothing', async () => {
    const c = await session(partner, internetPort);
    const t = await c.transaction('bob@partner.test', ['alice@contoso.test'], MESSAGE);
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    await c.quit();
    const header = (await gw.body(queueIdOf(t.end!)))!.toString('latin1').split('\r\n\r\n')[0]!;
    assert.doesNotMatch(header, /AuthAs|Domain-Secured/);
  });
});
