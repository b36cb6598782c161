// Relay tricks over real SMTP against the shipped connectors (test/security/helpers/shipped.ts):
// Default (anonymous, no Accept-Any-Recipient) must refuse every address that routes anywhere
// but an accepted domain, however it is written; Printers Relay (anonymous + Accept-Any-
// Recipient for its range) and Client (after STARTTLS + AUTH) relay; a relay-denied client on
// the relay range never relays. Every reply is checked word for word, and Redis is read back:
// the job of each message holds exactly the recipients that got 250, in the form the policy
// judged (normalised), and nothing else.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf, type ClientReply } from '../listener/helpers/smtp-client.js';
import { jobReader, type JobReader } from './helpers/jobs.js';
import { shippedConfig } from './helpers/shipped.js';

const RELAY_DENIED = '550 5.7.1 Unable to relay';
const INVALID = '501 5.1.7 Invalid address';
const OK = '250 2.1.5 Recipient OK';
const BLOCKED = '550 5.7.1 Recipient not authorized';
const SENDER_OK = '250 2.1.0 Sender OK';
const SEND_AS_DENIED = '550 5.7.1 Client does not have permissions to send as this sender';

let redis: TestRedis;
let gw: TestGateway;
let jobs: JobReader;
let defaultPort = 0;
let clientPort = 0;

before(async () => {
  redis = await startRedis();
  defaultPort = await freePort();
  clientPort = await freePort();
  const cfg = await shippedConfig({
    defaultPort,
    clientPort,
    relayRanges: ['127.0.0.16/28'],
    // A short tarpit keeps the suite fast but still holds every error reply (and what is
    // pipelined behind it) back, so reply order under the tarpit is exercised too. Dozens of
    // 501s in one session would hit maxProtocolErrors (tested in limits.test.ts): lifted here.
    connectorExtra: { tarpitInterval: '20ms', messageRateLimit: 'unlimited', maxProtocolErrors: 'unlimited' },
    gatewayExtra: { blockedDomains: ['blocked.test'], relayDeniedIPRanges: ['127.0.0.18'], trustedProxies: ['127.0.0.250'] },
  });
  gw = await startGateway({ redisUrl: redis.url, gateway: cfg.gateway, connectors: cfg.connectors });
  jobs = jobReader(redis.url);
});

after(async () => {
  await jobs?.close();
  await gw?.close();
  await redis?.stop();
});

type Kind = 'relay' | 'local' | 'invalid' | 'blocked';
interface Trick {
  readonly name: string;
  /** What follows "RCPT TO:", brackets included. */
  readonly path: string;
  readonly kind: Kind;
  /** The address the policy judged and the job must hold, when accepted. */
  readonly stored?: string;
}

const long64 = 'x'.repeat(64);
const label60 = 'l'.repeat(60);

