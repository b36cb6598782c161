// BareCrLines: a line starting with a bare CR gets the LF of a line ending, the same whatever
// the writes the message comes in, and nothing else changes.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { BareCrLines } from '../src/bare-cr-lines.js';

const run = (writes: readonly Buffer[]) => {
  const n = new BareCrLines();
  return Buffer.concat(writes.map((w) => n.push(w))).toString('latin1');
};

it('gives a line-starting bare CR its LF; CRLF, a CR inside a line and everything else stay', () => {
  assert.equal(run([Buffer.from('a\r\n\r\nb\n\r--x\nc\rd\n\r\r\n')]), 'a\r\n\r\nb\n\r\n--x\nc\rd\n\r\n\r\n');
  assert.equal(run([Buffer.from('\rX: 1\n')]), '\r\nX: 1\n', 'at the very start too');
  const plain = Buffer.from('From: a\r\n\r\nbody\r\n');
  const n = new BareCrLines();
  assert.equal(n.push(plain), plain, 'no copy when nothing changes');
});

it('the same bytes out whatever the writes', () => {
  const bytes = fc.array(fc.constantFrom('\r', '\n', '-', 'a', '\r\n'), { maxLength: 60 }).map((xs) => xs.join(''));
  fc.assert(
    fc.property(bytes, fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 10 }), (text, cuts) => {
      const whole = run([Buffer.from(text, 'latin1')]);
      const at = [...new Set(cuts.filter((c) => c > 0 && c < text.length))].sort((a, b) => a - b);
      const writes: Buffer[] = [];
      let from = 0;
      for (const c of [...at, text.length]) {
        writes.push(Buffer.from(text.slice(from, c), 'latin1'));
        from = c;
      }
      assert.equal(run(writes), whole);
      // Every line-starting CR is now a CRLF's (but a last one: nothing follows it), and only LFs were added.
      assert.doesNotMatch(whole, /(^|\n)\r(?!\n|$)/);
      assert.equal(whole.replace(/\n/g, ''), text.replace(/\n/g, ''));
    }),
    { numRuns: 5000 },
  );
});
