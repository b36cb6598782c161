// DKIM over BINARYMIME (RFC 3030, RFC 6376 §5.3): a binary message leaving by BDAT with
// BODY=BINARYMIME through a worker that signs (gateway.yaml dkim, an RSA and an Ed25519
// selector) arrives at a far side offering BINARYMIME and CHUNKING with signatures that verify
// with mailauth, with the harness's own RFC 6376 verifier (RSA) and, without NUL octets, with
// OpenDKIM: the body is signed as it is sent (and ARC-sealed, with senderAuthentication.arcSeal).
// A binary body with bare CR or LF octets goes unsigned and unsealed: verifiers canonicalise those octets differently (mailauth reads a bare LF as a line
// end, a strict RFC 6376 verifier as an octet), which the last test shows.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { authenticate } from 'mailauth';
import { dkimSignatures, generateDkimKey, recordValue, writeKeyFile } from '@mailgw/dkim';
import type { KeyObject } from 'node:crypto';
import { mailauthVerdicts, openDkimSkip, openDkimVerify, verifyDkim } from '../harness/opendkim.js';
import { enqueue } from './helpers/gateway.js';
import { rigsPerTest, type Rig } from './helpers/rig.js';
import { startChunkingFarSide, type ChunkingFarSide } from './helpers/chunking-far-side.js';
import type { WorkerHandle } from '@mailgw/worker';

const { rig, done } = rigsPerTest();

const HEAD =
  'From: Alice <alice@contoso.test>\r\nTo: <bob@remote.test>\r\nSubject: binary report\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n' +
  'Message-ID: <binary-dkim@contoso.test>\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n';
/** Every octet value but CR and LF, NULs included, with trailing spaces and tabs, in CRLF lines. */
const CLEAN = Buffer.concat([Buffer.from(HEAD), Buffer.from(Array.from({ length: 256 }, (_, i) => (i === 10 || i === 13 ? 0x20 : i))), Buffer.from([0x20, 0x09, 0x0d, 0x0a, 0x00, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a])]);
/** 8-bit octets, no NUL (OpenDKIM's test mode reads the message as text), CRLF lines. */
const NO_NUL = Buffer.concat([Buffer.from(HEAD), Buffer.from([0x80, 0xff, 0xfe, 0x20, 0x20, 0x09, 0x41, 0x0d, 0x0a, 0x01, 0x7f, 0x1b, 0x0d, 0x0a])]);
/** A binary body as binary bodies come: bare LF and bare CR among the octets. */
const BARE = Buffer.concat([Buffer.from(HEAD), Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256))]);

interface Keys {
  rsa: KeyObject;
  ed: KeyObject;
  records: Map<string, string>;
}

async function signingRig(far: ChunkingFarSide): Promise<{ r: Rig; h: WorkerHandle; keys: Keys }> {
  const r = await rig({
    routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
    gateway: { dkim: { domains: [{ domain: 'contoso.test', selectors: [{ name: 's1' }, { name: 's2', algorithm: 'ed25519' }] }] } },
  });
  const keys: Keys = { rsa: generateDkimKey('rsa'), ed: generateDkimKey('ed25519'), records: new Map() };
  writeKeyFile(path.join(r.dataDir, 'dkim/contoso.test/s1.key'), keys.rsa);
  writeKeyFile(path.join(r.dataDir, 'dkim/contoso.test/s2.key'), keys.ed);
  keys.records.set('s1._domainkey.contoso.test', recordValue(keys.rsa, 'rsa'));
  keys.records.set('s2._domainkey.contoso.test', recordValue(keys.ed, 'ed25519'));
  return { r, h: await r.start(), keys };
}


async function sendBinary(r: Rig, body: Buffer): Promise<void> {
  const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body, bodyType: 'BINARYMIME' });
  await done(r, id);
}

