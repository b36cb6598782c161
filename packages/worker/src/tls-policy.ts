// The outbound TLS policy of one session, from the send connector's requireTLS / tlsAuthLevel /
// tlsDomain (OutboundTlsPolicy): the TLS options of the socket, and the 4.7.5 reply when the far
// side cannot meet the policy. One place, so a later layer (MTA-STS, DANE) can hand the session
// a stricter policy per destination without touching the SMTP code. MTA-STS (mta-sts.ts) does:
// `enforce` becomes requireTLS + DomainValidation on the MX name (withMtaSts).
import { checkServerIdentity, createSecureContext, rootCertificates, type ConnectionOptions, type PeerCertificate, type SecureContext } from 'node:tls';
import type { OutboundTlsPolicy } from '@mailgw/config';
import { appliedTlsPolicy, type AppliedTlsKind, type StsMode, type StsPolicy } from '@mailgw/policy';
import type { TlsaRecord } from './dane.js';
import { certificateNames, localReply, type Reply } from '@mailgw/mail';

/** The policy of one session: what the connector says, plus what its AUTH mechanism needs. */
export interface SessionTlsPolicy extends OutboundTlsPolicy {
  /** Where the policy comes from, for replies and logs: 'send connector "Internet"', 'routes[2]'. */
  readonly source: string;
  /** Why TLS is required when the connector alone would not require it (BasicAuthRequireTLS). */
  readonly requiredBy: string | null;
  /** The MTA-STS policy of the recipient domain in force for this session, if any. */
  readonly mtaSts?: { readonly domain: string; readonly mode: StsMode; readonly id: string; readonly policy?: StsPolicy };
  /**
   * Secure, usable TLSA records of the host (RFC 7672): they alone decide the certificate.
   * `base` is the TLSA base domain they were found at (the MX host, or where its CNAMEs lead).
   */
  readonly dane?: { readonly owner: string; readonly base: string; readonly records: readonly TlsaRecord[] };
  /** Domain security with this partner domain: our client certificate is presented. */
  readonly domainSecure?: { readonly domain: string; readonly key: string; readonly cert: string };
}

/**
 * The session policy under domain security (Exchange's mutual TLS with a partner): TLS
 * required, the partner's certificate trusted and naming the partner domain itself (not the MX
 * host), our certificate presented. It overrides MTA-STS and the connector's checks (the
 * partner's own agreement); DANE, when the host has it, still judges the partner's certificate.
 */
export function withDomainSecurity(p: SessionTlsPolicy, domain: string, client: { key: string; cert: string }): SessionTlsPolicy {
  return { ...p, requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: domain, domainSecure: { domain, ...client } };
}

/**
 * The session policy under DANE: TLS required, the certificate judged by the TLSA records alone
 * (after the handshake, daneMismatch), not by CAs or tlsDomain: DANE takes precedence over
 * MTA-STS and the connector's tlsAuthLevel (RFC 8461 §2, RFC 7672 §3).
 */
export function withDane(p: SessionTlsPolicy, dane: NonNullable<SessionTlsPolicy['dane']>): SessionTlsPolicy {
  return { ...p, requireTLS: true, dane };
}

/**
 * The session policy under an MTA-STS policy: `enforce` means TLS is required and the
 * certificate must chain to a trusted CA and carry the MX host name (RFC 8461 §4.2), whatever
 * the connector says; `testing` and `none` keep the connector's policy (the check is only reported).
 */
export function withMtaSts(p: SessionTlsPolicy, sts: { domain: string; mode: StsMode; id: string; policy?: StsPolicy }): SessionTlsPolicy {
  if (sts.mode !== 'enforce') return { ...p, mtaSts: sts };
  return { ...p, requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: null, mtaSts: sts };
}

/**
 * Why a TLS session would fail a DomainValidation check for `hostName` (untrusted chain, or a
 * name not on the certificate), or null if it passes: for MTA-STS `testing`, which reports
 * failures but delivers anyway. `authorized`/`authorizationError` are the TLS socket's.
 */
export function certificateProblem(socket: { authorized: boolean; authorizationError?: Error | string | null; getPeerCertificate(): PeerCertificate }, hostName: string): string | null {
  if (!socket.authorized) return `certificate not trusted: ${String(socket.authorizationError ?? 'unknown error')}`;
  const err = checkServerIdentity(hostName, socket.getPeerCertificate());
  return err ? err.message : null;
}

/** Whether plain text is forbidden. */
export function mustUseTls(p: SessionTlsPolicy): boolean {
  return p.requireTLS || p.requiredBy !== null || p.dane !== undefined;
}

/** tlsDomain "*.contoso.com": any name in contoso.com or below it (a "*." of the name itself included). */
function matchesWildcardDomain(cert: PeerCertificate, domain: string): boolean {
  return certificateNames(cert).some((n) => {
    const bare = n.startsWith('*.') ? n.slice(2) : n;
    return bare === domain || bare.endsWith('.' + domain);
  });
}

