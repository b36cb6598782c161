// What happens to a message's content at DATA, decided here like every other stage: the
// header firewall (Exchange's X-MS-Exchange-Organization-* / -Forest-* rules, and RFC 8601's
// Authentication-Results spoofing rule), whether the anti-spam filters run at all
// (ms-Exch-Bypass-Anti-Spam), and what the filters' outcomes mean for the SMTP answer.
import { addressKey, authservId, echoText, fieldValue, formatAddress, parseEnvelopeAddress, type BodyDisclaimer, type EnvelopeAddress, type HeaderField, type EnvelopeEdit, type EnvelopeRecipient, type FilterOutcome, type HeaderEdit, type MailAddress, type Reply, type StageOutcome } from '@mailgw/mail';
import { accept, reject, type Decision, type Reason } from './decision.js';
import { REPLIES } from './replies.js';
import { has, type Session } from './stages.js';

// ---------------------------------------------------------------- header firewall

const ORGANIZATION = 'x-ms-exchange-organization-';
const FOREST = 'x-ms-exchange-forest-';
/**
 * mailgw's own stamps (X-Mailgw-Domain-Secured, X-Mailgw-Quarantine-*): what it tells the
 * organisation behind it, as Exchange's organisation headers do, so forged ones go the same way
 * (a message claiming to be domain secured, or quarantined for someone chosen by the sender).
 */
const OWN = 'x-mailgw-';


/**
 * Whether an incoming header field is removed, and why (null: kept). Exchange removes the
 * organisation and forest headers from sessions without the matching Accept-Headers right
 * (mailgw's own X-Mailgw-* stamps count as organisation headers);
 * an Authentication-Results field claiming one of our own host names as authserv-id is a
 * forgery unless it comes from inside the organisation (RFC 8601 §5).
 */
export function firewall(session: Session, name: string, value: string): string | null {
  const n = name.toLowerCase();
  if (n.startsWith(ORGANIZATION) && !has(session, 'ms-Exch-Accept-Headers-Organization')) {
    return `${name} removed: the session lacks ms-Exch-Accept-Headers-Organization on connector "${session.connector.name}"`;
  }
  if (n.startsWith(OWN) && !has(session, 'ms-Exch-Accept-Headers-Organization')) {
    return `${name} removed: mailgw's own stamps are taken only from sessions holding ms-Exch-Accept-Headers-Organization, which connector "${session.connector.name}" does not give this one`;
  }
  if (n.startsWith(FOREST) && !has(session, 'ms-Exch-Accept-Headers-Forest')) {
    return `${name} removed: the session lacks ms-Exch-Accept-Headers-Forest on connector "${session.connector.name}"`;
  }
  if (n === 'authentication-results' && !has(session, 'ms-Exch-Accept-Headers-Organization')) {
    const id = authservId(value);
    if (session.connector.ownHosts.has(id)) return `Authentication-Results claiming this gateway's authserv-id ${id} removed (RFC 8601 section 5)`;
  }
  return null;
}

// ---------------------------------------------------------------- anti-spam

/** Whether the anti-spam filters (sender authentication, block lists, content filters) judge this session's mail, and why. */
export function antiSpam(session: Session): { readonly applies: boolean; readonly reason: Reason } {
  if (has(session, 'ms-Exch-Bypass-Anti-Spam')) {
    const by = session.rights.grantedBy.get('ms-Exch-Bypass-Anti-Spam') ?? [];
    return { applies: false, reason: { code: 'anti-spam-bypassed', message: `the session holds ms-Exch-Bypass-Anti-Spam (${by.join('; ')}): no anti-spam filter runs` } };
  }
  return { applies: true, reason: { code: 'anti-spam-applies', message: `the session lacks ms-Exch-Bypass-Anti-Spam on connector "${session.connector.name}": the anti-spam filters run` } };
}

// ---------------------------------------------------------------- filter outcomes

