// Limits under abuse, over real TCP: command lines and headers without end, DATA over
// maxMessageSize, thousands of RCPTs, slowloris clients (one byte at a time) in every phase
// of a session, connection floods against maxInboundConnection and the per-source limit, and
// protocol garbage against maxProtocolErrors. Each limit answers with Exchange's reply,
// closes where Exchange closes, and leaves nothing in Redis.
// The listener's memory under the same abuse is measured in listener-memory.test.ts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, SmtpClosedError, queueIdOf, type ClientReply } from '../listener/helpers/smtp-client.js';
import { jobReader, type JobReader } from './helpers/jobs.js';
import { shippedConfig } from './helpers/shipped.js';

const MB = 1024 * 1024;
let redis: TestRedis;
let gw: TestGateway;
let jobs: JobReader;
const port: Record<string, number> = {};

// Short timeouts for the slowloris connector: every byte resets the 2 s inactivity timer, so
// only the 4 s connectionTimeout can end a client that trickles.
const INACTIVITY_MS = 2000;
const LIFETIME_MS = 4000;

before(async () => {
  redis = await startRedis();
  for (const k of ['default', 'client', 'small', 'slow', 'flood']) port[k] = await freePort();
  const cfg = await shippedConfig({ defaultPort: port.default!, clientPort: port.client!, relayRanges: ['127.0.0.16/28'], connectorExtra: { tarpitInterval: '20ms' } });
  const internet = (name: string, key: string, extra: Record<string, unknown>) => ({ name, usage: 'Internet', bindings: [`0.0.0.0:${port[key]}`], tarpitInterval: 0, ...extra });
  cfg.connectors['small.yaml'] = internet('Small', 'small', { maxMessageSize: '1MB', maxHeaderSize: '64KB' });
  cfg.connectors['slow.yaml'] = internet('Slow', 'slow', { maxMessageSize: '64KB', connectionInactivityTimeout: `${INACTIVITY_MS}ms`, connectionTimeout: `${LIFETIME_MS}ms` });
  cfg.connectors['flood.yaml'] = internet('Flood', 'flood', { maxInboundConnection: 30, maxInboundConnectionPerSource: 'unlimited', maxInboundConnectionPercentagePerSource: 100 });
  gw = await startGateway({ redisUrl: redis.url, gateway: cfg.gateway, connectors: cfg.connectors });
  jobs = jobReader(redis.url);
});

after(async () => {
  await jobs?.close();
  await gw?.close();
  await redis?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fails instead of hanging. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/** The next reply, or null when the server closed the connection instead. */
async function replyOrClose(c: RawSmtp): Promise<ClientReply | null> {
  try {
    return await c.read();
  } catch (e) {
    if (e instanceof SmtpClosedError) return null;
    throw e;
  }
}

const connect = (key: string, localAddress = '127.0.0.1') => RawSmtp.connect({ host: '127.0.0.1', port: port[key]!, localAddress });

async function openTransaction(c: RawSmtp): Promise<void> {
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).last, '250 2.1.0 Sender OK');
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, '250 2.1.5 Recipient OK');
  assert.equal((await c.cmd('DATA')).last, '354 Start mail input; end with <CRLF>.<CRLF>');
}

/** Writes `total` bytes of `fill` lines with backpressure. */
async function pump(c: RawSmtp, total: number, line: Buffer): Promise<void> {
  const socket = (c as unknown as { socket: net.Socket }).socket;
  const chunk = Buffer.concat(Array.from({ length: Math.ceil(64 * 1024 / line.length) }, () => line));
  for (let sent = 0; sent < total && !socket.destroyed; sent += chunk.length) {
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
  }
}

