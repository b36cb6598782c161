// Content-filter decisions, pure: which filters judge a session's mail (connector scope and
// ms-Exch-Bypass-Anti-Spam), rspamd's score as an Exchange spam confidence level (SCL), and
// what rspamd's answer means: its own action, or Exchange's content-filter thresholds
// (Set-ContentFilterConfig -SCLRejectThreshold / -SCLDeleteThreshold / -SCLQuarantineThreshold).
import { isUnder, type DomainPattern } from '@mailgw/config';
import type { FilterVerdict, MailAddress, Reply } from '@mailgw/mail';
import type { Reason } from './decision.js';
import { senderAuthenticationOnConnector } from './antispam.js';
import { antiSpam } from './content.js';
import { ATTACHMENT_FILTER_NAME } from './attachment-filter.js';
import { REPLIES } from './replies.js';
import type { Session } from './stages.js';

// ---------------------------------------------------------------- which filters run

/** What the policy needs to know of a configured filter. */
export interface FilterScope {
  readonly name: string;
  readonly antiSpam: boolean;
  /** 'sender-authentication': runs where the connector's senderAuthenticationEnabled says. */
  readonly kind?: 'sender-authentication' | undefined;
  /** Connector names it serves; absent: every connector. */
  readonly connectors?: readonly string[] | undefined;
  /** Connector names it does not serve (the attachment filter's exceptionConnectors). */
  readonly exceptConnectors?: readonly string[] | undefined;
}

export interface FilterPlanEntry {
  readonly name: string;
  readonly runs: boolean;
  readonly reason: Reason;
}

/** The content filters gateway.yaml configures, in the order they run: the transport rules, the attachment filter, rspamd, then the milters. */
export function configuredFilters(g: {
  readonly transportRules?: readonly unknown[] | undefined;
  readonly attachmentFilter?: { readonly exceptionConnectors: readonly string[] } | undefined;
  readonly rspamd?: { readonly connectors?: readonly string[] | undefined } | undefined;
  readonly milters?: readonly FilterScope[];
}): FilterScope[] {
  return [
    // Exchange's Edge Rules agent: every message, whoever sent it.
    ...(g.transportRules && g.transportRules.length > 0 ? [{ name: 'transport-rules', antiSpam: false }] : []),
    // Not an anti-spam agent: Bypass-Anti-Spam does not skip it; its exceptionConnectors do.
    ...(g.attachmentFilter ? [{ name: ATTACHMENT_FILTER_NAME, antiSpam: false, exceptConnectors: g.attachmentFilter.exceptionConnectors }] : []),
    ...(g.rspamd ? [{ name: 'rspamd', antiSpam: true, connectors: g.rspamd.connectors }] : []),
    ...(g.milters ?? []).map((m) => ({ name: m.name, antiSpam: m.antiSpam, connectors: m.connectors })),
  ];
}

/** For each configured filter, in order: whether it judges this session's mail, and why. */
export function filterPlan(session: Session, filters: readonly FilterScope[]): FilterPlanEntry[] {
  const spam = antiSpam(session);
  const connector = session.connector.name;
  return filters.map((f) => {
    if (f.connectors && !f.connectors.some((c) => c.toLowerCase() === connector.toLowerCase())) {
      return { name: f.name, runs: false, reason: { code: 'filter-not-on-connector', message: `filter ${f.name} serves connectors ${f.connectors.join(', ')}, not "${connector}"` } };
    }
    if (f.exceptConnectors?.some((c) => c.toLowerCase() === connector.toLowerCase())) {
      return { name: f.name, runs: false, reason: { code: 'filter-excepted-connector', message: `filter ${f.name} does not serve connector "${connector}" (one of its exception connectors)` } };
    }
    if (f.antiSpam && !spam.applies) return { name: f.name, runs: false, reason: { code: 'filter-bypassed', message: `filter ${f.name} is anti-spam and ${spam.reason.message}` } };
    if (f.kind === 'sender-authentication') {
      const sa = senderAuthenticationOnConnector(session);
      if (!sa.applies) return { name: f.name, runs: false, reason: sa.reason };
    }
    return {
      name: f.name,
      runs: true,
      reason: f.antiSpam
        ? { code: 'filter-runs', message: `filter ${f.name} (anti-spam) runs: ${spam.reason.message}` }
        : { code: 'filter-runs', message: `filter ${f.name} is not an anti-spam filter (Bypass-Anti-Spam does not skip it) and runs for every session of connector "${connector}"` },
    };
  });
}

// ---------------------------------------------------------------- bypass lists

/** Set-ContentFilterConfig's bypass lists (gateway.yaml rspamd). */
export interface ContentFilterBypassLists {
  readonly bypassedRecipients: readonly string[];
  readonly bypassedSenders: readonly string[];
  readonly bypassedSenderDomains: readonly DomainPattern[];
}

/**
 * Why a message is not judged by the content filter (Exchange's bypass lists), or null: its
 * envelope sender is a bypassed sender or in a bypassed domain, or every recipient is a
 * bypassed recipient. One bypassed recipient among others does not spare the message (else
 * adding postmaster@ to a spam run would carry it past the filter).
 */
