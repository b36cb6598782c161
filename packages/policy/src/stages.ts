// One pure function per SMTP stage. Each returns a Decision (verdict, exact reply, reason);
// the listener only speaks what these return. Order of checks follows Exchange.
import { matchDomain, normaliseClientIp, normaliseDomain, rangeContains, rangeSize, type AcceptedDomainType, type ExtendedRight, type IpAddress, type IpRange } from '@mailgw/config';
import { addressKey, formatAddress, parseEnvelopeAddress, type DsnNotify, type EnvelopeAddress, type EnvelopeRecipient, type HeaderEdit } from '@mailgw/mail';
import type { CompiledConnector, CompiledUser, Policy } from './compile.js';
import { accept, reject, type Decision } from './decision.js';
import { REPLIES, type Reply } from './replies.js';
import { deliveryRestrictionVerdict, dnName, groupPrincipals, type DeliveryRestrictions, type DirectoryAnswer, type DirectoryIdentity, type MembershipAnswer } from './directory.js';
import { effectiveRights, userPrincipal, type EffectiveRights, type PrincipalKey } from './rights.js';
import type { SendAsAnswer } from './send-as.js';

/** What a session is at a moment: who it is, on which connector, with which rights. Immutable. */
export interface Session {
  readonly connector: CompiledConnector;
  readonly client: IpAddress;
  readonly tls: boolean;
  /** The authenticated user, if any. */
  readonly user: CompiledUser | null;
  readonly principals: readonly PrincipalKey[];
  readonly rights: EffectiveRights;
  /** Client is on relayDeniedIPRanges: never relays, whatever its rights. */
  readonly relayDenied: string | null;
  /** Domain security: the partner domain the client's certificate proved (the session acts as Partner Servers too). */
  readonly partnerDomain?: string;
  /** The organisation's limits (gateway.yaml), as the policy had them when the connection began; absent: none. */
  readonly organization?: OrganizationLimits;
}

/**
 * Exchange's organisation-wide limits (Set-TransportConfig -MaxSendSize, -MaxReceiveSize,
 * -MaxRecipientEnvelopeLimit; gateway.yaml's keys of the same names); null: unlimited.
 */
export interface OrganizationLimits {
  readonly maxSendSize: number | null;
  readonly maxReceiveSize: number | null;
  readonly maxRecipientEnvelopeLimit: number | null;
}

export function organizationLimits(policy: Policy): OrganizationLimits {
  const g = policy.config.gateway;
  return { maxSendSize: g.maxSendSize, maxReceiveSize: g.maxReceiveSize, maxRecipientEnvelopeLimit: g.maxRecipientEnvelopeLimit };
}

/** A limit on a message's size, what answers a message over it, and whose limit it is (for the log). */
export interface SizeLimit {
  readonly bytes: number;
  readonly reply: Reply;
  readonly code: string;
  readonly of: string;
}

/**
 * The largest message this session may send: a logged-on directory user's own MaxSendSize, which
 * overrides the organisation's (Exchange: limits of authenticated senders are exempt from the
 * organisational ones), else the organisation's maxSendSize, which Exchange also applies to
 * senders outside (anonymous). Sessions with ms-Exch-Bypass-Message-Size-Limit (Exchange
 * servers) are exempt from the organisation's, as from the connector's. null: none.
 */
export function senderSizeLimit(session: Session): SizeLimit | null {
  const own = session.user?.directory?.maxSendSize;
  if (own !== undefined) return { bytes: own, reply: REPLIES.senderSizeLimit, code: 'sender-size-limit', of: `the ${own}-byte limit of directory user ${session.user!.name} (its MaxSendSize)` };
  const org = session.organization?.maxSendSize ?? null;
  if (org === null || has(session, 'ms-Exch-Bypass-Message-Size-Limit')) return null;
  return { bytes: org, reply: REPLIES.organizationSizeLimit, code: 'sender-size-limit-org', of: `the organisation's maxSendSize (${org} bytes)` };
}

/** A recipient's largest message: its own (the directory's MaxReceiveSize) or the organisation's maxReceiveSize. */
export interface ReceiveLimit {
  readonly bytes: number;
  readonly organization: boolean;
}

/**
 * The largest message a recipient takes in this session, from its own limit (`own`, the
 * directory's MaxReceiveSize; null: none) and the organisation's maxReceiveSize. As Exchange:
 * between authenticated senders and recipients the recipient's own limit overrides the
 * organisation's (a larger one too); from anonymous senders the smaller applies; a recipient
 * without one, inside or outside, has the organisation's. ms-Exch-Bypass-Message-Size-Limit
 * exempts from the organisation's. null: no limit.
 */
export function receiveLimit(session: Session, own: number | null): ReceiveLimit | null {
  const org = has(session, 'ms-Exch-Bypass-Message-Size-Limit') ? null : session.organization?.maxReceiveSize ?? null;
  if (own === null) return org === null ? null : { bytes: org, organization: true };
  if (org === null || own <= org || authenticatedSender(session).authenticated) return { bytes: own, organization: false };
  return { bytes: org, organization: true };
}

function receiveLimitOf(limit: ReceiveLimit, address: string): string {
  return limit.organization ? `the organisation's maxReceiveSize (${limit.bytes} bytes), which applies to ${address}` : `the ${limit.bytes}-byte limit of ${address} (its directory object's MaxReceiveSize)`;
}

export function has(session: Session, right: ExtendedRight): boolean {
  return session.rights.rights.has(right);
}

function who(s: Session): string {
  return s.user ? `user ${s.user.name}` : s.connector.externallySecured ? 'externally secured session' : s.partnerDomain ? `domain-secured session (${s.partnerDomain})` : 'anonymous session';
}

function firstRange(ranges: readonly IpRange[], ip: IpAddress): IpRange | undefined {
  return ranges.find((r) => rangeContains(r, ip));
}

// ---------------------------------------------------------------- connect

export interface ConnectInput {
  /** Local address of the accepted socket. */
  readonly localAddress: string;
  readonly localPort: number;
  /** Client address (after a trusted PROXY header, if any). */
  readonly clientIP: string;
}

export type ConnectResult = { decision: Decision; session: Session | null; matchedRange: IpRange | null };

/**
 * Which connector serves a connection: among enabled connectors bound to this port on this
 * address (or the wildcard), the one with the smallest remote range containing the client;
 * on a tie the exact-address binding beats the wildcard.
 */
export function connect(policy: Policy, input: ConnectInput): ConnectResult {
  const client = normaliseClientIp(input.clientIP);
  const local = normaliseClientIp(input.localAddress);
  if (!client || !local) {
    return { decision: reject(REPLIES.noConnector(input.clientIP), 'bad-address', `cannot parse client ${input.clientIP} or local ${input.localAddress}`, true), session: null, matchedRange: null };
  }
  const blocked = firstRange(policy.blockedIPRanges, client);
  if (blocked) {
    return { decision: reject(REPLIES.blockedClient(client.text), 'blocked-ip', `client ${client.text} is in blockedIPRanges (${blocked.text})`, true), session: null, matchedRange: null };
  }

  let best: { c: CompiledConnector; range: IpRange; size: bigint; exact: boolean } | null = null;
  for (const c of policy.connectors) {
    if (!c.config.enabled) continue;
    let exact: boolean | null = null;
    for (const b of c.config.bindings) {
      if (b.port !== input.localPort) continue;
      if (!b.wildcard && b.ip.family === local.family && b.ip.value === local.value) exact = true;
      else if (b.wildcard && (b.family === 6 || local.family === 4)) exact ??= false;
    }
    if (exact === null) continue;
    for (const r of c.config.remoteIPRanges) {
      if (!rangeContains(r, client)) continue;
      const size = rangeSize(r);
      const better =
        !best || size < best.size || (size === best.size && exact && !best.exact) || (size === best.size && exact === best.exact && c.name < best.c.name);
      if (better) best = { c, range: r, size, exact };
    }
  }
  if (!best) {
    return {
      decision: reject(REPLIES.noConnector(client.text), 'no-connector', `no enabled connector on port ${input.localPort} at ${local.text} has a remote IP range containing ${client.text}`, true),
      session: null,
      matchedRange: null,
    };
  }
  const c = best.c;
  const denied = firstRange(policy.relayDeniedIPRanges, client);
  const session: Session = {
    connector: c,
    client,
    tls: c.config.implicitTLS,
    user: null,
    principals: c.initialPrincipals,
    rights: c.initialRights,
    relayDenied: denied ? denied.text : null,
    organization: organizationLimits(policy),
  };
  const how = best.exact ? 'exact-address binding' : 'wildcard binding';
  return {
    decision: accept(REPLIES.serverReady, 'connector-selected', `connector "${c.name}" (${c.config.file}) serves ${client.text}: smallest matching remote range ${best.range.text} on a ${how}`),
    session,
    matchedRange: best.range,
  };
}

