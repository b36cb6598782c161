// The Edge Transport anti-spam agents' decisions, pure like every other stage: connection
// filtering (IP Allow List, IP Allow/Block List Providers, judged at RCPT), sender filtering
// (Set-SenderFilterConfig, at MAIL), whether sender authentication runs for a session, and
// what its SPF/DKIM/DMARC/ARC results mean for the answer to DATA. The lookups themselves
// (DNS, mailauth) are @mailgw/antispam's; they hand their raw results in here.
import { matchDomain, parseIp, rangeContains, type ConfigIssue, type DomainPattern, type IpAddress, type IPAllowListProviderConfig, type IPBlockListProviderConfig, type SenderAuthenticationConfig } from '@mailgw/config';
import { reply, type EnvelopeAddress, type FilterOutcome, type HeaderEdit } from '@mailgw/mail';
import type { CompiledConnector, Policy } from './compile.js';
import { accept, reject, type Decision, type Reason } from './decision.js';
import { antiSpam } from './content.js';
import { REPLIES } from './replies.js';
import type { Session } from './stages.js';
import { fromInternalServer } from './originating-client.js';

/** The header sender filtering stamps under Action StampStatus (Exchange keeps the status in the message's properties; mailgw writes it for the servers behind). */
export const SENDER_FILTER_STAMP = 'X-MS-Exchange-Organization-SenderFilterResult';

// ---------------------------------------------------------------- connection filtering

export type IpListKind = 'block' | 'allow';

/** One DNS list lookup to start when a client connects. */
export interface IpListQuery {
  readonly provider: string;
  readonly list: IpListKind;
  /** The name to look up (A record): the reversed client address under the provider's lookupDomain. */
  readonly name: string;
}

/** What the DNS said to one query (the lookup is @mailgw/antispam's; the judgement is here). */
export interface IpListAnswer extends IpListQuery {
  /** answer: A records; none: NXDOMAIN/NODATA (not listed); timeout / error: the provider is skipped. */
  readonly result: 'answer' | 'none' | 'timeout' | 'error';
  readonly addresses?: readonly string[];
  readonly detail?: string;
}

/** The DNS name of `ip` under `zone`: IPv4 octets reversed, IPv6 nibbles reversed (RFC 5782). */
export function reverseName(ip: IpAddress, zone: string): string {
  const parts: string[] = [];
  if (ip.family === 4) for (let i = 0; i < 4; i++) parts.push(String((ip.value >> BigInt(8 * i)) & 0xffn));
  else for (let i = 0; i < 32; i++) parts.push(((ip.value >> BigInt(4 * i)) & 0xfn).toString(16));
  return `${parts.join('.')}.${zone}`;
}

type Provider = (IPBlockListProviderConfig | IPAllowListProviderConfig) & { readonly list: IpListKind; readonly order: number };

/** Enabled providers of one kind, in Exchange's priority order (lowest first; unset: list position after the set ones). */
function providers(policy: Policy, list: IpListKind): Provider[] {
  const g = policy.config.gateway;
  const configured = list === 'block' ? g.ipBlockListProviders : g.ipAllowListProviders;
  return configured
    .map((p, i) => ({ ...p, list, order: p.priority ?? 1000 + i }))
    .filter((p) => p.enabled)
    .sort((a, b) => a.order - b.order);
}

function onAllowList(policy: Policy, session: Session): string | null {
  return policy.config.gateway.ipAllowList.find((r) => rangeContains(r, session.client))?.text ?? null;
}

/** Whether connection filtering judges this session at all, and why not. */
function connectionFilterExemption(policy: Policy, session: Session): Reason | null {
  const as = antiSpam(session);
  if (!as.applies) return { code: 'connection-filter-bypassed', message: as.reason.message };
  if (fromInternalServer(policy, session)) return { code: 'internal-smtp-server', message: `client ${session.client.text} is one of internalSMTPServers: the host before it is judged at the end of the header` };
  const allowed = onAllowList(policy, session);
  if (allowed) return { code: 'ip-allow-list', message: `client ${session.client.text} is on the IP Allow List (${allowed}): no block list applies` };
  if (!policy.config.gateway.ipBlockListConfig.enabled) return { code: 'block-lists-disabled', message: 'ipBlockListConfig.enabled is false' };
  if (providers(policy, 'block').length === 0) return { code: 'no-block-list', message: 'no IP Block List Provider is configured (or enabled)' };
  return null;
}

