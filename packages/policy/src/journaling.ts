// Journal rules (Exchange's New-JournalRule): which journaling mailboxes get a report of a
// message, and why. Pure: the listener asks when DATA begins (the envelope the client gave) and
// writes the reports beside the message; the report's text is journalReportLines' (@mailgw/mail).
import type { JournalRule } from '@mailgw/config';
import { addressKey, parseEnvelopeAddress, type DsnNotify, type MailAddress } from '@mailgw/mail';
import type { Policy } from './compile.js';
import { acceptedDomainType, has, type Session } from './stages.js';
import { inGroup, type KnownMemberships } from './directory.js';

export interface JournalTarget {
  /** The journaling mailbox (lower case). */
  readonly address: string;
  /** The rules that send this message there, by name. */
  readonly rules: readonly string[];
}

export interface JournalDecision {
  /** One report per journaling mailbox, however many rules name it. */
  readonly targets: readonly JournalTarget[];
  /** For the log and explain: which rules matched, or why none did. */
  readonly reason: string;
  /**
   * Addresses whose directory object and groups a rule's `recipient` needs before it can be
   * judged (a distribution group: its members' mail is journaled); ask, then judge again with
   * `memberships`. Present only when the answer is not final.
   */
  readonly unansweredMembership?: readonly string[];
}

/** What the journal rules need of the configuration, made once per policy (not per message). */
interface JournalSetup {
  readonly rules: readonly JournalRule[];
  /** The journaling mailboxes and journalingReportNdrTo (lower case). */
  readonly mailboxes: ReadonlySet<string>;
  readonly from: string;
  readonly sender: MailAddress | null;
}

const setups = new WeakMap<Policy, JournalSetup>();

function setup(policy: Policy): JournalSetup {
  let s = setups.get(policy);
  if (!s) {
    const g = policy.config.gateway;
    const ndrTo = g.journalingReportNdrTo ? parseEnvelopeAddress(g.journalingReportNdrTo) : null;
    s = {
      rules: g.journalRules.filter((r) => r.enabled),
      mailboxes: new Set([...g.journalRules.map((r) => r.journalEmailAddress), ...(g.journalingReportNdrTo ? [g.journalingReportNdrTo] : [])]),
      from: `postmaster@${g.defaultDomain}`,
      sender: ndrTo?.ok ? { local: ndrTo.value.local, domain: ndrTo.value.domain } : null,
    };
    setups.set(policy, s);
  }
  return s;
}

/** The addresses journal reports go to and come from: mail to them is never journaled (a report of a report). */
export function journalAddresses(policy: Policy): ReadonlySet<string> {
  return setup(policy).mailboxes;
}

/** How this session's journal reports are sent: the envelope, the From, and which recipient lines they may use. */
export interface JournalReportEnvelope {
  /** The reports' From: postmaster@<default accepted domain>. */
  readonly from: string;
  /** journalingReportNdrTo (a refused report comes back there), or null: the null sender. */
  readonly sender: MailAddress | null;
  /** The journaling mailbox's NOTIFY: NEVER with the null sender (nobody to tell), else the default. */
  readonly notify: readonly DsnNotify[] | null;
  /** A refused report comes back with the report's header only (the original stays out of a DSN). */
  readonly ret: 'HDRS';
  /**
   * Exchange's rule: the header's To and Cc can be trusted (To/Cc/Bcc lines) only for a user who
   * logged on and may not send as anyone (not a server); otherwise every recipient is "Recipient".
   */
  readonly addressingTrusted: boolean;
  /** The journaling mailboxes (lower case): not listed among a report's recipients. */
  readonly skip: ReadonlySet<string>;
}

export function journalReportEnvelope(policy: Policy, session: Session): JournalReportEnvelope {
  const j = setup(policy);
  return {
    from: j.from,
    sender: j.sender,
    notify: j.sender ? null : ['NEVER'],
    ret: 'HDRS',
    addressingTrusted: session.user !== null && !has(session, 'ms-Exch-SMTP-Accept-Any-Sender'),
    skip: j.mailboxes,
  };
}

/**
 * The journal reports of a message from `sender` (null: the null sender, which counts as
 * outside) to `recipients`: for each enabled rule whose scope matches (Global: any message;
 * Internal: sender and every recipient in Authoritative or InternalRelay domains; External: the
 * sender or some recipient elsewhere) and, when it names one, whose `recipient` is the sender or
 * a recipient. Recipients that are journaling mailboxes are left out first: a message only to
 * them is not journaled; nor is a journal report (isJournalReport: it has X-MS-Journal-Report).
 */
