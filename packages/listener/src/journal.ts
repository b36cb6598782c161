// Journal reports beside a message (Exchange's journal rules): each journaling mailbox the
// policy named when DATA began gets its own queued message, written while the original streams
// in (a tee of the body, never held whole) and committed before the original, so a message is
// never accepted without its reports: if a report cannot be stored, the client gets 451 and
// nothing is accepted; if the original then fails, the report stays (at least once, as archives
// want it). Mail to a journaling mailbox and journal reports themselves are not journaled.
import { journalReportEnvelope, journalTargets, type DirectoryLookup, type JournalReportEnvelope, type JournalTarget, type MembershipAnswer, type Policy, type Session } from '@mailgw/policy';
import { newQueueId, type MailStore, type MessageWriter } from '@mailgw/queue';
import { addressKey, formatAddress, journalRecipients, journalReportParts, type EnvelopeRecipient, type HeaderField, type MailAddress, type MessageFilterSession } from '@mailgw/mail';
import type { Logger } from 'pino';
import { commitInput } from './delivery-job.js';
import { notify, type ListenerObserver } from './observer.js';
import { generatedMessageId } from './message/trace-headers.js';

/** What the policy decided for this transaction's journaling (journalTargets, journalReportEnvelope). */
export interface JournalPlan {
  readonly targets: readonly JournalTarget[];
  readonly envelope: JournalReportEnvelope;
  readonly fqdn: string;
}

/**
 * The journal rules' decision for a transaction (journalTargets), asking the directory once about
 * every group member a rule needs (the questions in parallel): the plan, nothing to journal
 * (undefined), or why the directory could not say (the message is then refused with 451 4.4.3).
 */
export async function planJournal(
  p: Policy,
  s: Session,
  envelope: { readonly sender: MailAddress | null; readonly recipients: readonly EnvelopeRecipient[] },
  directory: DirectoryLookup | undefined,
  onDecision: (why: string) => void,
): Promise<JournalPlan | string | undefined> {
  if (p.config.gateway.journalRules.length === 0) return undefined;
  const memberships = new Map<string, Exclude<MembershipAnswer, { kind: 'unavailable' }>>();
  let d = journalTargets(p, { ...envelope, memberships });
  if (d.unansweredMembership) {
    const lookup = directory?.memberships?.bind(directory);
    if (!lookup) return `journal rules: the directory cannot be asked about ${d.unansweredMembership.join(', ')}`;
    const answers = await Promise.all(d.unansweredMembership.map(async (a) => ({ a, r: await lookup(a).catch((e: unknown): MembershipAnswer => ({ kind: 'unavailable', why: e instanceof Error ? e.message : String(e) })) })));
    for (const { a, r } of answers) {
      if (r.kind === 'unavailable') return `journal rules: the directory did not answer which groups ${a} is in (${r.why})`;
      memberships.set(a, r);
    }
    d = journalTargets(p, { ...envelope, memberships });
    if (d.unansweredMembership) return `journal rules: still asking about ${d.unansweredMembership.join(', ')}`;
  }
  onDecision(d.reason);
  if (d.targets.length === 0) return undefined;
  return { targets: d.targets, envelope: journalReportEnvelope(p, s), fqdn: s.connector.config.fqdn };
}

export interface QueuedJournalReport {
  readonly queueId: string;
  readonly to: string;
  readonly rules: readonly string[];
  /** The report's own Message-ID, envelope sender ('' the null sender) and size, for its tracking events. */
  readonly messageId: string;
  readonly sender: string;
  readonly size: number;
}

/**
 * A journal report stored beside message `of`, said as both shells say it: the log line (with
 * `base`: the connector and the client, or the pickup's file), the observer's event (the metric,
 * the report's own tracking events), and the message's AGENTINFO entry, returned (Exchange's
 * journaling is an agent).
 */