/**
 * The DNS list lookups to start when this session connects (none when connection filtering
 * does not judge it: Bypass-Anti-Spam, the IP Allow List, no block list provider). The
 * listener starts them without delaying the greeting and hands the answers to connectionFilter.
 */
export function ipListQueries(policy: Policy, session: Session): IpListQuery[] {
  if (connectionFilterExemption(policy, session)) return [];
  return [...providers(policy, 'allow'), ...providers(policy, 'block')].map((p) => ({ provider: p.name, list: p.list, name: reverseName(session.client, p.lookupDomain) }));
}

const lastOctet = (text: string): number | null => {
  const r = parseIp(text);
  return r.ok && r.value.family === 4 ? Number(r.value.value & 0xffn) : null;
};

/** Whether a provider's answer lists the client, by its anyMatch / bitmaskMatch / ipAddressesMatch. */
export function providerMatches(p: IPBlockListProviderConfig | IPAllowListProviderConfig, addresses: readonly string[]): string | null {
  // RFC 5782: list answers are in 127.0.0.0/8; 127.255.255.0/24 is how lists signal their own
  // errors (Spamhaus: query refused, rate limited), never a listing.
  const answers = addresses.filter((a) => lastOctet(a) !== null && a.startsWith('127.') && !a.startsWith('127.255.255.'));
  if (answers.length === 0) return null;
  if (p.bitmaskMatch !== undefined) {
    const mask = lastOctet(p.bitmaskMatch)!;
    const hit = answers.find((a) => (lastOctet(a)! & mask) !== 0);
    if (hit) return `${hit} matches bitmaskMatch ${p.bitmaskMatch}`;
  }
  if (p.ipAddressesMatch !== undefined) {
    const canonical = (a: string) => {
      const r = parseIp(a);
      return r.ok ? r.value.text : a;
    };
    const hit = answers.find((a) => p.ipAddressesMatch!.includes(canonical(a)));
    if (hit) return `${hit} is in ipAddressesMatch`;
  }
  const any = p.anyMatch ?? (p.bitmaskMatch === undefined && p.ipAddressesMatch === undefined);
  if (any) return `answered ${answers.join(', ')} (anyMatch)`;
  return null;
}

/**
 * Connection filtering at RCPT (Exchange's Connection Filtering agent): a client a block list
 * provider lists is refused 550 5.7.1 for every recipient but the bypassed ones, unless it is
 * on the IP Allow List or an allow list provider lists it, or the session bypasses anti-spam.
 * `answers` are the lookups ipListQueries asked for (a provider that timed out or failed is
 * skipped, never a rejection); `recipient` is the recipient RCPT named.
 */
export function connectionFilter(policy: Policy, session: Session, recipient: Pick<EnvelopeAddress, 'address'>, answers: readonly IpListAnswer[]): Decision {
  const ok = (code: string, message: string) => accept(REPLIES.recipientOk, code, message);
  const exempt = connectionFilterExemption(policy, session);
  if (exempt) return ok(exempt.code, exempt.message);
  const skipped = answers.filter((a) => a.result === 'timeout' || a.result === 'error').map((a) => `${a.list} list provider "${a.provider}" ${a.result === 'timeout' ? 'did not answer in time' : `failed (${a.detail ?? 'error'})`}: skipped`);
  const skippedText = skipped.length ? `; ${skipped.join('; ')}` : '';
  const judged = (p: Provider) => {
    const a = answers.find((x) => x.provider === p.name && x.list === p.list);
    return a && a.result === 'answer' ? providerMatches(p, a.addresses ?? []) : null;
  };
  for (const p of providers(policy, 'allow')) {
    const m = judged(p);
    if (m) return ok('ip-allow-list-provider', `allow list provider "${p.name}" lists ${session.client.text} (${m}): no block list applies${skippedText}`);
  }
  for (const p of providers(policy, 'block')) {
    const m = judged(p);
    if (!m) continue;
    const bypassed = policy.config.gateway.ipBlockListConfig.bypassedRecipients.includes(recipient.address.toLowerCase());
    if (bypassed) return ok('block-list-bypassed-recipient', `block list provider "${p.name}" lists ${session.client.text} (${m}), but ${recipient.address} is in ipBlockListConfig.bypassedRecipients${skippedText}`);
    const r = 'rejectionResponse' in p && p.rejectionResponse ? REPLIES.blockListedCustom(p.rejectionResponse) : REPLIES.blockListed;
    return reject(r, 'ip-block-list-provider', `block list provider "${p.name}" (${p.lookupDomain}) lists ${session.client.text}: ${m}${skippedText}`);
  }
  const missing = providers(policy, 'block').filter((p) => !answers.some((a) => a.provider === p.name && a.list === 'block')).map((p) => p.name);
  return ok('not-block-listed', `no block list provider lists ${session.client.text}${missing.length ? ` (no answer given for ${missing.join(', ')})` : ''}${skippedText}`);
}

