// nodemailer's DataStream (dot-stuffing and CRLF normalisation of outbound DATA) looks at every
// byte in a JavaScript loop: a quarter of a worker's CPU at 100 KB messages. Only bytes at the
// start of the chunk, right after a CR, and at or right after an LF can need an insert, so this
// version finds those with String#indexOf on a latin1 copy of the chunk and applies the
// original rules to them alone. The output is byte-identical (property-tested against the
// original). It is set on the DataStream instances of mailgw's own connections only
// (library-overrides.ts), which also checks the nodemailer version it was written for.

import { SEARCH_WINDOW, searchPieces } from '@mailgw/mail';

const INSERT_LF = Buffer.from('\n');
const INSERT_LF_DOT = Buffer.from('\n.');
const INSERT_CR = Buffer.from('\r');
const INSERT_DOT = Buffer.from('.');

/** The fields of nodemailer's DataStream that its _transform uses. */
interface DataStreamLike {
  inByteCount: number;
  outByteCount: number;
  lastByte: number | false;
  push(chunk: Buffer): boolean;
}

export type TransformFn = (this: DataStreamLike, chunk: Buffer | string, encoding: BufferEncoding, done: () => void) => void;

export const fastTransform: TransformFn = function (chunk, encoding, done) {
  if (!chunk || !chunk.length) return done();
  const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
  // In pieces when too large for one latin1 copy (octet-search.ts); lastByte carries over.
  if (buf.length > SEARCH_WINDOW) {
    for (const piece of searchPieces(buf)) fastTransform.call(this, piece, encoding, () => undefined);
    return done();
  }
  this.inByteCount += buf.length;
  const len = buf.length;
  const chunks: Buffer[] = [];
  let chunklen = 0;
  let lastPos = 0;
  let visited = -1;
  const visit = (i: number) => {
    if (i <= visited || i >= len) return;
    visited = i;
    const byte = buf[i]!;
    const prev = i ? buf[i - 1]! : this.lastByte;
    let insert: Buffer | null = null;
    if (prev === 0x0d && byte !== 0x0a) insert = byte === 0x2e ? INSERT_LF_DOT : INSERT_LF;
    else if (byte === 0x0a && prev !== 0x0d) insert = INSERT_CR;
    else if (byte === 0x2e && (prev === 0x0a || prev === false)) insert = INSERT_DOT;
    if (!insert) return;
    if (i > lastPos) {
      const piece = buf.subarray(lastPos, i);
      chunks.push(piece);
      chunklen += piece.length;
    }
    chunks.push(insert);
    chunklen += insert.length;
    lastPos = i;
  };
  visit(0);
  // The searches run on a latin1 copy of the chunk (octet-search.ts says why).
  const text = buf.toString('latin1');
  let cr = text.indexOf('\r');
  let lf = text.indexOf('\n');
  // Most lines end in CRLF and start with no dot: those positions are passed over with a
  // look at one neighbour; visit() (which applies the rules) is called only where the
  // neighbour says an insert may be due. A CR at the end of the chunk is decided by the next one.
  while (cr !== -1 || lf !== -1) {
    if (lf === -1 || (cr !== -1 && cr < lf)) {
      if (cr + 1 < len && text.charCodeAt(cr + 1) !== 0x0a) visit(cr + 1);
      cr = text.indexOf('\r', cr + 1);
    } else {
      if ((lf > 0 ? text.charCodeAt(lf - 1) : this.lastByte) !== 0x0d) visit(lf);
      if (lf + 1 < len && text.charCodeAt(lf + 1) === 0x2e) visit(lf + 1);
      lf = text.indexOf('\n', lf + 1);
    }
  }
  if (chunks.length) {
    if (lastPos < len) {
      const piece = buf.subarray(lastPos);
      chunks.push(piece);
      chunklen += piece.length;
    }
    this.outByteCount += chunklen;
    this.push(Buffer.concat(chunks, chunklen));
  } else {
    this.outByteCount += len;
    this.push(buf);
  }
  this.lastByte = buf[len - 1]!;
  done();
};

/** nodemailer's DataStream class, from the same (ESM) copy SMTPConnection uses (for tests and the check). */
export async function loadDataStream(): Promise<{ new (): { _transform: TransformFn }; prototype: { _transform: TransformFn } }> {
  const entry = import.meta.resolve('nodemailer/lib/smtp-connection');
  const mod = (await import(new URL('./data-stream.js', entry).href)) as { default: { new (): { _transform: TransformFn }; prototype: { _transform: TransformFn } } };
  return mod.default;
}
