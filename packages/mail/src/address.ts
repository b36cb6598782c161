// Envelope addresses, parsed once (at MAIL/RCPT) and carried as parts from there on: the
// listener, the queue's job, the worker's routing and Maildir, DSNs and ops all use these
// parts and never split the text again. A local part holding "%", "!" or "@", or a source
// route, names further hops: those hops count as destinations, so "user%other.test@ourdomain"
// is judged as relay to other.test.
import { normaliseDomain } from '@mailgw/config';

/** An address as it is stored and delivered: the local part unquoted, the domain normalised. */
export interface MailAddress {
  /** Local part as the mailbox sees it (quotes and escapes removed): `john doe` for `"john doe"@…`. */
  readonly local: string;
  /** Normalised domain: lower case, no trailing dot, IDN as punycode, literals canonical. */
  readonly domain: string;
}

export interface EnvelopeAddress extends MailAddress {
  /** local@domain with the normalised domain, the local part quoted where it must be. */
  readonly address: string;
  /** Every domain the address would route through: the domain plus hops hidden in the local part or a source route. */
  readonly routingDomains: readonly string[];
  /** Which trick put extra hops in, if any. */
  readonly trick: null | 'percent-hack' | 'bang-path' | 'at-in-local-part' | 'source-route';
}

export type AddressResult = { ok: true; value: EnvelopeAddress } | { ok: false; reason: string };

/**
 * Hard caps against abuse. RFC 5321 4.5.3.1 gives 64 octets for a local part and 256 for a
 * path but asks servers to accept more where they can; Postfix imposes no limit of its own
 * below its 2048-byte line. VERP and SRS bounce addresses run past 64, so mailgw accepts local
 * parts up to 512 octets and paths up to 1000 octets (UTF-8 counted in bytes).
 */
export const MAX_LOCAL_PART_OCTETS = 512;
export const MAX_PATH_OCTETS = 1000;

const octets = (s: string) => new TextEncoder().encode(s).length;

function hopDomain(h: string): string {
  // A hop is passed on as written, inside the local part, for the next server to read: only a
  // plain ASCII hop can be compared with our domains. IDNA would map "contoso.te\u017ft" or
  // fullwidth letters onto an accepted domain, which a server honouring the hack need not do.
  if (!/^[\x21-\x7e]+$/.test(h)) return `invalid:${h.toLowerCase()}`;
  const d = normaliseDomain(h);
  // An unparseable hop still names somewhere else: keep it (lower-cased) so it never matches
  // an accepted domain and the address is judged as relay.
  return d.ok ? d.value : `invalid:${h.toLowerCase()}`;
}

const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+)*$/;

/** Local part as it must be written in an address: quoted unless it is a dot-atom. */
export function quoteLocal(local: string): string {
  return DOT_ATOM.test(local) ? local : `"${local.replace(/(["\\])/g, '\\$1')}"`;
}

/** The address as written on the wire and in logs: `"john doe"@contoso.test`, `bob@xn--bcher-kva.example`. */
export function formatAddress(a: MailAddress): string {
  return `${quoteLocal(a.local)}@${a.domain}`;
}

/** Case-insensitive identity of an address, for duplicates and lookups. */
export function addressKey(a: MailAddress): string {
  return formatAddress(a).toLowerCase();
}

/** The last "@" of `s` outside quoted strings (-1: none), and whether a quote was left open. */
export function lastAt(s: string): { at: number; unbalanced: boolean } {
  let at = -1;
  let inQuote = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\' && inQuote) i++;
    else if (ch === '"') inQuote = !inQuote;
    else if (ch === '@' && !inQuote) at = i;
  }
  return { at, unbalanced: inQuote };
}

/** Parses a forward-path or reverse-path without angle brackets. '' is the null sender. */
export function parseEnvelopeAddress(input: string): AddressResult {
  let s = input;
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1);
  if (octets(s) > MAX_PATH_OCTETS) return { ok: false, reason: `address longer than ${MAX_PATH_OCTETS} octets` };
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(s)) return { ok: false, reason: 'address contains control characters' };
  if (/\s/.test(s.replace(/"[^"]*"/g, ''))) return { ok: false, reason: 'address contains white space' };

  const extraHops: string[] = [];
  let trick: EnvelopeAddress['trick'] = null;

  // Source route: "@hop1,@hop2:user@domain".
  if (s.startsWith('@')) {
    const colon = s.indexOf(':');
    if (colon < 0) return { ok: false, reason: 'malformed source route' };
    for (const hop of s.slice(0, colon).split(',')) extraHops.push(hopDomain(hop.trim().replace(/^@/, '')));
    s = s.slice(colon + 1);
    trick = 'source-route';
  }

  // Split at the last "@" that is outside quotes.
  const { at, unbalanced } = lastAt(s);
  if (unbalanced) return { ok: false, reason: 'unbalanced quotes' };
  if (at <= 0 || at === s.length - 1) return { ok: false, reason: 'address must be local-part@domain' };

  let local = s.slice(0, at);
  const domainText = s.slice(at + 1);
  const d = normaliseDomain(domainText);
  if (!d.ok) return { ok: false, reason: d.error };

  // Quoted local part: judge its content, keep it for delivery unquoted.
  if (/^".*"$/.test(local)) local = local.slice(1, -1).replace(/\\(.)/g, '$1');
  if (local.length === 0) return { ok: false, reason: 'empty local part' };
  if (octets(local) > MAX_LOCAL_PART_OCTETS) return { ok: false, reason: `local part longer than ${MAX_LOCAL_PART_OCTETS} octets` };

  // Hops hidden in the local part.
  if (local.includes('@')) {
    trick ??= 'at-in-local-part';
    for (const part of local.split('@').slice(1)) extraHops.push(hopDomain(part.split(/[%!]/)[0]!));
  }
  const beforeAt = local.split('@')[0]!;
  if (beforeAt.includes('%')) {
    trick ??= 'percent-hack';
    for (const part of beforeAt.split('%').slice(1)) extraHops.push(hopDomain(part));
  }
  if (beforeAt.includes('!')) {
    trick ??= 'bang-path';
    const parts = beforeAt.split('!');
    for (const part of parts.slice(0, -1)) extraHops.push(hopDomain(part.split('%')[0]!));
  }

  const routingDomains = [d.value, ...extraHops.filter((h) => h !== d.value)];
  return { ok: true, value: { local, domain: d.value, address: formatAddress({ local, domain: d.value }), routingDomains: [...new Set(routingDomains)], trick } };
}
