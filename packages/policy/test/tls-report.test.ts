// TLS-RPT (RFC 8460), the pure part: the _smtp._tls TXT record, result types, the report JSON,
// its file name and mail, and which outbound TLS policy applied.
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, test } from 'node:test';
import { appliedTlsPolicy, buildTlsReport, composeTlsReportMessage, isUtcDay, noPolicyFound, parseTlsReportClaim, parseTlsRptRecord, stsReportPolicy, tlsaReportPolicy, tlsReportClaimDecision, tlsReportDeliveryRetryable, tlsReportFileName, tlsReportRetry, tlsResultType, tlsRptPolicyDomain, tlsRptSessionPolicy, stsTestingFailure } from '@mailgw/policy';

const errorOf = <T>(r: { ok: true; value: T } | { ok: false; error: string }) => (r.ok ? null : r.error);

describe('TLS-RPT TXT record', () => {
  test('mailto and https rua, in order; other records ignored; spaces and percent-encoding', () => {
    const r = parseTlsRptRecord(['v=spf1 -all', 'v=TLSRPTv1; rua=mailto:tls-reports@Fabrikam.test, https://reports.fabrikam.test/v1/tlsrpt']);
    assert.ok(r.ok);
    assert.deepEqual(r.value, [
      { kind: 'mailto', address: { local: 'tls-reports', domain: 'fabrikam.test' }, uri: 'mailto:tls-reports@Fabrikam.test' },
      { kind: 'https', url: 'https://reports.fabrikam.test/v1/tlsrpt' },
    ]);
    assert.deepEqual(parseTlsRptRecord(['v=TLSRPTv1;rua=mailto:a%2Bb@x.test']), { ok: true, value: [{ kind: 'mailto', address: { local: 'a+b', domain: 'x.test' }, uri: 'mailto:a%2Bb@x.test' }] });
  });
  test('no TLSRPTv1 record: no reporting', () => {
    assert.deepEqual(parseTlsRptRecord([]), { ok: true, value: null });
    assert.deepEqual(parseTlsRptRecord(['v=TLSRPTv10; rua=mailto:a@b.test', 'v=STSv1; id=1']), { ok: true, value: null });
  });
  test('bad input: two records, no rua, malformed fields, no usable URI', () => {
    assert.match(errorOf(parseTlsRptRecord(['v=TLSRPTv1; rua=mailto:a@b.test', 'v=TLSRPTv1; rua=mailto:c@d.test']))!, /2 v=TLSRPTv1 TXT records/);
    assert.match(errorOf(parseTlsRptRecord(['v=TLSRPTv1;']))!, /no rua/);
    assert.match(errorOf(parseTlsRptRecord(['v=TLSRPTv1; rua=']))!, /no rua/);
    assert.match(errorOf(parseTlsRptRecord(['v=TLSRPTv1; garbage']))!, /malformed field "garbage"/);
    assert.match(errorOf(parseTlsRptRecord(['v=TLSRPTv1; rua=http://plain.test/x, ftp://x.test/, mailto:not-an-address']))!, /no usable mailto: or https: URI .*skipped http:\/\/plain\.test\/x, ftp:\/\/x\.test\/, mailto:not-an-address/);
    assert.match(errorOf(parseTlsRptRecord(['v=TLSRPTv1; rua=mailto:%E0%A4%A@x.test']))!, /no usable/);
    const one = parseTlsRptRecord(['v=TLSRPTv1; rua=gopher://x, https://ok.test/r']);
    assert.deepEqual(one, { ok: true, value: [{ kind: 'https', url: 'https://ok.test/r' }] });
  });
});

