// SMTP TLS Reporting (RFC 8460), the I/O shell around @mailgw/policy's tls-report.ts:
// - TlsReportRecorder counts sessions in Redis, shared by every worker: one hash per UTC day and
//   policy domain (the recipient domain under MTA-STS, the MX host under DANE; fields `p:<id>` the policy as JSON, `s:<id>` successful sessions,
//   `f:<id>:<failure as JSON>` failed sessions by result type and addresses), plus a set of the
//   day's domains; both expire after a few days.
// - TlsReporter builds a domain's report for a day (JSON, gzip, §5.3 file name), looks the rua up
//   at `_smtp._tls.<domain>` through the worker's resolver, and delivers it: https: POST as
//   application/tlsrpt+gzip, mailto: a multipart/report message put into mailgw's own queue,
//   and/or a file in a directory. sendDay keeps a claim per (day, domain) in Redis (changed
//   only by compare-and-set): a short lease while one process sends, then sent, or a retry
//   with backoff for the destinations that failed; so of many workers exactly one sends each
//   report, once per destination.
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { gzipSync } from 'node:zlib';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { TlsReportsConfig } from '@mailgw/config';
import { formatAddress, rfc5322Date, type MailAddress } from '@mailgw/mail';
import {
  buildTlsReport,
  dayRange,
  parseTlsReportClaim,
  tlsReportClaimDecision,
  tlsReportDeliveryRetryable,
  tlsReportRetry,
  type TlsReportClaim,
  composeTlsReportMessage,
  parseTlsRptRecord,
  tlsReportFileName,
  TLSRPT_RESULT_TYPES,
  type TlsRptFailure,
  type TlsRptPolicy,
  type TlsRptPolicyCounts,
  type TlsRptRua,
} from '@mailgw/policy';
import { defineScripts, newQueueId, queueGeneratedMessage, type KeySpace, type MessageWriter } from '@mailgw/queue';
import { lookupTxt, resolverLookup, type DnsResolver } from './dns-resolver.js';

/** Counters live this long (the report of a day is sent the next day; some slack for downtime). */
export const TLSRPT_COUNTER_TTL_MS = 4 * 86_400_000;
/** A (day, domain) claim is kept this long: the same report is never sent twice by the schedule. */
const CLAIM_TTL_MS = 8 * 86_400_000;

/** An HTTP answer other than 2xx from an https: rua. */
class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    url: string,
  ) {
    super(`HTTP ${status} from ${url}`);
  }
}

const policyId = (p: TlsRptPolicy) => createHash('sha256').update(JSON.stringify(p)).digest('hex').slice(0, 16);
const utcDayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** One session's result for TLS-RPT: a success (failure null) or a failure, under a policy of a policy domain. */
export interface TlsSessionResult {
  /** The policy domain (tlsRptPolicyDomain: the recipient domain, or the MX host under DANE). */
  readonly domain: string;
  /** Why that domain (logged at debug). */
  readonly why?: string;
  readonly policy: TlsRptPolicy;
  readonly failure: TlsRptFailure | null;
}

export class TlsReportRecorder {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySpace,
    private readonly logger?: Logger,
  ) {}

  /** Counts one session; never rejects (a Redis error is logged: reports are best effort, mail is not held for them). */
  async record(r: TlsSessionResult, at = Date.now()): Promise<void> {
    const day = utcDayOf(at);
    const domain = r.domain.toLowerCase();
    const key = this.keys.tlsReportCounters(day, domain);
    const domains = this.keys.tlsReportDomains(day);
    const id = policyId(r.policy);
    const field = r.failure ? `f:${id}:${JSON.stringify(r.failure)}` : `s:${id}`;
    try {
      await this.redis.multi().hset(key, `p:${id}`, JSON.stringify(r.policy)).hincrby(key, field, 1).pexpire(key, TLSRPT_COUNTER_TTL_MS).sadd(domains, domain).pexpire(domains, TLSRPT_COUNTER_TTL_MS).exec();
      this.logger?.debug({ domain, policyType: r.policy.type, failure: r.failure?.resultType ?? null, why: r.why }, 'TLS-RPT session counted');
    } catch (err) {
      this.logger?.warn({ domain, err: (err as Error).message }, 'TLS-RPT: the session could not be counted in Redis');
    }
  }
}

