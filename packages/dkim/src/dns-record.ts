// The DNS TXT record that publishes a selector's public key (RFC 6376 §3.6.1; Ed25519 per RFC
// 8463 §4.2: p= is the raw 32-byte key), and the comparison of a published record with a key.
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { DkimAlgorithm } from './policy.js';

/** The p= value for a key: base64 SubjectPublicKeyInfo for RSA, the bare 32 bytes for Ed25519. */
export function publicKeyValue(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType === 'ed25519') {
    const spki = pub.export({ type: 'spki', format: 'der' });
    return spki.subarray(spki.length - 32).toString('base64');
  }
  return pub.export({ type: 'spki', format: 'der' }).toString('base64');
}

export function recordName(domain: string, selector: string): string {
  return `${selector}._domainkey.${domain}`;
}

/** The TXT record's value: v=DKIM1; k=rsa|ed25519; p=… */
export function recordValue(key: KeyObject, algorithm: DkimAlgorithm): string {
  return `v=DKIM1; k=${algorithm}; p=${publicKeyValue(key)}`;
}

/** The record as a zone file line, split into strings of at most 255 characters (RSA-2048 needs two). */
export function zoneLine(domain: string, selector: string, key: KeyObject, algorithm: DkimAlgorithm): string {
  const value = recordValue(key, algorithm);
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return `${recordName(domain, selector)}. IN TXT ( ${parts.join(' ')} )`;
}

/** Tags of a DKIM key record; whitespace inside values removed (it may be folded). */
export function parseKeyRecord(text: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    tags.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).replace(/\s+/g, ''));
  }
  return tags;
}

export type RecordCheck = { ok: true; detail: string } | { ok: false; problem: string };

/** Compares the TXT records published at the selector's name with the key. */
export function checkPublishedRecords(records: readonly string[], key: KeyObject, algorithm: DkimAlgorithm): RecordCheck {
  const dkim = records.filter((r) => /^\s*v\s*=\s*DKIM1\b/i.test(r) || /(^|;)\s*p\s*=/.test(r));
  if (dkim.length === 0) return { ok: false, problem: records.length ? `no DKIM key record among ${records.length} TXT record(s)` : 'no TXT record is published' };
  if (dkim.length > 1) return { ok: false, problem: `${dkim.length} DKIM key records are published; verifiers need exactly one` };
  const tags = parseKeyRecord(dkim[0]!);
  const k = (tags.get('k') ?? 'rsa').toLowerCase();
  if (k !== algorithm) return { ok: false, problem: `the record says k=${k}, the key is ${algorithm}` };
  const p = tags.get('p') ?? '';
  if (p === '') return { ok: false, problem: 'the record has an empty p= (the key is revoked)' };
  if (p !== publicKeyValue(key)) return { ok: false, problem: 'the published p= is not the public half of this key (publish the record keygen printed)' };
  const t = tags.get('t');
  return { ok: true, detail: t && t.split(':').includes('y') ? 'matches (t=y: testing mode, verifiers may ignore failures)' : 'matches' };
}
