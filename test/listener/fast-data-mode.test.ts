// The DATA-mode override (packages/listener/src/fast-data-mode.ts) against smtp-server's own
// _feedDataStream: random messages full of dots, CRs and LFs, cut into random chunks, must
// give the same message bytes, the same size count and the same commands after the end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { feedDataStream, type DataModeParser } from '../../packages/listener/src/fast-data-mode.js';

interface Outcome {
  body: string;
  dataBytes: number;
  commands: string[];
}

/** Feeds `chunks` to a parser in DATA mode; resolves with what it emitted. */
function run(chunks: Buffer[], fast: boolean): Promise<Outcome> {
  const parser = new SMTPStream() as unknown as SMTPStream & DataModeParser & { oncommand(c: Buffer, cb?: () => void): void; dataBytes: number };
  if (fast) parser._feedDataStream = feedDataStream;
  const commands: string[] = [];
  parser.oncommand = (c: Buffer, cb?: () => void) => {
    commands.push(c.toString('latin1'));
    cb?.();
  };
  const data = parser.startDataMode(Infinity);
  const parts: Buffer[] = [];
  data.on('data', (b: Buffer) => parts.push(b));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the end of DATA was not found (${fast ? 'override' : 'original'})`)), 2000);
    data.on('end', () => {
      clearTimeout(timer);
      parser.continue();
      // Let the commands pipelined after the message come through, then end the input.
      setImmediate(() => {
        parser.end(() => resolve({ body: Buffer.concat(parts).toString('latin1'), dataBytes: parser.dataBytes, commands }));
      });
    });
    (async () => {
      for (const c of chunks) await new Promise<void>((r) => parser.write(c, () => r()));
    })();
  });
}

const line = fc.oneof(
  fc.constantFrom('', '.', '..', '...', '. ', '.x', 'x.', '\r', '\n', '\r.', '.\r', 'a\nb', 'a\r.b'),
  fc.string({ unit: fc.constantFrom('a', '.', ' ', '\r', '\n', 'é'), maxLength: 12 }),
);

test('same message, size and following commands as smtp-server for any chunking', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(line, { maxLength: 30 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), async (lines, cuts) => {
      // As a client sends it: each line dot-stuffed, CRLF-terminated, then the terminator
      // and a pipelined command.
      const wire = Buffer.from(lines.map((l) => (l.startsWith('.') ? `.${l}` : l) + '\r\n').join('') + '.\r\nQUIT\r\n', 'latin1');
      const chunks: Buffer[] = [];
      for (let at = 0, i = 0; at < wire.length; i++) {
        const n = cuts[i % cuts.length]!;
        chunks.push(wire.subarray(at, at + n));
        at += n;
      }
      const [slow, fast] = await Promise.all([run(chunks, false), run(chunks, true)]);
      assert.deepEqual(fast, slow);
      // (A line holding CR LF "." CR LF ends the message early for both: the client's fault.)
      assert.equal(fast.commands.at(-1), 'QUIT');
    }),
    { numRuns: 400 },
  );
});

test('a 100 KB message in one chunk and in 1-byte steps at its end', async () => {
  const body = Buffer.from(Array.from({ length: 1400 }, (_, i) => (i % 50 === 0 ? '..dot line' : 'x'.repeat(70))).join('\r\n') + '\r\n', 'latin1');
  const wire = Buffer.concat([body, Buffer.from('.\r\n')]);
  for (const chunks of [[wire], [wire.subarray(0, wire.length - 5), ...[...wire.subarray(wire.length - 5)].map((b) => Buffer.from([b]))]]) {
    const [slow, fast] = await Promise.all([run(chunks, false), run(chunks, true)]);
    assert.deepEqual(fast, slow);
    assert.equal(fast.dataBytes, body.length - 28, 'one escape dot removed per dot line');
  }
});
