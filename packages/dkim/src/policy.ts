// Which key signs a message, decided without I/O: the From: domain picks the signing domain
// (d=) and its one or two selectors; a copy is signed only when it leaves the organisation (a
// recipient outside the accepted domains), so a forged From: on inbound mail never gains this
// gateway's signature. Every "no" comes with a reason for the log.
import { matchDomain, type DomainPattern } from '@mailgw/config';
import type { KeyObject } from 'node:crypto';
import { domainToASCII } from 'node:url';

export type DkimAlgorithm = 'rsa' | 'ed25519';

/** One loaded selector key. */
export interface DkimKey {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  readonly privateKey: KeyObject;
  /** The key file it came from (absolute). */
  readonly file: string;
}

/** What a worker signs with: keys by domain plus the header and canonicalisation settings. */
export interface DkimSetup {
  /** Lower-case ASCII domain → its one or two selector keys. */
  readonly keys: ReadonlyMap<string, readonly DkimKey[]>;
  readonly headers: readonly string[];
  readonly oversignHeaders: readonly string[];
  readonly canonicalization: string;
  readonly acceptedDomains: readonly DomainPattern[];
}

export type SigningDecision = { readonly sign: true; readonly domain: string; readonly keys: readonly DkimKey[] } | { readonly sign: false; readonly reason: string };

/** Drops quoted strings and comments of an RFC 5322 address list, so their "@" do not count. */
function stripQuotedAndComments(v: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
      continue;
    }
    if (c === '"' && depth === 0) quoted = true;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) out += c;
  }
  return out;
}

/** The domains of the From: header's addresses, lower case ASCII; [] when it has none. */
export function fromDomains(fromValue: string): string[] {
  const text = stripQuotedAndComments(fromValue);
  const out: string[] = [];
  for (const m of text.matchAll(/[^\s<>,;:@]+@([^\s<>,;:@()]+)/g)) {
    const d = m[1]!.toLowerCase().replace(/\.$/, '');
    out.push(domainToASCII(d) || d); // an SMTPUTF8 From: domain is signed under its ASCII name
  }
  return out;
}

/** What the signer knows of the body: BODY=BINARYMIME, and whether the message has a bare CR or LF ({@link hasBareLineEnds}). */
export interface BodyFacts {
  readonly binaryMime: boolean;
  readonly bareLineEnds: boolean;
}

/**
 * True when `message` holds a CR not followed by LF or an LF not preceded by CR. RFC 6376
 * canonicalises lines ending in CRLF; such octets (data in a BINARYMIME body) are read as a line
 * end by some verifiers (mailauth, like many, turns a bare LF into CRLF first) and as an octet by
 * others, so a signature over them verifies at some and fails at others.
 */
export function hasBareLineEnds(message: Buffer): boolean {
  for (let i = message.indexOf(0x0a); i >= 0; i = message.indexOf(0x0a, i + 1)) if (i === 0 || message[i - 1] !== 0x0d) return true;
  for (let i = message.indexOf(0x0d); i >= 0; i = message.indexOf(0x0d, i + 1)) if (message[i + 1] !== 0x0a) return true;
  return false;
}

/**
 * Decides whether and with which keys a message with this From: value is signed. `body`: a
 * BINARYMIME message with bare CR or LF is not signed (RFC 6376 §5.3: the signer signs what the
 * verifier receives, and a binary body is sent as it is, but verifiers do not agree on how to
 * canonicalise those octets; an unsigned message is better than one whose signature fails at
 * some verifiers). A binary body whose line ends are all CRLF is signed like any other.
 */
export function signingDecision(fromValue: string | null, setup: Pick<DkimSetup, 'keys'>, body?: BodyFacts): SigningDecision {
  if (fromValue === null) return { sign: false, reason: 'the message has no From: header' };
  const domains = [...new Set(fromDomains(fromValue))];
  if (domains.length === 0) return { sign: false, reason: 'the From: header has no address' };
  if (domains.length > 1) return { sign: false, reason: `the From: header has addresses in several domains (${domains.join(', ')})` };
  const domain = domains[0]!;
  const keys = setup.keys.get(domain);
  if (!keys || keys.length === 0) return { sign: false, reason: `no DKIM key for the From: domain ${domain}` };
  if (body?.binaryMime && body.bareLineEnds) {
    return { sign: false, reason: `the message is BODY=BINARYMIME and holds bare CR or LF octets, which DKIM verifiers canonicalise differently: sent unsigned rather than with a signature that fails at some (${domain})` };
  }
  return { sign: true, domain, keys };
}

/** True when one of the recipient domains is outside the accepted domains: that copy leaves the organisation. */
export function leavesOrganisation(recipientDomains: readonly string[], acceptedDomains: readonly DomainPattern[]): boolean {
  return recipientDomains.some((d) => matchDomain(d.toLowerCase(), acceptedDomains) < 0);
}
