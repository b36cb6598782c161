// Sender reputation (Exchange's Protocol Analysis agent, Set-SenderReputationConfig) and the
// IP Block List it feeds, judged here without I/O. Each sending address (IPv4 address; IPv6
// /64, what one host or customer holds) has a profile of what it did: messages, their spam
// confidence levels, how it introduced itself (HELO/EHLO) and whether its reverse DNS names
// it. From the profile comes a sender reputation level (SRL, 0 to 9); at srlBlockThreshold the
// address goes on the IP Block List for senderBlockingPeriod hours and is refused at RCPT, as
// Exchange's connection filter refuses its block list entries. The counting (Redis) and the
// lookups (DNS) are @mailgw/antispam's; the numbers are judged here, each with its reason.
import { isUnder, normaliseDomain, parseIp, parseIpRange, rangeContains, type IpAddress, type IpRange } from '@mailgw/config';
import type { EnvelopeAddress } from '@mailgw/mail';
import { getDomain } from 'tldts';
import type { Policy } from './compile.js';
import { antiSpam } from './content.js';
import { accept, reject, type Decision, type Reason } from './decision.js';
import { REPLIES } from './replies.js';
import type { Session } from './stages.js';
import { fromInternalServer } from './originating-client.js';

/** Exchange rates a sender only after this many messages (fewer say too little). */
export const SRL_MIN_MESSAGES = 20;
/** A message at this SCL or above counts as spam in the profile (Exchange's default SCLRejectThreshold). */
export const SRL_SPAM_SCL = 7;

// ---------------------------------------------------------------- who is rated

/** Whether sender reputation rates this session's mail, and why. */
export function senderReputationScope(policy: Policy, session: Session): { readonly applies: boolean; readonly reason: Reason } {
  const cfg = policy.config.gateway.senderReputationConfig;
  const no = (code: string, message: string) => ({ applies: false, reason: { code, message } });
  if (!cfg.enabled) return no('sender-reputation-disabled', 'senderReputationConfig.enabled is false');
  const c = session.connector;
  const own = c.config.senderReputationEnabled;
  if (!(own ?? c.config.usage === 'Internet')) return no('sender-reputation-off', `connector "${c.name}" does not rate its senders (${own === undefined ? `the default for usage ${c.config.usage}` : 'senderReputationEnabled: false'})`);
  const as = antiSpam(session);
  if (!as.applies) return no('sender-reputation-bypassed', as.reason.message);
  const allowed = policy.config.gateway.ipAllowList.find((r) => rangeContains(r, session.client));
  if (allowed) return no('ip-allow-list', `client ${session.client.text} is on the IP Allow List (${allowed.text}): not rated`);
  // The organisation's own relay would collect the Internet's reputation and block itself.
  if (fromInternalServer(policy, session)) return no('internal-smtp-server', `client ${session.client.text} is one of internalSMTPServers: not rated (the host before it is, by the Received field it wrote)`);
  if (session.user) {
    if (!cfg.internalMailEnabled) return no('sender-reputation-internal', `authenticated session (user ${session.user.name}): not rated (internalMailEnabled is false)`);
  } else if (!cfg.externalMailEnabled) return no('sender-reputation-external', 'anonymous session: not rated (externalMailEnabled is false)');
  return { applies: true, reason: { code: 'sender-reputation-applies', message: `${session.user ? `user ${session.user.name}` : 'anonymous session'} from ${session.client.text}: rated` } };
}

/**
 * The profile a client address is rated under, and the range a block covers: an IPv4 address
 * itself, an IPv6 address's /64 (a host gets a /64, and walking through it must not escape).
 */
export function reputationSubject(client: IpAddress): { readonly key: string; readonly range: IpRange } {
  if (client.family === 4) return { key: client.text, range: { family: 4, first: client.value, last: client.value, text: client.text } };
  const first = (client.value >> 64n) << 64n;
  const r = parseIpRange(`${formatV6Prefix(first)}/64`);
  return { key: r.ok ? r.value.text : client.text, range: r.ok ? r.value : { family: 6, first, last: first + (1n << 64n) - 1n, text: client.text } };
}