// ---------------------------------------------------------------- HELO / EHLO

/**
 * The HELO/EHLO argument: one word without control characters (what smtp-server refuses too),
 * and under requireEHLODomain a domain name or an address literal.
 */
export function helo(session: Session, args: readonly string[]): Decision {
  const arg = args[0] ?? '';
  // eslint-disable-next-line no-control-regex
  if (args.length !== 1 || arg.length === 0 || arg.length > 255 || /[\x00-\x1f\x7f-\x9f]/.test(arg)) {
    return reject(REPLIES.invalidArguments, 'helo-syntax', 'HELO/EHLO takes exactly one argument of printable characters (at most 255)');
  }
  if (session.connector.config.requireEHLODomain && !normaliseDomain(arg).ok) {
    return reject(REPLIES.ehloDomainRequired, 'helo-not-domain', `connector "${session.connector.name}" has requireEHLODomain and "${arg}" is neither a domain nor an address literal`);
  }
  return accept(REPLIES.hello(session.connector.config.fqdn, session.client.text), 'helo-ok', `greeted as ${arg}`);
}

// ---------------------------------------------------------------- STARTTLS / AUTH

export interface StartTlsInput {
  /** Words after STARTTLS (it takes none). */
  readonly args?: number;
  /** The connector's certificate is loaded (false: a temporary failure, 454). Default true. */
  readonly certificateAvailable?: boolean;
}

export function startTls(session: Session, input: StartTlsInput = {}): Decision {
  if ((input.args ?? 0) > 0) return reject(REPLIES.invalidArguments, 'tls-syntax', 'STARTTLS takes no arguments');
  if (!session.connector.offersTls) return reject(REPLIES.unrecognizedCommand, 'tls-not-offered', `connector "${session.connector.name}" has no Tls in authMechanism`);
  if (session.tls) return reject(REPLIES.unrecognizedCommand, 'tls-active', 'TLS is already active');
  if (input.certificateAvailable === false) return reject(REPLIES.tlsNotAvailable, 'tls-no-certificate', `connector "${session.connector.name}" has no certificate loaded`);
  return accept(REPLIES.startTlsReady, 'tls-start', 'STARTTLS offered by the connector');
}

/** RSET (RFC 5321 4.1.1.5) takes no argument: 501 as Postfix answers; otherwise the transaction is reset. */
export function rset(_session: Session, line: string): Decision {
  if (/^RSET[ \t]+\S/i.test(line)) return reject(REPLIES.invalidArguments, 'rset-syntax', 'RSET takes no arguments (RFC 5321 4.1.1.5)');
  return accept(REPLIES.resetting, 'rset', 'the transaction is reset');
}

export interface BdatCommand {
  readonly decision: Decision;
  /** The chunk announced, when the command is one. */
  readonly chunk: { readonly size: number; readonly last: boolean } | null;
}

/**
 * BDAT <size> [LAST] (RFC 3030): a command only where the connector offers CHUNKING, and its
 * syntax. Whether the transaction may take the chunk is dataCommand's (with command BDAT).
 */
export function bdatCommand(session: Session, line: string): BdatCommand {
  const c = session.connector;
  if (!c.config.chunkingEnabled) return { decision: reject(REPLIES.unrecognizedCommand, 'chunking-not-offered', `connector "${c.name}" has chunkingEnabled: false, so BDAT is not a command there`), chunk: null };
  const m = /^BDAT[ \t]+(\d{1,15})(?:[ \t]+(LAST))?[ \t]*$/i.exec(line);
  if (!m) return { decision: reject(REPLIES.invalidArguments, 'bdat-syntax', 'BDAT takes the chunk size in octets and optionally LAST (RFC 3030 2)'), chunk: null };
  const chunk = { size: Number(m[1]), last: m[2] !== undefined };
  return { decision: accept(REPLIES.chunkReceived(chunk.size), 'bdat-chunk', `a chunk of ${chunk.size} octets${chunk.last ? ', the last' : ''}`), chunk };
}

export function withTls(session: Session): Session {
  return { ...session, tls: true };
}

/** The client's certificate after STARTTLS, as the TLS handshake left it. */
export interface ClientCertificate {
  /** The chain is trusted (system CAs and domainSecureCAFile) and the certificate valid now. */
  readonly authorized: boolean;
  /** Why not, as OpenSSL says it (e.g. SELF_SIGNED_CERT_IN_CHAIN), when not. */
  readonly authorizationError: string | null;
  /** Its DNS subject alternative names, or its common name when it has none. */
  readonly names: readonly string[];
}

/**
 * Domain security (Exchange's mutual TLS): on a connector with domainSecureEnabled, a client
 * whose trusted certificate names a domain of tlsReceiveDomainSecureList (the domain itself, as
 * Exchange asks) acts as Partner Servers besides what it was: it gets the rights the connector
 * gives Partners, and its mail is marked domain secured. Anything less leaves the session as it
 * was (Exchange accepts such mail unauthenticated and logs it). Null: not a domain-secure connector.
 */
export function domainSecurity(policy: Policy, session: Session, cert: ClientCertificate | null): { decision: Decision; session: Session } | null {
  if (!session.connector.config.domainSecureEnabled) return null;
  const list = policy.config.gateway.tlsReceiveDomainSecureList;
  const stays = (why: string) => ({ decision: accept(REPLIES.startTlsReady, 'not-domain-secured', why), session });
  if (!cert) return stays('the client gave no certificate: not domain secured');
  const names = cert.names.map((n) => n.toLowerCase().replace(/\.$/, ''));
  if (!cert.authorized) return stays(`the client's certificate (${names.join(', ') || 'no names'}) is not trusted (${cert.authorizationError ?? 'unknown reason'}): not domain secured`);
  const domain = list.find((d) => names.includes(d));
  if (!domain) return stays(`the client's certificate names ${names.join(', ') || 'nothing'}, no domain of tlsReceiveDomainSecureList: not domain secured`);
  const principals: PrincipalKey[] = session.principals.includes('Partners') ? [...session.principals] : [...session.principals, 'Partners'];
  const rights = effectiveRights(session.connector.acl, principals);
  return { decision: accept(REPLIES.startTlsReady, 'domain-secured', `domain secured for ${domain} (client certificate trusted); acts as Partner Servers; rights: ${[...rights.rights].join(', ') || 'none'}`), session: { ...session, principals, rights, partnerDomain: domain } };
}