describe('command lines', () => {
  it('a command line without end is cut at 16 KB: 421 and closed', async () => {
    const c = await connect('default');
    await c.ehlo();
    c.write(`MAIL FROM:<${'a'.repeat(20 * 1024)}`);
    assert.equal((await c.read()).last, '421 4.0.0 Command line too long');
    await within(c.closed, 5000, 'close');
  });

  it('a line trickled in 1 KB pieces is cut at the same limit, not buffered on', async () => {
    const c = await connect('default');
    await c.ehlo();
    let r: ClientReply | null = null;
    const reading = replyOrClose(c).then((x) => (r = x));
    for (let i = 0; i < 64 && r === null; i++) {
      c.write('x'.repeat(1024));
      await sleep(2);
    }
    await reading;
    assert.equal(r!.last, '421 4.0.0 Command line too long');
  });

  it('address garbage counts against maxProtocolErrors (shipped 5): the sixth error gets 421 4.7.0 and the close', async () => {
    const c = await connect('default');
    await c.ehlo();
    await c.cmd('MAIL FROM:<s@example.net>');
    const got: string[] = [];
    for (const bad of ['<a@@b>', '<"x@y"@z.test>', 'nobrackets@contoso.test', '<a\u0000b@contoso.test>', '<@@@>', '<a@b@c>']) got.push((await c.cmd(`RCPT TO:${bad}`)).last);
    assert.deepEqual(got, [...Array(5).fill('501 5.1.7 Invalid address'), '421 4.7.0 Too many errors on this connection, closing transmission channel']);
    await within(c.closed, 5000, 'close');
  });
});

