// SMTP TLS Reporting (RFC 8460), the pure part: the `_smtp._tls.<domain>` TXT record and its
// rua, the result type of a failed session, the policy as a report states it, the aggregate
// report JSON (§4), its file name (§5.3) and the multipart/report message that carries it by
// mail (§5.3). Which outbound TLS policy applied to a delivery, with its reason, is here too.
// The worker counts sessions in Redis, gzips and sends around these.

import { formatAddress, parseEnvelopeAddress, type MailAddress } from '@mailgw/mail';
import { stsAllowsMx, type StsMode, type StsPolicy, type StsParse } from './mta-sts.js';

/** RFC 8460 §4.3 result types (the policy and negotiation failures mailgw can tell apart). */
export const TLSRPT_RESULT_TYPES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'tlsa-invalid',
  'dnssec-invalid',
  'dane-required',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
] as const;
export type TlsRptResultType = (typeof TLSRPT_RESULT_TYPES)[number];

export type TlsRptRua = { readonly kind: 'mailto'; readonly address: MailAddress; readonly uri: string } | { readonly kind: 'https'; readonly url: string };

/**
 * The rua of a domain from the TXT strings at `_smtp._tls.<domain>` (each record's strings
 * joined). RFC 8460 §3: records not starting with "v=TLSRPTv1" are ignored; none means no
 * reporting (ok with null); more than one is an error; rua is a comma-separated list of
 * mailto: and https: URIs (others are skipped, none usable is an error).
 */
export function parseTlsRptRecord(records: readonly string[]): StsParse<readonly TlsRptRua[] | null> {
  const rpt = records.filter((r) => /^v=TLSRPTv1\s*(;|$)/.test(r));
  if (rpt.length === 0) return { ok: true, value: null };
  if (rpt.length > 1) return { ok: false, error: `${rpt.length} v=TLSRPTv1 TXT records (exactly one is allowed)` };
  let rua: string | undefined;
  for (const part of rpt[0]!.split(';').slice(1)) {
    const t = part.trim();
    if (t === '') continue;
    const eq = t.indexOf('=');
    if (eq <= 0) return { ok: false, error: `malformed field "${t}" in the TXT record` };
    if (t.slice(0, eq).trim() === 'rua' && rua === undefined) rua = t.slice(eq + 1).trim();
  }
  if (rua === undefined || rua === '') return { ok: false, error: 'the TXT record has no rua' };
  const out: TlsRptRua[] = [];
  const skipped: string[] = [];
  for (const raw of rua.split(',')) {
    const uri = raw.trim();
    if (/^mailto:/i.test(uri)) {
      // Percent-encoded per RFC 6068; a "?query" part is not an address.
      let addr: string;
      try {
        addr = decodeURIComponent(uri.slice(7).split('?')[0]!);
      } catch {
        skipped.push(uri);
        continue;
      }
      const p = parseEnvelopeAddress(addr);
      if (p.ok && p.value) out.push({ kind: 'mailto', address: { local: p.value.local, domain: p.value.domain.toLowerCase() }, uri });
      else skipped.push(uri);
    } else if (/^https:\/\//i.test(uri)) {
      try {
        out.push({ kind: 'https', url: new URL(uri).toString() });
      } catch {
        skipped.push(uri);
      }
    } else skipped.push(uri);
  }
  if (out.length === 0) return { ok: false, error: `no usable mailto: or https: URI in rua "${rua}"${skipped.length ? ` (skipped ${skipped.join(', ')})` : ''}` };
  return { ok: true, value: out };
}

/** The policy of one report entry (RFC 8460 §4.4 "policy"). */
export interface TlsRptPolicy {
  readonly type: 'sts' | 'tlsa' | 'no-policy-found';
  /** sts: the policy file's lines; tlsa: the TLSA records in presentation form; else empty. */
  readonly strings: readonly string[];
  /** The policy domain (whose `_smtp._tls` record names the rua): see tlsRptPolicyDomain. */
  readonly domain: string;
  /** sts: the policy's mx patterns; tlsa: the MX host the records belong to. */
  readonly mxHosts: readonly string[];
}

