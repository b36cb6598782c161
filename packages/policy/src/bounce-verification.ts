// Bounce verification (BATV, draft-levine-smtp-batv-01's "prvs" scheme): mail leaving the
// organisation goes out with its envelope sender tagged, prvs=KDDDSSSSSS=user@domain (K the key
// number, DDD the day the tag expires, mod 1000, SSSSSS the first three bytes of an HMAC over
// them and the address), so a real bounce of it comes back to the tagged address. A bounce
// (MAIL FROM:<>) from outside to a local address without a valid tag answers mail the
// organisation never sent: backscatter of spam forged in its name. Pure: the HMAC is computed
// here, the key comes from the configuration; each answer carries its reason.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { insideDomains, matchDomain, type BounceVerificationConfig, type DomainPattern, type GatewayConfig } from '@mailgw/config';
import { copyDirection } from './address-rewrite.js';
import type { MailAddress } from '@mailgw/mail';
import type { Policy } from './compile.js';
import type { MessageType } from '@mailgw/config';
import { accept, reject, type Decision } from './decision.js';
import { REPLIES } from './replies.js';
import { acceptedDomainType, has, type Session } from './stages.js';

const DAY_MS = 86_400_000;
/** The tag: "prvs=", the key number, three digits of day, six hex digits of signature, "=", the address's own local part. */
const PRVS = /^prvs=([0-9])([0-9]{3})([0-9a-f]{6})=(.+)$/i;
/** The only key number written (a second key for rotation would be 1). */
const KEY_NUMBER = '0';
/** RFC 5321 4.5.3.1.1: a local part of up to 64 octets; a longer tagged one goes out untagged. */
const MAX_LOCAL = 64;

function signature(key: string, keyNumber: string, day: string, address: MailAddress): string {
  return createHmac('sha256', key).update(`${keyNumber}${day}${address.local}@${address.domain.toLowerCase()}`).digest('hex').slice(0, 6);
}

/**
 * The envelope sender as it goes out: tagged, valid for maxAgeDays from `now`. A local part
 * tagged already, or too long to take a tag, is left as it is.
 */
export function taggedSender(cfg: BounceVerificationConfig, sender: MailAddress, now: number): MailAddress {
  if (PRVS.test(sender.local) || Buffer.byteLength(sender.local) + 16 > MAX_LOCAL) return sender;
  const day = String((Math.floor(now / DAY_MS) + cfg.maxAgeDays) % 1000).padStart(3, '0');
  return { local: `prvs=${KEY_NUMBER}${day}${signature(cfg.key, KEY_NUMBER, day, sender)}=${sender.local}`, domain: sender.domain };
}

/** Bounce verification's tagging, from the configuration once: the key, whose senders are tagged, which recipients are inside. */
export interface BounceTagging {
  readonly config: BounceVerificationConfig;
  /** Senders of these domains are tagged. */
  readonly authoritative: readonly DomainPattern[];
  /** Recipients outside these (Authoritative and InternalRelay) get tagged copies. */
  readonly inside: readonly DomainPattern[];
}

export function bounceTagging(g: Pick<GatewayConfig, 'bounceVerification' | 'acceptedDomains'>): BounceTagging | null {
  if (!g.bounceVerification) return null;
  return { config: g.bounceVerification, authoritative: g.acceptedDomains.filter((d) => d.type === 'Authoritative').map((d) => d.domain), inside: insideDomains(g.acceptedDomains) };
}

/**
 * The envelope sender a copy for `recipientDomains` goes out with: tagged when the copy leaves the
 * organisation (a recipient outside `inside`) and the sender is of an Authoritative domain, so
 * that a real bounce of it comes back tagged; as it was otherwise (null: the null sender).
 */
export function outboundSender(t: BounceTagging | null | undefined, recipientDomains: readonly string[], sender: MailAddress | null, now: number): MailAddress | null {
  if (!t || sender === null || copyDirection(recipientDomains, t.inside) !== 'outbound') return sender;
  if (matchDomain(sender.domain, t.authoritative) < 0) return sender;
  return taggedSender(t.config, sender, now);
}

/** What a recipient's local part says of a tag: none, a valid one (and the address under it), or one that does not verify (and why). */
export type BounceTag =
  | { readonly kind: 'none' }
  | { readonly kind: 'valid'; readonly address: MailAddress }
  | { readonly kind: 'invalid'; readonly address: MailAddress; readonly why: string };

export function readBounceTag(cfg: BounceVerificationConfig, recipient: MailAddress, now: number): BounceTag {
  const m = PRVS.exec(recipient.local);
  if (!m) return { kind: 'none' };
  const [, keyNumber, day, sig, local] = m as unknown as [string, string, string, string, string];
  const address = { local, domain: recipient.domain };
  if (keyNumber !== KEY_NUMBER) return { kind: 'invalid', address, why: `its tag names key ${keyNumber}, not one of this gateway's` };
  // The current secret, or while it is being changed the one before.
  const given = Buffer.from(sig.toLowerCase());
  const signedBy = (key: string) => timingSafeEqual(Buffer.from(signature(key, keyNumber, day, address)), given);
  if (!signedBy(cfg.key) && !(cfg.previousKey && signedBy(cfg.previousKey))) return { kind: 'invalid', address, why: 'its tag does not verify (not signed by this gateway)' };
  // Days left until the expiry day, counted mod 1000 as the tag writes it.
  const left = (Number(day) - (Math.floor(now / DAY_MS) % 1000) + 1000) % 1000;
  if (left > cfg.maxAgeDays) return { kind: 'invalid', address, why: `its tag expired (valid for ${cfg.maxAgeDays} days)` };
  return { kind: 'valid', address };
}

