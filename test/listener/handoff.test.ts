// DATA → queue: every 250 has its job and body in Redis, the body byte-identical to what was
// sent apart from the headers mailgw adds; every reject leaves nothing behind. Size (at MAIL
// and while streaming), recipient, hop-count and header-size limits, routing-header
// stripping, DSN parameters, Bypass-Message-Size-Limit.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf } from './helpers/smtp-client.js';

const run = promisify(execFile);
let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  const common = { bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 };
  gw = await startGateway({
    redisUrl: redis.url,
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', ...common, maxMessageSize: '64KB', maxRecipientsPerMessage: 3, maxHopCount: 3, maxHeaderSize: '2KB' },
      trusted: {
        name: 'Trusted',
        ...common,
        remoteIPRanges: ['127.0.0.40'],
        authMechanism: ['Tls', 'ExternalAuthoritative'],
        permissionGroups: ['ExchangeServers'],
        maxMessageSize: '64KB',
        maxRecipientsPerMessage: 3,
      },
      stripping: {
        name: 'No Routing Headers',
        usage: 'Internet',
        ...common,
        remoteIPRanges: ['127.0.0.41'],
        permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Accept-Headers-Routing'], deny: true }],
      },
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

const connect = async (localAddress = '127.0.0.1') => {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress });
  await c.ehlo('sender.test');
  return c;
};

/** Our Received field: four lines, the first "Received: from", the rest tab-folded. */
const OUR_RECEIVED = /^Received: from [^\r\n]*\r\n(?:\t[^\r\n]*\r\n){3}/;

async function nothingStoredBy(fn: () => Promise<void>): Promise<void> {
  const before = await gw.stored();
  await fn();
  assert.deepEqual(await gw.stored(), before, 'a reject left something in Redis');
}

