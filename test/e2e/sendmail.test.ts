// mailgw sendmail end to end: the built binary, run as cron and PHP run /usr/sbin/sendmail (also
// through a link named "sendmail"), hands the message to the pickup directory; the gateway's
// listener picks it up and a real delivery worker on a real Redis delivers it to a far side over
// SMTP. Checked there: the envelope (bare user names qualified with the default accepted domain,
// -f, -t with Bcc), the From field -F adds, dots (-i and without), and the command's errors and
// exit codes (sysexits) when it cannot hand the message over.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { bin, mailgw } from '../cli/helpers/binary.js';
import { freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { eventually, testGateway } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide, type Received } from '../worker/helpers/far-side.js';

let redis: TestRedis;
let gw: TestGateway;
let far: FarSide;
let worker: WorkerHandle;
let dir: string;
let config: string;
let pickup: string;

const GATEWAY = {
  fqdn: 'mx.contoso.test',
  acceptedDomains: [{ domain: 'contoso.test', type: 'Authoritative', default: true }],
};

before(async () => {
  redis = await startRedis();
  far = await startFarSide();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-sendmail-'));
  pickup = path.join(dir, 'pickup');
  const port = await freePort();
  const connector = { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 };
  // The files the command reads (as an admin writes them: the pickup directory relative to gateway.yaml)…
  config = path.join(dir, 'gateway.yaml');
  writeFileSync(config, stringify({ ...GATEWAY, pickupDirectoryPath: './pickup', routes: [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] }));
  mkdirSync(path.join(dir, 'connectors.d'));
  writeFileSync(path.join(dir, 'connectors.d', '10-internet.yaml'), stringify(connector));
  // …and the gateway on the same configuration, its pickup directory made at start.
  gw = await startGateway({ redisUrl: redis.url, gateway: { ...GATEWAY, pickupDirectoryPath: pickup }, connectors: { internet: connector } });
  worker = await startWorkers({
    gateway: testGateway({ prefix: '{mailgw}', routes: [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] as never }),
    dataDir: gw.dataDir,
    redisUrl: redis.url,
    logger: pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' }),
    concurrency: 2,
    sessionIdleMs: 1000,
    busyRetryMs: 200,
  });
});