/** One failed session as counted (RFC 8460 §4.3 failure-details, without the count). */
export interface TlsRptFailure {
  readonly resultType: TlsRptResultType;
  readonly sendingMtaIp: string | null;
  readonly receivingMxHostname: string | null;
  readonly receivingIp: string | null;
  /** A short machine-readable reason (§4.4 failure-reason-code): e.g. the TLS library's error code. */
  readonly failureReasonCode: string | null;
}

/** An MTA-STS policy as report policy: its lines as the policy file has them (§4.4). */
export function stsReportPolicy(domain: string, policy: StsPolicy): TlsRptPolicy {
  const strings = ['version: STSv1', `mode: ${policy.mode}`, ...policy.mx.map((m) => `mx: ${m}`), `max_age: ${policy.maxAge}`];
  return { type: 'sts', strings, domain, mxHosts: [...policy.mx] };
}

/**
 * The policy domain a session is counted and reported under (RFC 8460 §3 "Policy Domain"),
 * with the reason: under MTA-STS the recipient domain (the domain that publishes the policy);
 * under DANE the TLSA base domain, the MX host name whose `_<port>._tcp` TLSA records were
 * looked up (RFC 7672 §2.2.3), so the report goes to the rua at `_smtp._tls.<MX host>`, which
 * the operator of the MX host (often not the recipient domain's owner) publishes.
 */
export function tlsRptPolicyDomain(i: { readonly mechanism: 'dane' | 'mta-sts'; readonly recipientDomain: string; readonly tlsaBaseDomain?: string | null }): { domain: string; reason: string } {
  const norm = (d: string) => d.toLowerCase().replace(/\.$/, '');
  const recipient = norm(i.recipientDomain);
  if (i.mechanism === 'mta-sts') return { domain: recipient, reason: `MTA-STS: the policy domain is the recipient domain ${recipient}, which publishes the policy (RFC 8460 §3)` };
  if (!i.tlsaBaseDomain) return { domain: recipient, reason: `DANE without a TLSA base domain: reported under the recipient domain ${recipient}` };
  const base = norm(i.tlsaBaseDomain);
  return { domain: base, reason: `DANE: the policy domain is the TLSA base domain ${base} (the MX host of ${recipient} whose TLSA records apply; RFC 8460 §3, RFC 7672 §2.2.3)` };
}

/** TLSA records (usage, selector, matching type, data in hex) as report policy for one MX host; `domain` the policy domain (tlsRptPolicyDomain: the MX host). */
export function tlsaReportPolicy(domain: string, mxHost: string, records: ReadonlyArray<{ usage: number; selector: number; matchingType: number; data: Uint8Array }>): TlsRptPolicy {
  const hex = (d: Uint8Array) => Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
  return { type: 'tlsa', strings: records.map((r) => `${r.usage} ${r.selector} ${r.matchingType} ${hex(r.data)}`), domain, mxHosts: [mxHost] };
}

/**
 * Which policy TLS-RPT counts a session to an MX host under, and its policy domain: DANE's TLSA
 * records under the MX host (the TLSA base domain), else an MTA-STS enforce/testing policy under
 * the recipient domain, else none (the session is not reported: RFC 8460 reports on policies).
 */
export function tlsRptSessionPolicy(i: {
  readonly recipientDomain: string;
  readonly mxHost: string;
  /** `base`: the TLSA base domain the records were found at (the MX host, or the name its CNAMEs lead to). */
  readonly dane?: { readonly records: Parameters<typeof tlsaReportPolicy>[2]; readonly base?: string } | undefined;
  readonly mtaSts?: { readonly mode: string; readonly policy?: StsPolicy | undefined } | undefined;
}): { domain: string; why: string; policy: TlsRptPolicy } | null {
  if (i.dane) {
    const pd = tlsRptPolicyDomain({ mechanism: 'dane', recipientDomain: i.recipientDomain, tlsaBaseDomain: i.dane.base ?? i.mxHost });
    return { domain: pd.domain, why: pd.reason, policy: tlsaReportPolicy(pd.domain, i.mxHost, i.dane.records) };
  }
  if (i.mtaSts?.policy && i.mtaSts.mode !== 'none') {
    const pd = tlsRptPolicyDomain({ mechanism: 'mta-sts', recipientDomain: i.recipientDomain });
    return { domain: pd.domain, why: pd.reason, policy: stsReportPolicy(pd.domain, i.mtaSts.policy) };
  }
  return null;
}

