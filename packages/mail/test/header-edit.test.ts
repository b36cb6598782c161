import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it, test } from 'node:test';
import { applyHeaderEdits, formatField } from '../src/header-edit.js';
import { parseHeaderFields, withoutHeaderFields } from '../src/header-block.js';

const fields = parseHeaderFields(Buffer.from('Subject: one\r\nX-A: 1\r\nX-A: 2\r\nFrom: <a@b.test>\r\n'));
const text = (e: ReturnType<typeof applyHeaderEdits>) => Buffer.concat([...e.top, ...e.fields]).toString();

test('adds on top or at the bottom, removes the n-th or every field of a name, changes the n-th (empty value deletes)', () => {
  const e = applyHeaderEdits(fields, [
    { op: 'add', name: 'Authentication-Results', value: 'mx.test; spf=pass', top: true },
    { op: 'add', name: 'X-Spam', value: 'no' },
    { op: 'remove', name: 'x-a', index: 2 },
    { op: 'change', name: 'Subject', index: 1, value: '[tag] one' },
    { op: 'change', name: 'X-New', index: 1, value: 'added' },
  ]);
  assert.equal(text(e), 'Authentication-Results: mx.test; spf=pass\r\nSubject: [tag] one\r\nX-A: 1\r\nFrom: <a@b.test>\r\nX-Spam: no\r\nX-New: added\r\n');
  assert.equal(text(applyHeaderEdits(fields, [{ op: 'remove', name: 'X-A' }, { op: 'change', name: 'from', index: 1, value: '' }])), 'Subject: one\r\n');
});

test('a filter cannot end the header section or inject a field: breaks are folded, controls dropped, bad names ignored', () => {
  assert.equal(formatField('X-Evil', 'a\r\n\r\nBcc: victim@x.test').toString(), 'X-Evil: a\r\n\tBcc: victim@x.test\r\n');
  assert.equal(formatField('X-Folded', 'one\n two\n').toString(), 'X-Folded: one\r\n\ttwo\r\n');
  assert.equal(formatField('X-Ctl', 'a\u0000b\u001bc').toString(), 'X-Ctl: abc\r\n');
  assert.throws(() => formatField('Bad Name', 'x'), RangeError);
  assert.equal(text(applyHeaderEdits([], [{ op: 'add', name: 'Bad:Name', value: 'x' }])), '');
});

describe('withoutHeaderFields', () => {
  const received = new Set(['received']);
  it('removes every such field with its folded lines; the rest of the header and the body keep their bytes', () => {
    const m = Buffer.from('Received: from a\r\n\tby b; date\r\nSubject: x\r\nreceived: from c\r\nX-Y: z\r\n\r\nReceived: body line\r\n');
    assert.equal(withoutHeaderFields(m, received)?.toString(), 'Subject: x\r\nX-Y: z\r\n\r\nReceived: body line\r\n');
  });
  it('null when there is none; a header without a body stays one', () => {
    assert.equal(withoutHeaderFields(Buffer.from('Subject: x\r\n\r\nbody\r\n'), received), null);
    assert.equal(withoutHeaderFields(Buffer.from('Received: a\r\nSubject: x\r\n'), received)?.toString(), 'Subject: x\r\n');
  });
});

describe('withoutHeaderFields, random headers (fast-check)', () => {
  it('keeps every other field byte for byte and in order, and the body; removes every field of the name, folded or not', () => {
    const name = fc.constantFrom('Received', 'received', 'RECEIVED', 'Subject', 'X-A', 'Received-SPF', 'DKIM-Signature');
    const value = fc.stringMatching(/^[ -~]{0,40}$/);
    const field = fc.tuple(name, value, fc.boolean()).map(([n, v, folded]) => ({ name: n.toLowerCase(), raw: `${n}: ${v}${folded ? '\r\n\tcontinued' : ''}\r\n` }));
    fc.assert(
      fc.property(fc.array(field, { maxLength: 12 }), fc.stringMatching(/^[ -~\r\n]{0,60}$/), (fields, body) => {
        const message = Buffer.from(`${fields.map((f) => f.raw).join('')}\r\n${body}`);
        const out = withoutHeaderFields(message, new Set(['received']));
        const kept = fields.filter((f) => f.name !== 'received');
        if (kept.length === fields.length) return out === null;
        return out !== null && out.toString() === `${kept.map((f) => f.raw).join('')}\r\n${body}`;
      }),
      { numRuns: 500 },
    );
  });
});
