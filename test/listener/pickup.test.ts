// The pickup directory (gateway.yaml pickupDirectoryPath; Exchange's Pickup directory) on a real
// Redis: *.eml files dropped there are queued like SMTP mail, with the envelope from the header
// (Sender/From; To, Cc, Bcc; Resent-*) or from leading X-Sender/X-Receiver fields; Bcc and the X-
// fields never stored; LF line ends made CRLF; Received, Message-ID and Date added; transport and
// journal rules applied, anti-spam not. Files that cannot be sent are renamed *.bad with the reason
// in the log (no sender, no recipients, too many, header too large, a symbolic link, refused by a
// rule); while Redis is down files stay and are sent once it is back; the per-minute limit leaves
// the rest for later; a claim left by a dead process is put back and sent.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { linkSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import type { MessageFilter } from '@mailgw/mail';
import { receiveTracker } from '@mailgw/ops';
import type { TrackingEvent } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type LogLine, type TestGateway } from './helpers/gateway.js';

let redis: TestRedis;
let gw: TestGateway;
let dir: string;
const tracked: TrackingEvent[] = [];
const tracker = receiveTracker({ write: (e) => void tracked.push(e), close: async () => undefined });
/** The pickup's events for the metrics (mailgw_pickup_files_total): "<result> <reason>". */
const pickupEvents: string[] = [];

/** An anti-spam filter that refuses everything: pickup mail bypasses anti-spam, so it never judges it. */
const refuseAll: MessageFilter = {
  name: 'refuse-all',
  antiSpam: true,
  onFailure: 'tempfail',
  begin: () => ({ header: () => undefined, body: () => undefined, abort: () => undefined, end: async () => ({ filter: 'refuse-all', verdict: 'reject', headers: [], reason: 'refuses everything' }) }),
};

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-pickup-'));
  const port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    commandTimeoutMs: 1000,
    gateway: await baseGateway({
      pickupDirectoryPath: dir,
      pickupDirectoryMaxRecipientsPerMessage: 4,
      pickupDirectoryMaxHeaderSize: '32KB',
      maxSendSize: '100KB',
      transportRules: [
        { name: 'Nightly', subjectContainsWords: ['report'], prependSubject: '[Nightly] ' },
        { name: 'No secrets', subjectContainsWords: ['secret'], smtpRejectMessageRejectText: 'No secrets by mail' },
        // The README's recipe for root's mail (Postfix's /etc/aliases).
        { name: 'root to the admins', sentTo: ['root@contoso.test'], redirectMessageTo: ['it-ops@contoso.test'] },
      ],
      journalRules: [{ name: 'Legal', journalEmailAddress: 'journal@archive.test', recipient: 'ceo@contoso.test' }],
    }),
    connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } },
    filtersFor: (p) => [refuseAll, ...contentFilters(p.config.gateway)],
    observer: (e) => {
      tracker(e);
      if (e.type === 'pickup-file') pickupEvents.push(`${e.result} ${e.reason}`.trim());
    },
    // A file that looks unfinished is judged at once here (the default waits a minute for its writer).
    pickupSettleMs: 0,
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

// Each test starts with an empty directory and a fresh per-minute count (a new minute for the counter).
let seen = 0;
beforeEach(() => {
  for (const f of readdirSync(dir)) rmSync(path.join(dir, f), { force: true });
  seen = gw.logs.length;
});

/** Drops a file as a writer should: written under another name, then renamed to *.eml. */
function drop(name: string, text: string | Buffer): void {
  const part = path.join(dir, `.${name}.part`);
  writeFileSync(part, text);
  spawnSync('mv', [part, path.join(dir, name)]);
}

const newLogs = (msg: string): LogLine[] => gw.logs.slice(seen).filter((l) => l.msg === msg);
const files = () => readdirSync(dir).sort();

async function pickedUp(file: string): Promise<{ queueId: string; body: string; job: NonNullable<Awaited<ReturnType<TestGateway['job']>>> }> {
  await gw.listeners.pickupNow();
  const line = newLogs('message picked up').find((l) => l.file === file);
  assert.ok(line, `${file} was picked up; log: ${JSON.stringify(gw.logs.slice(seen).map((l) => [l.msg, l.why ?? l.reason]))}`);
  const queueId = String(line.queueId);
  const job = await gw.job(queueId);
  assert.ok(job);
  return { queueId, body: (await gw.body(queueId))!.toString('utf8'), job };
}