/**
 * A session under an MTA-STS testing policy was delivered anyway; TLS-RPT counts what enforce
 * would have refused as a failure (RFC 8461 §5): the TLS problem, else an MX the policy does not
 * list; null for a session enforce would have accepted.
 */
export function stsTestingFailure(problem: string | null, policy: StsPolicy | undefined, mxHost: string): { resultType: TlsRptResultType; code: string | null } | null {
  if (problem) return { resultType: tlsResultType(problem), code: null };
  if (policy !== undefined && !stsAllowsMx(policy, mxHost)) return { resultType: 'validation-failure', code: 'mx-not-in-policy' };
  return null;
}

export const noPolicyFound = (domain: string): TlsRptPolicy => ({ type: 'no-policy-found', strings: [], domain, mxHosts: [] });

/**
 * The RFC 8460 result type of a TLS failure, from the reason the session gave (Node's TLS error
 * text and code, or mailgw's own DANE/STARTTLS reasons). `dane` picks validation-failure over
 * certificate-not-trusted: under DANE CAs play no part.
 */
export function tlsResultType(detail: string, o: { code?: string | null; dane?: boolean } = {}): TlsRptResultType {
  const d = detail.toLowerCase();
  const code = (o.code ?? '').toUpperCase();
  if (code === 'EREQUIRETLS' || /starttls|no tls session|not offered|not encrypted/.test(d)) return 'starttls-not-supported';
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID' || /expired|not yet valid/.test(d)) return 'certificate-expired';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /altname|does not match|does not carry|not in \*?\.|hostname\/ip/.test(d)) return 'certificate-host-mismatch';
  if (o.dane) return 'validation-failure';
  if (/self[- ]signed|unable to (verify|get local issuer)|not trusted|untrusted|unknown ca/.test(d) || /SELF_SIGNED|UNABLE_TO_|CERT_UNTRUSTED/.test(code)) return 'certificate-not-trusted';
  return 'validation-failure';
}

/** Counts of one (domain, policy) for one UTC day, as read back from the recorder. */
export interface TlsRptPolicyCounts {
  readonly policy: TlsRptPolicy;
  readonly successful: number;
  readonly failures: ReadonlyArray<{ readonly failure: TlsRptFailure; readonly count: number }>;
}

export interface TlsReportMeta {
  readonly organizationName: string;
  readonly contactInfo: string;
  /** Unique per report (§4.4 report-id). */
  readonly reportId: string;
}

/** The UTC day "YYYY-MM-DD" of a time, and the day range a report covers. */
export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}
export function dayRange(day: string): { start: string; end: string; startMs: number; endMs: number } {
  const startMs = Date.parse(`${day}T00:00:00Z`);
  return { start: `${day}T00:00:00Z`, end: `${day}T23:59:59Z`, startMs, endMs: startMs + 86_400_000 - 1000 };
}
export const isUtcDay = (s: string): boolean => /^\d{4}-\d{2}-\d{2}$/.test(s) && utcDay(new Date(`${s}T00:00:00Z`)) === s;

/** The aggregate report of one domain for one UTC day (RFC 8460 §4, JSON field names as the RFC). */
export function buildTlsReport(meta: TlsReportMeta, day: string, entries: readonly TlsRptPolicyCounts[]): Record<string, unknown> {
  const range = dayRange(day);
  return {
    'organization-name': meta.organizationName,
    'date-range': { 'start-datetime': range.start, 'end-datetime': range.end },
    'contact-info': meta.contactInfo,
    'report-id': meta.reportId,
    policies: entries.map((e) => ({
      policy: {
        'policy-type': e.policy.type,
        ...(e.policy.strings.length ? { 'policy-string': [...e.policy.strings] } : {}),
        'policy-domain': e.policy.domain,
        ...(e.policy.mxHosts.length ? { 'mx-host': [...e.policy.mxHosts] } : {}),
      },
      summary: {
        'total-successful-session-count': e.successful,
        'total-failure-session-count': e.failures.reduce((n, f) => n + f.count, 0),
      },
      ...(e.failures.length
        ? {
            'failure-details': e.failures.map(({ failure: f, count }) => ({
              'result-type': f.resultType,
              ...(f.sendingMtaIp ? { 'sending-mta-ip': f.sendingMtaIp } : {}),
              ...(f.receivingMxHostname ? { 'receiving-mx-hostname': f.receivingMxHostname } : {}),
              ...(f.receivingIp ? { 'receiving-ip': f.receivingIp } : {}),
              'failed-session-count': count,
              ...(f.failureReasonCode ? { 'failure-reason-code': f.failureReasonCode } : {}),
            })),
          }
        : {}),
    })),
  };
}

