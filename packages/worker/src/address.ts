// Envelope addresses as routing needs them: the domain normalised (lower case, IDN as
// punycode, address literals canonical), the local part kept as written.
import { normaliseDomain } from '@mailgw/config';

export interface SplitAddress {
  readonly local: string;
  /** Normalised domain: "bücher.example" → "xn--bcher-kva.example". */
  readonly domain: string;
  /** local@domain with the normalised domain: what goes into RCPT TO. */
  readonly address: string;
}

export function splitAddress(input: string): SplitAddress | null {
  const at = input.lastIndexOf('@');
  if (at <= 0 || at === input.length - 1) return null;
  const local = input.slice(0, at);
  if (/[\r\n\0<>]/.test(local)) return null;
  const d = normaliseDomain(input.slice(at + 1));
  if (!d.ok) return null;
  return { local, domain: d.value, address: `${local}@${d.value}` };
}
