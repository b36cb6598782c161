// RFC 2047 encoded words (=?charset?Q?…?= and =?charset?B?…?=) in unstructured fields such as
// Subject, decoded to text for what reads them as text (transport rule conditions). White space
// between two encoded words is dropped (RFC 2047 6.2); a word in a charset Node does not know,
// or that is malformed, is left as written. Pure.

const ENCODED_WORD = /=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=/g;

function bytesOf(encoding: string, text: string): Buffer | null {
  if (encoding === 'B' || encoding === 'b') {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
    return Buffer.from(text, 'base64');
  }
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '_') out.push(0x20);
    else if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(c.charCodeAt(0) & 0xff);
  }
  return Buffer.from(out);
}

function decodeWord(charset: string, encoding: string, text: string): string | null {
  const bytes = bytesOf(encoding, text);
  if (!bytes) return null;
  // RFC 2231 language suffix: "utf-8*en".
  const cs = charset.split('*')[0]!.toLowerCase();
  try {
    return new TextDecoder(cs).decode(bytes);
  } catch {
    return null;
  }
}

/** The text of an unstructured field value with its encoded words decoded. */
export function decodeEncodedWords(value: string): string {
  let out = '';
  let last = 0;
  let previousEnd = -1;
  for (const m of value.matchAll(ENCODED_WORD)) {
    const decoded = decodeWord(m[1]!, m[2]!, m[3]!);
    if (decoded === null) continue;
    const between = value.slice(last, m.index);
    // Only white space between two encoded words: it goes.
    out += previousEnd === last && /^[ \t\r\n]*$/.test(between) && between.length > 0 ? '' : between;
    out += decoded;
    last = m.index + m[0].length;
    previousEnd = last;
  }
  return out + value.slice(last);
}
