// smtp-server's SMTPStream._feedDataStream finds the end of DATA ("<CRLF>.<CRLF>") and the
// dot-stuffing escapes by looking at every byte of the message in a JavaScript loop: a tenth
// of a listener's CPU at 100 KB messages. This is the same method (smtp-server 3.21.6,
// dist/esm/smtp-stream.js, MIT licence) with that loop replaced by Buffer#indexOf for
// "<LF>.", the only place where the loop can act; everything else is unchanged. It is set
// on the parsers of mailgw's own connections only (GatewayConnection._createParser), and a
// property test feeds random dot-heavy messages in random chunks through it and through the
// original and requires the same bytes, the same end and the same bytes left over.
import type { PassThrough } from 'node:stream';
import { drained } from '@mailgw/mail';

/** The SMTPStream state the method reads and writes (see library-overrides.ts for the version). */
export interface DataModeParser {
  _dataStream: (PassThrough & { byteLength?: number; sizeExceeded?: boolean }) | null;
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _countDataBytes(len: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, done: (err?: Error | null) => void): void;
  _feedDataStream(chunk: Buffer, done: (err?: Error | null) => void): void;
}

const END_SEQUENCE = Buffer.from('\r\n.\r\n');
const DOT_TERMINATOR_AT_START = Buffer.from('.\r\n');
const LF_DOT = Buffer.from('\n.');

export function feedDataStream(this: DataModeParser, chunk: Buffer, done: (err?: Error | null) => void): void {
  const dataStream = this._dataStream!;
  if (this._lastBytes && this._lastBytes.length) {
    chunk = Buffer.concat([this._lastBytes, chunk], this._lastBytes.length + chunk.length);
    this._lastBytes = false;
  }
  let len = chunk.length;
  // A leading terminator or escape dot: only at the very start of the payload (see the original).
  if (this._atDataStart && len >= 3 && Buffer.compare(chunk.subarray(0, 3), DOT_TERMINATOR_AT_START) === 0) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && len >= 2 && chunk[0] === 0x2e && chunk[1] === 0x2e) {
    chunk = chunk.subarray(1);
    len--;
    this._atDataStart = false;
  }
  // The original visits i = 2 … len-3 and acts where chunk[i-1..i] is "<LF>.": the same
  // positions, found natively.
  for (let lf = chunk.indexOf(LF_DOT, 1); lf !== -1 && lf + 1 < len - 2; lf = chunk.indexOf(LF_DOT, lf + 1)) {
    const i = lf + 1;
    if (Buffer.compare(chunk.subarray(i - 2, i + 3), END_SEQUENCE) === 0) {
      const buf = chunk.subarray(0, i);
      this._countDataBytes(buf.length);
      this._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === 0x2e) {
      const buf = chunk.subarray(0, i);
      this._lastBytes = false;
      this._countDataBytes(buf.length);
      if (dataStream.writable) dataStream.write(buf);
      const rest = chunk.subarray(i + 1);
      setImmediate(() => this._feedDataStream(rest, done));
      return;
    }
  }
  this._lastBytes = chunk.length < 4 ? chunk : chunk.subarray(chunk.length - 4);
  if (this._lastBytes.length < chunk.length) {
    const buf = chunk.subarray(0, chunk.length - this._lastBytes.length);
    this._countDataBytes(buf.length);
    if (dataStream.writable) {
      const handled = dataStream.write(buf);
      if (!handled && !dataStream.destroyed) {
        // a stream that the application destroys never drains, it only closes
        void drained(dataStream).then(() => done());
      } else {
        done();
      }
    } else {
      done();
    }
  } else {
    done();
  }
}