/** A gateway of its own with a pickup directory of its own (its own per-minute count, settle time and recipients), for one test. */
async function ownPickup(extra: Record<string, unknown>, test: (g: TestGateway, own: string) => Promise<void>): Promise<void> {
  const own = mkdtempSync(path.join(os.tmpdir(), 'mailgw-pickup-own-'));
  const port = await freePort();
  const g = await startGateway({ redisUrl: redis.url, gateway: await baseGateway({ pickupDirectoryPath: own, ...extra }), connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } } });
  try {
    await test(g, own);
  } finally {
    await g.close();
    rmSync(own, { recursive: true, force: true });
  }
}

describe('pickup directory: the envelope from the header (Exchange Pickup format)', () => {
  it('From, To, Cc and Bcc; LF line ends; Bcc removed; Received, Message-ID and Date added; the file deleted', async () => {
    drop('nightly.eml', 'From: Backup <backup@contoso.test>\nTo: Ops <ops@contoso.test>, bob@fabrikam.test\nCc: "Carol" <carol@example.net>\nBcc: audit@contoso.test\nSubject: backup report\n\nAll 12 jobs done.\nBye.\n');
    const { job, body, queueId } = await pickedUp('nightly.eml');
    assert.deepEqual(files(), [], 'the file is gone once queued');
    assert.equal(job.data.connector, 'Pickup');
    assert.deepEqual(job.data.mailFrom.sender, { local: 'backup', domain: 'contoso.test' });
    assert.deepEqual(job.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['ops@contoso.test', 'bob@fabrikam.test', 'carol@example.net', 'audit@contoso.test']);
    assert.equal(job.data.mailFrom.body, '7BIT');
    assert.ok(!/\n(?!\r)|[^\r]\n/.test(body.replace(/\r\n/g, '')), 'CRLF only');
    assert.ok(!body.split('\r\n').some((l) => /\n/.test(l)), 'no bare LF');
    assert.match(body, new RegExp(`^Received: by mx\\.contoso\\.test \\(mailgw, pickup directory, from userid ${process.getuid!()}\\)\\r\\n\\tid ${queueId}; `));
    assert.doesNotMatch(body, /^Bcc:/im, 'Bcc never stored');
    assert.match(body, /\r\nMessage-ID: <[^>]+@mx\.contoso\.test>\r\n/i);
    assert.match(body, /\r\nDate: /);
    // The transport rules ran (and the anti-spam filter did not: it refuses everything).
    assert.match(body, /\r\nSubject: \[Nightly\] backup report\r\n/);
    assert.match(body, /\r\n\r\nAll 12 jobs done\.\r\nBye\.\r\n$/);
    assert.ok(!gw.logs.slice(seen).some((l) => l.filter === 'refuse-all'), 'the anti-spam filter never saw it');
    // The message tracking log: RECEIVE from PICKUP (Originating), then SUBMIT.
    const ev = tracked.filter((e) => e.internalMessageId === queueId);
    assert.deepEqual(ev.map((e) => [e.eventId, e.source]), [['RECEIVE', 'PICKUP'], ['AGENTINFO', 'AGENT'], ['SUBMIT', 'QUEUE']]);
    assert.equal(ev[0]!.directionality, 'Originating');
    assert.equal(ev[0]!.connectorId, 'Pickup');
  });

  it('Sender before From; several From addresses need it; 8-bit text is BODY=8BITMIME; a UTF-8 address is SMTPUTF8', async () => {
    drop('two-authors.eml', 'From: a@contoso.test, b@contoso.test\r\nSender: secretary@contoso.test\r\nTo: jürgen@contoso.test\r\nSubject: Grüße\r\n\r\nSchöne Grüße\r\n');
    const { job } = await pickedUp('two-authors.eml');
    assert.deepEqual(job.data.mailFrom.sender, { local: 'secretary', domain: 'contoso.test' });
    assert.equal(job.data.mailFrom.body, '8BITMIME');
    assert.equal(job.data.mailFrom.smtpUtf8, true);
    assert.deepEqual(job.data.rcptTo.map((r) => r.local), ['jürgen']);
  });

  it('a resent message: the envelope from Resent-From and Resent-To, the original To not a recipient', async () => {
    drop('resent.eml', 'Resent-From: helpdesk@contoso.test\nResent-To: tier2@contoso.test\nResent-Bcc: log@contoso.test\nFrom: customer@example.net\nTo: helpdesk@contoso.test\nSubject: printer\n\nIt is broken.\n');
    const { job, body } = await pickedUp('resent.eml');
    assert.deepEqual(job.data.mailFrom.sender, { local: 'helpdesk', domain: 'contoso.test' });
    assert.deepEqual(job.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['tier2@contoso.test', 'log@contoso.test']);
    assert.doesNotMatch(body, /Resent-Bcc/i);
    assert.match(body, /\r\nTo: helpdesk@contoso\.test\r\n/);
  });

  it('a journal rule applies: mail to the CEO gets its envelope journal report, a forged X-MS-Journal-Report does not escape it; organisation fields removed', async () => {
    drop('to-ceo.eml', 'From: cfo@contoso.test\nTo: ceo@contoso.test\nX-MS-Journal-Report:\nX-MS-Exchange-Organization-SCL: -1\nSubject: numbers\n\nQ4.\n');
    const { queueId, body } = await pickedUp('to-ceo.eml');
    assert.doesNotMatch(body, /X-MS-Exchange-Organization-SCL/i, 'the header firewall removed it');
    const report = newLogs('journal report queued').find((l) => l.queueId === queueId);
    assert.ok(report, 'a journal report');
    assert.equal(report.to, 'journal@archive.test');
    const job = await gw.job(String(report.journalQueueId));
    assert.deepEqual(job!.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['journal@archive.test']);
  });
});

