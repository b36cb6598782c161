// The listener's memory stays bounded under abuse: the listener runs in a process of its own
// (helpers/listener-process.ts) whose RSS is sampled every 25 ms while many clients at once
// send endless command lines, endless headers, messages far over maxMessageSize, a normal big
// message, and a pipelined flood of commands whose replies are never read. Together they send
// far more bytes than the bound, so a listener that buffered any of them whole would exceed it.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp, SmtpClosedError } from '../listener/helpers/smtp-client.js';
import { spawnListener, type ListenerProcess } from './helpers/listener-process.js';
import { shippedConfig } from './helpers/shipped.js';

const MB = 1024 * 1024;
/** Generous: the attack below sends about 330 MB. */
const RSS_GROWTH_BOUND = 160 * MB;

let redis: TestRedis;
let child: ListenerProcess;
let defaultPort = 0;
let smallPort = 0;

before(async () => {
  redis = await startRedis();
  defaultPort = await freePort();
  smallPort = await freePort();
  const cfg = await shippedConfig({ defaultPort, clientPort: await freePort(), relayRanges: ['127.0.0.16/28'], connectorExtra: { tarpitInterval: 0, maxInboundConnectionPerSource: 'unlimited', maxInboundConnectionPercentagePerSource: 100 } });
  cfg.connectors['small.yaml'] = { name: 'Small', usage: 'Internet', bindings: [`0.0.0.0:${smallPort}`], maxMessageSize: '1MB', maxHeaderSize: '64KB', tarpitInterval: 0, maxInboundConnectionPerSource: 'unlimited', maxInboundConnectionPercentagePerSource: 100 };
  child = await spawnListener({ redisUrl: redis.url, gateway: cfg.gateway, connectors: cfg.connectors });
});

after(async () => {
  await child?.stop();
  await redis?.stop();
});

const socketOf = (c: RawSmtp) => (c as unknown as { socket: net.Socket }).socket;

/** Writes `total` bytes of `line` repeated, with backpressure, stopping if the server closes. */
async function pump(c: RawSmtp, total: number, line: Buffer): Promise<void> {
  const socket = socketOf(c);
  const chunk = Buffer.concat(Array.from({ length: Math.ceil((64 * 1024) / line.length) }, () => line));
  for (let sent = 0; sent < total && !socket.destroyed && socket.writable; sent += chunk.length) {
    if (!socket.write(chunk)) {
      await new Promise<void>((r) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          r();
        };
        socket.once('drain', done);
        socket.once('close', done);
      });
    }
  }
}

async function lastReply(c: RawSmtp): Promise<string> {
  try {
    return (await c.read()).last;
  } catch (e) {
    if (e instanceof SmtpClosedError) return 'closed';
    throw e;
  }
}

async function transactionOpen(port: number, ip: string): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: ip });
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  return c;
}

async function sendOne(port: number, size: number): Promise<string> {
  const c = await transactionOpen(port, '127.0.0.1');
  c.write('Subject: load\r\n\r\n');
  await pump(c, size, Buffer.from(`${'m'.repeat(998)}\r\n`));
  c.write('.\r\n');
  const r = await lastReply(c);
  await c.quit();
  return r;
}

it('RSS stays within a bound while ~330 MB of abuse arrives on 60 connections at once', async () => {
  // Warm up (TLS material, code paths, Redis connections), then measure from here.
  assert.match(await sendOne(defaultPort, 2 * MB), /^250 2\.6\.0 /);
  const baseline = (await child.memory()).rss;
  await child.resetPeak();

  const attacks: Array<Promise<string>> = [];
  // 40 endless command lines of 2 MB each: cut at 16 KB with 421.
  for (let i = 0; i < 40; i++) {
    attacks.push((async () => {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: defaultPort, localAddress: `127.0.1.${i + 1}` });
      await c.ehlo();
      await pump(c, 2 * MB, Buffer.from('MAIL FROM:<' + 'a'.repeat(4093)));
      return `line:${await lastReply(c)}`;
    })());
  }
  // 8 messages of 25 MB on a 1 MB connector: drained, 552.
  for (let i = 0; i < 8; i++) {
    attacks.push((async () => {
      const c = await transactionOpen(smallPort, `127.0.2.${i + 1}`);
      c.write('Subject: huge\r\n\r\n');
      await pump(c, 25 * MB, Buffer.from(`${'h'.repeat(998)}\r\n`));
      c.write('.\r\n');
      const r = await lastReply(c);
      c.destroy();
      return `size:${r}`;
    })());
  }
  // 8 header sections without end, 4 MB each, on a 64 KB maxHeaderSize: 552.
  for (let i = 0; i < 8; i++) {
    attacks.push((async () => {
      const c = await transactionOpen(smallPort, `127.0.3.${i + 1}`);
      await pump(c, 4 * MB, Buffer.from(`X-Header-${i}: ${'v'.repeat(200)}\r\n`));
      c.write('\r\n.\r\n');
      const r = await lastReply(c);
      c.destroy();
      return `header:${r}`;
    })());
  }
  // 2 clients pipelining 300,000 NOOPs each and never reading a reply.
  for (let i = 0; i < 2; i++) {
    attacks.push((async () => {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: defaultPort, localAddress: `127.0.4.${i + 1}` });
      const socket = socketOf(c);
      socket.pause();
      const noop = Buffer.from('NOOP\r\n'.repeat(10_000));
      for (let k = 0; k < 30; k++) socket.write(noop);
      await new Promise((r) => setTimeout(r, 1500));
      c.destroy();
      return 'noop:done';
    })());
  }
  // One honest 20 MB message at the same time.
  attacks.push(sendOne(defaultPort, 20 * MB).then((r) => `honest:${r.slice(0, 9)}`));

  const results = await Promise.all(attacks);
  const mem = await child.memory();
  const counts: Record<string, number> = {};
  for (const r of results) counts[r] = (counts[r] ?? 0) + 1;
  assert.deepEqual(counts, {
    'line:421 4.0.0 Command line too long': 40,
    'size:552 5.3.4 Message size exceeds fixed maximum message size': 8,
    'header:552 5.3.4 Header size exceeds fixed maximum size': 8,
    'noop:done': 2,
    'honest:250 2.6.0': 1,
  });
  const growth = mem.peakRss - baseline;
  console.log(`listener RSS: baseline ${(baseline / MB).toFixed(0)} MB, peak ${(mem.peakRss / MB).toFixed(0)} MB (+${(growth / MB).toFixed(0)} MB)`);
  assert.ok(growth < RSS_GROWTH_BOUND, `listener RSS grew by ${(growth / MB).toFixed(0)} MB (bound ${RSS_GROWTH_BOUND / MB} MB)`);
  // Still serving.
  assert.match(await sendOne(defaultPort, 64 * 1024), /^250 2\.6\.0 /);
});
