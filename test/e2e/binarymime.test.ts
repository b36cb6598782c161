// BINARYMIME end to end (RFC 3030): a client sends MAIL … BODY=BINARYMIME and BDAT chunks to a
// listener; the worker relays the message by BDAT with BODY=BINARYMIME to a next hop offering
// BINARYMIME and CHUNKING (the client's octets arrive unchanged under our Received field), and
// bounces it with 554 5.6.3 from a next hop offering CHUNKING only (nothing sent there, a DSN
// to the sender). A second mailgw (its own listener and redis-server) is a far side too: it
// takes the message by BDAT with BODY=BINARYMIME and stores the same octets. Listeners and
// workers in this process, on real redis-servers.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { GatewayInput } from '@mailgw/config';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { startChunkingFarSide, type ChunkingFarSide } from '../worker/helpers/chunking-far-side.js';
import { parseDsn } from '../worker/helpers/dsn.js';
import { eventually, mailbox, testGateway, withoutDeliveryHeaders } from '../worker/helpers/gateway.js';

let redis: TestRedis;
let gw: TestGateway;
let workers: WorkerHandle;
let binarySide: ChunkingFarSide;
let chunkingOnly: ChunkingFarSide;
let dataDir: string;
let port: number;
/** A second mailgw (its own redis-server) as the far side: CHUNKING and BINARYMIME by its own listener. */
let farRedis: TestRedis;
let farGw: TestGateway;
let farPort: number;

before(async () => {
  redis = await startRedis();
  binarySide = await startChunkingFarSide({ binaryMime: true });
  chunkingOnly = await startChunkingFarSide({ binaryMime: false });
  port = await freePort();
  farPort = await freePort();
  farRedis = await startRedis();
  farGw = await startGateway({
    redisUrl: farRedis.url,
    gateway: await baseGateway({ fqdn: 'mx.hop.test', acceptedDomains: [{ domain: 'hop.test', type: 'Authoritative', default: true }] }),
    connectors: { default: { name: 'Default', usage: 'Internet', bindings: [`127.0.0.1:${farPort}`], tarpitInterval: 0, protocolLoggingLevel: 'Verbose' } },
  });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-binarymime-'));
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({
      acceptedDomains: [
        { domain: 'contoso.test', type: 'Authoritative', default: true },
        { domain: 'binary.test', type: 'InternalRelay' },
        { domain: 'chunking.test', type: 'InternalRelay' },
        { domain: 'hop.test', type: 'InternalRelay' },
      ],
    }),
    connectors: { default: { name: 'Default', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } },
  });
  const root = path.join(dataDir, 'mailboxes');
  workers = await startWorkers({
    gateway: testGateway({
      prefix: '{mailgw}',
      routes: [
        { domains: ['contoso.test', 'example.net'], to: `maildir:${root}` },
        { domains: ['binary.test'], to: `smtp://127.0.0.1:${binarySide.port}` },
        { domains: ['chunking.test'], to: `smtp://127.0.0.1:${chunkingOnly.port}` },
        { domains: ['hop.test'], to: `smtp://127.0.0.1:${farPort}` },
      ] as GatewayInput['routes'],
    }),
    dataDir,
    redisUrl: redis.url,
    logger: pino({ level: 'silent' }),
    concurrency: 2,
    sessionIdleMs: 500,
  });
});

after(async () => {
  await workers?.close({ timeoutMs: 5000 });
  await gw?.close();
  await farGw?.close();
  await farRedis?.stop();
  await binarySide?.close();
  await chunkingOnly?.close();
  await redis?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** Every protocol log line under `dir` (one directory per connector). */
async function protocolLogText(dir: string): Promise<string> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (e.isFile()) out.push(await readFile(path.join(e.parentPath, e.name), 'utf8'));
  }
  return out.join('\n');
}

/** Queue ids of the messages the far mailgw holds (its body keys). */
async function farIds(): Promise<string[]> {
  const r = new Redis(farRedis.url);
  try {
    return (await r.keys('{mailgw}:body:*')).map((k) => k.slice('{mailgw}:body:'.length));
  } finally {
    r.disconnect();
  }
}

/** A binary message with Message-ID and Date (so the listener adds nothing but its Received field). */
function binaryMessage(subject: string): Buffer {
  return Buffer.concat([
    Buffer.from(`From: <sender@example.net>\r\nSubject: ${subject}\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <${subject}@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n`),
    Buffer.from([0, 0x0a, 0x2e, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a, 0x0d, 0xff, 0x80, 0x00, 0x0a, 0x0a]),
  ]);
}

