// A transport rule's disclaimer (Exchange's ApplyHtmlDisclaimerText) put into a message. Pure:
// the header fields and body bytes in, the header changes and the new body out.
//
// Where it goes, as Exchange puts it: into the message's text, not into attachments. The text
// is the message itself when it is a text/plain or text/html part; in a multipart/alternative
// every text/plain and text/html alternative (and the HTML inside a multipart/related one); in
// any other multipart (mixed, related, …) its first part, looked into the same way. An HTML
// part gets the HTML as given (Append: before </body>; Prepend: after <body>); a plain-text
// part gets it as text (tags dropped, entities decoded), after or before a blank line. A part
// changed is written again as UTF-8: 7bit when all of it is ASCII in lines of at most 998
// octets, else base64; the rest of the message keeps its bytes.
//
// What cannot take one (Exchange's fallback cases): a signed or encrypted message
// (multipart/signed, multipart/encrypted, application/pkcs7-mime), a message without such a
// text part, a text part in a charset or transfer encoding this cannot read, a multipart
// without its boundary. Then the rule's fallback: Wrap (a new message, the disclaimer its
// text and the original message attached whole), Ignore (as it is), Reject (the caller refuses).
import type { Disclaimer } from '@mailgw/config';
import type { HeaderEdit } from './filter.js';
import { headerValue, messageHeader, parseHeaderFields, type HeaderField } from './header-block.js';
import { applyHeaderEdits } from './header-edit.js';

/** A disclaimer to apply, with the rule that asked for it. */
export interface BodyDisclaimer extends Disclaimer {
  readonly rule: string;
  /** The sender the rule read (its senderAddressLocation): whose directory object fills the HTML's %%tokens%%. */
  readonly sender?: string;
}

export type DisclaimerResult =
  /** Put into `parts` text parts: the root header's changes and the new body. */
  | { readonly kind: 'inserted'; readonly headers: readonly HeaderEdit[]; readonly body: Buffer; readonly parts: number }
  /** Fallback Wrap: the message as the attachment of a new one. */
  | { readonly kind: 'wrapped'; readonly headers: readonly HeaderEdit[]; readonly body: Buffer; readonly why: string }
  /** Fallback Ignore: nothing changes. */
  | { readonly kind: 'ignored'; readonly why: string }
  /** Fallback Reject: the caller refuses the message. */
  | { readonly kind: 'rejected'; readonly why: string };

const CRLF = '\r\n';
const MAX_LINE = 998;
/** Of a Content-Type value, this much is read. */
const MAX_CONTENT_TYPE = 4096;

/** A Content-Type value: type/subtype (lower case) and its parameters (names lower case). */
interface ContentType {
  readonly type: string;
  readonly params: Map<string, string>;
}

/** RFC 2045 5.1, leniently: unquoted or quoted parameter values; no parameters' RFC 2231 continuations. */
export function parseContentType(raw: string | null): ContentType {
  if (raw === null) return { type: 'text/plain', params: new Map() };
  // Real values are short; a sender's 256 KB one would make the parameter pattern quadratic.
  const value = raw.slice(0, MAX_CONTENT_TYPE);
  const semi = value.indexOf(';');
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const params = new Map<string, string>();
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    const name = m[1]!.toLowerCase();
    if (!params.has(name)) params.set(name, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!);
  }
  return { type: /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type) ? type : 'text/plain', params };
}

