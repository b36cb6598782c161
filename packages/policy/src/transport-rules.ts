// Exchange's Edge Rules agent as a decision: which transport rules a message matches and what
// their actions make of it (a refusal, a deletion, a quarantine, header and envelope changes),
// each with the rule that said so. Pure: the content-filter package gathers the facts at the
// end of DATA and hands the outcome to the listener as any filter's.
//
// Matching follows Exchange: every condition of a rule must hold, a list within a condition
// holds when any entry does, one exception spares the message; words are matched as whole
// words or phrases and patterns as regular expressions, both without regard to case, in the
// Subject and header fields as decoded text (RFC 2047); addresses are compared as
// local@domain without regard to case. Rules are judged in order; a refusal or deletion ends
// the list, as does stopRuleProcessing; a rule in Audit mode is reported and changes nothing.
import { isAddressGroupRef, isInside, isUnder, normaliseClientIp, rangeContains, type AdAttributePattern, type AdAttributeWords, type DomainPattern, type MessageType, type RuleConditions, type TransportRule } from '@mailgw/config';
import { decodeEncodedWords, formatAddress, formatReply, type BodyDisclaimer, type EnvelopeEdit, type HeaderEdit, type MailAddress, type Reply } from '@mailgw/mail';
import { has, type Session } from './stages.js';
import { reject, type Decision } from './decision.js';
import { SCL_HEADER } from './content-filter.js';
import { REPLIES } from './replies.js';
import { effectiveFileName } from './attachment-filter.js';
import { disclaimerTokens } from './disclaimer-tokens.js';
import { messageTypes, type TypedPart } from './message-types.js';
import { inGroup, normaliseDn, type KnownMemberships } from './directory.js';

/** What the rules are judged on: the envelope, the session, the header fields as received and the size. */
export interface MessageFacts {
  readonly envelopeSender: MailAddress | null;
  /** The (first) address of the From: field, when it has one. */
  readonly fromHeader: MailAddress | null;
  readonly recipients: readonly MailAddress[];
  readonly clientIP: string;
  /** The session is your own users' or servers' (it holds ms-Exch-Bypass-Anti-Spam). */
  readonly internalSession: boolean;
  /** Header fields by lower-case name: unfolded values as received, in order. */
  readonly fields: ReadonlyMap<string, readonly string[]>;
  /** Message size in bytes. */
  readonly size: number;
  /** The message's text (its text part, or its HTML part as text), when a rule reads it; null: not read. */
  readonly bodyText?: string | null;
  /** Its attachments (parts with a file name, in attached messages too), when a rule reads them; null: not read. */
  readonly attachments?: readonly RuleAttachment[] | null;
  /** Its parts' types, when a rule asks for a message type read from them (Calendaring, PermissionControlled); null: not read. */
  readonly parts?: readonly TypedPart[] | null;
  /** The session may send X-MS-Exchange-Organization-* fields (ms-Exch-Accept-Headers-Organization): AutoForward, ApprovalRequest. */
  readonly organizationHeadersTrusted?: boolean;
  /**
   * What the directory said of the addresses the group conditions asked about. An address not
   * in it is an open question: the outcome lists it (`unansweredMembership`) and the caller asks
   * the directory and judges again.
   */
  readonly memberships?: KnownMemberships;
  /**
   * What the directory said of the attributes (Exchange's names: Department, Title, …) of the
   * objects holding the addresses the directory attribute conditions asked about; an address not
   * in it is an open question as for memberships (`unansweredAttributes`).
   */
  readonly adAttributes?: KnownAdAttributes;
}

/**
 * An address's directory object as the attribute and manager conditions see it: its values by
 * Exchange attribute name (Manager as a name), its DN and its manager's DN (the manager
 * conditions compare DNs), or no object.
 */
export type AdAttributesAnswer =
  | { readonly kind: 'found'; readonly values: Readonly<Record<string, readonly string[]>>; readonly dn?: string; readonly managerDn?: string | null }
  | { readonly kind: 'not-found' };
/** What is known of the addresses the attribute conditions asked about (lower-case address → answer). */
export type KnownAdAttributes = ReadonlyMap<string, AdAttributesAnswer>;

