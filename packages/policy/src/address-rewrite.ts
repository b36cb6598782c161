// Exchange's Edge address rewriting (the Address Rewriting Inbound and Outbound agents), as
// decisions: which address an entry turns a given address into, in which direction, and which
// way a copy of a message goes. Pure; the listener applies the inbound side to each RCPT, the
// worker both sides to the copy it sends each next hop.
//
// Outbound (internal → external): a single-address entry beats a domain entry, which beats a
// "*.domain" entry (the longest such domain first; its exceptionList left alone). Inbound
// (external → internal): only entries that are not outboundOnly, the address entry before the
// domain entry. A domain entry keeps the local part as written.
import { isInside, isUnder, type AddressRewriteEntry, type DomainPattern } from '@mailgw/config';
import { ADDRESS_FIELDS, RECIPIENT_FIELDS, formatAddress, parseEnvelopeAddress, rewriteHeaderAddresses, type MailAddress } from '@mailgw/mail';

export type RewriteDirection = 'outbound' | 'inbound';

export interface AddressRewriter {
  readonly entries: readonly AddressRewriteEntry[];
  readonly outAddress: ReadonlyMap<string, AddressRewriteEntry>;
  readonly outDomain: ReadonlyMap<string, AddressRewriteEntry>;
  /** "*.domain" entries, the longest domain first. */
  readonly outSubdomains: readonly AddressRewriteEntry[];
  readonly inAddress: ReadonlyMap<string, AddressRewriteEntry>;
  readonly inDomain: ReadonlyMap<string, AddressRewriteEntry>;
}

export interface RewrittenAddress {
  readonly address: MailAddress;
  /** The entry's name. */
  readonly entry: string;
}

const key = (local: string, domain: string): string => `${local.toLowerCase()}@${domain}`;

/** The entries compiled for lookups; null when there are none (nothing is ever rewritten). */
export function compileAddressRewrite(entries: readonly AddressRewriteEntry[]): AddressRewriter | null {
  if (entries.length === 0) return null;
  const outAddress = new Map<string, AddressRewriteEntry>();
  const outDomain = new Map<string, AddressRewriteEntry>();
  const inAddress = new Map<string, AddressRewriteEntry>();
  const inDomain = new Map<string, AddressRewriteEntry>();
  const outSubdomains: AddressRewriteEntry[] = [];
  for (const e of entries) {
    const i = e.internalAddress;
    const x = e.externalAddress;
    if (i.kind === 'address') outAddress.set(key(i.local, i.domain), e);
    else if (i.kind === 'domain') outDomain.set(i.domain, e);
    else outSubdomains.push(e);
    if (e.outboundOnly) continue;
    if (x.kind === 'address') inAddress.set(key(x.local, x.domain), e);
    else inDomain.set(x.domain, e);
  }
  outSubdomains.sort((a, b) => b.internalAddress.domain.length - a.internalAddress.domain.length);
  return { entries, outAddress, outDomain, outSubdomains, inAddress, inDomain };
}

/** What `to` (one side of an entry) makes of `a`: the address itself, or `a`'s local part at its domain. */
function onto(a: MailAddress, to: AddressRewriteEntry['externalAddress']): MailAddress {
  return to.kind === 'address' ? { local: to.local, domain: to.domain } : { local: a.local, domain: to.domain };
}

/**
 * The address `a` becomes in `direction`, and the entry that says so; null when no entry applies
 * or the entry leaves it as it is (contoso.com under "*.contoso.com → contoso.com").
 */
export function rewriteAddress(rw: AddressRewriter, direction: RewriteDirection, a: MailAddress): RewrittenAddress | null {
  const domain = a.domain.toLowerCase();
  let e: AddressRewriteEntry | undefined;
  let to: MailAddress | null = null;
  if (direction === 'inbound') {
    e = rw.inAddress.get(key(a.local, domain)) ?? rw.inDomain.get(domain);
    if (e) to = onto(a, e.internalAddress);
  } else {
    e = rw.outAddress.get(key(a.local, domain)) ?? rw.outDomain.get(domain) ?? rw.outSubdomains.find((s) => isUnder(domain, s.internalAddress.domain) && !s.exceptionList.some((x) => isUnder(domain, x)));
    if (e) to = onto(a, e.externalAddress);
  }
  if (!e || !to || (to.local === a.local && to.domain === domain)) return null;
  return { address: to, entry: e.name };
}

