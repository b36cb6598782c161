// The milter client over real SMTP into Redis, against a test milter that speaks the protocol
// over a real socket (helpers/test-milter.ts): what the milter is sent (the stages with their
// macros, the header, the body in chunks of at most 65,535 bytes), how each reply becomes the
// answer to MAIL, to one RCPT or to DATA, the modifications stored, and the failure cases:
// milter down, closing mid-message, silent past its timeout, asking for an unsupported
// envelope change.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { startTestMilter, type TestMilter } from './helpers/test-milter.js';

let redis: TestRedis;
let gw: TestGateway;
let milter: TestMilter;
/** A milter that asked for the envelope actions (ADDRCPT, DELRCPT, CHGFROM, ADDRCPT_PAR). */
let envelopeMilter: TestMilter;
let port = 0;

/** A loopback port nothing listens on. */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const p = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return p;
}

before(async () => {
  redis = await startRedis();
  milter = await startTestMilter();
  envelopeMilter = await startTestMilter({ actions: 0x1 | 0x2 | 0x10 | 0x20 | 0x4 | 0x8 | 0x40 | 0x80 });
  port = await freePort();
  const dead = await deadPort();
  const common = { bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 };
  const connectors = {
    internet: { name: 'Internet', usage: 'Internet', ...common },
    downTempfail: { name: 'Down Tempfail', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.60'] },
    downAccept: { name: 'Down Accept', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.61'] },
    envelope: { name: 'Envelope', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.62'] },
    // Your users, authenticated (the milter's AUTH macros).
    submission: { name: 'Submission', ...common, remoteIPRanges: ['127.0.0.63'], authMechanism: ['BasicAuth'], permissionGroups: ['ExchangeUsers'] },
  };
  const gateway = await baseGateway({
    milters: [
      { name: 'test', address: milter.address, commandTimeout: '500ms', eomTimeout: '1s', connectors: ['Internet', 'Submission'], antiSpam: false },
      { name: 'down-tempfail', address: `inet:127.0.0.1:${dead}`, connectTimeout: '500ms', connectors: ['Down Tempfail'] },
      { name: 'down-accept', address: `inet:127.0.0.1:${dead}`, connectTimeout: '500ms', defaultAction: 'accept', connectors: ['Down Accept'] },
      { name: 'envelope', address: envelopeMilter.address, commandTimeout: '500ms', eomTimeout: '1s', connectors: ['Envelope'] },
    ],
  });
  const filters = contentFilters(compile(gateway, connectors).config.gateway);
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors, filters });
});

after(async () => {
  await gw?.close();
  await milter?.close();
  await envelopeMilter?.close();
  await redis?.stop();
});

async function send(subject: string, opts: { from?: string; rcpts?: string[]; extra?: string; body?: string } = {}): Promise<{ reply: string; id: string | null; ms: number }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: opts.from ?? '127.0.0.1' });
  await c.ehlo('sender.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@example.net>')).code, 250);
  for (const r of opts.rcpts ?? ['alice@contoso.test']) assert.equal((await c.cmd(`RCPT TO:<${r}>`)).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const t0 = Date.now();
  c.write(`Subject: ${subject}\r\n${opts.extra ?? ''}From: <sender@example.net>\r\n\r\n${opts.body ?? 'line one\r\nline two\r\n'}.\r\n`);
  const r = await c.read();
  const ms = Date.now() - t0;
  await c.quit();
  return { reply: r.last, id: r.code === 250 ? queueIdOf(r) : null, ms };
}

const TEMPFAIL = '451 4.7.1 Message deferred by content filtering, please try again later';
/** A milter's reject / tempfail at MAIL or RCPT without a reply of its own (Postfix's words). */
const COMMAND_REJECTED = '550 5.7.1 Command rejected';
const COMMAND_TEMPFAIL = '451 4.7.1 Service unavailable - try again later';

/** One transaction with every reply kept: MAIL, each RCPT, and DATA's end when DATA was taken. */
async function stages(opts: { from?: string; helo?: string; sender?: string; rcpts: string[]; subject: string }): Promise<{ mail: string; rcpts: string[]; data: string | null; id: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: opts.from ?? '127.0.0.1' });
  await c.ehlo(opts.helo ?? 'sender.test');
  const t = await c.transaction(opts.sender ?? 'sender@example.net', opts.rcpts, `Subject: ${opts.subject}\r\nFrom: <sender@example.net>\r\n\r\nbody\r\n`);
  await c.quit();
  const end = t.end ?? t.data;
  return { mail: t.mail.last, rcpts: t.rcpt.map((r) => r.last), data: end?.last ?? null, id: t.end?.code === 250 ? queueIdOf(t.end) : null };
}

