// AUTH under attack, on the shipped Client connector (AUTH only after STARTTLS): brute force
// from one address meets maxLogonFailures (421 and close) on each connection and, across
// connections and across two listener instances sharing one Redis, the per-IP backoff (454
// 4.7.0 without a password check); AUTH in plaintext is refused before any password check;
// PLAIN with an authorisation identity other than the authenticated one is refused; long and
// malformed base64 gets a syntax reply, never a crash or a hang.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { authFailureKey, createRedisRateCounter, type RateCounter } from '@mailgw/listener';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, type ClientReply } from '../listener/helpers/smtp-client.js';
import { shippedConfig } from './helpers/shipped.js';

const AUTH_FAILED = '535 5.7.3 Authentication unsuccessful';
const TOO_MANY = '421 4.7.0 Too many errors on this connection, closing transmission channel';
const BACKOFF = '454 4.7.0 Temporary authentication failure';
const AUTH_OK = '235 2.7.0 Authentication successful';
const UNRECOGNIZED_AUTH = '504 5.7.4 Unrecognized authentication type';
/** gateway.yaml authBackoff.failures when not set. */
const BACKOFF_FAILURES = 10;

let redis: TestRedis;
let peek: Redis;
/** Two listener instances (as two `mailgw listen` processes would be), one Redis. */
const gws: TestGateway[] = [];
const rates: RateCounter[] = [];
const clientPorts: number[] = [];

before(async () => {
  redis = await startRedis();
  peek = new Redis(redis.url);
  for (let i = 0; i < 2; i++) {
    const clientPort = await freePort();
    const cfg = await shippedConfig({ defaultPort: await freePort(), clientPort, relayRanges: ['127.0.0.16/28'], connectorExtra: { tarpitInterval: '20ms' } });
    const rate = createRedisRateCounter({ url: redis.url, prefix: '{mailgw}' });
    rates.push(rate);
    clientPorts.push(clientPort);
    gws.push(await startGateway({ redisUrl: redis.url, gateway: cfg.gateway, connectors: cfg.connectors, rateCounter: rate }));
  }
});

after(async () => {
  for (const g of gws) await g.close();
  for (const r of rates) await r.close();
  peek?.disconnect();
  await redis?.stop();
});

/** A Client-connector session from `ip` on instance `i`, after STARTTLS and EHLO. */
async function tlsSession(i: number, ip: string): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: clientPorts[i]!, localAddress: ip });
  await c.ehlo();
  assert.equal((await c.starttls()).last, '220 2.0.0 SMTP server ready');
  const ehlo = await c.ehlo();
  assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), ehlo.lines.join('|'));
  return c;
}

const plain = (authzid: string, authcid: string, pass: string) => Buffer.from(`${authzid}\0${authcid}\0${pass}`).toString('base64');
const failureCount = (ip: string) => peek.zcard(`{mailgw}:rate:${encodeURIComponent(authFailureKey(ip))}`);

describe('brute force', () => {
  it('maxLogonFailures (shipped 3): two failures answered 535, the third 421 and the connection closed', async () => {
    const c = await tlsSession(0, '127.0.0.60');
    assert.equal((await c.authPlain('alice', 'guess-1')).last, AUTH_FAILED);
    assert.equal((await c.authPlain('alice', 'guess-2')).last, AUTH_FAILED);
    assert.equal((await c.authPlain('alice', 'guess-3')).last, TOO_MANY);
    await c.closed;
    assert.equal(await failureCount('127.0.0.60'), 3, 'the failures are counted in Redis');
  });

  it(`the per-IP backoff (${BACKOFF_FAILURES} failures) is shared by two listener instances on one Redis, and refuses even the right password with 454`, async () => {
    const ip = '127.0.0.61';
    const results: string[] = [];
    // Reconnect after every 421, alternating between the two instances, until the backoff bites.
    let instance = 0;
    let failures = 0;
    while (failures < BACKOFF_FAILURES) {
      const c = await tlsSession(instance, ip);
      for (;;) {
        const r = (await c.authPlain('alice', `guess-${failures}`)).last;
        results.push(`${instance}:${r}`);
        failures++;
        if (r !== AUTH_FAILED || failures === BACKOFF_FAILURES) break;
      }
      if (results[results.length - 1]!.endsWith(TOO_MANY)) await c.closed;
      else await c.quit();
      instance = 1 - instance;
    }
    // Every one of those was a real password check: 535, and 421 on each third.
    assert.deepEqual(
      results.map((r) => r.slice(2)),
      Array.from({ length: BACKOFF_FAILURES }, (_, i) => ((i + 1) % 3 === 0 ? TOO_MANY : AUTH_FAILED)),
    );
    assert.ok(results.some((r) => r.startsWith('0:')) && results.some((r) => r.startsWith('1:')), 'both instances saw the attack');
    assert.equal(await failureCount(ip), BACKOFF_FAILURES);

    // Now the right password is refused too, on either instance, without being checked.
    for (const i of [0, 1]) {
      const c = await tlsSession(i, ip);
      assert.equal((await c.authPlain('alice', PASSWORD)).last, BACKOFF, `instance ${i}`);
      assert.equal((await c.cmd('AUTH LOGIN')).last, '334 VXNlcm5hbWU6');
      assert.equal((await c.cmd(Buffer.from('alice').toString('base64'))).last, '334 UGFzc3dvcmQ6');
      assert.equal((await c.cmd(Buffer.from(PASSWORD).toString('base64'))).last, BACKOFF);
      // Backoff refusals still count against maxLogonFailures on the connection.
      assert.equal((await c.authPlain('alice', PASSWORD)).last, TOO_MANY);
      await c.closed;
    }
    assert.equal(await failureCount(ip), BACKOFF_FAILURES, 'refusals in backoff are not recorded (the window is not extended forever)');
    // Mail cannot be submitted by that address meanwhile.
    const c = await tlsSession(1, ip);
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '530 5.7.1 Client was not authenticated');
    await c.quit();
    // The backoff is per address: alice elsewhere is not locked out.
    const other = await tlsSession(1, '127.0.0.62');
    assert.equal((await other.authPlain('alice', PASSWORD)).last, AUTH_OK);
    await other.quit();
    assert.ok(gws[0]!.logs.some((l) => l.msg === 'authentication failed' && l.client === ip && /or more failed AUTH attempts/.test(String(l.why))));
  });
});