const TRICKS: readonly Trick[] = [
  // percent hack
  { name: 'percent hack', path: '<user%other.test@contoso.test>', kind: 'relay', stored: 'user%other.test@contoso.test' },
  { name: 'percent hack to our IP literal', path: '<user%other.test@[127.0.0.1]>', kind: 'relay', stored: 'user%other.test@[127.0.0.1]' },
  { name: 'percent hack, chained back to us', path: '<user%other.test%contoso.test@contoso.test>', kind: 'relay', stored: 'user%other.test%contoso.test@contoso.test' },
  { name: 'percent hack, hop in mixed case with a trailing dot', path: '<user%Other.Test.@contoso.test>', kind: 'relay', stored: '"user%Other.Test."@contoso.test' },
  { name: 'percent hack, hop that only maps to ours under IDNA (long s)', path: '<user%contoso.te\u017ft@contoso.test>', kind: 'relay', stored: 'user%contoso.te\u017ft@contoso.test' },
  { name: 'percent hack, hop in fullwidth letters', path: '<user%\uff43\uff4f\uff4e\uff54\uff4f\uff53\uff4f.test@contoso.test>', kind: 'relay', stored: 'user%\uff43\uff4f\uff4e\uff54\uff4f\uff53\uff4f.test@contoso.test' },
  { name: 'percent hack to ourselves only', path: '<alice%contoso.test@contoso.test>', kind: 'local', stored: 'alice%contoso.test@contoso.test' },
  { name: 'percent hack to an InternalRelay domain', path: '<alice%fabrikam.test@contoso.test>', kind: 'local', stored: 'alice%fabrikam.test@contoso.test' },
  { name: 'percent hack without a domain', path: '<user%other.test>', kind: 'invalid' },
  // bang paths
  { name: 'bang path', path: '<other.test!user@contoso.test>', kind: 'relay', stored: 'other.test!user@contoso.test' },
  { name: 'bang path, chained', path: '<contoso.test!other.test!user@contoso.test>', kind: 'relay', stored: 'contoso.test!other.test!user@contoso.test' },
  { name: 'bang path to an IP literal', path: '<[192.0.2.1]!user@contoso.test>', kind: 'relay', stored: '"[192.0.2.1]!user"@contoso.test' },
  { name: 'bang path without a domain', path: '<other.test!user>', kind: 'invalid' },
  { name: 'bang in the domain', path: '<user@other.test!contoso.test>', kind: 'invalid' },
  // source routes (RFC 5321: accepted and ignored; what is left is judged)
  { name: 'source route to a foreign domain', path: '<@mx.contoso.test:user@other.test>', kind: 'relay', stored: 'user@other.test' },
  { name: 'source route with several hops', path: '<@mx.contoso.test,@relay.contoso.test:user@other.test>', kind: 'relay', stored: 'user@other.test' },
  { name: 'source route through a foreign host to a local mailbox', path: '<@other.test:alice@contoso.test>', kind: 'local', stored: 'alice@contoso.test' },
  // quoted local parts
  { name: 'quoted local part holding %', path: '<"user%other.test"@contoso.test>', kind: 'relay', stored: 'user%other.test@contoso.test' },
  { name: 'quoted local part holding !', path: '<"other.test!user"@contoso.test>', kind: 'relay', stored: 'other.test!user@contoso.test' },
  { name: 'quoted local part holding @', path: '<"user@other.test"@contoso.test>', kind: 'invalid' },
  { name: 'quoted address without a domain', path: '<"user@other.test">', kind: 'invalid' },
  { name: 'quoted local part with an escaped quote and @', path: '<"user\\"@other.test"@contoso.test>', kind: 'invalid' },
  { name: 'quoted plain local part', path: '<"alice"@contoso.test>', kind: 'local', stored: 'alice@contoso.test' },
  // A space inside the quotes is part of the mailbox name (RFC 5321 Quoted-string).
  { name: 'quoted local part with a space', path: '<"john doe"@contoso.test>', kind: 'local', stored: '"john doe"@contoso.test' },
  { name: 'quoted local part with a space and a percent hop', path: '<"user%other.test x"@contoso.test>', kind: 'relay', stored: '"user%other.test x"@contoso.test' },
  // double @
  { name: 'double @', path: '<user@other.test@contoso.test>', kind: 'invalid' },
  { name: '@@', path: '<user@@contoso.test>', kind: 'invalid' },
  // IP literals
  { name: 'IPv4 literal', path: '<alice@[127.0.0.1]>', kind: 'relay', stored: 'alice@[127.0.0.1]' },
  { name: 'IPv6 literal', path: '<alice@[IPv6:::1]>', kind: 'relay', stored: 'alice@[ipv6:::1]' },
  { name: 'IPv4-mapped IPv6 literal', path: '<alice@[IPv6:::ffff:127.0.0.1]>', kind: 'relay', stored: 'alice@[127.0.0.1]' },
  { name: 'malformed IPv4 literal', path: '<alice@[127.0.0.999]>', kind: 'invalid' },
  { name: 'IPv4 address in an IPv6 literal', path: '<alice@[IPv6:127.0.0.1]>', kind: 'invalid' },
  { name: 'a name in brackets', path: '<alice@[contoso.test]>', kind: 'invalid' },
  // trailing dots, case, look-alikes
  { name: 'plain foreign domain', path: '<user@other.test>', kind: 'relay', stored: 'user@other.test' },
  { name: 'foreign domain with a trailing dot', path: '<user@other.test.>', kind: 'relay', stored: 'user@other.test' },
  { name: 'foreign domain in mixed case', path: '<User@OTHER.Test>', kind: 'relay', stored: 'User@other.test' },
  { name: 'our domain as a prefix of a foreign one', path: '<alice@contoso.test.other.test>', kind: 'relay', stored: 'alice@contoso.test.other.test' },
  { name: 'our domain as a suffix of a foreign label', path: '<alice@evilcontoso.test>', kind: 'relay', stored: 'alice@evilcontoso.test' },
  { name: 'single-label domain', path: '<alice@contoso>', kind: 'relay', stored: 'alice@contoso' },
  { name: 'local domain with a trailing dot', path: '<alice@contoso.test.>', kind: 'local', stored: 'alice@contoso.test' },
  { name: 'local domain in mixed case', path: '<Alice@CoNtOsO.TeSt>', kind: 'local', stored: 'Alice@contoso.test' },
  { name: 'local subdomain (wildcard accepted domain), mixed case, trailing dot', path: '<bob@Sales.Contoso.Test.>', kind: 'local', stored: 'bob@sales.contoso.test' },
  { name: 'two trailing dots', path: '<alice@contoso.test..>', kind: 'invalid' },
  { name: 'leading dot', path: '<alice@.contoso.test>', kind: 'invalid' },
  { name: 'IDN look-alike (Cyrillic o)', path: '<alice@c\u043entoso.test>', kind: 'relay', stored: 'alice@xn--cntoso-wqf.test' },
  { name: 'punycode look-alike', path: '<alice@xn--cntoso-wqf.test>', kind: 'relay', stored: 'alice@xn--cntoso-wqf.test' },
  { name: 'fullwidth letters that IDNA maps onto our domain', path: '<alice@\uff43\uff4f\uff4e\uff54\uff4f\uff53\uff4f.test>', kind: 'local', stored: 'alice@contoso.test' },
  { name: 'fullwidth @ inside the local part (no hop: one mailbox)', path: '<user\uff20other.test@contoso.test>', kind: 'local', stored: 'user\uff20other.test@contoso.test' },
  { name: '% in the domain', path: '<alice@contoso.test%other.test>', kind: 'invalid' },
  // blocked domains win everywhere, hidden or not
  { name: 'blocked domain', path: '<user@blocked.test>', kind: 'blocked' },
  { name: 'blocked domain behind a percent hack', path: '<user%blocked.test@contoso.test>', kind: 'blocked' },
  // length
  { name: '64-character local part', path: `<${long64}@contoso.test>`, kind: 'local', stored: `${long64}@contoso.test` },
  // RFC 5321 4.5.3.1 asks for no limit where one can be avoided (VERP/SRS run past 64, Postfix
  // takes them): local parts up to 512 octets, paths up to 1000 (MAX_LOCAL_PART_OCTETS/MAX_PATH_OCTETS).
  { name: '65-character local part', path: `<${long64}x@contoso.test>`, kind: 'local', stored: `${long64}x@contoso.test` },
  { name: 'path over 256 characters (parts within their limits)', path: `<${'a'.repeat(20)}@${[label60, label60, label60, label60, 'test'].join('.')}>`, kind: 'relay', stored: `${'a'.repeat(20)}@${[label60, label60, label60, label60, 'test'].join('.')}` },
  { name: '513-octet local part', path: `<${'x'.repeat(513)}@contoso.test>`, kind: 'invalid' },
  { name: 'path over 1000 octets', path: `<${'x'.repeat(500)}.${'y'.repeat(500)}@contoso.test>`, kind: 'invalid' },
  { name: 'domain over 253 characters', path: `<a@${[label60, label60, label60, label60, label60].join('.')}>`, kind: 'invalid' },
  { name: '1000-character percent-hack chain', path: `<u${'%other.test'.repeat(90)}@contoso.test>`, kind: 'invalid' },
  // NUL and control characters
  { name: 'NUL in the local part', path: '<ali\u0000ce@contoso.test>', kind: 'invalid' },
  { name: 'NUL in the domain', path: '<alice@contoso.test\u0000.other.test>', kind: 'invalid' },
  { name: 'bare CR in the address', path: '<alice\r@contoso.test>', kind: 'invalid' },
  { name: 'TAB in the address', path: '<ali\tce@contoso.test>', kind: 'invalid' },
  { name: 'ESC in the address', path: '<ali\u001bce@contoso.test>', kind: 'invalid' },
  { name: 'DEL in the address', path: '<ali\u007fce@contoso.test>', kind: 'invalid' },
  { name: 'C1 control (NEL) in the address', path: '<alice@contoso.test\u0085>', kind: 'invalid' },
  { name: 'zero-width space in the domain', path: '<alice@contoso.test\u200b>', kind: 'invalid' },
  // shapes
  { name: 'null recipient', path: '<>', kind: 'invalid' },
  { name: 'no angle brackets', path: 'alice@contoso.test', kind: 'invalid' },
  { name: 'nested angle brackets', path: '<<user@other.test>>', kind: 'invalid' },
];

