// Runs one scripted client through the stages, as `mailgw explain` and the golden tests do:
// the policy seen without sockets (Postfix's smtpd_check test driver, in spirit).
import { formatReply, REPLIES } from './replies.js';
import type { Policy } from './compile.js';
import type { DirectoryAnswer, MembershipAnswer, RecipientEntry } from './directory.js';
import type { SendAsAnswer } from './send-as.js';
import { headerSenderAddresses, headerSenders, type SendOnBehalfAnswer } from './header-senders.js';
import { antiSpam, firewall } from './content.js';
import { accept, reject, type Decision } from './decision.js';
import { backPressure, type PressureLevel } from './back-pressure.js';
import { connectionFilter, ipListQueries, senderAuthentication, senderFilter, type IpListAnswer } from './antispam.js';
import { ipBlockListFilter, senderReputationScope, type IpBlockListEntry } from './sender-reputation.js';
import { configuredFilters, filterPlan, type FilterPlanEntry } from './content-filter.js';
import { rewriteRecipient } from './address-rewrite.js';
import { recipientToVerify, verifiedRecipient, type VerificationAnswer } from './recipient-verification.js';
import { evaluateTransportRules, internalSession } from './transport-rules.js';
import { ATTACHMENT_FILTER_NAME, attachmentMatcher, attachmentVerdict, type AttachmentMatch, type SeenPart } from './attachment-filter.js';
import { messageTypes } from './message-types.js';
import { fromInternalServer } from './originating-client.js';
import { remoteDomainsJudgement, remoteDomainsRestrictMessages } from './remote-domains.js';
import { bounceMessage, bounceRecipient } from './bounce-verification.js';
import { journalTargets, trustedJournalReport } from './journaling.js';
import { pickupEnvelope, pickupRecipients, pickupSession } from './pickup.js';
import { firstAddress, formatAddress, parseEnvelopeAddress, parseReply, type HeaderField, type MailAddress } from '@mailgw/mail';
import {
  NEW_TRANSACTION,
  recipientsOverSizeLimit,
  admitConnection,
  authBackoff,
  authComplete,
  authDirectory,
  authStart,
  recipientLookup,
  connect,
  data,
  dataCommand,
  helo,
  logonFailure,
  mail,
  mailNeedsSendAs,
  rateLimit,
  recipientRateLimit,
  recipientRateLimitKey,
  rateLimitKey,
  rcpt,
  startTls,
  tarpit,
  withTls,
  domainSecurity,
  has,
  type ConnectionCounts,
  type DataInput,
  type Session,
  type DirectoryLogon,
} from './stages.js';

/** What the message given to DATA looks like, as far as the policy judges it. */
export interface DataScenario {
  /** Bytes of the header section (default 200). */
  readonly headerBytes?: number;
  /** Bytes of the whole message (default: headerBytes + 100). */
  readonly messageBytes?: number;
  /** Received header fields in it (default 0). */
  readonly receivedHeaders?: number;
  /** Of those, added by this organisation's own servers (default 0). */
  readonly localHops?: number;
  /** It has a bare CR or LF. */
  readonly bareLineEndings?: boolean;
  /** Header fields the client sends ("Name: value"), for the header firewall. */
  readonly headers?: readonly string[];
  /**
   * Its attachments, for the transport rules' attachment conditions and the attachment filter: a
   * file name, or { name, size, passwordProtected, contentType, files } (size in bytes, decoded;
   * an archive holding encrypted files; its content type; the names of the files inside an archive).
   */
  readonly attachments?: ReadonlyArray<string | { readonly name: string; readonly size?: number; readonly passwordProtected?: boolean; readonly contentType?: string; readonly files?: readonly string[] }>;
}

