// DKIM signatures made by @mailgw/dkim, checked by verifiers that did not make them: mailauth's
// dkimVerify (its own parser and canonicalisation, keys from a resolver returning the record
// `dkim keygen` prints), OpenDKIM's own verifier (`opendkim -t` with the keys as test keys) and the
// harness's RFC 6376 verifier (test/harness/opendkim.ts). RSA and
// Ed25519, two selectors, folded headers, 8-bit bodies, bare-LF input, oversigned From, a 30 MB
// body, and every canonicalisation.
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { dkimSign as mailauthSign, type DKIMSignOptions } from 'mailauth';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { DEFAULT_DKIM_HEADERS } from '@mailgw/config';
import { dkimSignatures, generateDkimKey, recordName, recordValue, type DkimKey } from '@mailgw/dkim';
import { openDkimSkip, openDkimVerify, verifyDkim } from '../../../test/harness/opendkim.js';

const rsa: DkimKey = { domain: 'contoso.test', selector: 'rsa1', algorithm: 'rsa', privateKey: generateDkimKey('rsa'), file: '' };
const ed: DkimKey = { domain: 'contoso.test', selector: 'ed1', algorithm: 'ed25519', privateKey: generateDkimKey('ed25519'), file: '' };
const records = new Map([rsa, ed].map((k) => [recordName(k.domain, k.selector), recordValue(k.privateKey, k.algorithm)]));

const resolver = async (name: string, rrtype: string): Promise<string[][]> => {
  const r = rrtype === 'TXT' ? records.get(name.replace(/\.$/, '')) : undefined;
  if (!r) throw Object.assign(new Error(`${name} ${rrtype}: ENOTFOUND`), { code: 'ENOTFOUND' });
  return [[r]];
};

const OPTS = { headers: [...DEFAULT_DKIM_HEADERS], oversignHeaders: ['From'], canonicalization: 'relaxed/relaxed' };

function message(body: string | Buffer, extraHeaders = ''): Buffer {
  const head =
    'From: "Alice, Sales" <alice@contoso.test>\r\n' +
    'To: bob@fabrikam.test,\r\n\tcarol@fabrikam.test\r\n' +
    'Subject: a folded\r\n   subject   with  spaces\r\n' +
    'Date: Wed, 02 Dec 2026 15:00:00 +0000\r\n' +
    'Message-ID: <m1@contoso.test>\r\n' +
    'MIME-Version: 1.0\r\n' +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    'Content-Transfer-Encoding: 8bit\r\n' +
    extraHeaders +
    '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')]);
}

async function verify(signed: Buffer | Readable) {
  const r = await dkimVerify(signed, { resolver: resolver as never });
  return r.results.map((x) => ({ selector: x.selector, result: x.status.result, comment: x.status.comment }));
}

const passes = async (signed: Buffer | Readable) => (await verify(signed)).map((r) => `${r.selector}:${r.result}${r.result === 'pass' ? '' : ` (${r.comment})`}`);

