// ARC sealing (RFC 8617) of mail mailgw authenticated on arrival, as it hands it on: the next
// hop (Exchange Online, Google) then has mailgw's verdicts, signed, although mailgw changed the
// message since (a disclaimer, a banner, a rewritten address) and the sender's DKIM signature no
// longer verifies there. The decision is pure: a message is sealed only when it carries
// mailgw's own Authentication-Results (the listener's header firewall removes any other that
// claims mailgw's authserv-id, except from the organisation's own servers: sessions holding
// ms-Exch-Accept-Headers-Organization), and only if the chain it came with passed. The seal (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results, to go in front
// of the message) is made from mailauth's parts as the DKIM signer makes its signatures
// (mailauth-parts.ts), with the key read once: mailauth's own sealMessage takes the key as PEM
// text and reads it again for each of its two signatures (0.9 against 0.25 ms a signature here).
// The signatures are made on libuv's thread pool, off the worker's event loop.
import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { DEFAULT_DKIM_HEADERS, selectorKeyPath, type ArcSealConfig, type ConfigIssue } from '@mailgw/config';
import { authservId, fieldValue, type HeaderField } from '@mailgw/mail';
import { formatRelaxedLine, formatSignatureHeaderLine, generateCanonicalizedHeader } from './mailauth-parts.js';
import { readKeyFile, type KeyLocation } from './keys.js';
import type { BodyFacts } from './policy.js';
import { bodyHashParser, signedFields, slices } from './sign.js';

const signAsync = promisify(cryptoSign);

/**
 * What the ARC-Message-Signature signs, when present: the DKIM signer's default list and the
 * DKIM-Signature fields in front (mailauth's choice too); never ARC fields or
 * Authentication-Results (RFC 8617 §4.1.2).
 */
export const ARC_AMS_HEADERS: readonly string[] = ['DKIM-Signature', ...DEFAULT_DKIM_HEADERS];

/** RFC 8617 §4.2.1: a chain has at most 50 ARC sets; a sealer past that does not seal. */
export const ARC_MAX_INSTANCES = 50;

/** What a worker seals with. */
export interface ArcSealKey {
  readonly domain: string;
  readonly selector: string;
  readonly privateKey: KeyObject;
  readonly file: string;
}

/** One ARC set of the chain a message came with: its three fields as they are in the header. */
export interface ArcSet {
  readonly aar: Buffer;
  readonly ams: Buffer;
  readonly as: Buffer;
}

export type ArcSealDecision =
  | {
      readonly seal: true;
      readonly cv: 'none' | 'pass';
      readonly instance: number;
      readonly authResults: string;
      /** The sets before this one, i=1 first (empty for cv=none): the new ARC-Seal signs them. */
      readonly chain: readonly ArcSet[];
    }
  | { readonly seal: false; readonly reason: string };

/** The ARC fields by lower-case name (a Map: a field named "constructor" is no ARC field). */
const ARC_FIELDS: ReadonlyMap<string, keyof ArcSet> = new Map([
  ['arc-authentication-results', 'aar'],
  ['arc-message-signature', 'ams'],
  ['arc-seal', 'as'],
]);

/** The ARC sets of a header by instance, or why they are not a chain (each i=1..N once with its three fields). */
function arcSets(fields: readonly HeaderField[]): { sets: ArcSet[] } | { broken: string } {
  const byInstance = new Map<number, Partial<Record<keyof ArcSet, Buffer>>>();
  for (const f of fields) {
    const part = ARC_FIELDS.get(f.name);
    if (!part) continue;
    // ARC-Authentication-Results begins with i= (RFC 8617 §4.1.1); in the two signatures it is a
    // tag like the others, anywhere in the list (most put it first).
    const i = (part === 'aar' ? /^\s*i\s*=\s*(\d+)\s*;/ : /(?:^|;)\s*i\s*=\s*(\d+)\s*(?:;|$)/).exec(fieldValue(f));
    if (!i) return { broken: `an ${f.name} field without its i= tag` };
    const n = Number(i[1]);
    const set = byInstance.get(n) ?? {};
    if (set[part]) return { broken: `two ${f.name} fields for i=${n}` };
    set[part] = f.raw;
    byInstance.set(n, set);
  }
  const sets: ArcSet[] = [];
  for (let n = 1; n <= byInstance.size; n++) {
    const set = byInstance.get(n);
    if (!set) return { broken: `no ARC set i=${n} among ${byInstance.size}` };
    if (!set.aar || !set.ams || !set.as) return { broken: `ARC set i=${n} lacks a field` };
    sets.push({ aar: set.aar, ams: set.ams, as: set.as });
  }
  return { sets };
}

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
 * nobody after a fail trusts it), nor one already 50 sets long. A BINARYMIME body with bare CR
 * or LF is not sealed, as it is not DKIM-signed (verifiers canonicalise those octets differently;
 * see signingDecision).
 */