export interface Scenario {
  /** Local binding the client connects to, "IP:port" or "[IPv6]:port". */
  readonly binding: string;
  readonly clientIP: string;
  /** Connections already open when this one arrives (connection admission). */
  readonly connections?: ConnectionCounts;
  /** EHLO argument; the HELO stage runs only when it is given. */
  readonly helo?: string;
  /** STARTTLS before anything else. */
  readonly tls?: boolean;
  /** The certificate the client gives at STARTTLS (domain security): its DNS names, and whether its chain is trusted (default true). */
  readonly clientCertificate?: { readonly names: readonly string[]; readonly trusted?: boolean };
  /** Authenticate as this user (credentials assumed valid unless authValid is false). */
  readonly auth?: string | null;
  readonly authValid?: boolean;
  readonly authMechanism?: string;
  /** Failed AUTH attempts from this client within gateway authBackoff's window (default 0). */
  readonly authFailures?: number;
  readonly mailFrom?: string | null;
  readonly size?: number;
  /** Messages already submitted under this session's messageRateLimit key in the last minute (default 0). */
  readonly recentMessages?: number;
  /** Recipients the authenticated user addressed in the last 24 hours, for throttlingPolicy.recipientRateLimit (default 0). */
  readonly recentRecipients?: number;
  readonly rcpt?: readonly string[];
  /** Give DATA and a message like this (true: a small plain message). */
  readonly data?: DataScenario | boolean;
  /**
   * What the DNS lists answer for this client, by provider name (IP Block/Allow List Providers):
   * the A records (["127.0.0.2"]), "none" (not listed) or "timeout". A provider left out is
   * taken as not listing the client.
   */
  readonly ipLists?: Readonly<Record<string, readonly string[] | 'none' | 'timeout'>>;
  /**
   * The IP Block List as it stands (`mailgw ip-block-list`): addresses or ranges, each an admin's
   * entry, or `{ range, kind: machine }` for one sender reputation made. Left out: empty.
   */
  readonly ipBlockList?: ReadonlyArray<string | { readonly range: string; readonly kind?: 'machine' | 'static'; readonly comment?: string }>;
  /**
   * What the directory says (mailgw explain asks it with the service account): the account
   * `auth` names (the logon it would be; null: none), and the recipient answers by address.
   * Left out: the directory is not consulted (AUTH of a name no local user has fails). A
   * recipient with delivery restrictions is judged by `sender`, MAIL FROM's object and groups.
   */
  readonly directory?: {
    readonly logon?: DirectoryLogon;
    readonly recipients?: Readonly<Record<string, DirectoryAnswer | RecipientEntry>>;
    readonly sender?: MembershipAnswer;
    readonly sendAs?: SendAsAnswer;
    /** Send As for the header's From and Sender addresses (data.headers), by lower-case address. */
    readonly headerSendAs?: Readonly<Record<string, SendAsAnswer>>;
    /** Send on Behalf for the header's From addresses, by lower-case address. */
    readonly sendOnBehalf?: Readonly<Record<string, SendOnBehalfAnswer>>;
  };
  /** The gateway's back pressure level at MAIL FROM (default normal): what a listener under it answers. */
  readonly backPressure?: PressureLevel;
  /**
   * What recipients' next hops answer (recipientVerification), by address (lower case):
   * accepted, refused (550 5.1.1), unknown (down or too slow), or the next hop's reply itself
   * ("552 5.2.2 Mailbox full"). Left out: the recipient is accepted, the reason saying it is
   * verified at RCPT (explain never asks a next hop; `mailgw verify-recipient` does).
   */
  readonly recipientVerification?: Readonly<Record<string, 'accepted' | 'refused' | 'unknown' | string>>;
}

export type Stage = 'connect' | 'admission' | 'helo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'data' | 'message' | 'rules' | 'attachments' | 'remote-domains' | 'journal' | 'pickup';

export interface StageResult {
  readonly stage: Stage;
  readonly input?: string;
  readonly decision: Decision['verdict'];
  readonly reply: string;
  readonly reason: string;
  readonly reasonCode: string;
  /** The connection closes after this reply. */
  readonly disconnect?: boolean;
  /** How long the listener holds this reply back (tarpitInterval), when it does. */
  readonly tarpitMs?: number;
}

export interface Explanation {
  readonly connector: string | null;
  readonly connectorFile: string | null;
  readonly matchedRange: string | null;
  /** Rights of the session when MAIL was given (after TLS and AUTH). */
  readonly rights: string[];
  readonly rightsSources: Record<string, string[]>;
  readonly stages: StageResult[];
  /** Whether the anti-spam agents judge the session (ms-Exch-Bypass-Anti-Spam) and whether sender authentication runs at DATA. */
  readonly antiSpam: { readonly applies: boolean; readonly reason: string; readonly senderAuthentication: { readonly applies: boolean; readonly reason: string }; readonly senderReputation: { readonly applies: boolean; readonly reason: string } } | null;
  /** Fields of the scenario's message the header firewall removes, with why (when the message is accepted). */
  readonly firewalled?: ReadonlyArray<{ readonly field: string; readonly reason: string }>;
  /** The content filters (rspamd, milters) configured, and whether each would judge this session's mail. */
  readonly filters: FilterPlanEntry[];
}

export function parseBinding(text: string): { address: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  return m ? { address: (m[1] ?? m[2])!, port: Number(m[3]) } : null;
}

/** The reply explain shows for a message that passes every DATA check (ids are made when it is queued). */
export const QUEUED_PLACEHOLDER = REPLIES.queued('<message-id>', '<queue-id>');

/**
 * Runs the scenario through every stage the policy has, in the listener's order, with the
 * same functions the listener calls. Stops where the client would have to stop (a refused
 * connection, a failed STARTTLS, a refused MAIL, a disconnect).
 */
