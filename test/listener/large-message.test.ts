// A 35 MB message (DATA) and a 20 MB one (BDAT) through SMTP into Redis: streamed, never held whole in memory by the
// listener, stored byte for byte.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf } from './helpers/smtp-client.js';

// A full GC on demand, without --expose-gc on the command line.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const MiB = 1024 * 1024;

function liveBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  gw = await startGateway({ redisUrl: redis.url, connectors: { a: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } } });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

it('streams a 35 MB message into Redis with bounded memory and stores it whole', async () => {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<big@example.net> SIZE=35000000')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);

  const hash = createHash('sha256');
  const header = Buffer.from('From: <big@example.net>\r\nMessage-ID: <big@example.net>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: big\r\n\r\n');
  hash.update(header);
  c.write(header);
  const line = (n: number) => Buffer.from(`${String(n).padStart(8, '0')} ${'x'.repeat(989)}\r\n`);
  const baseline = liveBytes();
  let peak = 0;
  let sent = header.length;
  const socket = (c as unknown as { socket: import('node:net').Socket }).socket; // test-only access for backpressure
  for (let n = 0; sent < 35_000_000; n++) {
    const chunk = Buffer.concat(Array.from({ length: 64 }, (_, i) => line(n * 64 + i)));
    hash.update(chunk);
    sent += chunk.length;
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
    if (n % 16 === 0) peak = Math.max(peak, liveBytes() - baseline);
  }
  c.write('.\r\n');
  const end = await c.read();
  peak = Math.max(peak, liveBytes() - baseline);
  assert.match(end.last, /^250 2\.6\.0 <big@example\.net> /);
  assert.ok(peak < 24 * MiB, `live memory grew by ${(peak / MiB).toFixed(1)} MiB while receiving ${(sent / MiB).toFixed(0)} MiB`);

  const body = (await gw.body(queueIdOf(end)))!;
  const received = /^Received: from [^\r\n]*\r\n(?:\t[^\r\n]*\r\n){3}/.exec(body.toString('latin1', 0, 2000))![0];
  const stored = body.subarray(Buffer.byteLength(received, 'latin1'));
  assert.equal(stored.length, sent);
  assert.equal(createHash('sha256').update(stored).digest('hex'), hash.digest('hex'));
  await c.quit();
});

it('a 20 MB BDAT chunk is stored whole, and waiting for the stream to drain leaves no listeners behind', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<big@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
    const header = Buffer.from('From: <big@example.net>\r\nMessage-ID: <bdat@example.net>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: big by BDAT\r\n\r\n');
    const body = Buffer.alloc(20 * MiB - header.length, 'y');
    for (let i = 1000; i <= body.length; i += 1000) body.write('\r\n', i - 2, 'latin1');
    body.write('\r\n', body.length - 2, 'latin1');
    const message = Buffer.concat([header, body]);
    c.write(`BDAT ${message.length} LAST\r\n`);
    const socket = (c as unknown as { socket: import('node:net').Socket }).socket;
    for (let at = 0; at < message.length; at += 256 * 1024) {
      if (!socket.write(message.subarray(at, at + 256 * 1024))) await new Promise((r) => socket.once('drain', r));
    }
    const end = await c.read();
    assert.match(end.last, /^250 2\.6\.0 <bdat@example\.net> /);
    const stored = (await gw.body(queueIdOf(end)))!;
    const tail = stored.subarray(stored.length - message.length);
    assert.ok(tail.equals(message), `the stored message differs from what was sent at octet ${tail.findIndex((b, i) => b !== message[i])}`);
    await c.quit();
    // The BDAT sink waited for 'drain' many times; each wait once left a 'close' listener on the stream.
    assert.deepEqual(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), []);
  } finally {
    process.off('warning', onWarning);
  }
});
