// The outbound TLS policy on MX delivery, MTA-STS (RFC 8461) and DANE (RFC 7672), end to end: messages queued as the listener does, real
// workers, a real Redis (the policy cache), real SMTP far sides on loopback with certificates
// from a CA made by the test, the policy served by a real HTTPS server on loopback (certificate
// from the same CA), MX/A/TXT/TLSA records from an injected resolver (TLSA marked secure or
// not, as a validating resolver's AD bit would). No real DNS.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { parseDsn } from './helpers/dsn.js';
import { enqueue, eventually, mailbox, message, withoutDeliveryHeaders } from './helpers/gateway.js';
import { makeRig, type Rig } from './helpers/rig.js';
import { FakeResolver, type FakeZone } from './helpers/fake-dns.js';
import { makeTestCa, type TestCa } from './helpers/test-ca.js';
import { capturedLogger, connector, startFar, startPolicyServer, type Far, type PolicyServer } from './helpers/tls-far.js';
import { startDnsServer } from '../harness/dns-server.js';
import { daneMismatch, queryDnssecStatus, queryTlsa, usableTlsa } from '@mailgw/worker';
import { QueueAdmin } from '@mailgw/ops';
import { showText } from '../../packages/cli/src/commands/queue.js';

const policy = (mode: string, mx: string[], maxAge = 86400) => `version: STSv1\r\nmode: ${mode}\r\n${mx.map((m) => `mx: ${m}\r\n`).join('')}max_age: ${maxAge}\r\n`;

let redis: TestRedis;
let ca: TestCa;
let web: PolicyServer;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  [redis, ca] = await Promise.all([startRedis(), makeTestCa()]);
  web = await startPolicyServer(await ca.issue(['mta-sts.fabrikam.test', 'mta-sts.northwind.test', 'mta-sts.tailspin.test', 'mta-sts.adatum.test', 'mta-sts.litware.test']));
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
after(async () => {
  await web?.close();
  await redis?.stop();
  await ca?.close();
});

/** MX of `domain` → `mx` (at 127.0.0.1), mta-sts.<domain> → 127.0.0.1, and its TXT id. */
function zoneFor(domain: string, mx: string, id: string | null): FakeZone {
  return {
    mx: { [domain]: [{ exchange: mx, priority: 10 }] },
    a: { [mx]: ['127.0.0.1'], [`mta-sts.${domain}`]: ['127.0.0.1'] },
    txt: id === null ? {} : { [`_mta-sts.${domain}`]: [['v=STSv1; ', `id=${id};`]] },
  };
}

async function setup(o: { far: Far; zone: FakeZone; expire?: string }): Promise<{ r: Rig; lines: Array<Record<string, unknown>>; resolver: FakeResolver }> {
  cleanups.push(() => o.far.close());
  const r = await makeRig(redis.url, {
    routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }],
    sendConnectors: [connector()],
    ...(o.expire ? { queue: { messageExpirationTimeout: o.expire } } : {}),
  });
  cleanups.push(() => r.close());
  const { logger, lines } = capturedLogger();
  const resolver = new FakeResolver(o.zone);
  await r.start({ logger, extraCAs: [ca.cert], resolver, mxPort: o.far.port, mtaSts: { httpsPort: web.port } });
  return { r, lines, resolver };
}

const done = (r: Rig, id: string) => eventually(async () => (await r.state(id)) === 'completed', `job ${id} completed`);
const attempted = (r: Rig, id: string) => eventually(async () => ((await r.progress(id))?.recipients[0]?.attempts ?? 0) >= 1 && (await r.progress(id))!, 'an attempt');
const logged = (lines: Array<Record<string, unknown>>, msg: RegExp, what: string) => eventually(() => lines.find((l) => msg.test(String(l['msg']))), what);

