// A journal rule whose recipient is a distribution group (Exchange's New-JournalRule -Recipient
// with a group), end to end with a real slapd and Redis: mail from or to a member of Sales
// (nested groups count) is journaled, other mail not; the directory not answering is 451 4.4.3
// and nothing is stored: a message is never taken without the journal report it may owe.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { slapdSkip } from '../harness/slapd.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { messageOf, startLimitsGateway, type LimitsGateway } from './helpers/limits-gateway.js';

const skip = slapdSkip();
let g: LimitsGateway;

before(async () => {
  if (!skip) g = await startLimitsGateway({ gateway: { journalRules: [{ name: 'Sales hold', journalEmailAddress: 'hold@archive.test', recipient: 'sales@contoso.test' }] } });
});

after(async () => {
  await g?.close();
});

async function send(from: string, to: string[]): Promise<{ end: string; queueId: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: g.port, localAddress: '127.0.0.9' });
  await c.ehlo();
  const t = await c.transaction(from, to, messageOf(1));
  await c.quit();
  const end = (t.end ?? t.data)!;
  return { end: end.last, queueId: end.code === 250 ? queueIdOf(end) : null };
}

const reportsOf = (queueId: string | null) => g.gw.logs.filter((l) => l.msg === 'journal report queued' && l.queueId === queueId).map((l) => [l.to, l.rules]);

describe('a journal rule for a group (recipient: sales@contoso.test)', { skip }, () => {
  it("mail to a member (carol) or to the group itself is journaled; mail to others is not", async () => {
    const toCarol = await send('someone@example.org', ['carol@contoso.test']);
    assert.match(toCarol.end, /^250 2\.6\.0 /);
    assert.deepEqual(reportsOf(toCarol.queueId), [['hold@archive.test', ['Sales hold']]]);
    const toGroup = await send('someone@example.org', ['sales@contoso.test']);
    assert.deepEqual(reportsOf(toGroup.queueId), [['hold@archive.test', ['Sales hold']]]);
    const toAlice = await send('someone@example.org', ['alice@contoso.test']);
    assert.match(toAlice.end, /^250 2\.6\.0 /);
    assert.deepEqual(reportsOf(toAlice.queueId), []);
    const job = await g.gw.job(String(g.gw.logs.find((l) => l.msg === 'journal report queued')!.journalQueueId));
    assert.deepEqual(job?.data.rcptTo.map((r) => `${r.local}@${r.domain}`), ['hold@archive.test']);
  });

  it('the directory down, for a sender it was never asked about (the recipient is cached): 451 4.4.3 after the data, nothing stored', async () => {
    const before = (await g.gw.stored()).jobs;
    await g.ldap.stop();
    try {
      const r = await send('stranger@example.org', ['alice@contoso.test']);
      assert.equal(r.end, '451 4.4.3 Directory lookup failed, please try again later');
      assert.equal((await g.gw.stored()).jobs, before, 'nothing stored');
      const line = g.gw.logs.find((l) => l.reason === 'directory-unavailable' && /journal rules/.test(String(l.why)));
      assert.ok(line, 'logged with why');
    } finally {
      await g.ldap.start();
    }
  });
});
