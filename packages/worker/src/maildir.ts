// Local delivery into Maildir (<root>/<domain>/<local>/{tmp,new,cur}): written to tmp/, fsynced,
// then renamed into new/ (and the directory fsynced), so new/ never holds half a message even
// if the process or machine dies. Return-Path and Delivered-To are prepended; the message
// bytes follow unchanged.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';

/** Characters kept as they are in a mailbox directory name; everything else is %XX. */
const SAFE_LOCAL = /[a-z0-9!#$&'*+=?^_`{|}~.-]/;

/**
 * The directory name of a local part: lower case, unsafe bytes percent-encoded (so "/" or ".."
 * can never leave the domain directory), and a leading dot encoded (no hidden or dot dirs).
 */
export function mailboxName(local: string): string {
  let out = '';
  for (const ch of local.toLowerCase()) {
    if (SAFE_LOCAL.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out.replace(/^\./, '%2E');
}

export function mailboxDir(root: string, domain: string, local: string): string {
  if (domain === '' || domain === '.' || domain === '..' || /[/\\\0]/.test(domain)) throw new RangeError(`unusable domain ${JSON.stringify(domain)}`);
  const name = mailboxName(local);
  if (name === '') throw new RangeError('empty local part');
  return path.join(root, domain, name);
}

/** The line ending of the message (for the headers prepended here): CRLF unless its first line ends in LF. */
function lineEnding(body: Buffer): '\r\n' | '\n' {
  const lf = body.indexOf(0x0a);
  return lf > 0 && body[lf - 1] !== 0x0d ? '\n' : '\r\n';
}

let counter = 0;
const host = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072');

/** A Maildir unique name: <seconds>.M<µs>P<pid>R<random>Q<n>.<host>,S=<size> */
export function uniqueName(size: number, now: number = Date.now()): string {
  const sec = Math.floor(now / 1000);
  const usec = (now % 1000) * 1000 + Math.floor(Math.random() * 1000);
  counter = (counter + 1) % 1_000_000_000;
  return `${sec}.M${usec}P${process.pid}R${randomBytes(6).toString('hex')}Q${counter}.${host},S=${size}`;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface MaildirMessage {
  readonly root: string;
  readonly domain: string;
  readonly local: string;
  /** Envelope sender ('' for the null sender). */
  readonly returnPath: string;
  /** The recipient, for Delivered-To. */
  readonly deliveredTo: string;
  readonly body: Buffer;
}

const headerSafe = (s: string) => s.replace(/[\r\n\0]/g, '');

/** Delivers one copy; resolves with the path of the file in new/. */
export async function deliverToMaildir(m: MaildirMessage): Promise<string> {
  const dir = mailboxDir(m.root, m.domain, m.local);
  await Promise.all(['tmp', 'new', 'cur'].map((d) => mkdir(path.join(dir, d), { recursive: true, mode: 0o700 })));
  const eol = lineEnding(m.body);
  const prefix = Buffer.from(`Return-Path: <${headerSafe(m.returnPath)}>${eol}Delivered-To: ${headerSafe(m.deliveredTo)}${eol}`, 'utf8');
  const size = prefix.length + m.body.length;
  const name = uniqueName(size);
  const tmp = path.join(dir, 'tmp', name);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    // writeFile loops until every byte is written (a single write may be partial).
    await fh.writeFile(prefix);
    await fh.writeFile(m.body);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  const final = path.join(dir, 'new', name);
  try {
    await rename(tmp, final);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(path.join(dir, 'new'));
  return final;
}
