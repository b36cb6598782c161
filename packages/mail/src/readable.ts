// Addresses as people read them: IDN domains in U-labels (RFC 5890), for the tracking output,
// `mailgw queue` and the human-readable part of DSNs. The policy and the machine-readable
// fields keep comparing and carrying A-labels (one rule); this is display only. A label that
// is not valid punycode (or decodes to something IDNA does not allow) is shown as it is.
import { domainToUnicode } from 'node:url';

/** "xn--bcher-kva.test" → "bücher.test"; anything else (ASCII, literals, bad punycode) unchanged. */
export function readableDomain(domain: string): string {
  if (!/(^|\.)xn--/i.test(domain)) return domain;
  const u = domainToUnicode(domain);
  return u !== '' && !/[\x00-\x20\x7f]/.test(u) ? u : domain;
}

/** An address with its domain in U-labels ("alice@xn--bcher-kva.test" → "alice@bücher.test"); the local part as it is. */
export function readableAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  return address.slice(0, at + 1) + readableDomain(address.slice(at + 1));
}
