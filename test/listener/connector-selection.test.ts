// Which connector serves a connection, over real TCP from several loopback client addresses:
// shared bindings, side-by-side listeners, IPv6, refusals, PROXY v1 and v2, connection limits and the
// greeting delay that replaces smtp-server's fixed 100 ms early-talker wait.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { clientErrorReason } from '@mailgw/listener';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, SmtpClosedError } from './helpers/smtp-client.js';
import { encodeProxyV2 } from './helpers/proxy-v2.js';
import { eventually } from '../worker/helpers/gateway.js';

let redis: TestRedis;
let gw: TestGateway;
const port: Record<string, number> = {};

before(async () => {
  redis = await startRedis();
  for (const k of ['shared', 'side', 'narrow', 'limited', 'slow']) port[k] = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ blockedIPRanges: ['127.0.0.66'], trustedProxies: ['127.0.0.250'] }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', bindings: [`0.0.0.0:${port.shared}`, `[::]:${port.shared}`], tarpitInterval: 0 },
      devices: {
        name: 'Devices',
        usage: 'Custom',
        fqdn: 'devices.contoso.test',
        banner: '220 devices.contoso.test Devices relay ready',
        bindings: [`0.0.0.0:${port.shared}`],
        remoteIPRanges: ['127.0.0.2'],
        permissionGroups: ['AnonymousUsers'],
        permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] }],
        tarpitInterval: 0,
      },
      side: { name: 'Side', usage: 'Internet', fqdn: 'side.contoso.test', bindings: [`127.0.0.1:${port.side}`], tarpitInterval: 0 },
      narrow: { name: 'Narrow', usage: 'Internet', bindings: [`0.0.0.0:${port.narrow}`], remoteIPRanges: ['127.0.0.5'], tarpitInterval: 0 },
      limited: { name: 'Limited', usage: 'Internet', bindings: [`0.0.0.0:${port.limited}`], maxInboundConnection: 2, maxInboundConnectionPerSource: 1, tarpitInterval: 0 },
      slow: { name: 'Slow', usage: 'Internet', bindings: [`0.0.0.0:${port.slow}`], greetingDelay: '300ms', tarpitInterval: 0 },
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

const shared = (localAddress: string, extra: Partial<Parameters<typeof RawSmtp.connect>[0]> = {}) =>
  RawSmtp.connect({ host: '127.0.0.1', port: port.shared!, localAddress, ...extra });

