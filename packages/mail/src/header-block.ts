// The message header, found and parsed without touching the body: bytes are collected only
// until the header ends (an empty line, or a line that is no header field: then the body
// starts there), so memory is bounded by the header size whatever the message size. The one
// header parser of mailgw: the listener rewrites headers with it while DATA streams in, the
// worker and DSNs read fields of stored messages with it.
// Input has CRLF line endings only (the listener normalises or refuses anything else, so
// every stored message qualifies).
const CR = 0x0d;
const LF = 0x0a;

export interface HeaderField {
  /** Field name, lower case ('' for a stray continuation line at the very top). */
  readonly name: string;
  /** The field's bytes as received, all its lines with their CRLFs. */
  readonly raw: Buffer;
}

export interface HeaderEnd {
  /** The header lines, each ending in CRLF; without the empty separator line. */
  readonly header: Buffer;
  /** Bytes after the header (and after the separator, if there was one). */
  readonly rest: Buffer;
  /** Whether an empty line separated header and body. */
  readonly separator: boolean;
}

/** ftext (RFC 5322 3.6.8): printable US-ASCII except ':'. */
function isFtext(b: number): boolean {
  return b >= 33 && b <= 126 && b !== 58;
}

/** Length of "name:" at the start of `line`, or 0 when it does not start a header field. */
function fieldNameLength(line: Buffer): number {
  let i = 0;
  while (i < line.length && isFtext(line[i]!)) i++;
  return i > 0 && i < line.length && line[i] === 58 ? i : 0;
}

export class HeaderCollector {
  private parts: Buffer[] = [];
  private size = 0;
  private buf: Buffer | null = null;
  /** Start of the first line not yet classified. */
  private lineStart = 0;
  private sawField = false;

  /** Header bytes held so far. */
  get bytes(): number {
    return this.size;
  }

  /** Feeds a chunk; returns where the header ended, or null when it goes on. */
  push(chunk: Buffer): HeaderEnd | null {
    if (chunk.length === 0) return null;
    this.parts.push(chunk);
    this.size += chunk.length;
    this.buf = null;
    return this.scan(false);
  }

  /** End of data: whatever is held is header (a last line without CRLF counts as a line). */
  end(): HeaderEnd {
    return this.scan(true) ?? { header: this.all(), rest: Buffer.alloc(0), separator: false };
  }

  private all(): Buffer {
    this.buf ??= this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [this.buf];
    return this.buf;
  }

  private scan(atEnd: boolean): HeaderEnd | null {
    const data = this.all();
    for (;;) {
      const s = this.lineStart;
      if (s >= data.length) return null;
      const lf = data.indexOf(LF, s);
      if (lf === -1 && !atEnd) {
        // Can the partial line already be judged? A non-ftext byte before any ':' means no field.
        if (data[s] === CR || data[s] === 0x20 || data[s] === 0x09) return null;
        const partial = data.subarray(s);
        const colon = partial.indexOf(58);
        const probe = colon === -1 ? partial : partial.subarray(0, colon + 1);
        if (colon === -1 && [...probe].every(isFtext)) return null;
        if (colon !== -1 && fieldNameLength(probe) > 0) return null;
        return this.finish(data, s, false);
      }
      const end = lf === -1 ? data.length : lf + 1;
      const line = data.subarray(s, end);
      if (line.length === 2 && line[0] === CR && line[1] === LF) return this.finish(data, s, true);
      const continuation = line[0] === 0x20 || line[0] === 0x09;
      if ((continuation && this.sawField) || fieldNameLength(line) > 0) {
        this.sawField = true;
        this.lineStart = end;
        continue;
      }
      return this.finish(data, s, false);
    }
  }

  private finish(data: Buffer, at: number, separator: boolean): HeaderEnd {
    return { header: data.subarray(0, at), rest: data.subarray(at + (separator ? 2 : 0)), separator };
  }
}

/** Splits a complete header into fields (continuation lines stay with their field). */
export function parseHeaderFields(header: Buffer): HeaderField[] {
  const fields: Array<{ name: string; start: number; end: number }> = [];
  let s = 0;
  while (s < header.length) {
    const lf = header.indexOf(LF, s);
    const end = lf === -1 ? header.length : lf + 1;
    const first = header[s];
    const last = fields[fields.length - 1];
    if ((first === 0x20 || first === 0x09) && last) last.end = end;
    else {
      const n = fieldNameLength(header.subarray(s, end));
      fields.push({ name: header.toString('latin1', s, s + n).toLowerCase(), start: s, end });
    }
    s = end;
  }
  return fields.map((f) => ({ name: f.name, raw: header.subarray(f.start, f.end) }));
}

/** The unfolded value of a field (after the colon), trimmed, as latin1 text. */
export function fieldValue(f: HeaderField): string {
  const text = f.raw.toString('latin1');
  const colon = text.indexOf(':');
  return text
    .slice(colon + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .trim();
}

/** The header of a whole message held in memory (a stored message, a DSN). */
export function messageHeader(message: Buffer): HeaderEnd {
  const c = new HeaderCollector();
  return c.push(message) ?? c.end();
}

/** The header fields of a whole message held in memory. */
export function messageHeaderFields(message: Buffer): HeaderField[] {
  return parseHeaderFields(messageHeader(message).header);
}

/**
 * The unfolded value of the first field `name` (case-insensitive), or null. Header bytes are
 * usually ASCII; they are decoded as UTF-8 (RFC 6532) when valid, else as latin1.
 */
export function headerValue(fields: readonly HeaderField[], name: string): string | null {
  const n = name.toLowerCase();
  const f = fields.find((x) => x.name === n);
  return f ? fieldText(f) : null;
}

/** A field's unfolded value as text: UTF-8 when it is valid UTF-8 (RFC 6532), else latin1. */
export function fieldText(f: HeaderField): string {
  const latin1 = fieldValue(f);
  const utf8 = Buffer.from(latin1, 'latin1').toString('utf8');
  return utf8.includes('\uFFFD') ? latin1 : utf8;
}

/** The fields' values as text (fieldText) by lower-case name, in order: what the message type and remote domain rules read. */
export function fieldsByName(fields: readonly HeaderField[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const f of fields) if (f.name !== '') map.set(f.name, [...(map.get(f.name) ?? []), fieldText(f)]);
  return map;
}

/**
 * The message without the header fields named (lower case), or null when it has none of them:
 * the rest of the header and the body keep their bytes.
 */
export function withoutHeaderFields(message: Buffer, names: ReadonlySet<string>): Buffer | null {
  const head = messageHeader(message);
  const fields = parseHeaderFields(head.header);
  if (!fields.some((f) => names.has(f.name))) return null;
  const kept = fields.filter((f) => !names.has(f.name)).map((f) => f.raw);
  return Buffer.concat([...kept, ...(head.separator ? [Buffer.from('\r\n')] : []), head.rest]);
}

/** The authserv-id of an Authentication-Results value (RFC 8601 §2.2: the token before the first ";"), lower case. */
export function authservId(value: string): string {
  const first = value.split(';', 1)[0] ?? '';
  // authserv-id [CFWS authres-version]: drop comments, then the first word.
  return (first.replace(/\([^()]*\)/g, ' ').trim().split(/\s+/)[0] ?? '').toLowerCase();
}