/** Reads a day's counters of one domain back, as report entries (policies in a stable order). */
export function countsFromFields(fields: Record<string, string>): TlsRptPolicyCounts[] {
  const byId = new Map<string, { policy: TlsRptPolicy | null; successful: number; failures: Array<{ failure: TlsRptFailure; count: number }> }>();
  const entry = (id: string) => {
    let e = byId.get(id);
    if (!e) byId.set(id, (e = { policy: null, successful: 0, failures: [] }));
    return e;
  };
  for (const [field, value] of Object.entries(fields)) {
    const m = /^([psf]):([0-9a-f]{16})(?::(.*))?$/s.exec(field);
    if (!m) continue;
    const e = entry(m[2]!);
    try {
      if (m[1] === 'p') e.policy = JSON.parse(value) as TlsRptPolicy;
      else if (m[1] === 's') e.successful += Number(value) || 0;
      else {
        const f = JSON.parse(m[3]!) as TlsRptFailure;
        if ((TLSRPT_RESULT_TYPES as readonly string[]).includes(f.resultType)) e.failures.push({ failure: f, count: Number(value) || 0 });
      }
    } catch {
      // A field written by someone else: not ours to report.
    }
  }
  return [...byId.values()]
    .filter((e): e is { policy: TlsRptPolicy; successful: number; failures: Array<{ failure: TlsRptFailure; count: number }> } => e.policy !== null)
    .map((e) => ({ ...e, failures: e.failures.sort((a, b) => b.count - a.count || a.failure.resultType.localeCompare(b.failure.resultType)) }))
    .sort((a, b) => a.policy.type.localeCompare(b.policy.type) || a.policy.strings.join('\n').localeCompare(b.policy.strings.join('\n')));
}

export interface TlsReportSettings {
  readonly organizationName: string;
  readonly contactInfo: string;
  /** Domain in file names and TLS-Report-Submitter. */
  readonly submitter: string;
  /** From of mailto: reports. */
  readonly sender: MailAddress;
  /** Absolute directory reports are written to, or null. */
  readonly directory: string | null;
  /** Send to the rua (else only the directory). */
  readonly sendReports: boolean;
}

export interface TlsReport {
  readonly domain: string;
  readonly day: string;
  readonly reportId: string;
  readonly json: Record<string, unknown>;
  readonly gzip: Buffer;
  readonly fileName: string;
}

/** What happened to one report: per rua (and the directory), delivered or why not. */
export interface TlsReportDelivery {
  readonly to: string;
  readonly ok: boolean;
  readonly detail: string;
  /** A failure the daily run tries again (tlsReportDeliveryRetryable). */
  readonly retry?: boolean;
}

/** What sendDay did with one domain's report. */
export interface TlsReportSendResult {
  readonly domain: string;
  readonly reportId: string | null;
  readonly deliveries: TlsReportDelivery[];
  /** Not sent now, and why (already sent, being sent, waiting for its retry…). */
  readonly skipped?: string;
  /** After failed deliveries: when it is tried again, or that it was given up. */
  readonly next?: string;
}

export interface TlsReporterOptions {
  readonly redis: Redis;
  readonly keys: KeySpace;
  readonly resolver: DnsResolver;
  /** Where mailto: reports are queued (the worker's mail store). */
  readonly store: { beginMessage(queueId: string): MessageWriter };
  readonly settings: TlsReportSettings;
  /** This gateway's FQDN (Message-ID, the queued report's HELO). */
  readonly fqdn: string;
  /** CA certificates trusted besides the system's for https: rua (tests). */
  readonly extraCAs?: readonly string[];
  readonly timeoutMs?: number;
  /** How long a claim is held while sending (default 6 × timeoutMs, at least a minute): a process that dies mid-send frees the report after it. Renewed every third of it while the process sends. */
  readonly leaseMs?: number;
  /** This process's clock (default Date.now); leases are timed on Redis' clock (TIME), so clocks that differ between machines do not matter. */
  readonly clock?: () => number;
  /** Process name in the claim (who sent it). */
  readonly name?: string;
  readonly logger?: Logger;
}

/** How one delivery of a report goes (TlsReporter.deliver). */
export interface TlsReportDeliverOptions {
  /** Destinations an earlier attempt served. */
  readonly skip?: ReadonlySet<string>;
  /** False once another process took the report over: nothing more is sent. */
  readonly holding?: () => boolean;
  readonly onServed?: (to: string) => void;
}

export class TlsReporter {
  constructor(private readonly o: TlsReporterOptions) {}

