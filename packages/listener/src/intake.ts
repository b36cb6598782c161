// One message from DATA to the queue: a queue id, our Received header, the streamed body
// (receive-message.ts) fed to the filters on the way, the filters' outcomes judged by the
// policy (contentVerdict), then the header as edited and the job committed with the envelope.
// The outcome says what to answer; nothing is left in Redis unless the outcome is "queued"
// (or "discarded", which a filter asked for explicitly: 250, nothing stored), except a journal
// report stored before its message failed to be (journal.ts: at least once).
import { REPLIES, contentVerdict, reject, trustedJournalReport, headerSenderAddresses, disclaimerFailed, disclaimerRefusal, editEnvelope, has, quarantineRouting, filterPlan, internalSession, recipientKey, recipientsOverSizeLimit, type Decision, type OversizeRecipient, type ReceiveLimit, type Reply, type Session } from '@mailgw/policy';
import { newQueueId, type MailStore, type MessageWriter } from '@mailgw/queue';
import { applyDisclaimers, applyHeaderEdits, fieldValue, fieldsByName, findAddresses, formatAddress, formatReply, parseHeaderFields, type BodyDisclaimer, type EnvelopeRecipient, type FilterContext, type FilterOutcome, type HeaderEdit, type MailAddress, type MessageFilter, type MessageFilterSession, type MessageOnlyFilter, type TransactionFilter, type TransactionFilterSession } from '@mailgw/mail';
import type { Logger } from 'pino';
import { commitInput } from './delivery-job.js';
import type { ListenerEvent } from './observer.js';
import { JournalReports, type JournalPlan, type QueuedJournalReport } from './journal.js';
import type { FilledDisclaimers } from './disclaimer-tokens.js';
import { assembleHeader, receiveMessage } from './message/receive-message.js';
import { generatedMessageId, receivedHeader, withProtocol } from './message/trace-headers.js';

/** A transaction filter (a milter) begun at MAIL, and its session. */
export interface TransactionFilterRun {
  readonly filter: TransactionFilter;
  readonly session: TransactionFilterSession;
}