/** What a filter that could not judge (down, slow, broken) means: Postfix's milter_default_action. */
export type FilterFailureAction = 'tempfail' | 'accept' | 'reject';

export interface ContentVerdict {
  /** accept (250 and stored), reject/defer (not stored). */
  readonly decision: Decision;
  /** Header edits to apply when the message is stored, in filter order. */
  readonly headers: readonly HeaderEdit[];
  /** A replacement body, when a filter asked for one. */
  readonly replaceBody: Buffer | null;
  /** Answer 250 but store nothing (a filter's discard). */
  readonly discard: boolean;
  /** Store it for an administrator instead of delivering it. */
  readonly quarantine: boolean;
  /** Envelope changes to apply when the message is stored, in filter order (editEnvelope). */
  readonly envelope: readonly EnvelopeEdit[];
  /** Disclaimers to put into the message as stored (after every filter's body change), in filter order. */
  readonly disclaimers: readonly BodyDisclaimer[];
}

/** A filter's refusal: its own reply when it gave one of the fallback's class (5xx, 4xx), else the fallback. */
function refusal(o: Pick<FilterOutcome, 'filter' | 'reply' | 'reason'>, fallback: Reply, code: string): Decision {
  const r = o.reply && Math.floor(o.reply.code / 100) === Math.floor(fallback.code / 100) ? o.reply : fallback;
  return reject(r, code, `filter ${o.filter}: ${o.reason}`);
}

/**
 * A transaction filter's answer to MAIL or one RCPT (a milter's reply at that stage), as
 * Postfix's smtpd applies it: reject and tempfail refuse that command (at RCPT: that recipient
 * only; the transaction goes on), with the filter's own reply when it is of the same class,
 * else Postfix's words; continue, accept and discard take the command (a discard is answered at
 * the end of DATA: 250, nothing stored); a filter that could not judge gets its failure action
 * at that command.
 */
export function stageFilterDecision(stage: 'MAIL' | 'RCPT', o: StageOutcome, failureAction: FilterFailureAction): Decision {
  const failed = o.verdict === 'error';
  const verdict = failed ? failureAction : o.verdict;
  // A failure's refusal is the failure action's, in Postfix's words (no reply of the filter's).
  const at = { ...o, reply: failed ? undefined : o.reply, reason: `${o.reason} (at ${stage}${failed ? `; failure action ${failureAction}` : ''})` };
  if (verdict === 'reject') return refusal(at, REPLIES.filterCommandRejected, 'filter-rejected');
  if (verdict === 'tempfail') return refusal(at, REPLIES.filterCommandTempfail, 'filter-deferred');
  const ok = stage === 'MAIL' ? REPLIES.senderOk : REPLIES.recipientOk;
  if (verdict === 'discard') return accept(ok, 'filter-discard', `filter ${o.filter}: ${at.reason}; the message will be answered 250 and not delivered`);
  return accept(ok, 'filter-continue', `filter ${o.filter}: ${at.reason}`);
}

/**
 * The answer to DATA from the filters' outcomes, in order of severity: a reject wins, then a
 * tempfail (including a failed filter whose failure action is tempfail), then discard, then
 * quarantine; otherwise the message is accepted with every filter's header changes.
 */