/** Reply a trick gets from a client that may not relay / may relay. */
function expected(t: Trick, mayRelay: boolean): string {
  if (t.kind === 'invalid') return INVALID;
  if (t.kind === 'blocked') return BLOCKED;
  if (t.kind === 'local') return OK;
  return mayRelay ? OK : RELAY_DENIED;
}

/** Writes one command as UTF-8 (the raw client writes latin1) and reads its reply. */
async function cmd(c: RawSmtp, line: string): Promise<ClientReply> {
  c.write(Buffer.from(`${line}\r\n`, 'utf8'));
  return c.read();
}

async function greeted(p: Promise<RawSmtp>): Promise<RawSmtp> {
  const c = await p;
  assert.equal((await c.ehlo()).code, 250);
  return c;
}

interface Context {
  readonly name: string;
  readonly mayRelay: boolean;
  readonly sender: string;
  open(): Promise<RawSmtp>;
}

const CONTEXTS: readonly Context[] = [
  {
    name: 'Default, anonymous client 127.0.0.1',
    mayRelay: false,
    sender: 'someone@example.net',
    open: () => greeted(RawSmtp.connect({ host: '127.0.0.1', port: defaultPort, localAddress: '127.0.0.1' })),
  },
  {
    name: 'Default, anonymous client ::1 (IPv6 binding)',
    mayRelay: false,
    sender: 'someone@example.net',
    open: () => greeted(RawSmtp.connect({ host: '::1', port: defaultPort })),
  },
  {
    name: 'Printers Relay, device 127.0.0.17',
    mayRelay: true,
    sender: 'scanner@contoso.test',
    open: () => greeted(RawSmtp.connect({ host: '127.0.0.1', port: defaultPort, localAddress: '127.0.0.17' })),
  },
  {
    name: 'Printers Relay, device 127.0.0.19 behind a trusted proxy (PROXY v1)',
    mayRelay: true,
    sender: 'scanner@contoso.test',
    open: () => greeted(RawSmtp.connect({ host: '127.0.0.1', port: defaultPort, localAddress: '127.0.0.250', proxy: `PROXY TCP4 127.0.0.19 127.0.0.1 40000 ${defaultPort}` })),
  },
  {
    name: 'Default, an outside client 198.51.100.7 behind the trusted proxy',
    mayRelay: false,
    sender: 'someone@example.net',
    open: () => greeted(RawSmtp.connect({ host: '127.0.0.1', port: defaultPort, localAddress: '127.0.0.250', proxy: `PROXY TCP4 198.51.100.7 127.0.0.1 40000 ${defaultPort}` })),
  },
  {
    name: 'Printers Relay range, but 127.0.0.18 is in relayDeniedIPRanges',
    mayRelay: false,
    sender: 'scanner@contoso.test',
    open: () => greeted(RawSmtp.connect({ host: '127.0.0.1', port: defaultPort, localAddress: '127.0.0.18' })),
  },
  {
    name: 'Client, alice after STARTTLS and AUTH',
    mayRelay: true,
    sender: 'alice@contoso.test',
    async open() {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: clientPort, localAddress: '127.0.0.40' });
      await c.ehlo();
      assert.equal((await c.starttls()).last, '220 2.0.0 SMTP server ready');
      await c.ehlo();
      assert.equal((await c.authPlain('alice', PASSWORD)).last, '235 2.7.0 Authentication successful');
      return c;
    },
  },
];

