// The transaction filters (milters) of one SMTP transaction, from MAIL to DATA: begun at MAIL
// as the policy's filterPlan says, asked about each recipient after mailgw's own checks (as
// Postfix asks its milters after its restrictions), then handed to intake at DATA, which
// continues and ends them, or aborted (RSET, a new EHLO, a refusal, the client gone). Each
// answer is judged by the policy (stageFilterDecision); this holds only their state.
import type { MailAddress, MessageFilter, StageOutcome, TransactionFilter } from '@mailgw/mail';
import { newQueueId } from '@mailgw/queue';
import { filterPlan, stageFilterDecision, type Decision, type Session } from '@mailgw/policy';
import type { TransactionFilterRun } from './intake.js';

/** What the connection tells the filters at MAIL about the client (a milter's connect and helo macros). */
export interface TransactionFacts {
  readonly clientIP: string;
  readonly clientHostname: string;
  readonly helo: string;
  readonly tls: { protocol: string; cipher: string } | null;
  readonly serverIP: string;
  readonly authMechanism: string | null;
  readonly smtpUtf8: boolean;
}

/** Where a filter's answer at MAIL or RCPT is written: the protocol log and the process log (the connection's). */
export interface StageNotes {
  protocol(data: string): void;
  outcome(o: { filter: string; verdict: string; reason: string; stage: 'MAIL' | 'RCPT'; queueId: string | undefined }): void;
}

export class TransactionFilters {
  private runs: TransactionFilterRun[] = [];
  /** The queue id MAIL gave the transaction (the milters' `i` macro); null: intake makes one. */
  private queueId: string | null = null;

  constructor(
    /** The configured filters now (a reload may change them between transactions). */
    private readonly filters: () => readonly MessageFilter[] | undefined,
    private readonly notes: StageNotes,
  ) {}

  /**
   * Begins the filters that judge this session's mail and asks each about MAIL in turn: the
   * first refusal, or null. `gone`: the client left while a filter was asked (nothing more is begun).
   */
  async begin(s: Session, sender: MailAddress | null, facts: TransactionFacts, gone: () => boolean): Promise<Decision | null> {
    // A MAIL after a transaction that never reached DATA's end (DATA refused): begin afresh.
    this.abort();
    const filters = this.filters();
    if (!filters?.some((f) => f.transaction)) return null;
    const plan = filterPlan(s, filters);
    return this.start(filters.filter((f, n): f is TransactionFilter => plan[n]!.runs && !!f.transaction), s, sender, facts, gone);
  }

  /**
   * Begins these filters, chosen by the caller (the pickup's: Postfix's non_smtpd_milters, which
   * neither anti-spam bypass nor connectors select), and asks each about MAIL in turn.
   */
  async start(running: readonly TransactionFilter[], s: Session, sender: MailAddress | null, facts: TransactionFacts, gone: () => boolean): Promise<Decision | null> {
    this.abort();
    if (running.length === 0) return null;
    const queueId = newQueueId();
    this.queueId = queueId;
    const { serverIP, authMechanism, smtpUtf8, ...client } = facts;
    const tx = { queueId, connector: s.connector.name, ...client, serverIP, authUser: s.user?.name ?? null, authMechanism: s.user ? authMechanism : null, sender, fqdn: s.connector.config.fqdn, smtpUtf8 };
    for (const filter of running) {
      const session = filter.transaction(tx);
      this.runs.push({ filter, session });
      const outcome = await session.mail();
      if (gone()) {
        this.abort();
        return null;
      }
      const refused = this.judge('MAIL', filter, outcome);
      if (refused) {
        this.abort();
        return refused;
      }
    }
    return null;
  }

  /** Each filter about a recipient mailgw accepted, in turn: a refusal is this recipient's. */
  async rcpt(a: MailAddress): Promise<Decision | null> {
    const recipient = { local: a.local, domain: a.domain };
    for (const { filter, session } of this.runs) {
      const refused = this.judge('RCPT', filter, await session.rcpt(recipient));
      if (refused) return refused;
    }
    return null;
  }

  /** Ends the filters of a transaction that will not reach DATA (RSET, a new EHLO, refused, gone). */
  abort(): void {
    for (const { session } of this.runs) session.abort();
    this.runs = [];
    this.queueId = null;
  }

  /** Hands the filters and the queue id to intake at DATA: from here intake ends or aborts them. */
  take(): { runs: readonly TransactionFilterRun[]; queueId: string | null } {
    const taken = { runs: this.runs, queueId: this.queueId };
    this.runs = [];
    this.queueId = null;
    return taken;
  }

  /** The policy's word on a filter's answer at MAIL or RCPT: its refusal, or null. */
  private judge(stage: 'MAIL' | 'RCPT', filter: TransactionFilter, o: StageOutcome): Decision | null {
    const d = stageFilterDecision(stage, o, filter.onFailure);
    if (o.verdict !== 'continue') {
      this.notes.protocol(`${o.filter} ${o.verdict} at ${stage}: ${o.reason}`);
      this.notes.outcome({ filter: o.filter, verdict: o.verdict, reason: o.reason, stage, queueId: this.queueId ?? undefined });
    }
    return d.verdict === 'accept' ? null : d;
  }
}