describe('authBackoff in gateway.yaml', () => {
  it('{ failures: 2 }: the third AUTH from the address is refused with 454, on a fresh connection', async () => {
    const clientPort = await freePort();
    const cfg = await shippedConfig({ defaultPort: await freePort(), clientPort, relayRanges: ['127.0.0.16/28'], connectorExtra: { tarpitInterval: '20ms' } });
    const rate = createRedisRateCounter({ url: redis.url, prefix: '{mailgw}' });
    const gw = await startGateway({ redisUrl: redis.url, gateway: { ...cfg.gateway, authBackoff: { failures: 2, window: '1m' } }, connectors: cfg.connectors, rateCounter: rate });
    try {
      const ip = '127.0.0.64';
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: clientPort, localAddress: ip });
      await c.ehlo();
      await c.starttls();
      await c.ehlo();
      assert.equal((await c.authPlain('alice', 'guess-1')).last, AUTH_FAILED);
      assert.equal((await c.authPlain('alice', 'guess-2')).last, AUTH_FAILED);
      await c.quit();
      const d = await RawSmtp.connect({ host: '127.0.0.1', port: clientPort, localAddress: ip });
      await d.ehlo();
      await d.starttls();
      await d.ehlo();
      assert.equal((await d.authPlain('alice', PASSWORD)).last, BACKOFF);
      await d.quit();
    } finally {
      await gw.close();
      await rate.close();
    }
  });
});

describe('AUTH in plaintext under BasicAuthRequireTLS', () => {
  it('is refused with 504 5.7.4 before any password check, even with the right password', async () => {
    const ip = '127.0.0.63';
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: clientPorts[0]!, localAddress: ip });
    const ehlo = await c.ehlo();
    assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')), 'no AUTH advertised before STARTTLS');
    assert.equal((await c.authPlain('alice', PASSWORD)).last, UNRECOGNIZED_AUTH);
    assert.equal((await c.cmd('AUTH LOGIN')).last, UNRECOGNIZED_AUTH);
    assert.equal((await c.cmd(`AUTH LOGIN ${Buffer.from('alice').toString('base64')}`)).last, UNRECOGNIZED_AUTH);
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '451 5.7.3 STARTTLS is required to send mail');
    await c.closed;
    assert.equal(await failureCount(ip), 0);
    assert.ok(!gws[0]!.logs.some((l) => l.msg === 'authentication failed' && l.client === ip), 'no password was checked');
  });
});

describe('PLAIN authorisation identity', () => {
  const cases: Array<[string, string, string, string]> = [
    ['authzid of another user', 'bob', 'alice', AUTH_FAILED],
    ['authzid of an unknown user', 'postmaster@contoso.test', 'alice', AUTH_FAILED],
    ['authzid equal to authcid', 'alice', 'alice', AUTH_OK],
    ['authzid equal to authcid but for case', 'ALICE', 'alice', AUTH_OK],
    ['no authzid', '', 'alice', AUTH_OK],
    ['authzid only (clients that put the user there)', 'alice', '', AUTH_OK],
  ];
  for (const [name, authzid, authcid, expected] of cases) {
    it(`${name}: ${expected}`, async () => {
      const c = await tlsSession(1, '127.0.0.64');
      assert.equal((await c.cmd(`AUTH PLAIN ${plain(authzid, authcid, PASSWORD)}`)).last, expected);
      if (expected === AUTH_OK) assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '250 2.1.0 Sender OK');
      await c.quit();
    });
  }
  it('a refused authorisation identity counts as a logon failure', async () => {
    const c = await tlsSession(1, '127.0.0.65');
    assert.equal((await c.cmd(`AUTH PLAIN ${plain('bob', 'alice', PASSWORD)}`)).last, AUTH_FAILED);
    assert.equal((await c.cmd(`AUTH PLAIN ${plain('bob', 'alice', PASSWORD)}`)).last, AUTH_FAILED);
    assert.equal((await c.cmd(`AUTH PLAIN ${plain('bob', 'alice', PASSWORD)}`)).last, TOO_MANY);
    await c.closed;
    assert.equal(await failureCount('127.0.0.65'), 3);
  });
});