export function explain(policy: Policy, s: Scenario): Explanation {
  const stages: StageResult[] = [];
  let session: Session | null = null;
  const push = (stage: Stage, d: Decision, input?: string): boolean => {
    const delay = session ? tarpit(session, d.reply, d.disconnect).delayMs : 0;
    stages.push({
      stage,
      ...(input !== undefined ? { input } : {}),
      decision: d.verdict,
      reply: formatReply(d.reply),
      reason: d.reason.message,
      reasonCode: d.reason.code,
      ...(d.disconnect ? { disconnect: true } : {}),
      ...(delay > 0 ? { tarpitMs: delay } : {}),
    });
    return d.verdict === 'accept';
  };

  const b = parseBinding(s.binding);
  const conn = connect(policy, { localAddress: b?.address ?? s.binding, localPort: b?.port ?? 0, clientIP: s.clientIP });
  push('connect', conn.decision, `${s.clientIP} → ${s.binding}`);
  session = conn.session;
  const done = (): Explanation => ({
    connector: conn.session?.connector.name ?? null,
    connectorFile: conn.session?.connector.config.file ?? null,
    matchedRange: conn.matchedRange?.text ?? null,
    rights: session ? [...session.rights.rights] : [],
    rightsSources: session ? Object.fromEntries([...session.rights.grantedBy].map(([r, src]) => [r, [...src]])) : {},
    stages,
    antiSpam: session
      ? (() => {
          const a = antiSpam(session);
          const sa = senderAuthentication(policy, session);
          const sr = senderReputationScope(policy, session);
          // Behind one of internalSMTPServers the agents judge the host before it, at the end of the header.
          const relay = fromInternalServer(policy, session) ? `; ${session.client.text} is one of internalSMTPServers: SPF and the block lists judge the host in the newest Received field from outside it, at the end of the header` : '';
          return { applies: a.applies, reason: a.reason.message, senderAuthentication: { applies: sa.applies, reason: `${sa.reason.message}${sa.applies ? relay : ''}` }, senderReputation: { applies: sr.applies, reason: sr.reason.message } };
        })()
      : null,
    filters: session ? filterPlan(session, configuredFilters(policy.config.gateway)) : [],
  });
  if (!session || conn.decision.verdict !== 'accept') return done();
  const counts = s.connections ?? { open: 0, fromClient: 0 };
  if (!push('admission', admitConnection(session, counts), `${counts.open} open, ${counts.fromClient} from ${session.client.text}`)) return done();

  if (s.helo !== undefined) {
    if (!push('helo', helo(session, s.helo.split(/\s+/).filter((w) => w !== '')), s.helo)) return done();
  }
  if (s.tls && !session.tls) {
    if (!push('starttls', startTls(session))) return done();
    session = withTls(session);
    // Domain security, on a connector that has it: what the client's certificate makes of the session.
    const c = s.clientCertificate;
    const secured = domainSecurity(policy, session, c ? { names: c.names, authorized: c.trusted ?? true, authorizationError: c.trusted === false ? 'untrusted in the scenario' : null } : null);
    if (secured) {
      push('starttls', secured.decision, c ? `client certificate for ${c.names.join(', ') || 'no names'}${c.trusted === false ? ' (untrusted)' : ''}` : 'no client certificate');
      session = secured.session;
    }
  }
  if (s.auth) {
    const mech = s.authMechanism ?? 'PLAIN';
    const input = `${mech} ${s.auth}`;
    const start = authStart(session, mech);
    if (start.verdict !== 'accept') {
      push('auth', start, input);
    } else {
      const backoff = authBackoff(policy, session, s.authFailures ?? 0);
      const viaDirectory = !policy.users.has(s.auth.toLowerCase()) && s.directory?.logon !== undefined;
      const logon: DirectoryLogon | undefined = s.authValid === false ? { kind: 'invalid', why: 'authValid: false (wrong password)' } : s.directory?.logon;
      const r =
        backoff.verdict !== 'accept' ? { decision: backoff, session }
        : viaDirectory && logon ? authDirectory(session, logon)
        : authComplete(policy, session, s.auth, s.authValid ?? true);
      // One attempt on this connection: the first failure counts for maxLogonFailures.
      const d = r.decision.verdict === 'accept' ? r.decision : logonFailure(session, 1, r.decision);
      push('auth', d, input);
      if (d.disconnect) return done();
      session = r.session;
    }
  }
  if (s.mailFrom === undefined || s.mailFrom === null) {
    if (s.data) push('data', dataCommand(session, { mailAccepted: false, transaction: NEW_TRANSACTION, queueAvailable: true }));
    return done();
  }
  let md = mail(policy, session, { sender: s.mailFrom, declaredSize: s.size });
  // As the listener: a directory user refused another object's address is judged by its Send As right there.
  if (mailNeedsSendAs(session, md) && s.directory?.sendAs) md = mail(policy, session, { sender: s.mailFrom, declaredSize: s.size, sendAs: s.directory.sendAs });
  let m: Decision = md;
  // Back pressure, as the listener asks it: after the sender's own checks, before the rate limit.
  if (m.verdict === 'accept' && s.backPressure && s.backPressure !== 'normal') {
    const p = backPressure(session, { level: s.backPressure, reason: `the scenario gives back pressure ${s.backPressure}` });
    if (p.verdict !== 'accept') m = p;
    else m = { ...m, reason: { code: m.reason.code, message: `${m.reason.message}; ${p.reason.message}` } };
  }
  if (m.verdict === 'accept' && rateLimitKey(session)) {
    const r = rateLimit(session, s.recentMessages ?? 0);
    if (r.verdict !== 'accept') m = r;
  }
  if (m.verdict === 'accept') {
    // Sender filtering (Set-SenderFilterConfig): its refusal is the answer; a stamp is told in the reason.
    const f = senderFilter(policy, session, md.sender);
    if (f.decision.verdict !== 'accept') m = f.decision;
    else if (f.stamp) m = { ...m, reason: { code: m.reason.code, message: `${m.reason.message}; ${f.decision.reason.message}` } };
  }
  // Connection filtering's DNS list answers as the scenario gives them.
  const queries = ipListQueries(policy, session);
  const answers: IpListAnswer[] = queries.map((q) => {
    const given = s.ipLists?.[q.provider];
    if (given === undefined || given === 'none') return { ...q, result: 'none' };
    if (given === 'timeout') return { ...q, result: 'timeout' };
    return { ...q, result: 'answer', addresses: [...given] };
  });
  const blockList: IpBlockListEntry[] = (s.ipBlockList ?? []).map((e) => (typeof e === 'string' ? { range: e, kind: 'static', addedAt: 0, expiresAt: null, comment: '' } : { range: e.range, kind: e.kind ?? 'static', addedAt: 0, expiresAt: null, comment: e.comment ?? '' }));
  if (!push('mail', m, `<${s.mailFrom}>${s.size !== undefined ? ` SIZE=${s.size}` : ''}`)) return done();
  let transaction = NEW_TRANSACTION;
  let counted = 0;
  const bounceSender = s.mailFrom === '' ? null : parseEnvelopeAddress(s.mailFrom);
  /** Bounce verification: why a recipient of this bounce is unverified; its header is judged with the message. */
  let unverifiedBounce: string | null = null;
  for (const to of s.rcpt ?? []) {
    // Bounce verification first, then address rewriting, as the listener does.
    const given = policy.config.gateway.bounceVerification ? parseEnvelopeAddress(to) : null;
    const bounce = given?.ok && (bounceSender === null || bounceSender.ok) ? bounceRecipient(policy, session, bounceSender?.ok ? bounceSender.value : null, given.value, Date.now()) : null;
    const untagged = bounce ? formatAddress(bounce.recipient) : to;
    const rewrite = rewriteRecipient(policy.addressRewrite, untagged);
    const recipient = rewrite?.recipient ?? untagged;
    const lookup = recipientLookup(policy, recipient);
    const known = lookup === null ? undefined : (s.directory?.recipients?.[lookup] ?? 'unavailable');
    const entry: RecipientEntry | undefined = known === undefined ? undefined : typeof known === 'string' ? { answer: known, restrictions: null } : known;
    const restrictions = entry?.restrictions ? { lists: entry.restrictions, sender: { address: s.mailFrom === '' ? null : s.mailFrom.toLowerCase(), answer: s.mailFrom === '' ? null : (s.directory?.sender ?? { kind: 'unavailable' as const, why: "explain was not told the sender's directory object" }) } } : undefined;
    const r = rcpt(policy, session, { recipient, transaction, directory: entry?.answer, restrictions, maxReceiveSize: entry?.maxReceiveSize, declaredSize: s.size });
    let d = rewrite ? { ...r.decision, reason: { code: r.decision.reason.code, message: `${rewrite.reason}; ${r.decision.reason.message}` } } : r.decision;
    if (bounce) d = { ...d, reason: { code: d.reason.code, message: `bounce verification: ${bounce.note}; ${d.reason.message}` } };
    const listed = d.verdict === 'accept' && r.address && !r.duplicate ? ipBlockListFilter(policy, session, r.address, blockList, 0) : null;
    if (listed) {
      // The IP Block List first, as the listener judges it; then no DNS list is asked.
      d = listed.verdict !== 'accept' ? listed : { ...d, reason: { code: d.reason.code, message: `${d.reason.message}; IP Block List: ${listed.reason.message}` } };
    } else if (d.verdict === 'accept' && r.address && !r.duplicate && queries.length > 0) {
      // Judged at RCPT, as the listener does: a block list refusal is the answer; otherwise why it let the recipient through.
      const f = connectionFilter(policy, session, r.address, answers);
      d = f.verdict !== 'accept' ? f : { ...d, reason: { code: d.reason.code, message: `${d.reason.message}; connection filter: ${f.reason.message}` } };
    }
    const toVerify = d.verdict === 'accept' && r.address && !r.duplicate ? recipientToVerify(policy, r.address) : null;
    if (toVerify && r.address) {
      // Judged last, as the listener does: after relay, block lists and limits.
      const given = s.recipientVerification?.[toVerify];
      if (given === undefined) d = { ...d, reason: { code: d.reason.code, message: `${d.reason.message}; recipientVerification: the next hop is asked at RCPT (or the cached answer serves); \`mailgw verify-recipient ${toVerify}\` asks it now` } };
      else d = verifiedRecipient(policy, r.address, scenarioAnswer(given));
    }
    if (d.verdict === 'accept' && !r.duplicate && recipientRateLimitKey(policy, session)) {
      // Counted as the listener counts: every recipient accepted so far in this scenario adds one.
      const t = recipientRateLimit(policy, session, (s.recentRecipients ?? 0) + counted);
      if (t.verdict !== 'accept') d = t;
      else counted++;
    }
    push('rcpt', d, `<${to}>`);
    if (d !== r.decision && d.verdict !== 'accept') continue;
    if (d.verdict === 'accept' && bounce?.unverified && unverifiedBounce === null) unverifiedBounce = bounce.unverified;
    transaction = r.transaction;
  }
  if (!s.data) return done();
  if (!push('data', dataCommand(session, { mailAccepted: true, transaction, queueAvailable: true }))) return done();
  const d: DataScenario = s.data === true ? {} : s.data;
  const headerBytes = d.headerBytes ?? 200;
  const input: DataInput = {
    bareLineEndings: d.bareLineEndings ?? false,
    receivedHeaders: Math.max(d.receivedHeaders ?? 0, d.localHops ?? 0),
    localHops: d.localHops ?? 0,
    headerBytes,
    messageBytes: d.messageBytes ?? headerBytes + 100,
    receiveSizeLimit: transaction.receiveSizeLimit,
  };
  const sized = data(session, input);
  // An untagged bounce is judged by its header, as the listener does at the end of DATA.
  const bounceVerdict = sized.verdict === 'accept' && unverifiedBounce !== null ? bounceMessage(policy, unverifiedBounce, messageTypes({ fields: scenarioFields(d.headers ?? []), parts: null, organizationHeadersTrusted: false })) : null;
  const sizes = bounceVerdict && bounceVerdict.verdict !== 'accept' ? bounceVerdict : bounceVerdict && bounceVerdict.reason.code !== 'bounce-exempt' ? { ...sized, reason: { code: sized.reason.code, message: `${sized.reason.message}; bounce verification (audit): ${bounceVerdict.reason.message}` } } : sized;
  // Too large for some recipients' own limits, not all: accepted and failed for those, as the listener does.
  const oversize = sizes.verdict === 'accept' ? recipientsOverSizeLimit(transaction, input.messageBytes) : [];
  const failedNote = oversize.map((o) => `${o.reason}: accepted, and failed for ${formatAddress(o.recipient)} from the start (${o.reply.code} ${o.reply.enhanced} ${o.reply.text}, in a DSN)`).join('; ');
  // The header's From and Sender of an authenticated user's message, after the sizes, as the listener judges them.
  const senders = sizes.verdict === 'accept' ? explainHeaderSenders(policy, session, s, d.headers ?? []) : null;
  const verdict = senders && senders.decision.verdict !== 'accept' ? senders.decision : sizes;
  const acceptedWhy = senders && senders.decision.reason.code !== 'header-senders-none' && senders.decision.reason.code !== 'header-senders-anonymous' ? `${verdict.reason.message}; ${senders.decision.reason.message}` : verdict.reason.message;
  const shown = verdict.verdict === 'accept' ? accept(QUEUED_PLACEHOLDER, verdict.reason.code, failedNote ? `${acceptedWhy}; ${failedNote}` : acceptedWhy) : verdict;
  push('message', shown, `${input.headerBytes} header bytes, ${input.messageBytes} bytes, ${input.receivedHeaders} Received (${input.localHops} local)${input.bareLineEndings ? ', bare line endings' : ''}${senders?.input ?? ''}`);
  const firewalled = (d.headers ?? []).flatMap((h) => {
    const colon = h.indexOf(':');
    const name = colon > 0 ? h.slice(0, colon).trim() : h.trim();
    const why = firewall(session!, name, colon > 0 ? h.slice(colon + 1).trim() : '');
    return why ? [{ field: name, reason: why }] : [];
  });
  let judged = verdict.verdict === 'accept';
  if (judged && policy.config.gateway.transportRules.length > 0) {
    const rules = explainRules(policy, session, s, transaction.recipients, d.headers ?? [], input.messageBytes, d.attachments ?? []);
    judged = push('rules', rules.decision, rules.input);
  }
  // The attachment filter runs after the transport rules, as in the listener.
  const attachments = judged ? explainAttachments(policy, session, d.attachments ?? []) : null;
  if (attachments) judged = push('attachments', attachments.decision, attachments.input);
  // Recipients are withheld from a message that was accepted, not from one refused above.
  if (judged && remoteDomainsRestrictMessages(policy.config.gateway.remoteDomains)) {
    const types = messageTypes({ fields: scenarioFields(d.headers ?? []), parts: null, organizationHeadersTrusted: has(session, 'ms-Exch-Accept-Headers-Organization') });
    const { withheld, reason } = remoteDomainsJudgement(transaction.recipients, types, policy.config.gateway.remoteDomains, policy.insideDomains);
    const said = `${reason}${withheld.length > 0 && withheld.length === transaction.recipients.length ? '; no recipient left: answered 250, delivered to nobody' : ''}`;
    push('remote-domains', accept(QUEUED_PLACEHOLDER, withheld.length === 0 ? 'remote-domains-allow' : 'remote-domains-withheld', said), `${types.size === 0 ? 'no message type' : [...types].join(', ')} to ${transaction.recipients.length} recipient(s)`);
  }
  // Journal rules: judged on the envelope the client gave, as the listener does when DATA begins.
  if (judged && policy.config.gateway.journalRules.length > 0) {
    const fields = scenarioFields(d.headers ?? []);
    const isReport = trustedJournalReport(session, fields.has('x-ms-journal-report'));
    const j = journalTargets(policy, { sender: md.sender, recipients: transaction.recipients, isJournalReport: isReport });
    const code = j.unansweredMembership ? 'journal-asks-directory' : j.targets.length > 0 ? 'journaled' : 'not-journaled';
    const why = j.unansweredMembership ? `${j.reason}: a journal rule's recipient may be a group, whose members the listener asks the directory for (explain does not)` : j.reason;
    push('journal', accept(QUEUED_PLACEHOLDER, code, why), `${transaction.recipients.length} recipient(s)`);
  }
  return { ...done(), ...(verdict.verdict === 'accept' ? { firewalled } : {}) };
}