// From: alice's own address: the Client context's alice may use no other (headerSenderCheck); anonymous contexts are not judged by it.
const MESSAGE = 'From: <alice@contoso.test>\r\nSubject: relay trick\r\n\r\nbody\r\n';

/** DATA for the recipients accepted so far; returns the queue id. */
async function finish(c: RawSmtp): Promise<string> {
  assert.equal((await c.cmd('DATA')).last, '354 Start mail input; end with <CRLF>.<CRLF>');
  c.write(`${MESSAGE}.\r\n`);
  const end = await c.read();
  assert.match(end.last, /^250 2\.6\.0 <[^>]+> \[InternalId=[0-9A-Z]+\] Queued mail for delivery$/);
  return queueIdOf(end);
}

/** The job of `queueId` must hold exactly `expected` recipients (compared case-insensitively, as the listener de-duplicates). */
async function assertStored(queueId: string, sender: string, expectedRcpts: readonly string[]): Promise<void> {
  const env = (await jobs.envelopes()).find((e) => e.queueId === queueId);
  assert.ok(env, `no job ${queueId} in Redis`);
  assert.equal(env.mailFrom, sender);
  const norm = (a: readonly string[]) => [...new Set(a.map((x) => x.toLowerCase()))].sort();
  assert.deepEqual(norm(env.rcptTo), norm(expectedRcpts), 'stored recipients must be exactly the accepted ones');
}

