// Seeded SMTP session fuzzing: sessions made of mostly-valid transactions, mutated commands,
// garbage, odd line endings, pipelining, splits at random bytes and abrupt ends, played over
// real TCP (and TLS after STARTTLS), and the checks every reply must pass whatever was sent.
// The same seed gives the same bytes (timing aside): a failure names the seed and the session.
import net from 'node:net';
import tls from 'node:tls';

/** mulberry32: small, fast, good enough to pick test inputs; a seed gives one sequence. */
export function prng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
  };
}

export interface Rng {
  next(): number;
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
}

/** One step of a session: bytes to send, and what the client does with them. */
export type Step =
  | { readonly kind: 'send'; readonly bytes: Buffer }
  /** STARTTLS and, on its 220, a real TLS handshake on the same socket (`garbage`: random bytes instead). */
  | { readonly kind: 'starttls'; readonly garbage: boolean }
  /** Ends the session here: FIN, destroy, or a TCP reset. */
  | { readonly kind: 'end'; readonly how: 'end' | 'destroy' | 'reset' };

export interface FuzzSession {
  readonly index: number;
  /** Seeds the client's own choices while playing (where to cut a split write). */
  readonly playSeed: number;
  /** Which listener: the anonymous Default connector or Client (STARTTLS + AUTH). */
  readonly target: 'default' | 'client';
  /** Loopback source address (a client IP as the policy sees it). */
  readonly from: string;
  readonly steps: readonly Step[];
  /** How steps go out: wait for replies after each, pipeline them, or cut them at random bytes. */
  readonly pacing: readonly ('wait' | 'pipeline' | 'split')[];
}

const b = (s: string) => Buffer.from(s, 'latin1');
const crlf = (s: string) => b(`${s}\r\n`);

/** Addresses: ours, relay attempts written every tricky way, and broken ones. */
const LOCAL = ['postmaster@contoso.test', 'alice@contoso.test', 'bob@sales.contoso.test', 'desk@fabrikam.test', 'Postmaster@CONTOSO.TEST'];
const FOREIGN = [
  'someone@example.com',
  'a%b@contoso.test',
  'b!a@contoso.test',
  '"x@example.com"@contoso.test',
  '@relay.example:user@contoso.test',
  'user@contoso.test@example.com',
  'user@[127.0.0.1]',
  'user@[IPv6:::1]',
  'user@contoso.test.',
  'user@xn--cntoso-9ua.test',
  'usér@contoso.test',
  'user@contöso.test',
  'user@',
  '@contoso.test',
  'user',
  '',
  'a'.repeat(70) + '@contoso.test',
  'a'.repeat(600) + '@contoso.test',
  'user@' + 'x'.repeat(300) + '.test',
];
const SENDERS = ['', 'sender@example.com', 'postmaster@contoso.test', 'bounce+x=y@example.org', '"odd sender"@example.net', 'usér@exämple.com', 'x@[192.0.2.1]'];

/** ESMTP parameters the listener advertises, well formed. */
const MAIL_PARAMS_OK = ['SIZE=1000', 'BODY=7BIT', 'BODY=8BITMIME', 'SMTPUTF8', 'RET=FULL', 'RET=HDRS', 'ENVID=abc+2B'];
const RCPT_PARAMS_OK = ['NOTIFY=SUCCESS,FAILURE', 'NOTIFY=NEVER', 'NOTIFY=DELAY', 'ORCPT=rfc822;a@example.com'];
const MAIL_PARAMS = [...MAIL_PARAMS_OK, 'SIZE=99999999999', 'SIZE=-1', 'SIZE=', 'BODY=BINARYMIME', 'BODY=WHAT', 'SMTPUTF8=yes', 'RET=X', 'ENVID=+ZZ', 'ENVID=' + 'e'.repeat(200), 'AUTH=<>', 'AUTH=alice@contoso.test', 'FOO=bar', 'XYZ', 'REQUIRETLS', 'MT-PRIORITY=3'];
const RCPT_PARAMS = [...RCPT_PARAMS_OK, 'NOTIFY=NEVER,SUCCESS', 'NOTIFY=', 'ORCPT=utf-8;us\\x{E9}r@example.com', 'ORCPT=bogus', 'ORCPT=rfc822;' + 'o'.repeat(600), 'FOO=1'];

const VERBS = ['HELO', 'EHLO', 'MAIL FROM:', 'RCPT TO:', 'DATA', 'BDAT', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'EXPN', 'HELP', 'ETRN', 'TURN', 'AUTH', 'STARTTLS', 'XCLIENT', 'XFORWARD', 'PROXY', 'LHLO', 'SEND FROM:', 'SAML FROM:', 'BURL', 'GET / HTTP/1.0', 'USER x'];

