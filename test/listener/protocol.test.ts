// The SMTP conversation itself: Exchange's replies for sequence and syntax errors, the
// protocol-error limit, requireEHLODomain, timeouts, the tarpit, the protocol log, and a
// graceful shutdown that lets a transaction in progress finish.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROTOCOL_LOG_FIELDS, connectorDirName } from '@mailgw/listener';
import { until } from '../harness/procs.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf } from './helpers/smtp-client.js';

let redis: TestRedis;
let gw: TestGateway;
const port: Record<string, number> = {};

before(async () => {
  redis = await startRedis();
  for (const k of ['main', 'strict', 'idle', 'life', 'tarpit', 'verbose', 'plain']) port[k] = await freePort();
  const c = (name: string, extra: Record<string, unknown>) => ({ name, usage: 'Internet', bindings: [`0.0.0.0:${port[extra.key as string]}`], tarpitInterval: 0, ...extra, key: undefined });
  const connectors: Record<string, Record<string, unknown>> = {
    main: c('Main', { key: 'main', maxProtocolErrors: 'unlimited' }),
    strict: c('Strict', { key: 'strict', maxProtocolErrors: 2, requireEHLODomain: true }),
    idle: c('Idle', { key: 'idle', connectionInactivityTimeout: '1s', connectionTimeout: '1m' }),
    life: c('Life', { key: 'life', connectionInactivityTimeout: '1s', connectionTimeout: '1500ms' }),
    tarpit: c('Tarpit', { key: 'tarpit', tarpitInterval: '300ms' }),
    verbose: c('Verbose Log', { key: 'verbose', protocolLoggingLevel: 'Verbose', authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['AnonymousUsers', 'ExchangeUsers'] }),
    plain: c('No ESC', { key: 'plain', enhancedStatusCodesEnabled: false }),
  };
  for (const v of Object.values(connectors)) delete v.key;
  gw = await startGateway({ redisUrl: redis.url, connectors });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

const connect = (name: string, localAddress = '127.0.0.1') => RawSmtp.connect({ host: '127.0.0.1', port: port[name]!, localAddress });

/** The gateway's end of a client's connection (the gateway runs in this process). */
function gatewaySocketOf(c: RawSmtp, gatewayPort: number): net.Socket {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  const server = handles.find((h): h is net.Socket => h instanceof net.Socket && h.localPort === gatewayPort && h.remotePort === c.localPort);
  assert.ok(server, "the gateway's socket of this connection");
  return server;
}

describe('replies in Exchange words', () => {
  it('sequence and syntax errors, RSET, NOOP, VRFY, HELP, QUIT', async () => {
    const c = await connect('main');
    assert.equal((await c.cmd('MAIL FROM:<a@example.net>')).last, '503 5.5.2 Send hello first');
    assert.equal((await c.cmd('EHLO')).last, '501 5.5.4 Invalid arguments');
    assert.equal((await c.cmd('HELO client.test')).last, '250 mx.contoso.test Hello [127.0.0.1]');
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, '503 5.5.2 Need mail command');
    assert.equal((await c.cmd('MAIL FROM:<not an address>')).last, '501 5.1.7 Invalid address');
    assert.equal((await c.cmd('MAIL FROM:<a@example.net>')).last, '250 2.1.0 Sender OK');
    assert.equal((await c.cmd('MAIL FROM:<a@example.net>')).last, '503 5.5.2 Sender already specified');
    assert.equal((await c.cmd('DATA')).last, '503 5.5.2 Need rcpt command');
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test> FOO=BAR=')).last, '555 5.5.4 Unsupported option: FOO');
    assert.equal((await c.cmd('RSET')).last, '250 2.0.0 Resetting');
    assert.equal((await c.cmd('NOOP')).last, '250 2.0.0 OK');
    assert.equal((await c.cmd('VRFY alice')).last, '252 2.1.5 Cannot VRFY user');
    assert.match((await c.cmd('HELP')).last, /^214 2\.0\.0 /);
    assert.equal((await c.cmd('XCLIENT ADDR=1.2.3.4')).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.cmd('WIZ secret')).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.cmd('QUIT')).last, '221 2.0.0 Service closing transmission channel');
    await c.closed;
  });

  it('what a reply echoes of the client stays printable US-ASCII, one line of at most 512 octets', async () => {
    const c = await connect('main');
    await c.ehlo();
    // The option keyword is echoed, cut at 64 characters (it was the whole 1,000 before).
    const option = await c.cmd(`MAIL FROM:<a@example.net> X${'Y'.repeat(999)}=1`);
    assert.equal(option.last, `555 5.5.4 Unsupported option: X${'Y'.repeat(60)}...`);
    // The Message-ID of the message is echoed in the 250: an 8-bit byte becomes "?", and a
    // 900-character one is cut so the line stays within RFC 5321's 512 octets.
    for (const [id, echoed] of [
      ['<caf\xe9@example.net>', '<caf?@example.net>'],
      [`<${'m'.repeat(900)}@example.net>`, `<${'m'.repeat(246)}...`],
    ] as const) {
      const t = await c.transaction('a@example.net', ['alice@contoso.test'], Buffer.from(`Message-ID: ${id}\r\nSubject: echo\r\n\r\nbody\r\n`, 'latin1'));
      assert.equal(t.end!.last, `250 2.6.0 ${echoed} [InternalId=${queueIdOf(t.end!)}] Queued mail for delivery`);
      assert.ok(Buffer.byteLength(`${t.end!.last}\r\n`) <= 512);
    }
    await c.quit();
  });

  it('EHLO lists the connector keywords', async () => {
    const c = await connect('main');
    const ehlo = await c.ehlo();
    assert.deepEqual(ehlo.lines, ['mx.contoso.test Hello [127.0.0.1]', `SIZE ${36 * 1024 * 1024}`, 'PIPELINING', 'DSN', 'ENHANCEDSTATUSCODES', 'STARTTLS', '8BITMIME', 'BINARYMIME', 'CHUNKING', 'SMTPUTF8']);
    await c.quit();
  });

  it('enhancedStatusCodesEnabled: false drops the enhanced codes', async () => {
    const c = await connect('plain');
    assert.ok(!(await c.ehlo()).lines.includes('ENHANCEDSTATUSCODES'));
    assert.equal((await c.cmd('MAIL FROM:<a@example.net>')).last, '250 Sender OK');
    assert.equal((await c.cmd('RCPT TO:<x@elsewhere.test>')).last, '550 Unable to relay');
    await c.quit();
  });
});

