// The fast DataStream transform gives byte-identical output to nodemailer's own, for any bytes
// split into any chunks (bare CR/LF, dots at line starts, CR/LF across chunk boundaries).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { fastTransform, installFastDataStream, loadDataStream } from '../src/fast-data-stream.js';

type Fn = typeof fastTransform;

function run(fn: Fn, chunks: Buffer[]): { out: Buffer; inBytes: number; outBytes: number } {
  const state = { inByteCount: 0, outByteCount: 0, lastByte: false as number | false, parts: [] as Buffer[], push(b: Buffer) { this.parts.push(Buffer.from(b)); return true; } };
  for (const c of chunks) fn.call(state, c, 'binary', () => undefined);
  return { out: Buffer.concat(state.parts), inBytes: state.inByteCount, outBytes: state.outByteCount };
}

it('is installed for the pinned nodemailer version and matches the original on every input', async () => {
  const original = await installFastDataStream();
  assert.ok(original, 'the override is installed for this nodemailer version');
  const DataStream = await loadDataStream();
  assert.equal(DataStream!.prototype._transform, fastTransform);
  const bytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x41, 0x20, 0x00), { maxLength: 200 });
  fc.assert(
    fc.property(fc.array(bytes, { maxLength: 8 }), (parts) => {
      const chunks = parts.map((p) => Buffer.from(p));
      assert.deepEqual(run(fastTransform, chunks), run(original, chunks));
    }),
    { numRuns: 5000 },
  );
});

it('stuffs a dot after a bare CR and normalises line ends, as the original does', async () => {
  const out = run(fastTransform, [Buffer.from('.a\r.b\nc\r'), Buffer.from('\n.d')]).out.toString();
  assert.equal(out, '..a\r\n..b\r\nc\r\n..d');
});
