// Journal reports and a Redis that fails (journalRules, listener only, real Redis): the report
// is written beside the message while DATA streams in; Redis dying mid-message gives 451 and,
// once it is back, neither the message nor its report was queued; then a message is queued with
// its report again, the report to the journaling mailbox with the null sender and NOTIFY=NEVER
// (no journalingReportNdrTo: nothing can bounce to anyone), and the message's tracking events
// name it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { receiveTracker } from '@mailgw/ops';
import type { TrackingEvent } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp } from './helpers/smtp-client.js';

let redis: TestRedis;
let gw: TestGateway;
let port = 0;
/** The message tracking log's events, as the listener's tracker writes them. */
const tracked: TrackingEvent[] = [];

before(async () => {
  redis = await startRedis();
  port = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    commandTimeoutMs: 1000,
    gateway: await baseGateway({ journalRules: [{ name: 'Everything', journalEmailAddress: 'journal@archive.test' }] }),
    connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 } },
    observer: receiveTracker({ write: (e) => void tracked.push(e), close: async () => undefined }),
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

describe('journal reports when Redis fails', () => {
  it('Redis dying mid-DATA: 451, and neither the message nor its report is queued', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(`From: <s@example.net>\r\nSubject: half\r\n\r\n${'z'.repeat(70_000)}\r\n`);
    await redis.kill('SIGKILL');
    c.write('rest of it\r\n.\r\n');
    const end = await c.read();
    assert.equal(end.last, '451 4.3.0 Temporary server error, please try again later');
    await c.quit().catch(() => undefined);
    await redis.restart();
    assert.equal((await gw.stored()).jobs, 0, 'no job: neither the message nor a report');
    assert.ok(!gw.logs.some((l) => l.msg === 'journal report queued'));
  });

  it('with Redis back: the message and its report are queued; the report goes to the journaling mailbox with the null sender and NOTIFY=NEVER', async () => {
    let end: string | undefined;
    // The listener's Redis connections find it again within a few attempts.
    for (let i = 0; i < 40 && !end?.startsWith('250'); i++) {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port });
      await c.ehlo();
      const t = await c.transaction('s@example.net', ['alice@contoso.test'], 'From: <s@example.net>\r\nSubject: whole\r\n\r\nbody\r\n');
      end = (t.end ?? t.data)?.last;
      await c.quit().catch(() => undefined);
      if (!end?.startsWith('250')) await new Promise((r) => setTimeout(r, 250));
    }
    assert.match(end!, /^250 2\.6\.0 /);
    const line = gw.logs.find((l) => l.msg === 'journal report queued');
    assert.ok(line, 'the report was queued');
    assert.equal(line.to, 'journal@archive.test');
    const report = await gw.job(String(line.journalQueueId));
    assert.ok(report);
    assert.equal(report.data.mailFrom.sender, null);
    assert.deepEqual(report.data.rcptTo.map((r) => [r.local, r.domain, r.notify]), [['journal', 'archive.test', ['NEVER']]]);
    assert.equal(report.data.connector, 'Journal');
    const body = (await gw.body(String(line.journalQueueId)))!.toString('latin1');
    assert.match(body, /\r\nX-MS-Journal-Report:\r\n/);
    assert.match(body, /\r\n\r\nSender: s@example\.net\r\nSubject: whole\r\nMessage-Id: <[^>]+>\r\nRecipient: alice@contoso\.test\r\n/);
    assert.match(body, /Content-Type: message\/rfc822\r\nContent-Disposition: attachment\r\n\r\nReceived: from [^]*\r\nSubject: whole\r\n[^]*\r\n\r\nbody\r\n\r\n--/);
    assert.equal((await gw.stored()).jobs, 2, 'the message and its report');
    // The message's tracking events name the report (AGENTINFO, as Exchange's agents).
    const info = tracked.find((e) => e.eventId === 'AGENTINFO' && e.internalMessageId === line.queueId);
    assert.equal(info?.sourceContext, `journaling: report ${String(line.journalQueueId)} to journal@archive.test ("Everything")`);
    // The report's own life starts in the tracking log too: RECEIVE from the journaling agent, then SUBMIT.
    const own = tracked.filter((e) => e.internalMessageId === String(line.journalQueueId));
    assert.deepEqual(own.map((e) => [e.eventId, e.source]), [['RECEIVE', 'AGENT'], ['SUBMIT', 'QUEUE']]);
    assert.equal(own[0]!.connectorId, 'Journal');
    assert.equal(own[0]!.reference, line.queueId);
    assert.equal(own[0]!.senderAddress, '');
    assert.deepEqual(own[0]!.recipientAddress, ['journal@archive.test']);
    assert.equal(own[0]!.sourceContext, `journal report of ${String(line.queueId)} ("Everything")`);
    assert.ok((own[0]!.totalBytes ?? 0) > 0);
  });
});
