// Key files as configuration errors (missing, too open, wrong type, wrong algorithm, not a key),
// the published-record check, and the pure decision of who signs.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { dkimSchema, parseDomainPattern, type DomainPattern } from '@mailgw/config';
import { checkPublishedRecords, fromDomains, generateDkimKey, hasBareLineEnds, leavesOrganisation, loadDkimKeys, recordValue, signingDecision, writeKeyFile } from '@mailgw/dkim';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-dkim-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const accepted: DomainPattern[] = [parseDomainPattern('contoso.test'), parseDomainPattern('*.fabrikam.test')].map((r) => (r.ok ? r.value : assert.fail()));

test('loadDkimKeys: default paths under dataDir, keyFile from the config directory; every problem named with file and key', () => {
  const dataDir = path.join(dir, 'var');
  writeKeyFile(path.join(dataDir, 'dkim', 'contoso.test', 'good.key'), generateDkimKey('rsa'));
  writeKeyFile(path.join(dir, 'ed.pem'), generateDkimKey('ed25519'));
  const where = { configFile: 'gateway.yaml', baseDir: dir, dataDir };
  const ok = loadDkimKeys(dkimSchema.parse({ domains: [{ domain: 'contoso.test', selectors: [{ name: 'good' }, { name: 'ed', algorithm: 'ed25519', keyFile: 'ed.pem' }] }] }), accepted, where);
  assert.ok(ok.ok, ok.ok ? '' : JSON.stringify(ok.errors));
  assert.deepEqual(ok.setup.keys.get('contoso.test')!.map((k) => `${k.selector}:${k.algorithm}`), ['good:rsa', 'ed:ed25519']);

  writeFileSync(path.join(dir, 'open.pem'), generateDkimKey('rsa').export({ type: 'pkcs8', format: 'pem' }), { mode: 0o644 });
  chmodSync(path.join(dir, 'open.pem'), 0o644);
  writeFileSync(path.join(dir, 'ec.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(path.join(dir, 'junk.pem'), 'not a key\n', { mode: 0o600 });
  const bad = loadDkimKeys(
    dkimSchema.parse({
      domains: [
        { domain: 'contoso.test', selectors: [{ name: 'missing' }, { name: 'open', keyFile: 'open.pem' }] },
        { domain: 'a.fabrikam.test', selectors: [{ name: 'ec', keyFile: 'ec.pem' }, { name: 'junk', keyFile: 'junk.pem' }] },
        { domain: 'b.fabrikam.test', selectors: [{ name: 'ed', keyFile: 'ed.pem' }] },
      ],
    }),
    accepted,
    where,
  );
  assert.equal(bad.ok, false);
  if (bad.ok) return;
  const got = bad.errors.map((e) => `${e.file}: ${e.path}: ${e.message}`);
  const expect: RegExp[] = [
    /^gateway\.yaml: dkim\.domains\[0\]\.selectors\[0\]: key file .*var\/dkim\/contoso\.test\/missing\.key does not exist; create it with `mailgw dkim keygen contoso\.test --selector missing --algorithm rsa`$/,
    /^gateway\.yaml: dkim\.domains\[0\]\.selectors\[1\]\.keyFile: key file .*open\.pem has mode 0644: a private key must not be readable by group or others \(chmod 600 .*\)$/,
    /^gateway\.yaml: dkim\.domains\[1\]\.selectors\[0\]\.keyFile: key file .*ec\.pem holds an ec key; DKIM signs with rsa or ed25519 keys$/,
    /^gateway\.yaml: dkim\.domains\[1\]\.selectors\[1\]\.keyFile: key file .*junk\.pem does not hold a PEM private key$/,
    /^gateway\.yaml: dkim\.domains\[2\]\.selectors\[0\]\.keyFile: key file .*ed\.pem holds an ed25519 key but the selector's algorithm is rsa$/,
  ];
  assert.equal(got.length, expect.length, got.join('\n'));
  expect.forEach((re, i) => assert.match(got[i]!, re));
});

test('writeKeyFile: mode 0600, never over an existing key', () => {
  const f = path.join(dir, 'k', 'new.key');
  writeKeyFile(f, generateDkimKey('ed25519'));
  assert.throws(() => writeKeyFile(f, generateDkimKey('ed25519')), /EEXIST/);
});

test('checkPublishedRecords: match, another key, wrong k=, none, two, revoked', () => {
  const k = generateDkimKey('rsa');
  const other = generateDkimKey('rsa');
  assert.deepEqual(checkPublishedRecords([recordValue(k, 'rsa')], k, 'rsa'), { ok: true, detail: 'matches' });
  assert.deepEqual(checkPublishedRecords(['v=spf1 -all', recordValue(k, 'rsa').replace('p=', 't=y; p=')], k, 'rsa'), { ok: true, detail: 'matches (t=y: testing mode, verifiers may ignore failures)' });
  assert.match((checkPublishedRecords([recordValue(other, 'rsa')], k, 'rsa') as { problem: string }).problem, /not the public half/);
  assert.match((checkPublishedRecords([recordValue(k, 'rsa').replace('k=rsa', 'k=ed25519')], k, 'rsa') as { problem: string }).problem, /k=ed25519/);
  assert.match((checkPublishedRecords([], k, 'rsa') as { problem: string }).problem, /no TXT record/);
  assert.match((checkPublishedRecords([recordValue(k, 'rsa'), recordValue(other, 'rsa')], k, 'rsa') as { problem: string }).problem, /2 DKIM key records/);
  assert.match((checkPublishedRecords(['v=DKIM1; k=rsa; p='], k, 'rsa') as { problem: string }).problem, /revoked/);
  const ed = generateDkimKey('ed25519');
  assert.match(recordValue(ed, 'ed25519'), /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/, 'RFC 8463: the bare 32-byte key');
});

test('who signs: the From: domain with a key; copies for accepted domains stay unsigned', () => {
  const keys = new Map([['contoso.test', [{ domain: 'contoso.test', selector: 's', algorithm: 'rsa' as const, privateKey: generateDkimKey('ed25519'), file: '' }]]]);
  assert.deepEqual(fromDomains('"Doe, J. (x@y.test)" <j.doe@Contoso.TEST> (comment@z.test)'), ['contoso.test']);
  assert.deepEqual(fromDomains('Jörg <jörg@bücher.test>'), ['xn--bcher-kva.test']);
  assert.equal(signingDecision('Alice <alice@contoso.test>', { keys }).sign, true);
  assert.deepEqual(signingDecision('bob@fabrikam.test', { keys }), { sign: false, reason: 'no DKIM key for the From: domain fabrikam.test' });
  assert.deepEqual(signingDecision(null, { keys }), { sign: false, reason: 'the message has no From: header' });
  assert.deepEqual(signingDecision('undisclosed-recipients:;', { keys }), { sign: false, reason: 'the From: header has no address' });
  assert.match((signingDecision('a@contoso.test, b@fabrikam.test', { keys }) as { reason: string }).reason, /several domains/);
  assert.equal(leavesOrganisation(['contoso.test', 'x.fabrikam.test'], accepted), false);
  assert.equal(leavesOrganisation(['contoso.test', 'northwind.test'], accepted), true);
});

test('a BINARYMIME message with bare CR or LF is not signed; one with CRLF line ends only is', () => {
  const keys = new Map([['contoso.test', [{ domain: 'contoso.test', selector: 's', algorithm: 'rsa' as const, privateKey: generateDkimKey('ed25519'), file: '' }]]]);
  const b = (...octets: number[]) => Buffer.from(octets);
  for (const bare of [b(0x41, 0x0a), b(0x0a), b(0x41, 0x0d), b(0x0d, 0x0d, 0x0a), b(0x0d, 0x0a, 0x0a), b(0x0d, 0x41, 0x0a)]) assert.equal(hasBareLineEnds(bare), true, bare.toString('hex'));
  for (const clean of [b(), b(0x00, 0xff, 0x80), b(0x0d, 0x0a), b(0x41, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x0d, 0x0a)]) assert.equal(hasBareLineEnds(clean), false, clean.toString('hex'));
  const binary = signingDecision('alice@contoso.test', { keys }, { binaryMime: true, bareLineEnds: true });
  assert.equal(binary.sign, false);
  assert.match((binary as { reason: string }).reason, /BODY=BINARYMIME and holds bare CR or LF octets.*sent unsigned/);
  assert.equal(signingDecision('alice@contoso.test', { keys }, { binaryMime: true, bareLineEnds: false }).sign, true);
  // The rule is for binary bodies: a text body never holds bare line ends (the listener refuses or normalises them).
  assert.equal(signingDecision('alice@contoso.test', { keys }, { binaryMime: false, bareLineEnds: true }).sign, true);
  // No key: that reason, not the binary one.
  assert.match((signingDecision('bob@fabrikam.test', { keys }, { binaryMime: true, bareLineEnds: true }) as { reason: string }).reason, /^no DKIM key/);
});