  /** Domains with counted sessions on a UTC day. */
  async domains(day: string): Promise<string[]> {
    return (await this.o.redis.smembers(this.o.keys.tlsReportDomains(day))).sort();
  }

  /** The report of one domain for one UTC day, or null when nothing was counted; `reportId` keeps the id of an earlier attempt. */
  async report(day: string, domain: string, reportId = `${randomUUID()}@${this.o.settings.submitter}`): Promise<TlsReport | null> {
    const d = domain.toLowerCase();
    const entries = countsFromFields(await this.o.redis.hgetall(this.o.keys.tlsReportCounters(day, d)));
    if (entries.length === 0) return null;
    const s = this.o.settings;
    const json = buildTlsReport({ organizationName: s.organizationName, contactInfo: s.contactInfo, reportId }, day, entries);
    const gzip = gzipSync(Buffer.from(JSON.stringify(json), 'utf8'));
    return { domain: d, day, reportId, json, gzip, fileName: tlsReportFileName(s.submitter, d, day, reportId.split('@')[0]!) };
  }

  /** The rua of a domain (`_smtp._tls.<domain>` TXT), [] when it publishes none; throws with the reason when unusable. */
  async rua(domain: string): Promise<readonly TlsRptRua[]> {
    const txt = await lookupTxt(this.o.resolver, `_smtp._tls.${domain}`);
    if (txt.error) throw new Error(txt.error);
    if (txt.records.length === 0) return [];
    const r = parseTlsRptRecord(txt.records);
    if (!r.ok) throw Object.assign(new Error(`_smtp._tls.${domain}: ${r.error}`), { badRecord: true });
    return r.value ?? [];
  }


  /**
   * Delivers a report: to the directory (if set) and, with sendReports, to every rua, except
   * the destinations in `skip` (delivered by an earlier attempt); never rejects. Each failure
   * says whether it is worth retrying. Under a lease: stops before the next destination once
   * `holding()` is false, and says each destination served at once (`onServed`).
   */
  async deliver(report: TlsReport, o: TlsReportDeliverOptions = {}): Promise<TlsReportDelivery[]> {
    const { skip = new Set<string>(), holding = () => true, onServed = () => {} } = o;
    const out: TlsReportDelivery[] = [];
    const served = (d: TlsReportDelivery) => {
      out.push(d);
      onServed(d.to);
    };
    const failed = (to: string, detail: string, f: Parameters<typeof tlsReportDeliveryRetryable>[0]) => out.push({ to, ok: false, detail, retry: tlsReportDeliveryRetryable(f).retry });
    const s = this.o.settings;
    if (s.directory) {
      const file = path.join(s.directory, report.fileName);
      if (!skip.has(file)) {
        try {
          await mkdir(s.directory, { recursive: true });
          await writeFile(file, report.gzip, { mode: 0o640 });
          served({ to: file, ok: true, detail: 'written' });
        } catch (err) {
          failed(file, (err as Error).message, { kind: 'error' });
        }
      }
    }
    if (!s.sendReports) return out;
    let rua: readonly TlsRptRua[];
    try {
      rua = await this.rua(report.domain);
    } catch (err) {
      failed(`_smtp._tls.${report.domain}`, (err as Error).message, { kind: (err as { badRecord?: boolean }).badRecord ? 'bad-record' : 'error' });
      return out;
    }
    if (rua.length === 0) failed(`_smtp._tls.${report.domain}`, 'the domain publishes no TLS-RPT record: not sent', { kind: 'no-record' });
    for (const r of rua) {
      const to = r.kind === 'https' ? r.url : r.uri;
      if (skip.has(to)) continue;
      // Another process took the report over: it sends to what is left.
      if (!holding()) break;
      try {
        if (r.kind === 'https') served({ to, ok: true, detail: await this.post(r.url, report) });
        else served({ to, ok: true, detail: `queued as ${await this.mail(r.address, report)}` });
      } catch (err) {
        failed(to, (err as Error).message, err instanceof HttpStatusError ? { kind: 'http', status: err.status } : { kind: 'error' });
      }
    }
    return out;
  }

