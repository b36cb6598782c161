// What the attachment filter's MIME reader may leave unread: the body lines of leaf parts.
// mailsplit's Splitter handles every line of a message in JavaScript, and nearly all of a
// message with attachments is the base64 of its leaf parts, which the filter never looks at
// (0.57 → 0.07 ms per 100 KB message). What the splitter is given instead must leave it with
// the same structure (the same nodes, in the same order, with the same headers) as the whole
// message would: the fuzzed test (test/leaf-body-skipper.test.ts) reads random, malformed
// messages in random writes both ways and finds them equal.
//
// How (mailsplit 5.4, lib/message-splitter.js): the splitter splits lines at LF; it reads a
// line as a delimiter only if it starts with "--" after at most one leading CR or CRLF (a line
// ending it carried over); in a part's body (its BODY state) any other line is content, and
// all the splitter does with one is carry its line ending (CR and LF) along, into the next
// lines and across write boundaries; it reads header lines (HEAD) at the start, after a
// delimiter, and after the header of an inline message/rfc822. So in a leaf body a run of
// complete lines that cannot be delimiters (none starts with "-", or with a CR but for an
// empty line's) goes on as the line endings of its first two and last two lines only (the
// carried endings reach two lines, measured with the fuzzer); a line that may be a delimiter,
// and a line spanning a write boundary, go on whole; and the writes end where they ended. A
// body is a leaf's when the header block before it ended and mailsplit's own MimeNode, reading
// the block from every line it may have started at (after the "--" line reading began at, or
// after any "--" line in it), gives no message/* type. A message type, a line starting with CR
// (not an empty line), or a block that cannot be placed (too many "--" lines, over MAX_BLOCK):
// from there on everything goes on whole. So message parts keep their bodies (inline ones are
// parsed by the splitter, attached ones by the filter's own nested reader), and so do zip
// archives when the attachment filter opens them (`archives`).
// No I/O: bytes in, the bytes to hand on out, one write per write received.
import { MimeNode, type SplitterOptions } from '@zone-eu/mailsplit';
import { archivePartKind } from './archive-names.js';

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
const NL_DASH = Buffer.from('\n-');
const NL_CR = Buffer.from('\n\r');
/** A header block larger than this is not placed: everything after it goes to the splitter. */
const MAX_BLOCK = 64 * 1024;
/** Places a header block may start at (after each "--" line in it), at most. */
const MAX_STARTS = 8;

/** collect: reading a header block; drop: in a leaf body; pass: everything goes through, to the end. */
type Mode = 'collect' | 'drop' | 'pass';

/**
 * Whether mailsplit's own parse of a header block gives a part whose body must be read (or
 * cannot be trusted to say): a message type, or with `archives` an archive the filter opens (archivePartKind).
 */
function headerKeepsBody(lines: readonly Buffer[], options: SplitterOptions, archives: boolean): boolean {
  try {
    const node = new MimeNode(false, options);
    for (const l of lines) node.addHeaderChunk(l);
    node.parseHeaders();
    if (typeof node.contentType === 'string' && node.contentType.startsWith('message/')) return true;
    return archives && archivePartKind(node.contentType, node.filename) !== null;
  } catch {
    return true;
  }
}

export class LeafBodySkipper {
  private mode: Mode = 'collect';
  /** collect: the header block's complete lines so far (copies: the input chunks are not pinned). */
  private block: Buffer[] = [];
  private blockBytes = 0;
  /** collect: where the splitter's header block may start: at 0 (after the "--" line collecting began at), or after any "--" line in it. */
  private starts: number[] = [0];
  /** collect: the line being read, in pieces. */
  private line: Buffer[] = [];
  private lineBytes = 0;
  /** drop: what the current line is; 'undecided' until its first two bytes are in ('one': a write ended after its first). */
  private kind: 'undecided' | 'one' | 'delimiter' | 'whole' | 'emptied' = 'undecided';
  private firstByte = 0;
  /** Bytes of leaf bodies the splitter was spared. */
  emptied = 0;

  /**
   * `options`: the splitter's own options, so that a block parses as the splitter parses it;
   * `archives`: zip archives' bodies are read too (the attachment filter opens them).
   */
  constructor(private readonly options: SplitterOptions, private readonly archives = false) {}

