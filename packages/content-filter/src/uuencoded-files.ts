// Files uuencoded in a message's text. Before MIME, a file was sent as a "begin 644 name" line,
// lines of uuencode and "end"; mail programs still show such a block as an attachment (Outlook
// does, and Exchange turns it into one when it stores the message), so a program sent that way
// reaches the user as an attachment the MIME structure never names. The same for a .uue file
// attached (WinRAR and 7-Zip open them): the names of the files in it. Read line by line as
// the body streams in, without copying it: a line is looked at only where "begin" starts it,
// and taken for a file only when the next line is encoded data (uuencode, xxencode, or base64
// after GNU's "begin-base64"). No I/O.
import type { ZipFile, ZipReading } from './zip-directory.js';

/** Longer lines are not begin lines (a name is at most a few hundred bytes): their bytes are not kept. */
const MAX_LINE = 1024;
/** Files noted in one message or one .uue file, at most. */
const MAX_FILES = 1000;
const LF = 0x0a;
const BEGIN = /^begin(-base64)?[ \t]+([0-7]{3,4})[ \t]+(.*?)[ \t]*$/;
const UU_LINE = /^[\x20-\x60]+$/;
const XX_LINE = /^[+\-0-9A-Za-z]+$/;
const B64_LINE = /^[A-Za-z0-9+/]+=*$/;

/** A line as text: CR dropped, and quoted-printable escapes undone (a text part so encoded keeps its begin line, but its '=' become "=3D"). */
function lineText(b: Buffer): string {
  let s = b.toString('latin1');
  if (s.endsWith('\r')) s = s.slice(0, -1);
  if (s.includes('=')) s = s.replace(/=$/, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return s;
}

/** Whether `s` is a line of encoded data of a file: one uuencoded or xxencoded line (its length character agreeing with its length), or base64. */
function isDataLine(s: string, base64: boolean): boolean {
  if (s.length < 2) return false;
  if (base64) return B64_LINE.test(s);
  // uuencode: the first character is 32 + the bytes on the line (45 at most: "M"), then 4 characters per 3 bytes ('`' or ' ' for 0).
  const uuCount = (s.charCodeAt(0) - 32) & 0x3f;
  const needed = 1 + Math.ceil(uuCount / 3) * 4;
  if (uuCount > 0 && uuCount <= 45 && UU_LINE.test(s) && s.length >= needed - 2 && s.length <= needed + 2) return true;
  // xxencode: the same layout over "+-0-9A-Za-z" ("h" for 45 bytes).
  const xxCount = '+-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'.indexOf(s[0]!);
  const xxNeeded = 1 + Math.ceil(xxCount / 3) * 4;
  return xxCount > 0 && xxCount <= 45 && XX_LINE.test(s) && s.length >= xxNeeded - 2 && s.length <= xxNeeded + 2;
}

export class UuencodedFiles {
  /** Files found: the begin line's name (UTF-8 as written, else Latin-1). */
  readonly names: string[] = [];
  /** The start of a line the last write did not end (null: the last write ended a line); `long`: past MAX_LINE, not kept. */
  private partial: Buffer[] | null = null;
  private partialBytes = 0;
  private long = false;
  /** A begin line read, waiting for the line after it. */
  private pending: { name: string; base64: boolean } | null = null;
  /** Whether the next byte starts a line. */
  private atLineStart = true;

  push(chunk: Buffer): void {
    if (this.names.length >= MAX_FILES || chunk.length === 0) return;
    let from = 0;
    if (!this.atLineStart || this.partial) {
      // The end of a line started before.
      const nl = chunk.indexOf(LF);
      const piece = chunk.subarray(0, nl === -1 ? chunk.length : nl);
      if (this.partial && !this.long) {
        if (this.partialBytes + piece.length > MAX_LINE) this.long = true;
        else {
          this.partial.push(Buffer.from(piece));
          this.partialBytes += piece.length;
        }
      }
      if (nl === -1) return;
      if (this.partial && !this.long) this.line(Buffer.concat(this.partial, this.partialBytes));
      else this.pending = null; // the line after a begin line was too long to be encoded data
      this.partial = null;
      this.long = false;
      from = nl + 1;
    }
    const lastNl = chunk.lastIndexOf(LF);
    const end = lastNl >= from ? lastNl + 1 : from; // complete lines: [from, end)
    let p = from;
    while (p < end && this.names.length < MAX_FILES) {
      if (this.pending) {
        // The line after a begin line: read it whatever it starts with.
        const nl = chunk.indexOf(LF, p);
        this.line(chunk.subarray(p, nl));
        p = nl + 1;
        continue;
      }
      const hit = chunk.indexOf('begin', p, 'latin1');
      if (hit === -1 || hit >= end) break;
      const nl = chunk.indexOf(LF, hit);
      if (hit === p || chunk[hit - 1] === LF) this.line(chunk.subarray(hit, nl));
      p = nl + 1;
    }
    // The line the chunk leaves unfinished: kept when it may be a begin line or is the line after one.
    this.atLineStart = end === chunk.length;
    if (!this.atLineStart) {
      const rest = chunk.subarray(end);
      const mayMatter = this.pending !== null || 'begin'.startsWith(rest.subarray(0, 5).toString('latin1'));
      if (mayMatter && rest.length <= MAX_LINE) {
        this.partial = [Buffer.from(rest)];
        this.partialBytes = rest.length;
      } else this.partial = null;
    }
  }

  /** The message ended: a begin line as its very last line names nothing. */
  end(): void {
    if (this.partial && !this.long) this.line(Buffer.concat(this.partial, this.partialBytes));
    this.partial = null;
    this.pending = null;
  }

  private line(b: Buffer): void {
    const s = lineText(b);
    if (this.pending) {
      const { name, base64 } = this.pending;
      this.pending = null;
      if (isDataLine(s, base64)) {
        this.names.push(name);
        return;
      }
    }
    const m = BEGIN.exec(s);
    if (!m || m[3] === '') return;
    const raw = Buffer.from(m[3]!, 'latin1');
    const utf8 = raw.toString('utf8');
    this.pending = { name: utf8.includes('\uFFFD') ? m[3]! : utf8, base64: m[1] !== undefined };
  }
}

/** The files in a .uue (or .uu, .xxe) file: the names of its begin lines followed by encoded data. */
export function uuencodedNames(b: Buffer, budget?: { files: number }): ZipReading {
  const found = new UuencodedFiles();
  found.push(b);
  found.end();
  if (found.names.length === 0) return { ok: false, why: 'no uuencoded file in it (no "begin" line followed by encoded data)' };
  if (budget) {
    if (found.names.length > budget.files) return { ok: false, why: `${found.names.length} files, past what is left of the message's budget of names (${budget.files})` };
    budget.files -= found.names.length;
  }
  const files: ZipFile[] = found.names.map((name) => ({ name, within: [], encrypted: false }));
  return { ok: true, files, unread: found.names.length >= MAX_FILES ? [`more than ${MAX_FILES} files: the rest not read`] : [] };
}