  /**
   * Sends every domain's report of a UTC day that is due: not sent yet, or waiting for a retry
   * whose time has come, or whose sender's lease ran out. The claim in Redis
   * (`tlsReportSent`) is changed by compare-and-set only: a process takes a short lease
   * before sending (of many workers exactly one gets it), then records "sent" when every
   * destination got the report, or a retry with backoff (tlsReportRetry) with the destinations
   * already served, so a retry sends only to the ones that failed, under the same report id.
   * `force` (by hand) sends without looking at or making a claim, so the daily run still sends
   * the whole day. `now` is the clock (tests).
   */
  async sendDay(day: string, o: { force?: boolean; domain?: string; now?: number } = {}): Promise<TlsReportSendResult[]> {
    // Leases and retry times are read and written by every worker on every machine: timed on
    // Redis' clock (this process's clock plus its distance to Redis' TIME, measured once here).
    // `now` moves that clock (the daily run passes its own, tests a later day).
    const local = this.o.clock ?? Date.now;
    const skew = await redisClockSkew(this.o.redis, local);
    const offset = o.now === undefined ? 0 : o.now - local();
    const clock = () => local() + skew + offset;
    const results: TlsReportSendResult[] = [];
    const domains = o.domain ? [o.domain.toLowerCase()] : await this.domains(day);
    for (const domain of domains) {
      if (o.force) {
        const report = await this.report(day, domain);
        if (!report) {
          results.push({ domain, reportId: null, deliveries: [], skipped: 'no sessions counted' });
          continue;
        }
        const deliveries = await this.deliver(report);
        this.logDeliveries(report, deliveries);
        results.push({ domain, reportId: report.reportId, deliveries });
        continue;
      }
      results.push(await this.sendClaimed(day, domain, clock));
    }
    return results;
  }

  private async sendClaimed(day: string, domain: string, clock: () => number): Promise<TlsReportSendResult> {
    const log = this.o.logger;
    const key = this.o.keys.tlsReportSent(day, domain);
    const by = this.o.name ?? `pid ${process.pid}`;
    const cas = defineScripts(this.o.redis, ['compare-and-set'])['compare-and-set'];
    const swap = async (from: string, to: TlsReportClaim) => {
      const text = JSON.stringify(to);
      return { ok: Number(await cas(key, from, text, CLAIM_TTL_MS)) === 1, text };
    };

    const leaseMs = this.o.leaseMs ?? Math.max(60_000, 6 * (this.o.timeoutMs ?? 30_000));
    const raw = await this.o.redis.get(key);
    const claim = parseTlsReportClaim(raw);
    const now = clock();
    const decision = tlsReportClaimDecision(claim, now);
    if (!decision.take) {
      log?.debug({ domain, day, why: decision.reason }, 'TLS-RPT report not sent now');
      return { domain, reportId: claim?.reportId ?? null, deliveries: [], skipped: decision.reason };
    }
    const lease = await swap(raw ?? '', {
      state: 'sending',
      by,
      at: new Date(now).toISOString(),
      attempts: claim?.attempts ?? 0,
      reportId: claim?.reportId ?? null,
      done: claim?.done ?? [],
      leaseUntil: now + leaseMs,
      token: randomUUID(),
      ...(claim?.lastError ? { lastError: claim.lastError } : {}),
    });
    if (!lease.ok) {
      log?.debug({ domain, day }, 'TLS-RPT report taken by another process just now: not sent here');
      return { domain, reportId: claim?.reportId ?? null, deliveries: [], skipped: 'taken by another process just now' };
    }
    if (claim) log?.info({ domain, day, attempt: claim.attempts + 1, why: decision.reason }, 'TLS-RPT report: trying again');

    // The lease is renewed every third of its length while this process sends, so a slow
    // destination never lets another process take the report over; it lapses only when this
    // process stops (dies, freezes, loses Redis). Once lost, nothing more is sent from here.
    let held = lease.text;
    let lost = false;
    // What this attempt delivered so far: each renewal records it in the claim, so a process
    // that takes over after a lapse does not send to those destinations again.
    const servedNow: string[] = [];
    let renewing: Promise<void> = Promise.resolve();
    const renew = async () => {
      if (lost) return;
      const current = parseTlsReportClaim(held)!;
      let r: { ok: boolean; text: string };
      try {
        r = await swap(held, { ...current, done: [...new Set([...current.done, ...servedNow])], leaseUntil: clock() + leaseMs });
      } catch {
        return; // Redis did not answer: tried again at the next renewal
      }
      if (r.ok) held = r.text;
      else {
        lost = true;
        log?.warn({ domain, day }, 'TLS-RPT: another process took this report over while this one was sending (its lease had run out); nothing more is sent from here');
      }
    };
    const renewTimer = setInterval(() => {
      renewing = renewing.then(renew);
    }, Math.max(10, Math.floor(leaseMs / 3)));
    renewTimer.unref();
    const finish = async (c: Omit<TlsReportClaim, 'by' | 'at'>) => {
      clearInterval(renewTimer);
      await renewing;
      const r = await swap(held, { ...c, by, at: new Date(clock()).toISOString() });
      if (!r.ok && !lost) log?.warn({ domain, day, state: c.state }, 'TLS-RPT: the claim changed while this process was sending (its lease ran out); another process may send the report again');
    };
    try {
      return await this.sendHeld(day, domain, claim, clock, finish, () => !lost, (to) => servedNow.push(to));
    } finally {
      clearInterval(renewTimer);
    }
  }

