// ARC sealing (RFC 8617) by @mailgw/dkim: which messages are sealed (only with mailgw's own
// Authentication-Results, only a chain that passed and is still whole, at most 50 sets), and
// seals that verifiers which did not make them find valid: mailauth's (a first set, cv=none; a
// set on top of a list's, cv=pass; over a DKIM signature in front) and rspamd's own C
// implementation (skipped without rspamd), which also refuses the message changed after the
// seal; and the key's configuration errors.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { authenticate, sealMessage } from 'mailauth';
import { messageHeaderFields } from '@mailgw/mail';
import { startDnsServer } from '../../../test/harness/dns-server.js';
import { rspamdSkip, startRspamd } from '../../../test/harness/rspamd.js';
import { ARC_MAX_INSTANCES, arcSealDecision, arcSealFields, dkimSignatures, generateDkimKey, loadArcSealKey, recordName, recordValue, writeKeyFile, type ArcSealKey } from '@mailgw/dkim';

const privateKey = generateDkimKey('rsa');
const KEY: ArcSealKey = { domain: 'contoso.test', selector: 'arc1', privateKey, file: '' };
const LIST_PEM = generateDkimKey('rsa').export({ type: 'pkcs8', format: 'pem' }).toString();
const records = new Map([
  [recordName('contoso.test', 'arc1'), recordValue(privateKey, 'rsa')],
  [recordName('lists.test', 'arc'), recordValue(createPrivateKey(LIST_PEM), 'rsa')],
]);
const resolver = async (name: string, rrtype: string): Promise<string[][]> => {
  const r = rrtype === 'TXT' ? records.get(name.replace(/\.$/, '')) : undefined;
  if (!r) throw Object.assign(new Error(`${name} ${rrtype}: ENOTFOUND`), { code: 'ENOTFOUND' });
  return [[r]];
};

const OURS = 'Authentication-Results: mx.contoso.test;\r\n dkim=pass header.d=fabrikam.test;\r\n spf=pass smtp.mailfrom=fabrikam.test;\r\n dmarc=pass header.from=fabrikam.test\r\n';
const BODY = 'From: <bob@fabrikam.test>\r\nTo: <alice@contoso.test>\r\nSubject: offer\r\nDate: Wed, 02 Dec 2026 08:00:00 +0000\r\nMessage-ID: <arc-1@fabrikam.test>\r\n\r\nCAUTION: from outside.\r\n\r\nA great offer.\r\n';

/** mailauth's ARC verdict on a message as the next hop receives it. */
async function arcAt(message: Buffer) {
  const r = await authenticate(message, { ip: '127.0.0.1', helo: 'mx.contoso.test', sender: 'bob@fabrikam.test', mta: 'next.test', resolver, disableBimi: true } as Parameters<typeof authenticate>[1]);
  return r.arc ? r.arc : null;
}

async function sealed(message: Buffer, signatures: Buffer | null = null): Promise<Buffer> {
  const d = arcSealDecision(messageHeaderFields(message), 'mx.contoso.test');
  assert.ok(d.seal, d.seal ? '' : d.reason);
  const whole = signatures ? Buffer.concat([signatures, message]) : message;
  return Buffer.concat([await arcSealFields(whole, KEY, d), whole]);
}

