// The pickup directory (gateway.yaml pickupDirectoryPath; Exchange's Pickup directory, Postfix's
// maildrop + pickup): message files dropped there are sent like mail that came over SMTP, through
// the same intake (transport rules, journal rules, the queue), in the session the policy gives
// pickup mail (pickupSession). The I/O shell: the policy decides each file's envelope
// (pickupEnvelope); here files are found, claimed, read, handed over and then deleted, renamed
// *.bad or put back.
//
// Every listener process may run one: a file is claimed by renaming it (atomic within a file
// system), so each is taken by exactly one; "<name>.<host>-<pid>.tmp" says by whom, and a claim
// of a process of this host that no longer exists is put back as .eml (after a crash). A file is
// deleted only once its message is committed to Redis; a crash between the two sends it again
// (at least once, never lost). The per-minute limit is counted in the rate counter (Redis under
// `mailgw start`), so it holds for the whole gateway.
import { constants as fsc, watch, type FSWatcher, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PICKUP_CONNECTOR, backPressure, pickupEnvelope, pickupLookups, pickupRecipients, pickupSession, type Decision, type OversizeRecipient, type PickupDirectoryAnswers, type Policy, type RecipientEntry, type Session, type TakenEnvelope } from '@mailgw/policy';
import { formatAddress, formatField, formatReply, hasNonAscii, messageHeader, parseHeaderFields, type EnvelopeRecipient, type MailAddress, type TransactionFilter } from '@mailgw/mail';
import type { ListenerContext } from './context.js';
import { acceptedEvent, logFailedAtIntake, logFilterOutcome, takeMessage, type IntakeInput, type IntakeOutcome, type TransactionFilterRun } from './intake.js';
import { TransactionFilters } from './transaction-filters.js';
import { journalReportQueued, planJournal } from './journal.js';
import { LineEndingFilter } from './message/line-endings.js';
import { pickupReceivedHeader } from './message/trace-headers.js';
import { fillDisclaimers } from './disclaimer-tokens.js';
import { notify } from './observer.js';

/** Exchange looks every 5 seconds; a new file is also noticed at once (inotify). */
export const PICKUP_POLL_MS = 5000;
const RATE_KEY = 'pickup-directory';
const RATE_WINDOW_MS = 60_000;
/** A file still empty (or still hard-linked elsewhere) this long after it was last changed is not being written any more. */
export const PICKUP_SETTLE_MS = 60_000;
const READ_CHUNK = 64 * 1024;
/** More *.eml files than this waiting: taken in name order, this many per look. */
const MAX_SORTED = 1000;
const CRLF = Buffer.from('\r\n');

export interface PickupOptions {
  /** The listeners' context now (a reload gives a new one). */
  readonly context: () => ListenerContext;
  /** The directory, absolute. */
  readonly dir: string;
  readonly pollMs?: number;
  /** How long a file may look unfinished (empty, or linked elsewhere too) before it is judged as it is (default 60 s). */
  readonly settleMs?: number;
  /** This machine's name in claims (default os.hostname()). */
  readonly host?: string;
}

/** What one look at the directory did (for tests and the debug log). */
export interface PickupScan {
  readonly queued: number;
  readonly bad: number;
  /** Put back to be tried again (the queue or the directory service unavailable, the minute's limit reached). */
  readonly deferred: number;
  /** Claims of dead processes put back. */
  readonly recovered: number;
}

type FileOutcome = 'queued' | 'bad' | 'deferred' | 'stop';

/** A file the pickup takes: *.eml, not hidden (a writer's own name for a file still being written). */
export const isPickupFileName = (name: string): boolean => !name.startsWith('.') && /\.eml$/i.test(name);
const base = (name: string) => name.replace(/\.eml$/i, '');