/** An attachment as the rules see it. */
export interface RuleAttachment {
  /** The file name as the message gives it (decoded). */
  readonly name: string;
  /** Its size once decoded (bytes), when a rule needs it; null: not measured. */
  readonly size: number | null;
  /** A zip archive holding encrypted files (read when a rule asks attachmentIsPasswordProtected). */
  readonly passwordProtected?: boolean;
}

/** The extension of a file name as Windows reads it (lower case, no dot; '' for none). */
export function fileExtension(name: string): string {
  const n = effectiveFileName(name);
  const dot = n.lastIndexOf('.');
  return dot <= 0 ? '' : n.slice(dot + 1).toLowerCase();
}

export interface RuleMatch {
  readonly rule: string;
  readonly mode: 'Enforce' | 'Audit';
}

export interface RulesOutcome {
  readonly matched: readonly RuleMatch[];
  readonly verdict: 'accept' | 'reject' | 'tempfail' | 'discard' | 'quarantine';
  readonly reply?: Reply | undefined;
  readonly headers: readonly HeaderEdit[];
  readonly envelope: readonly EnvelopeEdit[];
  readonly reason: string;
  /** The SCL the last setScl set (sender reputation counts it as the message's), when one did. */
  readonly scl?: number | undefined;
  /** What logEventText asked to be written, by rule (Enforce mode), in order. */
  readonly events?: ReadonlyArray<{ readonly rule: string; readonly text: string }> | undefined;
  /** The disclaimers to put into the message, by rule (Enforce mode), in order. */
  readonly disclaimers?: readonly BodyDisclaimer[] | undefined;
  /** Addresses a group condition asked about that `facts.memberships` does not answer: this outcome stands only once they are answered. */
  readonly unansweredMembership?: readonly string[] | undefined;
  /** Addresses a directory attribute condition asked about that `facts.adAttributes` does not answer: the same. */
  readonly unansweredAttributes?: readonly string[] | undefined;
}

/** The directory questions judging left open: group memberships and attributes, by address. */
interface Asked {
  readonly memberships: Set<string>;
  readonly attributes: Set<string>;
}

/** Whether a session counts as inside the organisation for FromScope (Exchange: an authenticated sender or connection). */
export function internalSession(session: Session): boolean {
  return has(session, 'ms-Exch-Bypass-Anti-Spam');
}

/** Text longer than this is judged by its first part only: patterns are the admin's, the text is the sender's. */
const MAX_TEXT = 4096;
/** The part of a message's text the subjectOrBody conditions read. */
export const MAX_BODY_TEXT = 128 * 1024;

const wordRegexes = new WeakMap<readonly string[], RegExp[]>();
/** Whole words or phrases, case ignored: "sale" is in "Big sale!", not in "wholesale". */
function containsWords(text: string, words: readonly string[], max = MAX_TEXT): boolean {
  let res = wordRegexes.get(words);
  if (!res) {
    res = words.map((w) => new RegExp(`(?:^|[^\\p{L}\\p{N}_])${w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+')}(?:$|[^\\p{L}\\p{N}_])`, 'iu'));
    wordRegexes.set(words, res);
  }
  const t = text.slice(0, max);
  return res.some((r) => r.test(t));
}

const matchesPatterns = (text: string, patterns: readonly RegExp[], max = MAX_TEXT): boolean => {
  const t = text.slice(0, max);
  return patterns.some((p) => p.test(t));
};

const addressText = (a: MailAddress): string => formatAddress(a).toLowerCase();
const under = (domain: string, parents: readonly string[]): boolean => parents.some((p) => isUnder(domain, p));
/** Decoded values by field name, per fields map: each field is decoded once however many rules read it. */
const decodedFields = new WeakMap<ReadonlyMap<string, readonly string[]>, Map<string, string[]>>();
function decoded(facts: MessageFacts, name: string): string[] {
  const n = name.toLowerCase();
  let cache = decodedFields.get(facts.fields);
  if (!cache) decodedFields.set(facts.fields, (cache = new Map()));
  let values = cache.get(n);
  if (!values) cache.set(n, (values = (facts.fields.get(n) ?? []).map(decodeEncodedWords)));
  return values;
}