/**
 * A recipient, judged at RCPT before anything else reads it: the address under a valid tag is
 * the recipient from here on. A bounce (the null sender) from outside to an address of ours
 * without a valid tag is `unverified`: the message is judged by its header at the end of DATA
 * (bounceMessage), where a read receipt or an automatic reply, which go to the From: address
 * untagged, can be told from a delivery report. Not judged: the sessions that bypass anti-spam
 * (the organisation's own servers, whose bounces were never tagged) and bypassedRecipients.
 * null: bounce verification has nothing to say (off, not a bounce, no tag).
 */
export function bounceRecipient(policy: Policy, session: Session, sender: MailAddress | null, recipient: MailAddress, now: number): BounceRecipient | null {
  const cfg = policy.config.gateway.bounceVerification;
  if (!cfg) return null;
  const tag = readBounceTag(cfg, recipient, now);
  const text = (a: MailAddress) => `${a.local}@${a.domain}`;
  if (tag.kind === 'valid') return { recipient: tag.address, note: `a valid bounce tag: judged as ${text(tag.address)}` };
  // Only a bounce from outside to one of the organisation's own addresses is judged.
  const to = tag.kind === 'invalid' ? tag.address : recipient;
  const bypassed = cfg.bypassedRecipients.includes(text(to).toLowerCase());
  if (sender !== null || has(session, 'ms-Exch-Bypass-Anti-Spam') || acceptedDomainType(policy, recipient.domain) !== 'Authoritative' || bypassed) {
    const why = sender !== null ? 'not a bounce' : has(session, 'ms-Exch-Bypass-Anti-Spam') ? 'the session bypasses anti-spam' : bypassed ? `${text(to)} is one of bounceVerification's bypassedRecipients` : 'not an Authoritative domain';
    if (bypassed && tag.kind === 'none') return { recipient, note: `${why}: not judged` };
    return tag.kind === 'invalid' ? { recipient: tag.address, note: `${tag.why}; ${why}: judged as ${text(tag.address)}` } : null;
  }
  const why = tag.kind === 'invalid' ? `a bounce to ${text(tag.address)}: ${tag.why}` : `a bounce to ${text(recipient)}, an address this gateway tags on mail it sends: no tag, so not a reply to mail it sent (backscatter)`;
  return { recipient: to, unverified: why, note: `${why}: the message is judged at the end of DATA (refused unless a read receipt or an automatic reply)` };
}

export interface BounceRecipient {
  /** The recipient from here on: the address under a tag, or as given. */
  readonly recipient: MailAddress;
  /** A bounce to an address of ours without a valid tag: why; the message is judged by bounceMessage. */
  readonly unverified?: string;
  /** What bounce verification made of it, for explain and the log. */
  readonly note: string;
}

/**
 * A bounce with unverified recipients (`why`: the first one's), by its header at the end of DATA: a
 * read receipt (RFC 8098, report-type=disposition-notification) or an automatic reply
 * (RFC 3834 Auto-Submitted: auto-replied) goes to the From: address with the null sender,
 * never tagged, and is let through; anything else with the null sender is a delivery report
 * (RFC 3464, or a plain-text one as qmail writes them) and is refused (Enforce), or let through
 * with the reason saying it would have been (Audit: reason code `bounce-audit`).
 */
export function bounceMessage(policy: Policy, why: string, types: ReadonlySet<MessageType>): Decision {
  if (types.has('ReadReceipt')) return accept(REPLIES.startMailInput, 'bounce-exempt', 'a read receipt (sent to the From: address, never tagged): not judged as a bounce');
  if (types.has('OOF')) return accept(REPLIES.startMailInput, 'bounce-exempt', 'an automatic reply (sent to the From: address, never tagged): not judged as a bounce');
  if (policy.config.gateway.bounceVerification?.mode === 'Audit') return accept(REPLIES.startMailInput, 'bounce-audit', `would be refused: ${why}`);
  return reject(REPLIES.bounceNotVerified, 'bounce-not-verified', why);
}

/** For explain and check: what bounce verification does, in a line. */
export function bounceVerificationText(cfg: BounceVerificationConfig | undefined): string {
  if (!cfg) return 'off';
  return `${cfg.mode === 'Audit' ? 'audit (untagged bounces logged, not refused)' : 'on (untagged bounces refused: 550 5.7.1)'}; senders of the Authoritative domains tagged (prvs=) on mail to outside, tags valid ${cfg.maxAgeDays} days`;
}
