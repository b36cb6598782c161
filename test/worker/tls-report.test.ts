// TLS-RPT (RFC 8460) end to end: real workers deliver to real SMTP far sides on loopback under
// MTA-STS (policy from a real HTTPS server on loopback) and DANE (TLSA from the injected
// resolver, marked secure); the sessions are counted in a real Redis, DANE ones under the MX
// host (the TLSA base domain); the reports go to an https: rua (a real HTTPS server on
// loopback), to a mailto: rua (queued and delivered by the worker to a mailbox) and to a
// directory; a report whose POST failed is sent again later; two processes never both send one.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, afterEach, before, describe, test } from 'node:test';
import { keySpace } from '@mailgw/queue';
import { reportDays, TlsReporter, tlsReportSettings, type TlsReporterOptions } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { enqueue, eventually, mailbox, message, withoutDeliveryHeaders } from './helpers/gateway.js';
import { makeRig, type Rig } from './helpers/rig.js';
import { FakeResolver, type FakeZone } from './helpers/fake-dns.js';
import { makeTestCa, type TestCa } from './helpers/test-ca.js';
import { capturedLogger, connector, startFar, startPolicyServer, type Far, type PolicyServer } from './helpers/tls-far.js';

interface RuaServer {
  readonly port: number;
  readonly posts: Array<{ path: string; type: string; body: Buffer; status: number }>;
  /** Per path, the statuses of the next POSTs (then 201). */
  readonly answers: Map<string, number[]>;
  /** Per path, how long a POST is held before its answer (ms). */
  readonly delays: Map<string, number>;
  close(): Promise<void>;
}

