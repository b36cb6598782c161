// The names a TLS certificate carries, as the checks of both directions read them: its DNS
// subject alternative names, or its subject's common name when it has none (RFC 6125's fallback).
// Lower case. Pure.
import type { PeerCertificate } from 'node:tls';

export function certificateNames(cert: Pick<PeerCertificate, 'subjectaltname' | 'subject'>): string[] {
  const sans = (cert.subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (sans.length > 0) return sans;
  const cn = cert.subject?.CN;
  return typeof cn === 'string' ? [cn.toLowerCase()] : [];
}
