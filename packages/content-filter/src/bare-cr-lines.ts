// A line that starts with a bare CR ("\r--b", "\rX: 1") is read by mailsplit one way or the
// other depending on where the writes it gets end: "\r--b" is a delimiter when the line ending
// before it came in the same write, and content when a write ended just before it (found by
// the attachment filter's fuzzed test). A sender who controls how the message is cut into TCP
// segments could so hide a part from the filter. So the filter's reading gives every such CR
// the LF of a line ending ("\r\n--b"): an empty line, then the line, as Python's email parser
// and others that take a bare CR for a line ending read it, whatever the writes. Only such
// lines change; a message without them goes through as it is (no copy).
// No I/O.

const LF = 0x0a;
const CR = 0x0d;
const NL_CR = Buffer.from('\n\r');

export class BareCrLines {
  /** The last write ended with LF (a line starts here), or with a line-starting CR (the next byte decides). */
  private tail: 'line-start' | 'lf-cr' | 'other' = 'line-start';

  /** The write as the reader gets it. */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const inserts: number[] = [];
    let pending = false;
    // A line starting at `p` with CR: each CR in a run there not followed by LF ends a line.
    const lineAt = (p: number) => {
      for (; p < chunk.length && chunk[p] === CR; p++) {
        if (p + 1 >= chunk.length) {
          pending = true; // its next byte is in the next write
          return;
        }
        if (chunk[p + 1] === LF) return;
        inserts.push(p + 1);
      }
    };
    if (this.tail === 'lf-cr') {
      // The last write ended with a line-starting CR.
      if (chunk[0] !== LF) {
        inserts.push(0);
        lineAt(0);
      }
    } else if (this.tail === 'line-start') lineAt(0);
    for (let at = chunk.indexOf(NL_CR); at !== -1; at = chunk.indexOf(NL_CR, at + 1)) lineAt(at + 1);
    this.tail = pending ? 'lf-cr' : chunk[chunk.length - 1] === LF ? 'line-start' : 'other';
    if (inserts.length === 0) return chunk;
    const parts: Buffer[] = [];
    let from = 0;
    for (const at of inserts) {
      parts.push(chunk.subarray(from, at), LF_BUF);
      from = at;
    }
    parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }
}

const LF_BUF = Buffer.from([LF]);