/** The message's types, per fields map (a rule that changes a field drops it: see `set`). */
const typesByFields = new WeakMap<ReadonlyMap<string, readonly string[]>, Set<MessageType>>();
function typesOf(facts: MessageFacts): Set<MessageType> {
  let t = typesByFields.get(facts.fields);
  if (!t) typesByFields.set(facts.fields, (t = messageTypes({ fields: facts.fields, parts: facts.parts ?? null, organizationHeadersTrusted: facts.organizationHeadersTrusted === true })));
  return t;
}

/** The Subject or the message's text (when it was read) passes `test`, each within its length cap. */
const subjectOrBody = (facts: MessageFacts, test: (text: string, max: number) => boolean): boolean =>
  decoded(facts, 'subject').some((s) => test(s, MAX_TEXT)) || (facts.bodyText != null && test(facts.bodyText, MAX_BODY_TEXT));

const NO_MEMBERSHIPS: KnownMemberships = new Map();
const NO_AD_ATTRIBUTES: KnownAdAttributes = new Map();

/**
 * Whether an attribute of the object holding `a` contains one of the words of an entry, or
 * matches its pattern (any entry: Exchange's or), by what the directory said; an address it has
 * not been asked about goes into `asked`, and counts as no. No object: no.
 */
function adAttributeHolds(a: MailAddress, entries: ReadonlyArray<AdAttributeWords | AdAttributePattern>, facts: MessageFacts, asked: Set<string>): boolean {
  const answer = entryOf(addressKey(a), facts, asked);
  return answer?.kind === 'found' && adAttributeEntriesHold(entries, answer.values);
}

/** An address as the directory answers are keyed: local@domain, lower case. */
const addressKey = (a: MailAddress): string => `${a.local}@${a.domain}`.toLowerCase();

/** The directory object holding `address` (addressKey) as the attribute conditions know it; unknown: asked (and undefined). */
function entryOf(address: string, facts: MessageFacts, asked: Set<string>): AdAttributesAnswer | undefined {
  const answer = (facts.adAttributes ?? NO_AD_ATTRIBUTES).get(address);
  if (answer === undefined) asked.add(address);
  return answer;
}

const sameDn = (x: string | null | undefined, y: string | null | undefined): boolean => !!x && !!y && normaliseDn(x) === normaliseDn(y);

/** -ManagerAddresses: the manager of `a` is the object holding one of `managers` (each asked about as well). */
function managedBy(a: MailAddress, managers: readonly string[], facts: MessageFacts, asked: Set<string>): boolean {
  const subject = entryOf(addressKey(a), facts, asked);
  // managerAddresses are lower case already (the config's mailboxAddress).
  const bosses = managers.map((m) => entryOf(m, facts, asked));
  if (subject?.kind !== 'found') return false;
  return bosses.some((b) => b?.kind === 'found' && sameDn(subject.managerDn, b.dn));
}

/** -SenderManagementRelationship between a sender and a recipient. */
function related(sender: MailAddress, rcpt: MailAddress, how: 'Manager' | 'DirectReport', facts: MessageFacts, asked: Set<string>): boolean {
  const s = entryOf(addressKey(sender), facts, asked);
  const r = entryOf(addressKey(rcpt), facts, asked);
  if (s?.kind !== 'found' || r?.kind !== 'found') return false;
  return how === 'Manager' ? sameDn(r.managerDn, s.dn) : sameDn(s.managerDn, r.dn);
}

/** The entries of a directory attribute condition that hold for these values (Exchange attribute name → values). */
export function adAttributeEntriesHold(entries: ReadonlyArray<AdAttributeWords | AdAttributePattern>, values: Readonly<Record<string, readonly string[]>>): boolean {
  return entries.some((e) => (values[e.attribute] ?? []).some((v) => ('words' in e ? containsWords(v, e.words) : matchesPatterns(v, [e.pattern]))));
}

/**
 * Whether the object holding `a` is in one of `refs` (`self`: or is one of them), by what the
 * directory said; an address it has not been asked about goes into `asked`, and counts as no.
 */
function memberOf(a: MailAddress, refs: readonly string[], self: boolean, facts: MessageFacts, asked: Set<string>): boolean {
  const known: KnownMemberships = facts.memberships ?? NO_MEMBERSHIPS;
  const address = addressKey(a);
  const subject = known.get(address);
  if (subject === undefined) asked.add(address);
  const refAnswers = refs.map((r) => {
    if (!isAddressGroupRef(r)) return undefined;
    const answer = known.get(r);
    if (answer === undefined) asked.add(r);
    return answer;
  });
  return subject?.kind === 'found' && refs.some((r, i) => inGroup(subject, r, refAnswers[i], self));
}