describe('TLS-RPT result types', () => {
  test('from TLS errors and mailgw reasons', () => {
    assert.equal(tlsResultType('Hostname/IP does not match certificate\'s altnames: Host: mx.x.test. is not in the cert\'s altnames', { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }), 'certificate-host-mismatch');
    assert.equal(tlsResultType('self-signed certificate', { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'certificate-not-trusted');
    assert.equal(tlsResultType('unable to verify the first certificate'), 'certificate-not-trusted');
    assert.equal(tlsResultType('certificate has expired', { code: 'CERT_HAS_EXPIRED' }), 'certificate-expired');
    assert.equal(tlsResultType('Server does not support STARTTLS', { code: 'EREQUIRETLS' }), 'starttls-not-supported');
    assert.equal(tlsResultType('STARTTLS not used (not offered or failed)'), 'starttls-not-supported');
    assert.equal(tlsResultType('DANE: no TLSA record (3 1 1) matches the certificate chain', { dane: true }), 'validation-failure');
    assert.equal(tlsResultType('DANE: DANE-TA matched, but the certificate does not carry mx.x.test', { dane: true }), 'certificate-host-mismatch');
    assert.equal(tlsResultType('DANE: DANE-TA matched, but the certificate is expired or not yet valid', { dane: true }), 'certificate-expired');
    assert.equal(tlsResultType('DANE: no TLS session', { dane: true }), 'starttls-not-supported');
    assert.equal(tlsResultType('something else entirely'), 'validation-failure');
  });
});

describe('TLS-RPT report', () => {
  const sts = stsReportPolicy('fabrikam.test', { mode: 'enforce', mx: ['mx.fabrikam.test', '*.backup.fabrikam.test'], maxAge: 86400 });
  test('policies as RFC 8460 §4.4 states them', () => {
    assert.deepEqual(sts, { type: 'sts', strings: ['version: STSv1', 'mode: enforce', 'mx: mx.fabrikam.test', 'mx: *.backup.fabrikam.test', 'max_age: 86400'], domain: 'fabrikam.test', mxHosts: ['mx.fabrikam.test', '*.backup.fabrikam.test'] });
    assert.deepEqual(tlsaReportPolicy('fabrikam.test', 'mx.fabrikam.test', [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.from([0xab, 0x01]) }]), { type: 'tlsa', strings: ['3 1 1 ab01'], domain: 'fabrikam.test', mxHosts: ['mx.fabrikam.test'] });
    assert.deepEqual(noPolicyFound('x.test'), { type: 'no-policy-found', strings: [], domain: 'x.test', mxHosts: [] });
  });
  test('the JSON has the RFC\'s fields, summary counts and failure details', () => {
    const r = buildTlsReport({ organizationName: 'Contoso', contactInfo: 'postmaster@contoso.test', reportId: 'r1@contoso.test' }, '2026-12-01', [
      {
        policy: sts,
        successful: 7,
        failures: [
          { failure: { resultType: 'certificate-expired', sendingMtaIp: '192.0.2.1', receivingMxHostname: 'mx.fabrikam.test', receivingIp: '198.51.100.7', failureReasonCode: 'CERT_HAS_EXPIRED' }, count: 2 },
          { failure: { resultType: 'sts-policy-fetch-error', sendingMtaIp: null, receivingMxHostname: null, receivingIp: null, failureReasonCode: null }, count: 1 },
        ],
      },
      { policy: noPolicyFound('fabrikam.test'), successful: 0, failures: [] },
    ]);
    assert.deepEqual(r, {
      'organization-name': 'Contoso',
      'date-range': { 'start-datetime': '2026-12-01T00:00:00Z', 'end-datetime': '2026-12-01T23:59:59Z' },
      'contact-info': 'postmaster@contoso.test',
      'report-id': 'r1@contoso.test',
      policies: [
        {
          policy: { 'policy-type': 'sts', 'policy-string': sts.strings, 'policy-domain': 'fabrikam.test', 'mx-host': sts.mxHosts },
          summary: { 'total-successful-session-count': 7, 'total-failure-session-count': 3 },
          'failure-details': [
            { 'result-type': 'certificate-expired', 'sending-mta-ip': '192.0.2.1', 'receiving-mx-hostname': 'mx.fabrikam.test', 'receiving-ip': '198.51.100.7', 'failed-session-count': 2, 'failure-reason-code': 'CERT_HAS_EXPIRED' },
            { 'result-type': 'sts-policy-fetch-error', 'failed-session-count': 1 },
          ],
        },
        { policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'fabrikam.test' }, summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 0 } },
      ],
    });
  });
  test('file name per §5.3 (UNIX seconds of the day), days checked', () => {
    assert.equal(tlsReportFileName('contoso.test', 'fabrikam.test', '2026-12-01', 'abc'), 'contoso.test!fabrikam.test!1796083200!1796169599!abc.json.gz');
    assert.equal(tlsReportFileName('a!b', 'c/d', '2026-12-01', 'x y'), 'a_b!c_d!1796083200!1796169599!x_y.json.gz');
    assert.ok(isUtcDay('2026-02-28'));
    assert.ok(!isUtcDay('2026-02-30'));
    assert.ok(!isUtcDay('20261201'));
  });
  test('the report mail: multipart/report; report-type="tlsrpt", the RFC\'s header fields, the gzip attachment', () => {
    const gz = gzipSync(Buffer.from('{"a":1}'));
    const m = composeTlsReportMessage({ from: { local: 'tlsrpt-noreply', domain: 'contoso.test' }, to: { local: 'tls', domain: 'fabrikam.test' }, submitter: 'contoso.test', domain: 'fabrikam.test', day: '2026-12-01', reportId: 'r-1@contoso.test', messageId: '<m1@gw.contoso.test>', date: 'Tue, 01 Dec 2026 00:10:00 +0000', fileName: 'f.json.gz', gzip: gz });
    assert.match(m, /^From: <tlsrpt-noreply@contoso\.test>\r\n/);
    assert.match(m, /\r\nTLS-Report-Domain: fabrikam\.test\r\n/);
    assert.match(m, /\r\nTLS-Report-Submitter: contoso\.test\r\n/);
    assert.match(m, /\r\nSubject: Report Domain: fabrikam\.test Submitter: contoso\.test Report-ID: <r-1@contoso\.test>\r\n/);
    assert.match(m, /\r\nContent-Type: multipart\/report; report-type="tlsrpt"; boundary="tlsrpt-r1contosotest"\r\n/);
    assert.match(m, /\r\nContent-Type: application\/tlsrpt\+gzip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="f\.json\.gz"\r\n\r\n/);
    const b64 = /filename="f\.json\.gz"\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n\r\n--/.exec(m)![1]!;
    assert.equal(gunzipSync(Buffer.from(b64.replace(/\r\n/g, ''), 'base64')).toString(), '{"a":1}');
  });
});

