// Delivery of an smtp://, smtps://, lmtp:// or mx hop: look the hosts up, take a pooled
// session (or open one, trying hosts and addresses in order), send the recipients in groups
// with identical DSN parameters, and turn every reply into a per-recipient outcome.
import { BUSY, type ConnectionPool } from './connection-pool.js';
import type { Logger } from 'pino';
import { connectorSource, daneApplies, daneNotTriedReply, tlsaBaseDomains, noPolicyFound, sendRateReply, sendSizeCheck, stsMxPlan, stsReportPolicy, stsTestingFailure, tlsResultType, tlsRptPolicyDomain, tlsRptSessionPolicy, type DaneRecordsSigned, type TlsRptResultType } from '@mailgw/policy';
import { literalAddress, lookupMx, lookupTargetHost, type DnsResolver, type HostLookup, type NextHopHost } from './dns-resolver.js';
import type { Outcomes, RecipientOutcome } from './outcome.js';
import { isPermanent, isSuccess, localReply, type Reply } from '@mailgw/mail';
import type { Hop, HopRecipient, HopTls } from '@mailgw/queue';
import { SessionOpenError, SmtpSession, type SmtpTimeouts } from './smtp-session.js';
import { isIP } from 'node:net';
import { appliedTls, describePolicy, policyFailedReply, withDane, withDomainSecurity, withMtaSts, type SessionTlsPolicy } from './tls-policy.js';
import type { DomainSecureSending } from './domain-security.js';
import type { TlsReportRecorder } from './tls-report.js';
import { usableTlsa, type TlsaAnswer } from './dane.js';
import type { MtaSts } from './mta-sts.js';
import type { SendProtocolLogs } from './send-protocol-log.js';
import type { ConnectorRates } from './connector-rates.js';

export interface SmtpDeliveryContext {
  readonly pool: ConnectionPool;
  readonly resolver: DnsResolver;
  /** Our EHLO name. */
  readonly clientName: string;
  /** Port for mx delivery (25; tests use another). */
  readonly mxPort: number;
  readonly timeouts: SmtpTimeouts;
  /** At most this many addresses are tried per connection attempt (default 10). */
  readonly maxAddresses?: number;
  /** CA certificates (PEM) trusted besides the system's, for CertificateValidation/DomainValidation. */
  readonly extraCAs?: readonly string[];
  /** Send protocol logs of Verbose connectors. */
  readonly protocolLogs?: SendProtocolLogs;
  /** messageRateLimit of send connectors, across workers. */
  readonly rates?: ConnectorRates;
  /** MTA-STS policies of recipient domains, for MX hops (none: opportunistic/connector policy only). */
  readonly mtaSts?: MtaSts;
  /** TLS-RPT session counters (gateway.yaml tlsReports); absent: nothing is counted. */
  readonly tlsReports?: TlsReportRecorder;
  /** Domain security on the sending side (tlsSendDomainSecureList); absent: none. */
  readonly domainSecure?: DomainSecureSending | null;
  readonly logger?: Logger;
}

/** What opening sessions to a hop needs (a recipient probe has no pool and no rate limit). */
export type HopContext = Omit<SmtpDeliveryContext, 'pool' | 'rates'>;

/** A host to try, with its addresses and port (smart hosts in order, or MX hosts by preference). */
interface Candidate extends NextHopHost {
  readonly port: number;
}

export interface OutboundMessage {
  readonly from: string;
  readonly body: Buffer;
  /** Header fields sent in front of body (DKIM-Signature), without copying the body. */
  readonly prefix?: Buffer | null;
  readonly ret?: string | undefined;
  readonly envid?: string | undefined;
  readonly eightBit: boolean;
  /** Received with SMTPUTF8: only next hops offering it get the message (RFC 6531 3.2). */
  readonly smtpUtf8?: boolean;
  /** Received with BODY=BINARYMIME: only next hops offering BINARYMIME and CHUNKING get it (RFC 3030). */
  readonly binaryMime?: boolean;
}

const BUSY_REPLY = localReply(451, '4.4.5', 'All connections to the destination are in use; retrying shortly');

function outcomeFor(reply: Reply, remoteMta: string, connectionLost: boolean, dsnSupported: boolean): RecipientOutcome {
  if (isSuccess(reply)) return { type: 'delivered', reply, remoteMta, dsnAction: dsnSupported ? null : 'relayed' };
  if (isPermanent(reply)) return { type: 'failed', reply, remoteMta };
  return { type: 'deferred', reply, remoteMta, connectionFailure: connectionLost };
}