export function contentFilterBypass(lists: ContentFilterBypassLists, sender: MailAddress | null, recipients: readonly MailAddress[]): string | null {
  const key = (a: MailAddress) => `${a.local.toLowerCase()}@${a.domain.toLowerCase()}`;
  if (sender) {
    const from = key(sender);
    if (lists.bypassedSenders.includes(from)) return `the sender ${from} is in bypassedSenders`;
    const d = lists.bypassedSenderDomains.find((p) => (p.wildcard ? isUnder(sender.domain.toLowerCase(), p.domain) : sender.domain.toLowerCase() === p.domain));
    if (d) return `the sender's domain ${sender.domain} is in bypassedSenderDomains (${d.wildcard ? '*.' : ''}${d.domain})`;
  }
  if (recipients.length > 0 && lists.bypassedRecipients.length > 0 && recipients.every((r) => lists.bypassedRecipients.includes(key(r)))) {
    return `every recipient is in bypassedRecipients (${[...new Set(recipients.map(key))].join(', ')})`;
  }
  return null;
}

// ---------------------------------------------------------------- SCL

/** Where Exchange keeps a message's spam confidence level, and where rspamd's and the transport rules' SCL go. */
export const SCL_HEADER = 'X-MS-Exchange-Organization-SCL';

/**
 * The SCL (0..9) of an rspamd score: the number of boundaries the score reaches. With the
 * default boundaries [0, 2, 4, 5, 6, 8, 10, 12, 15]: a negative score (ham, whitelisted) is
 * SCL 0, rspamd's "add header" (6) is SCL 5, the first level Outlook files as junk (Exchange's
 * SCLJunkThreshold 4), and rspamd's "reject" (15) is SCL 9. SCL -1 is Exchange's mark for
 * mail that bypassed filtering and is never derived from a score.
 */
export function sclForScore(score: number, bounds: readonly number[]): number {
  if (!Number.isFinite(score)) return 0;
  let scl = 0;
  for (const b of bounds) if (score >= b) scl++;
  return Math.min(scl, 9);
}

// ---------------------------------------------------------------- rspamd's answer

/** rspamd's answer, as much of it as the decision needs. */
export interface RspamdAnswer {
  readonly action: string;
  readonly score: number;
  readonly requiredScore: number;
  /** The new Subject when the action is "rewrite subject". */
  readonly subject?: string | undefined;
}

export interface ContentThresholds {
  /** rspamd: rspamd's action decides; scl: Exchange's thresholds on the SCL decide. */
  readonly actions: 'rspamd' | 'scl';
  readonly sclScores: readonly number[];
  readonly sclRejectEnabled: boolean;
  readonly sclRejectThreshold: number;
  readonly sclDeleteEnabled: boolean;
  readonly sclDeleteThreshold: number;
  readonly sclQuarantineEnabled: boolean;
  readonly sclQuarantineThreshold: number;
  readonly rejectionResponse: string;
}

export interface RspamdDecision {
  readonly verdict: FilterVerdict;
  /** The reply of a reject or tempfail. */
  readonly reply?: Reply | undefined;
  readonly reason: Reason;
  readonly scl: number;
  /** A new Subject to set (rspamd's "rewrite subject" under actions: rspamd). */
  readonly subject?: string | undefined;
}

export const RSPAMD_ACTIONS = ['no action', 'add header', 'rewrite subject', 'soft reject', 'greylist', 'reject'] as const;

/** What rspamd's answer means for the message. */
export function rspamdDecision(a: RspamdAnswer, t: ContentThresholds): RspamdDecision {
  const scl = sclForScore(a.score, t.sclScores);
  const what = `rspamd: ${a.action}, score ${a.score.toFixed(2)}/${a.requiredScore.toFixed(2)}, SCL ${scl}`;
  const rejection: Reply = { ...REPLIES.contentRejected, text: t.rejectionResponse };
  if (!(RSPAMD_ACTIONS as readonly string[]).includes(a.action)) {
    return { verdict: 'error', reason: { code: 'rspamd-unknown-action', message: `rspamd answered the unknown action "${a.action}"` }, scl };
  }
  if (t.actions === 'scl') {
    if (t.sclDeleteEnabled && scl >= t.sclDeleteThreshold) return { verdict: 'discard', reason: { code: 'scl-delete', message: `${what} ≥ SCLDeleteThreshold ${t.sclDeleteThreshold}: deleted` }, scl };
    if (t.sclRejectEnabled && scl >= t.sclRejectThreshold) return { verdict: 'reject', reply: rejection, reason: { code: 'scl-reject', message: `${what} ≥ SCLRejectThreshold ${t.sclRejectThreshold}` }, scl };
    if (t.sclQuarantineEnabled && scl >= t.sclQuarantineThreshold) return { verdict: 'quarantine', reason: { code: 'scl-quarantine', message: `${what} ≥ SCLQuarantineThreshold ${t.sclQuarantineThreshold}` }, scl };
    return { verdict: 'accept', reason: { code: 'scl-below-thresholds', message: `${what}: below the enabled SCL thresholds` }, scl };
  }
  switch (a.action) {
    case 'reject':
      return { verdict: 'reject', reply: rejection, reason: { code: 'rspamd-reject', message: what }, scl };
    case 'soft reject':
    case 'greylist':
      return { verdict: 'tempfail', reply: REPLIES.contentTempfail, reason: { code: 'rspamd-defer', message: what }, scl };
    case 'rewrite subject':
      return { verdict: 'accept', reason: { code: 'rspamd-rewrite-subject', message: what }, scl, subject: a.subject };
    default:
      return { verdict: 'accept', reason: { code: 'rspamd-accept', message: what }, scl };
  }
}
