// Password hashes for SMTP AUTH users: scrypt from node:crypto in a PHC-style string
// ($scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>), verified in constant time.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const KEYLEN = 32;

function scryptAsync(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

function b64(buf: Buffer): string {
  return buf.toString('base64').replace(/=+$/, '');
}

export async function hashPassword(password: string, { ln = 15, r = 8, p = 1 } = {}): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, KEYLEN, { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r + 1024 * 1024 });
  return `$scrypt$ln=${ln},r=${r},p=${p}$${b64(salt)}$${b64(key)}`;
}

interface ParsedHash {
  ln: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseHash(phc: string): ParsedHash | null {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(phc);
  if (!m) return null;
  const ln = Number(m[1]);
  if (ln < 1 || ln > 20) return null;
  return { ln, r: Number(m[2]), p: Number(m[3]), salt: Buffer.from(m[4]!, 'base64'), key: Buffer.from(m[5]!, 'base64') };
}

/** A fixed hash to verify against when the user does not exist, so timing does not reveal it. */
const DUMMY = { ln: 15, r: 8, p: 1, salt: Buffer.alloc(16, 7), key: Buffer.alloc(KEYLEN, 0) };

/**
 * Verifies in constant time. With `phc` undefined (unknown user) it still does the same work
 * and returns false, so failures never tell whether the user exists.
 */
export async function verifyPassword(password: string, phc: string | undefined): Promise<boolean> {
  const parsed = (phc !== undefined ? parseHash(phc) : null) ?? DUMMY;
  const key = await scryptAsync(password, parsed.salt, parsed.key.length || KEYLEN, {
    N: 2 ** parsed.ln,
    r: parsed.r,
    p: parsed.p,
    maxmem: 256 * 2 ** parsed.ln * parsed.r + 1024 * 1024,
  });
  const ok = key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
  return ok && phc !== undefined && parsed !== DUMMY;
}