/** Recipients that can share one transaction: same NOTIFY and ORCPT (they apply per send()). */
function dsnGroups(recipients: readonly HopRecipient[]): HopRecipient[][] {
  const groups = new Map<string, HopRecipient[]>();
  for (const r of recipients) {
    const key = JSON.stringify([r.notify ?? null, r.orcpt ?? null]);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()];
}

/** The TLS policy of a hop's sessions: its connector's, plus what BasicAuthRequireTLS needs. */
export function sessionTlsPolicy(hop: Hop): SessionTlsPolicy {
  const t = hop.target;
  if (t.kind === 'maildir') throw new TypeError('maildir hop');
  const c = hop.connector;
  const source = connectorSource(c);
  const requiredBy = t.kind === 'smtp' && t.auth?.mechanism === 'BasicAuthRequireTLS' && !t.tls.requireTLS ? 'smartHostAuthMechanism BasicAuthRequireTLS' : null;
  return { ...t.tls, source, requiredBy };
}

/**
 * DANE for one MX host (RFC 7672): secure, usable TLSA records at _<port>._tcp.<host> make
 * them the only judge of its certificate (over MTA-STS and tlsAuthLevel); insecure or no
 * records leave the policy as it is; a failed TLSA lookup (SERVFAIL: possibly bogus DNSSEC)
 * means the host is not tried (§2.2), never a fallback to less.
 */
async function danePolicy(hop: Hop, host: Candidate, tls: SessionTlsPolicy, ctx: HopContext): Promise<{ ok: true; tls: SessionTlsPolicy } | { ok: false; reply: Reply }> {
  const resolveTlsa = ctx.resolver.resolveTlsa;
  if (hop.target.kind !== 'mx' || !resolveTlsa || isIP(host.name)) return { ok: true, tls };
  // RFC 7672 §2.2, decided by the policy (daneApplies) from the records' DNSSEC status.
  const signed = await recordsSigned(hop, host, ctx);
  if ('failed' in signed) {
    ctx.logger?.warn({ hop: hop.key, mx: host.name, err: signed.failed }, 'DANE: the DNSSEC status of the MX or address records could not be read; this MX host is not tried');
    reportDnssecFailure(hop, host, ctx, signed.failed);
    return { ok: false, reply: daneNotTriedReply(host.name, `the DNSSEC status of the MX or address records of ${host.name} could not be read (${signed.failed})`) };
  }
  if (signed.status) {
    const verdict = daneApplies(signed.status);
    if (!verdict.applies) {
      ctx.logger?.debug({ hop: hop.key, mx: host.name, reason: verdict.reason }, 'DANE does not apply: records not DNSSEC-authenticated');
      return { ok: true, tls };
    }
  }
  // §2.2.2: an MX host that is a (signed) CNAME has its TLSA records looked for at the name
  // the chain ends at first, then at its own name.
  for (const base of tlsaBaseDomains(signed.status ?? { host: host.name, addressSigned: false })) {
    const owner = `_${host.port}._tcp.${base}`;
    let answer: TlsaAnswer;
    try {
      answer = await resolveTlsa.call(ctx.resolver, owner);
    } catch (err) {
      const code = String((err as { code?: unknown })?.code ?? '');
      if (code === 'ENOTFOUND' || code === 'ENODATA') continue;
      ctx.logger?.warn({ hop: hop.key, mx: host.name, owner, err: code || (err as Error).message }, 'DANE: TLSA lookup failed; this MX host is not tried');
      reportDnssecFailure(hop, host, ctx, code || null);
      return { ok: false, reply: daneNotTriedReply(host.name, `TLSA lookup of ${owner} failed (${code || 'error'})`) };
    }
    const usable = usableTlsa(answer.records);
    if (!answer.secure || usable.length === 0) {
      if (answer.records.length > 0) ctx.logger?.info({ hop: hop.key, mx: host.name, owner, secure: answer.secure, records: answer.records.length, usable: usable.length }, 'DANE: TLSA records not used (not DNSSEC-authenticated or unusable)');
      continue;
    }
    const dane = withDane(tls, { owner, base, records: usable });
    ctx.logger?.info({ hop: hop.key, mx: host.name, ...(base !== host.name.toLowerCase() ? { tlsaBaseDomain: base } : {}), tlsPolicy: describePolicy(dane) }, 'DANE applies to this MX host');
    return { ok: true, tls: dane };
  }
  return { ok: true, tls };
}


