// Sender authentication over real SMTP into Redis, every DNS answer from the loopback fixture
// server: SPF pass/fail, a DKIM signature made here and verified against the key published in
// the fixture zone, DMARC p=reject refused 550 5.7.1 and nothing stored, one
// Authentication-Results header on top with our authserv-id; and the bad cases: a malformed
// DKIM signature, looping and overlong SPF records (RFC 7208's 10-lookup and void-lookup
// limits), DNS timeouts (temperror: accept and stamp, or 451), a filter that cannot finish
// (451, nothing stored), and a large signed message verified while it streams.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createAntispam, type AntispamSettings } from '@mailgw/antispam';
import { parseDomainPattern, parseIpRange } from '@mailgw/config';
import { parseHeaderFields, type MessageOnlyFilter } from '@mailgw/mail';
import { keySpace } from '@mailgw/queue';
import { dkimSign, sealMessage, type DKIMSignOptions } from 'mailauth';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, dotStuff, queueIdOf } from '../listener/helpers/smtp-client.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PRIVATE = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const PUBLIC = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

let dns: TestDns;
let redis: TestRedis;
let cache: Redis;
let gw: TestGateway;
let senderAuth: MessageOnlyFilter;
let port = 0;

const DEFAULTS: AntispamSettings['senderAuthentication'] = { enabled: true, spfFailAction: 'stamp', dmarcRejectAction: 'reject', dmarcQuarantineAction: 'stamp', tempErrorAction: 'accept', timeout: 10_000, minBitLength: 1024, bypassedSenderDomains: [], bypassedRecipients: [], arcTrustedSealers: [] };
let auth: AntispamSettings['senderAuthentication'] = { ...DEFAULTS };
let dnsSettings: AntispamSettings['dns'];
/** internalSMTPServers: the organisation's front relay, 127.0.0.70. */
const INTERNAL = [parseIpRange('127.0.0.70')].map((r) => (r.ok ? r.value : assert.fail(r.error)));

before(async () => {
  redis = await startRedis();
  cache = new Redis(redis.url);
  const includes: Record<string, { TXT: string[] }> = {};
  for (let i = 0; i < 12; i++) includes[`i${i}.many.test`] = { TXT: [`v=spf1 include:i${i + 1}.many.test -all`] };
  dns = await startDnsServer({
    'spf-pass.test': { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] },
    'spf-fail.test': { TXT: ['v=spf1 ip4:192.0.2.0/24 -all'] },
    'signed.test': { TXT: ['v=spf1 -all'] },
    'sel._domainkey.signed.test': { TXT: [`v=DKIM1; k=rsa; p=${PUBLIC}`] },
    '_dmarc.signed.test': { TXT: ['v=DMARC1; p=reject'] },
    'reject.test': { TXT: ['v=spf1 ip4:192.0.2.0/24 -all'] },
    '_dmarc.reject.test': { TXT: ['v=DMARC1; p=reject'] },
    'quarantine.test': { TXT: ['v=spf1 ip4:192.0.2.0/24 -all'] },
    '_dmarc.quarantine.test': { TXT: ['v=DMARC1; p=quarantine'] },
    'loop.test': { TXT: ['v=spf1 include:loop.test -all'] },
    'many.test': { TXT: ['v=spf1 include:i0.many.test -all'] },
    ...includes,
    'void.test': { TXT: ['v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test a:n4.void.test ip4:127.0.0.1 -all'] },
    'slow.test': { A: ['192.0.2.1'] },
    // ARC sealers: a list server the tests trust, and one they do not (the same key).
    'arc._domainkey.lists.test': { TXT: [`v=DKIM1; k=rsa; p=${PUBLIC}`] },
    'arc._domainkey.stranger.test': { TXT: [`v=DKIM1; k=rsa; p=${PUBLIC}`] },
  });
  // Every TXT lookup of slow.test (SPF, DMARC) goes unanswered.
  dns.silence('slow.test');
  dns.silence('_dmarc.slow.test');
  dnsSettings = { servers: [dns.server], timeout: 300, lookupBudget: 40, minTtl: 0, maxTtl: 3_600_000, negativeTtl: 0, txtTtl: 0, reverseLookup: false };
  const antispam = createAntispam({ settings: () => ({ dns: dnsSettings, senderAuthentication: auth, internalSMTPServers: INTERNAL }), cache: { store: cache, keys: keySpace('{mailgw}') } });
  senderAuth = antispam.filters[0]!;
  port = await freePort();
  const common = { bindings: [`127.0.0.1:${port}`], tarpitInterval: 0, maxMessageSize: '100MB' };
  gw = await startGateway({
    redisUrl: redis.url,
    filters: antispam.filters,
    gateway: await baseGateway(),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', ...common },
      // An Internet connector that has sender authentication switched off.
      off: { name: 'No Auth', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.60'], senderAuthenticationEnabled: false },
      partner: { name: 'Partner', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.50'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] },
    },
  });
});

