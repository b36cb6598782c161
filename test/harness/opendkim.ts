/**
 * Test harness: Debian's opendkim in signing mode, a real milter, on a free loopback inet
 * socket with a temp dir holding its configuration and an RSA key made with node:crypto
 * (selector "test", relaxed/relaxed). `verify()` checks a stored message's DKIM-Signature
 * against the public key (RFC 6376 relaxed canonicalisation), so a test asserts that what
 * mailgw stored is what opendkim signed, not only that a header was added. mailauthVerdicts():
 * what mailauth says of each signature, the keys given (no DNS).
 *
 *   const dkim = await startOpenDkim('contoso.test');   // null when opendkim is not installed
 *   after(() => dkim?.stop());
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createVerify, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findExecutable, findFreePort } from '@mailgw/queue';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';

export interface TestOpenDkim {
  /** inet:127.0.0.1:<port> */
  readonly address: string;
  readonly domain: string;
  /** Checks the message's DKIM-Signature with the key opendkim signed with; returns what failed, or null. */
  verify(message: Buffer): string | null;
  stop(): Promise<void>;
}

export function findOpenDkim(): string | null {
  return findExecutable('opendkim');
}

export function openDkimSkip(): string | false {
  return findOpenDkim() ? false : 'opendkim is not installed and the bootstrap could not install it (as root: apt-get install -y --no-install-recommends opendkim)';
}