export interface IntakeInput {
  readonly session: Session;
  /** The queue id MAIL already gave the transaction (a milter's `i` macro); absent: a new one. */
  readonly queueId?: string | null;
  /** The transaction filters begun at MAIL; intake continues each at DATA, then ends or aborts it. */
  readonly transactionFilters?: readonly TransactionFilterRun[];
  readonly store: MailStore;
  readonly clientIP: string;
  /** Reverse-resolved name or the "[ip]" literal. */
  readonly clientHostname: string;
  readonly helo: string;
  /** The session began with EHLO (not HELO). */
  readonly ehlo: boolean;
  readonly tls: { protocol: string; cipher: string } | null;
  readonly sender: MailAddress | null;
  readonly recipients: readonly EnvelopeRecipient[];
  /** The transaction's receiveSizeLimit (every recipient's limit, the largest): a larger message is refused. */
  readonly receiveSizeLimit?: number | undefined;
  /** The transaction's sizeLimits (each recipient's limit, in the order of `recipients`): a message over some is failed for those. */
  readonly sizeLimits?: readonly (ReceiveLimit | null)[] | undefined;
  /**
   * Recipients the policy refused with no client to answer (the pickup directory's unknown
   * ones): stored failed from the start, so the sender gets a DSN, as for `oversize` ones.
   * Not in `recipients`: the filters and rules never see them.
   */
  readonly refused?: readonly OversizeRecipient[];
  readonly ret: string | null | undefined;
  readonly envid: string | null | undefined;
  readonly bodyType: string | undefined;
  /** MAIL carried SMTPUTF8. */
  readonly smtpUtf8: boolean;
  /** The configured message filters, in order (the policy decides which run for this session). */
  readonly filters?: readonly MessageFilter[];
  /** Backstop for a filter whose end() does not settle by itself (default 120 s). */
  readonly filterTimeoutMs?: number;
  /** Header fields the session's earlier stages stamp (sender filtering's StampStatus), applied with the filters' edits. */
  readonly stamps?: readonly HeaderEdit[];
  /** Called with each filter's outcome (logs, metrics, protocol log). */
  readonly onFilterOutcome?: (o: FilterOutcome, queueId: string) => void;
  /** Where quarantined messages go instead of their recipients (quarantineMailbox); none: delivered, stamped. */
  readonly quarantineMailbox?: MailAddress | null;
  /** An administrator released this message from quarantine (the pickup's X-Mailgw-Release): a filter's quarantine is not applied again. */
  readonly released?: boolean;
  /** Called when a filter asked for quarantine and the message, released, is not held (the log says so). */
  readonly onReleaseKept?: (reason: string, queueId: string) => void;
  /** Called with what the filters changed in the envelope, when they changed something. */
  readonly onEnvelopeChange?: (changes: readonly string[], queueId: string) => void;
  /** Called with the policy's reason when a message is quarantined. */
  readonly onQuarantine?: (reason: string, queueId: string) => void;
  /**
   * Judges the header's From addresses (every From field) and Sender address of an
   * authenticated user's message (headerSenders); absent: not judged (anonymous sessions,
   * headerSenderCheck off). A refusal refuses the message before the filters' verdicts.
   */
  readonly judgeHeaderSenders?: (from: readonly string[], sender: string | null, queueId: string) => Promise<Decision>;
  /** A bounce with recipients whose tag did not verify (bounce verification): judged by its header, once received. */
  readonly judgeBounce?: (fields: ReadonlyMap<string, readonly string[]>, queueId: string) => Decision;
  /** Fills the disclaimers' %%tokens%% from the senders' directory objects (fillDisclaimers); absent: as written. */
  readonly fillDisclaimerTokens?: (list: readonly BodyDisclaimer[]) => Promise<FilledDisclaimers>;
  /** Called with where each sender's token values came from, when some disclaimer had tokens. */
  readonly onDisclaimerTokens?: (notes: FilledDisclaimers['notes'], queueId: string) => void;
  /** Called with what each disclaimer did (inserted, wrapped, ignored, rejected) when a rule asked for one. */
  readonly onDisclaimers?: (done: ReturnType<typeof applyDisclaimers>['done'], queueId: string) => void;
  /** The journaling mailboxes the policy named when DATA began (journalTargets); absent or none: not journaled. */
  readonly journal?: JournalPlan | undefined;
  /** The directory could not say whether a journal rule applies (its group): the message is refused with 451 4.4.3 once received. */
  readonly journalUnavailable?: string | undefined;
  /** Our Received field for a message that did not come over SMTP (the pickup directory); absent: the SMTP one from the facts above. */
  readonly receivedField?: (queueId: string, date: Date) => string;
  /** Called with the journal reports stored beside the message (before its 250). */
  readonly onJournal?: (reports: readonly QueuedJournalReport[], queueId: string) => void;
}

/** The message's body as received, kept for the disclaimers: a filter session that only collects. */
function bodyKeeper(): MessageFilterSession & { bytes(): Buffer } {
  let chunks: Buffer[] = [];
  return {
    header: () => undefined,
    // The chunks the store keeps by reference until they are written: not copied.
    body: (chunk: Buffer) => void chunks.push(chunk),
    bytes: () => Buffer.concat(chunks),
    end: async (): Promise<FilterOutcome> => ({ filter: 'disclaimer-body', verdict: 'accept', headers: [], reason: 'kept the body' }),
    abort: () => {
      chunks = [];
    },
  };
}

export type IntakeOutcome =
  /** `sender`, `recipients`: the envelope after the filters' changes (recipients as the message tracking shows them: before a quarantine redirect). */
  | { kind: 'queued'; reply: Reply; queueId: string; messageId: string; size: number; sender: MailAddress | null; recipients: readonly EnvelopeRecipient[]; headerFrom: readonly string[]; oversize: readonly OversizeRecipient[] }
  /** A filter asked for the message to be dropped: answered 250, nothing stored. */
  | { kind: 'discarded'; reply: Reply; queueId: string; messageId: string; decision: Decision; size: number; headerFrom: readonly string[] }
  /** `headerFrom`: when the header was read (refused by a filter, not at the header itself). */
  | { kind: 'rejected'; decision: Decision; queueId: string; size: number; headerFrom?: readonly string[] }
  | { kind: 'store-failed'; reply: Reply; queueId: string; error: unknown }
  /** The client went away mid-DATA; nothing to answer. */
  | { kind: 'gone' };