describe('the TLS policy that applied', () => {
  const base = { source: 'send connector "Internet"', requireTLS: false, tlsAuthLevel: 'EncryptionOnly', tlsDomain: null, requiredBy: null };
  test('DANE over MTA-STS over the connector; testing and none only reported', () => {
    assert.equal(appliedTlsPolicy({ ...base, requireTLS: true, dane: { owner: '_25._tcp.mx.f.test', records: ['3 1 1'] }, mtaSts: { domain: 'f.test', mode: 'enforce', id: '1' } }).kind, 'DANE');
    const enforce = appliedTlsPolicy({ ...base, requireTLS: true, tlsAuthLevel: 'DomainValidation', mtaSts: { domain: 'f.test', mode: 'enforce', id: '7' } });
    assert.equal(enforce.kind, 'MTA-STS enforce');
    assert.match(enforce.reason, /MTA-STS policy of f\.test \(id 7\) in mode enforce/);
    const connector = appliedTlsPolicy({ ...base, requireTLS: true, tlsAuthLevel: 'CertificateValidation', mtaSts: { domain: 'f.test', mode: 'testing', id: '2' } });
    assert.equal(connector.kind, 'connector');
    assert.match(connector.reason, /send connector "Internet" requires TLS, tlsAuthLevel CertificateValidation; MTA-STS policy of f\.test in mode testing is only reported/);
    assert.equal(appliedTlsPolicy({ ...base, mtaSts: { domain: 'f.test', mode: 'testing', id: '2' } }).kind, 'MTA-STS testing');
    const auth = appliedTlsPolicy({ ...base, requiredBy: 'smartHostAuthMechanism BasicAuthRequireTLS' });
    assert.equal(auth.kind, 'connector');
    assert.match(auth.reason, /\(smartHostAuthMechanism BasicAuthRequireTLS\)/);
    const opp = appliedTlsPolicy({ ...base, stsNone: 'no _mta-sts TXT record' });
    assert.equal(opp.kind, 'opportunistic');
    assert.match(opp.reason, /does not require TLS, no MTA-STS policy \(no _mta-sts TXT record\), no DANE records: STARTTLS when offered/);
  });
});