describe('MTA-STS on MX delivery', () => {
  test('enforce: a listed MX with a valid certificate gets the mail over TLS; the cached policy is reused, and fetched again when the TXT id changes', async () => {
    web.policies.set('fabrikam.test', policy('enforce', ['mx.fabrikam.test']));
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const zone = zoneFor('fabrikam.test', 'mx.fabrikam.test', '20260101');
    const { r, lines } = await setup({ far, zone });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('sts enforce') });
    await done(r, id);
    assert.deepEqual(far.got, [{ rcptTo: ['bob@fabrikam.test'], secure: true }]);
    assert.equal(web.fetches.get('fabrikam.test'), 1);
    const applied = await logged(lines, /^outbound TLS policy$/, 'the policy logged for the delivery');
    assert.equal(applied['mtaSts'], 'enforce');
    assert.equal(applied['id'], '20260101');
    assert.match(String(applied['tlsPolicy']), /MTA-STS policy of fabrikam\.test \(mode enforce, id 20260101\), requireTLS, tlsAuthLevel DomainValidation/);
    // Which policy applied is logged per delivery, with its reason, and kept for `mailgw queue show`.
    const perDelivery = await logged(lines, /^TLS policy of the delivery$/, 'the applied policy logged');
    assert.deepEqual([perDelivery['tlsPolicy'], perDelivery['host'], perDelivery['hop']], ['MTA-STS enforce', 'mx.fabrikam.test', 'send:Internet:mx:fabrikam.test']);
    assert.equal(perDelivery['queueId'], id, 'the delivery\'s lines name the message');
    assert.equal(applied['queueId'], id);
    assert.match(String(perDelivery['reason']), /^MTA-STS policy of fabrikam\.test \(id 20260101\) in mode enforce: verified TLS to an MX host the policy lists, or the message waits$/);
    const kept = (await r.progress(id))!.hopTls!['send:Internet:mx:fabrikam.test']!;
    assert.deepEqual([kept.policy, kept.host], ['MTA-STS enforce', 'mx.fabrikam.test']);
    assert.match(kept.detail, /^MTA-STS policy of fabrikam\.test \(mode enforce, id 20260101\), requireTLS/);
    const cached = JSON.parse((await r.redis.get(`${r.gateway.redis.prefix}:mta-sts:fabrikam.test`))!) as { id: string; policy: { mode: string } };
    assert.equal(cached.id, '20260101');
    const ttl = await r.redis.pttl(`${r.gateway.redis.prefix}:mta-sts:fabrikam.test`);
    assert.ok(ttl > 80_000_000 && ttl <= 86_400_000, `cached for max_age (pttl ${ttl})`);

    // Same id: the cached policy, no second fetch.
    const id2 = await enqueue(r.store, { from: 'alice@contoso.test', to: ['carol@fabrikam.test'], body: message('sts cached') });
    await done(r, id2);
    assert.equal(far.got.length, 2);
    assert.equal(web.fetches.get('fabrikam.test'), 1, 'the cached policy was used');
    assert.ok(lines.some((l) => l['msg'] === 'outbound TLS policy' && l['policyFrom'] === 'cache'));

    // A new id: fetched again, and the new policy (testing) applies.
    web.policies.set('fabrikam.test', policy('testing', ['mx.fabrikam.test'], 600));
    zone.txt!['_mta-sts.fabrikam.test'] = [['v=STSv1; id=20260202;']];
    const id3 = await enqueue(r.store, { from: 'alice@contoso.test', to: ['dave@fabrikam.test'], body: message('sts refreshed') });
    await done(r, id3);
    assert.equal(web.fetches.get('fabrikam.test'), 2);
    const refreshed = JSON.parse((await r.redis.get(`${r.gateway.redis.prefix}:mta-sts:fabrikam.test`))!) as { id: string; policy: { mode: string; maxAge: number } };
    assert.deepEqual([refreshed.id, refreshed.policy.mode, refreshed.policy.maxAge], ['20260202', 'testing', 600]);
  });

  test('enforce: an MX not in the policy gets nothing; the message waits (4.7.5), then bounces with a DSN naming the MTA-STS policy', async () => {
    web.policies.set('northwind.test', policy('enforce', ['mx.northwind.test', '*.backup.northwind.test']));
    const far = await startFar(await ca.issue(['rogue.example.test']));
    const { r } = await setup({ far, zone: zoneFor('northwind.test', 'rogue.example.test', 'n1'), expire: '2s' });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@northwind.test'], body: message('sts rogue mx') });
    const p = await attempted(r, id);
    assert.equal(p.recipients[0]!.status, 'pending');
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /MTA-STS policy of northwind\.test \(mode enforce, id n1\) not met: MX rogue\.example\.test not in the policy's mx mx\.northwind\.test, \*\.backup\.northwind\.test/);
    await done(r, id);
    const [dsnFile] = await eventually(() => mailbox(r.root, 'alice@contoso.test').then((b) => (b.length ? b : null)), 'the DSN');
    const dsn = await parseDsn(withoutDeliveryHeaders(dsnFile!).rest);
    assert.equal(dsn.recipients[0]!['action'], 'failed');
    assert.match(dsn.recipients[0]!['diagnostic-code'] ?? '', /4\.7\.5 MTA-STS policy of northwind\.test \(mode enforce, id n1\) not met/);
    assert.equal(far.got.length, 0, 'nothing went to the unlisted MX');
  });

  test('enforce: a listed MX with an untrusted certificate, or without STARTTLS, gets nothing (4.7.5)', async () => {
    web.policies.set('tailspin.test', policy('enforce', ['mx.tailspin.test']));
    const selfSigned = await startFar(await ca.selfSigned(['mx.tailspin.test']));
    const { r } = await setup({ far: selfSigned, zone: zoneFor('tailspin.test', 'mx.tailspin.test', 't1') });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@tailspin.test'], body: message('sts self-signed') });
    const p = await attempted(r, id);
    assert.equal(p.recipients[0]!.status, 'pending');
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /TLS policy of send connector "Internet" \(MTA-STS policy of tailspin\.test \(mode enforce, id t1\), requireTLS, tlsAuthLevel DomainValidation\) not met by mx\.tailspin\.test\[127\.0\.0\.1\]/);
    assert.equal(selfSigned.got.length, 0);

    const plain = await startFar();
    const { r: r2 } = await setup({ far: plain, zone: zoneFor('tailspin.test', 'mx.tailspin.test', 't1') });
    const id2 = await enqueue(r2.store, { from: 'alice@contoso.test', to: ['bob@tailspin.test'], body: message('sts plain') });
    const p2 = await attempted(r2, id2);
    assert.equal(p2.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p2.recipients[0]!.reply!.text, /MTA-STS policy of tailspin\.test/);
    assert.equal(plain.got.length, 0, 'never in plain text');
  });

  test('testing: an unlisted MX with an untrusted certificate still gets the mail; both failures are logged', async () => {
    web.policies.set('adatum.test', policy('testing', ['mx.adatum.test']));
    const far = await startFar(await ca.selfSigned(['other.adatum-mail.test']));
    const { r, lines } = await setup({ far, zone: zoneFor('adatum.test', 'other.adatum-mail.test', 'a1') });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@adatum.test'], body: message('sts testing') });
    await done(r, id);
    assert.deepEqual(far.got, [{ rcptTo: ['bob@adatum.test'], secure: true }]);
    const notListed = await logged(lines, /^MTA-STS testing: MX hosts not in the policy/, 'the unlisted MX reported');
    assert.deepEqual(notListed['mxNotInPolicy'], ['other.adatum-mail.test']);
    const cert = await logged(lines, /^MTA-STS testing: this session would fail the policy/, 'the certificate failure reported');
    assert.match(String(cert['problem']), /certificate not trusted/);
    assert.equal((await logged(lines, /^outbound TLS policy$/, 'policy line'))['mtaSts'], 'testing');
  });

  test('a malformed policy counts as no policy (RFC 8461 §3.3): delivered as usual, with a log line', async () => {
    web.policies.set('litware.test', 'version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n');
    const far = await startFar();
    const { r, lines } = await setup({ far, zone: zoneFor('litware.test', 'mx.litware.test', 'l1') });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@litware.test'], body: message('sts malformed') });
    await done(r, id);
    assert.deepEqual(far.got, [{ rcptTo: ['bob@litware.test'], secure: false }]);
    const warn = await logged(lines, /^MTA-STS policy malformed: treated as no policy/, 'the malformed policy logged');
    assert.match(String(warn['err']), /mode enforce without any mx field/);
    assert.equal((await logged(lines, /^outbound TLS policy$/, 'policy line'))['mtaSts'], 'none');
    assert.equal(await r.redis.exists(`${r.gateway.redis.prefix}:mta-sts:litware.test`), 0, 'nothing cached');
  });
});

