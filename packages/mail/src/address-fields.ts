// The addresses in a message's address fields (From, To, Cc, Reply-To, Resent-*, …), found and
// replaced in place: everything around them (display names, comments, folding, groups, the
// other fields) stays byte for byte as it was, so a rewritten header differs from the original
// only where an address was changed. The reader follows RFC 5322 3.4 (address-list, groups,
// angle-addr, quoted strings, nested comments, domain literals) and is lenient the way mail
// readers are: what it cannot read as an address is left alone, never "repaired". Pure.
import { lastAt, parseEnvelopeAddress, quoteLocal, type MailAddress } from './address.js';
import { parseHeaderFields } from './header-block.js';

/**
 * The fields holding addresses that Exchange's address rewriting agents rewrite: originator and
 * destination fields, their Resent- forms, and the two read-receipt requests.
 */
export const ADDRESS_FIELDS: ReadonlySet<string> = new Set([
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'bcc',
  'resent-from',
  'resent-sender',
  'resent-reply-to',
  'resent-to',
  'resent-cc',
  'resent-bcc',
  'disposition-notification-to',
  'return-receipt-to',
]);

/** The destination fields of ADDRESS_FIELDS: who the message is for, not who it is from. */
export const RECIPIENT_FIELDS: ReadonlySet<string> = new Set(['to', 'cc', 'bcc', 'resent-to', 'resent-cc', 'resent-bcc']);

/** An address found in a field value: where its addr-spec is (offsets into the value) and its parts. */
export interface FoundAddress {
  readonly start: number;
  readonly end: number;
  /** The addr-spec as written. */
  readonly text: string;
  /** Where the domain starts in `text` (after the last '@' outside quotes). */
  readonly at: number;
  readonly address: MailAddress;
}

/** The replacement for an address, or null to leave it. */
export type AddressMapper = (a: MailAddress) => MailAddress | null;

const SPECIAL_END = new Set([',', ';']);

/**
 * The addr-specs of an address-list field value (as latin1 text: one character per octet, so
 * offsets are octet offsets). Addresses with a comment or white space inside the addr-spec, a
 * source route, or that do not parse as local@domain are not reported.
 */
export function findAddresses(value: string): FoundAddress[] {
  const found: FoundAddress[] = [];
  const n = value.length;
  // Where the angle-addr of this mailbox is, if it has one.
  let angle: { start: number; end: number } | null = null;
  // Characters of this mailbox outside comments and angle brackets, with their positions: for a bare addr-spec.
  let spans: Array<[number, number]> = [];
  let spanStart = -1;
  let broken = false;

  const closeSpan = (at: number): void => {
    if (spanStart >= 0) spans.push([spanStart, at]);
    spanStart = -1;
  };
  const finishMailbox = (): void => {
    closeSpan(i);
    if (!broken) {
      if (angle) report(angle.start, angle.end);
      else if (spans.length === 1) {
        // A bare addr-spec: one run of non-white text, no comment inside it.
        const [s, e] = spans[0]!;
        report(s, e);
      }
    }
    angle = null;
    spans = [];
    broken = false;
  };
  const report = (start: number, end: number): void => {
    const text = value.slice(start, end);
    if (text === '' || text.startsWith('@')) return; // empty, or a source route
    const utf8 = Buffer.from(text, 'latin1').toString('utf8');
    const parsed = parseEnvelopeAddress(utf8.includes('\uFFFD') ? text : utf8);
    if (!parsed.ok || parsed.value.trick === 'source-route') return;
    found.push({ start, end, text, at: lastAt(text).at + 1, address: { local: parsed.value.local, domain: parsed.value.domain } });
  };

  let i = 0;
  while (i < n) {
    const c = value[i]!;
    if (c === '(') {
      // A comment: skipped (nested, with quoted pairs). It ends a run of text.
      closeSpan(i);
      let depth = 0;
      for (; i < n; i++) {
        const d = value[i];
        if (d === '\\') i++;
        else if (d === '(') depth++;
        else if (d === ')' && --depth === 0) break;
      }
      if (depth !== 0) broken = true; // unterminated: nothing after it is read as an address
      i++;
      continue;
    }
    if (c === '"' || c === '[') {
      // A quoted string (part of a display name or of a local part), or a domain literal.
      if (spanStart < 0) spanStart = i;
      i = closing(value, i);
      if (i >= n) broken = true;
      i++;
      continue;
    }
    if (c === '<') {
      closeSpan(i);
      const close = findClose(value, i + 1);
      if (close < 0 || angle) {
        broken = true;
        i = close < 0 ? n : close + 1;
        continue;
      }
      // The addr-spec inside, without the white space around it.
      let s = i + 1;
      let e = close;
      while (s < e && isWsp(value[s]!)) s++;
      while (e > s && isWsp(value[e - 1]!)) e--;
      angle = { start: s, end: e };
      i = close + 1;
      continue;
    }
    if (c === ':' && !angle) {
      // "Group name:" (the display name before it is not an address); what follows are its mailboxes.
      spans = [];
      spanStart = -1;
      i++;
      continue;
    }
    if (SPECIAL_END.has(c)) {
      finishMailbox();
      i++;
      continue;
    }
    if (isWsp(c)) closeSpan(i);
    else if (spanStart < 0) spanStart = i;
    i++;
  }
  finishMailbox();
  return found;
}