describe('connector selection', () => {
  it('a shared binding serves each client address by its own connector', async () => {
    const device = await shared('127.0.0.2');
    assert.equal(device.greeting?.last, '220 devices.contoso.test Devices relay ready');
    assert.equal((await device.ehlo()).lines[0], 'devices.contoso.test Hello [127.0.0.2]');
    assert.equal((await device.cmd('MAIL FROM:<scanner@contoso.test>')).last, '250 2.1.0 Sender OK');
    assert.equal((await device.cmd('RCPT TO:<partner@example.org>')).last, '250 2.1.5 Recipient OK');
    await device.quit();

    const other = await shared('127.0.0.3');
    assert.match(other.greeting!.last, /^220 mx\.contoso\.test mailgw ESMTP service ready at \w{3}, \d+ \w{3} \d{4} /);
    assert.equal((await other.ehlo()).lines[0], 'mx.contoso.test Hello [127.0.0.3]');
    assert.equal((await other.cmd('MAIL FROM:<someone@example.net>')).last, '250 2.1.0 Sender OK');
    assert.equal((await other.cmd('RCPT TO:<partner@example.org>')).last, '550 5.7.1 Unable to relay');
    assert.equal((await other.cmd('RCPT TO:<alice@contoso.test>')).last, '250 2.1.5 Recipient OK');
    await other.quit();
  });

  it('serves IPv6 clients on the [::] binding', async () => {
    const c = await RawSmtp.connect({ host: '::1', port: port.shared! });
    assert.match(c.greeting!.last, /^220 mx\.contoso\.test /);
    const ehlo = await c.ehlo();
    assert.equal(ehlo.lines[0], 'mx.contoso.test Hello [::1]');
    assert.ok(ehlo.lines.includes('STARTTLS'), ehlo.lines.join('|'));
    await c.cmd('MAIL FROM:<someone@example.net>');
    assert.equal((await c.cmd('RCPT TO:<partner@example.org>')).last, '550 5.7.1 Unable to relay');
    await c.quit();
  });

  it('runs a second listener side by side on its own address and port', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.side! });
    assert.match(c.greeting!.last, /^220 side\.contoso\.test /);
    await c.quit();
    // Bound to 127.0.0.1 only: another local address is not listened on.
    await assert.rejects(RawSmtp.connect({ host: '127.0.0.2', port: port.side! }), /ECONNREFUSED/);
    const addrs = gw.listeners.addresses();
    assert.ok(addrs.some((a) => a.port === port.side && a.address === '127.0.0.1' && a.connectors.includes('Side')), JSON.stringify(addrs));
    assert.ok(addrs.some((a) => a.port === port.shared && a.address === '::'), JSON.stringify(addrs));
  });

  it('refuses a client no connector accepts, and a blocked client, and closes', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.narrow!, localAddress: '127.0.0.6' });
    assert.equal(c.greeting?.last, '554 5.7.1 Access denied, no receive connector accepts connections from [127.0.0.6]');
    await c.closed;
    const ok = await RawSmtp.connect({ host: '127.0.0.1', port: port.narrow!, localAddress: '127.0.0.5' });
    assert.equal(ok.greeting?.code, 220);
    await ok.quit();
    const b = await shared('127.0.0.66');
    assert.equal(b.greeting?.last, '554 5.7.1 Access denied, banned sending IP [127.0.0.66]');
    await b.closed;
  });

  it('takes the client address from a PROXY v1 header of a trusted proxy only', async () => {
    const viaProxy = await shared('127.0.0.250', { proxy: `PROXY TCP4 127.0.0.2 127.0.0.1 40000 ${port.shared}` });
    assert.equal(viaProxy.greeting?.last, '220 devices.contoso.test Devices relay ready');
    await viaProxy.quit();
    const remote = await shared('127.0.0.250', { proxy: `PROXY TCP4 203.0.113.7 127.0.0.1 40000 ${port.shared}` });
    assert.equal((await remote.ehlo()).lines[0], 'mx.contoso.test Hello [203.0.113.7]');
    await remote.quit();
    // From anyone else the header is just an unknown command; the socket address counts.
    const spoof = await shared('127.0.0.3', { greeting: false, proxy: `PROXY TCP4 127.0.0.2 127.0.0.1 40000 ${port.shared}` });
    assert.match((await spoof.read()).last, /^220 mx\.contoso\.test /);
    assert.equal((await spoof.read()).last, '500 5.3.3 Unrecognized command');
    assert.equal((await spoof.ehlo()).lines[0], 'mx.contoso.test Hello [127.0.0.3]');
    await spoof.quit();
  });

  it('takes the client address from a PROXY v2 header (send-proxy-v2, cloud balancers); LOCAL keeps the balancer\'s', async () => {
    const device = await shared('127.0.0.250', { proxy: encodeProxyV2({ address: '127.0.0.2', port: 40000 }) });
    assert.equal(device.greeting?.last, '220 devices.contoso.test Devices relay ready');
    await device.quit();
    // With TLVs (here an AWS-style endpoint id, type 0xEA) behind the addresses, and IPv6.
    const tlv = Buffer.concat([Buffer.from([0xea, 0x00, 0x09, 0x01]), Buffer.from('vpce-1234')]);
    const v6 = await shared('127.0.0.250', { proxy: encodeProxyV2({ address: '2001:db8::7', port: 40000 }, { address: '2001:db8::25', port: 25 }, tlv) });
    assert.equal((await v6.ehlo()).lines[0], 'mx.contoso.test Hello [2001:db8::7]');
    await v6.cmd('MAIL FROM:<someone@example.net>');
    assert.equal((await v6.cmd('RCPT TO:<partner@example.org>')).last, '550 5.7.1 Unable to relay');
    await v6.quit();
    // A health check: the balancer speaks for itself.
    const local = await shared('127.0.0.250', { proxy: encodeProxyV2(null) });
    assert.equal((await local.ehlo()).lines[0], 'mx.contoso.test Hello [127.0.0.250]');
    await local.quit();
  });

  it('reads a PROXY header that comes in pieces, and what follows it in the same packet', async () => {
    const header = encodeProxyV2({ address: '203.0.113.9', port: 40000 });
    const socket = net.connect({ host: '127.0.0.1', port: port.shared!, localAddress: '127.0.0.250' });
    await new Promise((r) => socket.once('connect', r));
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    for (const piece of [header.subarray(0, 5), header.subarray(5, 14), header.subarray(14, 20)]) {
      socket.write(piece);
      await new Promise((r) => setTimeout(r, 30));
    }
    assert.equal(got, '', 'no greeting before the header is whole');
    // The rest of the header and a pipelined EHLO in one write: the EHLO is the client's.
    socket.write(Buffer.concat([header.subarray(20), Buffer.from('EHLO client.test\r\nQUIT\r\n')]));
    await new Promise((r) => socket.once('close', r));
    assert.match(got, /^220 mx\.contoso\.test /);
    assert.match(got, /\r\n250-mx\.contoso\.test Hello \[203\.0\.113\.9\]\r\n/);
    assert.match(got, /\r\n221 /);
  });

  it('refuses a trusted proxy\'s malformed PROXY header with 421 and closes, logging why', async () => {
    const cases: Array<[string | Buffer, RegExp]> = [
      ['EHLO no-header.test', /no PROXY header/],
      ['PROXY TCP4 203.0.113.9 127.0.0.1 40000', /is not "PROXY TCP4\|TCP6/],
      ['PROXY TCP4 2001:db8::1 127.0.0.1 40000 25', /source address "2001:db8::1" is not an IPv4 address/],
      ['PROXY TCP4 203.0.113.9 127.0.0.1 70000 25', /source port "70000"/],
      [Buffer.concat([encodeProxyV2({ address: '203.0.113.9', port: 1 }).subarray(0, 13), Buffer.from([0x12, 0x00, 0x0c]), Buffer.alloc(12)]), /UDP/],
    ];
    for (const [proxy, reason] of cases) {
      const c = await shared('127.0.0.250', { proxy, greeting: false });
      assert.equal((await c.read()).last, '421 4.7.0 Invalid PROXY protocol header, closing connection');
      await c.closed;
      const line = await eventually(() => gw.logs.find((l) => l.msg === 'PROXY header refused, connection closed' && reason.test(String(l.reason)) && !l.seen), `log line ${reason}`);
      line.seen = true;
      assert.equal(line.proxy, '127.0.0.250');
    }
  });

  it('enforces maxInboundConnectionPerSource and maxInboundConnection, and frees slots on close', async () => {
    const to = (localAddress: string) => RawSmtp.connect({ host: '127.0.0.1', port: port.limited!, localAddress });
    const first = await to('127.0.0.7');
    assert.equal(first.greeting?.code, 220);
    const again = await to('127.0.0.7');
    assert.equal(again.greeting?.last, '421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing transmission channel');
    await again.closed;
    const second = await to('127.0.0.8');
    assert.equal(second.greeting?.code, 220);
    const third = await to('127.0.0.9');
    assert.equal(third.greeting?.last, '421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel');
    await third.closed;
    await first.quit();
    // The slot is released when the connection's close is processed.
    let next = await to('127.0.0.9');
    for (let i = 0; i < 50 && next.greeting?.code !== 220; i++) {
      await next.closed;
      await new Promise((r) => setTimeout(r, 20));
      next = await to('127.0.0.9');
    }
    assert.equal(next.greeting?.code, 220);
    await next.quit();
    await second.quit();
  });
});

