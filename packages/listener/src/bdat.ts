// CHUNKING (RFC 3030): after "BDAT <size> [LAST]" the next <size> octets are message data,
// not commands, with no dot-stuffing and no end marker. smtp-server has no BDAT; this reads
// one chunk through the connection's own parser by switching it into its data mode with a
// byte-counting feed (an own property of that parser, like fast-data-mode.ts), then restores
// the DATA feed and hands what followed the chunk back to the command reader.
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { feedDataStream, type DataModeParser } from './fast-data-mode.js';

type Done = (err?: Error | null) => void;

/** What a chunk reader uses of the parser (smtp-server 3.21.6, see library-overrides.ts). */
interface ChunkParser {
  _dataMode: boolean;
  _remainder: string;
  _feedDataStream(chunk: Buffer, done: Done): void;
  _write(chunk: Buffer, encoding: 'buffer', next: Done): void;
}

/**
 * Reads the next `size` octets from `parser` into `sink` (which may return a promise to apply
 * backpressure), then calls `finished(resume)`: the caller replies and calls resume() to go on
 * reading commands. `started` is the command handler's continuation: it returns control to the
 * parser's line loop, which then feeds the bytes after the BDAT line to the chunk reader.
 */
export function readChunk(parserStream: SMTPStream, size: number, sink: (part: Buffer) => void | Promise<void>, finished: (resume: () => void) => void, started: () => void): void {
  const parser = parserStream as unknown as ChunkParser;
  if (size === 0) {
    finished(() => started());
    return;
  }
  let remaining = size;
  parser._dataMode = true;
  parser._feedDataStream = (chunk: Buffer, done: Done) => {
    const take = Math.min(remaining, chunk.length);
    remaining -= take;
    const rest = chunk.subarray(take);
    const afterSink = () => {
      if (remaining > 0) return done();
      // The chunk is complete: back to commands, with the DATA feed restored.
      parser._dataMode = false;
      parser._remainder = '';
      (parser as unknown as DataModeParser)._feedDataStream = feedDataStream;
      finished(() => (rest.length > 0 ? parser._write(rest, 'buffer', done) : done()));
    };
    const pending = take > 0 ? sink(chunk.subarray(0, take)) : undefined;
    if (pending) void pending.then(afterSink, (e: unknown) => done(e instanceof Error ? e : new Error(String(e))));
    else afterSink();
  };
  started();
}
