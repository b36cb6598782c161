// `mailgw dkim keygen`: a new private key in its file (mode 0600, directories 0700), never over
// an existing one (a rotation uses a new selector).
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DkimAlgorithm } from './policy.js';

export function generateDkimKey(algorithm: DkimAlgorithm): KeyObject {
  return algorithm === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ed25519').privateKey;
}

/** Writes the key as PKCS#8 PEM; fails with EEXIST rather than replace a key. */
export function writeKeyFile(file: string, key: KeyObject): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
}
