// SMTP smuggling and STARTTLS injection, as an attacker writes them: the whole attack in one
// write, read back until the server closes. Extends test/listener/smuggling.test.ts (which
// checks each variant's reply and the stored bytes) with the six end-of-data variants each
// followed by a complete smuggled transaction and its own terminator, in one packet: one
// message (normalised) or one reject, never two, and the smuggled MAIL never runs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, SmtpClosedError, queueIdOf, type ClientReply } from '../listener/helpers/smtp-client.js';
import { jobReader, type JobReader } from './helpers/jobs.js';
import { shippedConfig } from './helpers/shipped.js';

let redis: TestRedis;
let gw: TestGateway;
let jobs: JobReader;
let port = 0;
let clientPort = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  clientPort = await freePort();
  const cfg = await shippedConfig({ defaultPort: port, clientPort, relayRanges: ['127.0.0.16/28'], connectorExtra: { tarpitInterval: '20ms' } });
  // Beside the shipped connectors (which reject bare line endings: the default), one that
  // normalises them, for a range of its own.
  cfg.connectors['99-lenient.yaml'] = { name: 'Lenient', usage: 'Internet', bindings: [`0.0.0.0:${port}`], remoteIPRanges: ['127.0.0.50'], bareLinefeedRejectionEnabled: false, tarpitInterval: 0 };
  gw = await startGateway({ redisUrl: redis.url, gateway: cfg.gateway, connectors: cfg.connectors });
  jobs = jobReader(redis.url);
});

after(async () => {
  await jobs?.close();
  await gw?.close();
  await redis?.stop();
});

const HEAD = 'From: <s@example.net>\r\nTo: <alice@contoso.test>\r\nSubject: cover\r\n\r\nhello';
const SMUGGLED = 'MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@contoso.test>\r\nDATA\r\nFrom: <ceo@contoso.test>\r\nSubject: smuggled\r\n\r\nwire the money\r\n';

const VARIANTS: Record<string, string> = {
  '<LF>.<LF>': '\n.\n',
  '<CR>.<CR>': '\r.\r',
  '<LF>.<CR><LF>': '\n.\r\n',
  '<CR><LF>.<LF>': '\r\n.\n',
  '<CR><LF>.<CR>': '\r\n.\r',
  '<CR>.<CR><LF>': '\r.\r\n',
};

/** Every reply until the server closes the connection. */
async function drain(c: RawSmtp): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    try {
      out.push((await c.read()).last);
    } catch (e) {
      if (e instanceof SmtpClosedError) return out;
      throw e;
    }
  }
}

async function attack(localAddress: string, variant: string): Promise<string[]> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress });
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  // One packet: cover message, fake end, smuggled transaction, real end, QUIT.
  c.write(`${HEAD}${variant}${SMUGGLED}.\r\nQUIT\r\n`);
  return drain(c);
}

const evilStored = async () => (await jobs.envelopes()).filter((e) => e.mailFrom === 'evil@example.net' || e.rcptTo.includes('victim@contoso.test'));

describe('end-of-data variants followed by a smuggled transaction, one write', { concurrency: true }, () => {
  for (const [name, variant] of Object.entries(VARIANTS)) {
    it(`${name}, rejecting connector (shipped Default): one 554 5.6.0, then QUIT; nothing stored`, async () => {
      const replies = await attack('127.0.0.1', variant);
      assert.deepEqual(replies, ['554 5.6.0 Invalid message content, contains bare linefeeds', '221 2.0.0 Service closing transmission channel']);
      assert.deepEqual(await evilStored(), []);
    });

    it(`${name}, normalising connector: one 250 for one message, then QUIT; the smuggled lines are body text`, async () => {
      const replies = await attack('127.0.0.50', variant);
      assert.equal(replies.length, 2, replies.join(' | '));
      assert.match(replies[0]!, /^250 2\.6\.0 /);
      assert.equal(replies[1], '221 2.0.0 Service closing transmission channel');
      const id = queueIdOf({ code: 250, lines: [], last: replies[0]! });
      const env = (await jobs.envelopes()).find((e) => e.queueId === id)!;
      assert.deepEqual(env.rcptTo, ['alice@contoso.test']);
      assert.equal(env.mailFrom, 's@example.net');
      const body = (await gw.body(id))!.toString('latin1');
      assert.doesNotMatch(body.replace(/\r\n/g, ''), /[\r\n]/, 'a bare CR or LF was stored');
      assert.ok(body.includes('\r\nMAIL FROM:<evil@example.net>\r\n'), 'the smuggled command is text of the one message');
      assert.deepEqual(await evilStored(), []);
    });
  }
});