// ---------------------------------------------------------------- sender filtering

export interface SenderFilterResult {
  readonly decision: Decision;
  /** Under Action StampStatus, the header to stamp on the message (applied at DATA). */
  readonly stamp: HeaderEdit | null;
}

/**
 * Sender filtering at MAIL (Exchange's Sender Filter agent, Set-SenderFilterConfig): a blocked
 * sender, a sender in a blocked domain (exactly, or with its subdomains), or the null sender
 * under blankSenderBlockingEnabled is refused 554 5.1.0, or accepted with a stamp under
 * StampStatus. Sessions holding Bypass-Anti-Spam are not filtered. `sender` as the MAIL stage
 * parsed it (null for <>).
 */
export function senderFilter(policy: Policy, session: Session, sender: EnvelopeAddress | null): SenderFilterResult {
  const cfg = policy.config.gateway.senderFilterConfig;
  const ok = (code: string, message: string): SenderFilterResult => ({ decision: accept(REPLIES.senderOk, code, message), stamp: null });
  const as = antiSpam(session);
  if (!as.applies) return ok('sender-filter-bypassed', as.reason.message);
  if (!cfg.enabled) return ok('sender-filter-disabled', 'senderFilterConfig.enabled is false');
  let why: { status: string; text: string } | null = null;
  if (sender === null) {
    if (cfg.blankSenderBlockingEnabled) why = { status: 'BlankSender', text: 'the null sender <> is blocked (blankSenderBlockingEnabled)' };
  } else {
    const address = `${sender.local.toLowerCase()}@${sender.domain}`;
    const domain = sender.domain;
    if (cfg.blockedSenders.includes(address)) why = { status: 'BlockedSender', text: `${address} is in senderFilterConfig.blockedSenders` };
    else if (cfg.blockedDomains.some((d) => d.domain === domain)) why = { status: 'BlockedDomain', text: `${domain} is in senderFilterConfig.blockedDomains` };
    else {
      const i = matchDomain(domain, cfg.blockedDomainsAndSubdomains.map((d) => ({ ...d, wildcard: true })));
      if (i >= 0) why = { status: 'BlockedDomain', text: `${domain} is ${domain === cfg.blockedDomainsAndSubdomains[i]!.domain ? '' : 'under '}${cfg.blockedDomainsAndSubdomains[i]!.domain} in senderFilterConfig.blockedDomainsAndSubdomains` };
    }
  }
  if (!why) return ok('sender-not-blocked', 'the sender is not blocked by sender filtering');
  if (cfg.action === 'StampStatus') {
    return { decision: accept(REPLIES.senderOk, 'sender-filter-stamped', `${why.text}; action StampStatus: accepted, stamped ${SENDER_FILTER_STAMP}: ${why.status}`), stamp: { op: 'add', name: SENDER_FILTER_STAMP, value: why.status } };
  }
  return { decision: reject(REPLIES.senderDenied, 'sender-filtered', `${why.text}; action Reject`), stamp: null };
}

// ---------------------------------------------------------------- sender authentication

