// The fast DataStream transform gives byte-identical output to nodemailer's own, for any bytes
// split into any chunks (bare CR/LF, dots at line starts, CR/LF across chunk boundaries).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { LibraryVersionError, checkPinnedVersion } from '@mailgw/queue';
import { SEARCH_WINDOW } from '@mailgw/mail';
import { fastTransform, loadDataStream } from '../src/fast-data-stream.js';
import { NODEMAILER_VERSION, useFastDataStream } from '../src/library-overrides.js';

type Fn = typeof fastTransform;

function run(fn: Fn, chunks: Buffer[]): { out: Buffer; inBytes: number; outBytes: number } {
  const state = { inByteCount: 0, outByteCount: 0, lastByte: false as number | false, parts: [] as Buffer[], push(b: Buffer) { this.parts.push(Buffer.from(b)); return true; } };
  for (const c of chunks) fn.call(state, c, 'binary', () => undefined);
  return { out: Buffer.concat(state.parts), inBytes: state.inByteCount, outBytes: state.outByteCount };
}

it('matches nodemailer\'s own DataStream transform on every input', async () => {
  const original = (await loadDataStream()).prototype._transform;
  assert.notEqual(original, fastTransform);
  // 8-bit octets too (0xc3 0xa9 is é in UTF-8): the searches run on a latin1 copy, one character per octet.
  const bytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x41, 0x20, 0x00, 0xc3, 0xa9, 0xff), { maxLength: 200 });
  fc.assert(
    fc.property(fc.array(bytes, { maxLength: 8 }), (parts) => {
      const chunks = parts.map((p) => Buffer.from(p));
      assert.deepEqual(run(fastTransform, chunks), run(original, chunks));
    }),
    { numRuns: 5000 },
  );
});

it('a chunk larger than the search window (a whole stored body) gives the original\'s output', async () => {
  const original = (await loadDataStream()).prototype._transform;
  const body = Buffer.alloc(SEARCH_WINDOW + 4096, 0x61);
  // Line ends and dots on both sides of the window's edge, a bare CR right at it.
  for (const [at, bytes] of [[100, '\r\n.'], [SEARCH_WINDOW - 3, '\r\n.'], [SEARCH_WINDOW - 1, '\r'], [SEARCH_WINDOW, '.x\n.'], [SEARCH_WINDOW + 50, '\n\r']] as const) body.write(bytes, at, 'latin1');
  const ours = run(fastTransform, [body]);
  const theirs = run(original, [body]);
  // Compared without assert's diff (of 16 MB).
  assert.equal(ours.inBytes, theirs.inBytes);
  assert.equal(ours.outBytes, theirs.outBytes);
  assert.ok(ours.out.equals(theirs.out), 'the output differs from nodemailer\'s');
});

it('stuffs a dot after a bare CR and normalises line ends, as the original does', async () => {
  const out = run(fastTransform, [Buffer.from('.a\r.b\nc\r'), Buffer.from('\n.d')]).out.toString();
  assert.equal(out, '..a\r\n..b\r\nc\r\n..d');
});

/** The DataStream a connection creates for DATA, on a stand-in socket. */
function sendStream(conn: SMTPConnection): { _transform: unknown } {
  const c = conn as unknown as { _socket: unknown; _envelope: unknown; _createSendStream(cb: () => void): { _transform: unknown } };
  c._socket = new PassThrough();
  c._envelope = { accepted: [] };
  return c._createSendStream(() => undefined);
}

it('is set per connection: a plain SMTPConnection and the DataStream class keep nodemailer\'s transform', async () => {
  const DataStream = await loadDataStream();
  const original = DataStream.prototype._transform;
  const ours = new SMTPConnection({ logger: false });
  useFastDataStream(ours);
  const plain = new SMTPConnection({ logger: false });
  assert.equal(sendStream(ours)._transform, fastTransform);
  assert.equal(sendStream(plain)._transform, original);
  assert.equal(DataStream.prototype._transform, original, 'the class is not patched');
  assert.equal(new DataStream()._transform, original);
  assert.equal(Object.hasOwn(plain, '_createSendStream'), false);
});

/**
 * What a connection's send stream writes to its socket for `chunks`, write by write: a socket
 * that, like net.Socket, writes what was corked in one writev.
 */
async function socketWrites(conn: SMTPConnection, chunks: Buffer[]): Promise<Buffer[]> {
  const c = conn as unknown as { _socket: Writable; _envelope: unknown; _createSendStream(cb: () => void): NodeJS.WritableStream };
  const writes: Buffer[] = [];
  const socket = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(Buffer.from(chunk));
      cb();
    },
    writev(corked, cb) {
      writes.push(Buffer.concat(corked.map((w) => w.chunk as Buffer)));
      cb();
    },
  });
  c._socket = socket;
  c._envelope = { accepted: [] };
  const stream = c._createSendStream(() => undefined);
  const ended = new Promise((resolve) => (stream as unknown as NodeJS.ReadableStream).once('end', resolve));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  await new Promise((r) => setImmediate(r));
  return writes;
}

it('a connection\'s DATA stream writes the bytes nodemailer writes, the last chunk together with the final dot', async () => {
  const bytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x41, 0x20, 0x00), { minLength: 1, maxLength: 120 });
  await fc.assert(
    fc.asyncProperty(fc.array(bytes, { minLength: 1, maxLength: 6 }), async (parts) => {
      const chunks = parts.map((p) => Buffer.from(p));
      const ours = new SMTPConnection({ logger: false });
      useFastDataStream(ours);
      const mine = await socketWrites(ours, chunks);
      const theirs = await socketWrites(new SMTPConnection({ logger: false }), chunks);
      assert.deepEqual(Buffer.concat(mine), Buffer.concat(theirs));
      assert.match(Buffer.concat(mine).toString('latin1'), /\r\n\.\r\n$/);
      assert.match(mine[mine.length - 1]!.toString('latin1'), /\n\.\r\n$/);
      assert.ok(mine[mine.length - 1]!.length > 3, 'the last body bytes leave with the final dot');
      assert.equal(mine.length, theirs.length - 1, 'one write fewer');
    }),
    { numRuns: 1000 },
  );
});

it('the version check refuses any other nodemailer, and package.json pins the same version', () => {
  assert.throws(
    () => checkPinnedVersion('nodemailer', NODEMAILER_VERSION, '10.7.0', 'packages/worker/src/library-overrides.ts'),
    (e: unknown) => e instanceof LibraryVersionError && /^nodemailer 10\.7\.0 is installed, but mailgw overrides internals of nodemailer 10\.6\.1 exactly \(packages\/worker\/src\/library-overrides\.ts\)/.test(e.message),
  );
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(pkg.dependencies.nodemailer, NODEMAILER_VERSION);
});