/** Every condition in `c` holds (true when `c` has none). `senders`: the sender addresses the rule reads. */
function holds(c: RuleConditions, facts: MessageFacts, senders: readonly MailAddress[], inside: readonly DomainPattern[], asked: Asked): boolean {
  const anySender = (f: (a: MailAddress) => boolean) => senders.some(f);
  const anyRcpt = (f: (a: MailAddress) => boolean) => facts.recipients.some(f);
  const insideOrg = (a: MailAddress) => isInside(a.domain, inside);
  if (c.from && !anySender((a) => c.from!.includes(addressText(a)))) return false;
  if (c.fromAddressContainsWords && !anySender((a) => c.fromAddressContainsWords!.some((w) => addressText(a).includes(w.toLowerCase())))) return false;
  if (c.fromAddressMatchesPatterns && !anySender((a) => matchesPatterns(addressText(a), c.fromAddressMatchesPatterns!))) return false;
  if (c.fromScope) {
    const inOrg = senders.length > 0 && facts.internalSession && anySender(insideOrg);
    if ((c.fromScope === 'InOrganization') !== inOrg) return false;
  }
  if (c.senderDomainIs && !anySender((a) => under(a.domain.toLowerCase(), c.senderDomainIs!))) return false;
  if (c.sentTo && !anyRcpt((a) => c.sentTo!.includes(addressText(a)))) return false;
  if (c.sentToScope && !anyRcpt((a) => insideOrg(a) === (c.sentToScope === 'InOrganization'))) return false;
  if (c.recipientDomainIs && !anyRcpt((a) => under(a.domain.toLowerCase(), c.recipientDomainIs!))) return false;
  if (c.anyOfRecipientAddressContainsWords && !anyRcpt((a) => c.anyOfRecipientAddressContainsWords!.some((w) => addressText(a).includes(w.toLowerCase())))) return false;
  if (c.anyOfRecipientAddressMatchesPatterns && !anyRcpt((a) => matchesPatterns(addressText(a), c.anyOfRecipientAddressMatchesPatterns!))) return false;
  if (c.subjectContainsWords && !decoded(facts, 'subject').some((s) => containsWords(s, c.subjectContainsWords!))) return false;
  if (c.subjectMatchesPatterns && !decoded(facts, 'subject').some((s) => matchesPatterns(s, c.subjectMatchesPatterns!))) return false;
  if (c.subjectOrBodyContainsWords && !subjectOrBody(facts, (t, max) => containsWords(t, c.subjectOrBodyContainsWords!, max))) return false;
  if (c.subjectOrBodyMatchesPatterns && !subjectOrBody(facts, (t, max) => matchesPatterns(t, c.subjectOrBodyMatchesPatterns!, max))) return false;
  if (c.headerContainsMessageHeader && c.headerContainsWords && !decoded(facts, c.headerContainsMessageHeader).some((v) => containsWords(v, c.headerContainsWords!))) return false;
  if (c.headerMatchesMessageHeader && c.headerMatchesPatterns && !decoded(facts, c.headerMatchesMessageHeader).some((v) => matchesPatterns(v, c.headerMatchesPatterns!))) return false;
  if (c.messageSizeOver !== undefined && !(facts.size > c.messageSizeOver)) return false;
  if (c.senderIpRanges) {
    const ip = normaliseClientIp(facts.clientIP);
    if (!ip || !c.senderIpRanges.some((r) => rangeContains(r, ip))) return false;
  }
  const attachments = facts.attachments ?? [];
  // The name as given and as Windows would act on it ("invoice.exe." opens as invoice.exe).
  if (c.attachmentNameMatchesPatterns && !attachments.some((a) => [a.name, effectiveFileName(a.name)].some((n) => matchesPatterns(n, c.attachmentNameMatchesPatterns!)))) return false;
  if (c.attachmentExtensionMatchesWords && !attachments.some((a) => c.attachmentExtensionMatchesWords!.includes(fileExtension(a.name)))) return false;
  if (c.attachmentSizeOver !== undefined && !attachments.some((a) => a.size !== null && a.size > c.attachmentSizeOver!)) return false;
  if (c.attachmentIsPasswordProtected === true && !attachments.some((a) => a.passwordProtected === true)) return false;
  if (c.messageTypeMatches && !c.messageTypeMatches.some((t) => typesOf(facts).has(t))) return false;
  // Last: the only conditions that cost a directory question, asked only when the rest hold.
  if (c.senderADAttributeContainsWords && !anySender((a) => adAttributeHolds(a, c.senderADAttributeContainsWords!, facts, asked.attributes))) return false;
  if (c.senderADAttributeMatchesPatterns && !anySender((a) => adAttributeHolds(a, c.senderADAttributeMatchesPatterns!, facts, asked.attributes))) return false;
  if (c.recipientADAttributeContainsWords && !anyRcpt((a) => adAttributeHolds(a, c.recipientADAttributeContainsWords!, facts, asked.attributes))) return false;
  if (c.recipientADAttributeMatchesPatterns && !anyRcpt((a) => adAttributeHolds(a, c.recipientADAttributeMatchesPatterns!, facts, asked.attributes))) return false;
  if (c.managerAddresses && c.managerForEvaluatedUser) {
    const who = c.managerForEvaluatedUser === 'Sender' ? anySender : anyRcpt;
    if (!who((a) => managedBy(a, c.managerAddresses!, facts, asked.attributes))) return false;
  }
  if (c.senderManagementRelationship && !anySender((s) => facts.recipients.some((r) => related(s, r, c.senderManagementRelationship!, facts, asked.attributes)))) return false;
  if (c.betweenMemberOf1 && c.betweenMemberOf2) {
    // Either way: a sender in one side's groups writing to a member (or the group) of the other's.
    const between = (from: readonly string[], to: readonly string[]) => anySender((a) => memberOf(a, from, false, facts, asked.memberships)) && anyRcpt((a) => memberOf(a, to, true, facts, asked.memberships));
    if (!between(c.betweenMemberOf1, c.betweenMemberOf2) && !between(c.betweenMemberOf2, c.betweenMemberOf1)) return false;
  }
  if (c.fromMemberOf && !anySender((a) => memberOf(a, c.fromMemberOf!, false, facts, asked.memberships))) return false;
  if (c.sentToMemberOf && !anyRcpt((a) => memberOf(a, c.sentToMemberOf!, true, facts, asked.memberships))) return false;
  return true;
}