/**
 * The report's file name (RFC 8460 §5.3): `submitter!policy-domain!begin!end!unique.json.gz`,
 * begin and end as UNIX seconds; "!" and "/" kept out of the parts.
 */
export function tlsReportFileName(submitter: string, domain: string, day: string, unique: string): string {
  const r = dayRange(day);
  const safe = (s: string) => s.replace(/[!/\\\s]/g, '_');
  return `${safe(submitter)}!${safe(domain)}!${Math.floor(r.startMs / 1000)}!${Math.floor(r.endMs / 1000)}!${safe(unique)}.json.gz`;
}

export interface TlsReportMessageInput {
  readonly from: MailAddress;
  readonly to: MailAddress;
  /** The reporting organisation's domain (TLS-Report-Submitter). */
  readonly submitter: string;
  readonly domain: string;
  readonly day: string;
  readonly reportId: string;
  readonly messageId: string;
  readonly date: string;
  readonly fileName: string;
  /** The gzipped JSON report. */
  readonly gzip: Uint8Array;
}

/**
 * The report as a mail (RFC 8460 §5.3): multipart/report; report-type="tlsrpt", a short text
 * part, and the report as application/tlsrpt+gzip in base64; TLS-Report-Domain and
 * TLS-Report-Submitter header fields; the subject the RFC suggests.
 */