/** TLSA data: sha256 of the certificate's SubjectPublicKeyInfo (selector 1) or whole DER (selector 0). */
function tlsaHash(pem: string, selector: 0 | 1): Buffer {
  const c = new X509Certificate(pem);
  return createHash('sha256').update(selector === 0 ? c.raw : c.publicKey.export({ type: 'spki', format: 'der' })).digest();
}

describe('DANE on MX delivery', () => {
  test('DANE-EE 3 1 1, secure: a self-signed certificate matching the record gets the mail, over MTA-STS enforce (DANE takes precedence)', async () => {
    web.policies.set('fabrikam.test', policy('enforce', ['mx.fabrikam.test']));
    const leaf = await ca.selfSigned(['mx.fabrikam.test']);
    const far = await startFar(leaf);
    const zone = zoneFor('fabrikam.test', 'mx.fabrikam.test', 'd1');
    const { r, lines } = await setup({ far, zone: { ...zone, tlsa: { [`_${far.port}._tcp.mx.fabrikam.test`]: { secure: true, records: [{ usage: 3, selector: 1, matchingType: 1, data: tlsaHash(leaf.cert, 1) }] } } } });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('dane ee') });
    await done(r, id);
    assert.deepEqual(far.got, [{ rcptTo: ['bob@fabrikam.test'], secure: true }]);
    const line = await logged(lines, /^DANE applies to this MX host$/, 'DANE logged');
    assert.match(String(line['tlsPolicy']), new RegExp(`^DANE TLSA _${far.port}\\._tcp\\.mx\\.fabrikam\\.test \\(3 1 1\\), MTA-STS policy of fabrikam\\.test`));
  });

  test('DANE-EE, secure, not matching: nothing is sent (4.7.5 naming DANE); the same records unsigned are ignored', async () => {
    const leaf = await ca.issue(['mx.northwind.test']);
    const other = await ca.selfSigned(['mx.northwind.test']);
    const far = await startFar(leaf);
    const owner = `_${far.port}._tcp.mx.northwind.test`;
    const records = [{ usage: 3, selector: 1, matchingType: 1, data: tlsaHash(other.cert, 1) }];
    const { r } = await setup({ far, zone: { ...zoneFor('northwind.test', 'mx.northwind.test', null), tlsa: { [owner]: { secure: true, records } } } });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@northwind.test'], body: message('dane mismatch') });
    const p = await attempted(r, id);
    assert.equal(p.recipients[0]!.status, 'pending');
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /TLS policy of send connector "Internet" \(DANE TLSA _\d+\._tcp\.mx\.northwind\.test \(3 1 1\), requireTLS\) not met by mx\.northwind\.test\[127\.0\.0\.1\]:\d+: DANE: no TLSA record \(3 1 1\) matches the certificate chain/);
    assert.equal(far.got.length, 0);
    // `mailgw queue show` names DANE as the policy of the hop's last attempt, with why.
    const admin = await QueueAdmin.open({ redisUrl: redis.url, gateway: r.gateway, dataDir: r.dataDir });
    cleanups.push(() => admin.close());
    const shown = showText((await admin.message(id))!, [], Date.now());
    assert.match(shown, /TLS policy \(last attempt per next hop\):\n  send:Internet:mx:northwind\.test: DANE \(mx\.northwind\.test\), [\d-]+ [\d:]+Z\n    DANE TLSA _\d+\._tcp\.mx\.northwind\.test \(3 1 1\), requireTLS\n    why: DNSSEC-signed TLSA records at _\d+\._tcp\.mx\.northwind\.test \(3 1 1\) decide the certificate; they take precedence over MTA-STS and the connector\n/);

    const far2 = await startFar(leaf);
    const { r: r2 } = await setup({ far: far2, zone: { ...zoneFor('northwind.test', 'mx.northwind.test', null), tlsa: { [`_${far2.port}._tcp.mx.northwind.test`]: { secure: false, records } } } });
    const id2 = await enqueue(r2.store, { from: 'alice@contoso.test', to: ['bob@northwind.test'], body: message('dane insecure') });
    await done(r2, id2);
    assert.equal(far2.got.length, 1, 'TLSA without DNSSEC does not count');
  });

  test('DANE-TA 2 0 1: a chain up to the matching CA with the MX name passes; a wrong name does not', async () => {
    const caRecord = { usage: 2, selector: 0, matchingType: 1, data: tlsaHash(ca.cert, 0) };
    const good = await ca.issue(['mx.tailspin.test']);
    const far = await startFar({ key: good.key, cert: good.cert + ca.cert });
    const { r } = await setup({ far, zone: { ...zoneFor('tailspin.test', 'mx.tailspin.test', null), tlsa: { [`_${far.port}._tcp.mx.tailspin.test`]: { secure: true, records: [caRecord] } } } });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@tailspin.test'], body: message('dane ta') });
    await done(r, id);
    assert.equal(far.got.length, 1);

    const wrong = await ca.issue(['elsewhere.test']);
    const far2 = await startFar({ key: wrong.key, cert: wrong.cert + ca.cert });
    const { r: r2 } = await setup({ far: far2, zone: { ...zoneFor('tailspin.test', 'mx.tailspin.test', null), tlsa: { [`_${far2.port}._tcp.mx.tailspin.test`]: { secure: true, records: [caRecord] } } } });
    const id2 = await enqueue(r2.store, { from: 'alice@contoso.test', to: ['bob@tailspin.test'], body: message('dane ta wrong name') });
    const p = await attempted(r2, id2);
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /DANE: DANE-TA matched, but the certificate does not carry mx\.tailspin\.test/);
    assert.equal(far2.got.length, 0);
  });

  test('a TLSA lookup that fails (SERVFAIL) means the MX host is not tried (4.7.5)', async () => {
    const far = await startFar(await ca.issue(['mx.adatum.test']));
    const { r } = await setup({ far, zone: { ...zoneFor('adatum.test', 'mx.adatum.test', null), tlsa: { [`_${far.port}._tcp.mx.adatum.test`]: 'SERVFAIL' } } });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@adatum.test'], body: message('dane servfail') });
    const p = await attempted(r, id);
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /DANE: TLSA lookup of _\d+\._tcp\.mx\.adatum\.test failed \(ESERVFAIL\)/);
    assert.equal(far.got.length, 0);
  });

  test('DANE applies only where the MX records and the MX host\'s address records are signed (RFC 7672 §2.2): otherwise the TLSA records are not asked for, and a mismatch does not hold the mail', async () => {
    const leaf = await ca.issue(['mx.litware.test']);
    const other = await ca.selfSigned(['mx.litware.test']);
    for (const insecure of ['MX litware.test', 'A mx.litware.test']) {
      const far = await startFar(leaf);
      const owner = `_${far.port}._tcp.mx.litware.test`;
      // Signed TLSA records that match nothing: with DANE in force this would be 4.7.5.
      const zone = { ...zoneFor('litware.test', 'mx.litware.test', null), tlsa: { [owner]: { secure: true, records: [{ usage: 3, selector: 1, matchingType: 1, data: tlsaHash(other.cert, 1) }] } }, insecure: [insecure] };
      const { r, resolver, lines } = await setup({ far, zone });
      const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@litware.test'], body: message(`unsigned ${insecure}`) });
      await done(r, id);
      assert.deepEqual(far.got, [{ rcptTo: ['bob@litware.test'], secure: true }], `${insecure} unsigned: delivered over opportunistic TLS`);
      assert.ok(!resolver.queries.includes(`TLSA ${owner}`), 'the TLSA records are not asked for');
      assert.ok(!lines.some((l) => l['msg'] === 'DANE applies to this MX host'));
    }
    // Both signed: the same records are in force, and the mismatch holds the mail.
    const far = await startFar(leaf);
    const owner = `_${far.port}._tcp.mx.litware.test`;
    const { r } = await setup({ far, zone: { ...zoneFor('litware.test', 'mx.litware.test', null), tlsa: { [owner]: { secure: true, records: [{ usage: 3, selector: 1, matchingType: 1, data: tlsaHash(other.cert, 1) }] } } } });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@litware.test'], body: message('signed') });
    const p = await attempted(r, id);
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.equal(far.got.length, 0);
  });

  test('when the DNSSEC status of the MX records cannot be read (SERVFAIL), the MX host is not tried (4.7.5)', async () => {
    const far = await startFar(await ca.issue(['mx.proseware.test']));
    const { r } = await setup({ far, zone: { ...zoneFor('proseware.test', 'mx.proseware.test', null), insecure: ['SERVFAIL MX proseware.test'] } });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@proseware.test'], body: message('dnssec status servfail') });
    const p = await attempted(r, id);
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /DANE: the DNSSEC status of the MX or address records of mx\.proseware\.test could not be read/);
    assert.equal(far.got.length, 0);
  });

  test('an MX host that is a signed CNAME (RFC 7672 §2.2.2): TLSA records at the name it leads to decide first, then at its own name; an unsigned CNAME means no DANE', async () => {
    // mx.woodgrove.test is an alias of the provider's host; the provider publishes TLSA records for it.
    const leaf = await ca.selfSigned(['mx.provider.test']);
    const other = await ca.selfSigned(['mx.provider.test']);
    const ee = (pem: string) => ({ usage: 3, selector: 1, matchingType: 1, data: tlsaHash(pem, 1) });
    const zone = (port: number, tlsa: FakeZone['tlsa'], insecure: string[] = []): FakeZone => ({
      mx: { 'woodgrove.test': [{ exchange: 'mx.woodgrove.test', priority: 10 }] },
      cname: { 'mx.woodgrove.test': 'mx.provider.test' },
      a: { 'mx.provider.test': ['127.0.0.1'] },
      tlsa,
      insecure,
      exists: [`_${port}._tcp.mx.provider.test`],
    });

    // 1. At the provider's name: they decide (and a mismatching record at the alias is never asked).
    const far = await startFar(leaf);
    const { r, lines, resolver } = await setup({ far, zone: zone(far.port, { [`_${far.port}._tcp.mx.provider.test`]: { secure: true, records: [ee(leaf.cert)] }, [`_${far.port}._tcp.mx.woodgrove.test`]: { secure: true, records: [ee(other.cert)] } }) });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@woodgrove.test'], body: message('dane cname') });
    await done(r, id);
    assert.deepEqual(far.got, [{ rcptTo: ['bob@woodgrove.test'], secure: true }]);
    const line = await logged(lines, /^DANE applies to this MX host$/, 'DANE logged');
    assert.equal(line['mx'], 'mx.woodgrove.test');
    assert.equal(line['tlsaBaseDomain'], 'mx.provider.test');
    assert.match(String(line['tlsPolicy']), new RegExp(`^DANE TLSA _${far.port}\\._tcp\\.mx\\.provider\\.test \\(3 1 1\\)`));
    assert.ok(!resolver.queries.includes(`TLSA _${far.port}._tcp.mx.woodgrove.test`), 'the alias\'s own records are not needed');
    assert.deepEqual(far.servernames, ['mx.provider.test'], 'SNI names the TLSA base domain (RFC 7672 §8.1)');

    // 2. None at the provider's name (NODATA): the alias's own records decide; here they do not match, so the mail waits.
    const far2 = await startFar(leaf);
    const { r: r2, resolver: resolver2 } = await setup({ far: far2, zone: zone(far2.port, { [`_${far2.port}._tcp.mx.woodgrove.test`]: { secure: true, records: [ee(other.cert)] } }) });
    const id2 = await enqueue(r2.store, { from: 'alice@contoso.test', to: ['bob@woodgrove.test'], body: message('dane cname fallback') });
    const p2 = await attempted(r2, id2);
    assert.equal(p2.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p2.recipients[0]!.reply!.text, new RegExp(`DANE TLSA _${far2.port}\\._tcp\\.mx\\.woodgrove\\.test \\(3 1 1\\), requireTLS\\) not met by mx\\.woodgrove\\.test\\[127\\.0\\.0\\.1\\]:\\d+: DANE: no TLSA record`));
    assert.deepEqual(resolver2.queries.filter((q) => q.startsWith('TLSA')), [`TLSA _${far2.port}._tcp.mx.provider.test`, `TLSA _${far2.port}._tcp.mx.woodgrove.test`], 'the provider\'s name first');
    assert.equal(far2.got.length, 0);

    // 3. The CNAME is not signed: the address records are not authenticated, DANE does not apply (the mismatching records are ignored).
    const far3 = await startFar(leaf);
    const { r: r3, resolver: resolver3 } = await setup({ far: far3, zone: zone(far3.port, { [`_${far3.port}._tcp.mx.provider.test`]: { secure: true, records: [ee(other.cert)] } }, ['CNAME mx.woodgrove.test']) });
    const id3 = await enqueue(r3.store, { from: 'alice@contoso.test', to: ['bob@woodgrove.test'], body: message('dane cname unsigned') });
    await done(r3, id3);
    assert.deepEqual(far3.got, [{ rcptTo: ['bob@woodgrove.test'], secure: true }], 'opportunistic TLS');
    assert.deepEqual(far3.servernames, ['mx.woodgrove.test'], 'without DANE, SNI names the MX host');
    assert.ok(!resolver3.queries.some((q) => q.startsWith('TLSA')), 'no TLSA asked');

    // 4. A TLSA lookup that fails at the provider's name: not tried, never a fallback to the alias's records.
    const far4 = await startFar(leaf);
    const { r: r4 } = await setup({ far: far4, zone: zone(far4.port, { [`_${far4.port}._tcp.mx.provider.test`]: 'SERVFAIL', [`_${far4.port}._tcp.mx.woodgrove.test`]: { secure: true, records: [ee(leaf.cert)] } }) });
    const id4 = await enqueue(r4.store, { from: 'alice@contoso.test', to: ['bob@woodgrove.test'], body: message('dane cname servfail') });
    const p4 = await attempted(r4, id4);
    assert.match(p4.recipients[0]!.reply!.text, /DANE: TLSA lookup of _\d+\._tcp\.mx\.provider\.test failed \(ESERVFAIL\)/);
    assert.equal(far4.got.length, 0);
  });

  test('DANE-TA through a CNAME: a certificate naming the provider\'s host or the MX host name passes, another name does not', async () => {
    const caRecord = { usage: 2, selector: 0, matchingType: 1, data: tlsaHash(ca.cert, 0) };
    for (const [names, ok] of [[['mx.provider.test'], true], [['mx.woodgrove.test'], true], [['elsewhere.test'], false]] as const) {
      const leaf = await ca.issue([...names]);
      const far = await startFar({ key: leaf.key, cert: leaf.cert + ca.cert });
      const { r } = await setup({
        far,
        zone: { mx: { 'woodgrove.test': [{ exchange: 'mx.woodgrove.test', priority: 10 }] }, cname: { 'mx.woodgrove.test': 'mx.provider.test' }, a: { 'mx.provider.test': ['127.0.0.1'] }, tlsa: { [`_${far.port}._tcp.mx.provider.test`]: { secure: true, records: [caRecord] } } },
      });
      const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@woodgrove.test'], body: message(`dane ta cname ${names[0]}`) });
      if (ok) {
        await done(r, id);
        assert.equal(far.got.length, 1, names[0]);
      } else {
        const p = await attempted(r, id);
        assert.match(p.recipients[0]!.reply!.text, /DANE: DANE-TA matched, but the certificate does not carry mx\.provider\.test nor mx\.woodgrove\.test/);
        assert.equal(far.got.length, 0);
      }
    }
  });

  test('the system resolver\'s TLSA query (UDP, DO bit) reads the records and the AD bit from a DNS server on loopback', async () => {
    const data = tlsaHash(ca.cert, 1);
    const dns = await startDnsServer({
      '_25._tcp.mx.signed.test': { TLSA: [{ usage: 3, selector: 1, matchingType: 1, data }], secure: true },
      '_25._tcp.mx.unsigned.test': { TLSA: [{ usage: 2, selector: 0, matchingType: 2, data }] },
      'mx.nodata.test': { A: ['127.0.0.1'] },
    });
    cleanups.push(() => dns.close());
    const signed = await queryTlsa('_25._tcp.mx.signed.test', { server: dns.server });
    assert.equal(signed.secure, true);
    assert.deepEqual(signed.records.map((x) => [x.usage, x.selector, x.matchingType, x.data.toString('hex')]), [[3, 1, 1, data.toString('hex')]]);
    const unsigned = await queryTlsa('_25._tcp.mx.unsigned.test', { server: dns.server });
    assert.equal(unsigned.secure, false);
    assert.equal(unsigned.records.length, 1);
    await assert.rejects(queryTlsa('_25._tcp.mx.missing.test', { server: dns.server }), { code: 'ENOTFOUND' });
    dns.servfail('_25._tcp.mx.broken.test');
    await assert.rejects(queryTlsa('_25._tcp.mx.broken.test', { server: dns.server }), { code: 'ESERVFAIL' });
    // The same reading for the MX and address records DANE needs signed.
    dns.set('signed.test', { MX: [{ exchange: 'mx.signed.test', priority: 10 }], secure: true });
    dns.set('mx.signed.test', { A: ['127.0.0.1'], secure: true });
    assert.equal((await queryDnssecStatus('signed.test', 'MX', { server: dns.server })).secure, true);
    assert.equal((await queryDnssecStatus('mx.signed.test', 'A', { server: dns.server })).secure, true);
    assert.equal((await queryDnssecStatus('mx.nodata.test', 'A', { server: dns.server })).secure, false);
    // Through CNAMEs: where the chain ends, authenticated only if every name on the way is.
    dns.set('mx.alias.test', { CNAME: 'mx.hop.test', secure: true });
    dns.set('mx.hop.test', { CNAME: 'mx.signed.test', secure: true });
    assert.deepEqual(await queryDnssecStatus('mx.alias.test', 'A', { server: dns.server }), { secure: true, owner: 'mx.signed.test' });
    dns.set('mx.hop.test', { CNAME: 'mx.signed.test' });
    assert.deepEqual(await queryDnssecStatus('mx.alias.test', 'A', { server: dns.server }), { secure: false, owner: 'mx.signed.test' });
    assert.deepEqual(await queryDnssecStatus('mx.signed.test', 'A', { server: dns.server }), { secure: true, owner: 'mx.signed.test' });
    dns.set('mx.loop.test', { CNAME: 'mx.loop.test', secure: true });
    assert.equal((await queryDnssecStatus('mx.loop.test', 'A', { server: dns.server })).owner, 'mx.loop.test', 'a loop stops');
  });
});