describe('DKIM over BINARYMIME', () => {
  test('a binary body with CRLF line ends only is signed as sent and verifies at the far side', async () => {
    const far = await startChunkingFarSide({ binaryMime: true });
    try {
      const { r, h, keys } = await signingRig(far);
      await sendBinary(r, CLEAN);
      await sendBinary(r, NO_NUL);
      assert.equal(far.messages.length, 2);
      for (const [m, sent] of [[far.messages[0]!, CLEAN], [far.messages[1]!, NO_NUL]] as const) {
        assert.equal(m.via, 'BDAT');
        assert.ok(m.mailParams.includes('BODY=BINARYMIME'), m.mailParams.join(' '));
        // The signatures in front, the stored octets unchanged behind them.
        assert.ok(m.raw.subarray(m.raw.length - sent.length).equals(sent), 'the binary message follows the signatures byte for byte');
        assert.deepEqual(m.raw.toString('latin1', 0, m.raw.length - sent.length).match(/^DKIM-Signature:/gm)?.length, 2);
        assert.deepEqual(await mailauthVerdicts(m.raw, keys.records), ['s1:pass', 's2:pass']);
        assert.equal(verifyDkim(m.raw, keys.rsa), null, 'an RFC 6376 verifier of its own, octets as octets');
      }
      if (!openDkimSkip()) assert.deepEqual(openDkimVerify(far.messages[1]!.raw, keys.records), ['s1:pass', 's2:pass'], 'OpenDKIM');
      else console.log(`# OpenDKIM check skipped: ${openDkimSkip()}`);
      assert.deepEqual(h.dkim, { signed: 2, failed: 0 });
    } finally {
      await far.close();
    }
  });

  test('a binary body with bare CR or LF octets goes unsigned, unchanged, not counted as a failure', async () => {
    const far = await startChunkingFarSide({ binaryMime: true });
    try {
      const { r, h } = await signingRig(far);
      await sendBinary(r, BARE);
      assert.equal(far.messages.length, 1);
      const m = far.messages[0]!;
      assert.equal(m.via, 'BDAT');
      assert.ok(m.raw.equals(BARE), 'sent as stored, no DKIM-Signature');
      assert.deepEqual(h.dkim, { signed: 0, failed: 0 });
    } finally {
      await far.close();
    }
  });

  test('ARC (senderAuthentication.arcSeal) follows the same rule: a binary body with CRLF lines is sealed and the seal verifies; one with bare line ends goes unsealed', async () => {
    const far = await startChunkingFarSide({ binaryMime: true });
    try {
      const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }], gateway: { senderAuthentication: { arcSeal: { domain: 'contoso.test', selector: 'arc1' } } as never } });
      const key = generateDkimKey('rsa');
      writeKeyFile(path.join(r.dataDir, 'dkim/contoso.test/arc1.key'), key);
      const h = await r.start();
      // As the listener stores mail it authenticated: its Authentication-Results on top (authserv-id = fqdn).
      const ours = Buffer.from(`Authentication-Results: ${r.gateway.fqdn}; spf=pass smtp.mailfrom=contoso.test; dmarc=pass header.from=contoso.test\r\n`);
      for (const body of [CLEAN, BARE]) {
        const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body: Buffer.concat([ours, body]), bodyType: 'BINARYMIME' });
        await done(r, id);
      }
      const [clean, bare] = far.messages;
      assert.match(clean!.raw.toString('latin1'), /^ARC-Seal: i=1; a=rsa-sha256; t=\d+; cv=none; d=contoso\.test; s=arc1;/);
      const verdict = await authenticate(clean!.raw, { ip: '127.0.0.1', helo: 'x', sender: 'alice@contoso.test', mta: 'far.test', resolver: async (name: string) => (name === 'arc1._domainkey.contoso.test' ? [[recordValue(key, 'rsa')]] : Promise.reject(Object.assign(new Error(name), { code: 'ENOTFOUND' }))), disableBimi: true } as Parameters<typeof authenticate>[1]);
      assert.equal(verdict.arc && verdict.arc.status.result, 'pass');
      assert.ok(bare!.raw.equals(Buffer.concat([ours, BARE])), 'sent as stored, no ARC set');
      assert.deepEqual(h.arc, { sealed: 1, failed: 0 });
    } finally {
      await far.close();
    }
  });

  test('why: a signature over bare line ends passes mailauth and fails a strict RFC 6376 verifier', async () => {
    const rsa = generateDkimKey('rsa');
    const key = { domain: 'contoso.test', selector: 's1', algorithm: 'rsa' as const, privateKey: rsa, file: '' };
    const fields = await dkimSignatures(BARE, [key], { headers: ['from', 'to', 'subject', 'date', 'message-id'], oversignHeaders: [], canonicalization: 'relaxed/relaxed' });
    const signed = Buffer.concat([Buffer.from(fields, 'latin1'), BARE]);
    assert.deepEqual(await mailauthVerdicts(signed, new Map([['s1._domainkey.contoso.test', recordValue(rsa, 'rsa')]])), ['s1:pass']);
    assert.match(verifyDkim(signed, rsa) ?? '', /^body hash /);
  });
});
