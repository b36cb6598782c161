// Lines over 998 octets on their way out (RFC 5322 2.1.1): a message with a long header field,
// a long HTML line and a long run of UTF-8 without whitespace reaches an SMTP next hop, by DATA
// and by BDAT, with every line within 998 octets, its DKIM signatures (made after the wrapping)
// verifying, the header unfolding to the field as it came and the text coming back whole. A
// local mailbox gets the message as stored, and a BINARYMIME message (no lines) goes as it is.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generateDkimKey, recordValue, writeKeyFile } from '@mailgw/dkim';
import { mailauthVerdicts, verifyDkim } from '../harness/opendkim.js';
import { enqueue, mailbox, withoutDeliveryHeaders } from './helpers/gateway.js';
import { rigsPerTest } from './helpers/rig.js';
import { startChunkingFarSide, type ChunkingFarSide } from './helpers/chunking-far-side.js';

const { rig, done } = rigsPerTest();

const SUBJECT = Array.from({ length: 250 }, (_, i) => `word${i}`).join(' ');
const HTML = `<html><body>${'<td class="cell">Quarterly figures</td> '.repeat(120)}</body></html>`;
const UTF8 = 'Grüße—日本語'.repeat(120);
const MESSAGE = Buffer.from(
  `From: Alice <alice@contoso.test>\r\nTo: <bob@remote.test>\r\nSubject: ${SUBJECT}\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n` +
    `Message-ID: <long-lines@contoso.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n` +
    `${HTML}\r\n.${UTF8}\r\nshort last line\r\n`,
  'utf8',
);

const lineLengths = (raw: Buffer) => raw.toString('latin1').split('\r\n').map((l) => l.length);

async function signingRig(far: ChunkingFarSide) {
  const r = await rig({
    routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }],
    gateway: { dkim: { domains: [{ domain: 'contoso.test', selectors: [{ name: 's1' }] }] } },
  });
  const key = generateDkimKey('rsa');
  writeKeyFile(path.join(r.dataDir, 'dkim/contoso.test/s1.key'), key);
  const records = new Map([['s1._domainkey.contoso.test', recordValue(key, 'rsa')]]);
  return { r, h: await r.start(), key, records };
}


describe('lines over 998 octets', () => {
  for (const chunking of [false, true]) {
    test(`are wrapped for an SMTP next hop (${chunking ? 'BDAT' : 'DATA'}) before signing: all within 998, the signature verifies, nothing lost`, async () => {
      assert.ok(Math.max(...lineLengths(MESSAGE)) > 4000, 'the message has long lines');
      const far = await startChunkingFarSide({ chunking });
      try {
        const { r, h, key, records } = await signingRig(far);
        const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body: MESSAGE, bodyType: '8BITMIME' });
        await done(r, id);
        assert.equal(far.messages.length, 1);
        const m = far.messages[0]!;
        assert.equal(m.via, chunking ? 'BDAT' : 'DATA');
        assert.ok(Math.max(...lineLengths(m.raw)) <= 998, `longest line sent: ${Math.max(...lineLengths(m.raw))}`);
        assert.deepEqual(await mailauthVerdicts(m.raw, records), ['s1:pass']);
        assert.equal(verifyDkim(m.raw, key), null, 'the harness RFC 6376 verifier agrees');
        assert.deepEqual(h.dkim, { signed: 1, failed: 0 });

        const text = m.raw.toString('utf8');
        const [head, body] = [text.slice(0, text.indexOf('\r\n\r\n')), text.slice(text.indexOf('\r\n\r\n') + 4)];
        // The header field was folded before its own spaces: unfolding gives it back exactly.
        assert.match(head.replace(/\r\n(?=[ \t])/g, ''), new RegExp(`\\r\\nSubject: ${SUBJECT}\\r\\n`));
        assert.ok(head.split('\r\n').filter((l) => l.startsWith(' word')).length >= 1, 'folded');
        // The HTML line broke at its spaces (the pieces join again), the UTF-8 run with CRLF SP at
        // character boundaries; its first piece still starts with the dot (stuffed on the wire only).
        const lines = body.split('\r\n');
        const htmlEnd = lines.findIndex((l) => l.startsWith('.'));
        assert.equal(lines.slice(0, htmlEnd).join(''), HTML);
        const utf8End = lines.indexOf('short last line');
        assert.ok(utf8End - htmlEnd >= 3, 'the UTF-8 run took several lines');
        assert.equal(lines.slice(htmlEnd, utf8End).map((l, i) => (i === 0 ? l : l.slice(1))).join(''), `.${UTF8}`);
        assert.ok(!text.includes('\uFFFD'), 'no UTF-8 sequence split');
      } finally {
        await far.close();
      }
    });
  }

  test('a local mailbox gets the message as stored, long lines and all', async () => {
    const far = await startChunkingFarSide();
    try {
      const { r } = await signingRig(far);
      const id = await enqueue(r.store, { from: 'bob@remote.test', to: ['carol@contoso.test'], body: MESSAGE, bodyType: '8BITMIME' });
      await done(r, id);
      const [file] = await mailbox(r.root, 'carol@contoso.test');
      assert.ok(file, 'delivered to the mailbox');
      assert.ok(withoutDeliveryHeaders(file).rest.equals(MESSAGE), 'unchanged');
      assert.equal(far.messages.length, 0);
    } finally {
      await far.close();
    }
  });

  test('a BINARYMIME message has no lines: sent by BDAT as stored', async () => {
    const far = await startChunkingFarSide({ binaryMime: true });
    try {
      const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
      await r.start();
      const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body: MESSAGE, bodyType: 'BINARYMIME' });
      await done(r, id);
      assert.equal(far.messages.length, 1);
      assert.ok(far.messages[0]!.mailParams.includes('BODY=BINARYMIME'));
      assert.ok(far.messages[0]!.raw.equals(MESSAGE), 'the octets as stored');
    } finally {
      await far.close();
    }
  });
});
