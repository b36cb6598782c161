// rspamd over its HTTP protocol (/checkv2), a real Debian rspamd started by the harness, over
// real SMTP into Redis: GTUBE is refused 550 5.7.1 in Exchange's words, a clean message is
// stored with X-Spam-* and the SCL stamp (and rspamd saw the envelope: one Rcpt per
// recipient), each rspamd action maps to its SMTP answer, Exchange's SCL thresholds replace
// rspamd's actions when configured, and rspamd down or silent gives the failure action.
// rspamd's proxy worker in milter mode is driven by the milter client.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { contentFilters, rspamdFilter } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { rspamdSkip, startRspamd, type TestRspamd } from '../harness/rspamd.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const skip = rspamdSkip();
const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
const REJECTED = '550 5.7.1 Message rejected as spam by Content Filtering.';
const TEMPFAIL = '451 4.7.1 Message deferred by content filtering, please try again later';

let redis: TestRedis;
let rspamd: TestRspamd | null = null;
let gw: TestGateway;
let silent: net.Server;
let port = 0;

before(async () => {
  if (skip) return;
  redis = await startRedis();
  rspamd = await startRspamd();
  // Accepts connections and never answers: rspamd hung.
  silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as net.AddressInfo).port;
  const deadPort = await freePort();
  port = await freePort();
  const common = { bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 };
  const connectors = {
    internet: { name: 'Internet', usage: 'Internet', ...common },
    scl: { name: 'SCL', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.70'] },
    down: { name: 'Down', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.71'] },
    downAccept: { name: 'Down Accept', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.72'] },
    hung: { name: 'Hung', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.73'] },
    milter: { name: 'Milter', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.74'] },
    bypass: { name: 'Partner', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.75'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] },
  };
  const gateway = await baseGateway({
    rspamd: { url: rspamd!.url, timeout: '10s', connectors: ['Internet', 'Partner'] },
    milters: [{ name: 'rspamd-milter', address: rspamd!.milter, commandTimeout: '10s', eomTimeout: '20s', connectors: ['Milter'] }],
  });
  const g = compile(gateway, connectors).config.gateway;
  const base = g.rspamd!;
  const filters = [
    ...contentFilters(g),
    // The same rspamd with Exchange's thresholds deciding (Set-ContentFilterConfig), and broken rspamds.
    rspamdFilter({ ...base, actions: 'scl', sclRejectThreshold: 7, sclDeleteEnabled: true, sclDeleteThreshold: 9, connectors: ['SCL'] }, 'rspamd-scl'),
    rspamdFilter({ ...base, url: `http://127.0.0.1:${deadPort}`, connectors: ['Down'] }, 'rspamd-down'),
    rspamdFilter({ ...base, url: `http://127.0.0.1:${deadPort}`, onFailure: 'accept', connectors: ['Down Accept'] }, 'rspamd-down-accept'),
    rspamdFilter({ ...base, url: `http://127.0.0.1:${silentPort}`, timeout: 1000, connectors: ['Hung'] }, 'rspamd-hung'),
  ];
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors, filters });
});

after(async () => {
  await gw?.close();
  await rspamd?.stop();
  silent?.close();
  await redis?.stop();
});

async function send(subject: string, opts: { from?: string; rcpts?: string[]; extra?: string; body?: string } = {}): Promise<{ reply: string; id: string | null; ms: number; stored: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: opts.from ?? '127.0.0.1' });
  await c.ehlo('mail.example.net');
  assert.equal((await c.cmd('MAIL FROM:<sender@example.net>')).code, 250);
  for (const r of opts.rcpts ?? ['alice@contoso.test']) assert.equal((await c.cmd(`RCPT TO:<${r}>`)).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const t0 = Date.now();
  c.write(
    `Subject: ${subject}\r\n${opts.extra ?? ''}From: Sender <sender@example.net>\r\nTo: Alice <alice@contoso.test>\r\nDate: ${new Date().toUTCString().replace('GMT', '+0000')}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n${opts.body ?? 'Hello Alice,\r\n\r\nthe minutes of Tuesday\'s meeting are below.\r\n'}.\r\n`,
  );
  const r = await c.read();
  const ms = Date.now() - t0;
  await c.quit();
  const id = r.code === 250 ? queueIdOf(r) : null;
  const body = id ? await gw.body(id) : null;
  return { reply: r.last, id, ms, stored: body ? body.toString('latin1') : null };
}

const headerOf = (stored: string) => stored.slice(0, stored.indexOf('\r\n\r\n') + 2);

describe('rspamd /checkv2 (real rspamd)', { skip }, () => {
  it('GTUBE is refused 550 5.7.1 in Exchange\'s words and nothing is stored', async () => {
    const before = await gw.stored();
    assert.equal((await send('gtube', { body: `${GTUBE}\r\n` })).reply, REJECTED);
    assert.deepEqual(await gw.stored(), before);
    assert.ok(gw.logs.some((l) => l.msg === 'filter outcome' && l.filter === 'rspamd' && l.verdict === 'reject' && String(l.reason).includes('GTUBE')));
  });

  it('a clean message is stored with X-Spam-* headers, rspamd\'s symbols and the SCL stamp; rspamd saw the envelope', async () => {
    const r = await send('minutes', { rcpts: ['alice@contoso.test', 'bob@contoso.test'], extra: 'X-Spam-Status: No, forged by the sender\r\nX-MS-Exchange-Organization-SCL: -1\r\n' });
    assert.match(r.reply, /^250 2\.6\.0 /);
    const h = headerOf(r.stored!);
    assert.match(h, /\r\nX-Spam-Status: No, score=-?\d+\.\d\d required=15\.00\r\n/);
    assert.match(h, /\r\nX-Spam-Action: no action\r\n/);
    assert.match(h, /\r\nX-Spam-Score: -?\d+\.\d\d\r\n/);
    assert.doesNotMatch(h, /forged by the sender/);
    // One Rcpt header per recipient and the From header reached rspamd: its envelope rules fired.
    assert.match(h, /\r\nX-Spamd-Result: default: False \[[^\]]+\];/);
    const env = /MAILGW_TEST_ENVELOPE\(0\.00\)\[([^\]]*)\]/.exec(h.replace(/\r\n\t/g, ' '))![1]!.split(/,\s*/);
    assert.deepEqual(env.sort(), ['from=sender@example.net', 'helo=mail.example.net', 'ip=127.0.0.1', `qid=${r.id}`, 'rcpt=alice@contoso.test', 'rcpt=bob@contoso.test']);
    assert.match(h, /\r\nX-MS-Exchange-Organization-SCL: [01]\r\n/);
    assert.equal(h.match(/X-MS-Exchange-Organization-SCL/g)!.length, 1, 'the client\'s SCL -1 is gone');
  });

  it('rspamd\'s actions: greylist → 451 4.7.1; add header → stored with X-Spam-Status Yes and SCL 5; rewrite subject → the Subject rspamd gives', async () => {
    assert.equal((await send('score=5 greylisted')).reply, TEMPFAIL);
    const add = await send('score=7 add header');
    assert.match(add.reply, /^250 /);
    assert.match(headerOf(add.stored!), /\r\nX-Spam-Status: Yes, score=6\.\d\d required=15\.00\r\n/);
    assert.match(headerOf(add.stored!), /\r\nX-Spam-Action: add header\r\n/);
    assert.match(headerOf(add.stored!), /\r\nX-MS-Exchange-Organization-SCL: 5\r\n/);
    const rw = await send('score=9 rewrite');
    assert.match(rw.reply, /^250 /);
    assert.match(headerOf(rw.stored!), /\r\nSubject: \*\*\* SPAM \*\*\* score=9 rewrite\r\n/);
    assert.match(headerOf(rw.stored!), /\r\nX-MS-Exchange-Organization-SCL: 6\r\n/);
  });

  it('actions: scl — Exchange\'s thresholds decide on the SCL from the score (reject at 7, delete at 9), not rspamd\'s action', async () => {
    // rspamd says "greylist" (4.9: the test rule's 5 and MIME_GOOD's -0.1 → SCL 3): below SCLRejectThreshold, so accepted.
    const low = await send('score=5 low', { from: '127.0.0.70' });
    assert.match(low.reply, /^250 /);
    assert.match(headerOf(low.stored!), /\r\nX-MS-Exchange-Organization-SCL: 3\r\n/);
    assert.match(headerOf(low.stored!), /\r\nX-Spam-Action: greylist\r\n/);
    // Score 10.9 → SCL 7: rejected although rspamd's action is only "rewrite subject".
    assert.equal((await send('score=11 reject', { from: '127.0.0.70' })).reply, REJECTED);
    // GTUBE → score 15 → SCL 9 ≥ SCLDeleteThreshold: 250, nothing stored.
    const before = await gw.stored();
    assert.match((await send('gtube-delete', { from: '127.0.0.70', body: `${GTUBE}\r\n` })).reply, /^250 2\.6\.0 /);
    assert.deepEqual(await gw.stored(), before);
  });

  it('rspamd down: onFailure (tempfail: 451 and nothing stored; accept: stored without X-Spam headers)', async () => {
    const before = await gw.stored();
    assert.equal((await send('down', { from: '127.0.0.71' })).reply, TEMPFAIL);
    assert.deepEqual(await gw.stored(), before);
    const a = await send('down-accept', { from: '127.0.0.72' });
    assert.match(a.reply, /^250 /);
    assert.doesNotMatch(headerOf(a.stored!), /X-Spam-/);
  });

  it('rspamd that never answers: the failure action after its timeout, not the backstop', async () => {
    const r = await send('hung', { from: '127.0.0.73' });
    assert.equal(r.reply, TEMPFAIL);
    assert.ok(r.ms >= 900 && r.ms < 5000, `timeout 1s; answered after ${r.ms} ms`);
  });

  it('a session holding ms-Exch-Bypass-Anti-Spam skips rspamd: GTUBE is accepted, unstamped', async () => {
    const r = await send('gtube-partner', { from: '127.0.0.75', body: `${GTUBE}\r\n` });
    assert.match(r.reply, /^250 /);
    assert.doesNotMatch(headerOf(r.stored!), /X-Spam-|X-MS-Exchange-Organization-SCL/);
  });

  it('rspamd\'s proxy worker in milter mode through the milter client: GTUBE refused, a clean message stored with its headers', async () => {
    const before = await gw.stored();
    const g = await send('gtube-milter', { from: '127.0.0.74', body: `${GTUBE}\r\n` });
    assert.match(g.reply, /^5\d\d /, JSON.stringify(gw.logs.filter((l) => l.filter === 'rspamd-milter')));
    assert.deepEqual(await gw.stored(), before);
    const c = await send('clean-milter', { from: '127.0.0.74' });
    assert.match(c.reply, /^250 /);
    assert.match(headerOf(c.stored!), /\r\nX-Spamd-Result: default: False/);
  });
});