after(async () => {
  await gw?.close();
  cache?.disconnect();
  await dns?.close();
  await redis?.stop();
});

function message(from: string, opts: { subject?: string; body?: string; extra?: string } = {}): string {
  return `${opts.extra ?? ''}From: <${from}>\r\nTo: <alice@contoso.test>\r\nSubject: ${opts.subject ?? 'test'}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@test>\r\nDate: Wed, 02 Dec 2026 08:00:00 +0000\r\n\r\n${opts.body ?? 'Hello.\r\n'}`;
}

async function sign(msg: string): Promise<string> {
  // index.d.ts of mailauth 4.13.3 types the options as one signature, but signing needs signatureData (top-level options sign nothing).
  // signTime: without it mailauth reads the clock for t= twice, and a signature made across a half
  // second does not verify (packages/dkim/test/sign.test.ts shows it); CI met it once in 1,301 tests.
  const r = await dkimSign(msg, { signTime: new Date(), signatureData: [{ signingDomain: 'signed.test', selector: 'sel', privateKey: PRIVATE, algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed' }] } as unknown as DKIMSignOptions);
  assert.deepEqual(r.errors, []);
  return r.signatures + msg;
}

/**
 * The message as a mailing list hands it on: changed (a footer, as lists add), then sealed
 * (RFC 8617) by `sealer` with its own Authentication-Results of the original (`saw`).
 */
async function sealed(msg: string, sealer: string, saw: string): Promise<string> {
  const arc = await sealMessage(Buffer.from(msg), { signingDomain: sealer, selector: 'arc', privateKey: PRIVATE, authResults: `mx.${sealer}; ${saw}`, cv: msg.startsWith('ARC-Seal:') ? 'pass' : 'none' } as Parameters<typeof sealMessage>[1]);
  return arc.toString('latin1') + msg;
}

interface Sent {
  code: number;
  reply: string;
  id: string | null;
  stored: string | null;
}

async function send(mailFrom: string, msg: string | Buffer, from = '127.0.0.1'): Promise<Sent> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: from });
  await c.ehlo('sender.test');
  assert.equal((await c.cmd(`MAIL FROM:<${mailFrom}>`)).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(Buffer.concat([dotStuff(msg), Buffer.from('.\r\n')]));
  const r = await c.read();
  await c.quit();
  const id = r.code === 250 ? queueIdOf(r) : null;
  return { code: r.code, reply: r.last, id, stored: id ? ((await gw.body(id))?.toString('latin1') ?? null) : null };
}

/** The stored header's fields, in order, and the one Authentication-Results value (unfolded). */
function header(stored: string): { names: string[]; ar: string[] } {
  const fields = parseHeaderFields(Buffer.from(stored.slice(0, stored.indexOf('\r\n\r\n') + 2), 'latin1'));
  return {
    names: fields.map((f) => f.name),
    ar: fields.filter((f) => f.name === 'authentication-results').map((f) => f.raw.toString('latin1').replace(/\r\n[ \t]+/g, ' ').replace(/^[^:]+:\s*/, '').trim()),
  };
}

describe('sender authentication (SPF, DKIM, DMARC, ARC)', () => {
  it('SPF pass: accepted with one Authentication-Results on top, our authserv-id first', async () => {
    const s = await send('a@spf-pass.test', message('a@spf-pass.test'));
    assert.equal(s.code, 250, s.reply);
    const h = header(s.stored!);
    assert.equal(h.names[0], 'authentication-results');
    assert.equal(h.ar.length, 1);
    assert.match(h.ar[0]!, /^mx\.contoso\.test;/);
    assert.match(h.ar[0]!, /spf=pass .*smtp\.mailfrom=a@spf-pass\.test/);
    assert.match(s.stored!, /^Received-SPF: pass/m);
  });

  it('SPF fail (-all) without DMARC: stamped by default, rejected 550 5.7.23 under spfFailAction reject', async () => {
    const s = await send('a@spf-fail.test', message('a@spf-fail.test'));
    assert.equal(s.code, 250, s.reply);
    assert.match(header(s.stored!).ar[0]!, /spf=fail/);
    auth = { ...DEFAULTS, spfFailAction: 'reject' };
    try {
      const before = await gw.stored();
      const r = await send('a@spf-fail.test', message('a@spf-fail.test'));
      assert.equal(r.reply, '550 5.7.23 Message rejected: the SPF record of spf-fail.test does not designate this sending IP address');
      assert.deepEqual(await gw.stored(), before);
    } finally {
      auth = { ...DEFAULTS };
    }
    // Exchange's Sender ID action Delete: the forger is told 250, nobody gets it.
    auth = { ...DEFAULTS, spfFailAction: 'delete' };
    try {
      const before = await gw.stored();
      const d = await send('a@spf-fail.test', message('a@spf-fail.test'));
      assert.equal(d.code, 250, d.reply);
      assert.equal(d.stored, null);
      assert.deepEqual(await gw.stored(), before);
    } finally {
      auth = { ...DEFAULTS };
    }
  });

  it('DKIM: a message signed here verifies against the key in the zone, and DMARC passes by alignment', async () => {
    const s = await send('bounce@unrelated.test', await sign(message('news@signed.test')));
    assert.equal(s.code, 250, s.reply);
    const ar = header(s.stored!).ar[0]!;
    assert.match(ar, /dkim=pass .*header\.d=signed\.test/);
    assert.match(ar, /dmarc=pass/);
  });

  it('DMARC p=reject failing: 550 5.7.1 and nothing stored (a body changed after signing, an unsigned forgery)', async () => {
    const before = await gw.stored();
    const tampered = (await sign(message('news@signed.test'))).replace('Hello.', 'Hello!');
    const t = await send('bounce@unrelated.test', tampered);
    assert.equal(t.reply, '550 5.7.1 Access denied, sending domain signed.test does not pass DMARC verification and has a DMARC policy of reject');
    const f = await send('ceo@reject.test', message('ceo@reject.test'));
    assert.equal(f.reply, '550 5.7.1 Access denied, sending domain reject.test does not pass DMARC verification and has a DMARC policy of reject');
    assert.deepEqual(await gw.stored(), before);
  });

  it('DMARC p=quarantine failing: stamped by default', async () => {
    const s = await send('x@quarantine.test', message('x@quarantine.test'));
    assert.equal(s.code, 250, s.reply);
    assert.match(header(s.stored!).ar[0]!, /dmarc=fail .*header\.from=quarantine\.test/);
  });

  it('not on a connector with senderAuthenticationEnabled: false, nor for Bypass-Anti-Spam sessions', async () => {
    for (const from of ['127.0.0.60', '127.0.0.50']) {
      const s = await send('ceo@reject.test', message('ceo@reject.test'), from);
      assert.equal(s.code, 250, `${from}: ${s.reply}`);
      assert.deepEqual(header(s.stored!).ar, [], from);
    }
  });
});

describe('sender authentication: bad input and failure', () => {
  it('malformed DKIM signatures are results, not errors: a broken b= fails, a signature without d= is ignored', async () => {
    const signed = await sign(message('news@signed.test'));
    const broken = signed.replace(/(\r\n b=)[\s\S]*?(?=\r\n[^ \t])/, '$1!!!not-base64!!!');
    assert.notEqual(broken, signed);
    const b = await send('a@spf-pass.test', broken);
    // DMARC p=reject of signed.test then refuses it: the broken signature counts as a failed one.
    assert.equal(b.reply, '550 5.7.1 Access denied, sending domain signed.test does not pass DMARC verification and has a DMARC policy of reject');
    const s2 = await send('a@spf-pass.test', message('a@spf-pass.test', { extra: 'DKIM-Signature: v=1; a=rsa-sha256; d=; b=!!!; bh=zzz; h=from\r\n' }));
    assert.equal(s2.code, 250, s2.reply);
    assert.match(header(s2.stored!).ar[0]!, /dkim=none/);
    assert.match(header(s2.stored!).ar[0]!, /spf=pass/);
  });

  it('a looping SPF record and one over the 10-lookup limit are permerror; lookups stay bounded', async () => {
    const loop = await send('a@loop.test', message('a@loop.test'));
    assert.equal(loop.code, 250, loop.reply);
    assert.match(header(loop.stored!).ar[0]!, /spf=permerror/);
    assert.ok(dns.count('loop.test', 'TXT') <= 11, `loop.test TXT asked ${dns.count('loop.test', 'TXT')} times`);
    const many = await send('a@many.test', message('a@many.test'));
    assert.match(header(many.stored!).ar[0]!, /spf=permerror/);
    assert.equal(dns.count('i11.many.test'), 0, 'lookups went past the limit');
  });

  it('more than two void lookups are permerror (RFC 7208 4.6.4)', async () => {
    const s = await send('a@void.test', message('a@void.test'));
    assert.equal(s.code, 250, s.reply);
    assert.match(header(s.stored!).ar[0]!, /spf=permerror/);
    assert.equal(dns.count('n4.void.test'), 0);
  });

  it('DNS timeouts: temperror, accepted and stamped by default; 451 4.7.5 and nothing stored under tempErrorAction tempfail', async () => {
    const s = await send('a@slow.test', message('a@slow.test'));
    assert.equal(s.code, 250, s.reply);
    assert.match(header(s.stored!).ar[0]!, /spf=temperror/);
    assert.match(header(s.stored!).ar[0]!, /dmarc=temperror/);
    auth = { ...DEFAULTS, tempErrorAction: 'tempfail' };
    try {
      const before = await gw.stored();
      const t = await send('a@slow.test', message('a@slow.test'));
      assert.equal(t.reply, '451 4.7.5 Sender authentication could not be completed (temporary DNS failure), please try again later');
      assert.deepEqual(await gw.stored(), before);
    } finally {
      auth = { ...DEFAULTS };
    }
  });

  it('checks that cannot finish in time never become a 250 for a message that is not stored', async () => {
    auth = { ...DEFAULTS, tempErrorAction: 'tempfail', timeout: 100 };
    try {
      const before = await gw.stored();
      const t = await send('a@slow.test', message('a@slow.test'));
      assert.equal(t.code, 451, t.reply);
      assert.deepEqual(await gw.stored(), before);
      assert.ok(gw.logs.some((l) => l.filter === 'sender-authentication' && String(l.reason).includes('did not finish')));
    } finally {
      auth = { ...DEFAULTS };
    }
  });

  it('a 40 MB signed message is verified while it streams: DKIM passes', async () => {
    const line = 'z'.repeat(998) + '\r\n';
    const s = await send('bounce@unrelated.test', await sign(message('news@signed.test', { body: line.repeat(40_000) })));
    assert.equal(s.code, 250, s.reply);
    assert.match(header(s.stored!).ar[0]!, /dkim=pass .*header\.d=signed\.test/);
  });

  it('the filter holds no whole message: 256 MB through one session grow memory by far less', async () => {
    const session = senderAuth.begin({ queueId: 'q', connector: 'Internet', clientIP: '127.0.0.1', clientHostname: '[127.0.0.1]', helo: 'sender.test', tls: null, authUser: null, sender: { local: 'a', domain: 'spf-pass.test' }, recipients: [], fqdn: 'mx.contoso.test' });
    // A signature whose body hash is computed over all of it (and does not match: dkim=fail).
    const head = `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=signed.test; s=sel; h=from; bh=${Buffer.alloc(32).toString('base64')}; b=${Buffer.alloc(256).toString('base64')}\r\nFrom: <news@signed.test>\r\nSubject: big\r\n`;
    await session.header(parseHeaderFields(Buffer.from(head, 'latin1')));
    const chunk = Buffer.from(('z'.repeat(1022) + '\r\n').repeat(64), 'latin1'); // 64 KB, sent 4096 times
    const base = process.memoryUsage();
    let peak = 0;
    for (let i = 0; i < 4096; i++) {
      await session.body(chunk);
      if (i % 64 === 0) {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.heapUsed + m.arrayBuffers - (base.heapUsed + base.arrayBuffers));
      }
    }
    const out = await session.end();
    assert.match(out.reason, /dkim=(fail|neutral)\(signed\.test\)/, out.reason);
    assert.ok(peak < 96 * 1024 * 1024, `memory grew by ${Math.round(peak / 1048576)} MB while 256 MB streamed through`);
  });

  it('internalSMTPServers: mail a front relay hands on is judged for the host before it, read from the Received field the relay wrote; forged ones from outside are never read', async () => {
    // spf-fail.test designates 192.0.2.0/24 only.
    const relayed = (hops: string[]) => message('a@spf-fail.test', { extra: hops.map((h) => `Received: ${h}\r\n`).join('') });
    const fromOutside = 'from mail.sender.test (mail.sender.test [192.0.2.7]) by relay.contoso.test (Postfix) with ESMTPS id 4AbC; Wed, 02 Dec 2026 08:00:00 +0000';
    const pass = await send('a@spf-fail.test', relayed([fromOutside]), '127.0.0.70');
    assert.equal(pass.code, 250, pass.reply);
    assert.match(header(pass.stored!).ar[0]!, /spf=pass/);
    assert.match(pass.stored!, /^Received-SPF: pass[^\r]*192\.0\.2\.7/m);
    assert.ok(gw.logs.some((l) => l.filter === 'sender-authentication' && /SPF judged for 192\.0\.2\.7, which handed the message to internal server 127\.0\.0\.70/.test(String(l.reason))));
    // Two internal hops: the older Received of the relay's own relay.
    const twoHops = await send('a@spf-fail.test', relayed(['from relay2.contoso.test (relay2.contoso.test [127.0.0.70]) by relay.contoso.test with ESMTP', fromOutside]), '127.0.0.70');
    assert.match(header(twoHops.stored!).ar[0]!, /spf=pass/);
    // The relay wrote nothing readable: judged for the relay itself, and said why.
    const none = await send('a@spf-fail.test', message('a@spf-fail.test'), '127.0.0.70');
    assert.match(header(none.stored!).ar[0]!, /spf=fail/);
    assert.ok(gw.logs.some((l) => l.filter === 'sender-authentication' && /SPF judged for internal server 127\.0\.0\.70: internal server 127\.0\.0\.70 added no Received field/.test(String(l.reason))));
    // A client that is not internal: its Received fields are the sender's own words, never read.
    const forged = await send('a@spf-fail.test', relayed([fromOutside]), '127.0.0.1');
    assert.match(header(forged.stored!).ar[0]!, /spf=fail/);
  });

  it('trusted ARC sealers (Set-ArcConfig -ArcTrustedSealers): a list that changed a p=reject sender\'s mail and vouches for it gets it in; nobody else does', async () => {
    const REFUSED = '550 5.7.1 Access denied, sending domain reject.test does not pass DMARC verification and has a DMARC policy of reject';
    // reject.test's SPF does not allow 127.0.0.1 and nothing is signed: DMARC fails, p=reject.
    const listed = (body = 'Hello.\r\n-- \r\nThe list footer\r\n') => message('ceo@reject.test', { body });
    const vouched = await sealed(listed(), 'lists.test', 'spf=pass smtp.mailfrom=reject.test; dmarc=pass header.from=reject.test');
    const before = await gw.stored();
    assert.equal((await send('list-bounces@lists.test', vouched)).reply, REFUSED, 'no sealer trusted by default');
    const trusted = parseDomainPattern('lists.test');
    assert.ok(trusted.ok);
    auth = { ...DEFAULTS, arcTrustedSealers: [trusted.value] };
    try {
      const s = await send('list-bounces@lists.test', vouched);
      assert.equal(s.code, 250, s.reply);
      const ar = header(s.stored!).ar;
      assert.equal(ar.length, 1);
      assert.match(ar[0]!, /arc=pass \(i=1 spf=pass dmarc=pass fromdomain=reject\.test\)/);
      assert.match(ar[0]!, /dmarc=fail /, 'the header tells the truth about DMARC');
      assert.ok(gw.logs.some((l) => l.filter === 'sender-authentication' && /arc=pass \(i=1 lists\.test\): reject\.test fails DMARC \(p=reject\), taken as a pass: trusted ARC sealer lists\.test \(arcTrustedSealers lists\.test\) recorded dmarc=pass for reject\.test in ARC set i=1, action accept/.test(String(l.reason))));
      const after = await gw.stored();
      // Each of these is still refused, and nothing of them stored:
      const cases: Array<[string, string]> = [
        // sealed by a domain nobody trusts (a valid chain: ARC passes);
        [await sealed(listed(), 'stranger.test', 'dmarc=pass header.from=reject.test'), 'untrusted sealer'],
        // the trusted list saw DMARC fail itself;
        [await sealed(listed(), 'lists.test', 'dmarc=fail header.from=reject.test'), 'the sealer recorded a fail'],
        // it vouched for another From domain;
        [await sealed(listed(), 'lists.test', 'dmarc=pass header.from=signed.test'), 'another From domain'],
        // changed after the trusted seal (the newest ARC-Message-Signature fails: arc=fail);
        [vouched.replace('The list footer', 'Pay this invoice'), 'changed after sealing'],
        // resealed by an untrusted hop after the trusted one: only the newest set counts.
        [await sealed(vouched.replace('The list footer', 'Pay this invoice'), 'stranger.test', 'arc=pass; dmarc=pass header.from=reject.test'), 'an untrusted newest sealer, however it vouches'],
      ];
      for (const [msg, why] of cases) assert.equal((await send('list-bounces@lists.test', msg)).reply, REFUSED, why);
      // Broken or forged ARC fields naming the trusted sealer are results, never errors (no 451)
      // and never a pass: the chain fails, and the fail stands.
      const claim = 'ARC-Authentication-Results: i=1; mx.lists.test; dmarc=pass header.from=reject.test\r\n';
      const forged: Array<[string, string]> = [
        ['ARC-Seal: garbage\r\nARC-Message-Signature: garbage\r\n' + claim, 'unparsable ARC fields'],
        ['ARC-Seal: i=1; a=rsa-sha256; t=1796600000; cv=none; d=lists.test; s=arc; b=AAAA\r\nARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=lists.test; s=arc; h=from; bh=AAAA; b=AAAA\r\n' + claim, 'signatures that do not verify'],
        [claim, 'results without a seal'],
        ['ARC-Seal: i=0; a=rsa-sha256; cv=none; d=lists.test; s=arc; b=AAAA\r\n' + claim, 'instance 0'],
        [Array.from({ length: 51 }, (_, i) => `ARC-Seal: i=${51 - i}; a=rsa-sha256; cv=pass; d=lists.test; s=arc; b=AAAA\r\n`).join('') + claim, '51 ARC sets'],
        [(await sealed(listed(), 'lists.test', 'dmarc=pass header.from=reject.test')).replace(/^ARC-Seal: i=1;/, 'ARC-Seal: i=1; i=2;'), 'a seal with i= twice'],
      ];
      for (const [fields, why] of forged) assert.equal((await send('list-bounces@lists.test', fields + listed())).reply, REFUSED, why);
      assert.deepEqual(await gw.stored(), after);
    } finally {
      auth = { ...DEFAULTS };
    }
    assert.deepEqual(await gw.stored(), { bodies: before.bodies + 1, jobs: before.jobs + 1 }, 'only the vouched message stored');
  });

  it('bypass lists (Set-SenderIdConfig -BypassedSenderDomains, -BypassedRecipients): no check and no Authentication-Results; a bypassed recipient among others spares nothing', async () => {
    const domain = parseDomainPattern('*.reject.test');
    assert.ok(domain.ok);
    auth = { ...DEFAULTS, bypassedSenderDomains: [domain.value] };
    try {
      const s = await send('ceo@reject.test', message('ceo@reject.test'));
      assert.equal(s.code, 250, 'DMARC p=reject would refuse it: not checked');
      assert.equal(header(s.stored!).ar.length, 0);
      assert.ok(gw.logs.some((l) => l.filter === 'sender-authentication' && /not checked: the sender's domain reject\.test is in bypassedSenderDomains \(\*\.reject\.test\)/.test(String(l.reason))));
      assert.equal((await send('ceo@spf-fail.test', message('ceo@spf-fail.test'))).code, 250);
    } finally {
      auth = { ...DEFAULTS };
    }
    auth = { ...DEFAULTS, bypassedRecipients: ['alice@contoso.test'] };
    try {
      assert.equal((await send('ceo@reject.test', message('ceo@reject.test'))).code, 250, 'every recipient bypassed');
      const c = await RawSmtp.connect({ host: '127.0.0.1', port });
      await c.ehlo('sender.test');
      const t = await c.transaction('ceo@reject.test', ['alice@contoso.test', 'bob@contoso.test'], message('ceo@reject.test'));
      await c.quit();
      assert.equal((t.end ?? t.data!).last, '550 5.7.1 Access denied, sending domain reject.test does not pass DMARC verification and has a DMARC policy of reject', 'one bypassed recipient among others');
    } finally {
      auth = { ...DEFAULTS };
    }
  });
});