describe('limits on the conversation', () => {
  it('requireEHLODomain refuses a HELO/EHLO argument that is no domain', async () => {
    const c = await connect('strict');
    assert.equal((await c.cmd('EHLO not_a@domain')).last, '501 5.0.0 EHLO requires domain address');
    assert.equal((await c.cmd('EHLO [127.0.0.1]')).code, 250);
    await c.quit();
  });

  it('maxProtocolErrors: the error after the limit is answered 421 4.7.0 and the connection closed', async () => {
    const c = await connect('strict');
    assert.equal((await c.cmd('FOO')).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.cmd('BAR')).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.cmd('BAZ')).last, '421 4.7.0 Too many errors on this connection, closing transmission channel');
    await c.closed;
  });

  it('connectionInactivityTimeout: an idle client gets 451 4.7.0 and is disconnected', async () => {
    const c = await connect('idle');
    await c.ehlo();
    assert.equal((await c.read()).last, '451 4.7.0 Timeout waiting for client input');
    await c.closed;
  });

  it('connectionTimeout: a busy client is still disconnected when the connection is too old', async () => {
    const c = await connect('life');
    await c.ehlo();
    let last = '';
    for (let i = 0; i < 20 && !last.startsWith('421'); i++) {
      await new Promise((r) => setTimeout(r, 300));
      last = (await c.cmd('NOOP').catch(() => ({ last: 'closed' }))).last;
      if (last === 'closed') break;
    }
    assert.equal(last, '421 4.4.1 Connection timed out, closing transmission channel');
    await c.closed;
  });

  it('a pipelined group (MAIL, RCPT, RCPT, DATA in one packet) is answered in one write, in order', async () => {
    // The socket is corked for the replies of one tick: the four answers leave in one write.
    // Unpipelined, each still leaves on its own at once.
    const c = await connect('main');
    await c.ehlo();
    // What the gateway's end of this connection hands to the kernel.
    const server = gatewaySocketOf(c, port.main!);
    const writes: string[] = [];
    const io = server as unknown as { _writeGeneric(writev: boolean, data: unknown, encoding: string, cb: unknown): unknown };
    const writeGeneric = io._writeGeneric;
    io._writeGeneric = function (writev, data, encoding, cb) {
      writes.push(writev ? (data as Array<{ chunk: Buffer | string }>).map((x) => x.chunk.toString()).join('') : String(data));
      return writeGeneric.call(this, writev, data, encoding, cb);
    };
    c.write('MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@contoso.test>\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\n');
    const group = ['250 2.1.0 Sender OK', '250 2.1.5 Recipient OK', '550 5.7.1 Unable to relay', '354 Start mail input; end with <CRLF>.<CRLF>'];
    for (const want of group) assert.equal((await c.read()).last, want);
    assert.deepEqual(writes, [group.map((l) => `${l}\r\n`).join('')], 'one write for the group');
    writes.length = 0;
    c.write('Subject: one\r\n\r\nbody\r\n.\r\n');
    assert.match((await c.read()).last, /^250 2\.6\.0 /);
    assert.equal(writes.length, 1);
    // A command on its own is answered at once, in a write of its own.
    assert.equal((await c.cmd('NOOP')).last, '250 2.0.0 OK');
    assert.deepEqual(writes.slice(1), ['250 2.0.0 OK\r\n']);
    await c.quit();
  });

  it('closes its end once QUIT is answered, without waiting for the client to close its own', async () => {
    // As Postfix's smtpd. The client here keeps its side open after the 221; a client that
    // resets instead (many close without reading the 221) then meets a closed socket.
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.main!, allowHalfOpen: true });
    await c.ehlo();
    const server = gatewaySocketOf(c, port.main!);
    assert.equal((await c.cmd('QUIT')).last, '221 2.0.0 Service closing transmission channel');
    await until(() => server.destroyed, 'the gateway to close its socket while the client keeps its side open', 2000);
    c.destroy();
  });

  it('tarpitInterval delays error replies to anonymous clients, and keeps pipelined replies in order', async () => {
    const c = await connect('tarpit');
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<a@example.net>')).code, 250);
    const t0 = Date.now();
    c.write('RCPT TO:<x@elsewhere.test>\r\nNOOP\r\nRCPT TO:<alice@contoso.test>\r\n');
    assert.equal((await c.read()).last, '550 5.7.1 Unable to relay');
    const waited = Date.now() - t0;
    assert.equal((await c.read()).last, '250 2.0.0 OK');
    assert.equal((await c.read()).last, '250 2.1.5 Recipient OK');
    assert.ok(waited >= 250, `the reject came after ${waited} ms, not held for the tarpit`);
    await c.quit();
  });
});