export function journalTargets(
  policy: Policy,
  m: { readonly sender: MailAddress | null; readonly recipients: readonly MailAddress[]; readonly isJournalReport?: boolean; readonly memberships?: KnownMemberships },
): JournalDecision {
  const { rules, mailboxes } = setup(policy);
  if (rules.length === 0) return { targets: [], reason: 'no enabled journal rules' };
  if (m.isJournalReport) return { targets: [], reason: 'the message is a journal report (X-MS-Journal-Report): not journaled again' };
  const recipients = m.recipients.filter((r) => !mailboxes.has(addressKey(r)));
  if (recipients.length === 0) return { targets: [], reason: 'every recipient is a journaling mailbox' };
  const inside = (a: MailAddress | null) => {
    if (a === null) return false;
    const t = acceptedDomainType(policy, a.domain);
    return t === 'Authoritative' || t === 'InternalRelay';
  };
  const internal = inside(m.sender) && recipients.every(inside);
  const parties = new Set([...(m.sender ? [addressKey(m.sender)] : []), ...recipients.map(addressKey)]);
  const byAddress = new Map<string, string[]>();
  const skipped: string[] = [];
  const unanswered = new Set<string>();
  const members: string[] = [];
  const memberships = m.memberships ?? new Map();
  // With a directory, a rule's recipient may be a distribution group: its members' mail (nested
  // groups too) is journaled, as Exchange's -Recipient with a group.
  const viaGroup = (ref: string): string | null | 'ask' => {
    if (!policy.config.gateway.directory) return null;
    const open = [ref, ...parties].filter((a) => !memberships.has(a));
    if (open.length > 0) {
      open.forEach((a) => unanswered.add(a));
      return 'ask';
    }
    const group = memberships.get(ref);
    if (group?.kind !== 'found') return null;
    for (const a of parties) {
      const who = memberships.get(a);
      if (who?.kind === 'found' && inGroup(who, ref, group, true)) return a;
    }
    return null;
  };
  for (const r of rules) {
    const inScope = r.scope === 'Global' || (r.scope === 'Internal') === internal;
    if (!inScope) {
      skipped.push(`"${r.name}" (${r.scope}: the message is ${internal ? 'internal' : 'external'})`);
      continue;
    }
    if (r.recipient !== undefined && !parties.has(r.recipient)) {
      const member = viaGroup(r.recipient);
      if (member === 'ask') continue;
      if (member === null) {
        skipped.push(`"${r.name}" (only mail from or to ${r.recipient}${policy.config.gateway.directory ? ' or its members' : ''})`);
        continue;
      }
      members.push(`${member} is in ${r.recipient}`);
    }
    byAddress.set(r.journalEmailAddress, [...(byAddress.get(r.journalEmailAddress) ?? []), r.name]);
  }
  if (unanswered.size > 0) return { targets: [], reason: `the directory is asked about ${[...unanswered].join(', ')}`, unansweredMembership: [...unanswered] };
  const targets = [...byAddress].map(([address, names]) => ({ address, rules: names }));
  const matched = targets.map((t) => `${t.rules.map((n) => `"${n}"`).join(', ')} → ${t.address}`).join('; ');
  const reason = [matched ? `journaled: ${matched}` : 'no journal rule matched', members.length ? `(${members.join(', ')})` : '', skipped.length ? `not: ${skipped.join(', ')}` : ''].filter(Boolean).join('; ');
  return { targets, reason };
}

/**
 * Whether a message carrying X-MS-Journal-Report counts as a journal report (not journaled
 * again): only from the organisation's own servers, an externally secured connector or a session
 * trusted with the organisation's header fields (ms-Exch-Accept-Headers-Organization), e.g.
 * Exchange sending its own journal reports out through mailgw. From anyone else, a user who
 * logged on included, the field could be written to escape journaling: such a message is
 * journaled as any other.
 */
export function trustedJournalReport(session: Session, hasJournalReportField: boolean): boolean {
  // The pickup directory's files are trusted as the gateway's own, but anyone who may write one could forge the field.
  return hasJournalReportField && !session.connector.pickup && (session.connector.externallySecured || has(session, 'ms-Exch-Accept-Headers-Organization'));
}