export function contentVerdict(session: Session, outcomes: readonly FilterOutcome[], failureAction: (filter: string) => FilterFailureAction = () => 'tempfail'): ContentVerdict {
  const headers: HeaderEdit[] = [];
  const envelope: EnvelopeEdit[] = [];
  let replaceBody: Buffer | null = null;
  const disclaimers: BodyDisclaimer[] = [];
  const effective = outcomes.map((o) => (o.verdict === 'error' ? { ...o, verdict: failureAction(o.filter) === 'tempfail' ? ('tempfail' as const) : failureAction(o.filter) === 'reject' ? ('reject' as const) : ('accept' as const), reason: `${o.reason} (failure action ${failureAction(o.filter)})` } : o));
  const none = (decision: Decision): ContentVerdict => ({ decision, headers: [], replaceBody: null, discard: false, quarantine: false, envelope: [], disclaimers: [] });
  const rejected = effective.find((o) => o.verdict === 'reject');
  if (rejected) return none(refusal(rejected, REPLIES.contentRejected, 'content-rejected'));
  const deferred = effective.find((o) => o.verdict === 'tempfail');
  if (deferred) return none(refusal(deferred, REPLIES.contentTempfail, 'content-deferred'));
  for (const o of effective) {
    headers.push(...o.headers);
    envelope.push(...(o.envelope ?? []));
    if (o.replaceBody) replaceBody = o.replaceBody;
    disclaimers.push(...(o.disclaimers ?? []));
  }
  const discarded = effective.find((o) => o.verdict === 'discard');
  if (discarded) return { decision: accept(REPLIES.startMailInput, 'content-discarded', `filter ${discarded.filter}: ${discarded.reason}; answered 250, not delivered`), headers: [], replaceBody: null, discard: true, quarantine: false, envelope: [], disclaimers: [] };
  const held = effective.find((o) => o.verdict === 'quarantine');
  const who = session.user ? `user ${session.user.name}` : `client ${session.client.text}`;
  if (held) return { decision: accept(REPLIES.startMailInput, 'content-quarantined', `filter ${held.filter}: ${held.reason}`), headers, replaceBody, discard: false, quarantine: true, envelope, disclaimers };
  const names = outcomes.map((o) => o.filter).join(', ');
  return { decision: accept(REPLIES.startMailInput, 'content-ok', outcomes.length ? `passed ${names} (message from ${who})` : 'no content filter ran'), headers, replaceBody, discard: false, quarantine: false, envelope, disclaimers };
}

// ---------------------------------------------------------------- quarantine

export interface QuarantineRouting {
  /** Who the stored message goes to. */
  readonly recipients: readonly EnvelopeRecipient[];
  /** Fields stamped on it. */
  readonly headers: readonly HeaderEdit[];
  readonly reason: string;
}

/**
 * Where a quarantined message goes (Exchange's content filter: the quarantine mailbox, in place
 * of the recipients). The original envelope is stamped on it (X-Mailgw-Quarantine-Recipients and
 * -Sender, and -Reason: which filter held it and why) so an administrator can release it to them (`mailgw quarantine release`,
 * quarantineRelease below). Without a quarantine mailbox it is delivered, stamped, and the log
 * says so.
 */
export function quarantineRouting(envelope: { readonly sender: MailAddress | null; readonly recipients: readonly EnvelopeRecipient[] }, mailbox: MailAddress | null, why?: string): QuarantineRouting {
  const { recipients } = envelope;
  const original = recipients.map(formatAddress).join(', ');
  const stamp: HeaderEdit = { op: 'add', name: 'X-MS-Exchange-Organization-Quarantine', value: 'true' };
  if (!mailbox) {
    return { recipients, headers: [stamp], reason: 'quarantined, but no quarantine mailbox is configured (quarantineMailbox): delivered to its recipients, stamped X-MS-Exchange-Organization-Quarantine' };
  }
  return {
    recipients: [{ local: mailbox.local, domain: mailbox.domain }],
    headers: [
      stamp,
      { op: 'add', name: 'X-Mailgw-Quarantine-Recipients', value: original },
      { op: 'add', name: 'X-Mailgw-Quarantine-Sender', value: `<${envelope.sender ? formatAddress(envelope.sender) : ''}>` },
      // Why it was held, for whoever decides on its release (one line, printable, bounded: it can hold a filter's words).
      ...(why ? [{ op: 'add' as const, name: 'X-Mailgw-Quarantine-Reason', value: echoText(why, 200) }] : []),
    ],
    reason: `quarantined: delivered to the quarantine mailbox ${formatAddress(mailbox)} instead of ${original}`,
  };
}

