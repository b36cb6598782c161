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
}

/**
 * DANE applies to an MX host only where the domain's MX records and the host's address records
 * are DNSSEC-signed: whoever could forge those could name any host, whose TLSA records would
 * then prove nothing. The reason names the first record set that is not.
 */
export function daneApplies(s: DaneRecordsSigned): { readonly applies: boolean; readonly reason: string } {
  if (!s.mxSigned) return { applies: false, reason: `the MX records of ${s.domain} are not DNSSEC-signed` };
  if (!s.addressSigned) return { applies: false, reason: `the ${s.addressType} records of ${s.host} are not DNSSEC-signed` };
  return { applies: true, reason: `the MX records of ${s.domain} and the ${s.addressType} records of ${s.host} are DNSSEC-signed` };
}

/**
 * A lookup DANE depends on failed (SERVFAIL: a bogus signature perhaps, or a timeout): the MX
 * host is not tried, never a fallback to less than DANE. `why` says which lookup.
 */
export function daneNotTriedReply(host: string, why: string): Reply {
  return localReply(451, '4.7.5', `DANE: ${why}; ${host} not tried`);
}