/**
 * The DNSSEC status of the records DANE needs signed (the domain's MX, the host's A or AAAA,
 * and where CNAMEs lead the latter), as the resolver reads it: null when it cannot say;
 * `failed` with the error's code when the lookup failed.
 */
async function recordsSigned(hop: Hop, host: Candidate, ctx: HopContext): Promise<{ status: DaneRecordsSigned | null } | { failed: string }> {
  const dnssecStatus = ctx.resolver.dnssecStatus;
  if (!dnssecStatus || !hop.domain) return { status: null };
  const addressType = host.addresses.some((a) => isIP(a) === 4) ? 'A' : 'AAAA';
  try {
    const [mx, address] = await Promise.all([dnssecStatus.call(ctx.resolver, hop.domain, 'MX'), dnssecStatus.call(ctx.resolver, host.name, addressType)]);
    return { status: { domain: hop.domain, mxSigned: mx.secure, host: host.name, addressType, addressSigned: address.secure, addressOwner: address.owner } };
  } catch (err) {
    return { failed: String((err as { code?: unknown })?.code ?? '') || (err as Error).message || 'error' };
  }
}

/** A DNSSEC lookup that failed before a DANE session: counted under the MX host (the TLSA base domain), as DANE failures are. */
function reportDnssecFailure(hop: Hop, host: Candidate, ctx: HopContext, code: string | null): void {
  const pd = tlsRptPolicyDomain({ mechanism: 'dane', recipientDomain: hop.domain!, tlsaBaseDomain: host.name });
  void ctx.tlsReports?.record({ domain: pd.domain, why: pd.reason, policy: noPolicyFound(pd.domain), failure: { resultType: 'dnssec-invalid', sendingMtaIp: hop.connector.sourceIPAddress ?? null, receivingMxHostname: host.name, receivingIp: null, failureReasonCode: code } });
}

/** Opens a session to the first candidate (in order) that accepts one: smart host failover, MX preference. */
async function connectAny(hop: Hop, hosts: readonly Candidate[], ctx: HopContext, hopTls: SessionTlsPolicy, onTry?: (tls: SessionTlsPolicy, host: string) => void): Promise<SmtpSession> {
  const t = hop.target;
  if (t.kind === 'maildir') throw new TypeError('maildir hop');
  const c = hop.connector;
  let last: SessionOpenError | null = null;
  let tried = 0;
  for (const host of hosts) {
    const hostPolicy = await danePolicy(hop, host, hopTls, ctx);
    if (!hostPolicy.ok) {
      last = new SessionOpenError(hostPolicy.reply);
      continue;
    }
    const tls = hostPolicy.tls;
    onTry?.(tls, host.name);
    const rpt = ctx.tlsReports && hop.target.kind === 'mx' && hop.domain ? tlsRptSessionPolicy({ recipientDomain: hop.domain, mxHost: host.name, dane: tls.dane, mtaSts: tls.mtaSts }) : null;
    const count = (failure: { resultType: TlsRptResultType; local: string | null; address: string; code: string | null } | null) => {
      if (rpt) void ctx.tlsReports?.record({ domain: rpt.domain, why: rpt.why, policy: rpt.policy, failure: failure && { resultType: failure.resultType, sendingMtaIp: failure.local, receivingMxHostname: host.name, receivingIp: failure.address, failureReasonCode: failure.code } });
    };
    for (const address of host.addresses) {
      if (tried++ >= (ctx.maxAddresses ?? 10)) break;
      try {
        const session = await SmtpSession.open({
          address,
          port: host.port,
          hostName: host.name,
          secure: t.kind === 'smtp' && t.secure,
          lmtp: t.kind === 'smtp' && t.lmtp,
          tls,
          extraCAs: ctx.extraCAs ?? [],
          localAddress: c.sourceIPAddress,
          clientName: c.fqdn ?? ctx.clientName,
          auth: t.kind === 'smtp' ? t.auth : null,
          protocolLog: c.protocolLoggingLevel === 'Verbose' && ctx.protocolLogs ? ctx.protocolLogs.session(c.name, c.sourceIPAddress ?? '', `${address}:${host.port}`) : null,
          timeouts: c.connectionInactivityTimeout === null ? ctx.timeouts : { ...ctx.timeouts, socketMs: c.connectionInactivityTimeout },
        });
        if (tls.mtaSts?.mode === 'testing' && !tls.dane) {
          // Delivered anyway; what enforce would have refused is reported (RFC 8461 §5).
          const problem = session.tlsProblem();
          if (problem) ctx.logger?.warn({ hop: hop.key, domain: tls.mtaSts.domain, mode: 'testing', id: tls.mtaSts.id, mx: host.name, address, problem }, 'MTA-STS testing: this session would fail the policy (delivered anyway)');
          // For TLS-RPT a session enforce would have refused is a failure (an unlisted MX was logged with the plan).
          const failure = stsTestingFailure(problem, tls.mtaSts.policy, host.name);
          count(failure && { ...failure, local: session.localAddress, address });
        } else count(null);
        return session;
      } catch (err) {
        if (!(err instanceof SessionOpenError)) throw err;
        const f = err.tlsFailure;
        if (f) count({ resultType: tlsResultType(f.detail, { code: f.code, dane: !!tls.dane }), local: f.localAddress, address: f.remoteAddress, code: f.code });
        last = err;
      }
    }
  }
  throw last ?? new SessionOpenError(localReply(451, '4.4.1', `No address to connect to for ${hop.key}`));
}