export type QuarantineRelease =
  | {
      readonly ok: true;
      /** The original envelope sender; null for <>. */
      readonly sender: EnvelopeAddress | null;
      readonly recipients: readonly EnvelopeAddress[];
      /** Indexes of the header fields that are not sent on (the quarantine's stamps, the mailbox's delivery fields). */
      readonly removed: readonly number[];
      /** Why it was held (X-Mailgw-Quarantine-Reason), when the message says. */
      readonly held: string | null;
      readonly reason: string;
    }
  | { readonly ok: false; readonly reason: string };

const DELIVERY_FIELDS = new Set(['return-path', 'delivered-to', 'x-original-to']);

/**
 * A message as saved from the quarantine mailbox, released to its original recipients (Exchange:
 * Release-QuarantineMessage, or Send Again from the quarantine mailbox): the envelope from the
 * stamps quarantineRouting put on it, which the header firewall makes trustworthy (no sender can
 * bring its own X-Mailgw-* fields), the sender from Return-Path for a message quarantined before
 * the sender was stamped; `to` releases it to some of the original recipients only, never to
 * anyone else; `from` overrides the sender. Removed before it is sent on: the quarantine stamps
 * and the fields the mailbox's delivery put on top (Return-Path, Delivered-To, X-Original-To).
 */
export function quarantineRelease(fields: readonly HeaderField[], opts: { readonly to?: readonly string[]; readonly from?: string } = {}): QuarantineRelease {
  const named = (n: string) => fields.map((f, i) => ({ f, i })).filter((x) => x.f.name === n);
  const stamped = named('x-mailgw-quarantine-recipients');
  if (stamped.length === 0) return { ok: false, reason: 'no X-Mailgw-Quarantine-Recipients field: not a message mailgw put in quarantine (or saved without its header)' };
  if (stamped.length > 1) return { ok: false, reason: `${stamped.length} X-Mailgw-Quarantine-Recipients fields: mailgw writes one; this message is not as it left the quarantine` };
  const recipients: EnvelopeAddress[] = [];
  for (const text of fieldValue(stamped[0]!.f).split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const p = parseEnvelopeAddress(text);
    if (!p.ok) return { ok: false, reason: `X-Mailgw-Quarantine-Recipients holds "${text}", which is not an address: ${p.reason}` };
    recipients.push(p.value);
  }
  if (recipients.length === 0) return { ok: false, reason: 'X-Mailgw-Quarantine-Recipients is empty: nobody to release it to' };
  let chosen = recipients;
  if (opts.to && opts.to.length > 0) {
    chosen = [];
    for (const t of opts.to) {
      const wanted = parseEnvelopeAddress(t.trim().replace(/^<(.*)>$/, '$1'));
      const hit = wanted.ok ? recipients.find((r) => addressKey(r) === addressKey(wanted.value)) : undefined;
      if (!hit) return { ok: false, reason: `${t} is not one of the message's original recipients (${recipients.map((r) => r.address).join(', ')}): a release goes to them only` };
      if (!chosen.includes(hit)) chosen.push(hit);
    }
  }
  let sender: EnvelopeAddress | null;
  const senderText = opts.from ?? (named('x-mailgw-quarantine-sender')[0] ? fieldValue(named('x-mailgw-quarantine-sender')[0]!.f) : named('return-path')[0] ? fieldValue(named('return-path')[0]!.f) : null);
  if (senderText === null) return { ok: false, reason: 'no X-Mailgw-Quarantine-Sender or Return-Path field says who sent it: give the sender (--from)' };
  const bare = senderText.trim().replace(/^<(.*)>$/, '$1');
  if (bare === '') sender = null;
  else {
    const p = parseEnvelopeAddress(bare);
    if (!p.ok) return { ok: false, reason: `the sender "${senderText.trim()}" is not an address: ${p.reason}` };
    sender = p.value;
  }
  const senderFrom = opts.from !== undefined ? '--from' : named('x-mailgw-quarantine-sender').length > 0 ? 'X-Mailgw-Quarantine-Sender' : 'Return-Path';
  const removed: number[] = [];
  // The delivery fields on top (a maildir's Return-Path and Delivered-To), not those further down.
  for (let i = 0; i < fields.length && DELIVERY_FIELDS.has(fields[i]!.name); i++) removed.push(i);
  fields.forEach((f, i) => {
    if (f.name.startsWith('x-mailgw-quarantine-') || f.name === 'x-ms-exchange-organization-quarantine') removed.push(i);
  });
  const heldFor = named('x-mailgw-quarantine-reason')[0];
  return { ok: true, sender, recipients: chosen, removed, held: heldFor ? fieldValue(heldFor.f).trim() : null, reason: `released from <${sender?.address ?? ''}> (${senderFrom}) to ${chosen.map((r) => r.address).join(', ')}${chosen.length < recipients.length ? ` (${chosen.length} of its ${recipients.length} recipients)` : ''}` };
}