/**
 * The header fields that mark a domain-secured session's message: Exchange's own (the
 * Exchange servers behind show it as domain secured when they trust this gateway's headers)
 * and the partner domain for everyone else. None for other sessions.
 */
export function domainSecureStamps(session: Session): HeaderEdit[] {
  if (!session.partnerDomain) return [];
  return [
    { op: 'add', name: 'X-MS-Exchange-Organization-AuthAs', value: 'Partner' },
    { op: 'add', name: 'X-MS-Exchange-Organization-AuthSource', value: session.connector.config.fqdn },
    { op: 'add', name: 'X-Mailgw-Domain-Secured', value: session.partnerDomain },
  ];
}

/** SASL mechanisms to advertise in EHLO right now. */
export function authMechanisms(session: Session): string[] {
  const c = session.connector;
  if (session.user || !c.offersBasicAuth) return [];
  if (c.basicAuthRequiresTls && !session.tls) return [];
  return ['PLAIN', 'LOGIN'];
}

/** May the client start AUTH with this mechanism now? */
export function authStart(session: Session, mechanism: string): Decision {
  const c = session.connector;
  const m = mechanism.toUpperCase();
  if (session.user) return reject(REPLIES.alreadyAuthenticated, 'auth-already', `already authenticated as ${session.user.name} (RFC 4954: one AUTH per session)`);
  if (!c.offersBasicAuth || (m !== 'PLAIN' && m !== 'LOGIN')) {
    return reject(REPLIES.authUnrecognized, 'auth-mechanism-not-offered', `connector "${c.name}" offers ${c.offersBasicAuth ? 'PLAIN and LOGIN only' : 'no AUTH (no BasicAuth in authMechanism)'}`);
  }
  if (c.basicAuthRequiresTls && !session.tls) {
    return reject(REPLIES.authUnrecognized, 'auth-requires-tls', `connector "${c.name}" has BasicAuthRequireTLS: AUTH only after STARTTLS`);
  }
  return accept(REPLIES.authSuccess, 'auth-allowed', `${m} allowed on connector "${c.name}"`);
}

/**
 * Outcome of credential verification (done by the listener, in constant time). On success the
 * session's rights become those the connector gives Authenticated Users and the user itself.
 */
export function authComplete(policy: Policy, session: Session, username: string, credentialsValid: boolean): { decision: Decision; session: Session } {
  const user = policy.users.get(username.toLowerCase());
  if (!credentialsValid || !user) {
    return { decision: reject(REPLIES.authFailed, 'auth-failed', `AUTH as "${username}" failed (wrong password or unknown user)`), session };
  }
  const principals: PrincipalKey[] = ['AuthenticatedUsers', userPrincipal(user.name)];
  const rights = effectiveRights(session.connector.acl, principals);
  const next: Session = { ...session, user, principals, rights };
  return { decision: accept(REPLIES.authSuccess, 'auth-ok', `authenticated as ${user.name}; rights: ${[...rights.rights].join(', ') || 'none'}`), session: next };
}

/** What the directory said about a login and password (after local users did not know the name). */
export type DirectoryLogon =
  | { readonly kind: 'ok'; readonly identity: DirectoryIdentity }
  | { readonly kind: 'invalid'; readonly why: string }
  | { readonly kind: 'unavailable'; readonly why: string };

/**
 * AUTH decided by the directory: a bound user acts as Authenticated Users, itself and each of
 * its groups (by DN and by name), so grants to groups apply and a deny to any of them wins; it
 * may send as its directory addresses. An outage is 454 4.7.0, never 535.
 */
export function authDirectory(session: Session, logon: DirectoryLogon): { decision: Decision; session: Session } {
  if (logon.kind === 'unavailable') {
    return { decision: reject(REPLIES.authTemporaryFailure, 'auth-directory-unavailable', `the directory could not be asked: ${logon.why}`), session };
  }
  if (logon.kind === 'invalid') return { decision: reject(REPLIES.authFailed, 'auth-failed', `directory logon failed: ${logon.why}`), session };
  const id = logon.identity;
  const user: CompiledUser = { name: id.login, passwordHash: '', addresses: new Set(id.addresses), directory: { dn: id.dn, groups: id.groups, ...(id.maxSendSize !== undefined ? { maxSendSize: id.maxSendSize } : {}), ...(id.recipientLimits !== undefined ? { recipientLimits: id.recipientLimits } : {}), ...(id.sids ? { sids: id.sids } : {}) } };
  const principals: PrincipalKey[] = ['AuthenticatedUsers', userPrincipal(id.login), ...groupPrincipals(id.groups)];
  const rights = effectiveRights(session.connector.acl, principals);
  const next: Session = { ...session, user, principals, rights };
  return {
    decision: accept(REPLIES.authSuccess, 'auth-ok-directory', `authenticated by the directory as ${id.dn}; groups: ${id.groups.map(dnName).join(', ') || 'none'}; rights: ${[...rights.rights].join(', ') || 'none'}`),
    session: next,
  };
}

/**
 * The per-address AUTH backoff (gateway.yaml authBackoff): with `recentFailures` failed
 * attempts from the client within the window (counted by the listeners, shared in Redis),
 * AUTH is refused before the credentials are looked at.
 */
export function authBackoff(policy: Policy, session: Session, recentFailures: number): Decision {
  const b = policy.config.gateway.authBackoff;
  if (b.failures > 0 && recentFailures >= b.failures) {
    return reject(REPLIES.authTemporaryFailure, 'auth-backoff', `refused: ${b.failures} or more failed AUTH attempts from ${session.client.text} within ${b.window} ms`);
  }
  return accept(REPLIES.authSuccess, 'auth-backoff-clear', `${recentFailures} failed AUTH attempts from ${session.client.text} within ${b.window} ms (authBackoff allows ${b.failures || 'any number'})`);
}

/**
 * maxLogonFailures: `failures` failed AUTH attempts on this connection so far, this one
 * included. The limit-th is answered 421 4.7.0 and the connection closes (0 = no limit);
 * before that the failure is answered with its own reply (`failed`).
 */
export function logonFailure(session: Session, failures: number, failed: Decision): Decision {
  const max = session.connector.config.maxLogonFailures;
  if (max > 0 && failures >= max) {
    return reject(REPLIES.tooManyErrors, 'too-many-logon-failures', `${failures} failed AUTH attempts on this connection reach maxLogonFailures ${max} of connector "${session.connector.name}" (last: ${failed.reason.message})`, true);
  }
  return failed;
}

// ---------------------------------------------------------------- every reply

/** Replies that count against maxProtocolErrors: syntax and sequence errors (500-504). */
export function isProtocolError(r: Reply): boolean {
  return r.code >= 500 && r.code <= 504;
}

/**
 * maxProtocolErrors, judged on every reply the connection is about to send. `errorsBefore`
 * protocol errors were answered already; returns how many there are with this one and what
 * to say: the reply itself, or, past the limit, 421 4.7.0 and close.
 */
export function protocolErrors(session: Session, r: Reply, errorsBefore: number): { decision: Decision; errors: number } {
  if (!isProtocolError(r)) return { decision: accept(r, 'not-a-protocol-error', `${r.code} is not a syntax or sequence error`), errors: errorsBefore };
  const errors = errorsBefore + 1;
  const max = session.connector.config.maxProtocolErrors;
  if (max !== null && errors > max) {
    return { decision: reject(REPLIES.tooManyErrors, 'too-many-protocol-errors', `protocol error ${errors} exceeds maxProtocolErrors ${max} of connector "${session.connector.name}"`, true), errors };
  }
  return { decision: accept(r, 'protocol-error', `protocol error ${errors} of ${max ?? 'unlimited'} allowed by connector "${session.connector.name}"`), errors };
}