export interface RecipientRewrite {
  /** The recipient as mailgw goes on to judge, store and deliver it. */
  readonly recipient: string;
  /** The recipient as the client wrote it. */
  readonly original: string;
  /**
   * The ORCPT to keep when the client gave none (RFC 3461 4.2: DSNs name what the sender wrote):
   * rfc822;<original>, or undefined for a UTF-8 original (utf-8-addr-xtext is not written).
   */
  readonly orcpt: string | undefined;
  readonly entry: string;
  readonly reason: string;
}

/**
 * The Address Rewriting Inbound agent at RCPT: a recipient that is an entry's external side
 * becomes its internal side before mailgw judges it (accepted domain, recipient lookup, relay).
 * Not for addresses that name further hops (source routes, "%" and "!" in the local part):
 * those are judged as written.
 */
export function rewriteRecipient(rw: AddressRewriter | null, recipient: string): RecipientRewrite | null {
  if (!rw || rw.inAddress.size + rw.inDomain.size === 0) return null;
  const parsed = parseEnvelopeAddress(recipient);
  if (!parsed.ok || parsed.value.trick !== null) return null;
  const r = rewriteAddress(rw, 'inbound', parsed.value);
  if (!r) return null;
  const to = formatAddress(r.address);
  const original = parsed.value.address;
  return { recipient: to, original, orcpt: /^[\x21-\x7e]+$/.test(original) ? `rfc822;${original}` : undefined, entry: r.entry, reason: `recipient ${parsed.value.address} rewritten to ${to} by address rewrite entry "${r.entry}"` };
}

/** A copy for these recipients leaves the organisation (outbound) when any of them is outside it (`inside`: Policy.insideDomains). */
export function copyDirection(recipientDomains: readonly string[], inside: readonly DomainPattern[]): RewriteDirection {
  return recipientDomains.some((d) => !isInside(d, inside)) ? 'outbound' : 'inbound';
}

export interface RewrittenCopy {
  /** The envelope sender of the copy (outbound only; null: the null sender, unchanged). */
  readonly sender: MailAddress | null;
  /** The header of the copy, or null when no address field changed. */
  readonly header: Buffer | null;
  /** Entries that changed something, by name, once each. */
  readonly entries: readonly string[];
  /** Address fields changed (lower case names), and how many addresses in them. */
  readonly fields: readonly string[];
  readonly addresses: number;
  /** Whether the envelope sender changed. */
  readonly senderRewritten: boolean;
}

/**
 * What the copy of a message going `direction` looks like: outbound, the envelope sender and every
 * address field internal → external (replies then go to the public addresses); inbound, only the
 * destination fields (To, Cc, Bcc, Resent-To/Cc/Bcc) external → internal, as Exchange's inbound
 * agent: its recipients were rewritten at RCPT, and an originator field from outside (From: a
 * forged ceo@ the external domain) must never come to look internal. Null when nothing changes.
 */
export function rewriteCopy(rw: AddressRewriter, direction: RewriteDirection, sender: MailAddress | null, header: Buffer): RewrittenCopy | null {
  const entries = new Set<string>();
  const map = (a: MailAddress): MailAddress | null => {
    const r = rewriteAddress(rw, direction, a);
    if (r) entries.add(r.entry);
    return r?.address ?? null;
  };
  const s = direction === 'outbound' && sender ? map(sender) : null;
  const h = rewriteHeaderAddresses(header, map, direction === 'outbound' ? ADDRESS_FIELDS : RECIPIENT_FIELDS);
  if (!s && !h) return null;
  return { sender: s ?? sender, header: h?.header ?? null, entries: [...entries], fields: h?.fields ?? [], addresses: h?.addresses ?? 0, senderRewritten: s !== null };
}