describe('protocol log (protocolLoggingLevel: Verbose)', () => {
  it("writes Exchange's CSV fields, commands and replies, and hides credentials", async () => {
    const c = await connect('verbose', '127.0.0.70');
    await c.ehlo();
    const secret = Buffer.from(`\0alice\0${PASSWORD}`).toString('base64');
    assert.equal((await c.cmd(`AUTH PLAIN ${secret}`)).code, 235);
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).code, 250);
    await c.quit();
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
    const file = path.join(gw.dataDir, 'logs', 'protocol', connectorDirName('Verbose Log'), `RECV${day}.LOG`);
    let text = '';
    for (let i = 0; i < 100 && !/,-,/.test(text); i++) {
      await new Promise((r) => setTimeout(r, 20));
      text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    }
    assert.ok(text.includes(`#Fields: ${PROTOCOL_LOG_FIELDS}\n`), text);
    assert.ok(!text.includes(secret), 'the AUTH secret is in the protocol log');
    const rows = text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(','));
    const session = rows.filter((r) => r[5]!.startsWith('127.0.0.70:'));
    assert.deepEqual(session.map((r) => r[3]), session.map((_, i) => String(i)), 'sequence numbers');
    const events = session.map((r) => `${r[6]} ${r[7]}`);
    assert.equal(events[0], '+ ');
    assert.ok(events.includes('< EHLO client.test'), events.join('\n'));
    assert.ok(events.includes('> 250-mx.contoso.test Hello [127.0.0.70]'), events.join('\n'));
    assert.ok(events.includes('< AUTH PLAIN /* secured */'), events.join('\n'));
    assert.ok(events.includes('> 235 2.7.0 Authentication successful'), events.join('\n'));
    assert.ok(events.includes('> 250 2.1.0 Sender OK'), events.join('\n'));
    assert.equal(events[events.length - 1], '- ');
    assert.equal(session[0]![1], 'Verbose Log');
    // One session id on every row of the session, in smtp-server's shape (session-id.ts).
    assert.match(session[0]![2]!, /^[0-9a-v]{16}$/);
    assert.deepEqual(new Set(session.map((r) => r[2])), new Set([session[0]![2]]));
    assert.match(session[0]![4]!, /^127\.0\.0\.1:\d+$/);
  });
});

describe('graceful shutdown', () => {
  it('closes idle connections with 421, stops accepting, lets a message in DATA finish', async () => {
    const own = await startGateway({
      redisUrl: redis.url,
      connectors: { a: { name: 'Shutdown', usage: 'Internet', bindings: [`0.0.0.0:${await freePort().then((p) => (port.shutdown = p))}`], tarpitInterval: 0 } },
    });
    const idle = await RawSmtp.connect({ host: '127.0.0.1', port: port.shutdown! });
    await idle.ehlo();
    const busy = await RawSmtp.connect({ host: '127.0.0.1', port: port.shutdown! });
    await busy.ehlo();
    await busy.cmd('MAIL FROM:<s@example.net>');
    await busy.cmd('RCPT TO:<alice@contoso.test>');
    assert.equal((await busy.cmd('DATA')).code, 354);
    busy.write('Subject: in flight\r\n\r\nfirst half\r\n');

    const closing = own.listeners.close({ graceMs: 10_000 });
    assert.equal((await idle.read()).last, '421 4.3.2 Service not available, closing transmission channel');
    await idle.closed;
    await assert.rejects(RawSmtp.connect({ host: '127.0.0.1', port: port.shutdown! }), /ECONNREFUSED/);

    busy.write('second half\r\n.\r\n');
    const end = await busy.read();
    assert.match(end.last, /^250 2\.6\.0 /);
    assert.equal((await busy.read()).last, '421 4.3.2 Service not available, closing transmission channel');
    await busy.closed;
    await closing;
    assert.ok(await own.job(queueIdOf(end)));
    await own.close();
  });
});
