// The organisation's limits (gateway.yaml maxSendSize, maxReceiveSize, maxRecipientEnvelopeLimit:
// Exchange's Set-TransportConfig), end to end (in-process listeners, real Redis, real slapd) with
// the directory's own limits beside them: ivy takes 10 KB and jack 20 KB (delivContLength), kim
// and the Internet have no limit of their own, henry may send 10 KB to 2 recipients
// (submissionContLength, msExchRecipLimit). The organisation: 30 KB sent, 15 KB received, 3
// recipients. From the Internet the smaller of a recipient's own limit and the organisation's
// applies; for a user who logged on, the own limits override; the Exchange servers are exempt.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { keySpace, readState } from '@mailgw/queue';
import { FIXTURE_PASSWORD, slapdSkip } from '../harness/slapd.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { messageOf, startLimitsGateway, type LimitsGateway } from './helpers/limits-gateway.js';

const skip = slapdSkip();
const RCPT_OK = '250 2.1.5 Recipient OK';
const RECIP_TOO_LARGE = '552 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient';
const ORG_TOO_LARGE = '552 5.2.3 RESOLVER.RST.SendSizeLimit.Org; message too large for this organization';
const SENDER_TOO_LARGE = '552 5.2.3 RESOLVER.RST.SendSizeLimit.Sender; message too large for this sender';
const TOO_MANY = '452 4.5.3 Too many recipients';

let g: LimitsGateway;

before(async () => {
  if (!skip) g = await startLimitsGateway({ gateway: { maxSendSize: '30KB', maxReceiveSize: '15KB', maxRecipientEnvelopeLimit: 3 } });
});

after(async () => {
  await g?.close();
});

async function internet(): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: g.port, localAddress: '127.0.0.9' });
  await c.ehlo();
  return c;
}

async function logon(login: string): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: g.submitPort, localAddress: '127.0.0.9' });
  await c.ehlo();
  assert.equal((await c.authPlain(login, FIXTURE_PASSWORD)).last, '235 2.7.0 Authentication successful');
  return c;
}

/** MAIL (with its parameters) and each RCPT in turn: the replies. */
async function envelope(c: RawSmtp, mailFrom: string, to: string[]): Promise<string[]> {
  const replies = [(await c.cmd(`MAIL FROM:${mailFrom}`)).last];
  if (!replies[0]!.startsWith('250')) return replies;
  for (const t of to) replies.push((await c.cmd(`RCPT TO:<${t}>`)).last);
  await c.cmd('RSET');
  return replies;
}