describe('milter client (protocol 6) over SMTP', () => {
  it('replays the stages with Postfix macros, sends the header and body, and the message is stored', async () => {
    const r = await send('pass', { extra: 'X-Folded: one\r\n two\r\n' });
    assert.match(r.reply, /^250 2\.6\.0 /);
    const s = milter.bySubject('pass')!;
    // optneg, then macro+command per stage, header fields, EOH, body, end of body, quit.
    assert.deepEqual(s.commands.filter((c) => c !== 'D'), ['O', 'C', 'H', 'M', 'R', 'T', 'L', 'L', 'L', 'N', 'B', 'E', 'Q']);
    assert.deepEqual(s.connect, { hostname: '[127.0.0.1]', family: '4', address: '127.0.0.1' });
    assert.equal(s.helo, 'sender.test');
    assert.equal(s.mail, '<sender@example.net>');
    assert.deepEqual(s.rcpts, ['<alice@contoso.test>']);
    assert.equal(s.macros.i, r.id, 'the i macro is the queue id');
    assert.equal(s.macros.j, 'mx.contoso.test');
    assert.equal(s.macros['{rcpt_addr}'], 'alice@contoso.test');
    assert.equal(s.macros['{client_addr}'], '127.0.0.1');
    assert.match(s.macros['{daemon_addr}'] ?? '', /^(::ffff:)?127\.0\.0\.1$/, 'the address the client reached');
    assert.equal(s.macros['{auth_authen}'], undefined, 'anonymous: no AUTH macros');
    // Values without the leading space (the milter did not ask for SMFIP_HDR_LEADSPC), folds as LF.
    assert.deepEqual(s.headers, [['Subject', 'pass'], ['X-Folded', 'one\n two'], ['From', '<sender@example.net>']]);
    assert.equal(s.body.toString('latin1'), 'line one\r\nline two\r\n');
    assert.ok(await gw.body(r.id!));
  });

  it('an authenticated session: {auth_type} is the mechanism used and {auth_authen} the user', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.63' });
    await c.ehlo('laptop.test');
    assert.equal((await c.cmd('AUTH LOGIN')).code, 334);
    assert.equal((await c.cmd(Buffer.from('alice').toString('base64'))).code, 334);
    assert.equal((await c.cmd(Buffer.from(PASSWORD).toString('base64'))).code, 235);
    const t = await c.transaction('alice@contoso.test', ['bob@contoso.test'], 'Subject: auth-macros\r\nFrom: <alice@contoso.test>\r\n\r\nhi\r\n');
    await c.quit();
    assert.equal(t.end?.code, 250, t.end?.last);
    const s = milter.bySubject('auth-macros')!;
    assert.deepEqual([s.macros['{auth_type}'], s.macros['{auth_authen}'], s.macros['{mail_addr}']], ['LOGIN', 'alice', 'alice@contoso.test']);
  });

  it('end-of-message modifications are what is stored: addheader, insheader at the top, chgheader, chgheader with an empty value deletes, replbody', async () => {
    const r = await send('modify', { extra: 'X-Remove-Me: please\r\n', body: 'original body\r\n' });
    assert.match(r.reply, /^250 /);
    const stored = (await gw.body(r.id!))!.toString('latin1');
    const header = stored.slice(0, stored.indexOf('\r\n\r\n'));
    assert.match(header, /^X-Milter-Top: inserted at the top\r\nReceived: /);
    assert.match(header, /\r\nSubject: \[milter\] modify\r\n/);
    assert.doesNotMatch(header, /X-Remove-Me/);
    assert.match(header, /\r\nFrom: <sender@example\.net>\r\nX-Milter: added at the bottom\r\n/, 'appended after the client\'s fields');
    assert.ok(stored.endsWith('\r\n\r\nreplaced by the milter\r\n'), stored.slice(-60));
    assert.equal((await gw.job(r.id!))!.data.size, Buffer.byteLength(stored, 'latin1'));
  });

  it('reject, tempfail and a custom reply code at end of message: the SMTP answer, nothing stored', async () => {
    const before = await gw.stored();
    assert.equal((await send('reject')).reply, '550 5.7.1 Message rejected as spam by Content Filtering.');
    assert.equal((await send('tempfail')).reply, TEMPFAIL);
    assert.equal((await send('replycode')).reply, '554 5.7.0 The test milter says no');
    assert.deepEqual(await gw.stored(), before);
  });

  it('discard: 250 to the client, nothing stored', async () => {
    const before = await gw.stored();
    assert.match((await send('discard')).reply, /^250 2\.6\.0 /);
    assert.deepEqual(await gw.stored(), before);
  });

  it('a large body goes in chunks of at most 65,535 bytes; SKIP stops the body early', async () => {
    const big = ('z'.repeat(998) + '\r\n').repeat(300); // 300 KB
    const r = await send('big', { body: big });
    assert.match(r.reply, /^250 /);
    const s = milter.bySubject('big')!;
    assert.equal(s.body.length, big.length);
    assert.ok(s.maxBodyPacket <= 65_535 && s.bodyPackets >= 5, `${s.bodyPackets} packets, largest ${s.maxBodyPacket}`);
    const k = await send('skip', { body: big });
    assert.match(k.reply, /^250 /);
    const sk = milter.bySubject('skip')!;
    assert.equal(sk.bodyPackets, 1, 'nothing more after the SKIP');
    assert.ok((await gw.body(k.id!))!.toString('latin1').endsWith(big), 'the message itself is whole');
  });

  it('progress replies keep a slow end of message alive past eomTimeout', async () => {
    const r = await send('progress');
    assert.match(r.reply, /^250 /);
    assert.match((await gw.body(r.id!))!.toString('latin1'), /\r\nX-Progressed: yes\r\n/);
  });

  it('a milter closing mid-message, or silent past eomTimeout: defaultAction, never a hang', async () => {
    const before = await gw.stored();
    const closed = await send('close');
    assert.equal(closed.reply, TEMPFAIL);
    assert.ok(closed.ms < 2000, `answered after ${closed.ms} ms`);
    const slow = await send('slow');
    assert.equal(slow.reply, TEMPFAIL);
    assert.ok(slow.ms >= 900 && slow.ms < 3000, `eomTimeout is 1s; answered after ${slow.ms} ms`);
    assert.deepEqual(await gw.stored(), before);
  });

  it('an envelope change the milter did not ask for at negotiation (delrcpt) is a protocol failure: defaultAction, not a silent ignore', async () => {
    assert.equal((await send('delrcpt')).reply, TEMPFAIL);
    assert.ok(gw.logs.some((l) => l.msg === 'filter failed' && l.failureAction === 'tempfail' && /sent DELRCPT without asking for it at option negotiation/.test(String(l.reason))));
  });
});