/** Whether `c` sets any condition at all (an exception with none never applies). */
const anyCondition = (c: RuleConditions): boolean => Object.keys(c).length > 0;

/** The sender addresses a rule reads, by its senderAddressLocation. */
function sendersOf(rule: TransportRule, facts: MessageFacts): MailAddress[] {
  const header = facts.fromHeader ? [facts.fromHeader] : [];
  const envelope = facts.envelopeSender ? [facts.envelopeSender] : [];
  return rule.senderAddressLocation === 'Header' ? header : rule.senderAddressLocation === 'Envelope' ? envelope : [...header, ...envelope];
}

/**
 * Whether a rule matches: its conditions hold and none of its exceptions does. `asked` collects
 * the addresses a group or attribute condition needed and `facts` did not answer.
 */
export function ruleMatches(rule: TransportRule, facts: MessageFacts, inside: readonly DomainPattern[], asked: Asked = { memberships: new Set(), attributes: new Set() }): boolean {
  const senders = sendersOf(rule, facts);
  return holds(rule.conditions, facts, senders, inside, asked) && !(anyCondition(rule.exceptions) && exceptionHolds(rule.exceptions, facts, senders, inside, asked));
}

/** An exception holds when any one of its conditions does. */
function exceptionHolds(c: RuleConditions, facts: MessageFacts, senders: readonly MailAddress[], inside: readonly DomainPattern[], asked: Asked): boolean {
  return (Object.keys(c) as Array<keyof RuleConditions>).some((k) => {
    // The header conditions and betweenMemberOf are two keys that make one condition: judged as a pair.
    if (k === 'headerContainsWords' || k === 'headerMatchesPatterns' || k === 'betweenMemberOf2' || k === 'managerForEvaluatedUser') return false;
    const one: Record<string, unknown> = { [k]: c[k] };
    if (k === 'headerContainsMessageHeader') one.headerContainsWords = c.headerContainsWords;
    if (k === 'headerMatchesMessageHeader') one.headerMatchesPatterns = c.headerMatchesPatterns;
    if (k === 'betweenMemberOf1') one.betweenMemberOf2 = c.betweenMemberOf2;
    if (k === 'managerAddresses') one.managerForEvaluatedUser = c.managerForEvaluatedUser;
    return holds(one as RuleConditions, facts, senders, inside, asked);
  });
}