describe('hand-off to the queue', () => {
  it('stores job and body; the body is the message as sent plus our Received on top', async () => {
    const message =
      'Received: from a.example by b.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n' +
      'Received: from c.example by a.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n' +
      'Resent-From: <x@example.net>\r\n' +
      'From: "Sender" <sender@example.net>\r\n' +
      'To: <alice@contoso.test>\r\n' +
      'Subject: =?utf-8?q?caf=C3=A9?=\r\n' +
      'X-Folded: first\r\n  second\r\n\tthird\r\n' +
      'Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n' +
      'Message-ID: <original-1@example.net>\r\n' +
      '\r\n' +
      'Body line\r\n.leading dot\r\n..two dots\r\n' +
      Buffer.from([0xc3, 0xa9, 0xff, 0x00, 0x7f]).toString('latin1') + '\r\n' +
      'x'.repeat(5000) + '\r\n' +
      '\r\n\r\nlast line\r\n';
    const c = await connect();
    const t = await c.transaction('sender@example.net', ['alice@contoso.test', 'Bob@Fabrikam.TEST'], message, { mailParams: 'BODY=8BITMIME' });
    assert.equal(t.end?.code, 250, t.end?.last);
    assert.match(t.end!.last, /^250 2\.6\.0 <original-1@example\.net> \[InternalId=[0-9A-Z]{26}\] Queued mail for delivery$/);
    const id = queueIdOf(t.end!);
    const body = (await gw.body(id))!;
    const text = body.toString('latin1');
    const ours = OUR_RECEIVED.exec(text);
    assert.ok(ours, text.slice(0, 400));
    assert.match(ours[0], /^Received: from sender\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.contoso\.test \(mailgw, connector Internet\)\r\n\twith ESMTP\r\n\tid [0-9A-Z]{26}; \w{3}, \d+ \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n$/);
    assert.ok(ours[0].includes(`id ${id};`));
    assert.ok(body.subarray(Buffer.byteLength(ours[0], 'latin1')).equals(Buffer.from(message, 'latin1')), 'body differs from what was sent');
    const job = (await gw.job(id))!;
    assert.equal(job.data.queueId, id);
    assert.equal(job.data.messageId, '<original-1@example.net>');
    assert.equal(job.data.connector, 'Internet');
    assert.equal(job.data.clientIP, '127.0.0.1');
    assert.equal(job.data.helo, 'sender.test');
    assert.equal(job.data.tls, null);
    assert.equal(job.data.authUser, null);
    assert.equal(job.data.size, body.length);
    assert.deepEqual(job.data.mailFrom, { sender: { local: 'sender', domain: 'example.net' }, address: 'sender@example.net', body: '8BITMIME' });
    assert.deepEqual(job.data.rcptTo.map((r) => r.address), ['alice@contoso.test', 'Bob@fabrikam.test']);
    await c.quit();
  });

  it('adds Message-ID and Date when the message has none, at the end of the header', async () => {
    const header = 'From: <sender@example.net>\r\nSubject: no ids\r\n';
    const bodyText = 'just a body\r\n';
    const c = await connect();
    const t = await c.transaction('sender@example.net', ['alice@contoso.test'], `${header}\r\n${bodyText}`);
    const id = queueIdOf(t.end!);
    assert.equal(t.end!.last, `250 2.6.0 <${id}@mx.contoso.test> [InternalId=${id}] Queued mail for delivery`);
    const text = (await gw.body(id))!.toString('latin1').replace(OUR_RECEIVED, '');
    assert.match(text, new RegExp(`^${header}Message-ID: <${id}@mx\\.contoso\\.test>\\r\\nDate: \\w{3}, \\d+ \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\\r\\n\\r\\n${bodyText}$`));
    assert.equal((await gw.job(id))!.data.messageId, `<${id}@mx.contoso.test>`);
    await c.quit();
  });

  it('a message that starts without a header gets ours and a separating empty line', async () => {
    const c = await connect();
    const t = await c.transaction('sender@example.net', ['alice@contoso.test'], 'no header here\r\nsecond line\r\n');
    const id = queueIdOf(t.end!);
    const text = (await gw.body(id))!.toString('latin1').replace(OUR_RECEIVED, '');
    assert.match(text, /^Message-ID: <[0-9A-Z]+@mx\.contoso\.test>\r\nDate: [^\r\n]+\r\n\r\nno header here\r\nsecond line\r\n$/);
    await c.quit();
  });

  it("strips the client's Received and Resent-* headers without Accept-Headers-Routing", async () => {
    const message = 'Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n\tfolded\r\nRESENT-TO: <r@example.net>\r\nFrom: <s@example.net>\r\nResent-Date: x\r\nMessage-ID: <strip@example.net>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nReceived: in the body stays\r\n';
    const c = await connect('127.0.0.41');
    const t = await c.transaction('s@example.net', ['alice@contoso.test'], message);
    const id = queueIdOf(t.end!);
    const text = (await gw.body(id))!.toString('latin1');
    assert.match(text, /^Received: from sender\.test [^\r]*\r\n\tby mx\.contoso\.test \(mailgw, connector No Routing Headers\)/);
    assert.equal(text.replace(OUR_RECEIVED, ''), 'From: <s@example.net>\r\nMessage-ID: <strip@example.net>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nReceived: in the body stays\r\n');
    await c.quit();
  });

  it('keeps DSN parameters in the job', async () => {
    const c = await connect();
    assert.equal((await c.cmd('MAIL FROM:<sender@example.net> RET=HDRS ENVID=env+2Bid-1')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@contoso.test')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<bob@fabrikam.test> NOTIFY=NEVER')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('Subject: dsn\r\n\r\nx\r\n.\r\n');
    const id = queueIdOf(await c.read());
    const job = (await gw.job(id))!;
    assert.deepEqual(job.data.mailFrom, { sender: { local: 'sender', domain: 'example.net' }, address: 'sender@example.net', ret: 'HDRS', envid: 'env+id-1', body: '7BIT' });
    assert.deepEqual(job.data.rcptTo, [
      { local: 'alice', domain: 'contoso.test', address: 'alice@contoso.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;alice@contoso.test' },
      { local: 'bob', domain: 'fabrikam.test', address: 'bob@fabrikam.test', notify: ['NEVER'] },
    ]);
    await c.quit();
  });

  it('RCPT TO:<Postmaster> without a domain is taken as the default domain\'s postmaster (RFC 5321 4.1.1.3)', async () => {
    const c = await connect();
    assert.equal((await c.cmd('MAIL FROM:<sender@example.net>')).code, 250);
    const r = await c.cmd('RCPT TO:<Postmaster>');
    assert.equal(r.last, '250 2.1.5 Recipient OK');
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('Subject: to the postmaster\r\n\r\nx\r\n.\r\n');
    const job = (await gw.job(queueIdOf(await c.read())))!;
    assert.deepEqual(job.data.rcptTo, [{ local: 'postmaster', domain: 'contoso.test', address: 'postmaster@contoso.test' }]);
    await c.quit();
  });

  it('a quoted local part with spaces is received as written (RFC 5321 Quoted-string)', async () => {
    const c = await connect();
    assert.equal((await c.cmd('MAIL FROM:<"jane q. public"@example.net> BODY=8BITMIME')).last, '250 2.1.0 Sender OK');
    assert.equal((await c.cmd('RCPT TO:<"john doe"@contoso.test>')).last, '250 2.1.5 Recipient OK');
    assert.equal((await c.cmd('RCPT TO:<"a  b"@fabrikam.test> NOTIFY=NEVER')).last, '250 2.1.5 Recipient OK');
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('Subject: quoted\r\n\r\nx\r\n.\r\n');
    const job = (await gw.job(queueIdOf(await c.read())))!;
    assert.equal(job.data.mailFrom.address, '"jane q. public"@example.net');
    // Parsed once, at RCPT: the job carries the parts, the quoted text is derived from them.
    assert.deepEqual(job.data.mailFrom.sender, { local: 'jane q. public', domain: 'example.net' });
    assert.deepEqual(job.data.rcptTo, [
      { local: 'john doe', domain: 'contoso.test', address: '"john doe"@contoso.test' },
      { local: 'a  b', domain: 'fabrikam.test', address: '"a  b"@fabrikam.test', notify: ['NEVER'] },
    ]);
    await c.quit();
  });

  it('takes several messages on one connection, each with its own queue id', async () => {
    const c = await connect();
    const a = await c.transaction('s@example.net', ['alice@contoso.test'], 'Subject: 1\r\n\r\none\r\n');
    const b = await c.transaction('s@example.net', ['alice@contoso.test'], 'Subject: 2\r\n\r\ntwo\r\n');
    assert.equal(a.end?.code, 250);
    assert.equal(b.end?.code, 250);
    assert.notEqual(queueIdOf(a.end!), queueIdOf(b.end!));
    assert.ok(await gw.job(queueIdOf(b.end!)));
    await c.quit();
  });
});

describe('limits', () => {
  it('advertises SIZE and refuses a declared SIZE over maxMessageSize at MAIL, unless Bypass-Message-Size-Limit', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    assert.ok((await c.ehlo()).lines.includes('SIZE 65536'));
    await nothingStoredBy(async () => {
      assert.equal((await c.cmd('MAIL FROM:<s@example.net> SIZE=70000')).last, '552 5.3.4 Message size exceeds fixed maximum message size');
    });
    assert.equal((await c.cmd('MAIL FROM:<s@example.net> SIZE=60000')).last, '250 2.1.0 Sender OK');
    await c.quit();
    const trusted = await connect('127.0.0.40');
    assert.equal((await trusted.cmd('MAIL FROM:<s@example.net> SIZE=70000')).last, '250 2.1.0 Sender OK');
    await trusted.quit();
  });

  it('refuses a message that grows over maxMessageSize while streaming; nothing stored; the connection goes on', async () => {
    const big = `Subject: big\r\nMessage-ID: <big@example.net>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n${`${'y'.repeat(998)}\r\n`.repeat(80)}`;
    const c = await connect();
    await nothingStoredBy(async () => {
      const t = await c.transaction('s@example.net', ['alice@contoso.test'], big);
      assert.equal(t.end?.last, '552 5.3.4 Message size exceeds fixed maximum message size');
    });
    const ok = await c.transaction('s@example.net', ['alice@contoso.test'], 'Subject: small\r\n\r\nok\r\n');
    assert.equal(ok.end?.code, 250);
    await c.quit();
    const trusted = await connect('127.0.0.40');
    const t = await trusted.transaction('s@example.net', ['alice@contoso.test'], big);
    assert.equal(t.end?.code, 250, 'Bypass-Message-Size-Limit');
    assert.equal((await gw.body(queueIdOf(t.end!)))!.toString('latin1').replace(OUR_RECEIVED, ''), big);
    await trusted.quit();
  });

  it('answers 452 4.5.3 beyond maxRecipientsPerMessage', async () => {
    const c = await connect();
    const t = await c.transaction('s@example.net', ['a1@contoso.test', 'a2@contoso.test', 'a3@contoso.test', 'a4@contoso.test']);
    assert.deepEqual(t.rcpt.map((r) => r.last), ['250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK', '452 4.5.3 Too many recipients']);
    await c.quit();
    const trusted = await connect('127.0.0.40');
    const u = await trusted.transaction('s@example.net', ['a1@contoso.test', 'a2@contoso.test', 'a3@contoso.test', 'a4@contoso.test']);
    assert.ok(u.rcpt.every((r) => r.code === 250));
    await trusted.quit();
  });

  it('refuses a message with more Received headers than maxHopCount', async () => {
    const hops = 'Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n'.repeat(4);
    const c = await connect();
    await nothingStoredBy(async () => {
      const t = await c.transaction('s@example.net', ['alice@contoso.test'], `${hops}Subject: loop\r\n\r\nbody\r\n`);
      assert.equal(t.end?.last, '554 5.4.6 Hop count exceeded - possible mail loop');
    });
    const ok = await c.transaction('s@example.net', ['alice@contoso.test'], `${'Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n'.repeat(3)}Subject: ok\r\n\r\nbody\r\n`);
    assert.equal(ok.end?.code, 250);
    await c.quit();
  });

  it('refuses a header larger than maxHeaderSize', async () => {
    const c = await connect();
    await nothingStoredBy(async () => {
      const t = await c.transaction('s@example.net', ['alice@contoso.test'], `Subject: big header\r\nX-Pad: ${'p'.repeat(3000)}\r\n\r\nbody\r\n`);
      assert.equal(t.end?.last, '552 5.3.4 Header size exceeds fixed maximum size');
    });
    await c.quit();
  });

  it('leaves nothing in Redis for relay, sender and sequence rejects', async () => {
    await nothingStoredBy(async () => {
      const c = await connect();
      assert.equal((await c.cmd('DATA')).last, '503 5.5.2 Need mail command');
      const t = await c.transaction('s@example.net', ['victim@example.org'], 'Subject: relay\r\n\r\nx\r\n');
      assert.equal(t.rcpt[0]!.last, '550 5.7.1 Unable to relay');
      assert.equal(t.data?.last, '503 5.5.2 Need rcpt command');
      await c.quit();
    });
  });
});

describe('swaks against the gateway', () => {
  it('queues mail to an accepted domain and refuses relay', async () => {
    const ok = await run('swaks', ['--server', `127.0.0.1:${port}`, '--local-interface', '127.0.0.42', '--to', 'someone@contoso.test', '--from', 'x@example.net']);
    const m = /<- {2}250 2\.6\.0 <\S+> \[InternalId=([0-9A-Z]{26})\] Queued mail for delivery/.exec(ok.stdout);
    assert.ok(m, ok.stdout);
    assert.ok(await gw.job(m[1]!), 'job in Redis');
    assert.match((await gw.body(m[1]!))!.toString('latin1'), /^Received: from /);
    const denied = await run('swaks', ['--server', `127.0.0.1:${port}`, '--local-interface', '127.0.0.42', '--to', 'someone@elsewhere.test', '--from', 'x@example.net', '--quit-after', 'RCPT']).catch((e: { stdout: string }) => e);
    assert.match(denied.stdout, /<\*\* 550 5\.7\.1 Unable to relay/);
  });
});