/** A filter's kind: the policy decides per session whether it runs (content-filter.ts filterPlan). */
export const SENDER_AUTHENTICATION_KIND = 'sender-authentication';

/**
 * Whether SPF/DKIM/DMARC/ARC are verified for this session's mail: never under
 * Bypass-Anti-Spam, not when gateway senderAuthentication.enabled is false, else as the
 * connector's senderAuthenticationEnabled says (default: usage Internet only).
 */
export function senderAuthentication(policy: Policy, session: Session): { readonly applies: boolean; readonly reason: Reason } {
  if (!policy.config.gateway.senderAuthentication.enabled) {
    const as = antiSpam(session);
    return { applies: false, reason: as.applies ? { code: 'sender-authentication-disabled', message: 'gateway senderAuthentication.enabled is false' } : { code: 'sender-authentication-bypassed', message: as.reason.message } };
  }
  return senderAuthenticationOnConnector(session);
}

/** A connector's senderAuthenticationEnabled, or its default: on for usage Internet only. */
export function connectorVerifiesSenders(c: Pick<CompiledConnector, 'config'>): boolean {
  return c.config.senderAuthenticationEnabled ?? c.config.usage === 'Internet';
}

/** The per-session half of senderAuthentication (the gateway switch decides whether the filter exists at all). */
export function senderAuthenticationOnConnector(session: Session): { readonly applies: boolean; readonly reason: Reason } {
  const as = antiSpam(session);
  if (!as.applies) return { applies: false, reason: { code: 'sender-authentication-bypassed', message: as.reason.message } };
  const c = session.connector;
  const own = c.config.senderAuthenticationEnabled;
  const on = connectorVerifiesSenders(c);
  const source = own === undefined ? `the default for usage ${c.config.usage}` : `senderAuthenticationEnabled: ${own}`;
  return on
    ? { applies: true, reason: { code: 'sender-authentication-runs', message: `SPF, DKIM, DMARC and ARC are verified on connector "${c.name}" (${source})` } }
    : { applies: false, reason: { code: 'sender-authentication-off', message: `connector "${c.name}" does not verify senders (${source})` } };
}


/** What the verification found (from mailauth's answer, reduced to what the decision needs). */
export interface SenderAuthResults {
  readonly spf: { readonly result: string; readonly domain: string };
  readonly dkim: ReadonlyArray<{ readonly result: string; readonly domain: string }>;
  /** null: no From domain to judge (no DMARC evaluation). */
  readonly dmarc: { readonly result: string; readonly domain: string; readonly policy: string | null } | null;
  readonly arc: ArcResults | null;
  /** The Authentication-Results value (without the field name), our authserv-id first. */
  readonly authenticationResults: string;
  /** The Received-SPF value, when there is one. */
  readonly receivedSpf: string | null;
}

/** ARC (RFC 8617) as verified here, with what the newest ARC set says (its sealer and its word on DMARC). */
export interface ArcResults {
  /** pass: the whole chain verifies and the newest ARC-Message-Signature matches the message as it is. */
  readonly result: string;
  /** The newest ARC set's instance (i=) and its ARC-Seal d=; null without a chain. */
  readonly instance: number | null;
  readonly sealer: string | null;
  /** What that set's ARC-Authentication-Results recorded about DMARC: result and header.from. */
  readonly sealerDmarc: { readonly result: string; readonly from: string } | null;
}

const TEMP = new Set(['temperror', 'temperr']);

/**
 * Exchange Online's trusted ARC sealers: a DMARC fail is taken back when the ARC chain passes,
 * the newest ARC set was sealed by a listed domain, and that sealer recorded dmarc=pass for the
 * same From domain (a forwarder or list that changed the message after checking it). Only the
 * newest set counts: an older set's seal covers only the ARC fields, not the message, so a
 * later, untrusted hop could have rewritten a message a trusted sealer once saw pass. Returns
 * why the fail is taken back, or null.
 */