/** The hosts of a hop: its smart hosts in order (each looked up), or the MX hosts of its domain. */
type CandidateLookup = { ok: true; hosts: Candidate[] } | Extract<HostLookup, { ok: false }>;

async function candidates(hop: Hop, ctx: HopContext): Promise<CandidateLookup> {
  const t = hop.target;
  if (t.kind === 'maildir') throw new TypeError('maildir hop');
  if (t.kind === 'mx') {
    const r = await lookupMx(hop.domain!, ctx.resolver);
    return r.ok ? { ok: true, hosts: r.hosts.map((h) => ({ ...h, port: t.port ?? ctx.mxPort })) } : r;
  }
  const found: Candidate[] = [];
  let failure: Extract<HostLookup, { ok: false }> | null = null;
  let allPermanent = true;
  for (const h of t.hosts) {
    const r = await lookupTargetHost(h.host, ctx.resolver);
    if (r.ok) found.push(...r.hosts.map((x) => ({ ...x, port: h.port })));
    else {
      failure = r;
      allPermanent &&= r.permanent;
    }
  }
  if (found.length > 0 || !failure) return { ok: true, hosts: found };
  return { ...failure, permanent: allPermanent };
}

type TlsPlan = { ok: true; hosts: readonly Candidate[]; tls: SessionTlsPolicy; stsNone?: string } | { ok: false; reply: Reply; tls: SessionTlsPolicy };

/**
 * The TLS policy of a hop's sessions and the hosts it allows: the connector's, and on MX hops
 * the recipient domain's MTA-STS policy (enforce: only MX hosts the policy lists, verified TLS
 * to their names; testing: as usual, failures logged; none: nothing), and over both domain
 * security with a partner domain. Logged once per delivery.
 */