describe('DANE matching (pure)', () => {
  test('3 0 1 (whole certificate), 3 1 2 (SHA-512 of the key) and 3 1 0 (exact key) match the leaf; usages 0/1 and unknown selectors are unusable', async () => {
    const leaf = await ca.selfSigned(['mx.example.test']);
    const x = new X509Certificate(leaf.cert);
    const spki = x.publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(daneMismatch([{ usage: 3, selector: 0, matchingType: 1, data: tlsaHash(leaf.cert, 0) }], [x], ['any.name']), null);
    assert.equal(daneMismatch([{ usage: 3, selector: 1, matchingType: 2, data: createHash('sha512').update(spki).digest() }], [x], ['any.name']), null);
    assert.equal(daneMismatch([{ usage: 3, selector: 1, matchingType: 0, data: spki }], [x], ['any.name']), null);
    assert.match(daneMismatch([{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32) }], [x], ['any.name'])!, /no TLSA record \(3 1 1\) matches/);
    const all = [0, 1, 2, 3].map((usage) => ({ usage, selector: 1, matchingType: 1, data: Buffer.alloc(32) }));
    assert.deepEqual(usableTlsa([...all, { usage: 3, selector: 2, matchingType: 1, data: Buffer.alloc(32) }, { usage: 3, selector: 1, matchingType: 3, data: Buffer.alloc(32) }]).map((r) => r.usage), [2, 3]);
  });
  test('DANE-TA needs the chain to be signed up to the matching certificate', async () => {
    const leaf = new X509Certificate((await ca.issue(['mx.example.test'])).cert);
    const stranger = new X509Certificate((await ca.selfSigned(['x.test'])).cert);
    const ta = [{ usage: 2, selector: 0, matchingType: 1, data: tlsaHash(stranger.toString(), 0) }];
    assert.match(daneMismatch(ta, [leaf, stranger], ['mx.example.test'])!, /chain to the DANE-TA certificate is broken/);
    const caTa = [{ usage: 2, selector: 1, matchingType: 1, data: tlsaHash(ca.cert, 1) }];
    assert.equal(daneMismatch(caTa, [leaf, new X509Certificate(ca.cert)], ['mx.example.test']), null);
    assert.match(daneMismatch(caTa, [leaf], ['mx.example.test'])!, /no TLSA record \(2 1 1\) matches/, 'the CA must be in the chain sent');
  });
});