/**
 * A queued message as the observer hears of it (metrics, the tracking log's RECEIVE, SUBMIT and
 * FAIL of recipients failed at intake): the same event from the SMTP side and the pickup.
 */
export function acceptedEvent(
  outcome: Extract<IntakeOutcome, { kind: 'queued' }>,
  who: { readonly connector: string; readonly clientIP: string; readonly clientHostname: string; readonly authUser: string | null; readonly fqdn: string; readonly source?: 'pickup' },
  agentInfo: readonly string[],
): Extract<ListenerEvent, { type: 'message-accepted' }> {
  return {
    type: 'message-accepted',
    ...(who.source ? { source: who.source } : {}),
    connector: who.connector,
    queueId: outcome.queueId,
    messageId: outcome.messageId,
    size: outcome.size,
    // The envelope as stored: a filter may have changed it (a milter's ADDRCPT/DELRCPT/CHGFROM).
    sender: outcome.sender ? formatAddress(outcome.sender) : '',
    recipients: outcome.recipients.map(formatAddress),
    clientIP: who.clientIP,
    clientHostname: who.clientHostname,
    authUser: who.authUser,
    fqdn: who.fqdn,
    ...(agentInfo.length > 0 ? { agentInfo } : {}),
    ...(outcome.oversize.length > 0 ? { failed: outcome.oversize.map((o) => ({ recipient: formatAddress(o.recipient), reply: formatReply(o.reply), reason: o.reason })) } : {}),
  };
}

/**
 * A filter's outcome in the log: a filter that failed (down, slow, broken answer) is a warning
 * with the failure action applied, one that rewrote the body or calls itself notable (a
 * transport rule matched) is info, the rest debug (the refusals and discards have lines of
 * their own). `base`: who (connector and client, or the pickup's file).
 */
export function logFilterOutcome(logger: Logger, filters: readonly MessageFilter[] | undefined, base: Record<string, unknown>, o: { filter: string; verdict: string; reason: string; queueId?: string | undefined; stage?: string; notable?: boolean }): void {
  const line = { ...base, queueId: o.queueId, filter: o.filter, stage: o.stage, verdict: o.verdict, reason: o.reason };
  if (o.verdict === 'error') logger.warn({ ...line, failureAction: filters?.find((f) => f.name === o.filter)?.onFailure }, 'filter failed');
  else if (o.notable) logger.info(line, 'filter outcome');
  else logger.debug(line, 'filter outcome');
}

/** One line per recipient failed at intake (too large for its limit, refused by the policy): failed from the start, a DSN follows. */
export function logFailedAtIntake(logger: Logger, base: Record<string, unknown>, outcome: Extract<IntakeOutcome, { kind: 'queued' }>): void {
  for (const o of outcome.oversize) logger.info({ ...base, queueId: outcome.queueId, rcpt: formatAddress(o.recipient), reply: formatReply(o.reply), reason: o.code, why: o.reason }, 'recipient failed at intake');
}

export async function takeMessage(stream: AsyncIterable<Buffer>, i: IntakeInput): Promise<IntakeOutcome> {
  const queueId = i.queueId ?? newQueueId();
  let journal: JournalReports | null = null;
  if (i.journal && i.journal.targets.length > 0) {
    try {
      journal = new JournalReports(i.journal, i.store);
    } catch (e) {
      i.transactionFilters?.forEach(({ session }) => session.abort());
      return { kind: 'store-failed', reply: REPLIES.queueUnavailable, queueId, error: e };
    }
  }
  const outcome = await intake(stream, { ...i, queueId }, journal);
  // Reports of a message not taken are dropped (a committed one stays: at least once).
  if (journal && outcome.kind !== 'queued') await journal.abort();
  return outcome;
}

