// DKIM-Signature fields for a message, computed in one streaming pass: the body is hashed in
// 64 KB slices of the buffer (or as a stream arrives), never copied whole, and the result is
// only the signature fields, to be sent in front of the unchanged message. One body hash
// serves every selector (two during a rotation).
import { createHash, sign as cryptoSign } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import { MessageParser, dkimBody, formatSignatureHeaderLine, generateCanonicalizedHeader, type BodyHasher, type ParsedHeader, type ParsedHeaders } from './mailauth-parts.js';
import type { DkimKey } from './policy.js';

export interface SignOptions {
  readonly headers: readonly string[];
  readonly oversignHeaders: readonly string[];
  /** header/body, e.g. relaxed/relaxed. */
  readonly canonicalization: string;
  /** t= (default: now). */
  readonly signTime?: Date;
}

const SLICE = 64 * 1024;
const signAsync = promisify(cryptoSign);

/** mailauth's parser with its override points filled: headers kept, body hashed as it streams. */
export function bodyHashParser(bodyCanon: string): { parser: Writable; result: () => { headers: ParsedHeaders | null; bodyHash: string } } {
  let headers: ParsedHeaders | null = null;
  let hasher: BodyHasher | null = null;
  let bodyHash: string | null = null;
  const parser = new MessageParser();
  parser.messageHeaders = async (h) => {
    headers = h;
    hasher = dkimBody(bodyCanon, 'sha256', false);
  };
  parser.nextChunk = async (chunk) => {
    hasher?.update(chunk);
  };
  parser.finalChunk = async () => {
    if (hasher) bodyHash = hasher.digest('base64');
  };
  return {
    parser: parser as unknown as Writable,
    result: () => ({ headers, bodyHash: bodyHash ?? dkimBody(bodyCanon, 'sha256', false).digest('base64') }),
  };
}

export function* slices(message: Buffer): Generator<Buffer> {
  for (let i = 0; i < message.length; i += SLICE) yield message.subarray(i, i + SLICE);
}

/**
 * The fields to sign, bottom-up as RFC 6376 §5.4.2 takes repeated names, and h= with every
 * oversigned name once more: a verifier finds no further instance, which signs its absence.
 */
export function signedFields(parsed: readonly ParsedHeader[], headers: readonly string[], oversign: readonly string[]): { keys: string; headers: ParsedHeader[] } {
  const want = new Set(headers.map((h) => h.toLowerCase()));
  const picked: ParsedHeader[] = [];
  for (let i = parsed.length - 1; i >= 0; i--) if (want.has(parsed[i]!.key)) picked.push(parsed[i]!);
  const names = picked.map((h) => h.casedKey);
  for (const o of oversign) names.push(o);
  return { keys: names.join(': '), headers: picked };
}

/**
 * Signs `message` (CRLF line ends; a Buffer, or a stream read once) with each key and returns
 * the DKIM-Signature fields, each ending in CRLF, to put in front of the message. Throws when a
 * key cannot sign (the caller decides what happens to the mail).
 */
export async function dkimSignatures(message: Buffer | Readable, keys: readonly DkimKey[], o: SignOptions): Promise<string> {
  const [headerCanon = 'relaxed', bodyCanon = 'relaxed'] = o.canonicalization.toLowerCase().split('/');
  const { parser, result } = bodyHashParser(bodyCanon);
  await pipeline(Buffer.isBuffer(message) ? slices(message) : message, parser);
  const { headers, bodyHash } = result();
  if (!headers) throw new Error('the message has no header');
  const fields = signedFields(headers.parsed, o.headers, o.oversignHeaders);
  const signTime = o.signTime ?? new Date();
  let out = '';
  for (const key of keys) {
    const algorithm = key.algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256';
    const { canonicalizedHeader, dkimHeaderOpts } = generateCanonicalizedHeader('DKIM', fields, {
      signingDomain: key.domain,
      selector: key.selector,
      algorithm,
      canonicalization: `${headerCanon}/${bodyCanon}`,
      bodyHash,
      signTime,
    });
    // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data; RSA hashes as it signs.
    // On libuv's thread pool (the callback form), off the worker's event loop.
    const signature = key.algorithm === 'rsa' ? await signAsync('sha256', canonicalizedHeader, key.privateKey) : await signAsync(null, createHash('sha256').update(canonicalizedHeader).digest(), key.privateKey);
    out += formatSignatureHeaderLine('DKIM', { ...dkimHeaderOpts, b: signature.toString('base64') }, true) + '\r\n';
  }
  return out;
}