describe('other smuggling shapes', () => {
  it('BDAT (CHUNKING): a chunk is read by its length, so a dot line and commands inside it are message bytes, never commands', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    const ehlo = await c.ehlo();
    assert.ok(ehlo.lines.includes('CHUNKING'), ehlo.lines.join('|'));
    await c.cmd('MAIL FROM:<s@example.net>');
    await c.cmd('RCPT TO:<alice@contoso.test>');
    const chunk = `${HEAD}\r\n.\r\n${SMUGGLED}.\r\n`;
    c.write(`BDAT ${Buffer.byteLength(chunk)} LAST\r\n${chunk}`);
    const r = await c.read();
    assert.match(r.last, /^250 /, r.last);
    const id = queueIdOf(r);
    assert.ok((await gw.body(id))!.toString('latin1').includes('\r\nhello\r\n.\r\nMAIL FROM:<evil@example.net>'), 'stored as bytes, unstuffed dot and all');
    assert.deepEqual(await evilStored(), []);
    await c.quit();
  });

  it('a dot line that is dot-stuffed stays one message; its unstuffed text is stored', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    await c.cmd('MAIL FROM:<s@example.net>');
    await c.cmd('RCPT TO:<alice@contoso.test>');
    await c.cmd('DATA');
    c.write(`${HEAD}\r\n..\r\n${SMUGGLED}.\r\nQUIT\r\n`);
    const replies = await drain(c);
    assert.equal(replies.length, 2, replies.join(' | '));
    const id = queueIdOf({ code: 250, lines: [], last: replies[0]! });
    assert.ok((await gw.body(id))!.toString('latin1').includes('\r\nhello\r\n.\r\nMAIL FROM:<evil@example.net>'));
    assert.deepEqual(await evilStored(), []);
  });

  it('commands pipelined after a complete message are ordinary commands of the same client (relay still refused)', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    await c.cmd('MAIL FROM:<s@example.net>');
    await c.cmd('RCPT TO:<alice@contoso.test>');
    await c.cmd('DATA');
    c.write(`${HEAD}\r\n.\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@other.test>\r\nDATA\r\nQUIT\r\n`);
    const replies = await drain(c);
    assert.deepEqual(replies.slice(1), ['250 2.1.0 Sender OK', '550 5.7.1 Unable to relay', '503 5.5.2 Need rcpt command', '221 2.0.0 Service closing transmission channel']);
    assert.match(replies[0]!, /^250 2\.6\.0 /);
  });
});

describe('STARTTLS command injection', () => {
  it('AUTH with the right password pipelined behind STARTTLS is not executed: the session stays anonymous', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: clientPort, localAddress: '127.0.0.70' });
    await c.ehlo();
    c.write(`STARTTLS\r\nAUTH PLAIN ${Buffer.from(`\0alice\0${PASSWORD}`).toString('base64')}\r\nMAIL FROM:<alice@contoso.test>\r\n`);
    assert.equal((await c.read()).last, '220 2.0.0 SMTP server ready');
    await c.upgrade();
    const ehlo = await c.ehlo();
    assert.equal(ehlo.lines[0], 'mail.contoso.test Hello [127.0.0.70]', 'the first reply inside TLS answers our EHLO');
    assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), 'still offering AUTH: nobody is logged in');
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '530 5.7.1 Client was not authenticated');
    await c.quit();
  });

  it('on the Default connector, a transaction pipelined behind STARTTLS does not survive the handshake', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    c.write('STARTTLS\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<alice@contoso.test>\r\nDATA\r\n');
    assert.equal((await c.read()).last, '220 2.0.0 SMTP server ready');
    await c.upgrade();
    // Had the pipelined commands run after the handshake, RCPT would be answered here.
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, '503 5.5.2 Send hello first');
    await c.ehlo();
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, '503 5.5.2 Need mail command');
    await c.quit();
    assert.deepEqual(await evilStored(), []);
  });

  it('plaintext sent by the client after STARTTLS but before its TLS hello ends the connection', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await c.cmd('STARTTLS')).last, '220 2.0.0 SMTP server ready');
    c.write('MAIL FROM:<evil@example.net>\r\n');
    let r: ClientReply | null = null;
    try {
      r = await c.read();
    } catch (e) {
      assert.ok(e instanceof SmtpClosedError);
    }
    assert.equal(r, null, `no plaintext reply expected, got ${r?.last}`);
    await c.closed;
  });
});