describe('pickup directory: X-Sender / X-Receiver (Exchange Replay format, what mailgw sendmail writes)', () => {
  it('the envelope from the X- fields whatever the header says; the X- fields removed; From added when missing', async () => {
    drop('replay.eml', 'X-Sender: <cron@contoso.test>\nX-Receiver: <admin@contoso.test>\nX-Receiver: <ops@fabrikam.test> NOTIFY=NEVER\nTo: someone-else@example.net\nSubject: cron output\n\nok\n');
    const { job, body } = await pickedUp('replay.eml');
    assert.deepEqual(job.data.mailFrom.sender, { local: 'cron', domain: 'contoso.test' });
    assert.deepEqual(job.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['admin@contoso.test', 'ops@fabrikam.test']);
    assert.doesNotMatch(body, /X-Sender|X-Receiver/i);
    assert.match(body, /\r\nTo: someone-else@example\.net\r\n/);
    assert.match(body, /\r\nFrom: <cron@contoso\.test>\r\n/);
  });

  it("the README's recipe: root's mail redirected to the admins by a transport rule", async () => {
    drop('cron.eml', 'X-Sender: <root@contoso.test>\nX-Receiver: <root@contoso.test>\nSubject: Cron <root@mx> /usr/local/bin/backup\n\ndone\n');
    const { job } = await pickedUp('cron.eml');
    assert.deepEqual(job.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['it-ops@contoso.test']);
  });

  it("the DSN parameters MAIL FROM and RCPT TO would carry: RET and ENVID on X-Sender, NOTIFY and ORCPT on X-Receiver; a bad one makes the file .bad", async () => {
    drop('dsn.eml', 'X-Sender: <alerts@contoso.test> RET=HDRS ENVID=batch-7+2B1\nX-Receiver: <ops@contoso.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;ops+2Bold@contoso.test\nX-Receiver: <dba@contoso.test> NOTIFY=NEVER\nX-Receiver: <dev@contoso.test>\nSubject: dsn\n\nx\n');
    const { job } = await pickedUp('dsn.eml');
    assert.equal(job.data.mailFrom.ret, 'HDRS');
    assert.equal(job.data.mailFrom.envid, 'batch-7+1', 'decoded from xtext, as SMTP stores it');
    assert.deepEqual(job.data.rcptTo.map((r) => [r.local, r.notify ?? null, r.orcpt ?? null]), [['ops', ['SUCCESS', 'FAILURE'], 'rfc822;ops+old@contoso.test'], ['dba', ['NEVER'], null], ['dev', null, null]]);
    drop('bad-dsn.eml', 'X-Sender: <alerts@contoso.test>\nX-Receiver: <ops@contoso.test> NOTIFY=NEVER,SUCCESS\n\nx\n');
    await gw.listeners.pickupNow();
    const line = gw.logs.slice(seen).find((l) => l.file === 'bad-dsn.eml');
    assert.equal(line?.reason, 'pickup-x-receiver');
    assert.match(String(line?.why), /^X-Receiver "<ops@contoso\.test> NOTIFY=NEVER,SUCCESS" has a parameter SMTP would refuse: RCPT parameter NOTIFY=NEVER,SUCCESS combines NEVER with other values/);
  });

  it('X-Sender: <> is the null sender', async () => {
    drop('null.eml', 'X-Sender: <>\r\nX-Receiver: <postmaster@contoso.test>\r\nFrom: MAILER-DAEMON@contoso.test\r\nSubject: x\r\n\r\nx\r\n');
    const { job } = await pickedUp('null.eml');
    assert.equal(job.data.mailFrom.sender, null);
  });
});

