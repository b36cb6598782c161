// Captured stdout/stderr for running a CLI command function in-process.
import { Writable } from 'node:stream';

export interface CapturedIO {
  readonly stdout: Writable;
  readonly stderr: Writable;
  out(): string;
  outBytes(): Buffer;
  err(): string;
}

function sink(chunks: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      cb();
    },
  });
}

export function captureIO(): CapturedIO {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  return {
    stdout: sink(out),
    stderr: sink(err),
    out: () => Buffer.concat(out).toString(),
    outBytes: () => Buffer.concat(out),
    err: () => Buffer.concat(err).toString(),
  };
}
