// Recipient verification (gateway.yaml recipientVerification): a recipient of a listed accepted
// domain is judged by what its next hop answers to RCPT TO (Postfix's reject_unverified_recipient,
// Exim's callout). Which recipients are verified, and what each answer means for the client, is
// decided here; asking the next hop and caching its answers is @mailgw/worker's RecipientVerifier.
import { describeTarget, matchDomain, type ConfigIssue, type MailgwConfig } from '@mailgw/config';
import { selectSendConnector } from './send-connector.js';
import { parseReply, reply } from '@mailgw/mail';
import type { Policy } from './compile.js';
import { accept, reject, type Decision } from './decision.js';
import { REPLIES } from './replies.js';
import type { EnvelopeAddress } from '@mailgw/mail';

/** What the verifier learnt of one address, from a probe now or from the cache. */
export type VerificationAnswer =
  /** The next hop accepted RCPT TO (2xx). */
  | { readonly kind: 'accepted'; readonly reply: string; readonly nextHop: string; readonly at: number; readonly cached: boolean }
  /** The next hop refused it for good (5xx to RCPT TO). */
  | { readonly kind: 'refused'; readonly reply: string; readonly nextHop: string; readonly at: number; readonly cached: boolean }
  /** It could not say: down, too slow, a 4xx, the probe sender refused, no route. */
  | { readonly kind: 'unknown'; readonly why: string; readonly nextHop: string | null };

/** Where a listener asks (@mailgw/worker's RecipientVerifier). */
export interface RecipientVerification {
  /** `address` as recipientToVerify gave it; `senderDomain` selects the send connector as delivery will (null: the null sender). */
  verify(address: string, senderDomain: string | null): Promise<VerificationAnswer>;
}

/**
 * The address to verify (lower case) when `address` is in one of recipientVerification.domains,
 * else null. Judged after the rest of RCPT accepted it: relay, block lists and limits first.
 */
export function recipientToVerify(policy: Policy, address: EnvelopeAddress): string | null {
  const rv = policy.config.gateway.recipientVerification;
  if (!rv || matchDomain(address.domain, rv.domains) < 0) return null;
  return address.address.toLowerCase();
}

const when = (at: number) => new Date(at).toISOString();

/** What the client gets for RCPT, given the verifier's answer. */
export function verifiedRecipient(policy: Policy, address: EnvelopeAddress, answer: VerificationAnswer): Decision {
  const rv = policy.config.gateway.recipientVerification;
  const source = (a: { cached: boolean; at: number }) => (a.cached ? `cached answer of ${when(a.at)}` : 'probe');
  switch (answer.kind) {
    case 'accepted':
      return accept(REPLIES.recipientOk, 'recipient-verified', `${answer.nextHop} accepted RCPT TO:<${address.address}> (${source(answer)}): ${answer.reply}`);
    case 'refused': {
      const theirs = parseReply(answer.reply);
      // Their 5.1.x (or a bare 550) is "no such mailbox": Exchange's words. Other refusals keep
      // their class (5.2.2 mailbox full, 5.7.1 not authorised) without the inside server's text.
      // (parseReply keeps an enhanced code only of the basic code's class: a 5xx has a 5.x.x or none.)
      const ownClass = theirs !== null && theirs.code >= 500 && theirs.code <= 599 && theirs.enhanced !== null && !theirs.enhanced.startsWith('5.1.');
      const out = ownClass ? reply(theirs.code, theirs.enhanced, 'Recipient rejected by the next hop') : REPLIES.userUnknown;
      return reject(out, 'unknown-at-next-hop', `${answer.nextHop} refused RCPT TO:<${address.address}> (${source(answer)}): ${answer.reply}`);
    }
    case 'unknown':
      if (rv?.failureAction === 'accept') return accept(REPLIES.recipientOk, 'recipient-not-verified', `${address.address} could not be verified (${answer.why}); recipientVerification.failureAction is accept: the next hop decides at delivery`);
      return reject(REPLIES.recipientVerificationUnavailable, 'recipient-verification-unavailable', `${address.address} could not be verified: ${answer.why}`);
  }
}

/**
 * A verified domain whose mail stays here (a maildir route) or goes nowhere (no route) has no next
 * hop to ask: every RCPT to it would get the failureAction (451 by default). Judged for the null
 * sender, as the probes go (a send connector scoped to sender domains may route others).
 */
export function recipientVerificationWarnings(config: MailgwConfig): ConfigIssue[] {
  const g = config.gateway;
  const rv = g.recipientVerification;
  if (!rv) return [];
  const out: ConfigIssue[] = [];
  rv.domains.forEach((d, i) => {
    const path = `recipientVerification.domains[${i}]`;
    const c = selectSendConnector(g.sendConnectors, { recipientDomain: d.domain, senderDomain: null }).connector;
    const outcome = rv.failureAction === 'accept' ? 'accepted unverified' : 'answered 451 4.4.3';
    if (!c) out.push({ file: config.gatewayFile, path, message: `no route or send connector takes mail for ${d.domain}: there is no next hop to ask, so every recipient of it is ${outcome}; add a route to the server that holds its mailboxes` });
    else if (c.target.kind === 'maildir') out.push({ file: config.gatewayFile, path, message: `mail for ${d.domain} is delivered here (${describeTarget(c.target)}): there is no next hop to ask, so every recipient of it is ${outcome}; use recipients for mailboxes kept here` });
  });
  return out;
}
