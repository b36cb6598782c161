// Runs the conformance table (probes.ts) against a live listener over TCP (real Redis behind
// it): every probe on its own connection, each step's lines written in one write, the replies
// read in order and compared by code and enhanced code. Then what the table cannot show: an
// SMTPUTF8 message reaches the queue with its UTF-8 envelope, the job marked smtpUtf8 and the
// U-label domain stored as its A-label.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf, type ClientReply } from '../listener/helpers/smtp-client.js';
import { PROBES, type Probe, type Step } from './probes.js';

let redis: TestRedis;
let gw: TestGateway;
const port = { Default: 0, Bare: 0, NoBinary: 0 };

before(async () => {
  redis = await startRedis();
  port.Default = await freePort();
  port.Bare = await freePort();
  port.NoBinary = await freePort();
  const common = { tarpitInterval: 0, maxProtocolErrors: 'unlimited', messageRateLimit: 'unlimited' };
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({
      acceptedDomains: [
        { domain: 'contoso.test', type: 'Authoritative', default: true },
        { domain: 'xn--bcher-kva.test', type: 'Authoritative' },
      ],
    }),
    connectors: {
      default: { name: 'Default', usage: 'Internet', bindings: [`127.0.0.1:${port.Default}`], maxMessageSize: '64KB', ...common },
      nobinary: { name: 'NoBinary', bindings: [`127.0.0.1:${port.NoBinary}`], remoteIPRanges: ['127.0.0.0/8'], permissionGroups: ['AnonymousUsers'], binaryMimeEnabled: false, ...common },
      bare: {
        name: 'Bare',
        bindings: [`127.0.0.1:${port.Bare}`],
        remoteIPRanges: ['127.0.0.0/8'],
        permissionGroups: ['AnonymousUsers'],
        sizeEnabled: 'Disabled',
        eightBitMimeEnabled: false,
        dsnEnabled: false,
        smtpUtf8Enabled: false,
        chunkingEnabled: false,
        ...common,
      },
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

function bytes(send: Step['send']): Buffer {
  if (Buffer.isBuffer(send)) return send;
  const lines = typeof send === 'string' ? [send] : send;
  return Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'utf8');
}

async function run(p: Probe): Promise<string[]> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: port[p.connector ?? 'Default'] });
  const got: string[] = [];
  try {
    for (const [i, step] of p.steps.entries()) {
      c.write(bytes(step.send));
      const want = typeof step.expect === 'string' ? [step.expect] : step.expect;
      for (const [j, w] of want.entries()) {
        const r: ClientReply = await c.read();
        assert.ok(r.last.startsWith(w), `step ${i + 1}, reply ${j + 1}: expected "${w}…", got "${r.last}"`);
        got.push(r.last);
      }
      if (step.tls) await c.upgrade();
      if (step.closes) {
        await c.closed;
        return got;
      }
    }
    await c.quit();
  } finally {
    c.destroy();
  }
  return got;
}

describe('SMTP conformance table (test/conformance/probes.ts)', { concurrency: 4 }, () => {
  for (const p of PROBES) {
    it(`${p.connector ?? 'Default'}: ${p.name} [${p.source}]${p.postfix ? ` (Postfix: ${p.postfix})` : ''}`, async () => {
      await run(p);
    });
  }
});

describe('SMTPUTF8 end to end into the queue', () => {
  it('an SMTPUTF8 message is queued with its UTF-8 addresses, the job marked smtpUtf8, the U-label domain as A-label', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.Default });
    const utf8 = async (line: string) => {
      c.write(Buffer.from(`${line}\r\n`, 'utf8'));
      return c.read();
    };
    assert.ok((await c.ehlo()).lines.includes('SMTPUTF8'));
    assert.equal((await utf8('MAIL FROM:<jörg@ext.test> SMTPUTF8')).last, '250 2.1.0 Sender OK');
    assert.equal((await utf8('RCPT TO:<alice@bücher.test>')).last, '250 2.1.5 Recipient OK');
    assert.equal((await utf8('RCPT TO:<ålice@contoso.test>')).last, '250 2.1.5 Recipient OK');
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(Buffer.from('From: Jörg <jörg@ext.test>\r\nSubject: grüße\r\n\r\nbody\r\n.\r\n', 'utf8'));
    const end = await c.read();
    assert.match(end.last, /^250 2\.6\.0 /);
    const job = await gw.job(queueIdOf(end));
    assert.ok(job);
    assert.equal(job.data.mailFrom.smtpUtf8, true);
    assert.deepEqual(job.data.mailFrom.sender, { local: 'jörg', domain: 'ext.test' });
    assert.deepEqual(job.data.rcptTo.map((r) => r.address), ['alice@xn--bcher-kva.test', 'ålice@contoso.test']);
    await c.quit();
  });

  it('a plain transaction is not marked smtpUtf8', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.Default });
    await c.ehlo();
    const t = await c.transaction('a@example.net', ['alice@contoso.test'], 'Subject: plain\r\n\r\nbody\r\n');
    const job = await gw.job(queueIdOf(t.end!));
    assert.equal(job?.data.mailFrom.smtpUtf8, undefined);
    await c.quit();
  });
});

