// ARC sealing (RFC 8617) of mail mailgw authenticated on arrival, as it hands it on: the next
// hop (Exchange Online, Google) then has mailgw's verdicts, signed, although mailgw changed the
// message since (a disclaimer, a banner, a rewritten address) and the sender's DKIM signature no
// longer verifies there. The decision is pure: a message is sealed only when it carries
// mailgw's own Authentication-Results (the listener's header firewall removes any other that
// claims mailgw's authserv-id, so it can only be ours), and only if the chain it came with
// passed. The seal itself is mailauth's sealMessage (ARC-Seal, ARC-Message-Signature,
// ARC-Authentication-Results, to go in front of the message).
import type { KeyObject } from 'node:crypto';
import { arcSealKeyPath, type ArcSealConfig, type ConfigIssue } from '@mailgw/config';
import { authservId, fieldValue, messageHeader, parseHeaderFields, type HeaderField } from '@mailgw/mail';
import { sealMessage } from 'mailauth';
import { readKeyFile, type KeyLocation } from './keys.js';

/** RFC 8617 §4.2.1: a chain has at most 50 ARC sets; a sealer past that does not seal. */
export const ARC_MAX_INSTANCES = 50;

/** What a worker seals with. */
export interface ArcSealKey {
  readonly domain: string;
  readonly selector: string;
  readonly privateKey: KeyObject;
  /** The same key as PEM, as mailauth's sealer takes it (exported once, not per message). */
  readonly pem: string;
  readonly file: string;
}

export type ArcSealDecision =
  | { readonly seal: true; readonly cv: 'none' | 'pass'; readonly instance: number; readonly authResults: string }
  | { readonly seal: false; readonly reason: string };

/** The field's value as it was folded (after the colon, leading blanks and the final CRLF dropped). */
function foldedValue(f: HeaderField): string {
  const text = f.raw.toString('latin1');
  return text.slice(text.indexOf(':') + 1).replace(/^[ \t]+/, '').replace(/\r?\n$/, '');
}

/**
 * Whether to seal a message whose header is `fields`, for mailgw's authserv-id `fqdn`: only
 * with mailgw's own Authentication-Results (its value becomes the ARC-Authentication-Results),
 * with cv=none when the message came without a chain and cv=pass when it came with one that
 * verified (`arc=pass` in those results); a chain that failed is not extended (RFC 8617 §5.1.2:
 * nobody after a fail trusts it), nor one already 50 sets long.
 */
export function arcSealDecision(fields: readonly HeaderField[], fqdn: string): ArcSealDecision {
  const id = fqdn.toLowerCase();
  const ours = fields.find((f) => f.name === 'authentication-results' && authservId(fieldValue(f)) === id);
  if (!ours) return { seal: false, reason: `not authenticated on arrival (no Authentication-Results of ${id})` };
  const value = fieldValue(ours);
  // Any ARC field at all is a chain (a malformed one too): only one that verified is extended.
  const arcFields = fields.filter((f) => f.name === 'arc-seal' || f.name === 'arc-message-signature' || f.name === 'arc-authentication-results');
  if (arcFields.length === 0) return { seal: true, cv: 'none', instance: 1, authResults: foldedValue(ours) };
  let instances = 0;
  for (const f of arcFields) {
    if (f.name !== 'arc-seal') continue;
    const i = /(?:^|;)\s*i\s*=\s*(\d+)/.exec(fieldValue(f));
    instances = Math.max(instances, i ? Number(i[1]) : 0);
  }
  const arc = /(?:^|;)\s*arc\s*=\s*([a-z]+)/i.exec(value)?.[1]?.toLowerCase() ?? 'none';
  if (arc !== 'pass') return { seal: false, reason: `the ARC chain it came with did not verify (arc=${arc}): a broken chain is not extended` };
  if (instances >= ARC_MAX_INSTANCES) return { seal: false, reason: `its ARC chain already has ${instances} sets, the most RFC 8617 allows` };
  return { seal: true, cv: 'pass', instance: instances + 1, authResults: foldedValue(ours) };
}

/** Reads the sealing key: a configuration issue naming senderAuthentication.arcSeal when it is missing, too open or not RSA. */
export function loadArcSealKey(config: ArcSealConfig, where: KeyLocation): { ok: true; key: ArcSealKey } | { ok: false; error: ConfigIssue } {
  const file = arcSealKeyPath(config, where.baseDir, where.dataDir);
  const r = readKeyFile(file, 'rsa');
  if (typeof r !== 'string') return { ok: true, key: { domain: config.domain, selector: config.selector, privateKey: r, pem: r.export({ type: 'pkcs8', format: 'pem' }).toString(), file } };
  const missing = / does not exist$/.test(r);
  const hint = missing && !config.keyFile ? `; create it with \`mailgw dkim keygen ${config.domain} --selector ${config.selector}\`` : '';
  const what = / but the selector's algorithm is rsa$/.test(r) ? `key file ${file} holds an ed25519 key; ARC seals with RSA (rsa-sha256, RFC 8617 §4.1.3)` : r;
  return { ok: false, error: { file: where.configFile, path: `senderAuthentication.arcSeal${config.keyFile ? '.keyFile' : ''}`, message: `${what}${hint}` } };
}

/**
 * The ARC set for `message` (already everything the next hop gets, signatures included), to
 * send in front of it. `message`'s header must have led to `decision`.
 */
export async function arcSealFields(message: Buffer, key: ArcSealKey, decision: Extract<ArcSealDecision, { seal: true }>, signTime = new Date()): Promise<Buffer> {
  // mailauth 4.13.3's types name only some of the options its sealer reads (cv, authResults, signTime).
  const options = { signingDomain: key.domain, selector: key.selector, privateKey: key.pem, algorithm: 'rsa-sha256', cv: decision.cv, authResults: decision.authResults, signTime } as unknown as Parameters<typeof sealMessage>[1];
  const fields = await sealMessage(message, options);
  if (fields.length === 0) throw new Error('mailauth produced no ARC set');
  return fields;
}

/** The header fields of a whole message in memory. */
export function headerFieldsOf(message: Buffer): HeaderField[] {
  return parseHeaderFields(messageHeader(message).header);
}