/** A scenario's word for a next hop's answer (Scenario.recipientVerification) as the verifier gives it. */
function scenarioAnswer(given: string): VerificationAnswer {
  const nextHop = 'the next hop (scenario)';
  if (given === 'accepted') return { kind: 'accepted', reply: '250 2.1.5 OK', nextHop, at: 0, cached: false };
  if (given === 'refused') return { kind: 'refused', reply: '550 5.1.1 User unknown', nextHop, at: 0, cached: false };
  const r = parseReply(given);
  if (r && r.code < 300) return { kind: 'accepted', reply: given, nextHop, at: 0, cached: false };
  if (r && r.code >= 500) return { kind: 'refused', reply: given, nextHop, at: 0, cached: false };
  return { kind: 'unknown', why: given === 'unknown' ? 'the next hop could not say (scenario)' : `${nextHop} answered ${given}`, nextHop };
}

/**
 * headerSenders on the scenario's header lines, with the directory's answers the scenario gives
 * (explain's CLI asks them); a question it has no answer for counts as not granted, said so.
 */
function explainHeaderSenders(policy: Policy, session: Session, s: Scenario, headers: readonly string[]): { decision: Decision; input: string } {
  const fields = scenarioFields(headers);
  const from = headerSenderAddresses(fields.get('from') ?? []);
  const sender = headerSenderAddresses(fields.get('sender') ?? [])[0] ?? null;
  const untold = { kind: 'not-granted', dn: null, why: 'explain was not told (the directory was not asked)' } as const;
  const sendAs = new Map<string, SendAsAnswer>(Object.entries(s.directory?.headerSendAs ?? {}));
  const onBehalf = new Map<string, SendOnBehalfAnswer>(Object.entries(s.directory?.sendOnBehalf ?? {}));
  const input = from.length > 0 || sender !== null ? `; header From ${from.join(', ') || '(none)'}${sender ? `, Sender ${sender}` : ''}` : '';
  for (let round = 0; round < 3; round++) {
    const r = headerSenders(policy, session, { from, sender, sendAs, onBehalf });
    // The directory's grants say whose object allowed what (the listener logs them as audit lines).
    if (r.kind === 'decided') return { decision: r.grants.length === 0 ? r.decision : { ...r.decision, reason: { code: r.decision.reason.code, message: `${r.decision.reason.message} (${r.grants.join('; ')})` } }, input };
    r.sendAs.forEach((a) => sendAs.set(a, untold));
    r.onBehalf.forEach((a) => onBehalf.set(a, untold));
  }
  return { decision: reject(REPLIES.directoryUnavailable, 'directory-unavailable', 'the header senders were still undecided'), input };
}