export function journalReportQueued(logger: Logger, observer: { readonly observer?: ListenerObserver | undefined; readonly logger: Logger }, base: Record<string, unknown> & { readonly connector: string }, r: QueuedJournalReport, of: string, fqdn: string): string {
  logger.info({ ...base, queueId: of, journalQueueId: r.queueId, to: r.to, rules: r.rules }, 'journal report queued');
  notify(observer.observer, observer.logger, { type: 'journal-report', connector: base.connector, to: r.to, rules: r.rules, report: { queueId: r.queueId, messageId: r.messageId, sender: r.sender, size: r.size, of, fqdn } });
  return `journaling: report ${r.queueId} to ${r.to} (${r.rules.map((n) => `"${n}"`).join(', ')})`;
}

interface Run {
  readonly target: JournalTarget;
  readonly writer: MessageWriter;
  error: unknown;
}

/** The reports of one message: begun at DATA, fed the body, committed or dropped with it. */
export class JournalReports {
  private readonly runs: Run[];

  constructor(
    private readonly plan: JournalPlan,
    store: MailStore,
  ) {
    this.runs = plan.targets.map((target) => ({ target, writer: store.beginMessage(newQueueId()), error: null }));
  }

  /** Filter sessions that copy the body into each report as it streams in (their end() is never asked). */
  tees(): MessageFilterSession[] {
    return this.runs.map((run) => ({
      header: () => undefined,
      body: async (chunk: Buffer) => {
        if (run.error !== null) return;
        try {
          await run.writer.write(chunk);
        } catch (e) {
          run.error = e; // the commit reports it: the message is then refused with 451
        }
      },
      end: async () => ({ filter: 'journal', verdict: 'accept', headers: [], reason: 'copied' }),
      abort: () => undefined,
    }));
  }

  /**
   * Commits every report around the original as it will be stored (`header`, and `body` when a
   * filter replaced what was written). Throws when one cannot be stored.
   */
  async commit(o: {
    readonly header: Buffer;
    readonly fields: readonly HeaderField[];
    readonly body: Buffer | undefined;
    readonly sender: MailAddress | null;
    readonly recipients: readonly EnvelopeRecipient[];
    readonly messageId: string;
    readonly date: Date;
    readonly bodyType: string | undefined;
    readonly smtpUtf8: boolean;
  }): Promise<QueuedJournalReport[]> {
    const done: QueuedJournalReport[] = [];
    const e = this.plan.envelope;
    const listed = o.recipients.filter((r) => !e.skip.has(addressKey(r))).map(formatAddress);
    for (const run of this.runs) {
      if (run.error !== null) throw run.error;
      const queueId = run.writer.queueId;
      const messageId = generatedMessageId(queueId, this.plan.fqdn);
      const { prefix, suffix } = journalReportParts({
        from: e.from,
        to: run.target.address,
        messageId,
        date: o.date,
        sender: o.sender ? formatAddress(o.sender) : '',
        fields: o.fields,
        originalMessageId: o.messageId,
        recipients: journalRecipients(listed, o.fields, e.addressingTrusted),
        transferEncoding: o.bodyType === 'binarymime' ? 'binary' : o.bodyType === '8bitmime' ? '8bit' : '7bit',
      });
      if (!o.body) await run.writer.write(suffix);
      const at = run.target.address.lastIndexOf('@');
      const job = await run.writer.commit(
        commitInput({
          queueId,
          messageId,
          receivedAt: o.date,
          connector: 'Journal',
          clientIP: '127.0.0.1',
          clientHostname: this.plan.fqdn,
          helo: this.plan.fqdn,
          tls: null,
          authUser: null,
          sender: e.sender,
          recipients: [{ local: run.target.address.slice(0, at), domain: run.target.address.slice(at + 1), ...(e.notify ? { notify: e.notify } : {}) }],
          dsnEnabled: true,
          ret: e.ret,
          envid: null,
          bodyType: o.bodyType,
          smtpUtf8: o.smtpUtf8,
        }),
        { header: Buffer.concat([prefix, o.header]), ...(o.body ? { body: Buffer.concat([o.body, suffix]) } : {}) },
      );
      done.push({ queueId, to: run.target.address, rules: run.target.rules, messageId, sender: e.sender ? formatAddress(e.sender) : '', size: job.size });
    }
    return done;
  }

  /** Drops the reports not committed (the message was refused, or the client left). */
  async abort(): Promise<void> {
    await Promise.all(this.runs.filter((r) => r.writer.state !== 'committed').map((r) => r.writer.abort()));
  }
}