async function outboundTlsPlan(hop: Hop, hosts: readonly Candidate[], ctx: HopContext): Promise<TlsPlan> {
  const log = ctx.logger?.child({ hop: hop.key, connector: hop.connector.name });
  const domain = hop.domain;
  // Domain security with a partner (a listed domain on an MX hop of a domainSecureEnabled
  // connector) goes over every other layer, MTA-STS included.
  const partner = hop.connector.domainSecureEnabled && hop.target.kind === 'mx' && domain && ctx.domainSecure?.domains.has(domain) ? ctx.domainSecure : null;
  const secure = (t: SessionTlsPolicy): SessionTlsPolicy => (partner?.client && domain ? withDomainSecurity(t, domain, partner.client) : t);
  const base = secure(sessionTlsPolicy(hop));
  if (partner && !partner.client) return { ok: false, reply: policyFailedReply(base, hop.key, 'domain security: no domainSecureCertificate to present'), tls: base };
  if (hop.target.kind !== 'mx' || !ctx.mtaSts || !domain || literalAddress(domain)) {
    log?.debug({ tlsPolicy: describePolicy(base) || 'opportunistic' }, 'outbound TLS policy');
    return { ok: true, hosts, tls: base };
  }
  const sts = await ctx.mtaSts.policyFor(domain);
  if (sts.kind === 'none') {
    log?.info({ tlsPolicy: describePolicy(base) || 'opportunistic', mtaSts: 'none', reason: sts.reason }, 'outbound TLS policy');
    if (sts.failure) void ctx.tlsReports?.record({ domain, policy: noPolicyFound(domain), failure: { resultType: sts.failure, sendingMtaIp: null, receivingMxHostname: null, receivingIp: null, failureReasonCode: null } });
    return { ok: true, hosts, tls: base, stsNone: sts.reason };
  }
  const tls = secure(withMtaSts(sessionTlsPolicy(hop), { domain: sts.domain, mode: sts.policy.mode, id: sts.id, policy: sts.policy }));
  const plan = stsMxPlan(sts.policy, domain, sts.id, hosts.map((h) => h.name));
  const refused = plan.refused;
  log?.info({ tlsPolicy: describePolicy(tls), mtaSts: sts.policy.mode, id: sts.id, policyFrom: sts.from, ...(refused.length ? { mxNotInPolicy: refused } : {}) }, 'outbound TLS policy');
  if (sts.policy.mode === 'testing' && refused.length > 0) {
    log?.warn({ domain, mode: 'testing', id: sts.id, mxNotInPolicy: refused, policyMx: sts.policy.mx }, 'MTA-STS testing: MX hosts not in the policy (delivered anyway)');
  }
  if (plan.reply) {
    // Every MX host fails the policy: one failed session each, as TLS-RPT counts them.
    for (const h of refused) void ctx.tlsReports?.record({ domain, policy: stsReportPolicy(domain, sts.policy), failure: { resultType: 'validation-failure', sendingMtaIp: hop.connector.sourceIPAddress ?? null, receivingMxHostname: h, receivingIp: null, failureReasonCode: 'mx-not-in-policy' } });
    return { ok: false, reply: plan.reply, tls };
  }
  return { ok: true, hosts: hosts.filter((h) => plan.allowed.includes(h.name)), tls };
}

/**
 * Delivers one hop. `onTls` hears the TLS policy that applied to the attempt (of the last
 * session used or tried; none when no session was tried), which `mailgw queue show` prints.
 */