describe('long and malformed base64', () => {
  const attempts: Array<[string, string[], string[]]> = [
    ['not base64 at all', ['AUTH PLAIN !!!*** not base64 ***'], ['501 5.5.4 Invalid arguments']],
    ['base64 without the NULs', [`AUTH PLAIN ${Buffer.from('alice correct horse').toString('base64')}`], ['501 5.5.4 Invalid arguments']],
    ['four fields', [`AUTH PLAIN ${Buffer.from(`a\0alice\0${PASSWORD}\0x`).toString('base64')}`], ['501 5.5.4 Invalid arguments']],
    ['control characters in the user name', [`AUTH PLAIN ${plain('', 'ali\u0001ce', PASSWORD)}`], ['501 5.5.4 Invalid arguments']],
    ['CRLF smuggled into the user name', [`AUTH PLAIN ${plain('', 'alice\r\nMAIL FROM:<x@y.test>', PASSWORD)}`], ['501 5.5.4 Invalid arguments']],
    ['two arguments', ['AUTH PLAIN abc def'], ['501 5.5.4 Invalid arguments']],
    ['PLAIN continuation aborted', ['AUTH PLAIN', '*'], ['334 ', '501 5.0.0 Authentication aborted']],
    // '%%%%' decodes to nothing: an empty user name ends the exchange; the next line is a command again.
    ['LOGIN with garbage', ['AUTH LOGIN', '%%%%', '%%%%'], ['334 VXNlcm5hbWU6', '501 5.5.4 Invalid arguments', '500 5.3.3 Unrecognized command']],
    ['LOGIN with a garbage password', ['AUTH LOGIN', Buffer.from('alice').toString('base64'), '%%%%'], ['334 VXNlcm5hbWU6', '334 UGFzc3dvcmQ6', AUTH_FAILED]],
    ['LOGIN user name with a NUL', ['AUTH LOGIN', Buffer.from('ali\0ce').toString('base64')], ['334 VXNlcm5hbWU6', '501 5.5.4 Invalid arguments']],
    ['an 8 KB password', [`AUTH PLAIN ${plain('', 'alice', 'p'.repeat(8 * 1024))}`], [AUTH_FAILED]],
    ['a 15 KB token of garbage', [`AUTH PLAIN ${'QUJD'.repeat(3800)}`], ['501 5.5.4 Invalid arguments']],
    ['mechanisms that are not offered', ['AUTH CRAM-MD5', 'AUTH XOAUTH2 dXNlcj1hbGljZQ==', 'AUTH NTLM', 'AUTH'], [UNRECOGNIZED_AUTH, UNRECOGNIZED_AUTH, UNRECOGNIZED_AUTH, UNRECOGNIZED_AUTH]],
  ];
  for (const [name, lines, replies] of attempts) {
    it(`${name}: ${replies[replies.length - 1]}`, async () => {
      const c = await tlsSession(0, '127.0.0.66');
      const got: ClientReply[] = [];
      for (const l of lines) got.push(await c.cmd(l));
      assert.deepEqual(got.map((r) => r.last), replies);
      // The session is still usable and still anonymous.
      assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '530 5.7.1 Client was not authenticated');
      await c.quit();
    });
  }

  it('a base64 line longer than the 16 KB command limit: 421 and the connection closed, nothing checked', async () => {
    const c = await tlsSession(0, '127.0.0.67');
    c.write(`AUTH PLAIN ${'QUJD'.repeat(5000)}\r\n`);
    assert.equal((await c.read()).last, '421 4.0.0 Command line too long');
    await c.closed;
    assert.equal(await failureCount('127.0.0.67'), 0);
  });

  it('a megabyte of base64 without a line end is cut off at the command limit', async () => {
    const c = await tlsSession(0, '127.0.0.68');
    c.write('AUTH PLAIN ');
    for (let i = 0; i < 64; i++) c.write('QUJD'.repeat(4096));
    assert.equal((await c.read()).last, '421 4.0.0 Command line too long');
    await c.closed;
  });
});