async function intake(stream: AsyncIterable<Buffer>, i: IntakeInput & { readonly queueId: string }, journal: JournalReports | null): Promise<IntakeOutcome> {
  const c = i.session.connector;
  const queueId = i.queueId;
  const date = new Date();
  const failed = (error: unknown): IntakeOutcome => ({ kind: 'store-failed', reply: REPLIES.queueUnavailable, queueId, error });
  let writer: MessageWriter;
  try {
    writer = i.store.beginMessage(queueId);
  } catch (e) {
    i.transactionFilters?.forEach(({ session }) => session.abort());
    return failed(e);
  }
  const received = i.receivedField?.(queueId, date) ?? receivedHeader({
    helo: i.helo,
    clientHostname: i.clientHostname,
    clientIP: i.clientIP,
    fqdn: c.config.fqdn,
    connector: c.name,
    protocol: withProtocol(i.ehlo, !!i.tls, !!i.session.user),
    tls: i.tls,
    authUser: i.session.user?.name ?? null,
    queueId,
    date,
  });
  const sessions = startFilters(i, queueId);
  const abortFilters = () => sessions.forEach(({ session }) => session.abort());
  // A filter that may ask for a disclaimer (a transport rule) runs: the body is kept to be changed.
  const kept = sessions.some(({ filter }) => filter.mayAddDisclaimers) ? bodyKeeper() : null;
  let got;
  try {
    got = await receiveMessage(stream, { session: i.session, writer, receivedHeader: received, generatedMessageId: generatedMessageId(queueId, c.config.fqdn), date, filters: [...sessions.map((f) => f.session), ...(kept ? [kept] : []), ...(journal ? journal.tees() : [])], binary: i.bodyType === 'binarymime', receiveSizeLimit: i.receiveSizeLimit });
  } catch {
    abortFilters();
    return { kind: 'gone' }; // the writer was aborted
  }
  if (got.kind !== 'complete') abortFilters();
  if (got.kind === 'rejected') return { kind: 'rejected', decision: got.decision, queueId, size: got.messageBytes };
  if (got.kind === 'store-failed') return failed(got.error);
  if (i.journalUnavailable) {
    // Never taken without its journal reports: the client tries again.
    abortFilters();
    await writer.abort();
    return { kind: 'rejected', decision: reject(REPLIES.directoryUnavailable, 'directory-unavailable', i.journalUnavailable), queueId, size: got.messageBytes };
  }

  // The header From: addresses (the agent log's P2FromAddresses): of every From field, as a reader may see any.
  const addresses = (name: string) => got.header.fields.filter((f) => f.name === name).flatMap((f) => findAddresses(fieldValue(f)).map((a) => Buffer.from(`${a.address.local}@${a.address.domain}`, 'latin1').toString('utf8')));
  const headerFrom = addresses('from');
  if (i.judgeBounce) {
    const d = i.judgeBounce(fieldsByName(got.header.fields), queueId);
    if (d.verdict !== 'accept') {
      abortFilters();
      await writer.abort();
      return { kind: 'rejected', decision: d, queueId, size: got.messageBytes, headerFrom };
    }
  }
  if (i.judgeHeaderSenders) {
    const values = (name: string) => got.header.fields.filter((f) => f.name === name).map((f) => Buffer.from(fieldValue(f), 'latin1').toString('utf8'));
    const d = await i.judgeHeaderSenders(headerSenderAddresses(values('from')), headerSenderAddresses(values('sender'))[0] ?? null, queueId);
    if (d.verdict !== 'accept') {
      abortFilters();
      await writer.abort();
      return { kind: 'rejected', decision: d, queueId, size: got.messageBytes, headerFrom };
    }
  }
  const outcomes = await Promise.all(sessions.map(({ filter, session }) => endFilter(filter, session, i.filterTimeoutMs ?? 120_000)));
  for (const o of outcomes) i.onFilterOutcome?.(o, queueId);
  const failureAction = (name: string) => sessions.find((f) => f.filter.name === name)?.filter.onFailure ?? 'tempfail';
  const verdict = contentVerdict(i.session, outcomes, failureAction);
  if (verdict.decision.verdict !== 'accept') {
    await writer.abort();
    return { kind: 'rejected', decision: verdict.decision, queueId, size: got.messageBytes, headerFrom };
  }
  // A filter's envelope changes (a milter's ADDRCPT/DELRCPT/CHGFROM; none under a discard), then quarantine on top.
  const envelope = editEnvelope(i.sender, i.recipients, verdict.envelope);
  if (envelope.changes.length > 0) i.onEnvelopeChange?.(envelope.changes, queueId);
  // Dropped, answered 250: a filter discarded it, or its changes left nobody to deliver to.
  const dropped = verdict.discard ? verdict.decision : envelope.noRecipients;
  if (dropped) {
    await writer.abort();
    return { kind: 'discarded', reply: REPLIES.queued(got.messageId, queueId), queueId, messageId: got.messageId, decision: dropped, size: got.messageBytes, headerFrom };
  }
  // Disclaimers go into the body the filters leave (a stripped attachment, a milter's new body),
  // after every other change; a fallback Reject refuses the message here.
  let body = verdict.replaceBody;
  const bodyHeaders: HeaderEdit[] = [];
  if (verdict.disclaimers.length > 0 && kept) {
    let list = verdict.disclaimers;
    if (i.fillDisclaimerTokens) {
      const filled = await i.fillDisclaimerTokens(list);
      if (filled.notes.length > 0) i.onDisclaimerTokens?.(filled.notes, queueId);
      list = filled.disclaimers;
    }
    let d: ReturnType<typeof applyDisclaimers>;
    try {
      d = applyDisclaimers(got.header.fields, verdict.replaceBody ?? kept.bytes(), list, queueId);
    } catch (e) {
      // Never seen (a fuzzed test feeds it random MIME); if it happens, 451 rather than mail without its disclaimer.
      await writer.abort();
      return { kind: 'rejected', decision: disclaimerFailed(e instanceof Error ? e.message : String(e)), queueId, size: got.messageBytes, headerFrom };
    }
    i.onDisclaimers?.(d.done, queueId);
    if (d.rejected) {
      await writer.abort();
      return { kind: 'rejected', decision: disclaimerRefusal(d.rejected.rule, d.rejected.why), queueId, size: got.messageBytes, headerFrom };
    }
    if (d.done.some((x) => x.result !== 'ignored')) {
      body = d.body;
      bodyHeaders.push(...d.headers);
    }
  }
  if (verdict.quarantine && i.released) i.onReleaseKept?.(verdict.decision.reason.message, queueId);
  const held = verdict.quarantine && !i.released ? quarantineRouting(envelope, i.quarantineMailbox ?? null, verdict.decision.reason.message) : null;
  if (held) i.onQuarantine?.(held.reason, queueId);
  // Too large for some recipients (their own MaxReceiveSize), not all: failed for those, with a
  // DSN, from the start of delivery (a quarantined message goes to its mailbox whole).
  const recipients = held?.recipients ?? envelope.recipients;
  const overLimit = held || !i.sizeLimits ? [] : recipientsOverSizeLimit({ recipients: i.recipients, sizeLimits: i.sizeLimits }, got.messageBytes);
  const oversize = [...overLimit.filter((o) => recipients.some((r) => recipientKey(r) === recipientKey(o.recipient))), ...(held ? [] : (i.refused ?? []))];
  const stored = held || !i.refused?.length ? recipients : [...recipients, ...i.refused.map((o) => o.recipient)];
  const failedRecipients = oversize.map((o) => ({ index: stored.findIndex((r) => recipientKey(r) === recipientKey(o.recipient)), reply: o.reply }));
  const header = assembleHeader(got.header, applyHeaderEdits(got.header.fields, [...(i.stamps ?? []), ...verdict.headers, ...bodyHeaders, ...(held?.headers ?? [])]));
  // The journal reports first: a message is never taken without them (451 if one cannot be stored).
  if (journal && i.journal) {
    if (trustedJournalReport(i.session, got.header.fields.some((f) => f.name === 'x-ms-journal-report'))) {
      await journal.abort();
    } else {
      try {
        const reports = await journal.commit({ header, fields: parseHeaderFields(header), body: body ?? undefined, sender: envelope.sender, recipients: envelope.recipients, messageId: got.messageId, date, bodyType: i.bodyType, smtpUtf8: i.smtpUtf8 });
        i.onJournal?.(reports, queueId);
      } catch (e) {
        await writer.abort();
        return failed(e);
      }
    }
  }
  try {
    await writer.commit(
      commitInput({
        queueId,
        messageId: got.messageId,
        receivedAt: date,
        ...sessionFacts(i),
        sender: envelope.sender,
        recipients: stored,
        dsnEnabled: c.config.deliveryStatusNotificationEnabled,
        ret: i.ret,
        envid: i.envid,
        bodyType: i.bodyType,
        smtpUtf8: i.smtpUtf8,
      }),
      { header, ...(body ? { body } : {}), ...(failedRecipients.length > 0 ? { failedRecipients } : {}) },
    );
  } catch (e) {
    await writer.abort();
    return failed(e);
  }
  return { kind: 'queued', reply: REPLIES.queued(got.messageId, queueId), queueId, messageId: got.messageId, size: got.messageBytes, sender: envelope.sender, recipients: envelope.recipients, headerFrom, oversize };
}