function randomBytes(r: Rng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = r.int(0, 255);
  return out;
}

/** Printable junk, sometimes with a control or 8-bit byte. */
function junk(r: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += r.chance(0.05) ? String.fromCharCode(r.pick([0, 9, 11, 12, 13, 10, 27, 127, 0x85, 0xa0, 0xff])) : String.fromCharCode(r.int(0x20, 0x7e));
  return s;
}

/** A command line changed a little: case, spaces, a byte, a cut, a duplicate. */
function mutate(r: Rng, line: string): string {
  switch (r.int(0, 8)) {
    case 0:
      return line.toLowerCase();
    case 1:
      return line.replace(/:/, r.pick([' :', ': ', '', '::']));
    case 2: {
      const i = r.int(0, line.length);
      return line.slice(0, i) + junk(r, r.int(1, 3)) + line.slice(i);
    }
    case 3:
      return line.slice(0, r.int(0, line.length));
    case 4:
      return `${line} ${line}`;
    case 5:
      return line.replace(/[<>]/g, '');
    case 6:
      return `  ${line}\t`;
    case 7:
      return line + ' ' + 'x'.repeat(r.int(500, 1200));
    default:
      return line.replace(/ /g, '\t');
  }
}

function address(r: Rng): string {
  return r.chance(0.6) ? r.pick(LOCAL) : r.pick(FOREIGN);
}

function params(r: Rng, pool: readonly string[]): string {
  const n = r.chance(0.6) ? 0 : r.int(1, 3);
  let s = '';
  for (let i = 0; i < n; i++) s += ' ' + r.pick(pool);
  return s;
}

/** A message (header and body), not yet dot-stuffed; `clean`: CRLF only, no junk bytes. */
function message(r: Rng, clean: boolean): string {
  const lines: string[] = [];
  if (r.chance(0.9)) lines.push(`From: ${r.pick(SENDERS) || 'x@example.com'}`);
  if (r.chance(0.8)) lines.push(`To: ${address(r)}`);
  if (r.chance(0.8)) lines.push(`Subject: ${r.chance(0.2) ? '=?utf-8?B?' + Buffer.from('héllo ✓').toString('base64') + '?=' : clean ? 'hello' : junk(r, r.int(0, 60))}`);
  if (r.chance(0.5)) lines.push(`Message-ID: <${(clean ? `${r.int(1, 1e9)}.fuzz` : junk(r, r.int(1, 30)).replace(/[\r\n]/g, '')) + (r.chance(0.05) ? 'm'.repeat(900) : '')}@example.com>`);
  if (r.chance(0.1)) lines.push(`X-Long: ${'h'.repeat(r.int(900, 3000))}`);
  if (r.chance(0.1)) lines.push(`X-Folded: a`, `\tb`, ` c`);
  if (!clean && r.chance(0.1)) lines.push(`Bad header without colon`);
  if (r.chance(0.1)) lines.push(`Content-Type: multipart/mixed; boundary="${junk(r, 8).replace(/["\r\n]/g, '')}"`);
  if (r.chance(0.9)) lines.push('');
  // Now and then a large one: streamed to Redis in several flushes, its header kept apart.
  if (clean && r.chance(0.03)) lines.push(...Array.from({ length: r.int(4_000, 30_000) }, (_, i) => `big ${i} ${'z'.repeat(70)}`));
  const bodyLines = r.int(0, 40);
  for (let i = 0; i < bodyLines; i++) {
    const k = clean ? r.pick([0, 1, 2, 3, 6, 7, 8]) : r.int(0, 20);
    if (k === 0) lines.push('.');
    else if (k === 1) lines.push('..');
    else if (k === 2) lines.push('.x');
    else if (k === 3) lines.push('x'.repeat(r.int(998, 2500)));
    else if (k === 4) lines.push(junk(r, r.int(0, 80)));
    else if (k === 5) lines.push(randomBytes(r, r.int(1, 40)).toString('latin1'));
    else if (k === 6) lines.push('QUIT');
    else if (k === 7) lines.push(`MAIL FROM:<${address(r)}>`);
    else lines.push(`line ${i} ${'y'.repeat(r.int(0, 70))}`);
  }
  return lines.map((l) => `${l}\r\n`).join('');
}

