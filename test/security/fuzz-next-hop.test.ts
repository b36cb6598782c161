// The worker against a next hop that answers badly on purpose (helpers/hostile-hop.ts): 8-bit
// and 2,000-character reply texts, empty ones, mixed multiline codes, lines without a code,
// 4xx/5xx out of the blue, 421 and hang-ups, replies cut into pieces. Whatever it says:
//   - the queue drains: every recipient ends delivered or failed, none stays pending;
//   - a recipient recorded as delivered was accepted by the far side (2xx RCPT and 2xx after
//     the final dot in one transaction): a garbled reply is never taken for a yes;
//   - a failed recipient of a message with a sender gets a DSN, whose delivery-status part is
//     7-bit with lines within 998 octets, however the remote reply was written.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startFaultRig, type FaultRig } from './helpers/delivery.js';
import { prng } from './helpers/fuzz.js';
import { startHostileHop, type HostileHop } from './helpers/hostile-hop.js';
import { until } from './helpers/scenario.js';

const SEED = Number(process.env.MAILGW_FUZZ_SEED ?? 20261203) + 2;
const MESSAGES = Math.ceil(Number(process.env.MAILGW_FUZZ_SESSIONS ?? 400) / 4);
const RECIPIENTS = ['alice@contoso.test', 'bob@contoso.test', 'carol@sales.contoso.test', 'desk@fabrikam.test', 'ops@fabrikam.test'];

let redis: TestRedis;
let hop: HostileHop;
let rig: FaultRig;

before(async () => {
  redis = await startRedis();
  hop = await startHostileHop(SEED);
  rig = await startFaultRig(redis.url, hop.port, { concurrency: 8 });
});

after(async () => {
  await rig?.close();
  await hop?.close();
  await redis?.stop();
});

interface RecipientState {
  status: 'pending' | 'delivered' | 'failed';
  reply?: { code: number; enhanced: string | null; text: string };
}

it(`the worker against a hostile next hop (seed ${SEED}, ${MESSAGES} messages)`, { timeout: 600_000 }, async (t) => {
  const r = prng(SEED);
  const sent = new Map<string, { to: string[]; sender: string }>();
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: rig.port });
  await c.ehlo();
  for (let i = 0; i < MESSAGES; i++) {
    const id = `m${i}`;
    const to = [...new Set(Array.from({ length: r.int(1, 3) }, () => r.pick(RECIPIENTS)))];
    const sender = r.chance(0.15) ? '' : `sender${i}@example.net`;
    const t1 = await c.transaction(sender, to, `From: <s@example.net>\r\nMessage-ID: <${id}@fuzz.test>\r\nSubject: hostile ${i}\r\nX-Load-Id: ${id}\r\n\r\nhello ${i}\r\n`);
    assert.equal(t1.end?.code, 250, t1.end?.last);
    sent.set(id, { to, sender });
  }
  await c.quit();

  const drained = await until(async () => (await rig.queue.pending()) === 0, Number(process.env.MAILGW_FUZZ_DRAIN_MS ?? 240_000));
  const idle = hop.openSessions().filter((x) => x.idleMs > 5000);
  assert.ok(drained, `the queue did not drain: ${JSON.stringify(await rig.queue.counts())}; sessions idle at the hop:\n${idle.map((x) => `  ${x.idleMs} ms: ${x.last.join(' | ')}`).join('\n')}`);

  const problems: string[] = [];
  let delivered = 0;
  let failed = 0;
  let dsnsExpected = 0;
  for (const job of await rig.queue.bull.getJobs(['completed', 'failed'], 0, -1)) {
    const data = job.data as { messageId: string; mailFrom: { address: string }; rcptTo: Array<{ address: string }> };
    const state = (job.progress ?? {}) as { recipients?: RecipientState[] };
    const id = /^<(m\d+)@fuzz\.test>$/.exec(data.messageId)?.[1];
    if (!id) continue; // a DSN: checked below, as the hop received them
    const recipients = state.recipients ?? [];
    if (recipients.length !== data.rcptTo.length) {
      problems.push(`${id}: ${recipients.length} recipient states for ${data.rcptTo.length} recipients (job ${job.id}, ${JSON.stringify(job.progress).slice(0, 300)})`);
      continue;
    }
    recipients.forEach((st, k) => {
      const a = data.rcptTo[k]!.address.toLowerCase();
      if (st.status === 'pending') problems.push(`${id}: ${a} still pending after the queue drained`);
      else if (st.status === 'delivered') {
        delivered++;
        if (!hop.acceptedFor.get(id)?.has(a)) problems.push(`${id}: ${a} recorded as delivered, but the next hop never accepted it (last reply ${JSON.stringify(st.reply)})`);
      } else {
        failed++;
        if (data.mailFrom.address !== '') dsnsExpected++;
      }
    });
  }
  assert.deepEqual(problems, []);
  assert.ok(delivered > 0 && failed > 0, `the hostile hop should cause both outcomes (delivered ${delivered}, failed ${failed})`);

  // DSNs: some reach the hostile hop (which may refuse them too); each one it got is checked.
  const dsns = hop.dsns.filter((d) => /report-type=("?)delivery-status\1/i.test(d.toString('latin1', 0, 4096))); // not the test's own null-sender messages
  assert.ok(dsns.length > 0, 'no DSN reached the hop');
  for (const dsn of dsns) {
    const text = dsn.toString('latin1');
    const status = /Content-Type: message\/delivery-status\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*?)\r\n--/i.exec(text)?.[1];
    assert.ok(status, `a DSN without a message/delivery-status part:\n${text.slice(0, 1500)}`);
    assert.ok(/^[\x00-\x7f]*$/.test(status), `a delivery-status part with 8-bit text:\n${status}`);
    for (const line of status.split('\r\n')) assert.ok(line.length <= 998, `a delivery-status line of ${line.length} octets`);
  }
  t.diagnostic(`${sent.size} messages: ${delivered} recipients delivered, ${failed} failed (${dsnsExpected} with a sender), ${dsns.length} DSNs received by the hop, ${hop.sessions.count} sessions`);
});