describe('ARC sealing: what is sealed', () => {
  it('a message with our Authentication-Results and no chain: instance 1, cv=none, the results as they were folded', () => {
    const d = arcSealDecision(messageHeaderFields(Buffer.from(OURS + BODY)), 'MX.Contoso.Test');
    assert.deepEqual(d, { seal: true, cv: 'none', instance: 1, authResults: 'mx.contoso.test;\r\n dkim=pass header.d=fabrikam.test;\r\n spf=pass smtp.mailfrom=fabrikam.test;\r\n dmarc=pass header.from=fabrikam.test', chain: [] });
  });
  it('not sealed: nobody here authenticated it (no results, or only another host\'s), a chain that failed or was not verified, 50 sets', () => {
    const no = (msg: string, why: RegExp) => {
      const d = arcSealDecision(messageHeaderFields(Buffer.from(msg)), 'mx.contoso.test');
      assert.equal(d.seal, false, msg.slice(0, 80));
      assert.match(d.seal ? '' : d.reason, why);
    };
    no(BODY, /not authenticated on arrival \(no Authentication-Results of mx\.contoso\.test\)/);
    no('Authentication-Results: mx.fabrikam.test; dmarc=pass\r\n' + BODY, /not authenticated on arrival/);
    no('Authentication-Results: mx.contoso.test.evil.test; dmarc=pass\r\n' + BODY, /not authenticated on arrival/);
    const set = (i: number) => `ARC-Seal: i=${i}; a=rsa-sha256; cv=${i === 1 ? 'none' : 'pass'}; d=lists.test; s=arc; b=x\r\nARC-Message-Signature: i=${i}; a=rsa-sha256; d=lists.test; s=arc; h=from; bh=x; b=x\r\nARC-Authentication-Results: i=${i}; mx.lists.test; dmarc=pass\r\n`;
    const chain = (n: number) => Array.from({ length: n }, (_, i) => set(n - i)).join('');
    no(chain(1) + 'Authentication-Results: mx.contoso.test; arc=fail (i=1 signature failed); dmarc=fail\r\n' + BODY, /did not verify \(arc=fail\): a broken chain is not extended/);
    no(chain(1) + OURS + BODY, /did not verify \(arc=none\)/);
    no(chain(ARC_MAX_INSTANCES) + 'Authentication-Results: mx.contoso.test; arc=pass; dmarc=pass\r\n' + BODY, /already has 50 sets/);
    // Malformed chains are chains: without arc=pass in our results they are not extended.
    no('ARC-Seal: garbage\r\n' + OURS + BODY, /did not verify \(arc=none\)/);
    no('ARC-Message-Signature: i=1; d=lists.test\r\nAuthentication-Results: mx.contoso.test; arc=fail (no seal); dmarc=fail\r\n' + BODY, /did not verify \(arc=fail\)/);
    // A field named like an Object property is no ARC field (it neither makes a chain nor breaks one).
    const plain = arcSealDecision(messageHeaderFields(Buffer.from('Constructor: x\r\ntoString: y\r\n' + OURS + BODY)), 'mx.contoso.test');
    assert.deepEqual(plain.seal && [plain.cv, plain.instance], ['none', 1]);
    // A binary body with bare line ends, as for DKIM.
    const binary = arcSealDecision(messageHeaderFields(Buffer.from(OURS + BODY)), 'mx.contoso.test', { binaryMime: true, bareLineEnds: true });
    assert.match(binary.seal ? '' : binary.reason, /BINARYMIME\) with bare CR or LF/);
    assert.equal(arcSealDecision(messageHeaderFields(Buffer.from(OURS + BODY)), 'mx.contoso.test', { binaryMime: true, bareLineEnds: false }).seal, true);
    // "arc=pass" inside another result's comment is not the ARC result.
    no(chain(1) + 'Authentication-Results: mx.contoso.test; dmarc=fail (p=REJECT arc=pass) header.from=x.test\r\n' + BODY, /did not verify \(arc=none\)/);
    const passed = 'Authentication-Results: mx.contoso.test (v1) 1; arc=pass (i=2); dmarc=pass\r\n';
    const d = arcSealDecision(messageHeaderFields(Buffer.from(chain(2) + passed + BODY)), 'mx.contoso.test');
    assert.deepEqual(d.seal && [d.cv, d.instance, d.chain.map((x) => x.as.toString('latin1').slice(0, 13))], ['pass', 3, ['ARC-Seal: i=1', 'ARC-Seal: i=2']]);
    // A chain that passed on arrival but is no longer whole (a rule removed a field): not extended.
    no(chain(2).replace(/ARC-Message-Signature: i=2;[^\n]*\n/, '') + passed + BODY, /no longer whole \(ARC set i=2 lacks a field\)/);
    no(set(1) + set(1) + passed + BODY, /no longer whole \(two arc-seal fields for i=1\)/);
    no(set(2) + set(3) + passed + BODY, /no longer whole \(no ARC set i=1 among 2\)/);
    no('ARC-Seal: cv=none; d=x; b=x\r\n' + passed + BODY, /no longer whole \(an arc-seal field without its i= tag\)/);
    no('ARC-Authentication-Results: mx.lists.test; i=1; dmarc=pass\r\n' + passed + BODY, /no longer whole \(an arc-authentication-results field without its i= tag\)/);
    // i= elsewhere than first in a signature is still its instance.
    const late = set(1).replace('ARC-Seal: i=1; a=rsa-sha256;', 'ARC-Seal: a=rsa-sha256; i=1;').replace('ARC-Message-Signature: i=1; a=rsa-sha256;', 'ARC-Message-Signature: a=rsa-sha256; i=1;');
    const d2 = arcSealDecision(messageHeaderFields(Buffer.from(late + passed + BODY)), 'mx.contoso.test');
    assert.deepEqual(d2.seal && [d2.cv, d2.instance], ['pass', 2]);
  });
});