/** The end of DATA: right, a smuggling variant, or none at all. */
function dataEnd(r: Rng): string {
  if (r.chance(0.85)) return '.\r\n';
  return r.pick(['\n.\n', '\r.\r', '\n.\r\n', '\r\n.\n', '.\n', '.\r', '']);
}

/** One transaction's steps (MAIL, RCPTs, DATA or BDAT): a clean one most of the time. */
function transaction(r: Rng, out: Step[]): void {
  const clean = r.chance(0.6);
  const send = (line: string) => out.push({ kind: 'send', bytes: crlf(!clean && r.chance(0.15) ? mutate(r, line) : line) });
  send(`MAIL FROM:<${clean ? r.pick(['', 'sender@example.com', 'bounce+x=y@example.org']) : r.pick(SENDERS)}>${params(r, clean ? MAIL_PARAMS_OK : MAIL_PARAMS)}`);
  const n = !clean && r.chance(0.1) ? 0 : r.int(1, 5);
  for (let i = 0; i < n; i++) send(`RCPT TO:<${clean && i === 0 ? r.pick(LOCAL) : address(r)}>${params(r, clean ? RCPT_PARAMS_OK : RCPT_PARAMS)}`);
  const msg = message(r, clean);
  if (r.chance(0.75)) {
    send('DATA');
    const stuffed = msg.replace(/^\./gm, clean || r.chance(0.9) ? '..' : '.');
    out.push({ kind: 'send', bytes: Buffer.concat([b(stuffed), b(clean ? '.\r\n' : dataEnd(r))]) });
  } else {
    // BDAT: chunks of the message, sometimes with a size that does not match what follows.
    const bytes = b(msg);
    let at = 0;
    const chunks = r.int(1, 3);
    for (let c = 0; c < chunks; c++) {
      const last = c === chunks - 1;
      const len = last ? bytes.length - at : r.int(0, bytes.length - at);
      const chunk = bytes.subarray(at, at + len);
      at += len;
      const declared = clean || r.chance(0.8) ? chunk.length : r.pick([chunk.length + 5, Math.max(0, chunk.length - 3), 99_999_999_999]);
      const head = !clean && r.chance(0.1) ? `BDAT ${r.pick(['x', '-1', '', '10 LAST LAST', '1e3'])}` : `BDAT ${declared}${last ? ' LAST' : ''}`;
      out.push({ kind: 'send', bytes: Buffer.concat([crlf(head), chunk]) });
    }
  }
}

/** A command that is not part of a transaction, or plain garbage. */
function otherCommand(r: Rng): Buffer {
  switch (r.int(0, 9)) {
    case 0:
      return crlf(`${r.pick(VERBS)} ${junk(r, r.int(0, 40))}`);
    case 1:
      return crlf(r.pick(['RSET', 'NOOP', 'NOOP hello', 'HELP', 'VRFY postmaster', 'EXPN staff', 'RSET x']));
    case 2:
      return crlf(`AUTH ${r.pick(['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2', 'GSSAPI', ''])}${r.chance(0.5) ? ' ' + randomBytes(r, r.int(1, 60)).toString('base64') : ''}`);
    case 3:
      return crlf(`XCLIENT ADDR=${r.pick(['203.0.113.5', '127.0.0.17', 'junk'])} NAME=x`);
    case 4:
      return crlf(`PROXY TCP4 127.0.0.17 127.0.0.1 ${r.int(1, 65535)} 25`);
    case 5:
      return randomBytes(r, r.int(1, 200));
    case 6:
      return crlf('x'.repeat(r.int(1000, 20_000)));
    case 7:
      return b(r.pick(['\r\n', '\n', '\r', ' \r\n', 'NOOP\n', 'NOOP\r', 'NO\0OP\r\n']));
    case 8:
      return crlf(`EHLO ${r.pick(['', 'x'.repeat(300), 'hôst.example', '[127.0.0.1]', '[bogus]', junk(r, 20)])}`);
    default:
      return crlf(mutate(r, `RCPT TO:<${address(r)}>`));
  }
}

/** Loopback client addresses outside the test's relay range (anonymous clients). */
const SOURCES = Array.from({ length: 14 }, (_, i) => `127.0.0.${i + 2}`);