/** Is process `pid` alive on this machine? (EPERM: alive, someone else's.) */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class PickupDirectory {
  private readonly host: string;
  private readonly settleMs: number;
  private readonly claimSuffix: string;
  private readonly claimPattern: RegExp;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<PickupScan> | null = null;
  private again = false;
  private closed = false;
  /** The directory could not be read: said once until it can again. */
  private unreadable: string | null = null;

  constructor(private readonly o: PickupOptions) {
    this.host = (o.host ?? os.hostname()).replace(/[^A-Za-z0-9_]/g, '_') || 'localhost';
    this.settleMs = o.settleMs ?? PICKUP_SETTLE_MS;
    this.claimSuffix = `.${this.host}-${process.pid}.tmp`;
    this.claimPattern = /^(.+)\.([A-Za-z0-9_]+)-(\d+)\.tmp$/;
  }

  get dir(): string {
    return this.o.dir;
  }

  /** Creates the directory when missing (mode 0700: only this user may drop files), starts watching and looks once. */
  async start(): Promise<void> {
    const log = this.o.context().logger;
    await mkdir(this.o.dir, { recursive: true, mode: 0o700 }).catch((e: unknown) => log.error({ dir: this.o.dir, err: (e as Error).message }, 'pickup directory cannot be created: nothing is picked up until it exists'));
    this.watch();
    this.timer = setInterval(() => void this.trigger(), this.o.pollMs ?? PICKUP_POLL_MS);
    this.timer.unref();
    log.info({ dir: this.o.dir, maxMessagesPerMinute: this.o.context().policy.config.gateway.pickupDirectoryMaxMessagesPerMinute }, 'pickup directory: sending the *.eml files dropped there');
    void this.trigger();
  }

  private watch(): void {
    try {
      this.watcher = watch(this.o.dir, { persistent: false }, () => void this.trigger());
      this.watcher.on('error', () => {
        // The directory went away: the poll goes on, and watches again once it is back.
        this.watcher?.close();
        this.watcher = null;
      });
    } catch {
      this.watcher = null;
    }
  }

  /** Looks at the directory now (or once more after the look under way). */
  trigger(): Promise<PickupScan> | null {
    if (this.closed) return null;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let total: PickupScan = { queued: 0, bad: 0, deferred: 0, recovered: 0 };
      do {
        this.again = false;
        const s = await this.scan().catch((e: unknown) => {
          this.o.context().logger.error({ dir: this.o.dir, err: e }, 'pickup directory scan failed');
          return { queued: 0, bad: 0, deferred: 0, recovered: 0 };
        });
        total = { queued: total.queued + s.queued, bad: total.bad + s.bad, deferred: total.deferred + s.deferred, recovered: total.recovered + s.recovered };
        // Once more for files that came meanwhile, unless this look stopped (the queue unavailable,
        // the minute's limit): then the poll tries again (its own renames would make it spin).
        if (s.deferred > 0) break;
      } while (this.again && !this.closed);
      return total;
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Stops looking; the file in hand is finished first. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.watcher?.close();
    await this.running;
  }

  private async scan(): Promise<PickupScan> {
    const ctx = this.o.context();
    const log = ctx.logger;
    const result = { queued: 0, bad: 0, deferred: 0, recovered: 0 };
    let names: string[];
    try {
      names = await readdir(this.o.dir);
      if (this.unreadable) log.info({ dir: this.o.dir }, 'pickup directory readable again');
      this.unreadable = null;
      if (!this.watcher) this.watch();
    } catch (e) {
      const why = (e as Error).message;
      if (this.unreadable !== why) log.error({ dir: this.o.dir, err: why }, 'pickup directory cannot be read: nothing is picked up until it can');
      this.unreadable = why;
      return result;
    }
    // Claims of processes of this host that are gone: their files go back (sent again, at least once).
    for (const name of names) {
      const m = this.claimPattern.exec(name);
      if (!m || m[2] !== this.host || Number(m[3]) === process.pid || alive(Number(m[3]))) continue;
      if (await this.move(name, `${m[1]}.eml`)) {
        result.recovered++;
        log.warn({ dir: this.o.dir, file: `${m[1]}.eml`, pid: Number(m[3]) }, 'pickup file claimed by a process that is gone: put back to be sent');
      }
    }
    if (result.recovered > 0) names = await readdir(this.o.dir).catch(() => names);
    // Oldest first; a backlog larger than a few minutes' worth by name (not every file stat'ed at each look).
    const eml = names.filter(isPickupFileName);
    const sorted = eml.length > MAX_SORTED ? eml.sort().slice(0, MAX_SORTED) : eml;
    const files = (await Promise.all(sorted.map(async (name) => ({ name, st: await lstat(path.join(this.o.dir, name)).catch(() => null) })))).filter((f) => f.st !== null).sort((a, b) => (eml.length > MAX_SORTED ? 0 : a.st!.mtimeMs - b.st!.mtimeMs));
    for (const f of files) {
      if (this.closed) break;
      const out = await this.pick(f.name, f.st!);
      if (out === 'skip') continue;
      if (out === 'stop') {
        result.deferred++;
        break;
      }
      result[out]++;
      if (out === 'deferred') break; // the queue or the directory is unavailable: the next look tries again
    }
    if (result.queued + result.bad + result.deferred > 0) log.debug({ dir: this.o.dir, ...result }, 'pickup directory scanned');
    return result;
  }

  /** Renames within the directory; false when the file is gone (another process took it). */
  private async move(from: string, to: string): Promise<boolean> {
    try {
      await rename(path.join(this.o.dir, from), path.join(this.o.dir, to));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  private async pick(name: string, st: Stats): Promise<FileOutcome | 'skip'> {
    const ctx = this.o.context();
    const policy = ctx.policy;
    const session = pickupSession(policy);
    // Under high back pressure nothing new is taken, from here neither.
    if (ctx.backPressure) {
      const p = backPressure(session, ctx.backPressure.current());
      if (p.verdict !== 'accept') {
        ctx.logger.debug({ dir: this.o.dir, why: p.reason.message }, 'pickup directory waits: back pressure');
        return 'stop';
      }
    }
    // Being written still (an empty file just created, a file its writer has not unlinked yet):
    // left for a later look, unclaimed (a claim and its undoing would wake the watcher again).
    const young = (ms: number) => this.settleMs > 0 && Date.now() - ms < this.settleMs;
    if (st.size === 0 && young(st.mtimeMs)) return 'skip';
    if (st.nlink > 1 && young(st.ctimeMs)) return 'skip';
    const claimed = `${base(name)}${this.claimSuffix}`;
    if (!(await this.move(name, claimed))) return 'skip';
    let taken: number;
    try {
      taken = await ctx.rate.take(RATE_KEY, policy.config.gateway.pickupDirectoryMaxMessagesPerMinute, RATE_WINDOW_MS);
    } catch (e) {
      await this.move(claimed, name);
      ctx.logger.warn({ dir: this.o.dir, err: (e as Error).message }, 'pickup directory waits: its per-minute counter is unavailable');
      return 'stop';
    }
    if (taken >= policy.config.gateway.pickupDirectoryMaxMessagesPerMinute) {
      await this.move(claimed, name);
      ctx.logger.debug({ dir: this.o.dir, limit: policy.config.gateway.pickupDirectoryMaxMessagesPerMinute }, 'pickup directory waits: pickupDirectoryMaxMessagesPerMinute reached');
      return 'stop';
    }
    let r: Awaited<ReturnType<PickupDirectory['send']>>;
    try {
      r = await this.send(claimed, name, policy, ctx);
    } catch (e) {
      // Never left claimed by a process that lives on: put back for the next look.
      await this.move(claimed, name).catch(() => undefined);
      throw e;
    }
    const told = (result: 'queued' | 'bad' | 'deferred', reason: string) => notify(ctx.observer, ctx.logger, { type: 'pickup-file', result, reason });
    if (r.kind === 'queued') {
      told('queued', '');
      await unlink(path.join(this.o.dir, claimed)).catch((e: unknown) => ctx.logger.error({ dir: this.o.dir, file: claimed, err: (e as Error).message }, 'pickup file queued but not deleted: it would be sent again; delete it'));
      return 'queued';
    }
    if (r.kind === 'deferred' || r.kind === 'later') {
      if (r.kind === 'deferred') told('deferred', r.reason);
      await this.move(claimed, name);
      // 'later': this file only; the look goes on with the next.
      return r.kind === 'later' ? 'skip' : 'deferred';
    }
    told('bad', r.code);
    await this.move(claimed, await this.badName(name));
    ctx.logger.warn({ dir: this.o.dir, file: name, reason: r.code, why: r.why, ...(r.reply ? { reply: r.reply } : {}) }, `pickup file not sent, renamed ${base(name)}.bad: ${r.why}`);
    return 'bad';
  }

  /**
   * The directory's answers pickupRecipients needs, asked as the SMTP side asks them
   * (connection.ts rcptTo): each recipient it must know (recipients: { directory: true }), then
   * the sender's groups when a recipient has delivery restrictions.
   */
  private async directoryAnswers(policy: Policy, env: TakenEnvelope, ctx: ListenerContext): Promise<PickupDirectoryAnswers> {
    const lookups = pickupLookups(policy, env);
    if (lookups.length === 0) return {};
    const dir = ctx.directory;
    const recipients: Record<string, RecipientEntry> = {};
    for (const a of lookups) recipients[a] = dir ? await dir.recipientEntry(a) : { answer: 'unavailable', restrictions: null };
    const restricted = Object.values(recipients).some((e) => e.restrictions) && env.sender !== null;
    const sender = !restricted ? undefined : dir?.memberships ? await dir.memberships(env.sender!.address.toLowerCase()) : ({ kind: 'unavailable', why: 'no directory group lookup in this process' } as const);
    return { recipients, ...(sender ? { sender } : {}) };
  }

  /** "<name>.bad", or "<name>-2.bad"… when one is there already. */
  private async badName(name: string): Promise<string> {
    for (let n = 1; ; n++) {
      const candidate = `${base(name)}${n === 1 ? '' : `-${n}`}.bad`;
      if (!(await stat(path.join(this.o.dir, candidate)).catch(() => null))) return candidate;
    }
  }

  /** Reads the claimed file and hands it to intake. */
  private async send(claimed: string, name: string, policy: Policy, ctx: ListenerContext): Promise<{ kind: 'queued' } | { kind: 'deferred'; reason: string } | { kind: 'later' } | { kind: 'bad'; code: string; why: string; reply?: string }> {
    const g = policy.config.gateway;
    const bad = (code: string, why: string) => ({ kind: 'bad' as const, code, why });
    const opened = await openPickupFile(path.join(this.o.dir, claimed), { maxHeaderSize: g.pickupDirectoryMaxHeaderSize, maxSendSize: g.maxSendSize, settleMs: this.settleMs });
    if (opened.kind !== 'ok') return opened;
    const { fh, st, head } = opened;
    try {
      const fields = parseHeaderFields(head.header);
      const env = pickupEnvelope(policy, fields);
      if (!env.ok) return bad(env.code, env.reason);
      // Every field ends in CRLF (the last line of a file may not).
      const kept = fields.filter((_, i) => !env.removed.includes(i)).map((f) => (f.raw.subarray(-2).equals(CRLF) ? f.raw : Buffer.concat([f.raw, CRLF])));
      const header = Buffer.concat([...kept, ...(env.addFrom ? [formatField('From', env.addFrom)] : []), CRLF]);
      const session = pickupSession(policy);
      const from = env.sender ? formatAddress(env.sender) : '';
      // Each recipient as RCPT would judge it (unknown mailboxes, blocked recipients, the
      // directory's restrictions and size limits): refused ones fail from the start (a DSN),
      // with nobody left the file is bad; a directory that cannot answer: later.
      const judged = pickupRecipients(policy, env, await this.directoryAnswers(policy, env, ctx));
      if (judged.kind === 'later') {
        ctx.logger.warn({ connector: PICKUP_CONNECTOR, file: name, reason: 'directory-unavailable', why: judged.why }, 'pickup file not sent now, tried again later');
        return { kind: 'deferred', reason: 'directory-unavailable' };
      }
      if (judged.kind === 'bad') return bad(judged.code, judged.why);
      const tx = judged.transaction;
      // BODY=8BITMIME when any octet is not ASCII: the body is read once more for it (a local
      // file; intake needs the body type before the stream, and it is read only for a file taken).
      const eightBit = head.eightBit || (await hasEightBit(fh, head.bodyOffset, st.size));
      const agentInfo: string[] = [];
      // The milters marked `pickup` (Postfix's non_smtpd_milters) judge MAIL and each RCPT as SMTP would give them
      // (just before intake, which ends them).
      const milters = await pickupMilters(ctx, session, env.sender, tx.recipients, name);
      if (milters.kind === 'later') {
        ctx.logger.warn({ connector: PICKUP_CONNECTOR, file: name, reply: milters.reply, reason: milters.code, why: milters.why }, 'pickup file not sent now, tried again later');
        return { kind: 'deferred', reason: milters.code };
      }
      if (milters.kind !== 'go') return { kind: 'bad', code: milters.code, why: milters.why, reply: milters.reply };
      // Journal rules on the recipients the message goes to (those a milter refused fail: not journaled, as over SMTP).
      const journal = await planJournal(policy, session, { sender: env.sender, recipients: milters.recipients }, ctx.directory, (why) => ctx.logger.debug({ connector: PICKUP_CONNECTOR, file: name, why }, 'journal rules'));
      const outcome: IntakeOutcome = await takeMessage(bodyStream(header, head.rest, fh, head.bodyOffset, st.size), {
        session,
        ...(milters.queueId ? { queueId: milters.queueId, transactionFilters: milters.runs } : {}),
        store: ctx.store,
        clientIP: '127.0.0.1',
        clientHostname: session.connector.config.fqdn,
        helo: session.connector.config.fqdn,
        ehlo: true,
        tls: null,
        sender: env.sender,
        recipients: milters.recipients,
        receiveSizeLimit: tx.receiveSizeLimit,
        sizeLimits: tx.sizeLimits,
        refused: [...judged.refused, ...milters.refused],
        ret: env.ret,
        envid: env.envid,
        bodyType: eightBit ? '8bitmime' : '7bit',
        smtpUtf8: env.smtpUtf8,
        receivedField: (queueId, date) => pickupReceivedHeader({ fqdn: session.connector.config.fqdn, uid: st.uid, queueId, date }),
        // Milters see pickup mail only when marked pickup (Postfix's non_smtpd_milters), begun above.
        filters: (ctx.filters ?? []).filter((f) => !f.transaction || f.pickup === true),
        ...(ctx.filterTimeoutMs ? { filterTimeoutMs: ctx.filterTimeoutMs } : {}),
        quarantineMailbox: ctx.quarantineMailbox ?? null,
        released: env.release,
        ...(typeof journal === 'string' ? { journalUnavailable: journal } : { journal }),
        ...pickupHooks(ctx, name, from, tx.recipients, agentInfo),
      });
      const log = { connector: PICKUP_CONNECTOR, file: name, uid: st.uid };
      switch (outcome.kind) {
        case 'queued': {
          const event = acceptedEvent(outcome, { connector: PICKUP_CONNECTOR, clientIP: '127.0.0.1', clientHostname: session.connector.config.fqdn, authUser: null, fqdn: session.connector.config.fqdn, source: 'pickup' }, agentInfo);
          ctx.logger.info({ ...log, queueId: outcome.queueId, messageId: outcome.messageId, from: event.sender, rcpts: outcome.recipients.length, size: outcome.size, envelope: env.format, ...(env.release ? { release: true } : {}) }, 'message picked up');
          // Refused recipients and those the message is too large for: failed from the start (a DSN).
          logFailedAtIntake(ctx.logger, log, outcome);
          notify(ctx.observer, ctx.logger, event);
          return { kind: 'queued' };
        }
        case 'discarded':
          // A transport rule deleted it (deleteMessage): done, as a 250 would be.
          ctx.logger.info({ ...log, queueId: outcome.queueId, reason: outcome.decision.reason.code, why: outcome.decision.reason.message }, 'pickup message discarded by a filter');
          notify(ctx.observer, ctx.logger, { type: 'message-rejected', connector: PICKUP_CONNECTOR, reason: outcome.decision.reason.code });
          return { kind: 'queued' };
        case 'rejected': {
          notify(ctx.observer, ctx.logger, { type: 'message-rejected', connector: PICKUP_CONNECTOR, reason: outcome.decision.reason.code });
          const reply = formatReply(outcome.decision.reply);
          if (outcome.decision.reply.code >= 500) return { kind: 'bad', code: outcome.decision.reason.code, why: outcome.decision.reason.message, reply };
          ctx.logger.warn({ ...log, reply, reason: outcome.decision.reason.code, why: outcome.decision.reason.message }, 'pickup file not sent now, tried again later');
          return { kind: 'deferred', reason: outcome.decision.reason.code };
        }
        case 'store-failed':
          ctx.logger.warn({ ...log, err: outcome.error instanceof Error ? outcome.error.message : String(outcome.error) }, 'pickup file not sent now (the queue is unavailable), tried again later');
          notify(ctx.observer, ctx.logger, { type: 'message-rejected', connector: PICKUP_CONNECTOR, reason: 'queue-unavailable' });
          return { kind: 'deferred', reason: 'queue-unavailable' };
        case 'gone':
          ctx.logger.warn(log, 'pickup file could not be read to its end, tried again later');
          return { kind: 'deferred', reason: 'read-failed' };
      }
    } finally {
      await fh.close().catch(() => undefined);
    }
  }
}

type PickupMilters =
  | { readonly kind: 'go'; readonly runs: readonly TransactionFilterRun[]; readonly queueId: string | null; readonly recipients: readonly EnvelopeRecipient[]; readonly refused: readonly OversizeRecipient[] }
  | { readonly kind: 'later' | 'bad'; readonly code: string; readonly why: string; readonly reply: string };

/**
 * The milters marked `pickup` (Postfix's non_smtpd_milters), begun for a pickup file as for an
 * SMTP transaction from the gateway itself (127.0.0.1, its fqdn as name and HELO): MAIL, then
 * each recipient. A refusal of MAIL refuses the file (5xx: *.bad; 4xx: later); a recipient
 * refused for good fails from the start, with a DSN, as the policy's refusals do, and when
 * none is left the file is bad; a temporary one leaves the file for a later look.
 */
async function pickupMilters(ctx: ListenerContext, session: Session, sender: MailAddress | null, recipients: readonly EnvelopeRecipient[], name: string): Promise<PickupMilters> {
  const chosen = (ctx.filters ?? []).filter((f): f is TransactionFilter => !!f.transaction && f.pickup === true);
  if (chosen.length === 0) return { kind: 'go', runs: [], queueId: null, recipients, refused: [] };
  const fqdn = session.connector.config.fqdn;
  const filters = new TransactionFilters(() => [], {
    protocol: () => undefined,
    outcome: (o) => logFilterOutcome(ctx.logger, chosen, { connector: PICKUP_CONNECTOR, file: name }, { ...o, notable: true }),
  });
  const refusal = (d: Decision, code: string): PickupMilters => ({ kind: d.reply.code >= 500 ? 'bad' : 'later', code, why: d.reason.message, reply: formatReply(d.reply) });
  const byMail = await filters.start(chosen, session, sender ? { local: sender.local, domain: sender.domain } : null, { clientIP: '127.0.0.1', clientHostname: fqdn, helo: fqdn, tls: null, serverIP: '127.0.0.1', authMechanism: null, smtpUtf8: [sender, ...recipients].some((a) => a && (hasNonAscii(a.local) || hasNonAscii(a.domain))) }, () => false);
  if (byMail) return refusal(byMail, 'milter-refused-mail');
  const kept: EnvelopeRecipient[] = [];
  const refused: OversizeRecipient[] = [];
  for (const r of recipients) {
    const d = await filters.rcpt(r);
    if (!d) kept.push(r);
    else if (d.reply.code < 500) {
      filters.abort();
      return refusal(d, 'milter-refused-recipient');
    } else refused.push({ recipient: r, reply: d.reply, code: d.reason.code, reason: d.reason.message });
  }
  if (kept.length === 0) {
    filters.abort();
    return { kind: 'bad', code: 'milter-refused-recipient', why: `a milter refused every recipient (${refused.length})`, reply: formatReply(refused[0]!.reply) };
  }
  const taken = filters.take();
  return { kind: 'go', runs: taken.runs, queueId: taken.queueId, recipients: kept, refused };
}

/** What intake tells as it goes, written as the SMTP side writes it (connection.ts), with the file for the client. */
function pickupHooks(ctx: ListenerContext, name: string, from: string, recipients: readonly MailAddress[], agentInfo: string[]): Partial<IntakeInput> {
  const g = ctx.policy.config.gateway;
  return {
    onJournal: (reports, queueId) => {
      for (const r of reports) agentInfo.push(journalReportQueued(ctx.logger, ctx, { connector: PICKUP_CONNECTOR, file: name }, r, queueId, g.fqdn));
    },
    fillDisclaimerTokens: (list) => fillDisclaimers(list, ctx.directory, g.directory?.preset ?? null),
    onFilterOutcome: (o, queueId) => {
      logFilterOutcome(ctx.logger, ctx.filters, { connector: PICKUP_CONNECTOR, file: name }, { filter: o.filter, verdict: o.verdict, reason: o.reason, queueId, notable: !!o.replaceBody || !!o.notable });
      notify(ctx.observer, ctx.logger, { type: 'filter-outcome', connector: PICKUP_CONNECTOR, filter: o.filter, verdict: o.verdict, ...(o.rules ? { rules: o.rules } : {}) });
      if (o.rules && o.rules.length > 0) agentInfo.push(`${o.filter}: ${o.reason}`);
      for (const e of o.events ?? []) ctx.logger.warn({ connector: PICKUP_CONNECTOR, file: name, queueId, rule: e.rule, event: e.text, from, rcpts: recipients.map(formatAddress) }, 'transport rule event');
    },
    onEnvelopeChange: (changes, queueId) => ctx.logger.info({ connector: PICKUP_CONNECTOR, file: name, queueId, changes }, 'envelope changed by a filter'),
    onQuarantine: (reason, queueId) => ctx.logger.info({ connector: PICKUP_CONNECTOR, file: name, queueId, why: reason }, 'message quarantined'),
    onReleaseKept: (reason, queueId) => ctx.logger.info({ connector: PICKUP_CONNECTOR, file: name, queueId, why: reason }, 'released from quarantine: not held again'),
    onDisclaimers: (done, queueId) => {
      for (const d of done) ctx.logger.info({ connector: PICKUP_CONNECTOR, file: name, queueId, rule: d.rule, result: d.result, ...(d.why ? { why: d.why } : {}) }, 'transport rule disclaimer');
    },
  };
}

/** A pickup file opened and its header read, or why it is not sent (now, or ever). */
export type OpenedPickupFile =
  | { readonly kind: 'ok'; readonly fh: FileHandle; readonly st: Stats; readonly head: Extract<HeaderRead, { ok: true }> }
  | { readonly kind: 'bad'; readonly code: string; readonly why: string }
  | { readonly kind: 'later' };

/**
 * Opens a pickup file as the pickup does (never through a symbolic link, a regular file with no
 * other hard link, within maxSendSize) and reads its header (within maxHeaderSize). The caller
 * closes `fh`. Also what `mailgw explain --pickup` reads a file with.
 */
export async function openPickupFile(file: string, o: { readonly maxHeaderSize: number; readonly maxSendSize: number | null; readonly settleMs: number }): Promise<OpenedPickupFile> {
  const bad = (code: string, why: string) => ({ kind: 'bad' as const, code, why });
  let fh: FileHandle;
  try {
    // Never through a symbolic link: the directory may be writable by others than this user.
    fh = await open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return bad('pickup-symlink', 'it is a symbolic link, which is never followed');
    return bad('pickup-unreadable', `it cannot be read: ${(e as Error).message}`);
  }
  const done = async <T>(r: T): Promise<T> => {
    await fh.close().catch(() => undefined);
    return r;
  };
  try {
    const st = await fh.stat();
    if (!st.isFile()) return await done(bad('pickup-not-a-file', 'it is not a regular file'));
    // A hard link to a file elsewhere (someone else's mail, a secret) is not sent either; a
    // writer that links its file in, then unlinks its own name (as Maildir writers do), is
    // given a moment to.
    if (st.nlink !== 1) {
      if (o.settleMs > 0 && Date.now() - st.ctimeMs < o.settleMs) return await done({ kind: 'later' as const });
      return await done(bad('pickup-hard-link', `it has ${st.nlink} hard links: only a file written for the pickup directory is sent`));
    }
    if (st.size === 0) return await done(bad('pickup-empty', 'it is empty'));
    if (o.maxSendSize !== null && st.size > o.maxSendSize) return await done(bad('pickup-too-large', `it is ${st.size} bytes, more than the organisation's maxSendSize (${o.maxSendSize})`));
    // The header: read until the empty line that ends it (the file may end its lines in LF).
    const head = await readHeader(fh, o.maxHeaderSize);
    if (!head.ok) return await done(bad('pickup-header-too-large', head.why));
    return { kind: 'ok', fh, st, head };
  } catch (e) {
    return done(bad('pickup-unreadable', `it cannot be read: ${(e as Error).message}`));
  }
}

type HeaderRead = { ok: true; header: Buffer; rest: Buffer; bodyOffset: number; eightBit: boolean } | { ok: false; why: string };

/**
 * The header section, CRLF line ends, without the empty line; `rest`: bytes of the body already
 * read (CRLF too), `bodyOffset`: where the file's unread part starts.
 */
async function readHeader(fh: FileHandle, max: number): Promise<HeaderRead> {
  const chunks: Buffer[] = [];
  let length = 0;
  let offset = 0;
  // Enough raw bytes to hold a header of `max` octets after LF → CRLF, and a little body.
  const limit = max + READ_CHUNK;
  for (;;) {
    const buf = Buffer.alloc(READ_CHUNK);
    const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, offset);
    const chunk = buf.subarray(0, bytesRead);
    offset += bytesRead;
    chunks.push(chunk);
    length += bytesRead;
    const raw = Buffer.concat(chunks, length);
    const end = headerEnd(raw);
    if (end >= 0 || bytesRead === 0 || length >= limit) {
      // Whole lines only go through the normaliser (a CR at a cut would wait for its LF).
      const cut = end >= 0 ? end : bytesRead === 0 ? raw.length : raw.lastIndexOf(0x0a) + 1;
      const lines = new LineEndingFilter('normalise');
      const text = lines.push(raw.subarray(0, cut));
      const h = messageHeader(text);
      // Cut at the limit, the header must have ended inside what was read (a line that is no field).
      const unended = end < 0 && bytesRead !== 0 && h.rest.length === 0 && !h.separator;
      if (h.header.length > max || unended) {
        return { ok: false, why: `its header section is larger than pickupDirectoryMaxHeaderSize (${max} bytes)` };
      }
      // A line that is no header field ends the header (messageHeader): it is the body's first.
      return { ok: true, header: h.header, rest: h.rest, bodyOffset: cut, eightBit: raw.subarray(0, cut).some((b) => b >= 0x80) };
    }
  }
}

/** Offset just after the empty line that ends the header ("\n\n" or "\n\r\n"), or -1. */
function headerEnd(raw: Buffer): number {
  if (raw[0] === 0x0a) return 1;
  if (raw[0] === 0x0d && raw[1] === 0x0a) return 2;
  for (let i = raw.indexOf(0x0a); i >= 0 && i < raw.length - 1; i = raw.indexOf(0x0a, i + 1)) {
    if (raw[i + 1] === 0x0a) return i + 2;
    if (raw[i + 1] === 0x0d && raw[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

async function hasEightBit(fh: FileHandle, from: number, size: number): Promise<boolean> {
  const buf = Buffer.alloc(READ_CHUNK);
  for (let at = from; at < size; ) {
    const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, at);
    if (bytesRead === 0) break;
    for (let i = 0; i < bytesRead; i++) if (buf[i]! >= 0x80) return true;
    at += bytesRead;
  }
  return false;
}

/** The message as intake reads it: the edited header and its empty line, then the body from the file (intake normalises its line ends). */
async function* bodyStream(header: Buffer, rest: Buffer, fh: FileHandle, from: number, size: number): AsyncGenerator<Buffer> {
  yield rest.length > 0 ? Buffer.concat([header, rest]) : header;
  for (let at = from; at < size; ) {
    const buf = Buffer.alloc(READ_CHUNK);
    const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, at);
    if (bytesRead === 0) break;
    at += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}
