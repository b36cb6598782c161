// outboundTransfer: BDAT when the next hop offers CHUNKING, DATA otherwise (and for LMTP);
// BINARYMIME only with BINARYMIME and CHUNKING (else 554 5.6.3), SMTPUTF8 only where offered (5.6.7).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outboundTransfer, type TransferInput } from '../src/outbound-transfer.js';

const base = (o: Partial<TransferInput> & { ext?: string[] }): TransferInput => ({ body: '7BIT', smtpUtf8: false, lmtp: false, where: 'mx.remote.test[192.0.2.1]', offered: new Set(o.ext ?? []), ...o });

test('CHUNKING offered: BDAT, with the body type unchanged', () => {
  const p = outboundTransfer(base({ body: '8BITMIME', ext: ['CHUNKING', '8BITMIME'] }));
  assert.deepEqual(p.send && [p.command, p.body], ['BDAT', '8BITMIME']);
});

test('no CHUNKING, or LMTP: DATA', () => {
  const a = outboundTransfer(base({ ext: ['8BITMIME'] }));
  assert.equal(a.send && a.command, 'DATA');
  const b = outboundTransfer(base({ lmtp: true, ext: ['CHUNKING'] }));
  assert.equal(b.send && b.command, 'DATA');
});

test('BINARYMIME: BDAT with BODY=BINARYMIME only where both are offered; else 554 5.6.3 naming what is missing', () => {
  const ok = outboundTransfer(base({ body: 'BINARYMIME', ext: ['CHUNKING', 'BINARYMIME'] }));
  assert.deepEqual(ok.send && [ok.command, ok.body], ['BDAT', 'BINARYMIME']);
  for (const [ext, lmtp, missing] of [[['BINARYMIME'], false, 'does not offer CHUNKING'], [['CHUNKING'], false, 'does not offer BINARYMIME'], [['CHUNKING', 'BINARYMIME'], true, 'LMTP']] as const) {
    const p = outboundTransfer(base({ body: 'BINARYMIME', lmtp, ext: [...ext] }));
    assert.equal(p.send, false);
    if (p.send) continue;
    assert.equal(p.reasonCode, 'binarymime-not-offered');
    assert.deepEqual([p.reply.code, p.reply.enhanced], [554, '5.6.3']);
    assert.match(p.reason, new RegExp(missing));
    assert.match(p.reason, /mx\.remote\.test\[192\.0\.2\.1\]/);
  }
});

test('SMTPUTF8 message to a hop without SMTPUTF8: 550 5.6.7 (checked first)', () => {
  const p = outboundTransfer(base({ smtpUtf8: true, body: 'BINARYMIME', ext: ['CHUNKING', 'BINARYMIME'] }));
  assert.equal(!p.send && p.reasonCode, 'smtputf8-not-offered');
  assert.equal(!p.send && p.reply.enhanced, '5.6.7');
  const q = outboundTransfer(base({ smtpUtf8: true, ext: ['SMTPUTF8'] }));
  assert.equal(q.send, true);
});
