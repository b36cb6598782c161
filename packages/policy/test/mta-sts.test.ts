// MTA-STS parsing (RFC 8461): the _mta-sts TXT record, the policy file, and MX pattern matching.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseStsPolicy, parseStsRecord, stsAllowsMx, stsMxMatches, STS_MAX_POLICY_BYTES } from '@mailgw/policy';

const errorOf = <T>(r: { ok: true; value: T } | { ok: false; error: string }) => (r.ok ? null : r.error);

describe('MTA-STS TXT record', () => {
  test('the id of the one v=STSv1 record; other TXT records are ignored', () => {
    assert.deepEqual(parseStsRecord(['v=spf1 -all', 'v=STSv1; id=20260101T0000;']), { ok: true, value: '20260101T0000' });
    assert.deepEqual(parseStsRecord(['v=STSv1;id=abc']), { ok: true, value: 'abc' });
    assert.deepEqual(parseStsRecord(['v=STSv1; id=abc; ext=1']), { ok: true, value: 'abc' });
  });
  test('no STSv1 record means no policy', () => {
    assert.deepEqual(parseStsRecord([]), { ok: true, value: null });
    assert.deepEqual(parseStsRecord(['v=spf1 -all', 'v=STSv10; id=x']), { ok: true, value: null });
  });
  test('two STSv1 records, a missing or bad id: errors', () => {
    assert.match(errorOf(parseStsRecord(['v=STSv1; id=a', 'v=STSv1; id=b']))!, /2 v=STSv1 TXT records/);
    assert.match(errorOf(parseStsRecord(['v=STSv1;']))!, /no id/);
    assert.match(errorOf(parseStsRecord(['v=STSv1; id=has-dash']))!, /not 1 to 32 letters and digits/);
    assert.match(errorOf(parseStsRecord([`v=STSv1; id=${'a'.repeat(33)}`]))!, /not 1 to 32/);
    assert.match(errorOf(parseStsRecord(['v=STSv1; garbage']))!, /malformed field/);
  });
});

describe('MTA-STS policy file', () => {
  test('a valid policy, CRLF or LF, unknown keys ignored, mx repeated', () => {
    const text = 'version: STSv1\r\nmode: enforce\r\nmx: MX1.Fabrikam.test\r\nmx: *.backup.fabrikam.test.\r\nmax_age: 86400\r\nextension: yes\r\n';
    assert.deepEqual(parseStsPolicy(text), { ok: true, value: { mode: 'enforce', mx: ['mx1.fabrikam.test', '*.backup.fabrikam.test'], maxAge: 86400 } });
    assert.deepEqual(parseStsPolicy('version: STSv1\nmode: testing\nmx: mx.fabrikam.test\nmax_age: 0\n'), { ok: true, value: { mode: 'testing', mx: ['mx.fabrikam.test'], maxAge: 0 } });
  });
  test('mode none needs no mx', () => {
    assert.deepEqual(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 60\n'), { ok: true, value: { mode: 'none', mx: [], maxAge: 60 } });
  });
  test('malformed policies are refused with the reason', () => {
    const cases: Array<[string, RegExp]> = [
      ['mode: enforce\nmx: mx.f.test\nmax_age: 60', /no version field/],
      ['version: STSv2\nmode: enforce\nmx: mx.f.test\nmax_age: 60', /version "STSv2" is not STSv1/],
      ['version: STSv1\nmx: mx.f.test\nmax_age: 60', /no mode field/],
      ['version: STSv1\nmode: strict\nmx: mx.f.test\nmax_age: 60', /mode "strict"/],
      ['version: STSv1\nmode: enforce\nmx: mx.f.test', /no max_age field/],
      ['version: STSv1\nmode: enforce\nmx: mx.f.test\nmax_age: -1', /max_age "-1"/],
      ['version: STSv1\nmode: enforce\nmx: mx.f.test\nmax_age: 31557601', /max_age "31557601"/],
      ['version: STSv1\nmode: enforce\nmax_age: 60', /mode enforce without any mx field/],
      ['version: STSv1\nmode: enforce\nmx: mx..f.test\nmax_age: 60', /mx "mx\.\.f\.test" is not/],
      ['version: STSv1\nmode: enforce\nmx: *.*.f.test\nmax_age: 60', /mx "\*\.\*\.f\.test" is not/],
      ['<html>not found</html>', /line 1 is not "key: value"/],
      ['', /no version field/],
    ];
    for (const [text, want] of cases) assert.match(errorOf(parseStsPolicy(text)) ?? 'parsed', want, JSON.stringify(text));
  });
  test('a repeated key other than mx keeps its first value', () => {
    const r = parseStsPolicy('version: STSv1\nmode: testing\nmode: enforce\nmx: mx.f.test\nmax_age: 60');
    assert.ok(r.ok && r.value.mode === 'testing');
  });
  test('a policy over 64 KiB is refused', () => {
    const big = `version: STSv1\nmode: enforce\nmx: mx.f.test\nmax_age: 60\n${'x: y\n'.repeat(STS_MAX_POLICY_BYTES / 5 + 1)}`;
    assert.match(errorOf(parseStsPolicy(big))!, /larger than/);
  });
});

describe('MTA-STS mx patterns', () => {
  test('exact names, case and trailing dot ignored', () => {
    assert.ok(stsMxMatches('mx.fabrikam.test', 'MX.fabrikam.test.'));
    assert.ok(!stsMxMatches('mx.fabrikam.test', 'mx2.fabrikam.test'));
  });
  test('a wildcard matches exactly one label', () => {
    assert.ok(stsMxMatches('*.fabrikam.test', 'mx1.fabrikam.test'));
    assert.ok(!stsMxMatches('*.fabrikam.test', 'fabrikam.test'));
    assert.ok(!stsMxMatches('*.fabrikam.test', 'a.mx.fabrikam.test'));
    assert.ok(!stsMxMatches('*.fabrikam.test', 'mx.evilfabrikam.test'));
  });
  test('a policy allows a host when any pattern matches', () => {
    const p = { mode: 'enforce' as const, mx: ['mx.fabrikam.test', '*.backup.test'], maxAge: 60 };
    assert.ok(stsAllowsMx(p, 'b1.backup.test'));
    assert.ok(!stsAllowsMx(p, 'rogue.test'));
  });
});