const accepted = (mayRelay: boolean) => TRICKS.filter((t) => expected(t, mayRelay) === OK).map((t) => t.stored!);

describe('relay tricks, one RCPT at a time', { concurrency: true }, () => {
  for (const ctx of CONTEXTS) {
    it(`${ctx.name}: ${ctx.mayRelay ? 'relays' : 'refuses'} every trick as expected, and Redis holds only the accepted recipients`, async () => {
      const c = await ctx.open();
      assert.equal((await c.cmd(`MAIL FROM:<${ctx.sender}> SMTPUTF8`)).last, SENDER_OK);
      const got: string[] = [];
      for (const t of TRICKS) got.push(`${t.name}: ${(await cmd(c, `RCPT TO:${t.path}`)).last}`);
      assert.deepEqual(got, TRICKS.map((t) => `${t.name}: ${expected(t, ctx.mayRelay)}`));
      // A real local recipient, so there is always something to send.
      assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, OK);
      const id = await finish(c);
      await assertStored(id, ctx.sender, [...accepted(ctx.mayRelay), 'alice@contoso.test']);
      assert.ok(await gw.body(id), 'the body of the message is stored');
      await c.quit();
    });
  }
});

describe('relay tricks after RSET', { concurrency: true }, () => {
  for (const ctx of CONTEXTS) {
    it(`${ctx.name}: RSET forgets the transaction, each trick judged afresh, nothing of the reset transaction stored`, async () => {
      const c = await ctx.open();
      const got: string[] = [];
      const want: string[] = [];
      for (const t of TRICKS) {
        // A transaction with a good local recipient, reset, then the trick in a new one.
        assert.equal((await c.cmd(`MAIL FROM:<${ctx.sender}> SMTPUTF8`)).last, SENDER_OK);
        assert.equal((await c.cmd('RCPT TO:<reset-me@contoso.test>')).last, OK);
        assert.equal((await c.cmd('RSET')).last, '250 2.0.0 Resetting');
        assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, '503 5.5.2 Need mail command');
        assert.equal((await c.cmd(`MAIL FROM:<${ctx.sender}> SMTPUTF8`)).last, SENDER_OK);
        got.push(`${t.name}: ${(await cmd(c, `RCPT TO:${t.path}`)).last}`);
        want.push(`${t.name}: ${expected(t, ctx.mayRelay)}`);
        assert.equal((await c.cmd('RSET')).last, '250 2.0.0 Resetting');
      }
      assert.deepEqual(got, want);
      // Last round: the accepted tricks again, then DATA; the reset recipients must not be in it.
      assert.equal((await c.cmd(`MAIL FROM:<${ctx.sender}> SMTPUTF8`)).last, SENDER_OK);
      assert.equal((await c.cmd('RCPT TO:<reset-me@contoso.test>')).last, OK);
      assert.equal((await c.cmd('RSET')).last, '250 2.0.0 Resetting');
      assert.equal((await c.cmd(`MAIL FROM:<${ctx.sender}> SMTPUTF8`)).last, SENDER_OK);
      for (const t of TRICKS) await cmd(c, `RCPT TO:${t.path}`);
      assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, OK);
      const id = await finish(c);
      await assertStored(id, ctx.sender, [...accepted(ctx.mayRelay), 'alice@contoso.test']);
      await c.quit();
    });
  }
});

