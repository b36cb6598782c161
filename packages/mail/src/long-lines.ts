// Lines over 998 octets. RFC 5322 2.1.1 and RFC 5321 4.5.3.1.6 cap a line at 998 octets before
// its CRLF; smtp-server (and mailgw's listener) accept longer ones, and badly written HTML mail
// has them. Passed on as they are, some next hops refuse the message ("line too long") or cut
// the line where they please. So a copy for an SMTP or LMTP next hop is wrapped first, as
// Postfix's smtp client does (smtp_line_length_limit), but gentler: a long line is broken before
// its last space or tab within the limit (in a header that is RFC 5322 folding, undone exactly
// by unfolding; in HTML whitespace it renders the same), and only where a stretch of 998 octets
// has no whitespace is CRLF SP inserted (Postfix's way: the leading space keeps the piece from
// reading as a header, a MIME boundary or an SMTP end-of-data dot). A hard break never splits a
// UTF-8 sequence. Pure.

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const CRLF = Buffer.from('\r\n');
const CRLF_SP = Buffer.from('\r\n ');

/** The longest line RFC 5322 allows, in octets, its CRLF not counted. */
export const MAX_LINE_OCTETS = 998;

/**
 * The first line longer than `limit` octets (its line end not counted): its start and its end
 * (the index of the CR of its CRLF, of a bare LF, or the body's length), or null. Jumps a
 * window at a time (one lastIndexOf per line or per `limit` octets): for mail of short lines
 * that is a call per ~1,000 octets, not one per line.
 */
export function findLongLine(body: Buffer, from = 0, limit = MAX_LINE_OCTETS): { start: number; end: number } | null {
  const n = body.length;
  let s = from;
  while (s < n) {
    // A line of exactly `limit` octets has its LF at s + limit + 1.
    const windowEnd = Math.min(s + limit + 1, n - 1);
    const lf = body.lastIndexOf(LF, windowEnd);
    if (lf < s) {
      // No line end in the window: the line runs past it, or is the unterminated last line.
      if (n - s <= limit) return null;
      const next = body.indexOf(LF, s);
      return { start: s, end: next === -1 ? n : next > s && body[next - 1] === CR ? next - 1 : next };
    }
    const end = lf > s && body[lf - 1] === CR ? lf - 1 : lf;
    // The line ending at `lf` starts at s or later, so it fits, except a bare LF right at the
    // window's end with no other line end before it.
    if (end - s > limit && body.lastIndexOf(LF, lf - 1) < s) return { start: s, end };
    s = lf + 1;
  }
  return null;
}

export interface WrappedLines {
  /** The body with every line at most `limit` octets (the same Buffer when nothing was long). */
  readonly body: Buffer;
  /** How many lines were over the limit. */
  readonly lines: number;
  /** The longest of them, in octets (0 when none). */
  readonly longest: number;
}

/** `body` with each line over `limit` octets broken into lines of at most `limit` (see the top of the file). */
export function wrapLongLines(body: Buffer, limit = MAX_LINE_OCTETS): WrappedLines {
  if (limit < 2) throw new RangeError(`line limit ${limit}: at least 2 octets`);
  let long = findLongLine(body, 0, limit);
  if (!long) return { body, lines: 0, longest: 0 };
  const out: Buffer[] = [];
  let copied = 0;
  let lines = 0;
  let longest = 0;
  while (long) {
    const { start, end } = long;
    lines++;
    longest = Math.max(longest, end - start);
    let pos = start;
    // Octets before `pos` on the current output line that are not in `body`: the inserted SP.
    let extra = 0;
    while (extra + end - pos > limit) {
      const last = pos + limit - extra; // the last break point keeping this output line within the limit
      const ws = Math.max(body.lastIndexOf(SP, last), body.lastIndexOf(HTAB, last));
      // Not a break that leaves a line of whitespace alone (in a header that would end it).
      let text = pos;
      while (text < last && (body[text] === SP || body[text] === HTAB)) text++;
      let cut: number;
      let insert: Buffer;
      if (ws > text) {
        cut = ws; // the whitespace begins the next line
        insert = CRLF;
        extra = 0;
      } else {
        cut = last;
        // Back to the start of a UTF-8 sequence (continuation octets are 10xxxxxx).
        while (cut > pos + 1 && (body[cut]! & 0xc0) === 0x80) cut--;
        insert = CRLF_SP;
        extra = 1;
      }
      out.push(body.subarray(copied, cut), insert);
      copied = cut;
      pos = cut;
    }
    long = findLongLine(body, end, limit);
  }
  out.push(body.subarray(copied));
  return { body: Buffer.concat(out), lines, longest };
}