describe('milter stages before DATA: MAIL and each RCPT answered as they come (as Postfix)', () => {
  const stored = async (id: string) => (await gw.job(id))!.data.rcptTo.map((r: { local: string; domain: string }) => `${r.local}@${r.domain}`);

  it('a recipient the milter refuses is refused alone, with its reply; the message goes to the others', async () => {
    const r = await stages({ subject: 'per-recipient', rcpts: ['alice@contoso.test', 'milter-reject@contoso.test', 'milter-tempfail@contoso.test', 'milter-unknown@contoso.test', 'bob@contoso.test'] });
    assert.equal(r.mail, '250 2.1.0 Sender OK');
    assert.deepEqual(r.rcpts, [
      '250 2.1.5 Recipient OK',
      COMMAND_REJECTED,
      COMMAND_TEMPFAIL,
      '550 5.1.1 <milter-unknown@contoso.test>: Recipient address rejected: unknown in the test milter',
      '250 2.1.5 Recipient OK',
    ]);
    assert.match(r.data!, /^250 2\.6\.0 /);
    assert.deepEqual(await stored(r.id!), ['alice@contoso.test', 'bob@contoso.test']);
    // The milter saw every recipient it was asked about, then the message.
    const s = milter.bySubject('per-recipient')!;
    assert.deepEqual(s.rcpts, ['<alice@contoso.test>', '<milter-reject@contoso.test>', '<milter-tempfail@contoso.test>', '<milter-unknown@contoso.test>', '<bob@contoso.test>']);
    assert.equal(s.macros.i, r.id, 'the queue id given at MAIL is the stored message\'s');
    const refusal = gw.logs.find((l) => l.msg === 'policy refused' && l.to === 'milter-reject@contoso.test');
    assert.equal(refusal?.reason, 'filter-rejected');
    assert.match(String(refusal?.why), /^filter test: milter inet:127\.0\.0\.1:\d+: rejected at RCPT <milter-reject@contoso\.test> \(at RCPT\)$/);
    assert.equal(gw.logs.find((l) => l.msg === 'policy refused' && l.to === 'milter-tempfail@contoso.test')?.reason, 'filter-deferred');
  });

  it('refused at MAIL (reject, tempfail) or at HELO: the MAIL is refused, nothing stored; a later MAIL on the connection starts afresh', async () => {
    const before = await gw.stored();
    const rejected = await stages({ subject: 'mail-reject', sender: 'mail-reject@example.net', rcpts: ['alice@contoso.test'] });
    assert.equal(rejected.mail, COMMAND_REJECTED);
    assert.match(rejected.rcpts[0]!, /^503 /, 'no transaction: RCPT needs MAIL');
    assert.equal((await stages({ subject: 'mail-tempfail', sender: 'mail-tempfail@example.net', rcpts: [] })).mail, COMMAND_TEMPFAIL);
    assert.equal((await stages({ subject: 'helo-reject', helo: 'helo-reject.test', rcpts: [] })).mail, COMMAND_REJECTED);
    assert.deepEqual(await gw.stored(), before);
    // The same connection: refused, then a new MAIL is a new milter session that goes through.
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
    await c.ehlo('sender.test');
    assert.equal((await c.cmd('MAIL FROM:<mail-reject@example.net>')).last, COMMAND_REJECTED);
    const t = await c.transaction('sender@example.net', ['alice@contoso.test'], 'Subject: after-refusal\r\n\r\nbody\r\n');
    await c.quit();
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    const s = milter.sessions.filter((x) => x.mail === '<mail-reject@example.net>');
    assert.ok(s.length >= 2 && s.every((x) => x.quit && x.rcpts.length === 0), 'each refused MAIL ended its milter session');
  });

  it('a discard at MAIL or at RCPT: every command taken, 250 at the end of DATA, nothing stored', async () => {
    const before = await gw.stored();
    const atMail = await stages({ subject: 'mail-discard', sender: 'mail-discard@example.net', rcpts: ['alice@contoso.test'] });
    assert.equal(atMail.mail, '250 2.1.0 Sender OK');
    assert.match(atMail.data!, /^250 2\.6\.0 /);
    const atRcpt = await stages({ subject: 'rcpt-discard', rcpts: ['alice@contoso.test', 'milter-discard@contoso.test', 'bob@contoso.test'] });
    assert.deepEqual(atRcpt.rcpts, ['250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK']);
    assert.match(atRcpt.data!, /^250 2\.6\.0 /);
    assert.deepEqual(await gw.stored(), before);
    assert.ok(gw.logs.some((l) => l.msg === 'message discarded by a filter' && /discarded at RCPT <milter-discard@contoso\.test>/.test(String(l.why))));
  });

  it('accept at MAIL: the milter is asked nothing more about the message, which is stored as received', async () => {
    const r = await stages({ subject: 'mail-accept', sender: 'mail-accept@example.net', rcpts: ['alice@contoso.test', 'milter-reject@contoso.test'] });
    assert.deepEqual(r.rcpts, ['250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK'], 'the milter no longer judges the recipients');
    assert.match(r.data!, /^250 /);
    assert.deepEqual(await stored(r.id!), ['alice@contoso.test', 'milter-reject@contoso.test']);
    const s = milter.sessions.find((x) => x.mail === '<mail-accept@example.net>')!;
    assert.deepEqual(s.commands.filter((c) => c !== 'D'), ['O', 'C', 'H', 'M', 'Q']);
  });

  it('a milter failing at RCPT (closing, an unusable reply): its defaultAction for that recipient and every one after', async () => {
    for (const bad of ['milter-close@contoso.test', 'milter-wrongclass@contoso.test']) {
      const r = await stages({ subject: `fail-${bad}`, rcpts: ['alice@contoso.test', bad, 'bob@contoso.test'] });
      assert.deepEqual(r.rcpts, ['250 2.1.5 Recipient OK', COMMAND_TEMPFAIL, COMMAND_TEMPFAIL], bad);
      // alice was taken before the failure; the milter that failed judges the message too: 451.
      assert.equal(r.data, TEMPFAIL, bad);
    }
    const why = gw.logs.filter((l) => l.msg === 'policy refused' && l.to === 'bob@contoso.test' && l.reason === 'filter-deferred').map((l) => String(l.why));
    assert.ok(why.some((w) => /closed the connection \(at RCPT; failure action tempfail\)$/.test(w)), why.join(' | '));
    assert.ok(gw.logs.some((l) => l.msg === 'filter failed' && l.level === 40 && l.filter === 'test' && l.stage === 'RCPT' && l.failureAction === 'tempfail'), 'the failure is a warning');
    assert.ok(why.some((w) => /unusable reply code "250 2\.0\.0 not a refusal" at RCPT <milter-wrongclass@contoso\.test> \(at RCPT; failure action tempfail\)$/.test(w)), why.join(' | '));
  });

  it('a milter down: its defaultAction at MAIL (tempfail: 451, nothing stored; accept: stored unchanged)', async () => {
    const before = await gw.stored();
    const down = await stages({ subject: 'down', from: '127.0.0.60', rcpts: ['alice@contoso.test'] });
    assert.equal(down.mail, COMMAND_TEMPFAIL);
    assert.deepEqual(await gw.stored(), before);
    const why = String(gw.logs.find((l) => l.msg === 'policy refused' && l.connector === 'Down Tempfail')?.why);
    assert.match(why, /^filter down-tempfail: milter inet:127\.0\.0\.1:\d+: could not connect to milter .* \(at MAIL; failure action tempfail\)$/);
    const a = await stages({ subject: 'down-accept', from: '127.0.0.61', rcpts: ['alice@contoso.test'] });
    assert.equal(a.mail, '250 2.1.0 Sender OK');
    assert.match(a.data!, /^250 /);
    assert.ok(await gw.body(a.id!));
  });

  it('pipelined (MAIL, RCPTs and DATA in one write): each reply in order, the refused recipient alone', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
    await c.ehlo('sender.test');
    c.write('MAIL FROM:<sender@example.net>\r\nRCPT TO:<alice@contoso.test>\r\nRCPT TO:<milter-unknown@contoso.test>\r\nRCPT TO:<bob@contoso.test>\r\nDATA\r\n');
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push((await c.read()).last);
    assert.deepEqual(replies, [
      '250 2.1.0 Sender OK',
      '250 2.1.5 Recipient OK',
      '550 5.1.1 <milter-unknown@contoso.test>: Recipient address rejected: unknown in the test milter',
      '250 2.1.5 Recipient OK',
      '354 Start mail input; end with <CRLF>.<CRLF>',
    ]);
    c.write('Subject: pipelined\r\n\r\nbody\r\n.\r\n');
    const end = await c.read();
    await c.quit();
    assert.match(end.last, /^250 2\.6\.0 /);
    assert.deepEqual((await gw.job(queueIdOf(end)))!.data.rcptTo.map((r: { local: string }) => r.local), ['alice', 'bob']);
  });

  it('RSET, a new EHLO or a client leaving after RCPT ends the milter session (ABORT, QUIT)', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
    await c.ehlo('sender.test');
    for (const [i, end] of (['RSET', 'EHLO again.test', 'gone'] as const).entries()) {
      const sender = `ends-${i}@example.net`;
      assert.equal((await c.cmd(`MAIL FROM:<${sender}>`)).code, 250);
      assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
      if (end === 'gone') c.destroy();
      else assert.equal((await c.cmd(end)).code, 250);
      const s = () => milter.sessions.find((x) => x.mail === `<${sender}>`);
      for (let n = 0; n < 100 && !(s()?.aborted && s()?.quit); n++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(s()?.aborted && s()?.quit, `${end}: the milter got ABORT and QUIT`);
    }
  });
});