describe('relay tricks pipelined in one write', { concurrency: true }, () => {
  for (const ctx of CONTEXTS) {
    it(`${ctx.name}: every reply in order and exact, whatever the tarpit holds back`, async () => {
      const c = await ctx.open();
      const lines = ['RSET', `MAIL FROM:<${ctx.sender}> SMTPUTF8`, 'RCPT TO:<reset-me@contoso.test>', 'RSET', `MAIL FROM:<${ctx.sender}> SMTPUTF8`, ...TRICKS.map((t) => `RCPT TO:${t.path}`), 'RCPT TO:<alice@contoso.test>', 'NOOP'];
      c.write(Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'utf8'));
      const got: string[] = [];
      for (let i = 0; i < lines.length; i++) got.push((await c.read()).last);
      assert.deepEqual(got, [
        '250 2.0.0 Resetting',
        SENDER_OK,
        OK,
        '250 2.0.0 Resetting',
        SENDER_OK,
        ...TRICKS.map((t) => expected(t, ctx.mayRelay)),
        OK,
        '250 2.0.0 OK',
      ]);
      const id = await finish(c);
      await assertStored(id, ctx.sender, [...accepted(ctx.mayRelay), 'alice@contoso.test']);
      await c.quit();
    });
  }
});

describe('relay tricks that split a command', () => {
  it('a bare LF inside an address ends the command there: two refusals, nothing stored', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: defaultPort });
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).last, SENDER_OK);
    c.write('RCPT TO:<user\n@other.test>\r\n');
    assert.equal((await c.read()).last, INVALID);
    assert.equal((await c.read()).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.cmd('DATA')).last, '503 5.5.2 Need rcpt command');
    await c.quit();
  });

  it('a second address on the RCPT line is no recipient', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: defaultPort });
    await c.ehlo();
    await c.cmd('MAIL FROM:<s@example.net>');
    // What follows the path is parameters (RFC 5321 4.1.2): a second path is no esmtp-keyword, 501.
    assert.equal((await c.cmd('RCPT TO:<user@other.test> <alice@contoso.test>')).last, '501 5.5.4 Invalid arguments');
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>,<user@other.test>')).last, INVALID);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test> <user@other.test>')).last, '501 5.5.4 Invalid arguments');
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, OK);
    const id = await finish(c);
    await assertStored(id, 's@example.net', ['alice@contoso.test']);
    await c.quit();
  });
});