describe('headers and messages over the limits', () => {
  it('a header line without end (300 KB) is refused 552 5.3.4 Header size (shipped maxHeaderSize 256 KB), nothing stored', async () => {
    const before = await jobs.bodyKeys();
    const c = await connect('default');
    await openTransaction(c);
    c.write(`X-Endless: ${'a'.repeat(300 * 1024)}`);
    c.write('\r\n.\r\n');
    assert.equal((await c.read()).last, '552 5.3.4 Header size exceeds fixed maximum size');
    assert.equal((await c.cmd('NOOP')).last, '250 2.0.0 OK', 'the session goes on');
    await c.quit();
    assert.deepEqual(await jobs.bodyKeys(), before);
  });

  it('header fields without an end (2 MB of them) are refused the same way, and the rest is drained, not kept', async () => {
    const before = await jobs.bodyKeys();
    const c = await connect('default');
    await openTransaction(c);
    await pump(c, 2 * MB, Buffer.from('X-Field: some value\r\n'));
    c.write('\r\n.\r\n');
    assert.equal((await c.read()).last, '552 5.3.4 Header size exceeds fixed maximum size');
    await c.quit();
    assert.deepEqual(await jobs.bodyKeys(), before);
  });

  it('SIZE= over maxMessageSize is refused at MAIL with 552 5.3.4', async () => {
    const c = await connect('small');
    const ehlo = await c.ehlo();
    assert.ok(ehlo.lines.includes(`SIZE ${MB}`), ehlo.lines.join('|'));
    assert.equal((await c.cmd(`MAIL FROM:<s@example.net> SIZE=${MB + 1}`)).last, '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.equal((await c.cmd(`MAIL FROM:<s@example.net> SIZE=${MB}`)).last, '250 2.1.0 Sender OK');
    await c.quit();
  });

  it('an undeclared 8 MB message on a 1 MB connector: 552 5.3.4 after the data, nothing stored, the session goes on', async () => {
    const before = await jobs.bodyKeys();
    const c = await connect('small');
    await openTransaction(c);
    c.write('Subject: big\r\n\r\n');
    await pump(c, 8 * MB, Buffer.from(`${'b'.repeat(998)}\r\n`));
    c.write('.\r\n');
    assert.equal((await c.read()).last, '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.deepEqual(await jobs.bodyKeys(), before, 'the partial body was removed from Redis');
    // A normal message afterwards on the same connection is accepted.
    const t = await c.transaction('s@example.net', ['alice@contoso.test'], 'Subject: small\r\n\r\nok\r\n');
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    await c.quit();
  });
});

describe('thousands of RCPTs', () => {
  it('5,000 RCPTs in one write: 200 accepted (maxRecipientsPerMessage), 4,800 × 452 4.5.3, one message with 200 recipients', async () => {
    const c = await connect('small');
    await c.ehlo();
    await c.cmd('MAIL FROM:<s@example.net>');
    const n = 5000;
    c.write(Array.from({ length: n }, (_, i) => `RCPT TO:<user${i}@contoso.test>\r\n`).join(''));
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const r = (await c.read()).last;
      counts.set(r, (counts.get(r) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { '250 2.1.5 Recipient OK': 200, '452 4.5.3 Too many recipients': 4800 });
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('Subject: many\r\n\r\nx\r\n.\r\n');
    const end = await c.read();
    const env = (await jobs.envelopes()).find((e) => e.queueId === queueIdOf(end))!;
    assert.equal(env.rcptTo.length, 200);
    assert.deepEqual(env.rcptTo.slice(0, 2), ['user0@contoso.test', 'user1@contoso.test']);
    await c.quit();
  });

  it('5,000 refused relay RCPTs are each answered (and tarpitted), none stored, then the session still works', async () => {
    const c = await connect('small');
    await c.ehlo();
    await c.cmd('MAIL FROM:<s@example.net>');
    const n = 5000;
    c.write(Array.from({ length: n }, (_, i) => `RCPT TO:<user${i}@other.test>\r\n`).join(''));
    let refused = 0;
    for (let i = 0; i < n; i++) if ((await c.read()).last === '550 5.7.1 Unable to relay') refused++;
    assert.equal(refused, n);
    assert.equal((await c.cmd('DATA')).last, '503 5.5.2 Need rcpt command');
    await c.quit();
  });
});

describe('slowloris (one byte at a time; inactivity 2 s, connection 4 s)', { concurrency: true }, () => {
  /** Trickles `bytes` one byte every `everyMs` until the server closes; resolves with what it answered and when. */
  async function trickle(c: RawSmtp, bytes: string, everyMs: number, maxMs: number): Promise<{ replies: string[]; ms: number }> {
    const t0 = Date.now();
    const replies: string[] = [];
    let closed = false;
    void c.closed.then(() => (closed = true));
    const reader = (async () => {
      for (;;) {
        const r = await replyOrClose(c);
        if (!r) return;
        replies.push(r.last);
      }
    })();
    for (let i = 0; !closed && Date.now() - t0 < maxMs; i++) {
      c.write(bytes[i % bytes.length]!);
      await sleep(everyMs);
    }
    await within(reader, 2000, 'reader');
    return { replies, ms: Date.now() - t0 };
  }

  const LIMIT = 3 * LIFETIME_MS; // generous: the connection must be gone well before this

  it('before EHLO: cut by connectionTimeout with 421 4.4.1', async () => {
    const c = await connect('slow');
    const r = await trickle(c, 'EHLO slowly-but-surely.example.net', 500, LIMIT);
    assert.deepEqual(r.replies, ['421 4.4.1 Connection timed out, closing transmission channel']);
    assert.ok(r.ms < LIMIT, `still open after ${r.ms} ms`);
  });

  it('inside a MAIL command', async () => {
    const c = await connect('slow');
    await c.ehlo();
    const r = await trickle(c, 'MAIL FROM:<slow-sender@example.net-and-on-and-on>', 500, LIMIT);
    assert.deepEqual(r.replies, ['421 4.4.1 Connection timed out, closing transmission channel']);
    assert.ok(r.ms < LIMIT, `still open after ${r.ms} ms`);
  });

  it('inside DATA: no 250 for the partial message, connection closed, nothing stored', async () => {
    const before = await jobs.bodyKeys();
    const c = await connect('slow');
    await openTransaction(c);
    c.write('Subject: slow\r\n\r\n');
    const r = await trickle(c, 'the body arrives one byte at a time ', 500, LIMIT);
    assert.ok(r.ms < LIMIT, `still open after ${r.ms} ms (replies: ${r.replies.join(' | ')})`);
    assert.ok(!r.replies.some((x) => x.startsWith('250')), r.replies.join(' | '));
    assert.deepEqual(r.replies, ['421 4.4.1 Connection timed out, closing transmission channel']);
    await sleep(200);
    assert.deepEqual(await jobs.bodyKeys(), before);
  });

  it('inside the DATA of a message already over the size limit (drained, never answered 250)', async () => {
    const c = await connect('slow');
    await openTransaction(c);
    await pump(c, 100 * 1024, Buffer.from(`${'y'.repeat(78)}\r\n`));
    const r = await trickle(c, `${'z'.repeat(40)}\r\n`, 300, LIMIT);
    assert.ok(r.ms < LIMIT, `still open after ${r.ms} ms`);
    assert.ok(!r.replies.some((x) => x.startsWith('250')), r.replies.join(' | '));
  });

  it('inside a TLS handshake after STARTTLS', async () => {
    const c = await connect('slow');
    await c.ehlo();
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    const t0 = Date.now();
    // A TLS record header that announces a long ClientHello, then one byte at a time.
    c.write(Buffer.from([0x16, 0x03, 0x01, 0x3f, 0xff, 0x01, 0x00, 0x3f, 0xfb, 0x03, 0x03]));
    let closed = false;
    void c.closed.then(() => (closed = true));
    while (!closed && Date.now() - t0 < LIMIT) {
      c.write(Buffer.from([0x41]));
      await sleep(500);
    }
    assert.ok(closed, `still open after ${Date.now() - t0} ms`);
  });

  it('an idle client gets 451 4.7.0 after the inactivity timeout', async () => {
    const c = await connect('slow');
    await c.ehlo();
    const t0 = Date.now();
    assert.equal((await within(c.read(), LIMIT, 'timeout reply')).last, '451 4.7.0 Timeout waiting for client input');
    await within(c.closed, 5000, 'close');
    assert.ok(Date.now() - t0 >= INACTIVITY_MS - 200);
  });
});

describe('connection floods', () => {
  async function open(key: string, ip: string): Promise<{ c: RawSmtp; greeting: string }> {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port[key]!, localAddress: ip });
    return { c, greeting: c.greeting!.last };
  }
  const admitted = (g: string) => g.startsWith('220 ');

  it('per source (shipped Default: 20): the 21st connection from one address gets 421 4.3.2 and is closed; other addresses are still served', async () => {
    const conns = await Promise.all(Array.from({ length: 25 }, () => open('default', '127.0.0.80')));
    const refused = conns.filter((x) => !admitted(x.greeting));
    assert.equal(conns.filter((x) => admitted(x.greeting)).length, 20);
    assert.deepEqual([...new Set(refused.map((x) => x.greeting))], ['421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing transmission channel']);
    await Promise.all(refused.map((x) => within(x.c.closed, 5000, 'refused connection closes')));
    const other = await open('default', '127.0.0.81');
    assert.ok(admitted(other.greeting), other.greeting);
    await other.c.quit();
    // Slots come back when connections end.
    await Promise.all(conns.filter((x) => admitted(x.greeting)).slice(0, 5).map((x) => x.c.quit()));
    const again = await Promise.all(Array.from({ length: 5 }, () => open('default', '127.0.0.80')));
    assert.ok(again.every((x) => admitted(x.greeting)), again.map((x) => x.greeting).join(' | '));
    await Promise.all([...conns.filter((x) => admitted(x.greeting)).slice(5), ...again].map((x) => x.c.quit()));
  });

  it('maxInboundConnection (30): connections beyond it get 421 4.3.2 whatever their source, and the count recovers', async () => {
    const ips = ['127.0.0.90', '127.0.0.91', '127.0.0.92', '127.0.0.93'];
    const conns = await Promise.all(Array.from({ length: 40 }, (_, i) => open('flood', ips[i % ips.length]!)));
    assert.equal(conns.filter((x) => admitted(x.greeting)).length, 30);
    const refused = conns.filter((x) => !admitted(x.greeting));
    assert.deepEqual([...new Set(refused.map((x) => x.greeting))], ['421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel']);
    await Promise.all(refused.map((x) => within(x.c.closed, 5000, 'refused connection closes')));
    // Refused connections never held a slot, closed ones give theirs back.
    await Promise.all(conns.filter((x) => admitted(x.greeting)).map((x) => x.c.quit()));
    const again = await Promise.all(Array.from({ length: 30 }, (_, i) => open('flood', ips[i % ips.length]!)));
    assert.equal(again.filter((x) => admitted(x.greeting)).length, 30);
    await Promise.all(again.map((x) => x.c.quit()));
  });

  it('a flood of connections that never say anything holds no more than the limit', async () => {
    const sockets = await Promise.all(
      Array.from({ length: 40 }, () => new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: port.flood!, localAddress: '127.0.0.94' }, () => resolve(s));
        s.once('error', reject);
      })),
    );
    const firstLine = (s: net.Socket) => new Promise<string>((resolve) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('\r\n')) resolve(buf.slice(0, buf.indexOf('\r\n')));
      });
      s.on('close', () => resolve(buf));
    });
    const greetings = await Promise.all(sockets.map(firstLine));
    assert.equal(greetings.filter((g) => g.startsWith('220 ')).length, 30);
    for (const s of sockets) s.destroy();
  });
});