describe('TLS-RPT policy domain', () => {
  test('MTA-STS: the recipient domain; DANE: the TLSA base domain (the MX host), normalised', () => {
    const sts = tlsRptPolicyDomain({ mechanism: 'mta-sts', recipientDomain: 'Fabrikam.test', tlsaBaseDomain: 'mx.fabrikam.test' });
    assert.equal(sts.domain, 'fabrikam.test');
    assert.match(sts.reason, /MTA-STS: the policy domain is the recipient domain fabrikam\.test/);
    const dane = tlsRptPolicyDomain({ mechanism: 'dane', recipientDomain: 'fabrikam.test', tlsaBaseDomain: 'MX1.Hosting.test.' });
    assert.equal(dane.domain, 'mx1.hosting.test');
    assert.match(dane.reason, /DANE: the policy domain is the TLSA base domain mx1\.hosting\.test \(the MX host of fabrikam\.test/);
    const none = tlsRptPolicyDomain({ mechanism: 'dane', recipientDomain: 'fabrikam.test', tlsaBaseDomain: null });
    assert.equal(none.domain, 'fabrikam.test');
    assert.match(none.reason, /without a TLSA base domain/);
  });

  test('a session is counted under DANE (MX host) before MTA-STS (recipient domain); without either, not at all', () => {
    const policy = { mode: 'enforce' as const, mx: ['mx.fabrikam.test'], maxAge: 86400 };
    const records = [{ usage: 3, selector: 1, matchingType: 1, data: new Uint8Array([0xab, 0x01]) }];
    const dane = tlsRptSessionPolicy({ recipientDomain: 'fabrikam.test', mxHost: 'MX.Fabrikam.test', dane: { records }, mtaSts: { mode: 'enforce', policy } });
    assert.deepEqual([dane?.domain, dane?.policy.type, dane?.policy.strings], ['mx.fabrikam.test', 'tlsa', ['3 1 1 ab01']]);
    const sts = tlsRptSessionPolicy({ recipientDomain: 'fabrikam.test', mxHost: 'mx.fabrikam.test', mtaSts: { mode: 'testing', policy: { ...policy, mode: 'testing' } } });
    assert.deepEqual([sts?.domain, sts?.policy.type], ['fabrikam.test', 'sts']);
    assert.match(sts!.why, /MTA-STS/);
    assert.equal(tlsRptSessionPolicy({ recipientDomain: 'fabrikam.test', mxHost: 'mx.fabrikam.test', mtaSts: { mode: 'none', policy: { ...policy, mode: 'none' } } }), null);
    assert.equal(tlsRptSessionPolicy({ recipientDomain: 'fabrikam.test', mxHost: 'mx.fabrikam.test' }), null);
  });

  test('MTA-STS testing: what enforce would have refused counts as a failure', () => {
    const policy = { mode: 'testing' as const, mx: ['mx.fabrikam.test'], maxAge: 86400 };
    assert.deepEqual(stsTestingFailure('certificate has expired', policy, 'mx.fabrikam.test'), { resultType: 'certificate-expired', code: null });
    assert.deepEqual(stsTestingFailure(null, policy, 'other.example.test'), { resultType: 'validation-failure', code: 'mx-not-in-policy' });
    assert.equal(stsTestingFailure(null, policy, 'mx.fabrikam.test'), null);
    assert.equal(stsTestingFailure(null, undefined, 'other.example.test'), null);
  });
});

describe('TLS-RPT report claims and retries', () => {
  const now = Date.parse('2026-12-02T01:00:00Z');
  const base = { by: 'w0', at: '2026-12-02T00:15:00Z', reportId: 'r1@contoso.test', done: [] as string[] };
  test('who may send: nobody yet, an expired lease, a due retry; not: sent, given up, a live lease, a retry not due', () => {
    assert.deepEqual(tlsReportClaimDecision(null, now), { take: true, reason: 'not sent yet' });
    assert.equal(tlsReportClaimDecision({ ...base, state: 'sending', attempts: 0, leaseUntil: now - 1, token: 't' }, now).take, true);
    const live = tlsReportClaimDecision({ ...base, state: 'sending', attempts: 0, leaseUntil: now + 60_000, token: 't' }, now);
    assert.deepEqual(live, { take: false, reason: 'being sent by w0 (lease until 2026-12-02T01:01:00.000Z)' });
    const waiting = tlsReportClaimDecision({ ...base, state: 'retry', attempts: 1, nextAt: now + 1, lastError: 'HTTP 503' }, now);
    assert.deepEqual(waiting, { take: false, reason: 'attempt 1 failed (HTTP 503); next attempt at 2026-12-02T01:00:00.001Z' });
    assert.deepEqual(tlsReportClaimDecision({ ...base, state: 'retry', attempts: 2, nextAt: now, lastError: 'x' }, now), { take: true, reason: 'attempt 3 after 2 failed' });
    assert.deepEqual(tlsReportClaimDecision({ ...base, state: 'sent', attempts: 1 }, now), { take: false, reason: 'already sent by w0 at 2026-12-02T00:15:00Z' });
    assert.equal(tlsReportClaimDecision({ ...base, state: 'gave-up', attempts: 9, lastError: 'HTTP 503' }, now).take, false);
  });
  test('stored claims: round trip; an older mailgw\'s {by, at} counts as sent; junk is no claim', () => {
    const c = { ...base, state: 'retry' as const, attempts: 1, done: ['https://r.test/x'], nextAt: now, lastError: 'HTTP 503' };
    assert.deepEqual(parseTlsReportClaim(JSON.stringify(c)), c);
    assert.deepEqual(parseTlsReportClaim(JSON.stringify({ by: 'w1', at: '2026-12-02T00:15:00Z' })), { state: 'sent', by: 'w1', at: '2026-12-02T00:15:00Z', attempts: 1, reportId: null, done: [] });
    assert.equal(parseTlsReportClaim('not json'), null);
    assert.equal(parseTlsReportClaim(null), null);
  });
  test('backoff from 15 minutes, doubling, at most 6 hours; given up when the next try would be after the counters expire', () => {
    const giveUpAt = now + 4 * 86_400_000;
    const at = (attempts: number) => {
      const r = tlsReportRetry({ attempts, now, giveUpAt });
      return r.retry ? (r.at - now) / 60_000 : null;
    };
    assert.deepEqual([1, 2, 3, 4, 5, 6, 10].map(at), [15, 30, 60, 120, 240, 360, 360]);
    const r = tlsReportRetry({ attempts: 3, now, giveUpAt: now + 30 * 60_000 });
    assert.equal(r.retry, false);
    assert.match(r.reason, /3 attempts failed; the day's counters expire at 2026-12-02T01:30:00\.000Z: given up/);
  });
  test('which delivery failures are retried', () => {
    assert.deepEqual([503, 500, 429, 408, 404, 413, 400, 301].map((status) => tlsReportDeliveryRetryable({ kind: 'http', status }).retry), [true, true, true, true, false, false, false, false]);
    assert.equal(tlsReportDeliveryRetryable({ kind: 'error' }).retry, true);
    assert.equal(tlsReportDeliveryRetryable({ kind: 'bad-record' }).retry, false);
    assert.equal(tlsReportDeliveryRetryable({ kind: 'no-record' }).retry, false);
  });
});