describe('claiming rights one does not have', () => {
  it('a PROXY header from a client that is no trusted proxy is a command like any other: 500, and the session stays Default', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: defaultPort, localAddress: '127.0.0.1' });
    assert.match(c.greeting!.last, /^220 mail\.contoso\.test /);
    assert.equal((await c.cmd(`PROXY TCP4 127.0.0.17 127.0.0.1 40000 ${defaultPort}`)).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.ehlo()).lines[0], 'mail.contoso.test Hello [127.0.0.1]');
    await c.cmd('MAIL FROM:<s@example.net>');
    assert.equal((await c.cmd('RCPT TO:<user@other.test>')).last, RELAY_DENIED);
    await c.quit();
  });

  it('XCLIENT, XFORWARD and an AUTH= parameter on MAIL give an anonymous client nothing (AUTH= unadvertised: 555)', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: defaultPort });
    await c.ehlo();
    assert.equal((await c.cmd('XCLIENT ADDR=127.0.0.17')).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.cmd('XFORWARD ADDR=127.0.0.17')).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.authPlain('alice', PASSWORD)).last, '504 5.7.4 Unrecognized authentication type');
    assert.equal((await c.cmd('MAIL FROM:<s@example.net> AUTH=<alice@contoso.test>')).last, '555 5.5.4 Unsupported option: AUTH');
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).last, SENDER_OK);
    assert.equal((await c.cmd('RCPT TO:<user@other.test>')).last, RELAY_DENIED);
    assert.equal((await c.cmd('RCPT TO:<user%other.test@contoso.test>')).last, RELAY_DENIED);
    await c.quit();
  });

  it('HELO/EHLO naming the gateway itself, its address or localhost changes nothing', async () => {
    for (const name of ['mail.contoso.test', '[127.0.0.1]', 'localhost', 'contoso.test']) {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: defaultPort });
      assert.equal((await c.cmd(`EHLO ${name}`)).code, 250);
      await c.cmd('MAIL FROM:<s@example.net>');
      assert.equal((await c.cmd('RCPT TO:<user@other.test>')).last, RELAY_DENIED, name);
      await c.quit();
    }
  });
});

