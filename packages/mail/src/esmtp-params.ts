// The argument of MAIL FROM: / RCPT TO: as RFC 5321 §4.1.2 writes it: a path in angle
// brackets, then ESMTP parameters (`keyword[=value]`, separated by spaces). Split here once,
// on the raw line, so the policy can judge each parameter by its RFC's syntax (xtext included)
// and see the path's bytes before any library decoded it.

/** One `keyword[=value]`; `value` is null for a bare keyword (SMTPUTF8), '' for `KEY=`. */
export interface EsmtpParameter {
  /** Upper-cased keyword. */
  readonly keyword: string;
  /** The value as written (still xtext-encoded where the RFC says xtext). */
  readonly value: string | null;
}

export interface AddressCommandArgs {
  /** The path without its angle brackets: '' for the null reverse-path `<>`. */
  readonly path: string;
  readonly params: readonly EsmtpParameter[];
}

/** RFC 5321 §4.1.2 esmtp-keyword: ALPHA / DIGIT followed by ALPHA / DIGIT / "-". */
const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;

/**
 * Splits what follows `MAIL FROM:` / `RCPT TO:` into the path and its parameters; null when
 * there is no bracketed path (the caller answers "invalid address"). Quotes in the local part
 * are honoured, so `<"a b>c"@x>` is one path.
 */
export function parseAddressCommandArgs(argument: string): AddressCommandArgs | null {
  const s = argument.replace(/^[ \t]+/, '');
  if (!s.startsWith('<')) return null;
  let end = -1;
  let inQuote = false;
  for (let i = 1; i < s.length; i++) {
    const ch = s[i];
    if (inQuote && ch === '\\') i++;
    else if (ch === '"') inQuote = !inQuote;
    else if (ch === '>' && !inQuote) {
      end = i;
      break;
    }
  }
  if (end < 0) return null;
  const path = s.slice(1, end);
  const rest = s.slice(end + 1);
  if (rest !== '' && !/^[ \t]/.test(rest)) return null;
  const params: EsmtpParameter[] = [];
  for (const word of rest.split(/[ \t]+/)) {
    if (word === '') continue;
    const eq = word.indexOf('=');
    params.push(eq < 0 ? { keyword: word.toUpperCase(), value: null } : { keyword: word.slice(0, eq).toUpperCase(), value: word.slice(eq + 1) });
  }
  return { path, params };
}

/** True when `keyword` has the syntax of an esmtp-keyword. */
export function isEsmtpKeyword(keyword: string): boolean {
  return KEYWORD.test(keyword);
}

/** RFC 3461 §4 xtext: printable ASCII except "+" and "=", or "+" and two upper-case hex digits. */
const XTEXT = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$/;

export function isXtext(value: string): boolean {
  return XTEXT.test(value);
}

/** Decodes xtext (`+2B` → `+`); the caller checked isXtext. */
export function decodeXtext(value: string): string {
  return value.replace(/\+([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Encodes as xtext: "+", "=" and anything outside printable ASCII as +XX (UTF-8 bytes each). */
export function encodeXtext(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => (b >= 0x21 && b <= 0x7e && b !== 0x2b && b !== 0x3d ? String.fromCharCode(b) : `+${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** True when the text holds any byte outside US-ASCII (an RFC 6531 internationalised address). */
export function hasNonAscii(text: string): boolean {
  return /[^\x00-\x7f]/.test(text);
}