/**
 * One secure context per set of trusted CAs and client certificate, shared by the sessions that
 * use them: without one, every connection made its own (0.7 ms of CPU here with the system's
 * CAs, 21 ms with a CA list of 144 to parse; measured 2026-12-06, AMD EPYC). The contexts differ
 * only by what they are keyed on; what is checked (names, rejectUnauthorized) is per session.
 */
const contexts = new Map<string, SecureContext>();
function secureContextFor(extraCAs: readonly string[], client: { readonly key: string; readonly cert: string } | undefined): SecureContext {
  const id = `${extraCAs.join('\n')}\0${client?.key ?? ''}\0${client?.cert ?? ''}`;
  let ctx = contexts.get(id);
  if (!ctx) {
    // A reload may bring other certificates: a few contexts at most, never a growing pile.
    if (contexts.size >= 16) contexts.clear();
    ctx = createSecureContext({ ...(extraCAs.length > 0 ? { ca: [...rootCertificates, ...extraCAs] } : {}), ...(client ? { key: client.key, cert: client.cert } : {}) });
    contexts.set(id, ctx);
  }
  return ctx;
}

/**
 * TLS options for nodemailer's SMTPConnection (`tls`): EncryptionOnly accepts any certificate;
 * CertificateValidation needs a chain to a trusted CA (any name); DomainValidation also needs
 * the name tlsDomain (or the host name connected to). `extraCAs` are trusted besides the system's.
 */
export function tlsOptions(p: SessionTlsPolicy, hostName: string, extraCAs: readonly string[]): ConnectionOptions {
  // Domain security: our certificate goes with every kind of check (in the context).
  const ca = { secureContext: secureContextFor(extraCAs, p.domainSecure) };
  // DANE: any chain gets through the handshake; the TLSA records judge it right after.
  if (p.dane) return { rejectUnauthorized: false, ...ca };
  switch (p.tlsAuthLevel) {
    case 'EncryptionOnly':
      // The chain is still checked (not enforced) against the same CAs, for MTA-STS testing reports.
      return { rejectUnauthorized: false, ...ca };
    case 'CertificateValidation':
      return { rejectUnauthorized: true, ...ca, checkServerIdentity: () => undefined };
    case 'DomainValidation': {
      const want = p.tlsDomain ?? hostName;
      if (want.startsWith('*.')) {
        const domain = want.slice(2);
        return {
          rejectUnauthorized: true,
          ...ca,
          checkServerIdentity: (_host, cert) => (matchesWildcardDomain(cert, domain) ? undefined : new Error(`certificate names ${certificateNames(cert).join(', ') || '(none)'} are not in ${want}`)),
        };
      }
      return { rejectUnauthorized: true, ...ca, checkServerIdentity: (_host, cert) => checkServerIdentity(want, cert) };
    }
  }
}

/** The policy as one line for replies: `requireTLS, tlsAuthLevel DomainValidation, tlsDomain relay.test`. */
export function describePolicy(p: SessionTlsPolicy): string {
  const sts = p.mtaSts ? `MTA-STS policy of ${p.mtaSts.domain} (mode ${p.mtaSts.mode}, id ${p.mtaSts.id})` : null;
  const dane = p.dane ? `DANE TLSA ${p.dane.owner} (${p.dane.records.map((r) => `${r.usage} ${r.selector} ${r.matchingType}`).join(', ')})` : null;
  const parts = [p.domainSecure ? `domain security with ${p.domainSecure.domain}` : null, dane, sts, p.requireTLS ? 'requireTLS' : null, p.requiredBy, !p.dane && p.tlsAuthLevel !== 'EncryptionOnly' ? `tlsAuthLevel ${p.tlsAuthLevel}` : null, !p.dane && p.tlsDomain ? `tlsDomain ${p.tlsDomain}` : null];
  return parts.filter((x) => x !== null).join(', ');
}

/** 451 4.7.5: the far side could not meet the policy; the message waits, never goes in plain text. */
export function policyFailedReply(p: SessionTlsPolicy, where: string, detail: string): Reply {
  return localReply(451, '4.7.5', `TLS policy of ${p.source} (${describePolicy(p)}) not met by ${where}: ${detail.replace(/\s+/g, ' ').slice(0, 300)}`);
}

/** Which policy decided the session's TLS (DANE, MTA-STS, connector, opportunistic) and why: for logs and `queue show`. */
export function appliedTls(p: SessionTlsPolicy, stsNone: string | null = null): { kind: AppliedTlsKind; reason: string; detail: string } {
  const r = appliedTlsPolicy({
    source: p.source,
    requireTLS: p.requireTLS,
    tlsAuthLevel: p.tlsAuthLevel,
    tlsDomain: p.tlsDomain,
    requiredBy: p.requiredBy,
    mtaSts: p.mtaSts,
    dane: p.dane ? { owner: p.dane.owner, records: p.dane.records.map((x) => `${x.usage} ${x.selector} ${x.matchingType}`) } : undefined,
    stsNone,
  });
  return { ...r, detail: describePolicy(p) || 'opportunistic' };
}