function formatV6Prefix(value: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 4; i--) groups.push(((value >> BigInt(16 * i)) & 0xffffn).toString(16));
  const r = parseIp(`${groups.join(':')}::`);
  return r.ok ? r.value.text : `${groups.join(':')}::`;
}

// ---------------------------------------------------------------- HELO/EHLO

/**
 * How a client introduced itself, as Exchange's HELO/EHLO analysis weighs it: an address
 * literal that is not the connecting address, or a name of this organisation (an accepted
 * domain or one of this gateway's host names) from outside, are forgeries spammers use.
 */
export type HeloKind = 'literal-match' | 'literal-mismatch' | 'local-name' | 'name' | 'other';

export interface HeloFacts {
  readonly kind: HeloKind;
  /** The name, lower case, for counting distinct names ('' for literals and junk). */
  readonly name: string;
  readonly detail: string;
}

export function heloFacts(policy: Policy, session: Session, helo: string): HeloFacts {
  const h = helo.trim();
  const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(h)?.[1] ?? (parseIp(h).ok ? h : null);
  if (literal !== null) {
    const ip = parseIp(literal);
    if (ip.ok && ip.value.family === session.client.family && ip.value.value === session.client.value) return { kind: 'literal-match', name: '', detail: `HELO ${h} is the client's address` };
    return { kind: 'literal-mismatch', name: '', detail: `HELO ${h} is not the client's address ${session.client.text}` };
  }
  const d = normaliseDomain(h.replace(/\.$/, ''));
  if (!d.ok || !d.value.includes('.')) return { kind: 'other', name: h.toLowerCase().slice(0, 255), detail: `HELO ${JSON.stringify(h.slice(0, 64))} is not a domain name` };
  const name = d.value;
  if (session.connector.ownHosts.has(name)) return { kind: 'local-name', name, detail: `HELO ${name} is this gateway's own name` };
  // A subdomain of an accepted domain is the organisation's name too (mail.contoso.com).
  const ours = policy.config.gateway.acceptedDomains.find((a) => a.domain.domain !== '' && isUnder(name, a.domain.domain));
  if (ours) return { kind: 'local-name', name, detail: `HELO ${name} claims the accepted domain ${ours.domain.wildcard ? '*.' : ''}${ours.domain.domain}` };
  return { kind: 'name', name, detail: `HELO ${name}` };
}

/**
 * What the listener saw of a rated session (counted by @mailgw/antispam): a message at the end
 * of DATA, or a recipient refused as unknown (a directory harvest never reaches DATA).
 */
export type ReputationObservation =
  | {
      readonly kind: 'message';
      readonly client: IpAddress;
      readonly helo: string;
      readonly heloFacts: HeloFacts;
      /** The message's spam confidence level, when a content filter gave one. */
      readonly scl: number | null;
      /** Its recipients (accepted at RCPT). */
      readonly recipients: number;
    }
  | { readonly kind: 'unknown-recipient'; readonly client: IpAddress; readonly helo: string };

/** What a finished message (its end of DATA) tells sender reputation; null when the session is not rated. */
export function messageObservation(policy: Policy, session: Session, helo: string, scl: number | null, recipients: number): ReputationObservation | null {
  if (!senderReputationScope(policy, session).applies) return null;
  return { kind: 'message', client: session.client, helo, heloFacts: heloFacts(policy, session, helo), scl, recipients };
}

/** Refusals that say "no such mailbox": by the recipient list or directory, or by the next hop (recipientVerification). */
const UNKNOWN_RECIPIENT_CODES: ReadonlySet<string> = new Set(['user-unknown', 'unknown-at-next-hop']);

/** What a refused RCPT tells it: an unknown recipient counts against a rated sender (a directory harvest); other refusals do not. */
export function refusalObservation(policy: Policy, session: Session, refusal: Decision, helo: string): ReputationObservation | null {
  if (!UNKNOWN_RECIPIENT_CODES.has(refusal.reason.code) || !senderReputationScope(policy, session).applies) return null;
  return { kind: 'unknown-recipient', client: session.client, helo };
}