describe('greeting delay (replaces smtp-server 3.21.6 init() 100 ms wait)', () => {
  it('with greetingDelay 0 the greeting is sent at once: a command written before it is answered, not refused', async () => {
    // smtp-server's own init() would answer this early EHLO "421 … You talk too soon".
    const c = await shared('127.0.0.3', { greeting: false, early: 'EHLO early.test\r\n' });
    assert.match((await c.read()).last, /^220 mx\.contoso\.test /);
    const ehlo = await c.read();
    assert.equal(ehlo.code, 250);
    assert.equal(ehlo.lines[0], 'mx.contoso.test Hello [127.0.0.3]');
    await c.quit();
  });

  it('with a greetingDelay a client that talks first is dropped; a patient one is greeted', async () => {
    const early = await RawSmtp.connect({ host: '127.0.0.1', port: port.slow!, greeting: false, early: 'EHLO early.test\r\n' });
    assert.equal((await early.read()).last, '421 4.7.0 Protocol error: the client spoke before the greeting, closing transmission channel');
    await early.closed;
    await assert.rejects(early.read(), SmtpClosedError);
    const patient = await RawSmtp.connect({ host: '127.0.0.1', port: port.slow! });
    assert.equal(patient.greeting?.code, 220);
    assert.equal((await patient.ehlo()).code, 250);
    await patient.quit();
  });
});

