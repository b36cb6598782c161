// `recipientVerification`: recipients of the listed accepted domains are checked at RCPT by asking
// their next hop (the server that holds the mailboxes) with MAIL FROM and RCPT TO, no DATA:
// Postfix's reject_unverified_recipient, Exim's callout. For domains whose mailboxes are on
// another server and that have no recipient list or directory here: without it, an unknown
// recipient is accepted, refused later by the server behind, and bounced to a sender who is
// often forged (backscatter). Off unless present.
import { z } from 'zod';
import { parseDomainPattern, normaliseDomain, type DomainPattern } from './domain.js';
import { ciEnum, durationMs, listOf } from './zod-helpers.js';

const verifiedDomain = z.string().transform((s, ctx): DomainPattern => {
  const r = parseDomainPattern(s);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  }
  if (r.value.domain === '') {
    ctx.addIssue({ code: 'custom', message: '"*" would probe every domain; list the accepted domains whose mailboxes are on another server' });
    return z.NEVER;
  }
  return r.value;
});

/** '' (the null sender, the default) or an address: the MAIL FROM of the probes. */
const probeSender = z.string().transform((s, ctx): string => {
  const t = s.trim().replace(/^<(.*)>$/, '$1');
  if (t === '') return '';
  const at = t.lastIndexOf('@');
  const d = at > 0 ? normaliseDomain(t.slice(at + 1)) : null;
  if (!d || !d.ok || /[\s<>"]/.test(t.slice(0, at))) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an address like double-bounce@contoso.com ("" for the null sender <>)` });
    return z.NEVER;
  }
  return `${t.slice(0, at)}@${d.value}`;
});

export const RECIPIENT_VERIFICATION_DEFAULTS = {
  probeSender: '',
  timeout: 8_000,
  failureAction: 'tempfail' as const,
  cacheTtl: 7 * 86_400_000,
  refreshAfter: 86_400_000,
  negativeCacheTtl: 3_600_000,
  maxProbesPerNextHop: 5,
};

const recipientVerificationShape = {
    domains: listOf(verifiedDomain)
      .refine((l) => l.length > 0, 'list at least one accepted domain whose recipients are verified (fabrikam.com, *.fabrikam.com)')
      .describe('Accepted domains whose recipients are verified at their next hop, e.g. an InternalRelay domain whose mailboxes are on the server behind mailgw.'),
    probeSender: probeSender.default(RECIPIENT_VERIFICATION_DEFAULTS.probeSender).describe('MAIL FROM of the probes: "" (the default) is the null sender <>, as DSNs use; or an address such as double-bounce@contoso.com for a next hop that refuses <>.'),
    timeout: durationMs(1000, 60_000).default(RECIPIENT_VERIFICATION_DEFAULTS.timeout).describe('How long RCPT waits for a probe. A probe still running then goes on, and its answer is cached for the sender\'s next try; RCPT gets the failureAction.'),
    failureAction: ciEnum(['tempfail', 'accept'] as const).default(RECIPIENT_VERIFICATION_DEFAULTS.failureAction).describe('When the next hop cannot say (down, too slow, a 4xx): tempfail (451 4.4.3: the sender tries again; addresses verified before are still accepted from the cache) or accept (queued; the server behind decides at delivery).'),
    cacheTtl: durationMs(60_000, 90 * 86_400_000).default(RECIPIENT_VERIFICATION_DEFAULTS.cacheTtl).describe('How long an address the next hop accepted is accepted without asking again (in Redis, shared by every listener): an outage of the server behind does not refuse its known recipients.'),
    refreshAfter: durationMs(60_000, 90 * 86_400_000).default(RECIPIENT_VERIFICATION_DEFAULTS.refreshAfter).describe('An accepted address older than this is asked again in the background while the cached answer serves (a deleted mailbox is noticed within this time).'),
    negativeCacheTtl: durationMs(0, 30 * 86_400_000).default(RECIPIENT_VERIFICATION_DEFAULTS.negativeCacheTtl).describe('How long an address the next hop refused (5xx) is refused without asking again (a mailbox created meanwhile works after this; `mailgw verify-recipient --forget` at once).'),
    maxProbesPerNextHop: z.number().int().min(1).max(100).default(RECIPIENT_VERIFICATION_DEFAULTS.maxProbesPerNextHop).describe('Probes at once to one next hop, per listener process; more wait (within timeout).'),
};

export const recipientVerificationSchema = z
  .strictObject(recipientVerificationShape)
  .refine((v) => v.refreshAfter <= v.cacheTtl, { message: 'must not be longer than cacheTtl', path: ['refreshAfter'] });

export type RecipientVerificationConfig = z.output<typeof recipientVerificationSchema>;
export const RECIPIENT_VERIFICATION_KEYS: readonly string[] = Object.keys(recipientVerificationShape);