/**
 * The gateway's own trouble rather than the client's doing: RFC 3463's mail system statuses
 * (4.3.x: back pressure's 4.3.1, a queue that cannot be written, 4.3.0) and a directory that does
 * not answer (4.4.3).
 */
export const isGatewayTrouble = (r: Reply): boolean => r.code < 500 && (/^4\.3\.\d+$/.test(r.enhanced ?? '') || r.enhanced === '4.4.3');

/**
 * tarpitInterval: how long to hold `r` back. Error replies (4xx/5xx) to a session that is not
 * authenticated are delayed; a reply after which the connection closes is not (nothing is
 * left to slow down), nor one that reports the gateway's own trouble: the client did nothing
 * to earn it, and holding it back would keep a connection open while resources are short.
 */
export function tarpit(session: Session, r: Reply, closing: boolean): { decision: Decision; delayMs: number } {
  const interval = session.connector.config.tarpitInterval;
  const none = (code: string, why: string) => ({ decision: accept(r, code, why), delayMs: 0 });
  if (r.code < 400) return none('no-tarpit', 'not an error reply');
  if (closing) return none('no-tarpit', 'the connection closes after this reply');
  if (isGatewayTrouble(r)) return none('no-tarpit', `${r.code} ${r.enhanced} reports the gateway's own trouble, not the client's: not tarpitted`);
  if (interval <= 0) return none('no-tarpit', `connector "${session.connector.name}" has tarpitInterval 0`);
  if (session.user) return none('no-tarpit', `authenticated sessions (${session.user.name}) are not tarpitted`);
  return { decision: accept(r, 'tarpit', `error reply to an unauthenticated session held ${interval} ms (tarpitInterval of connector "${session.connector.name}")`), delayMs: interval };
}

// ---------------------------------------------------------------- MAIL

export interface MailInput {
  /** Reverse-path without brackets; '' is the null sender. */
  readonly sender: string;
  /** SIZE= parameter, if given. */
  readonly declaredSize?: number | undefined;
  /**
   * What the directory said about the logged-on directory user sending as this address (its
   * Send As right on the object holding it), asked when the sender is not the user's own and
   * the connector's rights do not allow it (mailNeedsSendAs); absent: not asked.
   */
  readonly sendAs?: SendAsAnswer | undefined;
}

/**
 * Whether MAIL's refusal could be lifted by a Send As right in the directory: a directory user
 * with its SIDs read, refused because the sender is not one of its addresses and the connector
 * does not let it send as any. The listener then asks the directory and judges MAIL again.
 */
export function mailNeedsSendAs(session: Session, d: Decision): boolean {
  return d.verdict === 'reject' && d.reason.code === 'sender-not-permitted' && (session.user?.directory?.sids?.length ?? 0) > 0;
}

export function acceptedDomainType(policy: Policy, domain: string): AcceptedDomainType | null {
  const i = matchDomain(domain, policy.acceptedPatterns);
  return i < 0 ? null : policy.acceptedDomains[i]!.type;
}

function isInternal(policy: Policy, domain: string): boolean {
  const t = acceptedDomainType(policy, domain);
  return t === 'Authoritative' || t === 'InternalRelay';
}

/** The MAIL decision, with the sender as parsed here (null for the null sender or a refusal): parsed once, kept as parts. */
export interface MailDecision extends Decision {
  readonly sender: EnvelopeAddress | null;
}

export function mail(policy: Policy, session: Session, input: MailInput): MailDecision {
  let sender: EnvelopeAddress | null = null;
  const d = mailDecision(policy, session, input, (a) => (sender = a));
  return { ...d, sender: d.verdict === 'accept' ? sender : null };
}

function mailDecision(policy: Policy, session: Session, input: MailInput, parsedAs: (a: EnvelopeAddress) => void): Decision {
  const c = session.connector;
  if (c.config.requireTLS && !session.tls) {
    return reject(REPLIES.startTlsRequired, 'tls-required', `connector "${c.name}" has requireTLS and the session has not done STARTTLS`, true);
  }
  if (!has(session, 'ms-Exch-SMTP-Submit')) {
    const denied = session.rights.deniedBy.get('ms-Exch-SMTP-Submit');
    const why = `${who(session)} lacks ms-Exch-SMTP-Submit on connector "${c.name}"${denied ? ` (denied by ${denied.join('; ')})` : ''}`;
    return session.user ? reject(REPLIES.noSubmitPermission, 'no-submit', why) : reject(REPLIES.notAuthenticated, 'no-submit', why);
  }
  if (input.declaredSize !== undefined && input.declaredSize > c.config.maxMessageSize && !has(session, 'ms-Exch-Bypass-Message-Size-Limit')) {
    return reject(REPLIES.messageTooBig, 'size-declared', `SIZE=${input.declaredSize} exceeds maxMessageSize ${c.config.maxMessageSize} of connector "${c.name}"`);
  }
  const sendLimit = senderSizeLimit(session);
  if (input.declaredSize !== undefined && sendLimit && input.declaredSize > sendLimit.bytes) {
    return reject(sendLimit.reply, sendLimit.code, `SIZE=${input.declaredSize} exceeds ${sendLimit.of}`);
  }
  if (input.sender === '') return accept(REPLIES.senderOk, 'null-sender', 'null reverse-path (delivery status notification)');
  const parsed = parseEnvelopeAddress(input.sender);
  if (!parsed.ok) return reject(REPLIES.invalidAddress, 'invalid-sender', `sender "${input.sender}": ${parsed.reason}`);
  const sender = parsed.value;
  parsedAs(sender);
  return senderPermission(policy, session, sender, input.sendAs);
}

/**
 * Whether this session may send as an address (MAIL FROM, and for authenticated users the
 * header's From and Sender: headerSenders): one of the user's own addresses, a domain-secured
 * partner's own domain, the connector's Accept-Authoritative-Domain-Sender (internal domains) or
 * Accept-Any-Sender (the others), or a Send As right in the directory (`sendAs`, when asked).
 */
export function senderPermission(policy: Policy, session: Session, sender: EnvelopeAddress, sendAs: SendAsAnswer | undefined): Decision {
  if (session.user && session.user.addresses.has(sender.address.toLowerCase())) {
    return accept(REPLIES.senderOk, 'own-address', `${sender.address} is one of user ${session.user.name}'s addresses`);
  }
  const internal = isInternal(policy, sender.domain);
  // A domain-secured partner sends as its own domain (and its subdomains), as a user as its addresses.
  const partner = session.partnerDomain;
  if (partner && !internal && (sender.domain.toLowerCase() === partner || sender.domain.toLowerCase().endsWith(`.${partner}`))) {
    return accept(REPLIES.senderOk, 'partner-domain', `${sender.address} is in ${partner}, the domain the client's certificate proved (domain security)`);
  }
  if (internal && has(session, 'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender')) {
    return accept(REPLIES.senderOk, 'authoritative-domain-sender', `${sender.domain} is internal and ${who(session)} has ms-Exch-SMTP-Accept-Authoritative-Domain-Sender (${session.rights.grantedBy.get('ms-Exch-SMTP-Accept-Authoritative-Domain-Sender')!.join('; ')})`);
  }
  if (!internal && has(session, 'ms-Exch-SMTP-Accept-Any-Sender')) {
    return accept(REPLIES.senderOk, 'any-sender', `${sender.domain} is not internal and ${who(session)} has ms-Exch-SMTP-Accept-Any-Sender (${session.rights.grantedBy.get('ms-Exch-SMTP-Accept-Any-Sender')!.join('; ')})`);
  }
  // Exchange's Send As (Add-ADPermission -ExtendedRights Send-As) on the object holding the address.
  if (sendAs?.kind === 'granted') return accept(REPLIES.senderOk, 'send-as-right', `${sender.address} is held by ${sendAs.dn}, on which directory user ${session.user?.name} has Send As (${sendAs.why})`);
  if (sendAs?.kind === 'unavailable') return reject(REPLIES.directoryUnavailable, 'directory-unavailable', `the directory could not say whether ${session.user?.name} may send as ${sender.address}: ${sendAs.why}`);
  const needed = internal ? 'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender' : 'ms-Exch-SMTP-Accept-Any-Sender';
  const why = `${sender.address} is ${internal ? 'in an internal domain' : 'outside the internal domains'}; ${who(session)} lacks ${needed}${session.user ? ' and it is not one of the user\'s addresses' : ''}${sendAs ? `; Send As: ${sendAs.dn ? `${sendAs.dn}: ` : ''}${sendAs.why}` : ''}`;
  return reject(session.user ? REPLIES.sendAsDenied : REPLIES.anonymousSendAsDenied, 'sender-not-permitted', why);
}