/** Where the quoted string or domain literal opened at `open` ends (its '"' or ']', quoted pairs skipped); value.length if it does not. */
function closing(value: string, open: number): number {
  const end = value[open] === '"' ? '"' : ']';
  let k = open + 1;
  for (; k < value.length && value[k] !== end; k++) if (value[k] === '\\') k++;
  return Math.min(k, value.length);
}

/** The first address of an address-list field value (From: "Name" <a@b>), or null. */
export function firstAddress(value: string): MailAddress | null {
  return findAddresses(value)[0]?.address ?? null;
}

/** The '>' closing an angle-addr opened before `from`, skipping quoted strings and literals; -1 if none. */
function findClose(value: string, from: number): number {
  for (let k = from; k < value.length; k++) {
    const d = value[k];
    if (d === '\\') k++;
    else if (d === '"' || d === '[') k = closing(value, k);
    else if (d === '>') return k;
    else if (d === '<' || d === ',') return -1;
  }
  return -1;
}

function isWsp(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\r' || c === '\n';
}

/**
 * The text (latin1: one character per octet, as `f.text`) that replaces `f`: only the domain when
 * the local part stays, else the whole address, its local part as UTF-8 octets.
 */
function replacement(f: FoundAddress, to: MailAddress): string {
  const domain = Buffer.from(to.domain, 'utf8').toString('latin1');
  if (to.local === f.address.local) return f.text.slice(0, f.at) + domain;
  return `${Buffer.from(quoteLocal(to.local), 'utf8').toString('latin1')}@${domain}`;
}

export interface RewrittenHeader {
  /** The header with the addresses replaced. */
  readonly header: Buffer;
  /** How many addresses were replaced. */
  readonly addresses: number;
  /** The names (lower case) of the fields that changed, once each. */
  readonly fields: readonly string[];
}

/**
 * The header (lines ending in CRLF, without the empty line after it) with every address of an
 * address field that `map` replaces replaced; null when nothing was. Field names are compared
 * without regard to case; `fields` defaults to ADDRESS_FIELDS.
 */
export function rewriteHeaderAddresses(header: Buffer, map: AddressMapper, fields: ReadonlySet<string> = ADDRESS_FIELDS): RewrittenHeader | null {
  const parts: Buffer[] = [];
  let count = 0;
  const changed = new Set<string>();
  for (const field of parseHeaderFields(header)) {
    if (!fields.has(field.name)) {
      parts.push(field.raw);
      continue;
    }
    const text = field.raw.toString('latin1');
    const colon = text.indexOf(':');
    const value = text.slice(colon + 1);
    let out = '';
    let last = 0;
    for (const f of findAddresses(value)) {
      const to = map(f.address);
      if (!to || (to.local === f.address.local && to.domain === f.address.domain)) continue;
      out += value.slice(last, f.start) + replacement(f, to);
      last = f.end;
      count++;
      changed.add(field.name);
    }
    if (last === 0) parts.push(field.raw);
    else parts.push(Buffer.from(text.slice(0, colon + 1) + out + value.slice(last), 'latin1'));
  }
  return count === 0 ? null : { header: Buffer.concat(parts), addresses: count, fields: [...changed] };
}