export function trustedArcOverride(trusted: readonly DomainPattern[], r: Pick<SenderAuthResults, 'dmarc' | 'arc'>): string | null {
  const a = r.arc;
  const d = r.dmarc;
  if (!d || d.result !== 'fail' || !a || a.result !== 'pass' || !a.sealer || trusted.length === 0) return null;
  const sealer = a.sealer.toLowerCase();
  const i = matchDomain(sealer, trusted);
  if (i < 0) return null;
  const said = a.sealerDmarc;
  if (!said || said.result.toLowerCase() !== 'pass' || said.from.toLowerCase() !== d.domain.toLowerCase()) return null;
  return `trusted ARC sealer ${sealer} (arcTrustedSealers ${trusted[i]!.text}) recorded dmarc=pass for ${d.domain} in ARC set i=${a.instance ?? '?'}`;
}

/**
 * The answer to DATA from the authentication results, Exchange-style, first match wins:
 * DMARC fail with p=reject → dmarcRejectAction (reject 550 5.7.1 by default); a DNS failure
 * that leaves DMARC undecided → tempErrorAction (accept and stamp by default, or 451 4.7.5);
 * DMARC fail with p=quarantine → dmarcQuarantineAction (stamp by default); SPF fail →
 * spfFailAction (stamp by default, as the Sender ID agent's StampStatus). The
 * Authentication-Results header (and Received-SPF) is added on top whatever the verdict.
 */
export function senderAuthenticationOutcome(cfg: Pick<SenderAuthenticationConfig, 'spfFailAction' | 'dmarcRejectAction' | 'dmarcQuarantineAction' | 'tempErrorAction'> & { readonly arcTrustedSealers: readonly DomainPattern[] }, r: SenderAuthResults, filter = 'sender-authentication'): FilterOutcome {
  const headers: HeaderEdit[] = [{ op: 'add', name: 'Authentication-Results', value: r.authenticationResults, top: true }];
  if (r.receivedSpf) headers.push({ op: 'add', name: 'Received-SPF', value: r.receivedSpf, top: true });
  const summary = `spf=${r.spf.result} (${r.spf.domain}) dkim=${r.dkim.length ? r.dkim.map((d) => `${d.result}(${d.domain})`).join(',') : 'none'} dmarc=${r.dmarc ? `${r.dmarc.result}${r.dmarc.policy ? ` p=${r.dmarc.policy}` : ''} (${r.dmarc.domain})` : 'none'} arc=${r.arc?.result ?? 'none'}${r.arc?.sealer ? ` (i=${r.arc.instance ?? '?'} ${r.arc.sealer})` : ''}`;
  const act = (action: 'reject' | 'delete' | 'quarantine' | 'stamp' | 'tempfail' | 'accept', why: string, rejectReply?: ReturnType<typeof reply>): FilterOutcome => {
    const reason = `${summary}: ${why}, action ${action}`;
    if (action === 'reject') return { filter, verdict: 'reject', reply: rejectReply, headers: [], reason };
    // Exchange's Sender ID action Delete: answered 250, delivered to nobody (the forger learns nothing).
    if (action === 'delete') return { filter, verdict: 'discard', headers: [], reason };
    if (action === 'tempfail') return { filter, verdict: 'tempfail', reply: REPLIES.authTempError, headers: [], reason };
    if (action === 'quarantine') return { filter, verdict: 'quarantine', headers, reason };
    return { filter, verdict: 'accept', headers, reason };
  };
  // A fail a trusted ARC sealer vouches for counts as a pass from here on (no DMARC action, and
  // SPF's fail is then not acted on either, as for any message that passes DMARC).
  const overridden = trustedArcOverride(cfg.arcTrustedSealers, r);
  if (overridden) return act('accept', `${r.dmarc!.domain} fails DMARC${r.dmarc!.policy ? ` (p=${r.dmarc!.policy})` : ''}, taken as a pass: ${overridden}`);
  const d = r.dmarc;
  if (d && d.result === 'fail' && d.policy === 'reject') return act(cfg.dmarcRejectAction, `${d.domain} fails DMARC and publishes p=reject`, REPLIES.dmarcReject(d.domain));
  const dmarcUndecided = !d || d.result !== 'pass';
  const temp = (d && TEMP.has(d.result)) || (dmarcUndecided && (TEMP.has(r.spf.result) || r.dkim.some((k) => TEMP.has(k.result))));
  if (temp) return act(cfg.tempErrorAction === 'tempfail' ? 'tempfail' : 'accept', 'a DNS lookup failed (temperror) and DMARC could not pass');
  if (d && d.result === 'fail' && d.policy === 'quarantine') return act(cfg.dmarcQuarantineAction, `${d.domain} fails DMARC and publishes p=quarantine`, REPLIES.dmarcQuarantineReject(d.domain));
  if (r.spf.result === 'fail' && !(d && d.result === 'pass')) return act(cfg.spfFailAction, `the SPF record of ${r.spf.domain} does not permit the client`, REPLIES.spfFail(r.spf.domain));
  return act('accept', d?.result === 'pass' ? 'DMARC passes' : 'nothing fails that a policy acts on');
}