function* chunksOf(buf: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

describe('dkimSignatures', () => {
  it('RSA: mailauth and the harness verifier both pass it; h= oversigns From', async () => {
    const msg = message('Grüße aus Zürich — 8-bit body\r\n\r\n\r\n');
    const sig = await dkimSignatures(msg, [rsa], OPTS);
    const signed = Buffer.concat([Buffer.from(sig), msg]);
    assert.deepEqual(await passes(signed), ['rsa1:pass']);
    assert.equal(verifyDkim(signed, createPublicKey(rsa.privateKey)), null);
    const h = /h=([^;]+);/.exec(sig.replace(/\r\n\s+/g, ''))![1]!;
    assert.equal(h.split(':').filter((n) => n.trim().toLowerCase() === 'from').length, 2, `From is signed twice in h=${h}`);
    assert.match(sig, /a=rsa-sha256/);
    assert.match(sig, /c=relaxed\/relaxed/);
    assert.match(sig, /d=contoso\.test/);
    assert.match(sig, /s=rsa1/);
  });

  it('OpenDKIM (opendkim -t, keys from TestPublicKeys) verifies RSA and Ed25519, folded headers, 8-bit body', { skip: openDkimSkip() }, async () => {
    const msg = message('Grüße aus Zürich\r\n\tindented  line  \r\n\r\n', 'X-Folded: one\r\n two\r\n');
    const sig = await dkimSignatures(msg, [rsa, ed], OPTS);
    assert.deepEqual(openDkimVerify(Buffer.concat([Buffer.from(sig), msg]), records), ['ed1:pass', 'rsa1:pass']);
    assert.deepEqual(openDkimVerify(Buffer.concat([Buffer.from(sig), message('changed\r\n')]), records)?.map((r) => r.endsWith(':pass')), [false, false]);
  });

  it('oversigned From: a From: added after signing breaks the signature', async () => {
    const msg = message('hello\r\n');
    const sig = await dkimSignatures(msg, [rsa], OPTS);
    const tampered = Buffer.concat([Buffer.from(sig), Buffer.from('From: mallory@evil.test\r\n'), msg]);
    assert.deepEqual((await verify(tampered)).map((r) => r.result), ['fail']);
  });

  it('Ed25519 (RFC 8463) and RSA together, as during a rotation: both signatures pass', async () => {
    const msg = message('two selectors\r\n');
    const sig = await dkimSignatures(msg, [rsa, ed], OPTS);
    assert.equal(sig.match(/^DKIM-Signature:/gm)?.length, 2);
    assert.match(sig, /a=ed25519-sha256/);
    assert.deepEqual((await passes(Buffer.concat([Buffer.from(sig), msg]))).sort(), ['ed1:pass', 'rsa1:pass']);
  });

  it('t= is fixed once: a clock that moves on while signing still gives a signature that verifies', async () => {
    // mailauth formats the header twice (with a placeholder b=, then the real one) and, unless
    // given the time, puts Math.round(Date.now() / 1000) into t= each time: across a half
    // second the signed t= and the sent t= differ (about 1 signature in 300 on a fast machine).
    const realNow = Date.now;
    let calls = 0;
    // Each read of Date.now is a second later than the last, so any two reads give different t=.
    Date.now = () => realNow() + 1000 * calls++;
    try {
      const msg = message('clock\r\n');
      const sig = await dkimSignatures(msg, [rsa], OPTS);
      assert.deepEqual(await passes(Buffer.concat([Buffer.from(sig), msg])), ['rsa1:pass']);
      // The same clock breaks mailauth's own dkimSign when no signTime is given: why ours passes one.
      calls = 0;
      const theirs = await mailauthSign(msg, { signatureData: [{ signingDomain: rsa.domain, selector: rsa.selector, privateKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }), algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed' }] } as unknown as DKIMSignOptions);
      assert.deepEqual(theirs.errors, []);
      Date.now = realNow;
      assert.deepEqual(await passes(Buffer.concat([Buffer.from(theirs.signatures), msg])), ['rsa1:fail (bad signature)']);
    } finally {
      Date.now = realNow;
    }
  });

  it('a changed body fails (the body hash covers it)', async () => {
    const msg = message('original\r\n');
    const sig = await dkimSignatures(msg, [ed], OPTS);
    const [r] = await verify(Buffer.concat([Buffer.from(sig), message('changed\r\n')]));
    assert.notEqual(r?.result, 'pass'); // mailauth says neutral, "body hash did not verify"
    assert.match(String(r?.comment), /body hash/);
  });

  for (const c of ['relaxed/relaxed', 'relaxed/simple', 'simple/relaxed', 'simple/simple']) {
    it(`canonicalization ${c} verifies (folded headers, trailing blank lines, tabs)`, async () => {
      const msg = message('line\twith  tabs \r\nmore\r\n\r\n\r\n', 'X-Folded: a\r\n\tb\r\n');
      for (const key of [rsa, ed]) {
        const sig = await dkimSignatures(msg, [key], { ...OPTS, canonicalization: c });
        assert.match(sig, new RegExp(`c=${c.replace('/', '\\/')}`));
        assert.deepEqual(await passes(Buffer.concat([Buffer.from(sig), msg])), [`${key.selector}:pass`], `${key.algorithm} ${c}`);
      }
    });
  }

  it('a message with no body and one given as a stream in odd chunks sign the same way', async () => {
    const empty = Buffer.from('From: alice@contoso.test\r\nSubject: empty\r\n\r\n');
    assert.deepEqual(await passes(Buffer.concat([Buffer.from(await dkimSignatures(empty, [rsa], OPTS)), empty])), ['rsa1:pass']);
    const msg = message('x'.repeat(5000) + '\r\n' + 'y\r\n'.repeat(3000));
    const sig = await dkimSignatures(Readable.from(chunksOf(msg, 7)), [ed], OPTS);
    assert.deepEqual(await passes(Buffer.concat([Buffer.from(sig), msg])), ['ed1:pass']);
  });

  it('a 30 MB body: signed from the buffer in slices, verified by both verifiers', async () => {
    const line = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz ÄÖÜ 8-bit and spaces   \r\n');
    const body = Buffer.alloc(30 * 1024 * 1024);
    for (let i = 0; i < body.length; i += line.length) line.copy(body, i);
    body.write('\r\n', body.length - 2, 'latin1');
    const msg = message(body);
    const before = process.memoryUsage().arrayBuffers;
    const sig = await dkimSignatures(msg, [rsa, ed], OPTS);
    // The signer keeps no copy of the message: what it allocated stays below one more message
    // (not far below: garbage of earlier tests may be counted too, GC runs when it likes).
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < msg.length, `no second copy of the message (array buffers grew ${grown} bytes for a ${msg.length}-byte message)`);
    const signed = Readable.from([Buffer.from(sig), msg]);
    assert.deepEqual((await passes(signed)).sort(), ['ed1:pass', 'rsa1:pass']);
    const whole = Buffer.concat([Buffer.from(sig), msg]);
    assert.equal(verifyDkim(whole, createPublicKey(rsa.privateKey)), null);
    if (!openDkimSkip()) assert.deepEqual(openDkimVerify(whole, records), ['ed1:pass', 'rsa1:pass']);
  });
});