/** MAIL … BODY=BINARYMIME, RCPT, the message in two BDAT chunks; returns the queue id. */
async function sendBinary(to: string, msg: Buffer, body = 'BINARYMIME'): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  try {
    assert.ok((await c.ehlo()).lines.includes('BINARYMIME'));
    assert.equal((await c.cmd(`MAIL FROM:<sender@example.net> BODY=${body}`)).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<${to}>`)).code, 250);
    const cut = 40;
    c.write(Buffer.concat([Buffer.from(`BDAT ${cut}\r\n`), msg.subarray(0, cut), Buffer.from(`BDAT ${msg.length - cut} LAST\r\n`), msg.subarray(cut)]));
    assert.equal((await c.read()).code, 250);
    const end = await c.read();
    assert.match(end.last, /^250 2\.6\.0 /);
    await c.quit();
    return queueIdOf(end);
  } finally {
    c.destroy();
  }
}

describe('BINARYMIME in by BDAT, out by BDAT', () => {
  it('to a next hop offering BINARYMIME and CHUNKING: BODY=BINARYMIME, BDAT, the client octets unchanged', async () => {
    const msg = binaryMessage('binary-out');
    await sendBinary('bob@binary.test', msg);
    const got = await eventually(() => binarySide.messages[0], 'the message at the far side');
    assert.equal(got.via, 'BDAT');
    assert.ok(got.mailParams.includes('BODY=BINARYMIME'), got.mailParams.join(' '));
    assert.deepEqual(got.rcptTo, ['bob@binary.test']);
    assert.match(got.raw.subarray(0, 9).toString(), /^Received:/);
    assert.ok(got.raw.subarray(got.raw.length - msg.length).equals(msg), 'the client message follows our Received field byte for byte');
  });

  it('mailgw to mailgw: the far listener gets BODY=BINARYMIME by BDAT and stores the same octets', async () => {
    const msg = binaryMessage('mailgw-to-mailgw');
    await sendBinary('dana@hop.test', msg);
    const found = await eventually(async () => {
      const ids = await farIds();
      for (const id of ids) {
        const job = await farGw.job(id);
        if (job?.data.rcptTo.some((r) => r.address === 'dana@hop.test')) return { id, job };
      }
      return null;
    }, 'the message queued at the far mailgw');
    assert.equal(found.job.data.mailFrom.body, 'BINARYMIME');
    const stored = (await farGw.body(found.id))!;
    assert.ok(stored.subarray(stored.length - msg.length).equals(msg), 'the client message, byte for byte, under two Received fields');
    assert.equal(stored.toString('latin1').match(/^Received: /gm)?.length, 2);
  });

  it('mailgw to mailgw, a text message: BDAT without BODY=BINARYMIME, lines starting with "." arrive as they were', async () => {
    const msg = Buffer.from('From: <sender@example.net>\r\nSubject: dots\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <dots@example.net>\r\n\r\n.leading dot\r\n.\r\n..two dots\r\nlast\r\n');
    await sendBinary('erin@hop.test', msg, '8BITMIME');
    const found = await eventually(async () => {
      for (const id of await farIds()) {
        const job = await farGw.job(id);
        if (job?.data.rcptTo.some((r) => r.address === 'erin@hop.test')) return { id, job };
      }
      return null;
    }, 'the message queued at the far mailgw');
    assert.equal(found.job.data.mailFrom.body, '8BITMIME');
    // The far listener's protocol log: our worker sent BDAT, never DATA.
    const log = await eventually(async () => {
      const text = await protocolLogText(path.join(farGw.dataDir, 'logs', 'protocol'));
      return /BDAT \d+ LAST/.test(text) ? text : null;
    }, 'BDAT in the far protocol log');
    assert.doesNotMatch(log, /,DATA,|"DATA"|<,DATA/);
    const stored = (await farGw.body(found.id))!;
    assert.ok(stored.subarray(stored.length - msg.length).equals(msg), stored.toString('latin1'));
  });

  it('to a next hop offering CHUNKING only: nothing sent there, a DSN with 5.6.3 to the sender', async () => {
    await sendBinary('carol@chunking.test', binaryMessage('binary-refused'));
    const root = path.join(dataDir, 'mailboxes');
    const [dsnFile] = await eventually(async () => {
      const box = await mailbox(root, 'sender@example.net');
      return box.length > 0 ? box : null;
    }, 'the DSN in the sender mailbox');
    const dsn = await parseDsn(withoutDeliveryHeaders(dsnFile!).rest);
    assert.equal(dsn.recipients[0]!.status, '5.6.3');
    assert.match(dsn.recipients[0]!['diagnostic-code'] ?? '', /554 5\.6\.3/);
    // A binary body is no 8bit MIME content: the DSN returns the header only.
    assert.equal(dsn.returned?.type, 'text/rfc822-headers');
    assert.match(dsn.returned!.content.toString(), /Subject: binary-refused/);
    assert.equal(chunkingOnly.messages.length, 0);
    assert.ok(!chunkingOnly.commands.some((c) => /^(MAIL|BDAT|DATA)/.test(c)), chunkingOnly.commands.join(' | '));
  });
});