/** A scenario's header lines ("Name: value") as the filters read fields: by lower-case name, values in order. */
function scenarioFields(headers: readonly string[]): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  for (const h of headers) {
    const colon = h.indexOf(':');
    if (colon <= 0) continue;
    const name = h.slice(0, colon).trim().toLowerCase();
    fields.set(name, [...(fields.get(name) ?? []), h.slice(colon + 1).trim()]);
  }
  return fields;
}

/**
 * The attachment filter on the scenario's attachments (their names and content types, and with
 * openArchives the names of the files inside archives), as the listener's filter judges the parts
 * it reads; null when there is no filter, no attachment, or the filter does not serve the session.
 */
function explainAttachments(policy: Policy, session: Session, attachments: NonNullable<DataScenario['attachments']>): { decision: Decision; input: string } | null {
  const af = policy.config.gateway.attachmentFilter;
  if (!af || attachments.length === 0) return null;
  const plan = filterPlan(session, configuredFilters(policy.config.gateway)).find((f) => f.name === ATTACHMENT_FILTER_NAME);
  if (plan && !plan.runs) return null;
  const match = attachmentMatcher(af.entries);
  const matches: AttachmentMatch[] = [];
  let inside = 0;
  attachments.forEach((a, i) => {
    const o = typeof a === 'string' ? { name: a } : a;
    // Each attachment a part of its own after the text (index 0), as a multipart message has them.
    const place = { index: i + 1, root: false, container: false, inAttachedMessage: false };
    const part: SeenPart = { filename: o.name, contentType: o.contentType ?? null };
    const entry = match(part);
    if (entry) matches.push({ part, entry, place });
    if (!af.openArchives) return;
    for (const file of o.files ?? []) {
      inside++;
      const inner: SeenPart = { filename: file, contentType: null, archive: o.name };
      const e = match(inner);
      if (e) matches.push({ part: inner, entry: e, place });
    }
  });
  const v = attachmentVerdict(matches, af);
  const input = `${attachments.length} attachment(s)${inside ? `, ${inside} file(s) inside archives` : ''}, ${af.entries.length} entries, action ${af.action}`;
  if (v.verdict === 'reject') return { decision: reject(v.reply, 'attachment-filter-rejected', v.reason), input };
  const what = v.verdict === 'discard' ? '; answered 250, delivered to nobody' : '';
  return { decision: accept(QUEUED_PLACEHOLDER, v.verdict === 'accept' ? 'attachment-filter-accept' : v.verdict === 'strip' ? 'attachment-filter-stripped' : 'attachment-filter-deleted', `${v.reason}${what}`), input };
}