  /** The sending part of sendClaimed, under a lease it holds while `holding()`. */
  private async sendHeld(day: string, domain: string, claim: TlsReportClaim | null, clock: () => number, finish: (c: Omit<TlsReportClaim, 'by' | 'at'>) => Promise<void>, holding: () => boolean, onServed: (to: string) => void): Promise<TlsReportSendResult> {
    const log = this.o.logger;
    const report = await this.report(day, domain, claim?.reportId ?? undefined);
    if (!report) {
      await finish({ state: 'sent', attempts: claim?.attempts ?? 0, reportId: null, done: [] });
      return { domain, reportId: null, deliveries: [], skipped: 'no sessions counted' };
    }
    const done = claim?.done ?? [];
    const deliveries = await this.deliver(report, { skip: new Set(done), holding, onServed });
    this.logDeliveries(report, deliveries);
    const attempts = (claim?.attempts ?? 0) + 1;
    const nowDone = [...done, ...deliveries.filter((d) => d.ok).map((d) => d.to)];
    const failed = deliveries.filter((d) => !d.ok && d.retry);
    if (failed.length === 0) {
      await finish({ state: 'sent', attempts, reportId: report.reportId, done: nowDone });
      return { domain, reportId: report.reportId, deliveries };
    }
    const lastError = failed.map((d) => `${d.to}: ${d.detail}`).join('; ');
    // The counters may expire from TLSRPT_COUNTER_TTL_MS after the day's start on: the report could not be rebuilt after.
    const next = tlsReportRetry({ attempts, now: clock(), giveUpAt: dayRange(day).startMs + TLSRPT_COUNTER_TTL_MS });
    if (next.retry) {
      await finish({ state: 'retry', attempts, reportId: report.reportId, done: nowDone, nextAt: next.at, lastError });
      log?.warn({ domain, day, reportId: report.reportId, failed: failed.map((d) => d.to), nextAt: new Date(next.at).toISOString(), why: next.reason }, 'TLS-RPT report not delivered everywhere; tried again later');
    } else {
      await finish({ state: 'gave-up', attempts, reportId: report.reportId, done: nowDone, lastError });
      log?.error({ domain, day, reportId: report.reportId, failed: failed.map((d) => d.to), why: next.reason }, 'TLS-RPT report given up');
    }
    return { domain, reportId: report.reportId, deliveries, next: next.reason };
  }

  private logDeliveries(report: TlsReport, deliveries: readonly TlsReportDelivery[]): void {
    const log = this.o.logger;
    for (const d of deliveries) {
      if (d.ok) log?.info({ domain: report.domain, day: report.day, reportId: report.reportId, to: d.to, detail: d.detail }, 'TLS-RPT report delivered');
      else log?.warn({ domain: report.domain, day: report.day, reportId: report.reportId, to: d.to, err: d.detail, retry: d.retry ?? false }, 'TLS-RPT report not delivered');
    }
  }

