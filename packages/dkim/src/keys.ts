// Reads the private keys `dkim` names, checking each the way an admin needs to hear about it:
// missing, unreadable, readable by group or others, not a private key, or not the type the
// selector's algorithm says. Problems are configuration issues (file, key path, what is wrong).
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolveDkimPaths, type ConfigIssue, type DkimConfig, type DomainPattern } from '@mailgw/config';
import type { DkimKey, DkimSetup } from './policy.js';

export type LoadKeysResult = { ok: true; setup: DkimSetup } | { ok: false; errors: ConfigIssue[] };

/** The minimum RSA size verifiers accept (RFC 8301 §3.2); keygen makes 2048. */
const MIN_RSA_BITS = 1024;

function keygenHint(domain: string, selector: string, algorithm: string): string {
  return `mailgw dkim keygen ${domain} --selector ${selector} --algorithm ${algorithm}`;
}

/**
 * Reads and checks one key file; a string is what is wrong with it. `mismatch` words a key of
 * another type than `algorithm` (the text after the file name).
 */
export function readKeyFile(file: string, algorithm: 'rsa' | 'ed25519', mismatch = (type: string) => `holds an ${type} key but the selector's algorithm is ${algorithm}`): KeyObject | string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `key file ${file} does not exist` : `cannot read key file ${file}: ${code ?? (e as Error).message}`;
  }
  if ((mode & 0o170000) !== 0o100000) return `key file ${file} is not a regular file`;
  if ((mode & 0o077) !== 0) return `key file ${file} has mode 0${(mode & 0o777).toString(8)}: a private key must not be readable by group or others (chmod 600 ${file})`;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (e) {
    return `cannot read key file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    return `key file ${file} does not hold a PEM private key`;
  }
  const type = key.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ed25519') return `key file ${file} holds a${type === 'ec' ? 'n' : ''} ${type ?? 'unknown'} key; DKIM signs with rsa or ed25519 keys`;
  if (type !== algorithm) return `key file ${file} ${mismatch(type)}`;
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (type === 'rsa' && bits !== undefined && bits < MIN_RSA_BITS) return `key file ${file} holds a ${bits}-bit RSA key; verifiers refuse keys under ${MIN_RSA_BITS} bits (RFC 8301): make a 2048-bit one`;
  return key;
}

export interface KeyLocation {
  /** gateway.yaml as shown in messages. */
  readonly configFile: string;
  /** Directory keyFile paths start from (gateway.yaml's). */
  readonly baseDir: string;
  /** Absolute dataDir (default key files: <dataDir>/dkim/<domain>/<selector>.key). */
  readonly dataDir: string;
}

/** Loads every selector's key; all problems at once. */
export function loadDkimKeys(config: DkimConfig, acceptedDomains: readonly DomainPattern[], where: KeyLocation): LoadKeysResult {
  const configFile = where.configFile;
  const dkim = resolveDkimPaths(config, where.baseDir, where.dataDir);
  const errors: ConfigIssue[] = [];
  const keys = new Map<string, DkimKey[]>();
  dkim.domains.forEach((d, i) => {
    const list: DkimKey[] = [];
    d.selectors.forEach((s, j) => {
      const r = readKeyFile(s.keyPath, s.algorithm);
      if (typeof r === 'string') {
        const missing = / does not exist$/.test(r);
        errors.push({ file: configFile, path: `dkim.domains[${i}].selectors[${j}]${s.keyFile ? '.keyFile' : ''}`, message: missing && !s.keyFile ? `${r}; create it with \`${keygenHint(d.domain, s.name, s.algorithm)}\`` : r });
      } else list.push({ domain: d.domain, selector: s.name, algorithm: s.algorithm, privateKey: r, file: s.keyPath });
    });
    keys.set(d.domain, list);
  });
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, setup: { keys, headers: dkim.headers, oversignHeaders: dkim.oversignHeaders, canonicalization: dkim.canonicalization, acceptedDomains } };
}
