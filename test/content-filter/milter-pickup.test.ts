// Milters and the pickup directory (Postfix's non_smtpd_milters): a milter marked `pickup: true`
// judges the pickup's messages as an SMTP transaction from the gateway itself (connect from
// 127.0.0.1 named as the gateway, HELO, MAIL, each RCPT, the header and body); its header
// edits are stored, its refusal at the end of the message makes the file *.bad, a temporary
// one leaves it for later, a recipient it refuses fails from the start (a DSN) while the others
// are sent, every recipient refused makes the file *.bad. A milter without `pickup` never sees
// pickup mail. A real test milter over TCP, real Redis, the real pickup shell.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { startTestMilter, type TestMilter } from './helpers/test-milter.js';

let redis: TestRedis;
let pickupMilter: TestMilter;
let smtpOnly: TestMilter;
let gw: TestGateway;
let dir: string;

before(async () => {
  redis = await startRedis();
  pickupMilter = await startTestMilter();
  smtpOnly = await startTestMilter();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-milter-pickup-'));
  const port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    pickupSettleMs: 0,
    gateway: await baseGateway({
      pickupDirectoryPath: dir,
      milters: [
        // An anti-spam milter (the default) on no connector of note: `pickup` alone brings it the pickup's mail.
        { name: 'dlp', address: pickupMilter.address, commandTimeout: '500ms', eomTimeout: '2s', pickup: true, connectors: ['Internet'] },
        { name: 'smtp-only', address: smtpOnly.address, commandTimeout: '500ms', eomTimeout: '2s' },
      ],
    }),
    connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } },
    filtersFor: (p) => contentFilters(p.config.gateway),
  });
});

after(async () => {
  await gw?.close();
  await pickupMilter?.close();
  await smtpOnly?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let seen = 0;
beforeEach(() => {
  for (const f of readdirSync(dir)) rmSync(path.join(dir, f), { force: true });
  seen = gw.logs.length;
});

const logged = (msg: string, file: string) => gw.logs.slice(seen).find((l) => l.msg === msg && l.file === file);

async function pick(name: string, text: string): Promise<void> {
  writeFileSync(path.join(dir, name), text);
  await gw.listeners.pickupNow();
}

describe('milters marked pickup (Postfix non_smtpd_milters)', () => {
  it('see the message as a transaction from the gateway itself; their header edits are stored; the other milter never sees it', async () => {
    await pick('modify.eml', 'X-Sender: <cron@contoso.test>\nX-Receiver: <ops@contoso.test>\nX-Receiver: <root@contoso.test>\nSubject: modify\nFrom: cron@contoso.test\n\nreport\n');
    const line = logged('message picked up', 'modify.eml');
    assert.ok(line, JSON.stringify(gw.logs.slice(seen).map((l) => [l.msg, l.why ?? l.reason])));
    const s = pickupMilter.bySubject('modify');
    assert.ok(s, 'the pickup milter saw it');
    assert.deepEqual(s.connect, { hostname: 'mx.contoso.test', family: '4', address: '127.0.0.1' });
    assert.equal(s.helo, 'mx.contoso.test');
    assert.equal(s.mail, '<cron@contoso.test>');
    assert.deepEqual(s.rcpts, ['<ops@contoso.test>', '<root@contoso.test>']);
    assert.equal(s.macros.i, String(line.queueId), "the milter's queue id is the message's");
    const body = (await gw.body(String(line.queueId)))!.toString('utf8');
    assert.match(body, /\r\nX-Milter: added at the bottom\r\n/);
    assert.match(body, /\r\nSubject: \[milter\] modify\r\n/);
    assert.equal(smtpOnly.sessions.length, 0, 'a milter without pickup: true never sees pickup mail');
  });

  it('a refusal at the end of the message: *.bad with its reply; a temporary one: the file stays for a later look', async () => {
    await pick('no.eml', 'From: cron@contoso.test\nTo: ops@contoso.test\nSubject: replycode\n\nx\n');
    assert.deepEqual(readdirSync(dir), ['no.bad']);
    const bad = gw.logs.slice(seen).find((l) => l.file === 'no.eml' && typeof l.msg === 'string' && l.msg.startsWith('pickup file not sent, renamed no.bad'));
    assert.ok(bad, JSON.stringify(gw.logs.slice(seen)));
    assert.equal(bad.reply, '554 5.7.0 The test milter says no');
    await pick('later.eml', 'From: cron@contoso.test\nTo: ops@contoso.test\nSubject: tempfail\n\nx\n');
    assert.deepEqual(readdirSync(dir).sort(), ['later.eml', 'no.bad']);
    assert.ok(logged('pickup file not sent now, tried again later', 'later.eml'));
  });

  it('a recipient it refuses fails from the start (a DSN), the others are sent; every recipient refused: *.bad', async () => {
    await pick('mixed.eml', 'From: cron@contoso.test\nTo: ops@contoso.test, milter-unknown@contoso.test\nSubject: mixed\n\nx\n');
    const line = logged('message picked up', 'mixed.eml');
    assert.ok(line, JSON.stringify(gw.logs.slice(seen).map((l) => [l.msg, l.why ?? l.reason])));
    const job = await gw.job(String(line.queueId));
    assert.deepEqual(job!.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['ops@contoso.test', 'milter-unknown@contoso.test'], 'the refused one stored last, failed');
    const failed = logged('recipient failed at intake', 'mixed.eml');
    assert.equal(failed?.rcpt, 'milter-unknown@contoso.test');
    assert.equal(failed?.reply, '550 5.1.1 <milter-unknown@contoso.test>: Recipient address rejected: unknown in the test milter');
    assert.deepEqual(pickupMilter.bySubject('mixed')?.rcpts, ['<ops@contoso.test>', '<milter-unknown@contoso.test>']);
    await pick('none.eml', 'From: cron@contoso.test\nTo: milter-reject@contoso.test\nSubject: none\n\nx\n');
    assert.deepEqual(readdirSync(dir), ['none.bad']);
    const bad = gw.logs.slice(seen).find((l) => l.file === 'none.eml' && l.reason === 'milter-refused-recipient');
    assert.equal(bad?.why, 'a milter refused every recipient (1)');
  });

  it('a MAIL it refuses for good makes the file *.bad, for now leaves it', async () => {
    await pick('mail.eml', 'X-Sender: <mail-reject@contoso.test>\nX-Receiver: <ops@contoso.test>\nSubject: m\n\nx\n');
    assert.deepEqual(readdirSync(dir), ['mail.bad']);
    assert.equal(gw.logs.slice(seen).find((l) => l.file === 'mail.eml' && typeof l.msg === 'string' && l.msg.startsWith('pickup file not sent'))?.reason, 'milter-refused-mail');
    await pick('mail2.eml', 'X-Sender: <mail-tempfail@contoso.test>\nX-Receiver: <ops@contoso.test>\nSubject: m2\n\nx\n');
    assert.deepEqual(readdirSync(dir).sort(), ['mail.bad', 'mail2.eml']);
  });
});
