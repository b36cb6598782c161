// Domain security on the sending side (Exchange's TLSSendDomainSecureList and a send connector's
// DomainSecureEnabled): which MX hops it applies to, and the client certificate mailgw presents.
// The session's TLS policy itself (TLS required, the partner's certificate checked for the
// domain, ours presented) is tls-policy.ts's withDomainSecurity.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { GatewayConfig } from '@mailgw/config';

/** The partner domains and the certificate presented to them (null: none configured). */
export interface DomainSecureSending {
  readonly domains: ReadonlySet<string>;
  readonly client: { readonly key: string; readonly cert: string } | null;
}

/**
 * Reads tlsSendDomainSecureList and domainSecureCertificate/-Key (relative to the gateway file's
 * directory): null when no partner domain is listed; an error naming the key when the pair is
 * missing, unreadable or not a pair.
 */
export function readDomainSecureSending(g: Pick<GatewayConfig, 'tlsSendDomainSecureList' | 'domainSecureCertificate' | 'domainSecureKey'>, baseDir: string): { ok: true; sending: DomainSecureSending | null } | { ok: false; key: string; message: string } {
  if (g.tlsSendDomainSecureList.length === 0) return { ok: true, sending: null };
  const domains = new Set(g.tlsSendDomainSecureList);
  if (!g.domainSecureCertificate || !g.domainSecureKey) {
    return { ok: false, key: g.domainSecureCertificate ? 'domainSecureKey' : 'domainSecureCertificate', message: 'tlsSendDomainSecureList lists partner domains: give domainSecureCertificate and domainSecureKey, the certificate mailgw presents to them' };
  }
  const read = (key: 'domainSecureCertificate' | 'domainSecureKey', file: string): { ok: true; pem: string } | { ok: false; key: string; message: string } => {
    const full = path.resolve(baseDir, file);
    try {
      return { ok: true, pem: readFileSync(full, 'utf8') };
    } catch (e) {
      return { ok: false, key, message: `${full} cannot be read: ${(e as Error).message}` };
    }
  };
  const cert = read('domainSecureCertificate', g.domainSecureCertificate);
  if (!cert.ok) return cert;
  const key = read('domainSecureKey', g.domainSecureKey);
  if (!key.ok) return key;
  try {
    createSecureContext({ key: key.pem, cert: cert.pem });
  } catch (e) {
    return { ok: false, key: 'domainSecureCertificate', message: `${g.domainSecureCertificate} and ${g.domainSecureKey} are not a usable certificate and key: ${(e as Error).message}` };
  }
  return { ok: true, sending: { domains, client: { key: key.pem, cert: cert.pem } } };
}