// ---------------------------------------------------------------- throttling policy

/** recipientRateLimit's window: Exchange's 24 hours, sliding. */
export const RECIPIENT_RATE_WINDOW_MS = 24 * 3_600_000;

/**
 * What recipientRateLimit (Exchange's throttling policy) counts for this session, or null: only
 * authenticated users, by their own limit or throttlingPolicy's. A directory user is counted by
 * its DN (whatever login form it used), a local user by its name.
 */
export function recipientRateLimitKey(policy: Policy, session: Session): { key: string; limit: number; from: 'user' | 'throttlingPolicy' } | null {
  const u = session.user;
  if (!u) return null;
  const r = recipientRateSubject(policy, u.directory ? { dn: u.directory.dn } : { name: u.name });
  return r.limit === null ? null : { key: r.key, limit: r.limit, from: r.from };
}

/**
 * The recipientRateLimit counter and limit of a local user (by name: its own limit, else the
 * policy's) or a directory user (by DN: the policy's); limit null: unlimited.
 */
export function recipientRateSubject(policy: Policy, who: { readonly name: string } | { readonly dn: string }): { key: string; limit: number | null; from: 'user' | 'throttlingPolicy' } {
  const own = 'name' in who ? policy.users.get(who.name.toLowerCase())?.recipientRateLimit : undefined;
  const limit = own !== undefined ? own : policy.config.gateway.throttlingPolicy.recipientRateLimit;
  const key = 'dn' in who ? `recipients|dn:${who.dn.toLowerCase()}` : `recipients|user:${who.name.toLowerCase()}`;
  return { key, limit, from: own !== undefined ? 'user' : 'throttlingPolicy' };
}

/**
 * Decides with the recipients this user addressed in the last 24 hours (null: the counter could
 * not be read; a failure never permits: 451, try later). Counted at the RCPT that passed every
 * other check.
 */
export function recipientRateLimit(policy: Policy, session: Session, recipientsInWindow: number | null): Decision {
  const k = recipientRateLimitKey(policy, session);
  if (!k) return accept(REPLIES.recipientOk, 'recipient-rate-unlimited', 'no recipientRateLimit for this session');
  const who = session.user!.directory ? `directory user ${session.user!.name}` : `user ${session.user!.name}`;
  if (recipientsInWindow === null) return reject(REPLIES.queueUnavailable, 'recipient-rate-counter-unavailable', 'the recipientRateLimit counter could not be reached');
  const source = k.from === 'user' ? `its own recipientRateLimit ${k.limit}` : `throttlingPolicy.recipientRateLimit ${k.limit}`;
  if (recipientsInWindow >= k.limit) return reject(REPLIES.recipientRateLimited, 'recipient-rate-limit', `${who} addressed ${recipientsInWindow} recipients in the last 24 hours: ${source} reached`);
  return accept(REPLIES.recipientOk, 'recipient-rate-ok', `${who}: ${recipientsInWindow + 1} of ${k.limit} recipients in 24 hours (${k.from === 'user' ? 'its own limit' : 'throttlingPolicy'})`);
}

// ---------------------------------------------------------------- rate limit

/** What messageRateLimit counts by for this session, or null when there is no limit. */
export function rateLimitKey(session: Session): { key: string; limit: number } | null {
  const c = session.connector.config;
  if (c.messageRateLimit === null || c.messageRateSource === 'None') return null;
  const bySource = c.messageRateSource;
  const key =
    bySource === 'User' ? (session.user ? `user:${session.user.name.toLowerCase()}` : `ip:${session.client.text}`)
    : bySource === 'All' ? `ip:${session.client.text}|user:${session.user?.name.toLowerCase() ?? ''}`
    : `ip:${session.client.text}`;
  return { key: `${session.connector.name}|${key}`, limit: c.messageRateLimit };
}

/**
 * Decides with the number of messages already submitted under rateLimitKey in the last
 * minute; null when the counter could not be read (a failure never permits: 451, try later).
 */
export function rateLimit(session: Session, messagesInLastMinute: number | null): Decision {
  const k = rateLimitKey(session);
  if (k && messagesInLastMinute === null) {
    return reject(REPLIES.queueUnavailable, 'rate-counter-unavailable', 'the messageRateLimit counter could not be reached');
  }
  if (k && messagesInLastMinute !== null && messagesInLastMinute >= k.limit) {
    return reject(REPLIES.rateLimited, 'rate-limited', `${messagesInLastMinute} messages in the last minute reach messageRateLimit ${k.limit} (${session.connector.config.messageRateSource}) on connector "${session.connector.name}"`, true);
  }
  return accept(REPLIES.senderOk, 'rate-ok', 'under messageRateLimit');
}

// ---------------------------------------------------------------- RCPT

/**
 * One mail transaction (MAIL … DATA, or until RSET/EHLO) as the policy counts it: the
 * recipients accepted so far. The rcpt stage takes it and returns the next one; the listener
 * and `mailgw explain` both carry it, so both count the same way.
 *
 * The rule: a recipient is the same as an earlier one when its address (local@domain, domain
 * normalised) is equal ignoring case. A repeated recipient is answered 250 2.1.5 again (the
 * client did nothing wrong), but it is neither counted against maxRecipientsPerMessage nor
 * stored a second time: the message goes to it once, with the NOTIFY/ORCPT of its first RCPT.
 */
export interface Transaction {
  /**
   * The accepted recipients, in the order they were accepted: the records the queue's job
   * will carry (address parts as parsed here, NOTIFY, ORCPT).
   */
  readonly recipients: readonly EnvelopeRecipient[];
  /**
   * The largest message some accepted recipient takes, when every one of them has a limit
   * (its own MaxReceiveSize, from the directory, or the organisation's); absent: one has none.
   * A message over it is too large for all of them (data()'s 552 5.2.3).
   */
  readonly receiveSizeLimit?: number;
  /**
   * Each accepted recipient's largest message (receiveLimit; null: none), in the order of
   * `recipients`; absent while no recipient has one. A message over some of them but not all is
   * accepted and failed for those (recipientsOverSizeLimit).
   */
  readonly sizeLimits?: readonly (ReceiveLimit | null)[];
}

export const NEW_TRANSACTION: Transaction = { recipients: [] };

/** What makes two recipients the same one. */
export function recipientKey(a: EnvelopeAddress | EnvelopeRecipient): string {
  return addressKey(a);
}