/** The https: rua of reports.fabrikam.test on 127.0.0.1 (certificate from the test CA). */
async function startRuaServer(cert: { key: string; cert: string }): Promise<RuaServer> {
  const posts: RuaServer['posts'] = [];
  const answers: RuaServer['answers'] = new Map();
  const delays: RuaServer['delays'] = new Map();
  const server: Server = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = req.method === 'POST' ? (answers.get(req.url ?? '')?.shift() ?? 201) : 405;
      posts.push({ path: req.url ?? '', type: String(req.headers['content-type'] ?? ''), body: Buffer.concat(chunks), status });
      setTimeout(() => res.writeHead(status).end(), delays.get(req.url ?? '') ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const a = server.address();
  return { port: typeof a === 'object' && a ? a.port : 0, posts, answers, delays, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const policy = (mode: string, mx: string[]) => `version: STSv1\r\nmode: ${mode}\r\n${mx.map((m) => `mx: ${m}\r\n`).join('')}max_age: 86400\r\n`;
const spkiHash = (pem: string) => createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest();
const today = () => new Date().toISOString().slice(0, 10);

let redis: TestRedis;
let ca: TestCa;
let web: PolicyServer;
let rua: RuaServer;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  [redis, ca] = await Promise.all([startRedis(), makeTestCa()]);
  web = await startPolicyServer(await ca.issue(['mta-sts.fabrikam.test', 'mta-sts.tailspin.test', 'mta-sts.litware.test', 'mta-sts.adatum.test']));
  rua = await startRuaServer(await ca.issue(['reports.fabrikam.test']));
  web.policies.set('tailspin.test', policy('enforce', ['mx.tailspin.test']));
  web.policies.set('fabrikam.test', policy('enforce', ['mx.fabrikam.test']));
  web.policies.set('adatum.test', policy('testing', ['mx.adatum.test']));
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
after(async () => {
  await rua?.close();
  await web?.close();
  await redis?.stop();
  await ca?.close();
});

/** MX of each domain → mx.<domain> at 127.0.0.1, its mta-sts host, an STS TXT id, the rua server's name. */
function zone(domains: string[], extra: Partial<FakeZone> = {}): FakeZone {
  const z: FakeZone = { mx: {}, a: { 'reports.fabrikam.test': ['127.0.0.1'] }, txt: {}, tlsa: {} };
  for (const d of domains) {
    z.mx![d] = [{ exchange: `mx.${d}`, priority: 10 }];
    z.a![`mx.${d}`] = ['127.0.0.1'];
    z.a![`mta-sts.${d}`] = ['127.0.0.1'];
    z.txt![`_mta-sts.${d}`] = [['v=STSv1; id=p1;']];
  }
  return { ...z, ...extra, txt: { ...z.txt, ...extra.txt }, tlsa: { ...z.tlsa, ...extra.tlsa } };
}

/** Retries far away: each message makes exactly one attempt during a test, so counts are exact. */
const SLOW_RETRY = { transientRetryInterval: '1h', messageRetryInterval: '1h', outboundConnectionFailureRetryInterval: '1h' };

async function setup(o: { far: Far; zone: FakeZone; directory?: boolean; workers?: number; schedule?: boolean; shift?: () => number }): Promise<{ r: Rig; lines: Array<Record<string, unknown>>; reporter: (x?: Partial<TlsReporterOptions>) => TlsReporter }> {
  cleanups.push(() => o.far.close());
  const r = await makeRig(redis.url, {
    routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }],
    sendConnectors: [connector()],
    queue: SLOW_RETRY,
    gateway: { tlsReports: { organizationName: 'Contoso Ltd', contactInfo: 'postmaster@contoso.test', ...(o.directory ? { directory: 'tlsrpt-out' } : {}) } },
  });
  cleanups.push(() => r.close());
  const { logger, lines } = capturedLogger();
  const resolver = new FakeResolver(o.zone);
  const configFile = path.join(r.dataDir, 'gateway.yaml');
  for (let i = 0; i < (o.workers ?? 1); i++) {
    await r.start({
      logger,
      name: `w${i}`,
      extraCAs: [ca.cert],
      resolver,
      mxPort: o.far.port,
      mtaSts: { httpsPort: web.port },
      configFile,
      // The daily run checks often, with a clock one day ahead: today's counters are "yesterday's".
      tlsReportSchedule: o.schedule ? { intervalMs: 100, clock: () => Date.now() + 86_400_000 + (o.shift?.() ?? 0) } : false,
    });
  }
  const reporter = (x: Partial<TlsReporterOptions> = {}) => new TlsReporter({ redis: r.redis, keys: keySpace(r.gateway.redis.prefix), resolver, store: r.store, settings: tlsReportSettings(r.gateway, configFile)!, fqdn: r.gateway.fqdn, extraCAs: [ca.cert], logger, ...x });
  return { r, lines, reporter };
}

const done = (r: Rig, id: string) => eventually(async () => (await r.state(id)) === 'completed', `job ${id} completed`);
const attempted = (r: Rig, id: string) => eventually(async () => ((await r.progress(id))?.recipients[0]?.attempts ?? 0) >= 1 && (await r.progress(id))!, 'an attempt');

type Json = Record<string, unknown>;
const policiesOf = (report: Json) => report['policies'] as Array<{ policy: Json; summary: Json; 'failure-details'?: Json[] }>;

describe('TLS-RPT session counters', () => {
  test('a session failing DANE is counted as validation-failure under the TLSA policy of the MX host (its policy domain); a session meeting MTA-STS as a success; the report has RFC 8460\'s fields and counts', async () => {
    const good = await ca.issue(['mx.fabrikam.test', 'mx.tailspin.test']);
    const other = await ca.selfSigned(['mx.fabrikam.test']);
    const far = await startFar(good);
    const owner = `_${far.port}._tcp.mx.fabrikam.test`;
    const { r, reporter } = await setup({ far, zone: zone(['fabrikam.test', 'tailspin.test'], { tlsa: { [owner]: { secure: true, records: [{ usage: 3, selector: 1, matchingType: 1, data: spkiHash(other.cert) }] } } }) });

    const failing = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('dane mismatch') });
    const p = await attempted(r, failing);
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    const ok = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@tailspin.test'], body: message('sts ok') });
    await done(r, ok);
    assert.equal(far.got.length, 1);

    const rep = reporter();
    const fab = await eventually(() => rep.report(today(), 'mx.fabrikam.test'), 'mx.fabrikam.test counted');
    assert.equal(await rep.report(today(), 'fabrikam.test'), null, 'nothing counted under the recipient domain');
    const [dane] = policiesOf(fab.json);
    assert.equal(policiesOf(fab.json).length, 1);
    assert.deepEqual(dane!.policy, { 'policy-type': 'tlsa', 'policy-string': [`3 1 1 ${spkiHash(other.cert).toString('hex')}`], 'policy-domain': 'mx.fabrikam.test', 'mx-host': ['mx.fabrikam.test'] });
    assert.deepEqual(dane!.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 });
    assert.deepEqual(dane!['failure-details'], [{ 'result-type': 'validation-failure', 'sending-mta-ip': '127.0.0.1', 'receiving-mx-hostname': 'mx.fabrikam.test', 'receiving-ip': '127.0.0.1', 'failed-session-count': 1 }]);
    assert.equal(fab.json['organization-name'], 'Contoso Ltd');
    assert.equal(fab.json['contact-info'], 'postmaster@contoso.test');
    assert.deepEqual(fab.json['date-range'], { 'start-datetime': `${today()}T00:00:00Z`, 'end-datetime': `${today()}T23:59:59Z` });
    assert.match(String(fab.json['report-id']), /^[0-9a-f-]{36}@contoso\.test$/);

    const tail = await eventually(() => rep.report(today(), 'tailspin.test'), 'tailspin.test counted');
    const [sts] = policiesOf(tail.json);
    assert.deepEqual(sts!.policy, { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx.tailspin.test', 'max_age: 86400'], 'policy-domain': 'tailspin.test', 'mx-host': ['mx.tailspin.test'] });
    assert.deepEqual(sts!.summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 0 });
    assert.equal(sts!['failure-details'], undefined);
    assert.deepEqual(await rep.domains(today()), ['mx.fabrikam.test', 'tailspin.test']);
    const ttl = await r.redis.pttl(`${r.gateway.redis.prefix}:tlsrpt:${today()}:mx.fabrikam.test`);
    assert.ok(ttl > 3 * 86_400_000 && ttl <= 4 * 86_400_000, `counters expire after a few days (pttl ${ttl})`);
  });

  test('DANE through a CNAME: the session is counted under the TLSA base domain the records were found at (the name the MX host is an alias of)', async () => {
    const other = await ca.selfSigned(['mx.provider.test']);
    const far = await startFar(await ca.issue(['mx.provider.test']));
    const records = [{ usage: 3, selector: 1, matchingType: 1, data: spkiHash(other.cert) }];
    const { r, reporter } = await setup({
      far,
      zone: { ...zone([]), mx: { 'woodgrove.test': [{ exchange: 'mx.woodgrove.test', priority: 10 }] }, cname: { 'mx.woodgrove.test': 'mx.provider.test' }, a: { 'mx.provider.test': ['127.0.0.1'] }, tlsa: { [`_${far.port}._tcp.mx.provider.test`]: { secure: true, records } } },
    });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@woodgrove.test'], body: message('dane cname mismatch') });
    assert.equal((await attempted(r, id)).recipients[0]!.reply!.enhanced, '4.7.5');
    const rep = reporter();
    const counted = await eventually(() => rep.report(today(), 'mx.provider.test'), 'mx.provider.test counted');
    assert.equal(await rep.report(today(), 'mx.woodgrove.test'), null, 'not under the alias');
    const [dane] = policiesOf(counted.json);
    assert.deepEqual(dane!.policy, { 'policy-type': 'tlsa', 'policy-string': [`3 1 1 ${spkiHash(other.cert).toString('hex')}`], 'policy-domain': 'mx.provider.test', 'mx-host': ['mx.woodgrove.test'] });
    assert.deepEqual(dane!.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 });
  });

  test('DANE: a DNSSEC lookup that fails before the session (the TLSA records, or the MX records\' status) is counted as dnssec-invalid under the MX host, with the error', async () => {
    const far = await startFar(await ca.issue(['mx.adatum.test', 'mx.litware.test']));
    const owner = `_${far.port}._tcp.mx.litware.test`;
    const z: FakeZone = {
      mx: { 'adatum.test': [{ exchange: 'mx.adatum.test', priority: 10 }], 'litware.test': [{ exchange: 'mx.litware.test', priority: 10 }] },
      a: { 'mx.adatum.test': ['127.0.0.1'], 'mx.litware.test': ['127.0.0.1'] },
      tlsa: { [owner]: 'SERVFAIL' },
      insecure: ['SERVFAIL MX adatum.test'],
    };
    const { r, reporter } = await setup({ far, zone: z });
    for (const to of ['bob@adatum.test', 'bob@litware.test']) {
      const p = await attempted(r, await enqueue(r.store, { from: 'alice@contoso.test', to: [to], body: message(`dnssec failure ${to}`) }));
      assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5', to);
    }
    assert.equal(far.got.length, 0);
    const rep = reporter();
    for (const mx of ['mx.adatum.test', 'mx.litware.test']) {
      const report = await eventually(() => rep.report(today(), mx), `${mx} counted`);
      const [policy] = policiesOf(report.json);
      assert.equal(policy!.policy['policy-type'], 'no-policy-found', mx);
      assert.deepEqual(policy!.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 }, mx);
      assert.deepEqual(policy!['failure-details']!.map((d) => [d['result-type'], d['receiving-mx-hostname'], d['failure-reason-code']]), [['dnssec-invalid', mx, 'ESERVFAIL']], mx);
    }
  });

  test('MTA-STS enforce: an untrusted certificate is certificate-not-trusted; a policy that cannot be fetched is sts-policy-fetch-error under no-policy-found', async () => {
    const far = await startFar(await ca.selfSigned(['mx.tailspin.test', 'mx.litware.test']));
    // litware.test publishes an id, but its policy server answers 404.
    const { r, reporter } = await setup({ far, zone: zone(['tailspin.test', 'litware.test']) });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@tailspin.test'], body: message('self-signed') });
    assert.equal((await attempted(r, id)).recipients[0]!.reply!.enhanced, '4.7.5');
    const id2 = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@litware.test'], body: message('fetch error') });
    await done(r, id2);

    const rep = reporter();
    const tail = await eventually(() => rep.report(today(), 'tailspin.test'), 'tailspin.test counted');
    const details = policiesOf(tail.json)[0]!['failure-details']!;
    assert.equal(details.length, 1);
    assert.equal(details[0]!['result-type'], 'certificate-not-trusted');
    assert.equal(details[0]!['receiving-mx-hostname'], 'mx.tailspin.test');
    assert.equal(details[0]!['failed-session-count'], 1);

    // Without STARTTLS at all: starttls-not-supported.
    const plain = await startFar();
    const second = await setup({ far: plain, zone: zone(['tailspin.test']) });
    const id3 = await enqueue(second.r.store, { from: 'alice@contoso.test', to: ['bob@tailspin.test'], body: message('no starttls') });
    assert.equal((await attempted(second.r, id3)).recipients[0]!.reply!.enhanced, '4.7.5');
    const noTls = await eventually(() => second.reporter().report(today(), 'tailspin.test'), 'the plain session counted');
    assert.deepEqual(policiesOf(noTls.json)[0]!['failure-details']!.map((d) => [d['result-type'], d['receiving-mx-hostname'], d['failed-session-count']]), [['starttls-not-supported', 'mx.tailspin.test', 1]]);
    assert.equal(plain.got.length, 0);

    const lit = await eventually(() => rep.report(today(), 'litware.test'), 'litware.test counted');
    assert.deepEqual(policiesOf(lit.json), [
      { policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'litware.test' }, summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 }, 'failure-details': [{ 'result-type': 'sts-policy-fetch-error', 'failed-session-count': 1 }] },
    ]);
  });

  test('MTA-STS testing: the mail goes anyway, but a session enforce would refuse is counted as failed', async () => {
    const far = await startFar(await ca.selfSigned(['mx.adatum.test']));
    const { r, reporter } = await setup({ far, zone: zone(['adatum.test']) });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@adatum.test'], body: message('testing') });
    await done(r, id);
    assert.equal(far.got.length, 1);
    const rep = await eventually(() => reporter().report(today(), 'adatum.test'), 'adatum.test counted');
    const [p] = policiesOf(rep.json);
    assert.deepEqual(p!.policy['policy-string'], ['version: STSv1', 'mode: testing', 'mx: mx.adatum.test', 'max_age: 86400']);
    assert.deepEqual(p!.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 });
    assert.equal(p!['failure-details']![0]!['result-type'], 'certificate-not-trusted');
  });

  test('deliveries without MTA-STS or DANE are not counted', async () => {
    const far = await startFar();
    const { r, reporter } = await setup({ far, zone: { mx: { 'northwind.test': [{ exchange: 'mx.northwind.test', priority: 10 }] }, a: { 'mx.northwind.test': ['127.0.0.1'] } } });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@northwind.test'], body: message('plain') });
    await done(r, id);
    assert.equal(far.got.length, 1);
    assert.deepEqual(await reporter().domains(today()), []);
  });
});