export function makeSession(seed: number, index: number): FuzzSession {
  const r = prng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const target: FuzzSession['target'] = r.chance(0.15) ? 'client' : 'default';
  const steps: Step[] = [];
  const style = r.int(0, 9); // 0-5 mostly valid, 6-7 garbage, 8-9 cut short
  if (r.chance(0.9)) steps.push({ kind: 'send', bytes: crlf(r.chance(0.1) ? mutate(r, 'EHLO fuzz.example') : r.pick(['EHLO fuzz.example', 'HELO fuzz.example', 'EHLO [127.0.0.1]'])) });
  if (target === 'client' && r.chance(0.8)) {
    steps.push({ kind: 'starttls', garbage: r.chance(0.15) });
    steps.push({ kind: 'send', bytes: crlf('EHLO fuzz.example') });
    if (r.chance(0.5)) steps.push({ kind: 'send', bytes: crlf(`AUTH PLAIN ${Buffer.from(`\0alice\0${r.chance(0.5) ? 'correct horse' : junk(r, 8)}`).toString('base64')}`) });
  }
  const actions = style <= 5 ? r.int(1, 4) : r.int(2, 12);
  for (let i = 0; i < actions; i++) {
    if (style <= 5 || r.chance(0.3)) transaction(r, steps);
    else steps.push({ kind: 'send', bytes: otherCommand(r) });
    if (r.chance(0.15)) steps.push({ kind: 'send', bytes: otherCommand(r) });
  }
  if (style >= 8) {
    // Cut short: drop a random tail, maybe inside a step's bytes, and leave abruptly.
    const keep = r.int(0, steps.length);
    steps.splice(keep);
    const last = steps[steps.length - 1];
    if (last?.kind === 'send' && r.chance(0.5)) steps[steps.length - 1] = { kind: 'send', bytes: last.bytes.subarray(0, r.int(0, last.bytes.length)) };
    steps.push({ kind: 'end', how: r.pick(['end', 'destroy', 'reset']) as 'end' | 'destroy' | 'reset' });
  } else if (r.chance(0.85)) steps.push({ kind: 'send', bytes: crlf(r.chance(0.9) ? 'QUIT' : 'quit') });
  const pacing = steps.map(() => r.pick(['wait', 'wait', 'wait', 'pipeline', 'pipeline', 'split'] as const));
  return { index, playSeed: r.int(0, 2 ** 31), target, from: r.pick(SOURCES), steps, pacing };
}

export interface SessionResult {
  readonly session: FuzzSession;
  /** Reply lines read (plain text, then inside TLS), CRLF removed. */
  readonly lines: readonly string[];
  /** Bytes after the last CRLF when the connection closed. */
  readonly trailing: string;
  /** Queue ids of the 250s that accepted a message. */
  readonly accepted: readonly string[];
  /** What the checks found wrong (empty: nothing). */
  readonly problems: readonly string[];
}

/** How long the client waits for the reply to a step before going on without it. */
const REPLY_WAIT_MS = 250;

