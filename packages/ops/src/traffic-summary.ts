// `mailgw track --summary`: the mail traffic of a period in one page, as Postfix admins get it
// from pflogsumm and Exchange admins from grouping Get-MessageTrackingLog: messages received
// (by source and direction), recipients delivered, deferred and failed, DSNs, what the anti-spam
// agents refused at SMTP, traffic per hour (per day for longer periods), and the top senders,
// recipients, domains and reasons. Pure: the caller reads the tracking log and the agent log
// (both gateway-wide, from Redis and this machine's files) and hands the records in.
import { readableAddress } from '@mailgw/mail';
import type { AgentLogEntry } from './agent-log.js';
import type { TrackingRecord } from './tracking-search.js';

export interface Ranked {
  readonly key: string;
  readonly count: number;
  /** Received bytes (the senders' lists). */
  readonly bytes?: number;
}

export interface TrafficBucket {
  /** The start of the hour or day, ISO 8601 UTC. */
  readonly at: string;
  readonly received: number;
  readonly delivered: number;
  readonly deferred: number;
  readonly failed: number;
  readonly rejected: number;
}

export interface TrafficSummary {
  readonly from: string;
  readonly to: string;
  readonly received: {
    readonly messages: number;
    readonly bytes: number;
    /** Distinct envelope senders ('<>' counted as one). */
    readonly senders: number;
    /** By the RECEIVE's source: SMTP, PICKUP, AGENT (journal reports). */
    readonly bySource: Readonly<Record<string, number>>;
    /** Incoming (anonymous: the Internet, partners) and Originating (authenticated users, the pickup, the gateway's own reports). */
    readonly byDirection: Readonly<Record<string, number>>;
    /** By receive connector. */
    readonly byConnector: Readonly<Record<string, number>>;
  };
  /** SEND (to a next hop over SMTP) and DELIVER (a local mailbox): recipients, and the messages they belong to. */
  readonly delivered: { readonly recipients: number; readonly messages: number };
  /** DEFER events: recipient attempts deferred, and the distinct recipients of them. */
  readonly deferred: { readonly attempts: number; readonly recipients: number };
  /** FAIL events: recipients failed for good (a DSN follows, unless NOTIFY or the null sender). */
  readonly failed: { readonly recipients: number };
  /** DSNs queued, by kind (failed, delayed, success). */
  readonly dsns: Readonly<Record<string, number>>;
  /** Messages set aside as poison (POISONMESSAGE). */
  readonly poison: number;
  /** Refusals the anti-spam agents logged (the agent log): null when it was not read. */
  readonly rejected: { readonly total: number; readonly byAgent: Readonly<Record<string, number>> } | null;
  readonly step: 'hour' | 'day';
  readonly buckets: readonly TrafficBucket[];
  readonly top: {
    readonly senders: readonly Ranked[];
    readonly senderDomains: readonly Ranked[];
    readonly recipients: readonly Ranked[];
    readonly recipientDomains: readonly Ranked[];
    readonly deferrals: readonly Ranked[];
    readonly failures: readonly Ranked[];
    readonly rejections: readonly Ranked[];
  };
}

/** The agent log's actions that refused something at SMTP (Exchange's Get-AgentLog actions). */
const REJECTING = new Set(['RejectCommand', 'RejectMessage', 'TempRejectMessage']);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The domain of an address as people read it (U-labels), lower case; '' for the null sender. */
function domainOf(address: string): string {
  const readable = readableAddress(address.toLowerCase());
  const at = readable.lastIndexOf('@');
  return at < 0 ? '' : readable.slice(at + 1);
}

class Counter {
  private readonly m = new Map<string, { count: number; bytes: number }>();
  add(key: string, n = 1, bytes = 0): void {
    const e = this.m.get(key) ?? { count: 0, bytes: 0 };
    e.count += n;
    e.bytes += bytes;
    this.m.set(key, e);
  }
  get size(): number {
    return this.m.size;
  }
  top(n: number, withBytes = false): Ranked[] {
    return [...this.m]
      .sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]))
      .slice(0, n)
      .map(([key, e]) => (withBytes ? { key, count: e.count, bytes: e.bytes } : { key, count: e.count }));
  }
  record(): Record<string, number> {
    return Object.fromEntries([...this.m].sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0])).map(([k, e]) => [k, e.count]));
  }
}

/** A reply or reason as one line, bounded: the same cause reads the same. */
const reasonKey = (text: string) => text.replace(/\s+/g, ' ').trim().slice(0, 160) || '(no reply)';

type MutableBucket = { -readonly [K in keyof TrafficBucket]: TrafficBucket[K] };

/**
 * The counts of a period, taken one record at a time (a busy day is millions of events: none is
 * kept); summary() gives the page's figures.
 */