/** Where a listener reports what rated sessions sent (@mailgw/antispam's SenderReputation). */
export interface ReputationRecorder {
  observe(o: ReputationObservation): void;
}

/** Where a listener reads the IP Block List from (@mailgw/antispam's IpBlockListView). */
export interface IpBlockListSource {
  entries(): readonly IpBlockListEntry[];
}

// ---------------------------------------------------------------- reverse DNS

/** What the client's reverse DNS says: a forward-confirmed PTR name in the HELO's domain (match), another one (mismatch), none, or unknown (lookup failed). */
export type ReverseDnsResult = 'match' | 'mismatch' | 'none' | 'unknown';

/**
 * Judges a PTR lookup (Exchange: "the originating IP address matches the registered domain
 * name that the sender submits in the HELO/EHLO command"). `confirmed` are the PTR names whose
 * own A/AAAA records include the client (forward-confirmed); `lookup` failed means unknown.
 */
export function reverseDnsResult(helo: string, lookup: { readonly ok: true; readonly confirmed: readonly string[] } | { readonly ok: false }): { readonly result: ReverseDnsResult; readonly detail: string } {
  if (!lookup.ok) return { result: 'unknown', detail: 'reverse DNS lookup failed' };
  if (lookup.confirmed.length === 0) return { result: 'none', detail: 'no forward-confirmed PTR name' };
  const registered = (n: string) => getDomain(n.toLowerCase().replace(/\.$/, ''), { allowPrivateDomains: false }) ?? n.toLowerCase();
  const heloName = helo.trim().toLowerCase().replace(/\.$/, '');
  const hit = lookup.confirmed.find((p) => registered(p) === registered(heloName));
  if (hit) return { result: 'match', detail: `PTR ${hit} is in the HELO's domain ${registered(heloName)}` };
  return { result: 'mismatch', detail: `PTR ${lookup.confirmed[0]} is not in the HELO's domain ${heloName ? registered(heloName) : '(none)'}` };
}

// ---------------------------------------------------------------- the level

/** What the counting keeps per sender (@mailgw/antispam writes it in Redis). */
export interface ReputationProfile {
  readonly messages: number;
  /** Messages whose SCL was SRL_SPAM_SCL or more. */
  readonly spam: number;
  /** Messages whose session gave an address literal not the client's. */
  readonly heloLiteralMismatch: number;
  /** Messages whose session gave a name of this organisation. */
  readonly heloLocalName: number;
  /** Distinct HELO names seen (approximately: a HyperLogLog). */
  readonly heloNames: number;
  /** Recipients of its messages (accepted at RCPT). */
  readonly recipients: number;
  /** RCPTs refused as unknown mailboxes (550 5.1.1). */
  readonly unknownRecipients: number;
  readonly reverseDns: ReverseDnsResult;
}

export interface SrlPart {
  readonly signal: 'spam' | 'helo-forged' | 'helo-names' | 'unknown-recipients' | 'reverse-dns';
  readonly points: number;
  readonly detail: string;
}

export interface SenderReputationLevel {
  /** 0..9, or null while the sender has sent fewer than SRL_MIN_MESSAGES. */
  readonly srl: number | null;
  readonly parts: readonly SrlPart[];
  readonly reason: string;
}

const pct = (n: number, of: number) => `${Math.round((100 * n) / Math.max(of, 1))}%`;

/**
 * A sender's SRL from its profile: points for the share of spam (up to 8), for forged HELOs
 * (up to 3), for many different HELO names (up to 2), for the share of unknown recipients it
 * tried (up to 8) and for reverse DNS (up to 2), at most 9. Spam alone can block, a directory
 * harvest alone too; a sender that forges HELO, hops names and has no PTR can as well. Rated
 * from SRL_MIN_MESSAGES messages, or as many unknown recipients.
 */