/**
 * The transport rules on the scenario's message (its header fields as given, the envelope, the
 * size), as the listener's transport rules filter judges it: what the client is answered, the
 * rules that matched and what they did.
 */
function explainRules(policy: Policy, session: Session, s: Scenario, recipients: readonly MailAddress[], headers: readonly string[], size: number, attachments: NonNullable<DataScenario['attachments']>): { decision: Decision; input: string } {
  const fields = scenarioFields(headers);
  const from = fields.get('from')?.[0];
  const sender = s.mailFrom ? parseEnvelopeAddress(s.mailFrom) : null;
  const r = evaluateTransportRules(
    policy.config.gateway.transportRules,
    {
      envelopeSender: sender?.ok ? { local: sender.value.local, domain: sender.value.domain } : null,
      fromHeader: from ? firstAddress(from) : null,
      recipients,
      clientIP: s.clientIP,
      internalSession: internalSession(session),
      fields,
      size,
      attachments: attachments.map((a) => (typeof a === 'string' ? { name: a, size: null } : { name: a.name, size: a.size ?? null, ...(a.passwordProtected ? { passwordProtected: true } : {}) })),
    },
    policy.insideDomains,
  );
  const input = `${policy.config.gateway.transportRules.length} transport rule(s) on ${headers.length} header field(s)${attachments.length ? ` and ${attachments.length} attachment(s)` : ''}`;
  if ((r.verdict === 'reject' || r.verdict === 'tempfail') && r.reply) return { decision: reject(r.reply, 'transport-rule-rejected', r.reason), input };
  const code = r.verdict === 'discard' ? 'transport-rule-deleted' : r.verdict === 'quarantine' ? 'transport-rule-quarantined' : r.matched.length > 0 ? 'transport-rules-matched' : 'no-transport-rule';
  const what = r.verdict === 'discard' ? '; answered 250, delivered to nobody' : r.verdict === 'quarantine' ? '; quarantined' : '';
  const changes = [...r.headers.map((h) => `${h.op} ${h.name}`), ...r.envelope.map((e) => (e.op === 'change-sender' ? 'sender changed' : `${e.op} ${formatAddress(e.recipient)}`))];
  // Group conditions need the directory, which explain (pure) does not ask: said, not guessed silently.
  const groups = r.unansweredMembership ? `; group conditions (fromMemberOf, sentToMemberOf, betweenMemberOf…) taken as not met: explain does not ask the directory which groups ${r.unansweredMembership.join(', ')} ${r.unansweredMembership.length === 1 ? 'is' : 'are'} in` : '';
  const attributes = r.unansweredAttributes ? `; directory attribute and manager conditions (…ADAttribute…, manager…) taken as not met: explain does not ask the directory for the attributes of ${r.unansweredAttributes.join(', ')}` : '';
  const open = groups + attributes;
  return { decision: accept(QUEUED_PLACEHOLDER, code, `${r.reason}${what}${changes.length ? ` (${changes.join(', ')})` : ''}${open}`), input };
}

