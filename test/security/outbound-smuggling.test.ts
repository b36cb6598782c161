// The other end of SMTP smuggling: mailgw must never be the vector. A message with every
// end-of-data variant and a smuggled transaction, accepted on a connector that normalises bare
// line endings, goes through a real delivery worker to a far side that reads the raw wire:
// one message per message, CRLF only, the lone dot dot-stuffed, and the smuggled MAIL never
// seen as a command by the next hop.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startFaultRig, type FaultRig, type QueueView } from './helpers/delivery.js';
import { startRawSink, type RawSink } from './helpers/raw-sink.js';
import { until } from './helpers/scenario.js';

let redis: TestRedis;
let sink: RawSink;
let queue: QueueView;
let port = 0;
let rig: FaultRig;

before(async () => {
  redis = await startRedis();
  sink = await startRawSink();
  rig = await startFaultRig(redis.url, sink.port, { concurrency: 4, extraConnectors: (p) => ({ '99-lenient.yaml': { name: 'Lenient', usage: 'Internet', bindings: [`0.0.0.0:${p}`], remoteIPRanges: ['127.0.0.50'], bareLinefeedRejectionEnabled: false, tarpitInterval: 0 } }) });
  ({ port, queue } = rig);
});

after(async () => {
  await rig?.close();
  await sink?.close();
  await redis?.stop();
});

const VARIANTS: Record<string, string> = {
  lflf: '\n.\n',
  crcr: '\r.\r',
  lfcrlf: '\n.\r\n',
  crlflf: '\r\n.\n',
  crlfcr: '\r\n.\r',
  crcrlf: '\r.\r\n',
};
const SMUGGLED = 'MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@fabrikam.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nwire the money\r\n';

it('each variant, accepted and normalised, leaves the worker as one clean, dot-stuffed message', async () => {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.50' });
  await c.ehlo();
  for (const [name, v] of Object.entries(VARIANTS)) {
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<${name}@contoso.test>`)).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(`From: <s@example.net>\r\nSubject: ${name}\r\nX-Variant: ${name}\r\n\r\nhello${v}${SMUGGLED}\r\n.\r\n`);
    assert.match((await c.read()).last, /^250 2\.6\.0 /, name);
  }
  await c.quit();
  const n = Object.keys(VARIANTS).length;
  assert.ok(await until(async () => sink.messages.length >= n && (await queue.pending()) === 0, 30_000), `${sink.messages.length} of ${n} delivered`);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sink.messages.length, n, 'exactly one message per message');
  for (const m of sink.messages) {
    const wire = m.wire.toString('latin1');
    const name = /\r\nX-Variant: (\w+)\r\n/.exec(wire)?.[1];
    assert.doesNotMatch(wire.replace(/\r\n/g, ''), /[\r\n]/, `${name}: a bare CR or LF left the worker`);
    assert.ok(wire.includes('\r\nhello\r\n..\r\nMAIL FROM:<evil@example.net>\r\n'), `${name}: the lone dot must go out dot-stuffed: ${JSON.stringify(wire.slice(wire.indexOf('hello'), wire.indexOf('hello') + 40))}`);
    assert.deepEqual(m.rcptTo, [`${name}@contoso.test`]);
  }
  const mails = sink.commands.filter((l) => /^MAIL/i.test(l));
  assert.equal(mails.length, n, 'the next hop saw only the real transactions');
  assert.ok(mails.every((l) => l.startsWith('MAIL FROM:<s@example.net>')), mails.join(' | '));
  assert.ok(!sink.commands.some((l) => l.includes('victim@fabrikam.test')));
});