export function senderReputationLevel(p: ReputationProfile): SenderReputationLevel {
  if (p.messages < SRL_MIN_MESSAGES && p.unknownRecipients < SRL_MIN_MESSAGES) {
    return { srl: null, parts: [], reason: `not rated yet: ${p.messages} of ${SRL_MIN_MESSAGES} messages${p.unknownRecipients ? `, ${p.unknownRecipients} of ${SRL_MIN_MESSAGES} unknown recipients` : ''}` };
  }
  const parts: SrlPart[] = [];
  const per = (n: number) => (p.messages === 0 ? 0 : n / p.messages);
  parts.push({ signal: 'spam', points: Math.round(8 * per(p.spam)), detail: `${p.spam} of ${p.messages} messages (${pct(p.spam, p.messages)}) at SCL ${SRL_SPAM_SCL} or more` });
  const forged = Math.min(p.messages, p.heloLiteralMismatch + p.heloLocalName);
  parts.push({ signal: 'helo-forged', points: Math.round(3 * per(forged)), detail: `${forged} of ${p.messages} messages (${pct(forged, p.messages)}) came with a HELO not the sender's own (${p.heloLiteralMismatch} another address, ${p.heloLocalName} this organisation's name)` });
  parts.push({ signal: 'helo-names', points: p.heloNames >= 10 ? 2 : p.heloNames >= 4 ? 1 : 0, detail: `${p.heloNames} different HELO names` });
  const tried = p.recipients + p.unknownRecipients;
  parts.push({ signal: 'unknown-recipients', points: tried === 0 ? 0 : Math.round((8 * p.unknownRecipients) / tried), detail: `${p.unknownRecipients} of ${tried} recipients (${pct(p.unknownRecipients, tried)}) unknown` });
  const rdns = { none: 2, mismatch: 1, match: 0, unknown: 0 }[p.reverseDns];
  parts.push({ signal: 'reverse-dns', points: rdns, detail: { none: 'no forward-confirmed reverse DNS', mismatch: 'reverse DNS names another domain than the HELO', match: "reverse DNS matches the HELO's domain", unknown: 'reverse DNS not known' }[p.reverseDns] });
  const srl = Math.min(9, parts.reduce((a, x) => a + x.points, 0));
  const scored = parts.filter((x) => x.points > 0).map((x) => `${x.signal} +${x.points} (${x.detail})`);
  return { srl, parts, reason: `SRL ${srl}${scored.length ? `: ${scored.join('; ')}` : ': nothing against it'}` };
}

/** What to do with a sender after a message: block it (for how long), or keep counting. */
export interface ReputationVerdict {
  readonly level: SenderReputationLevel;
  /** Put on the IP Block List until this time (ms since the epoch); null: not blocked. */
  readonly blockUntil: number | null;
  readonly reason: string;
}

export function reputationVerdict(policy: Policy, p: ReputationProfile, now: number): ReputationVerdict {
  const cfg = policy.config.gateway.senderReputationConfig;
  const level = senderReputationLevel(p);
  if (level.srl === null || level.srl < cfg.srlBlockThreshold) return { level, blockUntil: null, reason: `${level.reason}${level.srl === null ? '' : ` (below srlBlockThreshold ${cfg.srlBlockThreshold})`}` };
  if (!cfg.senderBlockingEnabled) return { level, blockUntil: null, reason: `${level.reason} ≥ srlBlockThreshold ${cfg.srlBlockThreshold}; not blocked (senderBlockingEnabled is false)` };
  if (cfg.senderBlockingPeriod === 0) return { level, blockUntil: null, reason: `${level.reason} ≥ srlBlockThreshold ${cfg.srlBlockThreshold}; not blocked (senderBlockingPeriod is 0)` };
  return { level, blockUntil: now + cfg.senderBlockingPeriod * 3_600_000, reason: `${level.reason} ≥ srlBlockThreshold ${cfg.srlBlockThreshold}: blocked for ${cfg.senderBlockingPeriod} h` };
}

// ---------------------------------------------------------------- the IP Block List

/**
 * One entry of the IP Block List (Exchange Add-IPBlockListEntry / Get-IPBlockListEntry): put
 * there by sender reputation (machine) or by an admin (static), until it expires.
 */
export interface IpBlockListEntry {
  /** The address or range, as written (an IPv6 machine entry is a /64). */
  readonly range: string;
  readonly kind: 'machine' | 'static';
  readonly addedAt: number;
  /** ms since the epoch; null: until removed. */
  readonly expiresAt: number | null;
  readonly comment: string;
}