export interface RcptInput {
  readonly recipient: string;
  /** The transaction so far (NEW_TRANSACTION after MAIL). */
  readonly transaction: Transaction;
  /** RFC 3461 NOTIFY= and ORCPT= of this RCPT, kept with the recipient when it is accepted. */
  readonly notify?: readonly string[] | undefined;
  readonly orcpt?: string | undefined;
  /** The directory's answer for this recipient, when recipientLookup asked for one. */
  readonly directory?: DirectoryAnswer | undefined;
  /**
   * The recipient's delivery restrictions, when its entry lists any, and what the directory said
   * of the sender (MAIL FROM; answer null for the null sender, which is not looked up).
   */
  readonly restrictions?: { readonly lists: DeliveryRestrictions; readonly sender: { readonly address: string | null; readonly answer: MembershipAnswer | null } } | undefined;
  /** The recipient's own largest message in bytes (the directory's MaxReceiveSize); absent: none. */
  readonly maxReceiveSize?: number | null | undefined;
  /** SIZE= of this transaction's MAIL (RFC 1870), when the client declared it. */
  readonly declaredSize?: number | undefined;
}

/**
 * The address to look up in the directory before rcpt() can decide, or null: only under
 * recipients: { directory: true }, for an Authoritative domain, when no local user has it.
 */
export function recipientLookup(policy: Policy, recipient: string): string | null {
  if (!policy.recipientsFromDirectory) return null;
  const parsed = parseEnvelopeAddress(/^postmaster$/i.test(recipient) ? `postmaster@${policy.config.gateway.defaultDomain}` : recipient);
  if (!parsed.ok || recipient === '') return null;
  const a = parsed.value;
  if (acceptedDomainType(policy, a.domain) !== 'Authoritative') return null;
  const key = a.address.toLowerCase();
  return policy.recipients?.has(key) ? null : key;
}

export interface RcptResult {
  readonly decision: Decision;
  /** The parsed address, when it could be parsed. */
  readonly address: EnvelopeAddress | null;
  /** The transaction after this RCPT (unchanged unless a new recipient was accepted). */
  readonly transaction: Transaction;
  /** Accepted, but the same as an earlier recipient: not to be stored again. */
  readonly duplicate: boolean;
}

/**
 * Exchange's Recipient Filter agent, its block list (Set-RecipientFilterConfig -BlockListEnabled
 * -BlockedRecipients): a listed recipient is refused as unknown (550 5.1.1), e.g. an internal
 * distribution list the Internet must not reach. An anti-spam agent: sessions holding
 * ms-Exch-Bypass-Anti-Spam (your own users and servers) still reach it. null: not refused.
 */
export function recipientFilter(policy: Policy, session: Session, recipient: EnvelopeAddress): Decision | null {
  const cfg = policy.config.gateway.recipientFilterConfig;
  if (!cfg.enabled || !cfg.blockListEnabled || cfg.blockedRecipients.length === 0) return null;
  const address = `${recipient.local.toLowerCase()}@${recipient.domain}`;
  if (!cfg.blockedRecipients.includes(address)) return null;
  if (has(session, 'ms-Exch-Bypass-Anti-Spam')) return null;
  return reject(REPLIES.userUnknown, 'recipient-blocked', `${address} is in recipientFilterConfig.blockedRecipients and ${who(session)} lacks ms-Exch-Bypass-Anti-Spam on connector "${session.connector.name}"`);
}

/**
 * Whether the session's sender counts as authenticated for a recipient that requires it
 * (Exchange's RequireSenderAuthenticationEnabled: "only senders inside my organization"): a
 * user that logged on, or a connector whose sessions are externally secured (the
 * ExternalAuthoritative connector an internal relay uses). An anonymous session is not, nor
 * a domain-secured partner: it is authenticated as another organisation, not inside this one.
 */
export function authenticatedSender(session: Session): { readonly authenticated: boolean; readonly who: string } {
  return { authenticated: session.user !== null || session.connector.externallySecured, who: who(session) };
}

/**
 * The transaction once a recipient with `limit` (its largest message; null: none) is accepted:
 * receiveSizeLimit is the largest while every recipient has one, gone once one has none.
 */
function withRecipient(before: Transaction, record: EnvelopeRecipient, limit: ReceiveLimit | null): Transaction {
  const recipients = [...before.recipients, record];
  const first = before.recipients.length === 0;
  const sizeLimits = limit === null && !before.sizeLimits ? {} : { sizeLimits: [...(before.sizeLimits ?? before.recipients.map(() => null)), limit] };
  if (limit === null || (!first && before.receiveSizeLimit === undefined)) return { recipients, ...sizeLimits };
  return { recipients, receiveSizeLimit: first ? limit.bytes : Math.max(before.receiveSizeLimit!, limit.bytes), ...sizeLimits };
}

/** A recipient a message is too large for: what its DSN says, and why. */
export interface OversizeRecipient {
  readonly recipient: EnvelopeRecipient;
  readonly reply: Reply;
  /** The log's reason: recipient-size-limit (its own) or recipient-size-limit-org (the organisation's). */
  readonly code: string;
  readonly reason: string;
}

/**
 * The recipients a message of `messageBytes` is too large for (receiveLimit), once
 * it was accepted: too large for all of them it was refused at the end of DATA (data()); too
 * large for some, it is accepted, as Exchange's categorizer does, and failed for those with a
 * DSN (5.2.3 RESOLVER.RST.RecipSizeLimit), delivered to the others. SMTP cannot refuse a message
 * for some of its recipients once DATA has begun (a client that declared SIZE= was answered per
 * recipient at RCPT already).
 */
export function recipientsOverSizeLimit(tx: Transaction, messageBytes: number): OversizeRecipient[] {
  if (!tx.sizeLimits) return [];
  const over: OversizeRecipient[] = [];
  tx.sizeLimits.forEach((limit, i) => {
    if (limit === null || messageBytes <= limit.bytes) return;
    const recipient = tx.recipients[i]!;
    over.push({ recipient, reply: REPLIES.recipientSizeLimit, code: limit.organization ? 'recipient-size-limit-org' : 'recipient-size-limit', reason: `message of ${messageBytes} bytes exceeds ${receiveLimitOf(limit, formatAddress(recipient))}` });
  });
  return over;
}