describe('milter envelope changes (ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM)', () => {
  const ENVELOPE = '127.0.0.62';
  const envelopeOf = async (id: string) => {
    const d = (await gw.job(id))!.data;
    return { from: d.mailFrom.sender ? `${d.mailFrom.sender.local}@${d.mailFrom.sender.domain}` : '', to: d.rcptTo.map((r) => `${r.local}@${r.domain}${r.notify ? ` NOTIFY=${r.notify.join(',')}` : ''}`) };
  };

  it('the milter is offered the envelope actions at negotiation (and not SETSYMLIST)', async () => {
    const r = await send('pass', { from: ENVELOPE });
    assert.match(r.reply, /^250 /);
    const offered = envelopeMilter.bySubject('pass')?.offeredActions ?? 0;
    for (const [name, flag] of [['ADDRCPT', 0x4], ['DELRCPT', 0x8], ['CHGFROM', 0x40], ['ADDRCPT_PAR', 0x80]] as const) assert.ok(offered & flag, `${name} offered (actions 0x${offered.toString(16)})`);
    assert.equal(offered & 0x100, 0, 'SETSYMLIST is not offered');
  });

  it('added recipients are stored with the message, once each; parameters of ADDRCPT_PAR are not applied', async () => {
    const r = await send('addrcpt', { from: ENVELOPE });
    assert.match(r.reply, /^250 2\.6\.0 /);
    assert.deepEqual(await envelopeOf(r.id!), { from: 'sender@example.net', to: ['alice@contoso.test', 'archive@contoso.test', 'journal@fabrikam.test'] });
    const line = gw.logs.find((l) => l.msg === 'envelope changed by a filter' && JSON.stringify(l.changes).includes('archive@contoso.test'));
    assert.deepEqual(line?.changes, [
      'recipient <archive@contoso.test> added',
      'recipient <journal@fabrikam.test> added (parameters "NOTIFY=NEVER" ignored)',
      'recipient <ALICE@contoso.test> not added: already a recipient',
    ]);
    // The tracking log's RECEIVE names the recipients as stored.
    const received = gw.logs.find((l) => l.msg === 'message queued' && l.queueId === r.id);
    assert.equal(received?.rcpts, 3);
  });

  it('a deleted recipient is not stored (matched without regard to case); deleting one that is no recipient changes nothing', async () => {
    const r = await send('replace-rcpt', { from: ENVELOPE, rcpts: ['alice@contoso.test', 'bob@contoso.test'] });
    assert.match(r.reply, /^250 /);
    assert.deepEqual((await envelopeOf(r.id!)).to, ['bob@contoso.test', 'desk@contoso.test']);
  });

  it('every recipient deleted: 250 to the client, nothing stored, the log says why', async () => {
    const before = await gw.stored();
    const r = await send('replace-rcpt', { from: ENVELOPE, rcpts: ['alice@contoso.test'] });
    // desk@ is added after alice@ is deleted, so one recipient remains: stored.
    assert.deepEqual((await envelopeOf(r.id!)).to, ['desk@contoso.test']);
    const gone = await send('delrcpt', { from: ENVELOPE, rcpts: ['alice@contoso.test'] });
    assert.match(gone.reply, /^250 2\.6\.0 /);
    assert.equal((await gw.stored()).jobs, before.jobs + 1, 'only the first message was stored');
    const line = gw.logs.find((l) => l.msg === 'message discarded by a filter' && l.reason === 'content-no-recipients');
    assert.match(String(line?.why), /the filters deleted every recipient \(recipient <alice@contoso\.test> deleted\)/);
  });

  it('CHGFROM changes the envelope sender (parameters ignored), <> makes it the null sender', async () => {
    const r = await send('chgfrom', { from: ENVELOPE });
    assert.deepEqual(await envelopeOf(r.id!), { from: 'SRS0=ab12=XY=example.net=sender@contoso.test', to: ['alice@contoso.test'] });
    const n = await send('chgfrom-null', { from: ENVELOPE });
    assert.deepEqual(await envelopeOf(n.id!), { from: '', to: ['alice@contoso.test'] });
  });

  it('an address mailgw cannot use (unparsable, or UTF-8 without SMTPUTF8) is a failure: defaultAction, nothing stored', async () => {
    const before = await gw.stored();
    assert.equal((await send('addrcpt-bad', { from: ENVELOPE })).reply, TEMPFAIL);
    assert.equal((await send('addrcpt-utf8', { from: ENVELOPE })).reply, TEMPFAIL);
    assert.deepEqual(await gw.stored(), before);
    const reasons = gw.logs.filter((l) => l.msg === 'filter failed' && l.filter === 'envelope' && l.verdict === 'error').map((l) => String(l.reason));
    assert.ok(reasons.some((x) => /ADDRCPT with the unusable address "<not an address>"/.test(x)), reasons.join(' | '));
    assert.ok(reasons.some((x) => /non-ASCII address "<jörg@contoso\.test>" for a message without SMTPUTF8/.test(x)), reasons.join(' | '));
  });

  it('quarantine without a quarantine mailbox: delivered to the recipients as edited, stamped', async () => {
    const r = await send('addrcpt-quarantine', { from: ENVELOPE });
    assert.match(r.reply, /^250 /);
    assert.deepEqual((await envelopeOf(r.id!)).to, ['alice@contoso.test', 'archive@contoso.test']);
    assert.match((await gw.body(r.id!))!.toString('latin1'), /^X-MS-Exchange-Organization-Quarantine: true\r\n/m);
  });
});