function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export async function startOpenDkim(domain: string): Promise<TestOpenDkim | null> {
  const bin = findOpenDkim();
  if (!bin) return null;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-opendkim-'));
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyFile = path.join(dir, 'test.private');
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  const port = await findFreePort('127.0.0.1');
  const conf = path.join(dir, 'opendkim.conf');
  writeFileSync(
    conf,
    [
      'Syslog no',
      'Mode s',
      `Domain ${domain}`,
      'Selector test',
      `KeyFile ${keyFile}`,
      `Socket inet:${port}@127.0.0.1`,
      `PidFile ${path.join(dir, 'opendkim.pid')}`,
      'Canonicalization relaxed/relaxed',
      'InternalHosts 127.0.0.0/8',
      'RequireSafeKeys no',
      'SignHeaders From,To,Subject,Date,Message-ID',
      'OversignHeaders From',
      '',
    ].join('\n'),
  );
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0 ? ['-u', 'root'] : [];
  const child: ChildProcess = spawn(bin, ['-f', '-x', conf, ...asRoot], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  const t0 = Date.now();
  while (!(await listening(port))) {
    if (exited || Date.now() - t0 > 15_000) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`opendkim did not start: ${stderr.slice(-1000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    address: `inet:127.0.0.1:${port}`,
    domain,
    verify: (message) => verifyDkim(message, publicKey),
    async stop() {
      if (!exited) {
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** RFC 6376 3.4.2: relaxed header canonicalisation of one field ("Name: value" with folds). */
function relaxedHeader(field: string): string {
  const colon = field.indexOf(':');
  const name = field.slice(0, colon).trim().toLowerCase();
  const value = field.slice(colon + 1).replace(/\r\n/g, '').replace(/[ \t]+/g, ' ').trim();
  return `${name}:${value}`;
}

/** RFC 6376 3.4.4: relaxed body canonicalisation. */
function relaxedBody(body: string): string {
  const lines = body.split('\r\n').map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  if (lines[lines.length - 1] === '') lines.pop();
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.length ? lines.join('\r\n') + '\r\n' : '';
}

/**
 * An RSA, relaxed/relaxed DKIM verifier of its own (RFC 6376, node:crypto), independent of
 * mailauth: checks the first DKIM-Signature of `message` with `key`; returns what failed, or null.
 */
export function verifyDkim(message: Buffer, key: KeyObject): string | null {
  const text = message.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const header = text.slice(0, end + 2);
  const body = text.slice(end + 4);
  const fields = header.split(/\r\n(?![ \t])/).filter((f) => f !== '');
  const sig = fields.find((f) => /^dkim-signature:/i.test(f));
  if (!sig) return 'no DKIM-Signature';
  const tags = new Map(sig.slice(sig.indexOf(':') + 1).replace(/\s+/g, '').split(';').filter((t) => t).map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)] as [string, string]));
  if (tags.get('c') !== 'relaxed/relaxed') return `canonicalisation ${tags.get('c')}`;
  const bh = createHash('sha256').update(relaxedBody(body), 'latin1').digest('base64');
  if (bh !== tags.get('bh')) return `body hash ${bh} ≠ bh=${tags.get('bh')}`;
  // Signed fields, each occurrence taken from the bottom up (RFC 6376 5.4.2).
  const used = new Map<string, number>();
  const input: string[] = [];
  for (const name of (tags.get('h') ?? '').split(':')) {
    const k = name.toLowerCase();
    const all = fields.filter((f) => f.slice(0, f.indexOf(':')).trim().toLowerCase() === k);
    const n = used.get(k) ?? 0;
    used.set(k, n + 1);
    const f = all[all.length - 1 - n];
    if (f) input.push(relaxedHeader(f) + '\r\n');
  }
  input.push(relaxedHeader(sig).replace(/([;:\s]b=)[^;]*/, '$1').replace(/\r\n$/, ''));
  const ok = createVerify('RSA-SHA256').update(input.join(''), 'latin1').verify(key, tags.get('b') ?? '', 'base64');
  return ok ? null : 'signature does not verify';
}

/**
 * OpenDKIM's own verifier on one message: `opendkim -t` (test mode: the message as if it came
 * through the milter) with the public keys given as records (`TestPublicKeys`), so no DNS is
 * asked. Returns "<selector>:<result>" per signature as OpenDKIM's Authentication-Results
 * says (pass, fail, neutral, …), sorted; null when opendkim is not installed.
 */
export function openDkimVerify(message: Buffer, records: ReadonlyMap<string, string>): string[] | null {
  const bin = findOpenDkim();
  if (!bin) return null;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-opendkim-verify-'));
  try {
    writeFileSync(path.join(dir, 'keys'), [...records].map(([name, value]) => `${name} ${value}\n`).join(''));
    writeFileSync(path.join(dir, 'message.eml'), message);
    writeFileSync(path.join(dir, 'opendkim.conf'), ['Syslog no', 'Mode v', `TestPublicKeys ${path.join(dir, 'keys')}`, 'AlwaysAddARHeader yes', 'AuthservID opendkim.test', 'MinimumKeyBits 1024', ''].join('\n'));
    const asRoot = typeof process.getuid === 'function' && process.getuid() === 0 ? ['-u', 'root'] : [];
    const r = spawnSync(bin, ['-x', path.join(dir, 'opendkim.conf'), ...asRoot, '-vvv', '-t', path.join(dir, 'message.eml')], { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 });
    const out = `${r.stdout}\n${r.stderr}`;
    const ar = /hname='Authentication-Results' hvalue='([^']*)'/.exec(out);
    if (!ar) throw new Error(`opendkim -t gave no Authentication-Results (exit ${r.status}): ${out.slice(-1500)}`);
    return [...ar[1]!.matchAll(/dkim=(\w+)[^;]*?header\.s=([^\s;]+)/g)].map((m) => `${m[2]}:${m[1]}`).sort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** mailauth's verdict per signature ("selector:pass"), sorted, the keys from `records` (no DNS). */
export async function mailauthVerdicts(raw: Buffer, records: ReadonlyMap<string, string>): Promise<string[]> {
  const resolver = async (name: string, type: string) => {
    const v = records.get(name.replace(/\.$/, ''));
    if (type === 'TXT' && v) return [[v]];
    throw Object.assign(new Error('no such record'), { code: 'ENOTFOUND' });
  };
  const r = await dkimVerify(raw, { resolver: resolver as never });
  return r.results.map((x) => `${x.selector}:${x.status.result}`).sort();
}