describe('sender tricks', () => {
  const anonymousSenders: Array<[string, string]> = [
    ['<>', SENDER_OK],
    ['<user@[127.0.0.1]>', SENDER_OK],
    ['<user@[IPv6:::1]>', SENDER_OK],
    ['<user%other.test@contoso.test>', SENDER_OK],
    ['<alice@c\u043entoso.test>', SENDER_OK],
    ['<"user@other.test"@contoso.test>', INVALID],
    ['<a\u0000b@example.net>', INVALID],
    [`<${long64}x@example.net>`, SENDER_OK],
    [`<${'x'.repeat(513)}@example.net>`, INVALID],
    ['<@other.test:user@example.net>', SENDER_OK],
  ];

  it('Default: anonymous senders are judged as Exchange does (any sender, authoritative-domain senders allowed), the rest 501', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: defaultPort });
    await c.ehlo();
    for (const [sender, reply] of anonymousSenders) {
      assert.equal((await cmd(c, `MAIL FROM:${sender} SMTPUTF8`)).last, reply, sender);
      await c.cmd('RSET');
    }
    // The null sender carries no relay right: its message goes to local recipients only.
    assert.equal((await c.cmd('MAIL FROM:<>')).last, SENDER_OK);
    assert.equal((await c.cmd('RCPT TO:<user@other.test>')).last, RELAY_DENIED);
    assert.equal((await c.cmd('RCPT TO:<user%other.test@contoso.test>')).last, RELAY_DENIED);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, OK);
    const id = await finish(c);
    await assertStored(id, '', ['alice@contoso.test']);
    await c.quit();
  });

  it('Client: alice may send as her own address however it is written, and as nothing else', async () => {
    const c = await CONTEXTS.find((x) => x.name.startsWith('Client'))!.open();
    const cases: Array<[string, string]> = [
      ['<alice@contoso.test>', SENDER_OK],
      ['<ALICE@Contoso.Test.>', SENDER_OK],
      ['<"alice"@contoso.test>', SENDER_OK],
      ['<alice@\uff43\uff4f\uff4e\uff54\uff4f\uff53\uff4f.test>', SENDER_OK],
      ['<>', SENDER_OK],
      ['<alice@[127.0.0.1]>', SEND_AS_DENIED],
      ['<alice%contoso.test@contoso.test>', SEND_AS_DENIED],
      ['<alice@c\u043entoso.test>', SEND_AS_DENIED],
      ['<alice@contoso.test.other.test>', SEND_AS_DENIED],
      ['<bob@contoso.test>', SEND_AS_DENIED],
      ['<"alice@contoso.test"@other.test>', INVALID],
      ['<alice\u0000@contoso.test>', INVALID],
    ];
    for (const [sender, reply] of cases) {
      assert.equal((await cmd(c, `MAIL FROM:${sender} SMTPUTF8`)).last, reply, sender);
      await c.cmd('RSET');
    }
    assert.equal((await c.cmd('MAIL FROM:<ALICE@Contoso.Test.>')).last, SENDER_OK);
    assert.equal((await c.cmd('RCPT TO:<friend@example.org>')).last, OK);
    const id = await finish(c);
    await assertStored(id, 'ALICE@contoso.test', ['friend@example.org']);
    await c.quit();
  });

  it('Client without AUTH: no MAIL at all (before STARTTLS 451 and close; after it 530), nothing stored', async () => {
    const before = await jobs.envelopes();
    const plain = await RawSmtp.connect({ host: '127.0.0.1', port: clientPort, localAddress: '127.0.0.41' });
    await plain.ehlo();
    assert.equal((await plain.cmd('MAIL FROM:<>')).last, '451 5.7.3 STARTTLS is required to send mail');
    await plain.closed;
    const tls = await RawSmtp.connect({ host: '127.0.0.1', port: clientPort, localAddress: '127.0.0.41' });
    await tls.ehlo();
    await tls.starttls();
    await tls.ehlo();
    for (const sender of ['<>', '<alice@contoso.test>', '<user%other.test@contoso.test>']) {
      assert.equal((await tls.cmd(`MAIL FROM:${sender}`)).last, '530 5.7.1 Client was not authenticated');
    }
    assert.equal((await tls.cmd('RCPT TO:<user@other.test>')).last, '503 5.5.2 Need mail command');
    await tls.quit();
    assert.equal((await jobs.envelopes()).length, before.length);
  });
});

describe('what Redis holds in the end', () => {
  it('one body per job, no body without a job (nothing left of refused or reset transactions)', async () => {
    const envs = await jobs.envelopes();
    const bodies = (await jobs.bodyKeys()).map((k) => k.slice(k.lastIndexOf(':') + 1)).sort();
    assert.deepEqual(bodies, envs.map((e) => e.queueId).sort());
    assert.equal(envs.length, 3 * CONTEXTS.length + 3, 'one message per context and pass, plus the three single ones');
  });
});