/** A prefix for a Subject field: as it is when ASCII, else an encoded word (the field stays 7-bit). */
function subjectPrefix(prefix: string): string {
  return /^[\x20-\x7e]*$/.test(prefix) ? prefix : `=?UTF-8?B?${Buffer.from(prefix, 'utf8').toString('base64')}?= `;
}

/**
 * The rules judged in order on `facts`; `inside`: the Authoritative and InternalRelay accepted
 * domains (InOrganization).
 */
export function evaluateTransportRules(rules: readonly TransportRule[], facts: MessageFacts, inside: readonly DomainPattern[]): RulesOutcome {
  const matched: RuleMatch[] = [];
  const headers: HeaderEdit[] = [];
  const envelope: EnvelopeEdit[] = [];
  const said: string[] = [];
  let verdict: RulesOutcome['verdict'] = 'accept';
  let reply: Reply | undefined;
  let scl: number | undefined;
  const events: Array<{ rule: string; text: string }> = [];
  const disclaimers: BodyDisclaimer[] = [];
  // The message as the rules before left it: a later rule sees their changes (Exchange's way of
  // chaining rules: one sets a header field, another looks for it).
  const fields = new Map(facts.fields);
  /** A field as a rule left it (null: removed); its decoded values are read afresh. */
  function set(name: string, value: string | null): void {
    const n = name.toLowerCase();
    if (value === null) fields.delete(n);
    else fields.set(n, [value, ...(fields.get(n) ?? []).slice(1)]);
    decodedFields.get(fields)?.delete(n);
    typesByFields.delete(fields);
  }
  let recipients = [...facts.recipients];
  const asked: Asked = { memberships: new Set(), attributes: new Set() };
  for (const rule of rules) {
    if (!rule.enabled) continue;
    if (!ruleMatches(rule, { ...facts, recipients, fields }, inside, asked)) continue;
    matched.push({ rule: rule.name, mode: rule.mode });
    if (rule.mode === 'Audit') {
      said.push(`rule "${rule.name}" matched (Audit: nothing done)`);
      continue;
    }
    const a = rule.actions;
    const did: string[] = [];
    // LogEvent: written whatever else the rule does, a refusal included.
    if (a.logEventText !== undefined) events.push({ rule: rule.name, text: a.logEventText });
    if (a.reject || a.disconnect) {
      // Disconnect: a 421, which closes the session and which every client reads as "try later".
      reply = a.disconnect ? REPLIES.transportRuleDisconnect : REPLIES.transportRuleRejected(a.reject!.code, a.reject!.text);
      verdict = reply.code >= 500 ? 'reject' : 'tempfail';
      said.push(`rule "${rule.name}" ${reply.code === 421 ? 'ended the session' : 'refused it'} (${formatReply(reply)})`);
      break;
    }
    if (a.deleteMessage) {
      verdict = 'discard';
      said.push(`rule "${rule.name}" deleted it`);
      break;
    }
    if (a.quarantine) {
      verdict = 'quarantine';
      did.push('quarantined it');
    }
    if (a.redirectMessageTo) {
      for (const r of recipients) envelope.push({ op: 'delete-recipient', recipient: r });
      recipients = [];
      did.push(`redirected it to ${a.redirectMessageTo.join(', ')}`);
    }
    const add = (list: readonly string[] | undefined) => {
      for (const text of list ?? []) {
        const at = text.lastIndexOf('@');
        const r = { local: text.slice(0, at), domain: text.slice(at + 1) };
        if (recipients.some((x) => addressText(x) === text)) continue;
        envelope.push({ op: 'add-recipient', recipient: r });
        recipients.push(r);
      }
    };
    /** Recipients added and written into the To: or Cc: field, after what it holds. */
    const addToField = (field: 'To' | 'Cc', list: readonly string[]) => {
      add(list);
      const current = fields.get(field.toLowerCase())?.[0];
      const value = current && current.trim() !== '' ? `${current}, ${list.join(', ')}` : list.join(', ');
      headers.push({ op: 'change', name: field, index: 1, value });
      set(field, value);
      did.push(`added ${list.join(', ')} (${field})`);
    };
    add(a.redirectMessageTo);
    if (a.addToRecipients) addToField('To', a.addToRecipients);
    if (a.copyTo) addToField('Cc', a.copyTo);
    if (a.blindCopyTo) {
      add(a.blindCopyTo);
      did.push(`added ${a.blindCopyTo.join(', ')} (Bcc)`);
    }
    if (a.prependSubject !== undefined) {
      const subject = `${subjectPrefix(a.prependSubject)}${fields.get('subject')?.[0] ?? ''}`;
      headers.push({ op: 'change', name: 'Subject', index: 1, value: subject });
      set('subject', subject);
      did.push(`prepended "${a.prependSubject}" to the Subject`);
    }
    if (a.setHeader) {
      headers.push({ op: 'change', name: a.setHeader.name, index: 1, value: a.setHeader.value });
      set(a.setHeader.name, a.setHeader.value);
      did.push(`set ${a.setHeader.name}`);
    }
    if (a.removeHeader) {
      headers.push({ op: 'remove', name: a.removeHeader });
      set(a.removeHeader, null);
      did.push(`removed ${a.removeHeader}`);
    }
    if (a.disclaimer) {
      // The sender as this rule reads it (senderAddressLocation): whose directory object fills %%tokens%%.
      const sender = sendersOf(rule, facts)[0];
      disclaimers.push({ rule: rule.name, ...a.disclaimer, ...(sender ? { sender: `${sender.local}@${sender.domain}` } : {}) });
      const tokens = disclaimerTokens(a.disclaimer.html).known;
      did.push(`added a disclaimer (${a.disclaimer.location}, fallback ${a.disclaimer.fallback}${tokens.length > 0 ? `; ${tokens.map((t) => `%%${t}%%`).join(', ')} from the directory object of ${sender ? `${sender.local}@${sender.domain}` : 'no sender'}` : ''})`);
    }
    if (a.logEventText !== undefined) did.push('logged an event');
    if (a.setScl !== undefined) {
      headers.push({ op: 'remove', name: SCL_HEADER }, { op: 'add', name: SCL_HEADER, value: String(a.setScl) });
      set(SCL_HEADER, null);
      set(SCL_HEADER, String(a.setScl));
      did.push(`set SCL ${a.setScl}`);
      scl = a.setScl;
    }
    said.push(`rule "${rule.name}" ${did.length ? did.join(', ') : 'matched'}`);
    if (rule.stopRuleProcessing) {
      said.push('stopRuleProcessing');
      break;
    }
  }
  const refused = verdict === 'reject' || verdict === 'tempfail' || verdict === 'discard';
  return {
    matched,
    verdict,
    reply,
    headers: refused ? [] : headers,
    envelope: refused ? [] : envelope,
    reason: said.length ? said.join('; ') : 'no transport rule matched',
    ...(scl !== undefined ? { scl } : {}),
    ...(events.length > 0 ? { events } : {}),
    ...(disclaimers.length > 0 && !refused ? { disclaimers } : {}),
    ...(asked.memberships.size > 0 ? { unansweredMembership: [...asked.memberships] } : {}),
    ...(asked.attributes.size > 0 ? { unansweredAttributes: [...asked.attributes] } : {}),
  };
}

/** A disclaimer that could not be worked out at all (a fault of mailgw's, never a sender's doing): the message waits, never goes without it. */
export function disclaimerFailed(why: string): Decision {
  return reject(REPLIES.contentTempfail, 'disclaimer-failed', `a disclaimer could not be put into the message: ${why}`);
}

/** A disclaimer's fallback Reject: the message could not take the disclaimer of `rule` (Exchange: NDR 5.7.1). */
export function disclaimerRefusal(rule: string, why: string): Decision {
  return reject(REPLIES.transportRuleRejected(550), 'disclaimer-not-applied', `transport rule "${rule}": its disclaimer cannot be added (${why}) and its fallback action is Reject`);
}