/**
 * What the pickup directory would do with a file whose header is `fields` and size `size`
 * (mailgw explain --pickup): its envelope (or why it would be renamed .bad), each recipient as
 * RCPT judges it (refused ones failed with a DSN, as the pickup does), the transport rules on
 * its real header, the journal rules. The directory's answers are given (the CLI asks); a
 * recipient the directory was not asked about is judged as if it could not answer.
 */
export function explainPickup(policy: Policy, fields: readonly HeaderField[], size: number, directory?: Scenario['directory']): StageResult[] {
  const stages: StageResult[] = [];
  const push = (stage: Stage, d: Decision, input?: string) => {
    stages.push({ stage, ...(input !== undefined ? { input } : {}), decision: d.verdict, reply: formatReply(d.reply), reason: d.reason.message, reasonCode: d.reason.code });
    return d.verdict === 'accept';
  };
  // No client to answer: a file the pickup cannot send is renamed *.bad.
  const bad = (code: string, reason: string, input?: string) => stages.push({ stage: 'pickup', ...(input !== undefined ? { input } : {}), decision: 'reject', reply: 'not sent: the file is renamed *.bad', reason, reasonCode: code });
  const env = pickupEnvelope(policy, fields);
  if (!env.ok) {
    bad(env.code, env.reason, `${fields.length} header field(s), ${size} bytes`);
    return stages;
  }
  stages.push({ stage: 'pickup', input: `${fields.length} header field(s), ${size} bytes`, decision: 'accept', reply: 'taken: queued, the file deleted (unless refused below)', reason: env.reason, reasonCode: 'pickup-envelope' });
  const session = pickupSession(policy);
  const judged = pickupRecipients(policy, env, { ...(directory?.recipients ? { recipients: directory.recipients } : {}), sender: directory?.sender });
  for (const { recipient, decision: d } of judged.decisions) {
    const note = d.verdict === 'accept' ? '' : d.reply.code >= 500 ? '; the pickup stores it failed from the start (a DSN to the sender) when another recipient is taken' : '; the pickup leaves the file for a later look';
    push('rcpt', { ...d, reason: { ...d.reason, message: `${d.reason.message}${note}` } }, recipient);
  }
  if (judged.kind === 'later') return stages;
  if (judged.kind === 'bad') {
    bad(judged.code, `every recipient was refused (${judged.refused.length})`);
    return stages;
  }
  const { transaction } = judged;
  const headers = fields.map((f) => Buffer.from(f.raw).toString('utf8').replace(/\r\n(?=[ \t])/g, '').replace(/\r\n$/, ''));
  if (policy.config.gateway.transportRules.length > 0) {
    const rules = explainRules(policy, session, { binding: '', clientIP: '127.0.0.1', mailFrom: env.sender?.address ?? '' }, transaction.recipients, headers, size, []);
    // A message released from quarantine (mailgw quarantine release) is not held again.
    const d = env.release && rules.decision.reason.code === 'transport-rule-quarantined' ? { ...rules.decision, reason: { ...rules.decision.reason, message: `${rules.decision.reason.message}, but not held again: the file is a release from quarantine (X-Mailgw-Release)` } } : rules.decision;
    if (!push('rules', d, rules.input)) return stages;
  }
  if (policy.config.gateway.journalRules.length > 0) {
    const j = journalTargets(policy, { sender: env.sender, recipients: transaction.recipients, isJournalReport: trustedJournalReport(session, fields.some((f) => f.name === 'x-ms-journal-report')) });
    push('journal', accept(QUEUED_PLACEHOLDER, j.targets.length > 0 ? 'journaled' : 'not-journaled', j.unansweredMembership ? `${j.reason}: a rule's recipient may be a group, whose members the pickup asks the directory for (explain does not)` : j.reason), `${transaction.recipients.length} recipient(s)`);
  }
  return stages;
}