/** Plays a session against host:port and checks what came back. */
export async function playSession(s: FuzzSession, host: string, port: number): Promise<SessionResult> {
  const problems: string[] = [];
  const lines: string[] = [];
  const r = prng(s.playSeed);
  let pending = Buffer.alloc(0);
  let closed = false;
  let waitLine: (() => void) | null = null;
  let sock: net.Socket | tls.TLSSocket = net.connect({ host, port, localAddress: s.from });
  let validating = true;
  const onData = (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    for (let i = pending.indexOf('\r\n'); i >= 0; i = pending.indexOf('\r\n')) {
      const line = pending.subarray(0, i).toString('latin1');
      pending = pending.subarray(i + 2);
      if (validating) lines.push(line);
      if (/^\d{3} /.test(line)) waitLine?.();
    }
  };
  const attach = (x: net.Socket) => {
    x.on('data', onData);
    x.on('error', () => undefined);
    x.on('close', () => {
      closed = true;
      waitLine?.();
    });
  };
  attach(sock);
  await new Promise<void>((resolve) => {
    sock.once('connect', resolve);
    sock.once('error', (err) => {
      problems.push(`connect failed: ${err.message}`);
      closed = true;
      resolve();
    });
  });
  /** Waits for the next final reply line (or close), at most `ms`. */
  const nextReply = (ms = REPLY_WAIT_MS) =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        waitLine = null;
        resolve();
      }
      waitLine = done;
    });
  if (!closed) await nextReply(5000); // the greeting
  let queued: Buffer[] = [];
  const flush = async (mode: 'wait' | 'pipeline' | 'split') => {
    if (queued.length === 0 || closed) return;
    const bytes = Buffer.concat(queued);
    queued = [];
    if (mode === 'split' && bytes.length > 1) {
      let at = 0;
      while (at < bytes.length && !closed) {
        const n = r.int(1, bytes.length);
        sock.write(bytes.subarray(at, at + n));
        at += n;
        await new Promise((r) => setTimeout(r, 1));
      }
    } else sock.write(bytes);
    await nextReply();
  };
  for (let i = 0; i < s.steps.length && !closed; i++) {
    const step = s.steps[i]!;
    const mode = s.pacing[i]!;
    if (step.kind === 'send') {
      queued.push(step.bytes);
      if (mode !== 'pipeline' || i === s.steps.length - 1) await flush(mode);
    } else if (step.kind === 'end') {
      await flush('wait');
      if (step.how === 'end') sock.end();
      else if (step.how === 'reset' && !(sock instanceof tls.TLSSocket)) sock.resetAndDestroy(); // a TLS socket has no handle of its own to reset
      else sock.destroy();
      closed = true;
    } else {
      await flush('wait');
      const before = lines.length;
      sock.write('STARTTLS\r\n');
      await nextReply(2000);
      const reply = lines.slice(before).find((l) => /^\d{3} /.test(l));
      if (!reply?.startsWith('220 ')) continue; // refused (e.g. a mangled session): go on in plain text
      if (step.garbage) {
        validating = false; // what comes back now is TLS alerts, not replies
        sock.write(Buffer.from('this is not a TLS ClientHello\r\n'));
        await nextReply(1000);
        break;
      }
      const plain = sock as net.Socket;
      plain.removeListener('data', onData);
      const t = tls.connect({ socket: plain, rejectUnauthorized: false, servername: 'mail.contoso.test' });
      const ok = await new Promise<boolean>((resolve) => {
        const failed = (err: Error) => {
          problems.push(`TLS handshake after 220 failed: ${err.message}`);
          resolve(false);
        };
        t.once('error', failed);
        t.once('secureConnect', () => {
          t.off('error', failed); // later errors (the server closing after a 421) are not the handshake's
          resolve(true);
        });
      });
      if (!ok) break;
      sock = t;
      attach(t);
    }
  }
  // Give the server time to answer the last bytes and to close after QUIT, then leave.
  if (!closed) await nextReply(1000);
  if (!sock.destroyed) sock.destroy();
  return { session: s, lines, trailing: pending.toString('latin1'), accepted: acceptedIds(lines), problems: [...problems, ...checkReplies(lines)] };
}

function acceptedIds(lines: readonly string[]): string[] {
  const ids: string[] = [];
  for (const l of lines) {
    const m = /^250[ -].*\[InternalId=([0-9A-Z]+)\]/.exec(l);
    if (m) ids.push(m[1]!);
  }
  return ids;
}

/**
 * What every reply must be, whatever the client sent (RFC 5321 §4.2, §4.5.3.1.5; RFC 3463):
 * "ddd-" or "ddd " with a code from 200 to 599, printable US-ASCII only (a client's bytes
 * echoed back must not start lines or break them), at most 512 octets with CRLF, the lines of
 * a multiline reply sharing one code, and an enhanced code whose class is the reply's (but for
 * Exchange's 451 5.7.3).
 */
/** Exchange's own reply, reproduced word for word although its class is not its code's (exchange-model.md). */
const EXCHANGE_AS_IS: ReadonlySet<string> = new Set(['451 5.7.3 STARTTLS is required to send mail']);

export function checkReplies(lines: readonly string[]): string[] {
  const problems: string[] = [];
  let multi: string | null = null;
  for (const line of lines) {
    const m = /^([2-5]\d\d)([ -])(.*)$/s.exec(line);
    if (!m) {
      problems.push(`not a reply line: ${JSON.stringify(line.slice(0, 120))}`);
      continue;
    }
    const [, code, sep, text] = m as unknown as [string, string, string, string];
    if (multi !== null && code !== multi) problems.push(`multiline reply changes its code (${multi} → ${code}): ${JSON.stringify(line.slice(0, 120))}`);
    multi = sep === '-' ? code : null;
    if (!/^[\x20-\x7e]*$/.test(text)) problems.push(`reply with a byte outside printable US-ASCII: ${JSON.stringify(line.slice(0, 160))}`);
    if (line.length + 2 > 512) problems.push(`reply line of ${line.length + 2} octets (over 512): ${JSON.stringify(line.slice(0, 120))}…`);
    const e = /^(\d)\.\d{1,3}\.\d{1,3}(?: |$)/.exec(text);
    if (e && e[1] !== code[0] && !EXCHANGE_AS_IS.has(line)) problems.push(`enhanced code class ${e[1]} under reply code ${code}: ${JSON.stringify(line.slice(0, 120))}`);
  }
  return problems;
}