const swaks = promisify(execFile);

describe('a real client: swaks', () => {
  it('--pipeline: the envelope in one group, replies in order, the accepted recipients queued', async () => {
    const r = await swaks('swaks', ['--server', `127.0.0.1:${port.Default}`, '--pipeline', '--from', 'x@example.net', '--to', 'alice@contoso.test,user@other.test,postmaster@contoso.test']);
    assert.match(r.stdout, /<\*\* +550 5\.7\.1 Unable to relay/);
    const m = /<- +250 2\.6\.0 <\S+> \[InternalId=([0-9A-Z]+)\] Queued mail for delivery/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const job = await gw.job(m[1]!);
    assert.deepEqual(job?.data.rcptTo.map((x) => x.address), ['alice@contoso.test', 'postmaster@contoso.test']);
  });

  it('a UTF-8 sender without the SMTPUTF8 parameter (swaks sends none): 553 5.6.7', async () => {
    const r = await swaks('swaks', ['--server', `127.0.0.1:${port.Default}`, '--from', 'jörg@ext.test', '--to', 'alice@contoso.test', '--quit-after', 'MAIL']).catch((e: { stdout: string }) => e);
    assert.match(r.stdout, /<\*\* +553 5\.6\.7 Non-ASCII addresses require the SMTPUTF8 parameter/);
  });
});

describe('CHUNKING end to end into the queue', () => {
  it('BDAT chunks become one message, byte for byte after the trace header; a reset BDAT transaction stores nothing', async () => {
    const before = await gw.stored();
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.Default });
    assert.ok((await c.ehlo()).lines.includes('CHUNKING'));
    assert.equal((await c.cmd('MAIL FROM:<a@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
    c.write('BDAT 12\r\nSubject: x\r\n');
    assert.equal((await c.read()).last, '250 2.0.0 12 octets received');
    assert.equal((await c.cmd('RSET')).last, '250 2.0.0 Resetting');
    const parts = ['From: <a@example.net>\r\n', 'Subject: chunked\r\n\r\n', '.leading dot, no stuffing\r\nlast line\r\n'];
    assert.equal((await c.cmd('MAIL FROM:<a@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
    c.write(parts.map((p, i) => `BDAT ${p.length}${i === parts.length - 1 ? ' LAST' : ''}\r\n${p}`).join(''));
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.read()).code, 250);
    const end = await c.read();
    assert.match(end.last, /^250 2\.6\.0 /);
    const body = (await gw.body(queueIdOf(end)))!.toString('latin1');
    // The header may gain Message-ID/Date (the gateway adds them when missing); the body is as sent, no dot-stuffing undone.
    assert.ok(body.endsWith('\r\n\r\n.leading dot, no stuffing\r\nlast line\r\n'), body);
    assert.match(body, /\r\nFrom: <a@example\.net>\r\n/);
    assert.match(body, /\r\nSubject: chunked\r\n/);
    assert.match(body, /^Received: from /);
    await c.quit();
    const after = await gw.stored();
    assert.equal(after.jobs - before.jobs, 1, 'one job: the reset transaction left nothing');
    assert.equal(after.bodies - before.bodies, 1, 'one body: the reset transaction left nothing');
  });
});

describe('BINARYMIME end to end into the queue', () => {
  it('EHLO offers BINARYMIME just before CHUNKING, as Exchange (not where binaryMimeEnabled or chunkingEnabled is false)', async () => {
    for (const [connector, want] of [['Default', true], ['NoBinary', false], ['Bare', false]] as const) {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: port[connector] });
      const lines = (await c.ehlo()).lines;
      assert.equal(lines.includes('BINARYMIME'), want, `${connector}: ${lines.join(' | ')}`);
      if (want) assert.ok(lines.indexOf('BINARYMIME') >= 0 && lines.indexOf('BINARYMIME') + 1 === lines.indexOf('CHUNKING'));
      await c.quit();
    }
  });

  it('BODY=BINARYMIME by BDAT: queued with body BINARYMIME, the octets stored exactly (NUL, bare CR/LF, CRLF.CRLF)', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.Default });
    await c.ehlo();
    const octets = Buffer.from([0, 0x0a, 0x0d, 0x41, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a, 0xff, 0x0d]);
    const body = Buffer.concat([Buffer.from('From: <a@example.net>\r\nSubject: bin\r\n\r\n'), octets]);
    assert.equal((await c.cmd('MAIL FROM:<a@example.net> BODY=BINARYMIME')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
    c.write(Buffer.concat([Buffer.from(`BDAT ${body.length - 5}\r\n`), body.subarray(0, body.length - 5), Buffer.from('BDAT 5 LAST\r\n'), body.subarray(body.length - 5)]));
    assert.equal((await c.read()).code, 250);
    const end = await c.read();
    assert.match(end.last, /^250 2\.6\.0 /);
    const id = queueIdOf(end);
    assert.equal((await gw.job(id))?.data.mailFrom.body, 'BINARYMIME');
    const stored = (await gw.body(id))!;
    assert.ok(stored.subarray(stored.length - octets.length).equals(octets), stored.toString('latin1'));
    await c.quit();
  });
});
