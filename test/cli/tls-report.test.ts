// mailgw tls-report: the day's TLS-RPT reports from the counters in a real Redis, printed as
// JSON or sent by hand to an https: rua on loopback (names from an injected resolver), without
// claiming the day (the daily run still sends it).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { noPolicyFound, stsReportPolicy } from '@mailgw/policy';
import { keySpace } from '@mailgw/queue';
import { TlsReportRecorder } from '@mailgw/worker';
import { runTlsReport, type TlsReportOptions } from '../../packages/cli/src/commands/tls-report.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { captureIO } from '../ops/helpers/cli-io.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';
import { FakeResolver } from '../worker/helpers/fake-dns.js';
import { makeTestCa, type TestCa } from '../worker/helpers/test-ca.js';

let redis: TestRedis;
let conn: Redis;
let ca: TestCa;
let cfg: ConfigDir;
let web: Server;
let port = 0;
const posts: Buffer[] = [];
const DAY = '2026-11-30';
const NOW = Date.parse('2026-12-01T03:00:00Z');

async function cmd(opts: Partial<TlsReportOptions> = {}) {
  const io = captureIO();
  const resolver = new FakeResolver({ a: { 'reports.fabrikam.test': ['127.0.0.1'] }, txt: { '_smtp._tls.fabrikam.test': [[`v=TLSRPTv1; rua=https://reports.fabrikam.test:${port}/r`]] } });
  const code = await runTlsReport({ config: cfg.gatewayFile, ...opts }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url }, resolver, extraCAs: [ca.cert], now: NOW });
  return { code, out: io.out(), err: io.err() };
}

before(async () => {
  [redis, ca] = await Promise.all([startRedis(), makeTestCa()]);
  conn = new Redis(redis.url);
  const cert = await ca.issue(['reports.fabrikam.test']);
  web = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts.push(Buffer.concat(chunks));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', () => resolve()));
  port = (web.address() as { port: number }).port;
  cfg = makeConfigDir('mailgw-tlsrpt-');
  cfg.writeGateway(['fqdn: mail.contoso.test', 'dataDir: ./var', ACCEPTED, 'redis: { prefix: "{rpt}" }', 'tlsReports: { organizationName: Contoso Ltd, contactInfo: postmaster@contoso.test }', ''].join('\n'));
  cfg.writeConnector('default.yaml', 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
  // Two sessions counted on DAY as the workers count them: one success, one expired certificate.
  const rec = new TlsReportRecorder(conn, keySpace('{rpt}'));
  const policy = stsReportPolicy('fabrikam.test', { mode: 'enforce', mx: ['mx.fabrikam.test'], maxAge: 86400 });
  const at = Date.parse(`${DAY}T12:00:00Z`);
  await rec.record({ domain: 'fabrikam.test', policy, failure: null }, at);
  await rec.record({ domain: 'fabrikam.test', policy, failure: { resultType: 'certificate-expired', sendingMtaIp: '127.0.0.1', receivingMxHostname: 'mx.fabrikam.test', receivingIp: '127.0.0.1', failureReasonCode: 'CERT_HAS_EXPIRED' } }, at);
  await rec.record({ domain: 'northwind.test', policy: noPolicyFound('northwind.test'), failure: { resultType: 'sts-policy-invalid', sendingMtaIp: null, receivingMxHostname: null, receivingIp: null, failureReasonCode: null } }, at);
});

after(async () => {
  await new Promise<void>((resolve) => web?.close(() => resolve()));
  conn?.disconnect();
  await redis?.stop();
  await ca?.close();
  cfg?.remove();
});

describe('mailgw tls-report', () => {
  it('prints yesterday\'s reports as JSON (all domains, or one with --domain)', async () => {
    const all = await cmd();
    assert.equal(all.code, 0, all.err);
    const reports = JSON.parse(all.out) as Array<Record<string, unknown>>;
    assert.deepEqual(reports.map((r) => (r['policies'] as Array<{ policy: Record<string, unknown> }>)[0]!.policy['policy-domain']), ['fabrikam.test', 'northwind.test']);
    const one = await cmd({ domain: 'Fabrikam.TEST' });
    assert.equal(one.code, 0, one.err);
    const r = JSON.parse(one.out) as Record<string, unknown>;
    assert.equal(r['organization-name'], 'Contoso Ltd');
    assert.deepEqual(r['date-range'], { 'start-datetime': `${DAY}T00:00:00Z`, 'end-datetime': `${DAY}T23:59:59Z` });
    const [p] = r['policies'] as Array<Record<string, Record<string, unknown>>>;
    assert.deepEqual(p!['summary'], { 'total-successful-session-count': 1, 'total-failure-session-count': 1 });
    assert.deepEqual(p!['failure-details'], [{ 'result-type': 'certificate-expired', 'sending-mta-ip': '127.0.0.1', 'receiving-mx-hostname': 'mx.fabrikam.test', 'receiving-ip': '127.0.0.1', 'failed-session-count': 1, 'failure-reason-code': 'CERT_HAS_EXPIRED' }]);
  });

  it('--send posts to the rua, says what it did, and leaves the day to the daily run', async () => {
    const r = await cmd({ domain: 'fabrikam.test', send: true });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^fabrikam\\.test: report [0-9a-f-]{36}@contoso\\.test\\n  sent to https://reports\\.fabrikam\\.test:${port}/r: HTTP 200\\n$`));
    assert.equal(posts.length, 1);
    assert.equal((JSON.parse(gunzipSync(posts[0]!).toString('utf8')) as Record<string, unknown>)['organization-name'], 'Contoso Ltd');
    assert.equal(await conn.exists(`{rpt}:tlsrpt:sent:${DAY}:fabrikam.test`), 0, 'not claimed');
    // northwind.test publishes no TLS-RPT record: not sent, exit 1.
    const n = await cmd({ domain: 'northwind.test', send: true });
    assert.equal(n.code, 1);
    assert.match(n.out, /northwind\.test: report \S+\n {2}NOT sent to _smtp\._tls\.northwind\.test: the domain publishes no TLS-RPT record: not sent\n/);
  });

  it('bad arguments and an unset tlsReports are refused with the reason', async () => {
    const bad = await cmd({ date: '2026-02-30' });
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--date "2026-02-30" is not a day like 2026-12-01/);
    const none = await cmd({ date: '2026-11-01', domain: 'fabrikam.test' });
    assert.equal(none.code, 1);
    assert.match(none.err, /no sessions with fabrikam\.test under MTA-STS or DANE were counted on 2026-11-01/);
    cfg.writeGateway(['fqdn: mail.contoso.test', 'dataDir: ./var', ACCEPTED, 'redis: { prefix: "{rpt}" }', ''].join('\n'));
    const off = await cmd();
    assert.equal(off.code, 1);
    assert.match(off.err, /tlsReports is not set \(or not enabled\) in gateway\.yaml/);
  });
});
