// DANE for SMTP (RFC 7672), the decisions: whether DANE applies to an MX host at all (§2.2),
// and the reply when a lookup it depends on fails. The worker does the DNS lookups and the
// certificate matching (its dane.ts) around these.
import { localReply, type Reply } from '@mailgw/mail';

/** What the resolver said of the records DANE needs DNSSEC-signed (§2.2). */
export interface DaneRecordsSigned {
  readonly domain: string;
  readonly mxSigned: boolean;
  readonly host: string;
  readonly addressType: 'A' | 'AAAA';
  readonly addressSigned: boolean;
  /** Where the host's address records are after CNAMEs (the host itself without an alias). */
  readonly addressOwner?: string;
}

/**
 * DANE applies to an MX host only where the domain's MX records and the host's address records
 * are DNSSEC-signed: whoever could forge those could name any host, whose TLSA records would
 * then prove nothing. The reason names the first record set that is not.
 */
export function daneApplies(s: DaneRecordsSigned): { readonly applies: boolean; readonly reason: string } {
  const alias = s.addressOwner && s.addressOwner.toLowerCase() !== s.host.toLowerCase() ? ` (through CNAMEs to ${s.addressOwner})` : '';
  if (!s.mxSigned) return { applies: false, reason: `the MX records of ${s.domain} are not DNSSEC-signed` };
  if (!s.addressSigned) return { applies: false, reason: `the ${s.addressType} records of ${s.host}${alias} are not DNSSEC-signed` };
  return { applies: true, reason: `the MX records of ${s.domain} and the ${s.addressType} records of ${s.host}${alias} are DNSSEC-signed` };
}

/**
 * A lookup DANE depends on failed (SERVFAIL: a bogus signature perhaps, or a timeout): the MX
 * host is not tried, never a fallback to less than DANE. `why` says which lookup.
 */
export function daneNotTriedReply(host: string, why: string): Reply {
  return localReply(451, '4.7.5', `DANE: ${why}; ${host} not tried`);
}

/**
 * The TLSA base domains to look at, in order (RFC 7672 §2.2.2): an MX host whose address records
 * are reached through CNAMEs, all DNSSEC-signed, has its TLSA records looked for at the expanded
 * name first (the provider's host that serves it), then at the MX host name; otherwise at the
 * MX host name only. A chain that is not signed never gets here (daneApplies refuses it).
 */
export function tlsaBaseDomains(s: Pick<DaneRecordsSigned, 'host' | 'addressSigned' | 'addressOwner'>): readonly string[] {
  const host = s.host.replace(/\.$/, '').toLowerCase();
  const owner = s.addressOwner?.replace(/\.$/, '').toLowerCase();
  return owner && owner !== host && s.addressSigned ? [owner, host] : [host];
}
