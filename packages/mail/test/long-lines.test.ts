// Lines over 998 octets: found at the boundary exactly, wrapped into lines of at most 998 octets
// that give the original back (folding undone, inserted spaces dropped), never splitting UTF-8.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { findLongLine, MAX_LINE_OCTETS, wrapLongLines } from '../src/index.js';

const hasLongLines = (body: Buffer, limit?: number) => findLongLine(body, 0, limit) !== null;

const b = (s: string) => Buffer.from(s, 'utf8');
const lines = (buf: Buffer) => buf.toString('latin1').split('\r\n');

describe('findLongLine', () => {
  it('998 octets is a line, 999 is too long (the CRLF not counted)', () => {
    assert.equal(hasLongLines(b(`${'a'.repeat(998)}\r\nnext\r\n`)), false);
    assert.deepEqual(findLongLine(b(`short\r\n${'a'.repeat(999)}\r\nnext\r\n`)), { start: 7, end: 1006 });
  });
  it('judges an unterminated last line and a bare LF the same way', () => {
    assert.equal(hasLongLines(b(`x\r\n${'a'.repeat(998)}`)), false);
    assert.deepEqual(findLongLine(b(`x\r\n${'a'.repeat(999)}`)), { start: 3, end: 1002 });
    assert.equal(hasLongLines(b(`${'a'.repeat(998)}\nb\n`)), false);
    assert.deepEqual(findLongLine(b(`${'a'.repeat(999)}\nb\n`)), { start: 0, end: 999 });
    assert.equal(hasLongLines(b('')), false);
    assert.equal(hasLongLines(b('\r\n\r\n')), false);
  });
  it('finds a long line after many short ones, and from a given offset', () => {
    const body = b(`${'short line\r\n'.repeat(500)}${'z'.repeat(1500)}\r\n${'short\r\n'.repeat(10)}${'y'.repeat(1000)}\r\n`);
    const first = findLongLine(body)!;
    assert.equal(body.subarray(first.start, first.end).toString(), 'z'.repeat(1500));
    const second = findLongLine(body, first.end)!;
    assert.equal(body.subarray(second.start, second.end).toString(), 'y'.repeat(1000));
    assert.equal(findLongLine(body, second.end), null);
  });
  it('agrees with splitting the body into lines (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: 30 }), fc.constantFrom('\r\n', '\n', '')), { maxLength: 20 }), (parts) => {
        const text = parts.map(([len, end]) => 'a'.repeat(len) + end).join('');
        const expected = text.split(/\r?\n/).some((l) => l.length > 10);
        assert.equal(hasLongLines(b(text), 10), expected, JSON.stringify(text));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('wrapLongLines', () => {
  it('leaves a body without long lines untouched (the same Buffer)', () => {
    const body = b(`Subject: hi\r\n\r\n${'a'.repeat(998)}\r\n`);
    const w = wrapLongLines(body);
    assert.equal(w.body, body);
    assert.deepEqual([w.lines, w.longest], [0, 0]);
  });

  it('folds a long header field before its whitespace: unfolding gives the field back exactly', () => {
    const value = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
    const body = b(`Subject: ${value}\r\nTo: a@b.test\r\n\r\nbody\r\n`);
    const w = wrapLongLines(body);
    assert.equal(w.lines, 1);
    const out = w.body.toString('latin1');
    for (const l of lines(w.body)) assert.ok(l.length <= MAX_LINE_OCTETS, `${l.length}`);
    assert.ok(lines(w.body)[1]!.startsWith(' word'), 'the continuation starts with the space that was there');
    assert.equal(out.replace(/\r\n(?=[ \t])/g, ''), body.toString('latin1'));
  });

  it('breaks a long body line of HTML at its last space within 998 octets', () => {
    const html = `<p>${'<span class="x">text</span> '.repeat(200)}</p>`;
    const w = wrapLongLines(b(`Subject: x\r\n\r\n${html}\r\n`));
    const ls = lines(w.body);
    assert.ok(ls.length > 3);
    for (const l of ls) assert.ok(l.length <= 998);
    assert.ok(ls[2]!.length > 950, 'pieces are as long as the limit allows');
    assert.equal(ls.slice(2, -1).join(''), html);
  });

  it('breaks a stretch with no whitespace hard, with CRLF SP (Postfix\'s way), never starting a line with a dot', () => {
    const body = b(`${'.'.repeat(2500)}\r\n`);
    const w = wrapLongLines(body);
    const ls = lines(w.body);
    assert.deepEqual(ls.map((l) => l.length), [998, 998, 506, 0]);
    assert.ok(ls[1]!.startsWith(' .') && ls[2]!.startsWith(' .'));
    assert.deepEqual([w.lines, w.longest], [1, 2500]);
    assert.equal(ls[0]! + ls[1]!.slice(1) + ls[2]!.slice(1), '.'.repeat(2500));
  });

  it('never splits a UTF-8 sequence', () => {
    const text = 'Grüße—日本語'.repeat(200); // 2- and 3-octet sequences, no whitespace
    const w = wrapLongLines(b(`${text}\r\n`));
    for (const l of w.body.toString('latin1').split('\r\n')) {
      const piece = Buffer.from(l, 'latin1');
      assert.ok(piece.length <= 998);
      assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(piece));
    }
    assert.equal(w.body.toString('utf8').split('\r\n').map((l, i) => (i === 0 ? l : l.slice(1))).join(''), text);
  });

  it('does not leave a line of whitespace alone (it would end a header)', () => {
    const w = wrapLongLines(b(`X-Long:\t\t${'q'.repeat(1200)}\r\n\r\n`));
    for (const l of lines(w.body).slice(0, -2)) assert.match(l, /[^ \t]/);
  });

  it('every line fits and the original comes back (property)', () => {
    const limit = 12;
    const line = fc
      .array(fc.constantFrom('a', 'b', '.', ' ', '\t', 'é', '語'), { maxLength: 60 })
      .map((cs) => cs.join(''))
      .map((l) => (/^[ \t]/.test(l) ? `x${l}` : l)); // so continuation lines are the ones starting with whitespace
    fc.assert(
      fc.property(fc.array(line, { maxLength: 6 }), (ls) => {
        const original = ls.map((l) => `${l}\r\n`).join('');
        const w = wrapLongLines(b(original), limit);
        const outLines = w.body.toString('latin1').split('\r\n').slice(0, -1);
        for (const l of outLines) assert.ok(Buffer.byteLength(l, 'latin1') <= limit, JSON.stringify(l));
        // Regroup: a line starting with whitespace continues the one before.
        const groups: string[][] = [];
        for (const l of outLines) (/^[ \t]/.test(l) && groups.length ? groups[groups.length - 1]! : (groups.push([]), groups[groups.length - 1]!)).push(l);
        const originals = ls.map((l) => Buffer.from(l, 'utf8').toString('latin1'));
        assert.equal(groups.length, originals.length);
        groups.forEach((g, i) => {
          // Each continuation either kept the whitespace that was there or had a space inserted.
          let ends = new Set([g[0]!]);
          for (const c of g.slice(1)) ends = new Set([...ends].flatMap((p) => [p + c, p + c.slice(1)]).filter((p) => originals[i]!.startsWith(p)));
          assert.ok(ends.has(originals[i]!), JSON.stringify({ original: originals[i], g }));
        });
      }),
      { numRuns: 3000 },
    );
  });
});