export function rcpt(policy: Policy, session: Session, input: RcptInput): RcptResult {
  const c = session.connector;
  // RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>" without a domain must be accepted; it is the
  // postmaster of the default accepted domain, and judged as that address from here on.
  const recipient = /^postmaster$/i.test(input.recipient) ? `postmaster@${policy.config.gateway.defaultDomain}` : input.recipient;
  const parsed = parseEnvelopeAddress(recipient);
  if (!parsed.ok || input.recipient === '') {
    return { decision: reject(REPLIES.invalidAddress, 'invalid-recipient', `recipient "${input.recipient}": ${parsed.ok ? 'empty' : parsed.reason}`), address: null, transaction: input.transaction, duplicate: false };
  }
  const addr = parsed.value;
  const key = recipientKey(addr);
  const before = input.transaction;
  const record: EnvelopeRecipient = {
    local: addr.local,
    domain: addr.domain,
    ...(input.notify && input.notify.length > 0 ? { notify: input.notify.map((n) => n.toUpperCase() as DsnNotify) } : {}),
    ...(input.orcpt !== undefined ? { orcpt: input.orcpt } : {}),
  };
  const limit = receiveLimit(session, input.maxReceiveSize ?? null);
  const out = (decision: Decision): RcptResult => ({
    decision,
    address: addr,
    transaction: decision.verdict === 'accept' ? withRecipient(before, record, limit) : before,
    duplicate: false,
  });
  // MaxReceiveSize against what MAIL declared (RFC 1870 6.2); undeclared, the end of DATA judges.
  const tooLarge = (): Decision | null =>
    limit && input.declaredSize !== undefined && input.declaredSize > limit.bytes
      ? reject(REPLIES.recipientSizeLimit, limit.organization ? 'recipient-size-limit-org' : 'recipient-size-limit', `SIZE=${input.declaredSize} exceeds ${receiveLimitOf(limit, addr.address)}`)
      : null;

  if (before.recipients.some((r) => recipientKey(r) === key)) {
    return {
      decision: accept(REPLIES.recipientOk, 'duplicate-recipient', `${addr.address} was already accepted in this transaction: answered again, not counted against maxRecipientsPerMessage, stored once`),
      address: addr,
      transaction: before,
      duplicate: true,
    };
  }

  const blocked = addr.routingDomains.find((d) => matchDomain(d, policy.blockedDomains) >= 0);
  if (blocked) return out(reject(REPLIES.recipientBlocked, 'blocked-domain', `${blocked} is in blockedDomains`));

  if (before.recipients.length >= c.config.maxRecipientsPerMessage && !has(session, 'ms-Exch-Bypass-Message-Size-Limit')) {
    return out(reject(REPLIES.tooManyRecipients, 'too-many-recipients', `${before.recipients.length} different recipients accepted: maxRecipientsPerMessage ${c.config.maxRecipientsPerMessage} of connector "${c.name}" reached`));
  }

  // Exchange's RecipientLimits of a logged-on directory user: a limit of its own, beside the
  // connector's, and instead of the organisation's MaxRecipientEnvelopeLimit (which it overrides).
  const userLimit = session.user?.directory?.recipientLimits;
  if (userLimit !== undefined && before.recipients.length >= userLimit) {
    return out(reject(REPLIES.tooManyRecipients, 'too-many-recipients-user', `${before.recipients.length} different recipients accepted: the RecipientLimits of directory user ${session.user!.name} (${userLimit}) reached`));
  }
  const orgLimit = session.organization?.maxRecipientEnvelopeLimit ?? null;
  if (userLimit === undefined && orgLimit !== null && before.recipients.length >= orgLimit && !has(session, 'ms-Exch-Bypass-Message-Size-Limit')) {
    return out(reject(REPLIES.tooManyRecipients, 'too-many-recipients-org', `${before.recipients.length} different recipients accepted: the organisation's maxRecipientEnvelopeLimit (${orgLimit}) reached`));
  }

  const foreign = addr.routingDomains.filter((d) => acceptedDomainType(policy, d) === null);
  if (foreign.length > 0) {
    const via = addr.trick ? ` (${addr.trick} in ${addr.address})` : '';
    if (session.relayDenied) {
      return out(reject(REPLIES.unableToRelay, 'relay-denied-ip', `${foreign.join(', ')} is not an accepted domain${via} and client ${session.client.text} is in relayDeniedIPRanges (${session.relayDenied}), which overrides every right`));
    }
    if (!has(session, 'ms-Exch-SMTP-Accept-Any-Recipient')) {
      const denied = session.rights.deniedBy.get('ms-Exch-SMTP-Accept-Any-Recipient');
      return out(reject(REPLIES.unableToRelay, 'relay-denied', `${foreign.join(', ')} is not an accepted domain${via} and ${who(session)} lacks ms-Exch-SMTP-Accept-Any-Recipient on connector "${c.name}"${denied ? ` (denied by ${denied.join('; ')})` : ''}`));
    }
  }

  const refused = recipientFilter(policy, session, addr);
  if (refused) return out(refused);

  const type = acceptedDomainType(policy, addr.domain);
  if (type === 'Authoritative' && policy.recipients && !policy.recipients.has(addr.address.toLowerCase())) {
    if (!policy.recipientsFromDirectory) return out(reject(REPLIES.userUnknown, 'user-unknown', `${addr.address} is not a known mailbox of authoritative domain ${addr.domain}`));
    // A failure never permits, never rejects for good: 451 when the directory could not answer.
    if (input.directory === 'not-found') return out(reject(REPLIES.userUnknown, 'user-unknown', `no directory object holds ${addr.address} (authoritative domain ${addr.domain})`));
    if (input.directory !== 'found' && input.directory !== 'found-auth-required') return out(reject(REPLIES.directoryUnavailable, 'directory-unavailable', `the directory could not be asked about ${addr.address}`));
    const restricted = input.directory === 'found-auth-required' ? authenticatedSender(session) : null;
    if (restricted && !restricted.authenticated) {
      const attr = policy.directoryMap?.requireSenderAuthenticationAttribute ?? null;
      return out(reject(REPLIES.authenticationRequiredByRecipient, 'recipient-auth-required', `${addr.address} accepts mail only from authenticated senders (its directory object has ${attr ?? 'the restriction attribute'} TRUE: Exchange's RequireSenderAuthenticationEnabled) and this sender is not authenticated (${restricted.who})`));
    }
    // Delivery restrictions (AcceptMessagesOnlyFrom…), after the authentication requirement as
    // Exchange's categorizer checks them; the sender's lookup failing is a 451, never a verdict.
    let allowedBy = '';
    if (input.restrictions) {
      const s = input.restrictions.sender;
      if (s.answer?.kind === 'unavailable') return out(reject(REPLIES.directoryUnavailable, 'directory-unavailable', `${addr.address} has delivery restrictions and the directory could not be asked about the sender ${s.address}: ${s.answer.why}`));
      const v = deliveryRestrictionVerdict(input.restrictions.lists, { address: s.address, object: s.answer?.kind === 'found' ? s.answer : null });
      if (!v.allowed) return out(reject(REPLIES.notAuthorizedByRecipient, 'recipient-restricted', `${addr.address} does not take mail from this sender (Exchange's message delivery restrictions on its directory object): ${v.why}`));
      allowedBy = `; delivery restrictions: ${v.why}`;
    }
    const over = tooLarge();
    if (over) return out(over);
    if (foreign.length === 0) return out(accept(REPLIES.recipientOk, 'directory-recipient', `${addr.address} is held by a directory object (authoritative domain ${addr.domain})${restricted ? `; it takes mail only from authenticated senders, and this one is (${restricted.who})` : ''}${allowedBy}`));
  }
  const over = tooLarge();
  if (over) return out(over);
  if (foreign.length > 0) {
    return out(accept(REPLIES.recipientOk, 'relay', `relay to ${foreign.join(', ')} allowed: ${who(session)} has ms-Exch-SMTP-Accept-Any-Recipient (${session.rights.grantedBy.get('ms-Exch-SMTP-Accept-Any-Recipient')!.join('; ')})`));
  }
  return out(accept(REPLIES.recipientOk, 'accepted-domain', `${addr.domain} is an accepted domain (${type})`));
}

// ---------------------------------------------------------------- connection limits

/** Per-source limit: maxInboundConnectionPerSource, or the percentage share of maxInboundConnection if smaller. */
export function perSourceLimit(c: CompiledConnector): number | null {
  const cfg = c.config;
  const share = cfg.maxInboundConnection === null ? null : Math.max(1, Math.ceil((cfg.maxInboundConnection * cfg.maxInboundConnectionPercentagePerSource) / 100));
  if (cfg.maxInboundConnectionPerSource === null) return share;
  return share === null ? cfg.maxInboundConnectionPerSource : Math.min(cfg.maxInboundConnectionPerSource, share);
}

export interface ConnectionCounts {
  /** Connections the connector has open now (this one not counted). */
  readonly open: number;
  /** Of those, from this client address. */
  readonly fromClient: number;
}

/**
 * What admitConnection needs of a session, as plain data: the supervisor of several listener
 * processes counts connections for all of them and decides with this (admitCounted), so the
 * limits stay global and the decision stays here.
 */