export class TrafficTally {
  private readonly from: number;
  private readonly to: number;
  private readonly step: 'hour' | 'day';
  private readonly first: number;
  private readonly size: number;
  private readonly buckets: MutableBucket[] = [];
  private messages = 0;
  private bytes = 0;
  private readonly senders = new Counter();
  private readonly senderDomains = new Counter();
  private readonly bySource = new Counter();
  private readonly byDirection = new Counter();
  private readonly byConnector = new Counter();
  private deliveredRcpts = 0;
  private readonly deliveredMessages = new Set<string>();
  private readonly recipients = new Counter();
  private readonly recipientDomains = new Counter();
  private deferAttempts = 0;
  private readonly deferredRcpts = new Set<string>();
  private readonly deferrals = new Counter();
  private failedRcpts = 0;
  private readonly failures = new Counter();
  private readonly dsns = new Counter();
  private poison = 0;
  /** null until an agent log entry (or agentLogRead()) says the agent log was read. */
  private rejectedTotal: number | null = null;
  private readonly byAgent = new Counter();
  private readonly rejections = new Counter();

  constructor(private readonly opts: { readonly since: Date; readonly until: Date; readonly top: number }) {
    this.from = opts.since.getTime();
    this.to = opts.until.getTime();
    this.step = this.to - this.from > 2 * DAY ? 'day' : 'hour';
    this.size = this.step === 'day' ? DAY : HOUR;
    this.first = Math.floor(this.from / this.size) * this.size;
    for (let t = this.first; t < this.to; t += this.size) this.buckets.push({ at: new Date(t).toISOString(), received: 0, delivered: 0, deferred: 0, failed: 0, rejected: 0 });
  }

  private bucket(ms: number): MutableBucket | undefined {
    return Number.isFinite(ms) && ms >= this.from && ms < this.to ? this.buckets[Math.floor((ms - this.first) / this.size)] : undefined;
  }

  /** One tracking event; those outside the period are ignored. */
  add(e: TrackingRecord): void {
    const b = this.bucket(Date.parse(e.dateTime));
    if (!b) return;
    const rcpts = e.recipientAddress ?? [];
    const status = e.recipientStatus ?? [];
    switch (e.eventId) {
      case 'RECEIVE': {
        this.messages++;
        const n = typeof e.totalBytes === 'number' ? e.totalBytes : 0;
        this.bytes += n;
        this.senders.add(e.senderAddress ? readableAddress(e.senderAddress) : '<>', 1, n);
        this.senderDomains.add(e.senderAddress ? domainOf(e.senderAddress) : '<>', 1, n);
        this.bySource.add(String(e.source ?? 'SMTP'));
        if (typeof e.directionality === 'string') this.byDirection.add(e.directionality);
        if (typeof e.connectorId === 'string') this.byConnector.add(e.connectorId);
        b.received++;
        break;
      }
      case 'SEND':
      case 'DELIVER':
        this.deliveredRcpts += rcpts.length;
        if (e.internalMessageId) this.deliveredMessages.add(e.internalMessageId);
        for (const r of rcpts) {
          this.recipients.add(readableAddress(r));
          this.recipientDomains.add(domainOf(r));
        }
        b.delivered += rcpts.length;
        break;
      case 'DEFER':
        this.deferAttempts += rcpts.length;
        rcpts.forEach((r, i) => {
          this.deferredRcpts.add(`${e.internalMessageId ?? ''}|${r}`);
          this.deferrals.add(reasonKey(status[i] ?? status[0] ?? ''));
        });
        b.deferred += rcpts.length;
        break;
      case 'FAIL':
        this.failedRcpts += rcpts.length;
        rcpts.forEach((_, i) => this.failures.add(reasonKey(status[i] ?? status[0] ?? '')));
        b.failed += rcpts.length;
        break;
      case 'DSN':
        this.dsns.add(typeof e.sourceContext === 'string' ? e.sourceContext : 'dsn');
        break;
      case 'POISONMESSAGE':
        this.poison++;
        break;
    }
  }

  /** Says the agent log was read (even when it held nothing): the page then shows its refusals. */
  agentLogRead(): void {
    this.rejectedTotal ??= 0;
  }

  /** One agent log entry: counted when it refused something at SMTP within the period. */
  addAgent(a: AgentLogEntry): void {
    this.agentLogRead();
    const b = this.bucket(Date.parse(a.timestamp));
    if (!b || !REJECTING.has(a.action)) return;
    this.rejectedTotal = (this.rejectedTotal ?? 0) + 1;
    this.byAgent.add(a.agent);
    this.rejections.add(`${a.agent}: ${a.reason}${a.smtpResponse ? ` (${reasonKey(a.smtpResponse).slice(0, 80)})` : ''}`);
    b.rejected++;
  }

  summary(): TrafficSummary {
    const top = this.opts.top;
    return {
      from: this.opts.since.toISOString(),
      to: this.opts.until.toISOString(),
      received: { messages: this.messages, bytes: this.bytes, senders: this.senders.size, bySource: this.bySource.record(), byDirection: this.byDirection.record(), byConnector: this.byConnector.record() },
      delivered: { recipients: this.deliveredRcpts, messages: this.deliveredMessages.size },
      deferred: { attempts: this.deferAttempts, recipients: this.deferredRcpts.size },
      failed: { recipients: this.failedRcpts },
      dsns: this.dsns.record(),
      poison: this.poison,
      rejected: this.rejectedTotal === null ? null : { total: this.rejectedTotal, byAgent: this.byAgent.record() },
      step: this.step,
      buckets: this.buckets.map((b) => ({ ...b })),
      top: {
        senders: this.senders.top(top, true),
        senderDomains: this.senderDomains.top(top, true),
        recipients: this.recipients.top(top),
        recipientDomains: this.recipientDomains.top(top),
        deferrals: this.deferrals.top(top),
        failures: this.failures.top(top),
        rejections: this.rejections.top(top),
      },
    };
  }
}