/**
 * The filters that judge this session's mail, as the policy's filterPlan says (connector scope,
 * Bypass-Anti-Spam): a transaction filter goes on from MAIL (begun by the connection with the
 * same plan, or by the pickup for the milters marked pickup), any other begins here.
 */
function startFilters(i: IntakeInput, queueId: string): Array<{ filter: MessageFilter; session: MessageFilterSession }> {
  const filters = i.filters ?? [];
  const begun = i.transactionFilters ?? [];
  if (filters.length === 0) {
    begun.forEach(({ session }) => session.abort());
    return [];
  }
  // The policy decides which filters judge this session's mail: connector scope, Bypass-Anti-Spam,
  // and for sender authentication the connector's senderAuthenticationEnabled.
  const plan = filterPlan(i.session, filters);
  const c = i.session.connector;
  const ctx: FilterContext = {
    queueId,
    ...sessionFacts(i),
    sender: i.sender,
    recipients: i.recipients,
    fqdn: c.config.fqdn,
    smtpUtf8: i.smtpUtf8,
    internalSession: internalSession(i.session),
    organizationHeadersTrusted: has(i.session, 'ms-Exch-Accept-Headers-Organization'),
  };
  // A transaction filter begun before DATA goes on whatever the plan says: the connection began
  // it by this same plan, the pickup by its own choice (milters marked pickup).
  const running = filters.filter((f, n) => plan[n]!.runs || (!!f.transaction && begun.some((b) => b.filter === f)));
  begun.filter((b) => !running.includes(b.filter)).forEach(({ session }) => session.abort());
  return running.map((filter) => {
    if (!filter.transaction) return { filter, session: beginFilter(filter, ctx) };
    const run = begun.find((b) => b.filter === filter);
    return { filter, session: run ? run.session.data(ctx) : failedSession(filter.name, 'not begun at MAIL') };
  });
}