describe('ARC sealing: seals a verifier accepts', () => {
  it('a first set: the next hop finds arc=pass, sealed by contoso.test, with our results as its ARC-Authentication-Results', async () => {
    const out = await sealed(Buffer.from(OURS + BODY));
    const text = out.toString('latin1');
    assert.match(text, /^ARC-Seal: i=1; a=rsa-sha256; t=\d+; cv=none; d=contoso\.test;/);
    assert.match(text, /\r\nARC-Authentication-Results: i=1; mx\.contoso\.test;\r\n dkim=pass header\.d=fabrikam\.test;/);
    const arc = await arcAt(out);
    assert.equal(arc?.status.result, 'pass', JSON.stringify(arc?.status));
    assert.equal(arc?.i, 1);
    assert.equal((arc?.authenticationResults as { dmarc?: { result?: string } } | undefined)?.dmarc?.result, 'pass');
    // Changed after the seal: the next hop sees it.
    assert.equal((await arcAt(Buffer.from(text.replace('A great offer.', 'Pay this invoice.'), 'latin1')))?.status.result, 'fail');
  });

  it('on top of a list\'s set that passed here: i=2, cv=pass, the whole chain verifies', async () => {
    const listed = Buffer.from(BODY);
    const listSet = await sealMessage(listed, { signingDomain: 'lists.test', selector: 'arc', privateKey: LIST_PEM, authResults: 'mx.lists.test; dmarc=pass header.from=fabrikam.test', cv: 'none' } as Parameters<typeof sealMessage>[1]);
    // What mailgw's listener stored: its results on top (arc=pass), then the list's set.
    const stored = Buffer.concat([Buffer.from('Authentication-Results: mx.contoso.test; arc=pass (i=1); dmarc=pass header.from=fabrikam.test\r\n'), listSet, listed]);
    const out = await sealed(stored);
    assert.match(out.toString('latin1'), /^ARC-Seal: i=2; a=rsa-sha256; t=\d+; cv=pass; d=contoso\.test;/);
    const arc = await arcAt(out);
    assert.deepEqual([arc?.status.result, arc?.i], ['pass', 2]);
  });

  it('over a DKIM signature in front of the copy (sealed last)', async () => {
    const msg = Buffer.from(OURS + BODY);
    const sig = Buffer.from(await dkimSignatures(msg, [{ domain: 'contoso.test', selector: 'arc1', algorithm: 'rsa', privateKey, file: '' }], { headers: ['From', 'To', 'Subject'], oversignHeaders: ['From'], canonicalization: 'relaxed/relaxed' }), 'latin1');
    const out = await sealed(msg, sig);
    assert.match(out.toString('latin1'), /ARC-Authentication-Results: i=1;[^]*\r\nDKIM-Signature: /);
    const r = await authenticate(out, { ip: '127.0.0.1', helo: 'x', sender: 'bob@fabrikam.test', mta: 'next.test', resolver, disableBimi: true } as Parameters<typeof authenticate>[1]);
    assert.equal(r.arc && r.arc.status.result, 'pass');
    assert.deepEqual(r.dkim.results?.map((x) => x.status.result), ['pass']);
  });
});