describe('pickup directory: files that cannot be sent become *.bad, with the reason in the log', () => {
  const cases: Array<[string, string | Buffer, string, RegExp]> = [
    ['no-from.eml', 'To: ops@contoso.test\nSubject: x\n\nx\n', 'pickup-no-sender', /no From or Sender field/],
    ['no-rcpt.eml', 'From: a@contoso.test\nSubject: x\n\nx\n', 'pickup-no-recipients', /no address in To, Cc or Bcc/],
    ['many-from.eml', 'From: a@contoso.test, b@contoso.test\nTo: ops@contoso.test\n\nx\n', 'pickup-from', /From holds 2 addresses and there is no Sender/],
    ['too-many.eml', 'From: a@contoso.test\nTo: 1@contoso.test, 2@contoso.test, 3@contoso.test, 4@contoso.test, 5@contoso.test\n\nx\n', 'pickup-too-many-recipients', /5 recipients, more than pickupDirectoryMaxRecipientsPerMessage \(4\)/],
    ['x-no-rcpt.eml', 'X-Sender: <a@contoso.test>\nFrom: a@contoso.test\n\nx\n', 'pickup-no-recipients', /no X-Receiver/],
    ['x-bad.eml', 'X-Sender: <a@contoso.test>\nX-Receiver: <not an address>\n\nx\n', 'pickup-x-receiver', /X-Receiver .* is not an address/],
    ['big-header.eml', `From: a@contoso.test\nTo: ops@contoso.test\nX-Filler: ${'y'.repeat(40_000)}\n\nx\n`, 'pickup-header-too-large', /larger than pickupDirectoryMaxHeaderSize \(32768 bytes\)/],
    ['endless-header.eml', `From: a@contoso.test\nTo: ops@contoso.test\n${'X-Filler: y\n'.repeat(4_000)}`, 'pickup-header-too-large', /larger than pickupDirectoryMaxHeaderSize/],
    ['empty.eml', '', 'pickup-empty', /^it is empty$/],
    ['huge.eml', `From: a@contoso.test\nTo: ops@contoso.test\n\n${'z'.repeat(150 * 1024)}\n`, 'pickup-too-large', /^it is \d+ bytes, more than the organisation's maxSendSize \(102400\)$/],
    ['secret.eml', 'From: a@contoso.test\nTo: ops@contoso.test\nSubject: the secret plan\n\nx\n', 'transport-rule-reject', /No secrets by mail|No secrets/],
  ];
  for (const [name, text, code, why] of cases) {
    it(`${name}: ${code}`, async () => {
      const before = (await gw.stored()).jobs;
      drop(name, text);
      await gw.listeners.pickupNow();
      assert.deepEqual(files(), [name.replace(/\.eml$/, '.bad')]);
      const line = gw.logs.slice(seen).find((l) => l.file === name && String(l.msg).startsWith('pickup file not sent'));
      assert.ok(line, 'a warning names the file');
      assert.equal(line.level, 40);
      assert.match(String(line.why), why);
      if (code !== 'transport-rule-reject') {
        assert.equal(line.reason, code);
        assert.equal(pickupEvents.at(-1), `bad ${code}`, 'counted for the metrics');
      }
      assert.equal((await gw.stored()).jobs, before, 'nothing queued');
    });
  }

  // Neither a symbolic nor a hard link to a file elsewhere (a secret, someone else's mail) is read and sent.
  const links: Array<[string, (target: string, name: string) => void, string, string]> = [
    ['a symbolic link is never followed: the file it points to is not read, the link becomes .bad', symlinkSync, 'pickup-symlink', 'it is a symbolic link, which is never followed'],
    ['a hard link to a file elsewhere is not sent (only a file written for the directory is)', linkSync, 'pickup-hard-link', 'it has 2 hard links: only a file written for the pickup directory is sent'],
  ];
  for (const [title, link, reason, why] of links) {
    it(title, async () => {
      const secret = path.join(os.tmpdir(), `mailgw-pickup-secret-${process.pid}`);
      writeFileSync(secret, 'From: root@contoso.test\nTo: attacker@example.net\nSubject: /etc/shadow\n\nroot:$6$...\n');
      try {
        const before = (await gw.stored()).jobs;
        link(secret, path.join(dir, 'link.eml'));
        await gw.listeners.pickupNow();
        assert.deepEqual(files(), ['link.bad']);
        const line = gw.logs.slice(seen).find((l) => l.file === 'link.eml');
        assert.equal(line?.reason, reason);
        assert.equal(line?.why, why);
        assert.equal((await gw.stored()).jobs, before, 'nothing queued');
      } finally {
        rmSync(secret, { force: true });
      }
    });
  }

  it('a second .bad of the same name does not overwrite the first', async () => {
    drop('dup.eml', 'To: x@contoso.test\n\nx\n');
    await gw.listeners.pickupNow();
    drop('dup.eml', 'To: x@contoso.test\n\nagain\n');
    await gw.listeners.pickupNow();
    assert.deepEqual(files(), ['dup-2.bad', 'dup.bad']);
  });

  it('files not named *.eml are left alone', async () => {
    drop('notes.txt', 'From: a@contoso.test\nTo: ops@contoso.test\n\nx\n');
    writeFileSync(path.join(dir, '.hidden.eml'), 'From: a@contoso.test\nTo: ops@contoso.test\n\nx\n');
    await gw.listeners.pickupNow();
    assert.deepEqual(files(), ['.hidden.eml', 'notes.txt']);
  });
});

describe('pickup directory: nothing lost, limits kept', () => {
  it('Redis down: the file stays *.eml (not .bad); once Redis is back it is sent', async () => {
    await redis.kill('SIGKILL');
    try {
      drop('during-outage.eml', 'From: a@contoso.test\nTo: ops@contoso.test\nSubject: outage\n\nx\n');
      await gw.listeners.pickupNow();
      assert.deepEqual(files(), ['during-outage.eml']);
      assert.ok(gw.logs.slice(seen).some((l) => l.file === 'during-outage.eml' && String(l.msg).startsWith('pickup file not sent now')), 'said: tried again later');
      assert.equal(pickupEvents.at(-1), 'deferred queue-unavailable');
    } finally {
      await redis.restart();
    }
    let done = false;
    for (let i = 0; i < 40 && !done; i++) {
      await gw.listeners.pickupNow();
      done = files().length === 0;
      if (!done) await new Promise((r) => setTimeout(r, 250));
    }
    assert.deepEqual(files(), []);
    const line = newLogs('message picked up').find((l) => l.file === 'during-outage.eml');
    assert.ok(line);
    assert.ok(await gw.job(String(line.queueId)));
  });

  it('a claim left by a process that is gone is put back and sent', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const host = os.hostname().replace(/[^A-Za-z0-9_]/g, '_');
    writeFileSync(path.join(dir, `orphan.${host}-${dead}.tmp`), 'From: a@contoso.test\nTo: ops@contoso.test\nSubject: orphan\n\nx\n');
    // Another machine's claim (a shared directory) is not this host's to judge.
    writeFileSync(path.join(dir, `theirs.otherhost-${dead}.tmp`), 'From: a@contoso.test\nTo: ops@contoso.test\n\nx\n');
    await gw.listeners.pickupNow();
    assert.ok(newLogs('pickup file claimed by a process that is gone: put back to be sent').some((l) => l.file === 'orphan.eml'));
    assert.ok(newLogs('message picked up').some((l) => l.file === 'orphan.eml'));
    assert.deepEqual(files(), [`theirs.otherhost-${dead}.tmp`]);
  });

  it('recipients as RCPT judges them: an unknown mailbox fails from the start (a DSN), the rest is sent; nobody left: .bad', async () => {
    await ownPickup({ recipients: ['ops@contoso.test', 'postmaster@contoso.test'] }, async (g, own) => {
      writeFileSync(path.join(own, 'typo.eml'), 'From: cron@contoso.test\nTo: ops@contoso.test, opps@contoso.test, partner@example.net\nSubject: daily\n\nx\n');
      await g.listeners.pickupNow();
      const line = g.logs.find((l) => l.msg === 'message picked up' && l.file === 'typo.eml');
      assert.ok(line, JSON.stringify(g.logs.slice(-5)));
      const job = await g.job(String(line.queueId));
      assert.deepEqual(job!.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['ops@contoso.test', 'partner@example.net', 'opps@contoso.test'], 'the refused one stored last, failed');
      const failed = g.logs.find((l) => l.msg === 'recipient failed at intake' && l.file === 'typo.eml');
      assert.equal(failed?.rcpt, 'opps@contoso.test');
      assert.equal(failed?.reply, '550 5.1.1 User unknown');
      assert.equal(failed?.reason, 'user-unknown');
      writeFileSync(path.join(own, 'nobody.eml'), 'From: cron@contoso.test\nTo: nobody@contoso.test\n\nx\n');
      await g.listeners.pickupNow();
      assert.deepEqual(readdirSync(own), ['nobody.bad']);
      const bad = g.logs.find((l) => l.file === 'nobody.eml');
      assert.equal(bad?.reason, 'user-unknown');
      assert.equal(bad?.why, 'every recipient was refused: nobody@contoso.test (550 5.1.1 User unknown)');
    });
  });

  it('a writer that links its file in and then unlinks its own name (Maildir style) is given the moment it needs', async () => {
    // Default settle time (a minute): a young file with a second link waits, whole, as *.eml.
    await ownPickup({}, async (g, own) => {
      const tmp = path.join(own, '.writing');
      writeFileSync(tmp, 'From: a@contoso.test\nTo: ops@contoso.test\nSubject: linked\n\nx\n');
      linkSync(tmp, path.join(own, 'linked.eml'));
      await g.listeners.pickupNow();
      assert.deepEqual(readdirSync(own).sort(), ['.writing', 'linked.eml'], 'not sent, not .bad: waits for its writer');
      rmSync(tmp);
      await g.listeners.pickupNow();
      assert.deepEqual(readdirSync(own), [], JSON.stringify(g.logs.slice(-6).map((l) => [l.msg, l.file, l.why ?? l.err])));
      assert.ok(g.logs.some((l) => l.msg === 'message picked up' && l.file === 'linked.eml'));
    });
  });

  it('pickupDirectoryMaxMessagesPerMinute: the rest waits for the next minute, as *.eml', async () => {
    // A gateway of its own: its minute's count starts at 0.
    await ownPickup({ pickupDirectoryMaxMessagesPerMinute: 3 }, async (g, own) => {
      for (let i = 0; i < 5; i++) writeFileSync(path.join(own, `bulk-${i}.eml`), `From: a@contoso.test\nTo: ops@contoso.test\nSubject: ${i}\n\nx\n`);
      await g.listeners.pickupNow();
      await g.listeners.pickupNow();
      assert.equal(g.logs.filter((l) => l.msg === 'message picked up').length, 3);
      assert.equal(readdirSync(own).filter((f) => f.endsWith('.eml')).length, 2, 'two wait, still *.eml');
      assert.ok(g.logs.some((l) => l.msg === 'pickup directory waits: pickupDirectoryMaxMessagesPerMinute reached'));
      assert.ok(!readdirSync(own).some((f) => f.endsWith('.bad') || f.endsWith('.tmp')));
    });
  });
});