describe('organisation limits over SMTP (maxSendSize 30KB, maxReceiveSize 15KB, maxRecipientEnvelopeLimit 3)', { skip }, () => {
  it('from the Internet: SIZE= over 30 KB is refused at MAIL; a recipient gets the smaller of its own limit and the 15 KB of the organisation; the 4th recipient 452 4.5.3', async () => {
    const c = await internet();
    assert.deepEqual(await envelope(c, '<someone@fabrikam.test> SIZE=30721', []), [ORG_TOO_LARGE]);
    assert.deepEqual(await envelope(c, '<someone@fabrikam.test> SIZE=18000', ['jack@contoso.test', 'kim@contoso.test', 'ivy@contoso.test']), ['250 2.1.0 Sender OK', RECIP_TOO_LARGE, RECIP_TOO_LARGE, RECIP_TOO_LARGE], "jack's own 20 KB does not lift the organisation's 15 KB for an anonymous sender");
    assert.deepEqual(await envelope(c, '<someone@fabrikam.test> SIZE=12000', ['jack@contoso.test', 'kim@contoso.test', 'ivy@contoso.test']), ['250 2.1.0 Sender OK', RCPT_OK, RCPT_OK, RECIP_TOO_LARGE], "ivy's own 10 KB is smaller");
    assert.deepEqual(await envelope(c, '<someone@fabrikam.test>', ['alice@contoso.test', 'jack@contoso.test', 'kim@contoso.test', 'ivy@contoso.test', 'alice@contoso.test']), ['250 2.1.0 Sender OK', RCPT_OK, RCPT_OK, RCPT_OK, TOO_MANY, RCPT_OK], 'a repeat is answered again and not counted');
    await c.quit();
    assert.equal(g.gw.logs.find((l) => l.reason === 'sender-size-limit-org')?.why, "SIZE=30721 exceeds the organisation's maxSendSize (30720 bytes)");
    assert.equal(g.gw.logs.find((l) => l.reason === 'recipient-size-limit-org' && /jack/.test(String(l.why)))?.why, "SIZE=18000 exceeds the organisation's maxReceiveSize (15360 bytes), which applies to jack@contoso.test");
    assert.equal(g.gw.logs.find((l) => l.reason === 'too-many-recipients-org')?.why, "3 different recipients accepted: the organisation's maxRecipientEnvelopeLimit (3) reached");
  });

  it('from the Internet without SIZE=: over 30 KB, or over 15 KB for every recipient, is refused at the end of DATA; nothing is stored', async () => {
    const c = await internet();
    const before = (await g.gw.stored()).jobs;
    const huge = await c.transaction('someone@fabrikam.test', ['kim@contoso.test'], messageOf(35));
    assert.deepEqual([huge.rcpt[0]!.last, huge.end?.last], [RCPT_OK, ORG_TOO_LARGE]);
    const big = await c.transaction('someone@fabrikam.test', ['jack@contoso.test', 'kim@contoso.test'], messageOf(18));
    assert.deepEqual([...big.rcpt.map((r) => r.last), big.end?.last], [RCPT_OK, RCPT_OK, RECIP_TOO_LARGE]);
    assert.equal((await g.gw.stored()).jobs, before, 'nothing stored');
    const fits = await c.transaction('someone@fabrikam.test', ['jack@contoso.test', 'kim@contoso.test'], messageOf(12));
    assert.match(fits.end!.last, /^250 2\.6\.0 /);
    await c.quit();
  });

  it("a user who logged on: its recipients' own limits override the organisation's (jack's 20 KB); others, inside or outside, have the 15 KB; over some, the message is accepted and failed for those", async () => {
    const c = await logon('alice@contoso.test');
    assert.deepEqual(await envelope(c, '<alice@contoso.test> SIZE=18000', ['jack@contoso.test', 'kim@contoso.test', 'partner@fabrikam.test']), ['250 2.1.0 Sender OK', RCPT_OK, RECIP_TOO_LARGE, RECIP_TOO_LARGE]);
    assert.deepEqual(await envelope(c, '<alice@contoso.test>', ['a@fabrikam.test', 'b@fabrikam.test', 'c@fabrikam.test', 'd@fabrikam.test']), ['250 2.1.0 Sender OK', RCPT_OK, RCPT_OK, RCPT_OK, TOO_MANY], 'no RecipientLimits of her own: the organisation\'s 3');

    const mixed = await c.transaction('alice@contoso.test', ['jack@contoso.test', 'kim@contoso.test', 'partner@fabrikam.test'], messageOf(18));
    assert.match(mixed.end!.last, /^250 2\.6\.0 /);
    await c.quit();
    const id = queueIdOf(mixed.end!);
    const job = await g.gw.job(id);
    const peek = new Redis(g.redis.url);
    const state = readState(JSON.parse((await peek.hget(keySpace('{mailgw}').job(id), 'progress'))!), job!.data);
    peek.disconnect();
    assert.deepEqual(state.recipients.map((r) => [r.status, r.reply && `${r.reply.code} ${r.reply.enhanced} ${r.reply.text}`]), [['pending', null], ['failed', RECIP_TOO_LARGE], ['failed', RECIP_TOO_LARGE]]);
    const failed = g.gw.logs.filter((l) => l.msg === 'recipient failed at intake' && l.queueId === id);
    assert.deepEqual(failed.map((l) => [l.rcpt, l.reason]), [['kim@contoso.test', 'recipient-size-limit-org'], ['partner@fabrikam.test', 'recipient-size-limit-org']]);
    assert.match(String(failed[0]!.why), /^message of \d+ bytes exceeds the organisation's maxReceiveSize \(15360 bytes\), which applies to kim@contoso\.test$/);
  });

  it("henry's own MaxSendSize (10 KB) and RecipientLimits (2) stand instead of the organisation's", async () => {
    const c = await logon('henry@contoso.test');
    assert.deepEqual(await envelope(c, '<henry@contoso.test> SIZE=12000', []), [SENDER_TOO_LARGE]);
    assert.deepEqual(await envelope(c, '<henry@contoso.test>', ['a@fabrikam.test', 'b@fabrikam.test', 'c@fabrikam.test']), ['250 2.1.0 Sender OK', RCPT_OK, RCPT_OK, TOO_MANY]);
    await c.quit();
  });

  it("the Exchange servers (Bypass-Message-Size-Limit) are exempt: 100 KB to kim and five recipients pass; ivy's own 10 KB still stands", async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: g.port, localAddress: '127.0.0.30' });
    await c.ehlo();
    assert.deepEqual(await envelope(c, '<alice@contoso.test> SIZE=102400', ['kim@contoso.test', 'ivy@contoso.test']), ['250 2.1.0 Sender OK', RCPT_OK, RECIP_TOO_LARGE]);
    assert.deepEqual(await envelope(c, '<alice@contoso.test>', ['alice@contoso.test', 'jack@contoso.test', 'kim@contoso.test', 'henry@contoso.test', 'partner@fabrikam.test']), ['250 2.1.0 Sender OK', RCPT_OK, RCPT_OK, RCPT_OK, RCPT_OK, RCPT_OK]);
    const t = await c.transaction('alice@contoso.test', ['kim@contoso.test'], messageOf(100));
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    await c.quit();
  });
});