export function composeTlsReportMessage(m: TlsReportMessageInput): string {
  const boundary = `tlsrpt-${m.reportId.replace(/[^A-Za-z0-9]/g, '').slice(0, 40)}`;
  const b64 = Buffer.from(m.gzip).toString('base64').replace(/.{1,76}/g, '$&\r\n');
  return [
    `From: <${formatAddress(m.from)}>`,
    `To: <${formatAddress(m.to)}>`,
    `Subject: Report Domain: ${m.domain} Submitter: ${m.submitter} Report-ID: <${m.reportId}>`,
    `Date: ${m.date}`,
    `Message-ID: ${m.messageId}`,
    `TLS-Report-Domain: ${m.domain}`,
    `TLS-Report-Submitter: ${m.submitter}`,
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    '',
    'This is a MIME-formatted message.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is an aggregate TLS report (RFC 8460) from ${m.submitter} for ${m.domain}, UTC day ${m.day}.`,
    '',
    `--${boundary}`,
    'Content-Type: application/tlsrpt+gzip',
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${m.fileName}"`,
    '',
    b64.trimEnd(),
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
}

/**
 * The state of one (day, policy domain) report in Redis, shared by every worker: `sending` is a
 * short lease (one process delivers, until `leaseUntil`), `retry` a failed delivery waiting
 * for `nextAt`, `sent` and `gave-up` final. `done` lists the destinations (rua URIs, the
 * directory file) already delivered, so a retry sends only to the others, with the same
 * report id.
 */
export interface TlsReportClaim {
  readonly state: 'sending' | 'retry' | 'sent' | 'gave-up';
  /** The process that last wrote it. */
  readonly by: string;
  /** When (ISO). */
  readonly at: string;
  /** Delivery attempts finished. */
  readonly attempts: number;
  readonly reportId: string | null;
  readonly done: readonly string[];
  /** sending: the lease's end (ms) and its holder's token. */
  readonly leaseUntil?: number;
  readonly token?: string;
  /** retry: when the next attempt is due (ms). */
  readonly nextAt?: number;
  /** retry, gave-up: why the last attempt failed. */
  readonly lastError?: string;
}

/** A claim as stored (JSON); a claim of an older mailgw (`{by, at}`, SET NX) counts as sent; unreadable as null. */
export function parseTlsReportClaim(raw: string | null): TlsReportClaim | null {
  if (raw === null) return null;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
  const state = o['state'] === 'sending' || o['state'] === 'retry' || o['state'] === 'sent' || o['state'] === 'gave-up' ? o['state'] : 'sent';
  return {
    state,
    by: typeof o['by'] === 'string' ? o['by'] : 'unknown',
    at: typeof o['at'] === 'string' ? o['at'] : '',
    attempts: num(o['attempts']) ?? (o['state'] === undefined ? 1 : 0),
    reportId: typeof o['reportId'] === 'string' ? o['reportId'] : null,
    done: Array.isArray(o['done']) ? o['done'].filter((d): d is string => typeof d === 'string') : [],
    ...(num(o['leaseUntil']) !== undefined ? { leaseUntil: num(o['leaseUntil'])! } : {}),
    ...(typeof o['token'] === 'string' ? { token: o['token'] } : {}),
    ...(num(o['nextAt']) !== undefined ? { nextAt: num(o['nextAt'])! } : {}),
    ...(typeof o['lastError'] === 'string' ? { lastError: o['lastError'] } : {}),
  };
}

/** Whether a process may take a report's claim now (and send it), with the reason. */
export function tlsReportClaimDecision(c: TlsReportClaim | null, now: number): { take: boolean; reason: string } {
  const iso = (ms: number) => new Date(ms).toISOString();
  if (c === null) return { take: true, reason: 'not sent yet' };
  switch (c.state) {
    case 'sent':
      return { take: false, reason: `already sent${c.by !== 'unknown' ? ` by ${c.by}` : ''}${c.at ? ` at ${c.at}` : ''}` };
    case 'gave-up':
      return { take: false, reason: `given up after ${c.attempts} failed attempts (${c.lastError ?? 'delivery failed'})` };
    case 'sending':
      if ((c.leaseUntil ?? 0) > now) return { take: false, reason: `being sent by ${c.by} (lease until ${iso(c.leaseUntil!)})` };
      return { take: true, reason: `the lease of ${c.by} ran out before it finished: sending again` };
    case 'retry':
      if ((c.nextAt ?? 0) > now) return { take: false, reason: `attempt ${c.attempts} failed (${c.lastError ?? 'delivery failed'}); next attempt at ${iso(c.nextAt!)}` };
      return { take: true, reason: `attempt ${c.attempts + 1} after ${c.attempts} failed` };
  }
}

/** First wait after a failed report delivery; doubled per attempt up to TLSRPT_RETRY_MAX_MS. */
export const TLSRPT_RETRY_BASE_MS = 15 * 60_000;
export const TLSRPT_RETRY_MAX_MS = 6 * 3_600_000;

/**
 * After a report delivery failed for the `attempts`-th time: when to try again (exponential
 * backoff from 15 minutes, at most 6 hours apart), or give up when that would be after
 * `giveUpAt` (when the day's counters may have expired, so the report could not be rebuilt).
 */
export function tlsReportRetry(o: { readonly attempts: number; readonly now: number; readonly giveUpAt: number }): { retry: true; at: number; reason: string } | { retry: false; reason: string } {
  const delay = Math.min(TLSRPT_RETRY_BASE_MS * 2 ** Math.max(0, o.attempts - 1), TLSRPT_RETRY_MAX_MS);
  const at = o.now + delay;
  const times = `${o.attempts} attempt${o.attempts === 1 ? '' : 's'} failed`;
  if (at > o.giveUpAt) return { retry: false, reason: `${times}; the day's counters expire at ${new Date(o.giveUpAt).toISOString()}: given up` };
  return { retry: true, at, reason: `${times}; next attempt in ${Math.round(delay / 60_000)} min at ${new Date(at).toISOString()}` };
}

/**
 * Whether a failed delivery of a report to one destination is worth retrying: HTTP 408, 425,
 * 429 and 5xx, network errors, DNS failures, a queue or directory write that failed, yes;
 * another HTTP status (the server refused this report) or an unusable `_smtp._tls` record
 * (its owner must fix it) no; no record at all is not a failure (nothing to send).
 */
export function tlsReportDeliveryRetryable(f: { readonly kind: 'http'; readonly status: number } | { readonly kind: 'bad-record' | 'no-record' | 'error' }): { retry: boolean; reason: string } {
  if (f.kind === 'no-record') return { retry: false, reason: 'the domain publishes no TLS-RPT record: nothing to send' };
  if (f.kind === 'bad-record') return { retry: false, reason: 'the TLS-RPT record is unusable: not retried (its owner must fix it; the next day\'s report looks it up again)' };
  if (f.kind !== 'http') return { retry: true, reason: 'a temporary failure: retried' };
  const s = f.status;
  if (s >= 500 || s === 408 || s === 425 || s === 429) return { retry: true, reason: `HTTP ${s} is temporary: retried` };
  return { retry: false, reason: `HTTP ${s}: the server refused the report; sending it again would not change that` };
}

/** Which outbound TLS policy applied to a session, for logs and `mailgw queue show`. */
export type AppliedTlsKind = 'DANE' | 'MTA-STS enforce' | 'MTA-STS testing' | 'connector' | 'opportunistic';

export interface AppliedTlsInput {
  /** 'send connector "Internet"', 'routes[2]'. */
  readonly source: string;
  readonly requireTLS: boolean;
  readonly tlsAuthLevel: string;
  readonly tlsDomain: string | null;
  /** Why TLS is required besides requireTLS (smartHostAuthMechanism BasicAuthRequireTLS). */
  readonly requiredBy: string | null;
  readonly mtaSts?: { readonly domain: string; readonly mode: StsMode; readonly id: string } | undefined;
  readonly dane?: { readonly owner: string; readonly records: readonly string[] } | undefined;
  /** An MX hop with no MTA-STS policy: why (no TXT record, fetch failed…), for the reason. */
  readonly stsNone?: string | null;
}

/**
 * The policy that decides a session's TLS, in precedence order (RFC 8461 §2, RFC 7672): DANE
 * (secure TLSA records), then MTA-STS enforce, then the connector's requireTLS/tlsAuthLevel
 * (or an AUTH mechanism that needs TLS), then MTA-STS testing (reported only), else
 * opportunistic STARTTLS; with the reason in words.
 */
export function appliedTlsPolicy(p: AppliedTlsInput): { kind: AppliedTlsKind; reason: string } {
  const connectorRequires = p.requireTLS && !(p.mtaSts?.mode === 'enforce');
  const connectorText = `${p.source} requires TLS${p.requiredBy ? ` (${p.requiredBy})` : ''}${connectorRequires || p.requiredBy ? `, tlsAuthLevel ${p.tlsAuthLevel}${p.tlsDomain ? `, tlsDomain ${p.tlsDomain}` : ''}` : ''}`;
  if (p.dane) return { kind: 'DANE', reason: `DNSSEC-signed TLSA records at ${p.dane.owner} (${p.dane.records.join(', ')}) decide the certificate; they take precedence over MTA-STS and the connector` };
  if (p.mtaSts?.mode === 'enforce') return { kind: 'MTA-STS enforce', reason: `MTA-STS policy of ${p.mtaSts.domain} (id ${p.mtaSts.id}) in mode enforce: verified TLS to an MX host the policy lists, or the message waits` };
  if (p.requireTLS || p.requiredBy) return { kind: 'connector', reason: `${connectorText}${p.mtaSts ? `; MTA-STS policy of ${p.mtaSts.domain} in mode ${p.mtaSts.mode} is only reported` : ''}` };
  if (p.mtaSts?.mode === 'testing') return { kind: 'MTA-STS testing', reason: `MTA-STS policy of ${p.mtaSts.domain} (id ${p.mtaSts.id}) in mode testing: opportunistic STARTTLS, failures reported, never refused` };
  const why = p.mtaSts ? `MTA-STS policy of ${p.mtaSts.domain} in mode none` : p.stsNone ? `no MTA-STS policy (${p.stsNone})` : null;
  return { kind: 'opportunistic', reason: `${p.source} does not require TLS${why ? `, ${why}` : ''}, no DANE records: STARTTLS when offered, else plain text` };
}