/** An entry list read for lookups: single addresses by value, ranges in a list (parsed once per list). */
interface BlockIndex {
  readonly single: ReadonlyMap<string, IpBlockListEntry[]>;
  readonly ranges: ReadonlyArray<{ readonly range: IpRange; readonly entry: IpBlockListEntry }>;
}
const indexes = new WeakMap<readonly IpBlockListEntry[], BlockIndex>();

function indexOf(entries: readonly IpBlockListEntry[]): BlockIndex {
  let ix = indexes.get(entries);
  if (ix) return ix;
  const single = new Map<string, IpBlockListEntry[]>();
  const ranges: Array<{ range: IpRange; entry: IpBlockListEntry }> = [];
  for (const entry of entries) {
    const r = parseIpRange(entry.range);
    if (!r.ok) continue;
    if (r.value.first === r.value.last) {
      const k = `${r.value.family}:${r.value.first}`;
      single.set(k, [...(single.get(k) ?? []), entry]);
    } else ranges.push({ range: r.value, entry });
  }
  ix = { single, ranges };
  indexes.set(entries, ix);
  return ix;
}

/**
 * The entry (not expired) that has this client, the narrowest first; null if none. Sender
 * reputation's entries are single addresses (thousands, looked up by value); ranges are few.
 */
export function ipBlockListEntryFor(entries: readonly IpBlockListEntry[], client: IpAddress, now: number): IpBlockListEntry | null {
  const live = (e: IpBlockListEntry) => e.expiresAt === null || e.expiresAt > now;
  const ix = indexOf(entries);
  const exact = ix.single.get(`${client.family}:${client.value}`)?.find(live);
  if (exact) return exact;
  let best: { e: IpBlockListEntry; size: bigint } | null = null;
  for (const { range, entry } of ix.ranges) {
    if (!live(entry) || !rangeContains(range, client)) continue;
    const size = range.last - range.first;
    if (!best || size < best.size) best = { e: entry, size };
  }
  return best?.e ?? null;
}

/**
 * The IP Block List at RCPT (Exchange's connection filter): a client with an entry is refused
 * 550 5.7.1 for every recipient but ipBlockListConfig.bypassedRecipients, unless it is on the
 * IP Allow List or the session bypasses anti-spam. null: no entry has the client.
 */
export function ipBlockListFilter(policy: Policy, session: Session, recipient: Pick<EnvelopeAddress, 'address'>, entries: readonly IpBlockListEntry[], now: number): Decision | null {
  if (entries.length === 0 || !antiSpam(session).applies) return null;
  // The organisation's own relay: the host before it is judged at the end of the header (listener origin-filter.ts).
  if (fromInternalServer(policy, session)) return null;
  const e = ipBlockListEntryFor(entries, session.client, now);
  if (!e) return null;
  const g = policy.config.gateway;
  const allowed = g.ipAllowList.find((r) => rangeContains(r, session.client));
  const what = `${session.client.text} is on the IP Block List (${e.range}, ${e.kind === 'machine' ? 'sender reputation' : 'added by an admin'}${e.comment ? `: ${e.comment}` : ''}${e.expiresAt === null ? '' : `, until ${new Date(e.expiresAt).toISOString()}`})`;
  if (allowed) return accept(REPLIES.recipientOk, 'ip-allow-list', `${what}, but on the IP Allow List (${allowed.text})`);
  if (g.ipBlockListConfig.bypassedRecipients.includes(recipient.address.toLowerCase())) return accept(REPLIES.recipientOk, 'block-list-bypassed-recipient', `${what}, but ${recipient.address} is in ipBlockListConfig.bypassedRecipients`);
  const text = e.kind === 'machine' ? g.ipBlockListConfig.machineEntryRejectionResponse : g.ipBlockListConfig.staticEntryRejectionResponse;
  return reject(text ? REPLIES.blockListedCustom(text) : REPLIES.blockListed, e.kind === 'machine' ? 'sender-reputation-blocked' : 'ip-block-list', what);
}
