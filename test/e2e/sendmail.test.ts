// mailgw sendmail end to end: the built binary, run as cron and PHP run /usr/sbin/sendmail (also
// through a link named "sendmail"), hands the message to the pickup directory; the gateway's
// listener picks it up and a real delivery worker on a real Redis delivers it to a far side over
// SMTP. Checked there: the envelope (bare user names qualified with the default accepted domain,
// -f, -t with Bcc), the From field -F adds, dots (-i and without), SMTP on standard input (-bs),
// the queue as mailq shows it (-bp, a link named mailq) and -q, newaliases, and the command's
// errors and exit codes (sysexits) when it cannot hand the message over.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { WorkerHandle } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { bin, mailgw } from '../cli/helpers/binary.js';
import { freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { eventually, startWorkerTo } from '../worker/helpers/gateway.js';
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
  // later@… is deferred (451) until a test lets it through: a message for mailq to show.
  far = await startFarSide({ rcpt: (a) => (a.startsWith('later@') ? '451 4.2.1 Mailbox busy, try again later' : null) });
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
  worker = await startWorkerTo(far.port, { dataDir: gw.dataDir, redisUrl: redis.url, busyRetryMs: 200 });
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
    const daemon = mailgw(['sendmail', '-C', config, '-bd'], '');
    assert.equal(daemon.code, 64);
    assert.match(daemon.err, /-bd is not supported: .*mailgw start runs the daemon/);
    const every = mailgw(['sendmail', '-C', config, '-q30m'], '');
    assert.equal(every.code, 64);
    assert.match(every.err, /-q30m is not supported: there is no queue daemon to start/);
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

  it('-bs: SMTP on standard input (as PHP mailers speak it), each message a pickup file; 250 once it is on disk', async () => {
    const session = [
      'EHLO app.local',
      'MAIL FROM:<shop@contoso.test> SIZE=200 BODY=8BITMIME',
      'RCPT TO:<customer@example.net>',
      'RCPT TO:<www-data>', // a bare name, as local programs write it
      'RCPT TO:<a b@example.net>',
      'DATA',
      'Subject: order 5678',
      '',
      'Thanks.',
      '..a line that began with a dot',
      '.',
      'MAIL FROM:<x@contoso.test> BODY=BINARYMIME',
      'MAIL FROM:<x@contoso.test> X-UNKNOWN=1',
      'MAIL FROM:<ops@contoso.test>',
      'DATA',
      'RSET',
      'STARTTLS',
      'QUIT',
      'MAIL FROM:<after-quit@contoso.test>',
      '',
    ].join('\r\n');
    const r = mailgw(['sendmail', '-C', config, '-bs'], session);
    assert.equal(r.code, 0, r.err);
    const replies = r.out.split('\r\n').filter((l) => l !== '');
    assert.match(replies[0]!, /^220 mx\.contoso\.test ESMTP /);
    assert.deepEqual(replies.slice(1, 8), ['250-mx.contoso.test Hello app.local', '250-PIPELINING', '250-SIZE', '250-8BITMIME', '250-DSN', '250-SMTPUTF8', '250 ENHANCEDSTATUSCODES']);
    assert.deepEqual(replies.slice(8, 12), ['250 2.1.0 Sender OK', '250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK', '501 5.1.7 Invalid address']);
    assert.equal(replies[12], '354 Start mail input; end with <CRLF>.<CRLF>');
    assert.match(replies[13]!, /^250 2\.0\.0 Ok: queued as [a-z0-9-]+\.eml in the pickup directory$/);
    assert.deepEqual(replies.slice(14), [
      '503 5.5.1 BODY=BINARYMIME requires BDAT, not DATA',
      '555 5.5.4 Unsupported option: X-UNKNOWN',
      '250 2.1.0 Sender OK',
      '503 5.5.2 Need rcpt command',
      '250 2.0.0 OK',
      '502 5.5.1 Command not implemented',
      '221 2.0.0 Service closing transmission channel',
    ]);
    const m = await delivered('order 5678');
    assert.equal(m.mailFrom, 'shop@contoso.test');
    await eventually(() => far.messages.filter((x: Received) => x.raw.toString('utf8').includes('Subject: order 5678')).flatMap((x: Received) => x.rcptTo).length === 2, 'both recipients delivered');
    const all = far.messages.filter((x: Received) => x.raw.toString('utf8').includes('Subject: order 5678'));
    assert.deepEqual(all.flatMap((x: Received) => x.rcptTo).sort(), ['customer@example.net', 'www-data@contoso.test']);
    assert.match(m.raw.toString('utf8'), /\r\n\r\nThanks\.\r\n\.a line that began with a dot\r\n$/);
    // Nothing of the second transaction (no recipient) nor after QUIT was written.
    assert.deepEqual(readdirSync(pickup).filter((f) => f.endsWith('.eml')), []);
  });

  it('-bs with a real SMTP client: swaks --pipe, pipelined, an 8-bit body', async () => {
    const r = spawnSync('swaks', ['--pipe', `${process.execPath} ${bin} sendmail -bs -C ${config}`, '--pipeline', '--from', 'app@contoso.test', '--to', 'root', '--header', 'Subject: swaks through -bs', '--body', 'Grüße\n'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /<- {2}250 2\.0\.0 Ok: queued as \S+\.eml in the pickup directory/);
    const m = await delivered('swaks through -bs');
    assert.equal(m.mailFrom, 'app@contoso.test');
    assert.deepEqual(m.rcptTo, ['root@contoso.test']);
    assert.match(m.raw.toString('utf8'), /\r\n\r\nGrüße\r\n/);
  });

  it('-bs: a message over maxSendSize gets 552 after its dot and is not written; a lost input drops the open transaction', () => {
    const other = path.join(dir, 'small');
    mkdirSync(path.join(other, 'connectors.d'), { recursive: true });
    mkdirSync(path.join(other, 'pickup'));
    writeFileSync(path.join(other, 'gateway.yaml'), stringify({ ...GATEWAY, maxSendSize: '2KB', pickupDirectoryPath: './pickup' }));
    writeFileSync(path.join(other, 'connectors.d', '10.yaml'), stringify({ name: 'X', bindings: ['127.0.0.1:2525'] }));
    const big = 'x'.repeat(100);
    const lines = ['EHLO a', 'MAIL FROM:<a@contoso.test> SIZE=4096', 'MAIL FROM:<a@contoso.test>', 'RCPT TO:<b@contoso.test>', 'DATA', ...Array.from({ length: 30 }, () => big), '.', 'MAIL FROM:<a@contoso.test>', 'RCPT TO:<b@contoso.test>', 'DATA', 'Subject: cut off', ''];
    const r = mailgw(['sendmail', '-C', path.join(other, 'gateway.yaml'), '-bs'], lines.join('\r\n'));
    assert.equal(r.code, 0, r.err);
    const replies = r.out.split('\r\n').filter((l) => l !== '');
    assert.ok(replies.includes('250-SIZE 2048'), r.out);
    assert.ok(replies.includes('552 5.3.4 Message size exceeds fixed maximum message size'), r.out);
    assert.equal(replies.filter((l) => l.startsWith('552 5.3.4')).length, 2, 'SIZE= at MAIL, then the data at its dot');
    assert.equal(replies.at(-1), '354 Start mail input; end with <CRLF>.<CRLF>');
    assert.deepEqual(readdirSync(path.join(other, 'pickup')), []);
  });

  it('-bp and a link named "mailq": the queue in Postfix\'s format (a deferred recipient under its reason); -q tries it now', async () => {
    const env = { ...process.env, REDIS_URL: redis.url, MAILGW_CONFIG: config };
    const r = mailgw(['sendmail', '-C', config, '-f', '', 'later@example.net'], 'Subject: deferred one\n\nx\n');
    assert.equal(r.code, 0, r.err);
    await gw.listeners.pickupNow();
    await eventually(() => far.rcptSeen.some((x) => x.to === 'later@example.net'), 'the first attempt at the far side');
    const link = path.join(dir, 'mailq');
    symlinkSync(bin, link);
    const list = await eventually(() => {
      const q = spawnSync(process.execPath, [link], { encoding: 'utf8', env });
      // (Earlier tests' messages, delivered, may still be finishing: wait for this one alone.)
      return q.status === 0 && q.stdout.includes('(451 4.2.1 Mailbox busy, try again later)') && q.stdout.endsWith(' in 1 Request.\n') ? q.stdout : null;
    }, 'mailq showing the deferral');
    const lines = list.split('\n');
    assert.equal(lines[0], '-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------');
    assert.match(lines[1]!, /^[0-9A-Z]{26}  +\d+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d  MAILER-DAEMON$/);
    assert.equal(lines[2], '(451 4.2.1 Mailbox busy, try again later)');
    assert.match(lines[3]!, /^ {50,}later@example\.net$/);
    assert.match(list, /\n-- \d+ Kbytes in 1 Request\.\n$/);
    // -bp is the same listing.
    assert.equal(mailgw(['sendmail', '-bp'], '', env).out.split('\n')[2], '(451 4.2.1 Mailbox busy, try again later)');
    // -q: tried again now, not at its next retry minutes away; the far side takes it this time.
    const seen = far.rcptSeen.filter((x) => x.to === 'later@example.net').length;
    far.setRcpt(() => null);
    const q = mailgw(['sendmail', '-q'], '', env);
    assert.equal(q.code, 0, q.err);
    assert.equal(q.out, '');
    await eventually(() => far.rcptSeen.filter((x) => x.to === 'later@example.net').length > seen, 'a second attempt');
    await eventually(() => mailgw(['sendmail', '-bp'], '', env).out === 'Mail queue is empty\n', 'an empty queue');
  });

  it('mailq with the queue\'s Redis away says what Postfix says and exits 69; newaliases does nothing and exits 0', async () => {
    const down = mailgw(['sendmail', '-C', config, '-bp'], '', { ...process.env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    assert.equal(down.code, 69);
    assert.match(down.err, /^mailq: fatal: Queue report unavailable - mail system is down \(.*127\.0\.0\.1/);
    assert.equal(down.out, '');
    // mailq needs the queue, not a pickup directory: a configuration without one says the same.
    const bare = path.join(dir, 'queue-only');
    mkdirSync(path.join(bare, 'connectors.d'), { recursive: true });
    writeFileSync(path.join(bare, 'gateway.yaml'), stringify(GATEWAY));
    writeFileSync(path.join(bare, 'connectors.d', '10.yaml'), stringify({ name: 'X', bindings: ['127.0.0.1:2525'] }));
    const noPickup = mailgw(['sendmail', '-C', path.join(bare, 'gateway.yaml'), '-bp'], '', { ...process.env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    assert.equal(noPickup.code, 69, noPickup.err);
    const link = path.join(dir, 'newaliases');
    symlinkSync(bin, link);
    const r = spawnSync(process.execPath, [link], { encoding: 'utf8', env: { ...process.env, MAILGW_CONFIG: path.join(dir, 'nowhere.yaml') } });
    assert.equal(r.status, 0);
    assert.match(r.stderr, /mailgw keeps no aliases database, nothing to rebuild/);
    const extra = mailgw(['sendmail', '-C', config, '-bp', 'root'], '');
    assert.equal(extra.code, 64);
    assert.match(extra.err, /-bp takes no recipients/);
  });

  it('--help prints its usage and sends nothing', () => {
    const r = mailgw(['sendmail', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /^Usage: mailgw sendmail /);
  });
});
