// SMTP smuggling: bare CR / bare LF inside DATA, including the "<LF>.<LF>" end-of-data
// variants that weaker servers honour. Rejected by default (554 5.6.0); normalised to CRLF
// when the connector sets bareLinefeedRejectionEnabled: false. Never two messages from one
// DATA, never a stray reply, nothing stored for a reject.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf } from './helpers/smtp-client.js';

let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    connectors: {
      strict: { name: 'Strict', usage: 'Internet', bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 },
      lenient: { name: 'Lenient', usage: 'Internet', bindings: [`0.0.0.0:${port}`], remoteIPRanges: ['127.0.0.50'], bareLinefeedRejectionEnabled: false, tarpitInterval: 0 },
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

const HEAD = 'From: <s@example.net>\r\nMessage-ID: <smuggle@example.net>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n';
const SMUGGLED = 'MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@contoso.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n';

/** Message contents (before the final CRLF.CRLF) a smuggler would send. */
const VARIANTS: Record<string, string> = {
  'bare LF in the body': `${HEAD}line one\nline two\r\n`,
  'bare CR in the body': `${HEAD}line one\rline two\r\n`,
  'LF.LF end-of-data': `${HEAD}hello\n.\n${SMUGGLED}`,
  'CRLF.LF end-of-data': `${HEAD}hello\r\n.\n${SMUGGLED}`,
  'LF.CRLF end-of-data': `${HEAD}hello\n.\r\n${SMUGGLED}`,
  'CR.CR end-of-data': `${HEAD}hello\r.\r${SMUGGLED}`,
  'CRLF.CR end-of-data': `${HEAD}hello\r\n.\r${SMUGGLED}`,
  'bare LF in the header': `From: <s@example.net>\nSubject: x\r\n\r\nbody\r\n`,
  'CR just before the terminator': `${HEAD}body\r`,
};

async function data(c: RawSmtp, content: string): Promise<string> {
  assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(`${content}\r\n.\r\n`);
  return (await c.read()).last;
}

describe('bare line endings rejected (default)', () => {
  for (const [name, content] of Object.entries(VARIANTS)) {
    it(`${name}: 554 5.6.0, one reply, nothing stored`, async () => {
      const before = await gw.stored();
      const c = await RawSmtp.connect({ host: '127.0.0.1', port });
      await c.ehlo();
      assert.equal(await data(c, content), '554 5.6.0 Invalid message content, contains bare linefeeds');
      // The next reply answers our NOOP: nothing smuggled was executed.
      assert.equal((await c.cmd('NOOP')).last, '250 2.0.0 OK');
      await c.quit();
      assert.deepEqual(await gw.stored(), before);
    });
  }

  it('a clean message on the same connector is accepted', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.match(await data(c, `${HEAD}clean\r\n`), /^250 2\.6\.0 /);
    await c.quit();
  });
});

describe('bare line endings normalised (bareLinefeedRejectionEnabled: false)', () => {
  for (const [name, content] of Object.entries(VARIANTS)) {
    it(`${name}: one message, CRLF only, smuggled commands stay text`, async () => {
      const before = await gw.stored();
      const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.50' });
      await c.ehlo();
      const reply = await data(c, content);
      assert.match(reply, /^250 2\.6\.0 /);
      assert.equal((await c.cmd('NOOP')).last, '250 2.0.0 OK');
      await c.quit();
      const after = await gw.stored();
      assert.equal(after.jobs, before.jobs + 1, 'exactly one message from one DATA');
      const body = (await gw.body(queueIdOf({ code: 250, lines: [], last: reply })))!.toString('latin1');
      assert.doesNotMatch(body.replace(/\r\n/g, ''), /[\r\n]/, 'a bare CR or LF was stored');
      const expected = `${content}\r\n`.replace(/\r\n|\r|\n/g, '\r\n');
      assert.ok(body.endsWith(expected.slice(expected.indexOf('\r\n\r\n') + 4)), JSON.stringify(body.slice(-200)));
    });
  }
});