after(async () => {
  await worker?.close({ timeoutMs: 5000 });
  await gw?.close();
  await far?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The message the far side got with this Subject. */
async function delivered(subject: string): Promise<Received> {
  await gw.listeners.pickupNow();
  return eventually(() => far.messages.find((m: Received) => m.raw.toString('utf8').includes(`\r\nSubject: ${subject}\r\n`)), `"${subject}" at the far side`);
}

describe('mailgw sendmail', () => {
  it('as cron runs it (-FCronDaemon -i -B8BITMIME -oem root): to root@<default domain>, From added, a lone dot kept', async () => {
    const r = mailgw(['sendmail', '-C', config, '-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'root'], 'Subject: Cron <root@mx> run-parts /etc/cron.daily\nTo: root\n\nline one\n.\nline three\n');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    const m = await delivered('Cron <root@mx> run-parts /etc/cron.daily');
    assert.equal(m.mailFrom, `${os.userInfo().username}@contoso.test`);
    assert.deepEqual(m.rcptTo, ['root@contoso.test']);
    const text = m.raw.toString('utf8');
    assert.match(text, new RegExp(`\\r\\nFrom: "CronDaemon" <${os.userInfo().username}@contoso\\.test>\\r\\n`));
    assert.match(text, /\r\n\r\nline one\r\n\.\r\nline three\r\n$/);
    assert.doesNotMatch(text, /X-Sender|X-Receiver/);
  });

  it('without -i a line of a single dot ends the message; -f sets the sender', async () => {
    const r = mailgw(['sendmail', '-C', config, '-f', 'alerts@contoso.test', 'ops@example.net,dba@example.net'], 'From: Monitoring <alerts@contoso.test>\nSubject: disk 91%\n\n/var is at 91%\n.\nthis is not sent\n');
    assert.equal(r.code, 0, r.err);
    const m = await delivered('disk 91%');
    assert.equal(m.mailFrom, 'alerts@contoso.test');
    assert.deepEqual(m.rcptTo.sort(), ['dba@example.net', 'ops@example.net']);
    assert.match(m.raw.toString('utf8'), /\r\n\r\n\/var is at 91%\r\n$/);
  });

  it('linked as "sendmail", -t: recipients from To, Cc and Bcc, the Bcc field never delivered', async () => {
    const link = path.join(dir, 'sendmail');
    symlinkSync(bin, link);
    const r = spawnSync(process.execPath, [link, '-t', '-i', '-r', 'www-data@contoso.test'], { input: 'From: shop@contoso.test\nTo: customer@example.net\nCc: sales@contoso.test\nBcc: archive@contoso.test\nSubject: order 1234\n\nThanks.\n', encoding: 'utf8', env: { ...process.env, MAILGW_CONFIG: config } });
    assert.equal(r.status, 0, r.stderr);
    const m = await delivered('order 1234');
    assert.equal(m.mailFrom, 'www-data@contoso.test');
    await eventually(() => far.messages.filter((x: Received) => x.raw.toString('utf8').includes('Subject: order 1234')).flatMap((x: Received) => x.rcptTo).length === 3, 'all three delivered');
    const all = far.messages.filter((x: Received) => x.raw.toString('utf8').includes('Subject: order 1234'));
    assert.deepEqual(all.flatMap((x: Received) => x.rcptTo).sort(), ['archive@contoso.test', 'customer@example.net', 'sales@contoso.test']);
    for (const x of all) assert.doesNotMatch(x.raw.toString('utf8'), /^Bcc:/im);
  });

  it('what it cannot do, it says, with sendmail\'s exit codes; nothing is left in the directory', async () => {
    const before = readdirSync(pickup).length;
    const none = mailgw(['sendmail', '-C', config], 'Subject: x\n\nx\n');
    assert.equal(none.code, 64);
    assert.match(none.err, /^mailgw sendmail: no recipients \(give them as arguments, or -t to read To, Cc and Bcc\)\n$/);
    const t = mailgw(['sendmail', '-C', config, '-t'], 'Subject: x\n\nx\n');
    assert.equal(t.code, 64);
    assert.match(t.err, /no recipients: none on the command line and none in To, Cc or Bcc/);
    const unknown = mailgw(['sendmail', '-C', config, '-Z', 'root'], 'x');
    assert.equal(unknown.code, 64);
    assert.match(unknown.err, /unknown option -Z\nUsage: mailgw sendmail/);
    const queue = mailgw(['sendmail', '-C', config, '-bp'], '');
    assert.equal(queue.code, 64);
    assert.match(queue.err, /-bp is not supported: .*mailgw queue/);
    const badRcpt = mailgw(['sendmail', '-C', config, 'a b@c'], 'x');
    assert.equal(badRcpt.code, 64);
    // No pickup directory configured: 78 (EX_CONFIG), naming the key.
    const other = path.join(dir, 'nopickup');
    mkdirSync(path.join(other, 'connectors.d'), { recursive: true });
    writeFileSync(path.join(other, 'gateway.yaml'), stringify(GATEWAY));
    writeFileSync(path.join(other, 'connectors.d', '10.yaml'), stringify({ name: 'X', bindings: ['127.0.0.1:2525'] }));
    const off = mailgw(['sendmail', '-C', path.join(other, 'gateway.yaml'), 'root'], 'x');
    assert.equal(off.code, 78);
    assert.match(off.err, /has no pickupDirectoryPath: set one/);
    // A configuration with errors: 78, the file and key named.
    writeFileSync(path.join(other, 'gateway.yaml'), stringify({ ...GATEWAY, pickupDirectoryMaxMessagesPerMinute: 0 }));
    const broken = mailgw(['sendmail', '-C', path.join(other, 'gateway.yaml'), 'root'], 'x');
    assert.equal(broken.code, 78);
    assert.match(broken.err, /pickupDirectoryMaxMessagesPerMinute: must be at least 1/);
    // The directory gone: 73 (EX_CANTCREAT).
    writeFileSync(path.join(other, 'gateway.yaml'), stringify({ ...GATEWAY, pickupDirectoryPath: './missing' }));
    const missing = mailgw(['sendmail', '-C', path.join(other, 'gateway.yaml'), 'root'], 'x');
    assert.equal(missing.code, 73);
    assert.match(missing.err, /the pickup directory \S+missing does not exist yet \(mailgw start creates it\)/);
    assert.equal(readdirSync(pickup).length, before);
  });

  it('--help prints its usage and sends nothing', () => {
    const r = mailgw(['sendmail', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /^Usage: mailgw sendmail /);
  });
});