export function arcSealDecision(fields: readonly HeaderField[], fqdn: string, body: BodyFacts = { binaryMime: false, bareLineEnds: false }): ArcSealDecision {
  if (body.binaryMime && body.bareLineEnds) return { seal: false, reason: 'a binary body (BODY=BINARYMIME) with bare CR or LF: verifiers canonicalise it differently' };
  const id = fqdn.toLowerCase();
  const ours = fields.find((f) => f.name === 'authentication-results' && authservId(fieldValue(f)) === id);
  if (!ours) return { seal: false, reason: `not authenticated on arrival (no Authentication-Results of ${id})` };
  const value = fieldValue(ours);
  // Any ARC field at all is a chain (a malformed one too): only one that verified is extended.
  if (!fields.some((f) => ARC_FIELDS.has(f.name))) return { seal: true, cv: 'none', instance: 1, authResults: foldedValue(ours), chain: [] };
  const arc = /(?:^|;)\s*arc\s*=\s*([a-z]+)/i.exec(value)?.[1]?.toLowerCase() ?? 'none';
  if (arc !== 'pass') return { seal: false, reason: `the ARC chain it came with did not verify (arc=${arc}): a broken chain is not extended` };
  const chain = arcSets(fields);
  // It verified on arrival; something on the way here (a transport rule removing fields) broke it.
  if ('broken' in chain) return { seal: false, reason: `its ARC chain is no longer whole (${chain.broken})` };
  if (chain.sets.length >= ARC_MAX_INSTANCES) return { seal: false, reason: `its ARC chain already has ${chain.sets.length} sets, the most RFC 8617 allows` };
  return { seal: true, cv: 'pass', instance: chain.sets.length + 1, authResults: foldedValue(ours), chain: chain.sets };
}

/** Reads the sealing key: a configuration issue naming senderAuthentication.arcSeal when it is missing, too open or not RSA. */
export function loadArcSealKey(config: ArcSealConfig, where: KeyLocation): { ok: true; key: ArcSealKey } | { ok: false; error: ConfigIssue } {
  const file = selectorKeyPath(config.domain, config.selector, config.keyFile, where.baseDir, where.dataDir);
  const r = readKeyFile(file, 'rsa', (type) => `holds an ${type} key; ARC seals with RSA (rsa-sha256, RFC 8617 §4.1.3)`);
  if (typeof r !== 'string') return { ok: true, key: { domain: config.domain, selector: config.selector, privateKey: r, file } };
  const missing = / does not exist$/.test(r);
  const hint = missing && !config.keyFile ? `; create it with \`mailgw dkim keygen ${config.domain} --selector ${config.selector}\`` : '';
  return { ok: false, error: { file: where.configFile, path: `senderAuthentication.arcSeal${config.keyFile ? '.keyFile' : ''}`, message: `${r}${hint}` } };
}

/**
 * The ARC set for `message` (already everything the next hop gets, signatures included), to
 * send in front of it: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results, each ending
 * in CRLF. `message`'s header must have led to `decision`.
 */
export async function arcSealFields(message: Buffer, key: ArcSealKey, decision: Extract<ArcSealDecision, { seal: true }>, signTime = new Date()): Promise<Buffer> {
  const { instance: i, cv } = decision;
  const { parser, result } = bodyHashParser('relaxed');
  await pipeline(slices(message), parser);
  const { headers, bodyHash } = result();
  if (!headers) throw new Error('the message has no header');
  // ARC-Message-Signature: a DKIM signature with i= and no v= (RFC 8617 §4.1.2), relaxed/relaxed.
  const { canonicalizedHeader, dkimHeaderOpts } = generateCanonicalizedHeader('ARC', signedFields(headers.parsed, ARC_AMS_HEADERS, []), {
    signingDomain: key.domain,
    selector: key.selector,
    algorithm: 'rsa-sha256',
    canonicalization: 'relaxed/relaxed',
    bodyHash,
    signTime,
    instance: i,
  });
  const ams = formatSignatureHeaderLine('ARC', { ...dkimHeaderOpts, b: (await signAsync('sha256', canonicalizedHeader, key.privateKey)).toString('base64') }, true);
  const aar = `ARC-Authentication-Results: i=${i}; ${decision.authResults}`;
  // ARC-Seal (RFC 8617 §5.1.1): the sets before (only when they passed), this set's results and
  // message signature, then the seal itself with an empty b=, all relaxed.
  // t= as the ARC-Message-Signature's (mailauth's header code takes whole seconds down).
  const tags = { i, a: 'rsa-sha256', t: Math.floor(signTime.getTime() / 1000), cv, d: key.domain, s: key.selector };
  const chunks: Buffer[] = [];
  for (const set of decision.chain) chunks.push(formatRelaxedLine(set.aar, '\r\n'), formatRelaxedLine(set.ams, '\r\n'), formatRelaxedLine(set.as, '\r\n'));
  chunks.push(formatRelaxedLine(aar, '\r\n'), formatRelaxedLine(ams, '\r\n'));
  // A placeholder b= folds as the real one would; its value is then taken out.
  const unsigned = formatSignatureHeaderLine('AS', { b: 'a'.repeat(73), ...tags }, true);
  chunks.push(Buffer.from(formatRelaxedLine(unsigned).toString('binary').replace(/([;:\s]+b=)[^;]+/, '$1'), 'binary'));
  const as = formatSignatureHeaderLine('AS', { ...tags, b: (await signAsync('sha256', Buffer.concat(chunks), key.privateKey)).toString('base64') }, true);
  return Buffer.from(`${as}\r\n${ams}\r\n${aar}\r\n`, 'latin1');
}