export async function deliverSmtpHop(hop: Hop, message: OutboundMessage, ctx: SmtpDeliveryContext, onTls?: (t: HopTls) => void): Promise<Outcomes> {
  const out: Outcomes = new Map();
  const t = hop.target;
  const all = (o: RecipientOutcome, rs: readonly HopRecipient[] = hop.recipients) => {
    for (const r of rs) if (!out.has(r.index)) out.set(r.index, o);
  };
  if (t.kind === 'maildir') throw new TypeError(`not an SMTP hop: ${hop.key}`);

  const tooBig = sendSizeCheck(hop.connector, message.body.length);
  if (tooBig) {
    all({ type: 'failed', reply: tooBig, remoteMta: null });
    return out;
  }
  const rate = hop.connector.messageRateLimit;
  if (rate !== null && ctx.rates && !(await ctx.rates.admit(hop.connector.name, rate))) {
    all({ type: 'busy', reply: sendRateReply(hop.connector, rate) });
    return out;
  }
  const lookup = await candidates(hop, ctx);
  if (!lookup.ok) {
    all(lookup.permanent ? { type: 'failed', reply: lookup.reply, remoteMta: null } : { type: 'deferred', reply: lookup.reply, remoteMta: null, connectionFailure: true });
    return out;
  }
  const plan = await outboundTlsPlan(hop, lookup.hosts, ctx);
  const stsNone = plan.ok ? (plan.stsNone ?? null) : null;
  let used: { tls: SessionTlsPolicy; host: string | null } = { tls: plan.tls, host: null };
  let tried = !plan.ok;
  const tellTls = () => {
    if (!tried) return; // every connection busy: nothing was attempted
    const a = appliedTls(used.tls, stsNone);
    // At info only when a policy constrained the session: "opportunistic" is every plain
    // delivery's, a line per message that says nothing (queue show keeps it either way).
    const fields = { hop: hop.key, connector: hop.connector.name, host: used.host, tlsPolicy: a.kind, detail: a.detail, reason: a.reason };
    if (a.kind === 'opportunistic') ctx.logger?.debug(fields, 'TLS policy of the delivery');
    else ctx.logger?.info(fields, 'TLS policy of the delivery');
    onTls?.({ policy: a.kind, detail: a.detail, reason: a.reason, host: used.host, at: Date.now() });
  };
  if (!plan.ok) {
    all({ type: 'deferred', reply: plan.reply, remoteMta: null, connectionFailure: true });
    tellTls();
    return out;
  }

  for (const group of dsnGroups(hop.recipients)) {
    const first = group[0]!;
    const byAddress = new Map<string, HopRecipient[]>();
    for (const r of group) byAddress.set(r.address, [...(byAddress.get(r.address) ?? []), r]);
    try {
      const report = await ctx.pool.run(
        hop.key,
        () => connectAny(hop, plan.hosts, ctx, plan.tls, (tls, host) => {
          used = { tls, host };
          tried = true;
        }),
        (session) =>
          session
            .send(
              {
                from: message.from,
                to: [...byAddress.keys()],
                size: message.body.length + (message.prefix?.length ?? 0),
                use8BitMime: message.eightBit,
                smtpUtf8: message.smtpUtf8 === true,
                binaryMime: message.binaryMime === true,
                dsn: { ret: message.ret, envid: message.envid, notify: first.notify, orcpt: first.orcpt },
              },
              message.prefix ? [message.prefix, message.body] : message.body,
            )
            .then((r) => {
              used = { tls: session.tls, host: session.remoteName };
              tried = true;
              return { ...r, remote: session.remoteName };
            }),
        hop.connector.maxConnectionsPerDestination ?? undefined,
      );
      if (report === BUSY) {
        all({ type: 'busy', reply: BUSY_REPLY });
        break;
      }
      for (const [address, reply] of report.replies) {
        for (const r of byAddress.get(address) ?? []) out.set(r.index, outcomeFor(reply, report.remote, report.connectionLost, report.dsnSupported));
      }
    } catch (err) {
      if (!(err instanceof SessionOpenError)) throw err;
      // Nobody reachable: the rest of the hop waits for the next try.
      all({ type: 'deferred', reply: err.reply, remoteMta: null, connectionFailure: true });
      break;
    }
  }
  all({ type: 'deferred', reply: localReply(451, '4.0.0', 'Not attempted'), remoteMta: null, connectionFailure: false });
  tellTls();
  return out;
}

/** What a recipient probe learnt: the replies to MAIL FROM and RCPT TO, or why no session was had. */
export type ProbeOutcome =
  | { readonly kind: 'answered'; readonly host: string; readonly mail: Reply; readonly rcpt: Reply | null; readonly notSent?: string | undefined }
  | { readonly kind: 'failed'; readonly reply: Reply };

/**
 * A session for recipient probes (recipientVerification) to a hop: the same hosts, order, TLS
 * policy (MTA-STS, DANE), source address and AUTH as a delivery to it, a session of its own (not
 * the delivery pool: a probe is short and must not wait behind mail). Or why none was had.
 */
export async function openProbeSession(hop: Hop, ctx: HopContext): Promise<{ ok: true; session: SmtpSession } | { ok: false; reply: Reply }> {
  if (hop.target.kind === 'maildir') throw new TypeError(`not an SMTP hop: ${hop.key}`);
  const lookup = await candidates(hop, ctx);
  if (!lookup.ok) return { ok: false, reply: lookup.reply };
  const plan = await outboundTlsPlan(hop, lookup.hosts, ctx);
  if (!plan.ok) return { ok: false, reply: plan.reply };
  try {
    return { ok: true, session: await connectAny(hop, plan.hosts, ctx, plan.tls) };
  } catch (err) {
    if (!(err instanceof SessionOpenError)) throw err;
    return { ok: false, reply: err.reply };
  }
}

/** One probe on an open probe session: MAIL FROM (once per sender) and RCPT TO; a lost connection is a failure. */
export async function probeOn(session: SmtpSession, from: string, to: string): Promise<ProbeOutcome> {
  try {
    return { kind: 'answered', host: session.remoteName, ...(await session.probe(from, to)) };
  } catch (err) {
    session.close();
    return { kind: 'failed', reply: localReply(451, '4.4.2', `Connection to ${session.remoteName}[${session.remoteAddress}] lost during the probe: ${(err as Error).message}`) };
  }
}
