// gateway.yaml `dkim`: DKIM signing of mail that leaves the organisation (RFC 6376, Ed25519 per
// RFC 8463). Off unless present. Every key once, with its default; key files are checked by
// @mailgw/dkim at start-up and by `mailgw check` (file, mode, type), not here: this is pure.
import path from 'node:path';
import { z } from 'zod';
import { matchDomain, normaliseDomain, type DomainPattern } from './domain.js';
import type { ConfigIssue } from './issues.js';
import { ciEnum, listOf } from './zod-helpers.js';

export const DKIM_ALGORITHMS = ['rsa', 'ed25519'] as const;
export type DkimAlgorithm = (typeof DKIM_ALGORITHMS)[number];

export const DKIM_CANONICALIZATIONS = ['relaxed/relaxed', 'relaxed/simple', 'simple/relaxed', 'simple/simple'] as const;

/** Signed when present (RFC 6376 §5.4.1's recommendation, as OpenDKIM's default list). */
export const DEFAULT_DKIM_HEADERS = [
  'From', 'Reply-To', 'Subject', 'Date', 'To', 'Cc', 'Message-ID', 'In-Reply-To', 'References',
  'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'Resent-Date', 'Resent-From', 'Resent-To', 'Resent-Cc',
  'List-Id', 'List-Help', 'List-Unsubscribe', 'List-Unsubscribe-Post', 'List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive',
] as const;

/** Signed once more than present, so nobody can add another one later (RFC 6376 §8.15). */
export const DEFAULT_DKIM_OVERSIGN = ['From'] as const;