// ---------------------------------------------------------------- envelope changes

export interface EditedEnvelope {
  readonly sender: MailAddress | null;
  readonly recipients: readonly EnvelopeRecipient[];
  /** What changed, for the log ("recipient <archive@contoso.test> added"); empty: nothing. */
  readonly changes: readonly string[];
  /** Every recipient was deleted: nobody gets the message (answered 250, nothing stored, as a discard), and why. */
  readonly noRecipients: Decision | null;
}

/**
 * The envelope after the filters' changes (a milter's ADDRCPT, DELRCPT, CHGFROM), applied in
 * order. An added recipient that is already one is not added twice (a recipient's DSN
 * parameters stay its own); a new one gets the default DSN notification. A deleted address
 * removes every recipient with that address (compared case-insensitively); one that is no
 * recipient changes nothing. A changed sender replaces the sender (null: the null sender).
 * The filters are the administrator's own configuration: what they add is not judged by the
 * relay rights, as with Postfix's milters. If every recipient is deleted nobody gets the
 * message, as when a filter discards it.
 */
export function editEnvelope(sender: MailAddress | null, recipients: readonly EnvelopeRecipient[], edits: readonly EnvelopeEdit[]): EditedEnvelope {
  let to = [...recipients];
  let from = sender;
  const changes: string[] = [];
  const params = (p: string | undefined) => (p ? ` (parameters "${p}" ignored)` : '');
  for (const e of edits) {
    switch (e.op) {
      case 'add-recipient': {
        const key = addressKey(e.recipient);
        if (to.some((r) => addressKey(r) === key)) changes.push(`recipient <${formatAddress(e.recipient)}> not added: already a recipient`);
        else {
          to.push({ local: e.recipient.local, domain: e.recipient.domain });
          changes.push(`recipient <${formatAddress(e.recipient)}> added${params(e.parameters)}`);
        }
        break;
      }
      case 'delete-recipient': {
        const key = addressKey(e.recipient);
        const kept = to.filter((r) => addressKey(r) !== key);
        changes.push(kept.length < to.length ? `recipient <${formatAddress(e.recipient)}> deleted` : `recipient <${formatAddress(e.recipient)}> not deleted: not a recipient`);
        to = kept;
        break;
      }
      case 'change-sender':
        from = e.sender;
        changes.push(`sender changed to <${e.sender ? formatAddress(e.sender) : ''}>${params(e.parameters)}`);
        break;
    }
  }
  const noRecipients = to.length === 0 && recipients.length > 0 ? accept(REPLIES.startMailInput, 'content-no-recipients', `the filters deleted every recipient (${changes.join('; ')}): answered 250, not delivered`) : null;
  return { sender: from, recipients: to, changes, noRecipients };
}