  /** What the splitter must be given for this write: one buffer (a view into `chunk` when nothing was emptied), or none. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.mode === 'pass') {
        out.push(chunk.subarray(pos));
        break;
      }
      if (this.mode === 'drop' && this.kind === 'undecided') {
        const next = this.skipLines(chunk, pos, out);
        if (next > pos) {
          pos = next;
          continue;
        }
      }
      const nl = chunk.indexOf(LF, pos);
      const end = nl === -1 ? chunk.length : nl + 1;
      const piece = chunk.subarray(pos, end);
      pos = end;
      if (this.mode === 'collect') {
        out.push(piece);
        this.line.push(piece);
        this.lineBytes += piece.length;
        if (nl !== -1) this.collected(Buffer.concat(this.line));
        else if (this.blockBytes + this.lineBytes > MAX_BLOCK) this.passAll();
        continue;
      }
      this.bodyLine(piece, nl !== -1, out);
    }
    if (out.length === 0) return [];
    // Adjacent views into the chunk are one view; otherwise one copy.
    return [out.length === 1 ? out[0]! : joinViews(chunk, out)];
  }

  /**
   * The fast way through a leaf body: the complete lines from `pos` up to the next one that
   * starts with "-" or with a CR (not an empty line's) go on as the last one's line ending only.
   * Where the next such line starts (or `pos`, when the line at `pos` is one).
   */
  private skipLines(chunk: Buffer, pos: number, out: Buffer[]): number {
    const b = chunk[pos];
    if (b === DASH || (b === CR && chunk[pos + 1] !== LF)) return pos;
    const dash = chunk.indexOf(NL_DASH, pos);
    let cr = chunk.indexOf(NL_CR, pos);
    // An empty line ("\r\n") starts with CR too: not a stop.
    while (cr !== -1 && (dash === -1 || cr < dash) && chunk[cr + 2] === LF) cr = chunk.indexOf(NL_CR, cr + 1);
    let end = dash === -1 ? cr : cr === -1 ? dash : Math.min(dash, cr);
    // No stop in this write: up to its last complete line (the rest goes on line by line).
    if (end === -1) end = chunk.lastIndexOf(LF);
    if (end < pos) return pos;
    // The run goes on as the line endings of its first two and its last two lines: the splitter
    // carries line endings across a write boundary into the lines that follow (two of them,
    // measured), and the ending of the line before a delimiter is part of the delimiter.
    const lfs = [chunk.indexOf(LF, pos)];
    if (lfs[0]! < end) {
      const second = chunk.indexOf(LF, lfs[0]! + 1);
      lfs.push(second);
      if (second < end) {
        const beforeLast = chunk.lastIndexOf(LF, end - 1);
        if (beforeLast > second) lfs.push(beforeLast);
        lfs.push(end);
      }
    }
    let kept = 0;
    for (const lf of lfs) {
      let j = lf;
      while (j > pos && chunk[j - 1] === CR) j--;
      out.push(chunk.subarray(j, lf + 1));
      kept += lf + 1 - j;
    }
    this.emptied += end + 1 - pos - kept;
    return end + 1;
  }

  /**
   * A piece of a line in a leaf body: only its line ending goes on when the whole line is in
   * this write and cannot be a delimiter; otherwise it goes on whole.
   */
  private bodyLine(piece: Buffer, complete: boolean, out: Buffer[]): void {
    if (this.kind === 'undecided' || this.kind === 'one') {
      // The first two bytes of the line decide; a write may have ended after its first.
      const first = this.kind === 'one' ? this.firstByte : piece[0]!;
      const second = this.kind === 'one' ? piece[0] : piece[1];
      if (second === undefined && !complete) {
        this.kind = 'one';
        this.firstByte = first;
        out.push(piece);
        return;
      }
      if (first === CR && second !== LF) {
        // A line starting with CR (not an empty line): mailsplit may read it as a delimiter
        // after a line ending it carried over. It and everything after it go on whole.
        out.push(piece);
        this.mode = 'pass';
        return;
      }
      // A line that began in an earlier write, or goes on in the next, goes on whole: what the
      // splitter keeps pending at a write's end is then what it would have kept.
      this.kind = first === DASH && second === DASH ? 'delimiter' : this.kind === 'one' || !complete ? 'whole' : 'emptied';
    }
    if (this.kind === 'emptied') {
      // Only the line ending (the CR and LF bytes at its end) goes on.
      let e = piece.length;
      while (e > 0 && (piece[e - 1] === LF || piece[e - 1] === CR)) e--;
      out.push(piece.subarray(e));
      this.emptied += e;
    } else out.push(piece);
    if (!complete) return;
    if (this.kind === 'delimiter') {
      // A possible delimiter: a header block may follow.
      this.mode = 'collect';
      this.resetBlock();
    }
    this.kind = 'undecided';
  }

  /** A complete line of a header block. */
  private collected(line: Buffer): void {
    this.line = [];
    this.lineBytes = 0;
    const empty = (line.length === 1 && line[0] === LF) || (line.length === 2 && line[0] === CR && line[1] === LF);
    if (empty) return this.blockEnds(line);
    if (line[0] === CR) return this.passAll();
    this.block.push(line);
    this.blockBytes += line.length;
    if (this.blockBytes > MAX_BLOCK) return this.passAll();
    // A "--" line may be a delimiter (the splitter's header block starts after it) or a line
    // of the block (a signature's "-- ", a header line): both are read at the block's end.
    if (line[0] === DASH && line[1] === DASH) {
      this.starts.push(this.block.length);
      if (this.starts.length > MAX_STARTS) this.passAll();
    }
  }

  /** The header block ended with `empty`: the body that follows is emptied unless any reading of the block is a message. */
  private blockEnds(empty: Buffer): void {
    for (const start of this.starts) {
      if (headerKeepsBody([...this.block.slice(start), empty], this.options, this.archives)) return this.passAll();
    }
    this.resetBlock();
    this.mode = 'drop';
    this.kind = 'undecided';
  }

  private resetBlock(): void {
    this.block = [];
    this.blockBytes = 0;
    this.starts = [0];
    this.line = [];
    this.lineBytes = 0;
  }

  private passAll(): void {
    this.mode = 'pass';
    this.resetBlock();
  }
}

/** Views into `chunk`, in order, as one buffer: a view when they are adjacent, else a copy. */
function joinViews(chunk: Buffer, views: readonly Buffer[]): Buffer {
  let adjacent = true;
  for (let i = 1; i < views.length && adjacent; i++) adjacent = views[i]!.byteOffset === views[i - 1]!.byteOffset + views[i - 1]!.length;
  if (!adjacent) return Buffer.concat(views);
  const first = views[0]!;
  const last = views[views.length - 1]!;
  return chunk.subarray(first.byteOffset - chunk.byteOffset, last.byteOffset - chunk.byteOffset + last.length);
}