/** The summary of records in hand (`agent` null: the agent log was not read). */
export function trafficSummary(events: readonly TrackingRecord[], agent: readonly AgentLogEntry[] | null, opts: { readonly since: Date; readonly until: Date; readonly top: number }): TrafficSummary {
  const t = new TrafficTally(opts);
  for (const e of events) t.add(e);
  if (agent) {
    t.agentLogRead();
    for (const a of agent) t.addAgent(a);
  }
  return t.summary();
}

const num = (n: number) => n.toLocaleString('en-US');

function megabytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** "SMTP 1,200, PICKUP 30" from a count record; '' when empty. */
const parts = (r: Readonly<Record<string, number>>) => Object.entries(r).map(([k, n]) => `${k} ${num(n)}`).join(', ');

/** The summary as one page of text (what cron mails to the admins). */
export function summaryText(s: TrafficSummary, where: string): string {
  const iso = (t: string) => t.replace('T', ' ').replace(/:\d\d\.\d+Z$/, 'Z');
  const out: string[] = [`Mail traffic from ${iso(s.from)} to ${iso(s.to)} (tracking and agent logs: ${where})`, ''];
  const r = s.received;
  const rows: Array<[string, string, string]> = [
    ['received', `${num(r.messages)} message${r.messages === 1 ? '' : 's'}`, `${megabytes(r.bytes)} from ${num(r.senders)} sender${r.senders === 1 ? '' : 's'}${r.messages ? `; ${parts(r.bySource)}${Object.keys(r.byDirection).length ? `; ${parts(r.byDirection)}` : ''}` : ''}`],
    ['delivered', `${num(s.delivered.recipients)} recipient${s.delivered.recipients === 1 ? '' : 's'}`, `of ${num(s.delivered.messages)} message${s.delivered.messages === 1 ? '' : 's'}`],
    ['deferred', `${num(s.deferred.attempts)} attempt${s.deferred.attempts === 1 ? '' : 's'}`, `for ${num(s.deferred.recipients)} recipient${s.deferred.recipients === 1 ? '' : 's'} (what is still queued: mailq)`],
    ['failed', `${num(s.failed.recipients)} recipient${s.failed.recipients === 1 ? '' : 's'}`, Object.keys(s.dsns).length ? `DSNs queued: ${parts(s.dsns)}` : 'no DSN queued'],
    ['rejected', s.rejected ? `${num(s.rejected.total)} at SMTP` : '(agent log not read)', s.rejected && s.rejected.total ? parts(s.rejected.byAgent) : ''],
  ];
  if (s.poison) rows.push(['poison', `${num(s.poison)} message${s.poison === 1 ? '' : 's'}`, 'set aside: mailgw queue messages --status Poison']);
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  for (const [a, b, c] of rows) out.push(`  ${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`.trimEnd());
  if (r.messages && Object.keys(r.byConnector).length) out.push('', `Received by connector: ${parts(r.byConnector)}`);

  const cols = ['received', 'delivered', 'deferred', 'failed', 'rejected'] as const;
  out.push('', `Per ${s.step} (UTC)`, `  ${(s.step === 'hour' ? 'hour' : 'day').padEnd(16)}${cols.map((c) => c.padStart(10)).join('')}`);
  for (const b of s.buckets) {
    if (cols.every((c) => b[c] === 0)) continue;
    out.push(`  ${(s.step === 'hour' ? b.at.slice(0, 13).replace('T', ' ') + ':00' : b.at.slice(0, 10)).padEnd(16)}${cols.map((c) => num(b[c]).padStart(10)).join('')}`);
  }
  const list = (title: string, items: readonly Ranked[], bytes = false) => {
    out.push('', title);
    if (items.length === 0) {
      out.push('  (none)');
      return;
    }
    const w = Math.max(...items.map((i) => num(i.count).length));
    for (const i of items) out.push(`  ${num(i.count).padStart(w)}  ${bytes && i.bytes !== undefined ? `${megabytes(i.bytes).padStart(9)}  ` : ''}${i.key}`);
  };
  list('Top senders (messages received, bytes)', s.top.senders, true);
  list('Top sender domains', s.top.senderDomains, true);
  list('Top recipients (delivered)', s.top.recipients);
  list('Top recipient domains (delivered)', s.top.recipientDomains);
  list('Top deferral reasons (recipient attempts)', s.top.deferrals);
  list('Top failure reasons (recipients)', s.top.failures);
  if (s.rejected) list('Top rejections (agent log)', s.top.rejections);
  return `${out.join('\n')}\n`;
}