export interface AdmissionRequest {
  readonly connector: string;
  readonly client: string;
  readonly maxInboundConnection: number | null;
  readonly perSourceLimit: number | null;
}

export function admissionRequest(session: Session): AdmissionRequest {
  const c = session.connector;
  return { connector: c.name, client: session.client.text, maxInboundConnection: c.config.maxInboundConnection, perSourceLimit: perSourceLimit(c) };
}

/** maxInboundConnection and the per-source limit, given the live counts the listener keeps. */
export function admitConnection(session: Session, counts: ConnectionCounts): Decision {
  return admitCounted(admissionRequest(session), counts);
}

/** admitConnection on the plain request (the same decision, the same replies). */
export function admitCounted(r: AdmissionRequest, counts: ConnectionCounts): Decision {
  const max = r.maxInboundConnection;
  if (max !== null && counts.open >= max) {
    return reject(REPLIES.tooManyConnections, 'max-inbound-connection', `connector "${r.connector}" has ${counts.open} connections (maxInboundConnection ${max})`, true);
  }
  const limit = r.perSourceLimit;
  if (limit !== null && counts.fromClient >= limit) {
    return reject(REPLIES.tooManyConnectionsPerSource, 'max-inbound-connection-per-source', `${r.client} has ${counts.fromClient} connections to connector "${r.connector}" (per-source limit ${limit})`, true);
  }
  return accept(REPLIES.serverReady, 'within-connection-limits', `${counts.open} open, ${counts.fromClient} from ${r.client}`);
}

// ---------------------------------------------------------------- DATA

export interface DataCommandInput {
  /** MAIL was accepted in this transaction. */
  readonly mailAccepted: boolean;
  /** Recipients accepted so far. */
  readonly transaction: Transaction;
  /** The mail store can take a message now (false: Redis is away). */
  readonly queueAvailable: boolean;
  /** DATA (default) or the first BDAT of the transaction. */
  readonly command?: 'DATA' | 'BDAT';
  /** The transaction's MAIL carried BODY=BINARYMIME. */
  readonly binaryMime?: boolean;
}

/** The DATA command itself: is there a transaction to receive a message for, and somewhere to put it? */
export function dataCommand(_session: Session, input: DataCommandInput): Decision {
  if (!input.mailAccepted) return reject(REPLIES.needMail, 'data-need-mail', 'DATA before an accepted MAIL');
  // RFC 3030 3: a binary message has no DATA form (it could hold CRLF.CRLF); 503 and the transaction stays for BDAT.
  if (input.binaryMime && input.command !== 'BDAT') return reject(REPLIES.binaryMimeNeedsBdat, 'data-binarymime', 'DATA after MAIL … BODY=BINARYMIME: a binary message must come by BDAT (RFC 3030 3)');
  if (input.transaction.recipients.length === 0) return reject(REPLIES.needRcpt, 'data-need-rcpt', 'DATA before an accepted RCPT');
  // Said before the client sends the message, not after.
  if (!input.queueAvailable) return reject(REPLIES.queueUnavailable, 'queue-unavailable', 'the mail store is not reachable');
  return accept(REPLIES.startMailInput, 'data-start', `${input.transaction.recipients.length} recipient(s) accepted`);
}

export interface DataInput {
  /** A bare CR or LF was seen in the message so far. */
  readonly bareLineEndings?: boolean;
  /** Received headers in the message as received. */
  readonly receivedHeaders: number;
  /** Of those, added by this organisation's own servers (localHops). Default 0. */
  readonly localHops?: number;
  readonly headerBytes: number;
  readonly messageBytes: number;
  /** The transaction's receiveSizeLimit: a message over it is too large for every recipient. */
  readonly receiveSizeLimit?: number | undefined;
}

/** The host after "by" in a Received field value (RFC 5321 4.4), lower-cased; null if none. */
export function receivedByHost(value: string): string | null {
  // Comments (nested, with quoted pairs) may hold the word "by" too: they are removed first.
  let flat = value.replace(/\\./g, '');
  for (let prev = ''; prev !== flat; ) [prev, flat] = [flat, flat.replace(/\([^()]*\)/g, ' ')];
  const m = /(?:^|\s)by\s+([^\s;()]+)/i.exec(flat);
  return m ? m[1]!.toLowerCase().replace(/\.$/, '') : null;
}

/**
 * Hop counts of a message's Received fields (their values, unfolded or not): all of them
 * (maxHopCount), and those whose "by" host is one of the organisation's own servers
 * (CompiledConnector.ownHosts: the gateway FQDN and every connector's) for maxLocalHopCount:
 * the hops inside this organisation, which is what a loop between two of our servers grows.
 */
export function hopCounts(session: Session, receivedValues: readonly string[]): { receivedHeaders: number; localHops: number } {
  const own = session.connector.ownHosts;
  let localHops = 0;
  for (const v of receivedValues) {
    const by = receivedByHost(v);
    if (by !== null && own.has(by)) localHops++;
  }
  return { receivedHeaders: receivedValues.length, localHops };
}

export function data(session: Session, input: DataInput): Decision {
  const c = session.connector.config;
  if (input.bareLineEndings && c.bareLinefeedRejectionEnabled) {
    return reject(REPLIES.bareLinefeeds, 'bare-linefeed', `the message contains a bare CR or LF and connector "${session.connector.name}" has bareLinefeedRejectionEnabled`);
  }
  if (input.receivedHeaders > c.maxHopCount) {
    return reject(REPLIES.hopCountExceeded, 'hop-count', `${input.receivedHeaders} Received headers exceed maxHopCount ${c.maxHopCount}`);
  }
  const localHops = input.localHops ?? 0;
  if (c.maxLocalHopCount > 0 && localHops > c.maxLocalHopCount) {
    return reject(REPLIES.hopCountExceeded, 'local-hop-count', `${localHops} Received headers added by this organisation's servers exceed maxLocalHopCount ${c.maxLocalHopCount} of connector "${session.connector.name}"`);
  }
  const bypass = has(session, 'ms-Exch-Bypass-Message-Size-Limit');
  if (input.headerBytes > c.maxHeaderSize && !bypass) {
    return reject(REPLIES.headerTooBig, 'header-size', `header of ${input.headerBytes} bytes exceeds maxHeaderSize ${c.maxHeaderSize}`);
  }
  if (input.messageBytes > c.maxMessageSize && !bypass) {
    return reject(REPLIES.messageTooBig, 'message-size', `message of ${input.messageBytes} bytes exceeds maxMessageSize ${c.maxMessageSize}`);
  }
  const sendLimit = senderSizeLimit(session);
  if (sendLimit && input.messageBytes > sendLimit.bytes) {
    return reject(sendLimit.reply, sendLimit.code, `message of ${input.messageBytes} bytes (so far) exceeds ${sendLimit.of}`);
  }
  if (input.receiveSizeLimit !== undefined && input.messageBytes > input.receiveSizeLimit) {
    const whose = (session.organization?.maxReceiveSize ?? null) === null ? "their directory objects' MaxReceiveSize" : "each one's own MaxReceiveSize or the organisation's maxReceiveSize";
    return reject(REPLIES.recipientSizeLimit, 'recipient-size-limit', `message of ${input.messageBytes} bytes (so far) exceeds the limit of every recipient (the largest, ${input.receiveSizeLimit} bytes: ${whose})`);
  }
  return accept(REPLIES.startMailInput, 'data-ok', 'within hop count and size limits, line endings acceptable');
}

/** Whether the client's own Received/Resent-* headers may stay (Accept-Headers-Routing). */
export function keepsRoutingHeaders(session: Session): boolean {
  return has(session, 'ms-Exch-Accept-Headers-Routing');
}