function formatContentType(ct: ContentType): string {
  const ps = [...ct.params].map(([k, v]) => (/^[A-Za-z0-9!#$%&'*+.^_`{|}~-]+$/.test(v) ? `${k}=${v}` : `${k}="${v.replace(/(["\\])/g, '\\$1')}"`));
  return [ct.type, ...ps].join('; ');
}


/** An entity (the message or one part): its header fields and its content's bytes. */
interface Entity {
  readonly fields: readonly HeaderField[];
  readonly content: Buffer;
}

/** A part the disclaimer goes into: where its whole bytes (header and content) lie in the message body. */
interface Target {
  /** null: the message itself (its header is the message's). */
  readonly range: { readonly start: number; readonly end: number } | null;
  readonly entity: Entity;
  readonly html: boolean;
}

type Found = { readonly targets: Target[] } | { readonly cannot: string };

/** An attachment, not text to read: disposition attachment, or a file name and no disposition inline. */
function isAttachment(fields: readonly HeaderField[], ct: ContentType): boolean {
  const disposition = headerValue(fields, 'content-disposition') ?? '';
  if (/^\s*attachment/i.test(disposition)) return true;
  return !/^\s*inline/i.test(disposition) && ct.params.has('name');
}

/** Where the last match of `re` (global) starts, or -1: one pass, whatever the text (no look-ahead over the rest at each match). */
function lastMatch(text: string, re: RegExp): number {
  let at = -1;
  for (const m of text.matchAll(re)) at = m.index;
  return at;
}

/** The parts of a multipart's content, each with its byte range in `content` (null: no boundary, or none found). */
function splitMultipart(content: Buffer, boundary: string): Array<{ start: number; end: number }> | null {
  const text = content.toString('latin1');
  const delimiter = `--${boundary}`;
  const parts: Array<{ start: number; end: number }> = [];
  let open = -1;
  let at = 0;
  for (;;) {
    const i = text.indexOf(delimiter, at);
    if (i < 0) return null; // never closed: not a multipart this can change safely
    at = i + delimiter.length;
    if (i !== 0 && text.slice(i - 2, i) !== CRLF) continue; // not at the start of a line
    const eol = text.indexOf(CRLF, at);
    const rest = text.slice(at, eol < 0 ? text.length : eol);
    const closing = rest.startsWith('--');
    if (!/^(--)?[ \t]*$/.test(rest)) continue; // "--boundaryX": another boundary's line
    // A part ends at the CRLF before the delimiter (it belongs to the delimiter).
    if (open >= 0) parts.push({ start: open, end: Math.max(open, i - 2) });
    if (closing) return parts;
    if (eol < 0) return null;
    open = eol + 2;
    at = open;
  }
}

function entityOf(bytes: Buffer): Entity {
  const h = messageHeader(bytes);
  return { fields: parseHeaderFields(h.header), content: h.rest };
}

/** Where the disclaimer goes in `e` (its content at `base` in the message body; null: e is the message). */
function findTargets(e: Entity, base: number | null, range: { start: number; end: number } | null, depth: number): Found {
  const ct = parseContentType(headerValue(e.fields, 'content-type'));
  if (ct.type === 'multipart/signed' || ct.type === 'multipart/encrypted' || /^application\/(x-)?pkcs7-mime$/.test(ct.type)) return { cannot: `the message is signed or encrypted (${ct.type})` };
  if ((ct.type === 'text/plain' || ct.type === 'text/html') && !isAttachment(e.fields, ct)) return { targets: [{ range, entity: e, html: ct.type === 'text/html' }] };
  if (!ct.type.startsWith('multipart/')) return { cannot: `it has no text part (${depth === 0 ? 'the message is' : 'its first part is'} ${ct.type}${isAttachment(e.fields, ct) ? ', an attachment' : ''})` };
  if (depth >= 8) return { cannot: 'its MIME structure is too deep' };
  const boundary = ct.params.get('boundary');
  const split = boundary ? splitMultipart(e.content, boundary) : null;
  if (!split || split.length === 0) return { cannot: `its ${ct.type} cannot be read (${boundary ? 'no closing boundary' : 'no boundary'})` };
  // Byte offsets in the message body: the content of the message itself starts at 0.
  const contentAt = base ?? 0;
  const child = (p: { start: number; end: number }) => {
    const bytes = e.content.subarray(p.start, p.end);
    const sub = entityOf(bytes);
    const start = contentAt + p.start;
    return findTargets(sub, start + (bytes.length - sub.content.length), { start, end: contentAt + p.end }, depth + 1);
  };
  if (ct.type !== 'multipart/alternative') return child(split[0]!);
  const targets: Target[] = [];
  for (const p of split) {
    const f = child(p);
    if ('targets' in f) targets.push(...f.targets);
  }
  return targets.length ? { targets } : { cannot: 'its multipart/alternative has no text or HTML part' };
}

function decodeQuotedPrintable(b: Buffer): Buffer {
  const s = b.toString('latin1').replace(/=\r?\n/g, '');
  const out = Buffer.alloc(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      out[n++] = parseInt(s.slice(i + 1, i + 3), 16);
      i += 2;
    } else out[n++] = c;
  }
  return out.subarray(0, n);
}

/** The text of a part, or why it cannot be read. */
function partText(e: Entity): { text: string } | { cannot: string } {
  const cte = (headerValue(e.fields, 'content-transfer-encoding') ?? '7bit').toLowerCase();
  let bytes: Buffer;
  if (cte === 'base64') bytes = Buffer.from(e.content.toString('latin1'), 'base64');
  else if (cte === 'quoted-printable') bytes = decodeQuotedPrintable(e.content);
  else if (cte === '7bit' || cte === '8bit' || cte === 'binary') bytes = e.content;
  else return { cannot: `its text is in a transfer encoding this cannot read (${cte})` };
  const charset = (parseContentType(headerValue(e.fields, 'content-type')).params.get('charset') ?? 'us-ascii').toLowerCase();
  try {
    // WHATWG labels (Node's full ICU): us-ascii reads as windows-1252, as mail clients read it.
    return { text: new TextDecoder(charset).decode(bytes) };
  } catch {
    return { cannot: `its text is in a character set this cannot read (${charset})` };
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '\u00a9', reg: '\u00ae' };

/** The disclaimer's HTML as plain text: line breaks for <br> and block ends, tags dropped, entities decoded. */
export function disclaimerText(html: string): string {
  return html
    .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|tr|li|h[1-6]|table)\s*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const cp = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    })
    .split(/\r?\n|\r/)
    // "-- " alone is the signature separator (RFC 3676 4.3): mail clients know it by its space.
    .map((l) => (/^[ \t]*--[ \t]*$/.test(l) ? '-- ' : l.replace(/[ \t]+/g, ' ').trim()))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

const crlf = (s: string) => s.replace(/\r\n|\r|\n/g, CRLF);

/** Where the first tag `start` (global regex: "<body") ends, after its ">", or -1. One pass: no pattern runs to the end of the text from every "<body". */
function afterOpeningTag(text: string, start: RegExp): number {
  for (const m of text.matchAll(start)) {
    const close = text.indexOf('>', m.index);
    // No ">" after this one: none after a later one either.
    return close < 0 ? -1 : close + 1;
  }
  return -1;
}

/** The text without the line breaks it ends with (a loop: /(\r\n|\r|\n)*$/ tries every run of them in a sender's text). */
function withoutTrailingLineBreaks(text: string): string {
  let end = text.length;
  while (end > 0 && (text[end - 1] === '\n' || text[end - 1] === '\r')) end--;
  return text.slice(0, end);
}

function withDisclaimer(text: string, html: boolean, d: Disclaimer): string {
  if (html) {
    const block = `${CRLF}<div>${d.html}</div>${CRLF}`;
    if (d.location === 'Append') {
      const end = lastMatch(text, /<\/body\s*>/gi);
      const at = end >= 0 ? end : lastMatch(text, /<\/html\s*>/gi);
      return at >= 0 ? text.slice(0, at) + block + text.slice(at) : text + block;
    }
    const open = afterOpeningTag(text, /<body\b/gi);
    const at = open >= 0 ? open : afterOpeningTag(text, /<html\b/gi);
    return at >= 0 ? text.slice(0, at) + block + text.slice(at) : block + text;
  }
  const plain = crlf(disclaimerText(d.html));
  if (d.location === 'Append') return `${withoutTrailingLineBreaks(text)}${CRLF}${CRLF}${plain}${CRLF}`;
  return `${plain}${CRLF}${CRLF}${text}`;
}

/** The part's new content and the header values that describe it. */
function encodeText(text: string, was7bit: boolean): { content: Buffer; cte: string } {
  const bytes = Buffer.from(crlf(text), 'utf8');
  const ascii = !bytes.some((b) => b > 0x7e || (b < 0x20 && b !== 0x0d && b !== 0x0a && b !== 0x09));
  const short = crlf(text)
    .split(CRLF)
    .every((l) => l.length <= MAX_LINE);
  if (was7bit && ascii && short) return { content: bytes, cte: '7bit' };
  const b64 = bytes.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return { content: Buffer.from(lines.join(CRLF) + CRLF, 'latin1'), cte: 'base64' };
}

/** A part's header fields with its Content-Type charset and Content-Transfer-Encoding set (others as they were). */
function partHeader(fields: readonly HeaderField[], charset: string, cte: string): Buffer {
  const ct = parseContentType(headerValue(fields, 'content-type'));
  ct.params.set('charset', charset);
  const out: Buffer[] = [];
  for (const f of fields) if (f.name !== 'content-type' && f.name !== 'content-transfer-encoding') out.push(f.raw);
  out.push(Buffer.from(`Content-Type: ${formatContentType(ct)}${CRLF}Content-Transfer-Encoding: ${cte}${CRLF}`, 'latin1'));
  return Buffer.concat(out);
}

/** A boundary that appears nowhere in `bytes`. */
function freshBoundary(bytes: Buffer, seed: string): string {
  for (let n = 0; ; n++) {
    const b = `=_mailgw_disclaimer_${seed}_${n}`;
    if (!bytes.includes(b)) return b;
  }
}

/**
 * Puts disclaimer `d` into the message (`fields`: its header fields as they will be stored, our
 * Received field aside; `body`: the bytes after the header's empty line), or applies its fallback.
 * `seed` makes the Wrap boundary (the queue id).
 */
export function applyDisclaimer(fields: readonly HeaderField[], body: Buffer, d: BodyDisclaimer, seed = 'x'): DisclaimerResult {
  const found = findTargets({ fields, content: body }, null, null, 0);
  if ('targets' in found) {
    const texts: Array<{ t: Target; text: string }> = [];
    let cannot: string | null = null;
    for (const t of found.targets) {
      const r = partText(t.entity);
      if ('cannot' in r) cannot ??= r.cannot;
      else texts.push({ t, text: r.text });
    }
    if (!cannot) {
      const root = texts.find((x) => x.t.range === null);
      if (root) {
        const was7bit = (headerValue(fields, 'content-transfer-encoding') ?? '7bit').toLowerCase() === '7bit';
        const enc = encodeText(withDisclaimer(root.text, root.t.html, d), was7bit);
        const ct = parseContentType(headerValue(fields, 'content-type'));
        ct.params.set('charset', 'utf-8');
        const headers: HeaderEdit[] = [
          { op: 'change', name: 'Content-Type', index: 1, value: formatContentType(ct) },
          { op: 'change', name: 'Content-Transfer-Encoding', index: 1, value: enc.cte },
        ];
        if (headerValue(fields, 'mime-version') === null) headers.push({ op: 'add', name: 'MIME-Version', value: '1.0' });
        return { kind: 'inserted', headers, body: enc.content, parts: 1 };
      }
      // Parts inside the body: spliced in, from the end so the earlier offsets hold.
      const pieces: Buffer[] = [];
      let at = body.length;
      for (const { t, text } of [...texts].sort((a, b) => b.t.range!.start - a.t.range!.start)) {
        const was7bit = (headerValue(t.entity.fields, 'content-transfer-encoding') ?? '7bit').toLowerCase() === '7bit';
        const enc = encodeText(withDisclaimer(text, t.html, d), was7bit);
        pieces.unshift(partHeader(t.entity.fields, 'utf-8', enc.cte), Buffer.from(CRLF), enc.content.subarray(0, enc.content.length - (enc.content.subarray(-2).toString() === CRLF ? 2 : 0)), body.subarray(t.range!.end, at));
        at = t.range!.start;
      }
      pieces.unshift(body.subarray(0, at));
      return { kind: 'inserted', headers: [], body: Buffer.concat(pieces), parts: texts.length };
    }
    return fallback(fields, body, d, cannot, seed);
  }
  return fallback(fields, body, d, found.cannot, seed);
}

function fallback(fields: readonly HeaderField[], body: Buffer, d: BodyDisclaimer, why: string, seed: string): DisclaimerResult {
  if (d.fallback === 'Ignore') return { kind: 'ignored', why };
  if (d.fallback === 'Reject') return { kind: 'rejected', why };
  // Wrap: the original (its header as it will be stored and its body) as message/rfc822, after
  // the disclaimer as the new message's text; the new message keeps the original's
  // addressing fields, the MIME fields are its own.
  const original = Buffer.concat([...fields.map((f) => f.raw), Buffer.from(CRLF), body]);
  const boundary = freshBoundary(original, seed.replace(/[^A-Za-z0-9]/g, ''));
  const html = `<html><body>${CRLF}<div>${d.html}</div>${CRLF}</body></html>`;
  const alt = freshBoundary(original, `${seed.replace(/[^A-Za-z0-9]/g, '')}a`);
  const text = encodeText(crlf(disclaimerText(d.html)) + CRLF, false);
  const htmlPart = encodeText(html + CRLF, false);
  const out = Buffer.concat([
    Buffer.from(`This is a multi-part message in MIME format.${CRLF}--${boundary}${CRLF}Content-Type: multipart/alternative; boundary="${alt}"${CRLF}${CRLF}`),
    Buffer.from(`--${alt}${CRLF}Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: ${text.cte}${CRLF}${CRLF}`),
    text.content,
    Buffer.from(`--${alt}${CRLF}Content-Type: text/html; charset=utf-8${CRLF}Content-Transfer-Encoding: ${htmlPart.cte}${CRLF}${CRLF}`),
    htmlPart.content,
    Buffer.from(`--${alt}--${CRLF}${CRLF}--${boundary}${CRLF}Content-Type: message/rfc822${CRLF}Content-Disposition: attachment; filename="original.eml"${CRLF}${CRLF}`),
    original,
    Buffer.from(`${original.subarray(-2).toString() === CRLF ? '' : CRLF}--${boundary}--${CRLF}`),
  ]);
  const headers: HeaderEdit[] = [
    { op: 'remove', name: 'Content-Transfer-Encoding' },
    { op: 'remove', name: 'Content-Disposition' },
    { op: 'remove', name: 'MIME-Version' },
    { op: 'add', name: 'MIME-Version', value: '1.0' },
    { op: 'change', name: 'Content-Type', index: 1, value: `multipart/mixed; boundary="${boundary}"` },
  ];
  return { kind: 'wrapped', headers, body: out, why };
}

/** Every disclaimer in order (each on the message the one before left); the first Reject ends it. */
export function applyDisclaimers(fields: readonly HeaderField[], body: Buffer, list: readonly BodyDisclaimer[], seed = 'x'): { headers: HeaderEdit[]; body: Buffer; done: Array<{ rule: string; result: DisclaimerResult['kind']; why?: string; parts?: number }>; rejected: { rule: string; why: string } | null } {
  let current = { fields: [...fields], body };
  const headers: HeaderEdit[] = [];
  const done: Array<{ rule: string; result: DisclaimerResult['kind']; why?: string; parts?: number }> = [];
  for (const [n, d] of list.entries()) {
    const r = applyDisclaimer(current.fields, current.body, d, `${seed}${n}`);
    if (r.kind === 'rejected') return { headers: [], body, done: [...done, { rule: d.rule, result: r.kind, why: r.why }], rejected: { rule: d.rule, why: r.why } };
    if (r.kind === 'ignored') {
      done.push({ rule: d.rule, result: r.kind, why: r.why });
      continue;
    }
    headers.push(...r.headers);
    // The next disclaimer reads the Content-Type this one set: the fields as they will be stored.
    const edited = applyHeaderEdits(current.fields, r.headers);
    current = { fields: parseHeaderFields(Buffer.concat([...edited.top, ...edited.fields])), body: r.body };
    done.push({ rule: d.rule, result: r.kind, ...(r.kind === 'wrapped' ? { why: r.why } : { parts: r.parts }) });
  }
  return { headers, body: current.body, done, rejected: null };
}
