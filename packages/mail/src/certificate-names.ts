// The names a TLS certificate carries, as the checks of both directions read them: its DNS
// subject alternative names, or its subject's common name when it has none (RFC 6125's fallback).
// Lower case. Pure: the certificate as node:tls's getPeerCertificate() gives it, by shape.

/** What of a peer certificate (node:tls PeerCertificate) the names come from. */
export interface CertificateNameFields {
  readonly subjectaltname?: string | undefined;
  readonly subject?: { readonly CN?: string | readonly string[] | undefined } | undefined;
}

export function certificateNames(cert: CertificateNameFields): string[] {
  const sans = (cert.subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (sans.length > 0) return sans;
  const cn = cert.subject?.CN;
  return typeof cn === 'string' ? [cn.toLowerCase()] : [];
}