describe('ARC sealing: rspamd verifies the seals', { skip: rspamdSkip() }, () => {
  it('ARC_ALLOW for a first set and for a set on top of a list\'s; ARC_REJECT once the message is changed', async () => {
    const dns = await startDnsServer(Object.fromEntries([...records].map(([name, value]) => [name, { TXT: [value] }])));
    const rspamd = await startRspamd({ extraLocal: { 'options.inc': `dns { nameserver = ["${dns.server}"]; timeout = 1s; retransmits = 1; }\ndisable_hyperscan = true;\n`, 'arc.conf': 'enabled = true;\n' } });
    try {
      const arcSymbols = async (m: Buffer): Promise<string[]> => {
        const res = await fetch(`${rspamd!.url}/checkv2`, { method: 'POST', body: m, headers: { Ip: '127.0.0.1', From: 'bob@fabrikam.test', Rcpt: 'alice@contoso.test' } });
        const j = (await res.json()) as { symbols: Record<string, { name: string; options?: string[] }> };
        return Object.values(j.symbols).filter((x) => x.name.startsWith('ARC')).map((x) => `${x.name} ${(x.options ?? []).join(' ')}`.trim());
      };
      const first = await sealed(Buffer.from(OURS + BODY));
      assert.deepEqual(await arcSymbols(first), ['ARC_ALLOW contoso.test:s=arc1:i=1']);
      assert.match((await arcSymbols(Buffer.from(first.toString('latin1').replace('A great offer.', 'Pay this invoice.'), 'latin1'))).join(), /^ARC_REJECT /);
      const listed = Buffer.from(BODY);
      const listSet = await sealMessage(listed, { signingDomain: 'lists.test', selector: 'arc', privateKey: LIST_PEM, authResults: 'mx.lists.test; dmarc=pass header.from=fabrikam.test', cv: 'none' } as Parameters<typeof sealMessage>[1]);
      const second = await sealed(Buffer.concat([Buffer.from('Authentication-Results: mx.contoso.test; arc=pass (i=1); dmarc=pass header.from=fabrikam.test\r\n'), listSet, listed]));
      assert.deepEqual(await arcSymbols(second), ['ARC_ALLOW contoso.test:s=arc1:i=2']);
    } finally {
      await rspamd?.stop();
      await dns.close();
    }
  });
});

describe('ARC sealing key', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'arc-key-'));
  const where = { configFile: 'gateway.yaml', baseDir: dir, dataDir: path.join(dir, 'data') };
  it('read from the default place `mailgw dkim keygen` writes to, or keyFile', () => {
    writeKeyFile(path.join(dir, 'data/dkim/contoso.test/arc1.key'), generateDkimKey('rsa'));
    const r = loadArcSealKey({ domain: 'contoso.test', selector: 'arc1' }, where);
    assert.ok(r.ok && r.key.privateKey.asymmetricKeyType === 'rsa' && r.key.domain === 'contoso.test' && r.key.selector === 'arc1');
  });
  it('missing (with the command that makes it), too open, or an Ed25519 key: errors naming senderAuthentication.arcSeal', () => {
    const missing = loadArcSealKey({ domain: 'contoso.test', selector: 'arc9' }, where);
    assert.ok(!missing.ok);
    assert.equal(missing.error.path, 'senderAuthentication.arcSeal');
    assert.match(missing.error.message, /does not exist; create it with `mailgw dkim keygen contoso\.test --selector arc9`$/);
    const open = path.join(dir, 'open.key');
    writeFileSync(open, generateDkimKey('rsa').export({ type: 'pkcs8', format: 'pem' }));
    chmodSync(open, 0o644);
    const o = loadArcSealKey({ domain: 'contoso.test', selector: 'arc1', keyFile: 'open.key' }, where);
    assert.ok(!o.ok);
    assert.equal(o.error.path, 'senderAuthentication.arcSeal.keyFile');
    assert.match(o.error.message, /mode 0644: a private key must not be readable by group or others/);
    writeKeyFile(path.join(dir, 'ed.key'), generateDkimKey('ed25519'));
    const e = loadArcSealKey({ domain: 'contoso.test', selector: 'arc1', keyFile: 'ed.key' }, where);
    assert.ok(!e.ok);
    assert.match(e.error.message, /holds an ed25519 key; ARC seals with RSA \(rsa-sha256, RFC 8617 §4\.1\.3\)$/);
  });
});
