// Domain names compared the way mail routing needs: lower case, no trailing dot, IDN as
// punycode (so a Unicode look-alike never equals an ASCII accepted domain by accident),
// IP literals in canonical form.
import { domainToASCII } from 'node:url';
import { parseIp } from './ip-range.js';
import type { AcceptedDomainType } from './vocabulary.js';

export type DomainResult = { ok: true; value: string } | { ok: false; error: string };

/** Normalises a domain or an address literal ("[127.0.0.1]", "[IPv6:::1]"). */
export function normaliseDomain(input: string): DomainResult {
  let d = input.trim();
  if (d.startsWith('[')) {
    if (!d.endsWith(']')) return { ok: false, error: `"${input}" is not a valid address literal` };
    let inner = d.slice(1, -1).trim();
    const v6 = /^ipv6:/i.test(inner);
    if (v6) inner = inner.slice(5);
    const ip = parseIp(inner);
    if (!ip.ok || (v6 !== (ip.value.family === 6) && !(v6 && inner.toLowerCase().startsWith('::ffff:')))) {
      return { ok: false, error: `"${input}" is not a valid address literal` };
    }
    return { ok: true, value: ip.value.family === 6 ? `[ipv6:${ip.value.text}]` : `[${ip.value.text}]` };
  }
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (d === '' || d.includes('..') || /[\s@%!"\\,;:<>()[\]]/.test(d)) return { ok: false, error: `"${input}" is not a valid domain` };
  const ascii = domainToASCII(d.toLowerCase());
  if (ascii === '' || ascii.length > 253 || ascii.split('.').some((l) => l.length === 0 || l.length > 63)) {
    return { ok: false, error: `"${input}" is not a valid domain` };
  }
  return { ok: true, value: ascii };
}

/** A domain pattern from config: "contoso.com", "*.contoso.com" (which also matches contoso.com), "*". */
export interface DomainPattern {
  readonly text: string;
  /** Normalised domain without the "*." part; '' for the catch-all "*". */
  readonly domain: string;
  readonly wildcard: boolean;
}

export function parseDomainPattern(input: string): { ok: true; value: DomainPattern } | { ok: false; error: string } {
  const t = input.trim();
  if (t === '*') return { ok: true, value: { text: t, domain: '', wildcard: true } };
  const wildcard = t.startsWith('*.');
  const d = normaliseDomain(wildcard ? t.slice(2) : t);
  if (!d.ok) return d;
  if (wildcard && d.value.startsWith('[')) return { ok: false, error: `"${input}": an address literal cannot have a wildcard` };
  return { ok: true, value: { text: t, domain: d.value, wildcard } };
}

/**
 * Matches a normalised domain against patterns: an exact match wins, then the longest
 * wildcard (Exchange's accepted-domain rule). Returns the index of the winner or -1.
 */
export function matchDomain(domain: string, patterns: readonly DomainPattern[]): number {
  let best = -1;
  let bestLen = -1;
  for (let i = 0; i < patterns.length; i++) {
    const p = patterns[i]!;
    if (!p.wildcard) {
      if (p.domain === domain) return i;
      continue;
    }
    const hit = p.domain === '' || domain === p.domain || domain.endsWith('.' + p.domain);
    if (hit && p.domain.length > bestLen) {
      best = i;
      bestLen = p.domain.length;
    }
  }
  return best;
}

/** Whether a normalised `domain` is `parent` or one of its subdomains. */
export function isUnder(domain: string, parent: string): boolean {
  return domain === parent || domain.endsWith(`.${parent}`);
}

/**
 * The accepted domains whose mail stays inside the organisation: Authoritative and InternalRelay
 * (an ExternalRelay domain is outside, as in Exchange: none of its mailboxes are here).
 */
export function insideDomains(accepted: ReadonlyArray<{ readonly domain: DomainPattern; readonly type: AcceptedDomainType }>): DomainPattern[] {
  return accepted.filter((d) => d.type !== 'ExternalRelay').map((d) => d.domain);
}

/** Whether a domain is inside the organisation (`inside`: insideDomains). */
export function isInside(domain: string, inside: readonly DomainPattern[]): boolean {
  return matchDomain(domain.toLowerCase(), inside) >= 0;
}