// ---------------------------------------------------------------- configuration warnings

/** Anti-spam settings that cannot do anything as configured: reported by `mailgw check` and at start, naming file and key. */
export function antispamWarnings(policy: Pick<Policy, 'config' | 'connectors'>): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const g = policy.config.gateway;
  const file = policy.config.gatewayFile;
  for (const c of policy.connectors) {
    if (c.config.senderAuthenticationEnabled !== true || !c.config.enabled) continue;
    if (!g.senderAuthentication.enabled) out.push({ file: c.config.file, path: 'senderAuthenticationEnabled', message: `has no effect: gateway senderAuthentication.enabled is false (${file})` });
    else if (c.initialRights.rights.has('ms-Exch-Bypass-Anti-Spam')) out.push({ file: c.config.file, path: 'senderAuthenticationEnabled', message: `has no effect for connector "${c.name}": its sessions hold ms-Exch-Bypass-Anti-Spam (${c.initialRights.grantedBy.get('ms-Exch-Bypass-Anti-Spam')!.join('; ')}), which skips sender authentication` });
  }
  const blocking = g.ipBlockListConfig.enabled && g.ipBlockListProviders.some((p) => p.enabled);
  if (!blocking && g.ipAllowListProviders.length > 0) out.push({ file, path: 'ipAllowListProviders', message: 'has no effect: no IP Block List Provider is enabled, so there is nothing to allow past' });
  for (const c of policy.connectors) {
    if (c.config.senderReputationEnabled !== true || !c.config.enabled) continue;
    if (!g.senderReputationConfig.enabled) out.push({ file: c.config.file, path: 'senderReputationEnabled', message: `has no effect: gateway senderReputationConfig.enabled is false (${file})` });
    else if (c.initialRights.rights.has('ms-Exch-Bypass-Anti-Spam')) out.push({ file: c.config.file, path: 'senderReputationEnabled', message: `has no effect for connector "${c.name}": its sessions hold ms-Exch-Bypass-Anti-Spam (${c.initialRights.grantedBy.get('ms-Exch-Bypass-Anti-Spam')!.join('; ')}), which skips sender reputation` });
  }
  // Only what sender authentication stamped on arrival is sealed.
  const seal = g.senderAuthentication.arcSeal;
  if (seal) {
    const verifying = policy.connectors.some((c) => c.config.enabled && connectorVerifiesSenders(c) && !c.initialRights.rights.has('ms-Exch-Bypass-Anti-Spam'));
    if (!g.senderAuthentication.enabled) out.push({ file, path: 'senderAuthentication.arcSeal', message: 'has no effect: senderAuthentication.enabled is false, so no message is authenticated on arrival and none is sealed' });
    else if (!verifying) out.push({ file, path: 'senderAuthentication.arcSeal', message: 'has no effect: no enabled connector verifies senders (senderAuthenticationEnabled, default true for usage Internet), so no message is sealed' });
  }
  const sr = g.senderReputationConfig;
  if (sr.enabled && !g.rspamd && !g.transportRules.some((r) => r.enabled && r.actions.setScl !== undefined)) {
    out.push({ file, path: 'senderReputationConfig.enabled', message: 'no content filter gives messages an SCL (rspamd, or a transport rule with setScl): sender reputation counts no spam, only HELOs and reverse DNS' });
  }
  return out;
}