export const domainName = z.string().transform((s, ctx): string => {
  const d = normaliseDomain(s);
  if (!d.ok || d.value.startsWith('[') || !/^[a-z0-9.-]+$/.test(d.value)) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a domain name (no wildcards: list each signing domain)` });
    return z.NEVER;
  }
  return d.value;
});

export const selectorName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, 'must be a DNS label (letters, digits, hyphens; dots separate labels), e.g. s2026')
  .transform((s) => s.toLowerCase());

const headerName = z.string().trim().regex(/^[!-9;-~]+$/, 'must be a header field name such as Subject');

const selectorSchema = z.strictObject({
  name: selectorName.describe('The selector: the key is published at <name>._domainkey.<domain>.'),
  algorithm: ciEnum(DKIM_ALGORITHMS).default('rsa').describe('rsa (rsa-sha256, 2048-bit keys from keygen) or ed25519 (ed25519-sha256, RFC 8463). The key file must hold that type.'),
  keyFile: z.string().min(1).optional().describe('PEM private key, relative to gateway.yaml. Default: <dataDir>/dkim/<domain>/<name>.key, where `mailgw dkim keygen` writes it. Must not be readable by group or others.'),
});
export type DkimSelectorConfig = z.output<typeof selectorSchema>;

const domainSchema = z.strictObject({
  domain: domainName.describe('The signing domain (d=); mail whose From: address is in this domain is signed.'),
  selectors: z
    .array(selectorSchema)
    .min(1, 'list one selector, or two while rotating keys')
    .max(2, 'at most two selectors: the current key and the next one during a rotation')
    .describe('One selector, or two during a key rotation (every message is then signed with both).'),
});
export type DkimDomainConfig = z.output<typeof domainSchema>;

export const dkimSchema = z.strictObject({
  domains: z.array(domainSchema).min(1, 'list at least one domain to sign for').describe('[{ domain, selectors: [{ name, algorithm, keyFile }] }]: the From: domains that are signed, with their keys.'),
  headers: listOf(headerName).default([...DEFAULT_DKIM_HEADERS]).describe('Header fields signed when present (h=). Default: From, Reply-To, Subject, Date, To, Cc, Message-ID, In-Reply-To, References, MIME-Version, Content-Type, Content-Transfer-Encoding, Resent-*, List-*.'),
  oversignHeaders: listOf(headerName).default([...DEFAULT_DKIM_OVERSIGN]).describe('Header fields signed once more than present, so a copy added on the way breaks the signature (default From). Each must also be in headers.'),
  canonicalization: ciEnum(DKIM_CANONICALIZATIONS).default('relaxed/relaxed').describe('header/body canonicalisation (c=): relaxed/relaxed (default; survives re-folding and whitespace changes), relaxed/simple, simple/relaxed or simple/simple.'),
  signNonAcceptedDomains: z.boolean().default(false).describe('Allow domains that are not accepted domains in domains (e.g. customers whose mail is relayed through this gateway); without it such a domain is a configuration error.'),
});
export type DkimConfig = z.output<typeof dkimSchema>;

export const DKIM_KEYS = Object.keys(dkimSchema.shape);
export const DKIM_DOMAIN_KEYS = Object.keys(domainSchema.shape);
export const DKIM_SELECTOR_KEYS = Object.keys(selectorSchema.shape);

/** Rules across keys: no domain or selector twice, oversigned headers are signed, domains are ours. */
export function dkimIssues(file: string, dkim: DkimConfig | CompiledDkimConfig, acceptedDomains: readonly DomainPattern[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Map<string, number>();
  dkim.domains.forEach((d, i) => {
    if (seen.has(d.domain)) out.push({ file, path: `dkim.domains[${i}].domain`, message: `"${d.domain}" is already listed at dkim.domains[${seen.get(d.domain)}]` });
    seen.set(d.domain, i);
    if (!dkim.signNonAcceptedDomains && matchDomain(d.domain, acceptedDomains) < 0) {
      out.push({ file, path: `dkim.domains[${i}].domain`, message: `"${d.domain}" is not an accepted domain; list it in acceptedDomains, or set dkim.signNonAcceptedDomains: true to sign for domains this organisation does not receive mail for` });
    }
    const [a, b] = d.selectors;
    if (a && b && a.name === b.name) out.push({ file, path: `dkim.domains[${i}].selectors[1].name`, message: `selector "${b.name}" is listed twice` });
  });
  const signed = new Set(dkim.headers.map((h) => h.toLowerCase()));
  dkim.oversignHeaders.forEach((h, i) => {
    if (!signed.has(h.toLowerCase())) out.push({ file, path: `dkim.oversignHeaders[${i}]`, message: `"${h}" is not in dkim.headers; an oversigned header must also be signed` });
  });
  if (!signed.has('from')) out.push({ file, path: 'dkim.headers', message: 'must include From (RFC 6376 §5.4: the From header field is always signed)' });
  return out;
}

/** A selector with its key file as an absolute path. */
export interface DkimSelector extends DkimSelectorConfig {
  readonly keyPath: string;
}
export interface DkimDomain extends Omit<DkimDomainConfig, 'selectors'> {
  readonly selectors: readonly DkimSelector[];
}
/** `dkim` as the gateway uses it: key files resolved (keyFile from gateway.yaml's directory, the default under dataDir). */
export interface CompiledDkimConfig extends Omit<DkimConfig, 'domains'> {
  readonly domains: readonly DkimDomain[];
}

/** Where `mailgw dkim keygen` writes a selector's key, and where it is looked for without keyFile. */
export function defaultDkimKeyPath(dataDir: string, domain: string, selector: string): string {
  return path.join(dataDir, 'dkim', domain, `${selector}.key`);
}

/** A selector's key file: keyFile from baseDir (gateway.yaml's directory), else the default under dataDir (absolute). */
export function selectorKeyPath(domain: string, selector: string, keyFile: string | undefined, baseDir: string, dataDir: string): string {
  return keyFile ? path.resolve(baseDir, keyFile) : defaultDkimKeyPath(dataDir, domain, selector);
}

/** Resolves key files: keyFile from baseDir (gateway.yaml's directory), the default under dataDir (absolute). */
export function resolveDkimPaths(dkim: DkimConfig, baseDir: string, dataDir: string): CompiledDkimConfig {
  return {
    ...dkim,
    domains: dkim.domains.map((d) => ({
      ...d,
      selectors: d.selectors.map((s) => ({ ...s, keyPath: selectorKeyPath(d.domain, s.name, s.keyFile, baseDir, dataDir) })),
    })),
  };
}

/**
 * senderAuthentication.arcSeal: the key mailgw seals with (RFC 8617 ARC-Seal and
 * ARC-Message-Signature, rsa-sha256: the only algorithm ARC defines). Published like a DKIM key
 * at <selector>._domainkey.<domain>; `mailgw dkim keygen <domain> --selector <selector>` makes it.
 */
export const arcSealSchema = z.strictObject({
  domain: domainName.describe('The sealing domain (d= of ARC-Seal): the name the next hop lists as a trusted ARC sealer (Exchange Online: Set-ArcConfig -ArcTrustedSealers).'),
  selector: selectorName.describe('The selector: the public key is published at <selector>._domainkey.<domain>.'),
  keyFile: z.string().min(1).optional().describe('PEM RSA private key, relative to gateway.yaml. Default: <dataDir>/dkim/<domain>/<selector>.key, where `mailgw dkim keygen <domain> --selector <selector>` writes it. Must not be readable by group or others.'),
});
export type ArcSealConfig = z.output<typeof arcSealSchema>;