describe('TLS-RPT report delivery', () => {
  test('an https: rua gets the gzipped JSON (application/tlsrpt+gzip), the directory the §5.3 file; a second process does not send it again', async () => {
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const z = zone(['fabrikam.test'], { txt: { '_smtp._tls.fabrikam.test': [['v=TLSRPTv1; ', `rua=https://reports.fabrikam.test:${rua.port}/tlsrpt/v1`]] } });
    const { r, reporter } = await setup({ far, zone: z, directory: true });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('for the report') });
    await done(r, id);
    await eventually(() => reporter().report(today(), 'fabrikam.test'), 'counted');

    const before = rua.posts.length;
    const [a, b] = await Promise.all([reporter().sendDay(today()), reporter().sendDay(today())]);
    const sent = [a!, b!].flat().filter((x) => x.reportId !== null);
    const skipped = [a!, b!].flat().filter((x) => x.skipped);
    assert.equal(sent.length, 1, 'one of two processes sends');
    assert.equal(skipped.length, 1);
    assert.match(skipped[0]!.skipped!, /^(being sent by|already sent by|taken by another process just now)/);
    assert.equal(rua.posts.length, before + 1);
    const post = rua.posts.at(-1)!;
    assert.equal(post.path, '/tlsrpt/v1');
    assert.equal(post.type, 'application/tlsrpt+gzip');
    const json = JSON.parse(gunzipSync(post.body).toString('utf8')) as Json;
    assert.equal(json['report-id'], sent[0]!.reportId);
    assert.deepEqual(policiesOf(json)[0]!.summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 0 });
    assert.deepEqual(sent[0]!.deliveries.map((d) => [d.ok, d.detail]), [
      [true, 'written'],
      [true, 'HTTP 201'],
    ]);

    const dir = path.join(r.dataDir, 'tlsrpt-out');
    const files = await readdir(dir);
    assert.equal(files.length, 1);
    assert.match(files[0]!, new RegExp(`^contoso\\.test!fabrikam\\.test!\\d{10}!\\d{10}!${String(sent[0]!.reportId).split('@')[0]}\\.json\\.gz$`));
    assert.deepEqual(JSON.parse(gunzipSync(await readFile(path.join(dir, files[0]!))).toString('utf8')), json);
  });

  test('a mailto: rua gets a multipart/report message through mailgw\'s own queue', async () => {
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const z = zone(['fabrikam.test'], { txt: { '_smtp._tls.fabrikam.test': [['v=TLSRPTv1; rua=mailto:tls-reports@contoso.test']] } });
    const { r, reporter } = await setup({ far, zone: z });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('for the mail report') });
    await done(r, id);
    await eventually(() => reporter().report(today(), 'fabrikam.test'), 'counted');
    const [res] = await reporter().sendDay(today());
    assert.equal(res!.deliveries.length, 1);
    assert.match(res!.deliveries[0]!.detail, /^queued as \S+/);

    const [raw] = await eventually(() => mailbox(r.root, 'tls-reports@contoso.test').then((b) => (b.length ? b : null)), 'the report in the mailbox');
    const text = withoutDeliveryHeaders(raw!).rest.toString('utf8');
    assert.match(text, /^From: <tlsrpt-noreply@contoso\.test>\r\n/m);
    assert.match(text, /\r\nTLS-Report-Domain: fabrikam\.test\r\n/);
    assert.match(text, /\r\nTLS-Report-Submitter: contoso\.test\r\n/);
    assert.match(text, /\r\nContent-Type: multipart\/report; report-type="tlsrpt"; boundary="/);
    const b64 = /Content-Type: application\/tlsrpt\+gzip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="contoso\.test!fabrikam\.test![^"]+\.json\.gz"\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n\r\n--/.exec(text)![1]!;
    const json = JSON.parse(gunzipSync(Buffer.from(b64.replace(/\r\n/g, ''), 'base64')).toString('utf8')) as Json;
    assert.equal(json['report-id'], res!.reportId);
    assert.equal(policiesOf(json)[0]!.policy['policy-domain'], 'fabrikam.test');
  });

  test('the daily run: of two workers sharing Redis, one sends the previous UTC day\'s report, the other skips it', async () => {
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const z = zone(['fabrikam.test'], { txt: { '_smtp._tls.fabrikam.test': [[`v=TLSRPTv1; rua=https://reports.fabrikam.test:${rua.port}/daily`]] } });
    const { r, lines } = await setup({ far, zone: z, workers: 2, schedule: true });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('daily') });
    await done(r, id);
    await eventually(() => rua.posts.some((p) => p.path === '/daily'), 'the report posted');
    // Each worker ticks every 100 ms: wait until the other one has seen the claim.
    await eventually(() => lines.some((l) => l['msg'] === 'TLS-RPT report not sent now' && l['domain'] === 'fabrikam.test' && /^already sent by w[01]/.test(String(l['why']))), 'the other worker skipping it');
    assert.equal(rua.posts.filter((p) => p.path === '/daily').length, 1);
    const claim = JSON.parse((await r.redis.get(`${r.gateway.redis.prefix}:tlsrpt:sent:${today()}:fabrikam.test`))!) as { by: string; state: string; done: string[] };
    assert.match(claim.by, /^w[01]$/);
    assert.equal(claim.state, 'sent');
    assert.deepEqual(claim.done, [`https://reports.fabrikam.test:${rua.port}/daily`]);
  });

  test('DANE: the report goes to the rua the MX host publishes at _smtp._tls.<MX host>, not to the recipient domain\'s', async () => {
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const other = await ca.selfSigned(['mx.fabrikam.test']);
    const owner = `_${far.port}._tcp.mx.fabrikam.test`;
    const z = zone(['fabrikam.test'], {
      tlsa: { [owner]: { secure: true, records: [{ usage: 3, selector: 1, matchingType: 1, data: spkiHash(other.cert) }] } },
      txt: {
        '_smtp._tls.mx.fabrikam.test': [[`v=TLSRPTv1; rua=https://reports.fabrikam.test:${rua.port}/dane-mx`]],
        '_smtp._tls.fabrikam.test': [[`v=TLSRPTv1; rua=https://reports.fabrikam.test:${rua.port}/dane-recipient`]],
      },
    });
    const { r, reporter } = await setup({ far, zone: z });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('dane failure') });
    assert.equal((await attempted(r, id)).recipients[0]!.reply!.enhanced, '4.7.5');
    await eventually(() => reporter().report(today(), 'mx.fabrikam.test'), 'counted under the MX host');

    const results = await reporter().sendDay(today());
    assert.deepEqual(results.map((x) => [x.domain, x.deliveries.map((d) => [d.to, d.ok, d.detail])]), [['mx.fabrikam.test', [[`https://reports.fabrikam.test:${rua.port}/dane-mx`, true, 'HTTP 201']]]]);
    const posts = rua.posts.filter((p) => p.path.startsWith('/dane-'));
    assert.deepEqual(posts.map((p) => p.path), ['/dane-mx']);
    const json = JSON.parse(gunzipSync(posts[0]!.body).toString('utf8')) as Json;
    const [p] = policiesOf(json);
    assert.equal(p!.policy['policy-type'], 'tlsa');
    assert.equal(p!.policy['policy-domain'], 'mx.fabrikam.test');
    assert.deepEqual(p!['failure-details']!.map((d) => [d['result-type'], d['receiving-mx-hostname']]), [['validation-failure', 'mx.fabrikam.test']]);
    assert.equal(far.got.length, 0);
  });

  test('an https: rua that answers 503 gets the report again after the backoff, with the same report id, exactly once in the end; two processes still send once', async () => {
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const url = `https://reports.fabrikam.test:${rua.port}/flaky`;
    const z = zone(['fabrikam.test'], { txt: { '_smtp._tls.fabrikam.test': [[`v=TLSRPTv1; rua=${url}`]] } });
    const { r, reporter } = await setup({ far, zone: z, directory: true });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('flaky rua') });
    await done(r, id);
    await eventually(() => reporter().report(today(), 'fabrikam.test'), 'counted');
    rua.answers.set('/flaky', [503]);
    const flaky = () => rua.posts.filter((p) => p.path === '/flaky');
    const claimKey = `${r.gateway.redis.prefix}:tlsrpt:sent:${today()}:fabrikam.test`;
    const claim = async () => JSON.parse((await r.redis.get(claimKey))!) as { state: string; attempts: number; nextAt?: number; done: string[]; reportId: string };
    const t0 = Date.now();

    // First attempt, two processes: one POSTs and gets 503; the directory file is written.
    const first = (await Promise.all([reporter().sendDay(today(), { now: t0 }), reporter().sendDay(today(), { now: t0 })])).flat();
    const tried = first.filter((x) => x.deliveries.length > 0);
    assert.equal(tried.length, 1, 'one of two processes tries');
    assert.deepEqual(tried[0]!.deliveries.map((d) => [d.ok, d.detail, d.retry ?? null]), [
      [true, 'written', null],
      [false, `HTTP 503 from ${url}`, true],
    ]);
    assert.match(tried[0]!.next!, /^1 attempt failed; next attempt in 15 min at /);
    assert.deepEqual(flaky().map((p) => p.status), [503]);
    const c1 = await claim();
    assert.equal(c1.state, 'retry');
    assert.equal(c1.attempts, 1);
    assert.equal(c1.nextAt! - t0 >= 15 * 60_000 && c1.nextAt! - t0 < 16 * 60_000, true, `next attempt 15 min later (${c1.nextAt! - t0} ms)`);
    const dir = path.join(r.dataDir, 'tlsrpt-out');
    assert.equal((await readdir(dir)).length, 1);

    // Before the backoff is over: not sent.
    const early = await reporter().sendDay(today(), { now: t0 + 60_000 });
    assert.match(early[0]!.skipped!, /^attempt 1 failed \(https:\/\/reports\.fabrikam\.test:\d+\/flaky: HTTP 503 from .*\); next attempt at /);
    assert.equal(flaky().length, 1);

    // After it, two processes again: one sends, only to the rua (the file was written), under the same report id.
    const second = (await Promise.all([reporter().sendDay(today(), { now: t0 + 16 * 60_000 }), reporter().sendDay(today(), { now: t0 + 16 * 60_000 })])).flat();
    const retried = second.filter((x) => x.deliveries.length > 0);
    assert.equal(retried.length, 1, 'one of two processes retries');
    assert.deepEqual(retried[0]!.deliveries.map((d) => [d.to, d.ok, d.detail]), [[url, true, 'HTTP 201']]);
    assert.equal(retried[0]!.reportId, c1.reportId);
    assert.deepEqual(flaky().map((p) => p.status), [503, 201]);
    const json = JSON.parse(gunzipSync(flaky()[1]!.body).toString('utf8')) as Json;
    assert.equal(json['report-id'], c1.reportId);
    assert.equal((await readdir(dir)).length, 1);
    const c2 = await claim();
    assert.equal(c2.state, 'sent');
    assert.equal(c2.attempts, 2);

    // Later runs leave it alone.
    const later = await reporter().sendDay(today(), { now: t0 + 86_400_000 });
    assert.match(later[0]!.skipped!, /^already sent by /);
    assert.equal(flaky().filter((p) => p.status === 201).length, 1);
  });

  test('a slow destination keeps the lease (renewed while sending), timed on Redis\' clock: another process, even with its clock 10 minutes ahead, does not send again', async () => {
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const z = zone(['fabrikam.test'], { txt: { '_smtp._tls.fabrikam.test': [[`v=TLSRPTv1; rua=https://reports.fabrikam.test:${rua.port}/slow`]] } });
    const { r, reporter, lines } = await setup({ far, zone: z });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('slow rua') });
    await done(r, id);
    await eventually(() => reporter().report(today(), 'fabrikam.test'), 'counted');
    rua.delays.set('/slow', 1500);
    const slow = () => rua.posts.filter((p) => p.path === '/slow');
    // A 300 ms lease, a POST that takes 1.5 s: without renewal it would lapse five times over.
    const sending = reporter({ leaseMs: 300, name: 'a' }).sendDay(today());
    await eventually(() => slow().length === 1, 'the POST under way');
    await new Promise((res) => setTimeout(res, 600));
    const ahead = await reporter({ leaseMs: 300, name: 'b', clock: () => Date.now() + 10 * 60_000 }).sendDay(today());
    const same = await reporter({ leaseMs: 300, name: 'c' }).sendDay(today());
    for (const res of [ahead, same]) assert.match(res[0]!.skipped ?? '', /^being sent by a \(lease until /);
    const [res] = await sending;
    assert.deepEqual(res!.deliveries.map((d) => [d.ok, d.detail]), [[true, 'HTTP 201']]);
    await new Promise((res2) => setTimeout(res2, 400));
    assert.equal(slow().length, 1, 'sent once');
    const claim = JSON.parse((await r.redis.get(`${r.gateway.redis.prefix}:tlsrpt:sent:${today()}:fabrikam.test`))!) as { state: string; by: string };
    assert.deepEqual([claim.state, claim.by], ['sent', 'a']);
    assert.equal(lines.some((l) => String(l['msg']).startsWith('TLS-RPT: the claim changed') || String(l['msg']).startsWith('TLS-RPT: another process took')), false);
  });

  test('while it sends, each lease renewal records the destinations already served, so a process taking over after a lapse would skip them', async () => {
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const fast = `https://reports.fabrikam.test:${rua.port}/served-1`;
    const slow = `https://reports.fabrikam.test:${rua.port}/served-2`;
    const z = zone(['fabrikam.test'], { txt: { '_smtp._tls.fabrikam.test': [[`v=TLSRPTv1; rua=${fast},${slow}`]] } });
    const { r, reporter } = await setup({ far, zone: z });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('progress') });
    await done(r, id);
    await eventually(() => reporter().report(today(), 'fabrikam.test'), 'counted');
    rua.delays.set('/served-2', 1200);
    const key = `${r.gateway.redis.prefix}:tlsrpt:sent:${today()}:fabrikam.test`;
    const claim = async () => JSON.parse((await r.redis.get(key))!) as { state: string; done: string[] };
    const sending = reporter({ leaseMs: 300, name: 'a' }).sendDay(today());
    await eventually(() => rua.posts.some((p) => p.path === '/served-2'), 'the second POST under way');
    await new Promise((res) => setTimeout(res, 400));
    const during = await claim();
    assert.deepEqual([during.state, during.done], ['sending', [fast]]);
    await sending;
    const after = await claim();
    assert.deepEqual([after.state, [...after.done].sort()], ['sent', [fast, slow].sort()]);
  });

  test('a lease taken over while sending (this process was frozen past it): nothing more is sent from here, and it says so', async () => {
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const first = `https://reports.fabrikam.test:${rua.port}/taken-1`;
    const second = `https://reports.fabrikam.test:${rua.port}/taken-2`;
    const z = zone(['fabrikam.test'], { txt: { '_smtp._tls.fabrikam.test': [[`v=TLSRPTv1; rua=${first},${second}`]] } });
    const { r, reporter, lines } = await setup({ far, zone: z });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('taken over') });
    await done(r, id);
    await eventually(() => reporter().report(today(), 'fabrikam.test'), 'counted');
    rua.delays.set('/taken-1', 1000);
    const key = `${r.gateway.redis.prefix}:tlsrpt:sent:${today()}:fabrikam.test`;
    const sending = reporter({ leaseMs: 300, name: 'a' }).sendDay(today());
    await eventually(() => rua.posts.some((p) => p.path === '/taken-1'), 'the first POST under way');
    // Another process's claim replaces ours, as after a lapse.
    const intruder = { state: 'sending', by: 'b', at: new Date().toISOString(), attempts: 0, reportId: null, done: [], leaseUntil: Date.now() + 60_000, token: 'b' };
    await r.redis.set(key, JSON.stringify(intruder));
    const [res] = await sending;
    assert.deepEqual(res!.deliveries.map((d) => [d.to, d.ok]), [[first, true]], 'the second destination is left to the new holder');
    assert.equal(rua.posts.filter((p) => p.path === '/taken-2').length, 0);
    assert.ok(lines.some((l) => l['msg'] === 'TLS-RPT: another process took this report over while this one was sending (its lease had run out); nothing more is sent from here'));
    assert.deepEqual(JSON.parse((await r.redis.get(key))!), intruder, 'the new holder\'s claim is left alone');
  });

  test('the daily run retries a report whose POST failed on a later tick, after the backoff, and then leaves it; of two workers one sends each time', async () => {
    assert.deepEqual(reportDays(Date.parse('2026-12-05T00:10:00Z')), ['2026-12-01', '2026-12-02', '2026-12-03', '2026-12-04']);
    const far = await startFar(await ca.issue(['mx.fabrikam.test']));
    const z = zone(['fabrikam.test'], { txt: { '_smtp._tls.fabrikam.test': [[`v=TLSRPTv1; rua=https://reports.fabrikam.test:${rua.port}/daily-retry`]] } });
    rua.answers.set('/daily-retry', [503]);
    let shift = 0;
    const { r, lines } = await setup({ far, zone: z, workers: 2, schedule: true, shift: () => shift });
    const posts = () => rua.posts.filter((p) => p.path === '/daily-retry');
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('daily retry') });
    await done(r, id);
    await eventually(() => posts().length === 1, 'the first POST (503)');
    // Both workers tick every 100 ms: wait until each has seen the retry is not due yet.
    await eventually(() => lines.filter((l) => l['msg'] === 'TLS-RPT report not sent now' && /^attempt 1 failed .*HTTP 503.*; next attempt at /.test(String(l['why']))).length >= 4, 'ticks skipping it');
    assert.deepEqual(posts().map((p) => p.status), [503]);
    shift = 16 * 60_000;
    await eventually(() => posts().length === 2, 'the retry');
    const seen = lines.length;
    await eventually(() => lines.slice(seen).filter((l) => l['msg'] === 'TLS-RPT report not sent now' && /^already sent by w[01]/.test(String(l['why']))).length >= 4, 'later ticks leaving it');
    assert.deepEqual(posts().map((p) => p.status), [503, 201]);
    const claim = JSON.parse((await r.redis.get(`${r.gateway.redis.prefix}:tlsrpt:sent:${today()}:fabrikam.test`))!) as { state: string; attempts: number };
    assert.deepEqual([claim.state, claim.attempts], ['sent', 2]);
  });
});