describe('summary log', () => {
  /** The connection's summary line, once it is written (the connection has ended). */
  const summaryOf = (client: string) => eventually(() => gw.logs.find((l) => l.msg === 'smtp connection' && l.client === client), `the summary line of ${client}`, 2000);

  it('writes one line per connection with connector, client, TLS, user, messages and result', async () => {
    const c = await shared('127.0.0.4');
    await c.ehlo();
    await c.quit();
    const line = await summaryOf('127.0.0.4');
    assert.equal(line.connector, 'Internet');
    assert.equal(line.tls, null);
    assert.equal(line.user, null);
    assert.equal(line.messages, 0);
    assert.equal(line.result, 'quit');
    assert.equal(gw.logs.filter((l) => l.msg === 'smtp connection' && l.client === '127.0.0.4').length, 1);
    assert.equal(line.refused, 0);
  });

  it('a STARTTLS handshake the gateway refuses is one line saying why in words', async () => {
    const c = await shared('127.0.0.15');
    await c.ehlo();
    // A client that speaks nothing newer than TLS 1.1 (OpenSSL allows it only at security level 0).
    await assert.rejects(c.starttls({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), 'the handshake must fail');
    await summaryOf('127.0.0.15');
    assert.deepEqual(
      gw.logs.filter((l) => l.msg === 'client connection error' && l.client === '127.0.0.15').map((l) => [l.level, l.code, l.reason]),
      [[30, 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'TLS handshake failed: the client offers only TLS versions older than 1.2, the oldest mailgw accepts']],
    );
  });

  it('OpenSSL errors without words of ours are cut to their reason', () => {
    const e = Object.assign(new Error('80ACC18FFD7E0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../ssl/record/rec_layer_s3.c:1605:\n'), { code: 'ERR_SSL_SOMETHING_NEW' });
    assert.equal(clientErrorReason(e), 'TLS handshake failed: sslv3 alert bad certificate');
    assert.equal(clientErrorReason(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), 'read ECONNRESET');
  });

  it('logs each refusal at info with the envelope, the reply and the reason, and counts them in the summary', async () => {
    const c = await shared('127.0.0.14');
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<someone@example.org>')).code, 250);
    const r = await c.cmd('RCPT TO:<victim@elsewhere.test>');
    assert.equal(r.last, '550 5.7.1 Unable to relay');
    await c.quit();
    const summary = await summaryOf('127.0.0.14');
    assert.deepEqual([summary.refused, summary.messages], [1, 0]);
    const refusals = gw.logs.filter((l) => l.msg === 'policy refused' && l.client === '127.0.0.14');
    assert.equal(refusals.length, 1);
    const { level, connector, from, to, reply, reason, why } = refusals[0]!;
    assert.deepEqual({ level, connector, from, to, reply, reason }, { level: 30, connector: 'Internet', from: 'someone@example.org', to: 'victim@elsewhere.test', reply: '550 5.7.1 Unable to relay', reason: 'relay-denied' });
    assert.match(String(why), /^elsewhere\.test is not an accepted domain .*lacks ms-Exch-SMTP-Accept-Any-Recipient on connector "Internet"/);
    // The session's lines carry its session id: the refusal and the summary are found together.
    assert.match(String(summary.sessionId), /^[0-9a-v]{16}$/);
    assert.equal(refusals[0]!.sessionId, summary.sessionId);
    assert.equal(gw.logs.filter((l) => l.sessionId === summary.sessionId).length, 2);
  });
});