  /** POST to an https: rua (RFC 8460 §5.2); the host looked up through the worker's resolver. */
  private post(url: string, report: TlsReport): Promise<string> {
    const u = new URL(url);
    const extra = this.o.extraCAs ?? [];
    return new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: u.hostname,
          servername: u.hostname,
          port: u.port ? Number(u.port) : 443,
          path: `${u.pathname}${u.search}`,
          method: 'POST',
          lookup: resolverLookup(this.o.resolver),
          ...(extra.length > 0 ? { ca: [...rootCertificates, ...extra] } : {}),
          rejectUnauthorized: true,
          timeout: this.o.timeoutMs ?? 30_000,
          headers: { 'content-type': 'application/tlsrpt+gzip', 'content-length': String(report.gzip.length), 'user-agent': 'mailgw' },
        },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) resolve(`HTTP ${code}`);
          else reject(new HttpStatusError(code, url));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timeout posting to ${url}`)));
      req.on('error', reject);
      req.end(report.gzip);
    });
  }

  /** Queues the report as a message to a mailto: rua (RFC 8460 §5.3); returns its queue id. */
  private async mail(to: MailAddress, report: TlsReport): Promise<string> {
    const s = this.o.settings;
    const id = newQueueId();
    const now = new Date();
    const messageId = `<${id}.tlsrpt@${this.o.fqdn}>`;
    const text = composeTlsReportMessage({ from: s.sender, to, submitter: s.submitter, domain: report.domain, day: report.day, reportId: report.reportId, messageId, date: rfc5322Date(now), fileName: report.fileName, gzip: report.gzip });
    // A report that cannot be delivered is dropped, never bounced back to us (RFC 8460 §5.3).
    await queueGeneratedMessage(this.o.store, { queueId: id, messageId, connector: 'TLSRPT', fqdn: this.o.fqdn, sender: s.sender, to, body: Buffer.from(text, 'utf8'), receivedAt: now });
    this.o.logger?.debug({ queueId: id, to: formatAddress(to), domain: report.domain }, 'TLS-RPT report queued');
    return id;
  }
}

/** Redis' clock (TIME) minus this process's, in ms: what to add to `local()` to read Redis' time. */
async function redisClockSkew(redis: Redis, local: () => number): Promise<number> {
  const before = local();
  const [sec, usec] = (await redis.time()) as [string | number, string | number];
  const after = local();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - (before + after) / 2;
}

/** The previous UTC day of `now` ("YYYY-MM-DD"): the day the daily run reports. */
export const previousUtcDay = (now: number): string => utcDayOf(now - 86_400_000);

/** gateway.yaml's tlsReports with defaults filled in, or null when off; `configFile` anchors `directory`. */
export function tlsReportSettings(g: { readonly defaultDomain: string; readonly tlsReports?: TlsReportsConfig | undefined }, configFile: string): TlsReportSettings | null {
  const t = g.tlsReports;
  if (!t || !t.enabled) return null;
  const sender = t.sender ?? `tlsrpt-noreply@${g.defaultDomain}`;
  const at = sender.lastIndexOf('@');
  return {
    organizationName: t.organizationName,
    contactInfo: t.contactInfo,
    submitter: t.submitter ?? g.defaultDomain,
    sender: { local: sender.slice(0, at), domain: sender.slice(at + 1) },
    directory: t.directory ? path.resolve(path.dirname(path.resolve(configFile)), t.directory) : null,
    sendReports: t.sendReports,
  };
}

/**
 * The days the daily run looks at on `now`: the previous UTC day, and the days before it whose
 * counters may still exist (a report waiting for a retry, or not sent while no worker ran),
 * oldest first.
 */
export function reportDays(now: number): string[] {
  const n = Math.ceil(TLSRPT_COUNTER_TTL_MS / 86_400_000);
  return Array.from({ length: n }, (_, k) => utcDayOf(now - (n - k) * 86_400_000));
}

/**
 * The daily run: every `intervalMs` (default 15 min) the reports of the previous UTC day and of
 * the days before it whose counters may remain (reportDays) that are due are sent: not sent
 * yet, or waiting for a retry whose time has come (the first process to take a report's lease
 * sends it; the others skip it). Returns a stop function.
 */
export function scheduleTlsReports(reporter: TlsReporter, o: { intervalMs?: number; clock?: () => number; logger?: Logger } = {}): () => Promise<void> {
  let running: Promise<unknown> | null = null;
  const clock = o.clock ?? Date.now;
  const tick = () => {
    if (running) return;
    running = (async () => {
      for (const day of reportDays(clock())) {
        await reporter.sendDay(day, { now: clock() }).catch((err: Error) => o.logger?.warn({ day, err: err.message }, 'TLS-RPT: the daily reports could not be sent; tried again later'));
      }
    })().finally(() => (running = null));
  };
  const timer = setInterval(tick, o.intervalMs ?? 15 * 60_000);
  timer.unref();
  // A little after start too, so a gateway restarted after midnight does not wait a whole interval.
  const first = setTimeout(tick, Math.min(o.intervalMs ?? 60_000, 60_000));
  first.unref();
  return async () => {
    clearInterval(timer);
    clearTimeout(first);
    await running;
  };
}