/** Where the message came from, as the filters see it and the job keeps it. */
function sessionFacts(i: IntakeInput) {
  return { connector: i.session.connector.name, clientIP: i.clientIP, clientHostname: i.clientHostname, helo: i.helo, tls: i.tls, authUser: i.session.user?.name ?? null };
}

/** A filter session that never judged: its outcome is "error", so the filter's failure action applies. */
function failedSession(filter: string, reason: string): MessageFilterSession {
  return { header: () => undefined, body: () => undefined, abort: () => undefined, end: async () => ({ filter, verdict: 'error', headers: [], reason }) };
}

/** A filter session; one that cannot even begin answers "error" at the end, so its failure action applies. */
function beginFilter(filter: MessageOnlyFilter, ctx: FilterContext): MessageFilterSession {
  try {
    return filter.begin(ctx);
  } catch (e) {
    return failedSession(filter.name, `could not start: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A filter's outcome, whatever it does: a throw or a hang past the backstop is an "error" outcome. */
async function endFilter(filter: MessageFilter, session: MessageFilterSession, timeoutMs: number): Promise<FilterOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const backstop = new Promise<FilterOutcome>((resolve) => {
    timer = setTimeout(() => {
      session.abort();
      resolve({ filter: filter.name, verdict: 'error', headers: [], reason: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
  });
  try {
    return await Promise.race([
      session.end().catch((e: unknown): FilterOutcome => ({ filter: filter.name, verdict: 'error', headers: [], reason: e instanceof Error ? e.message : String(e) })),
      backstop,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
