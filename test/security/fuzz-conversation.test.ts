// The conversation fuzz: random SMTP sessions over real TCP (fast-check) played as a client
// plays them, each command sent after the reply to the one before, against a gateway in this
// process. fuzz.test.ts sends its sessions at random pace and judges every reply line and what
// Redis holds; this one judges the conversation itself. Whatever a client sends (well-formed
// commands in random order, parameters wrong and right, garbage, long lines, 8-bit bytes and
// NULs, pipelined groups, DATA and BDAT bodies with dots, bare line ends and oversize, AUTH with
// random answers, STARTTLS then TLS or plaintext, a client gone in the middle of a transfer),
// the gateway
//  - answers every command line, and within the timeout: no session is left hanging;
//  - answers with well-formed replies (three digits, one code per reply, at most 512 octets);
//  - closes a connection only after saying why (221 or 421), except where TLS failed;
//  - has every message it answered "Queued" in Redis (job and body), and nothing else: nothing
//    of a transfer cut off in the middle;
//  - logs no error and keeps serving: a plain transaction after the fuzz is queued as ever.
// A failing run prints its seed and the session's transcript; FUZZ_SEED=<n> replays it,
// FUZZ_RUNS=<n> runs more (2,000 runs of each of eight seeds passed when this was written),
// FUZZ_STATS=1 (or full) prints the replies reached, by code (or text).
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20261206;
/** How long a reply may take: generous, CI machines are loaded; a healthy gateway answers in milliseconds. */
const REPLY_TIMEOUT_MS = 4000;

let redis: TestRedis;
let gw: TestGateway;
const port: Record<'lenient' | 'strict', number> = { lenient: 0, strict: 0 };

before(async () => {
  redis = await startRedis();
  port.lenient = await freePort();
  port.strict = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    // No brute-force backoff: the fuzz fails AUTH often from one address and must still reach the authenticated states.
    gateway: await baseGateway({ authBackoff: { failures: 0 }, tlsReceiveDomainSecureList: ['partner.test'] }),
    connectors: {
      // Anonymous and authenticated clients on one connector, every extension on, no error limit:
      // a session can go on after any amount of garbage.
      lenient: {
        name: 'Fuzz Lenient', usage: 'Internet', bindings: [`127.0.0.1:${port.lenient}`], tarpitInterval: 0,
        authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['AnonymousUsers', 'ExchangeUsers'],
        maxProtocolErrors: 'unlimited', maxLogonFailures: 0, maxMessageSize: '64KB', maxRecipientsPerMessage: 3,
        bareLinefeedRejectionEnabled: false,
      },
      // Exchange's defaults for errors, AUTH only after STARTTLS, bare line ends refused, EHLO
      // domain required; domain security on (every STARTTLS asks for a client certificate).
      strict: {
        name: 'Fuzz Strict', usage: 'Internet', bindings: [`127.0.0.1:${port.strict}`], tarpitInterval: 0,
        authMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'], permissionGroups: ['AnonymousUsers', 'ExchangeUsers', 'Partners'],
        maxMessageSize: '64KB', requireEHLODomain: true, domainSecureEnabled: true,
      },
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

// ---------------------------------------------------------------------------------------------
// What a session is made of.

type Step =
  /** One command line; `ending` is how it ends on the wire. */
  | { kind: 'line'; text: string; ending: '\r\n' | '\n' }
  /** Several command lines in one write (RFC 2920); DATA only last. */
  | { kind: 'pipeline'; lines: string[] }
  /** BDAT with exactly its chunk. */
  | { kind: 'bdat'; chunk: Buffer; last: boolean }
  /** DATA; if the gateway says 354, this body (dot-stuffed, bare line ends as they are) and CRLF.CRLF. */
  | { kind: 'data'; body: Buffer }
  /** STARTTLS; after a 220 either the TLS handshake or plaintext garbage (the gateway must then drop the connection). */
  | { kind: 'starttls'; handshake: boolean }
  /** The client goes away in the middle: of a DATA body, of a BDAT chunk, of a command line (closed or reset). Ends the session. */
  | { kind: 'cut'; during: 'data' | 'bdat' | 'line'; how: 'close' | 'reset' };

const ADDRESSES = ['alice@contoso.test', 'bob@contoso.test', 'carol@fabrikam.test', 'x@example.net', '', 'postmaster', 'Postmaster@contoso.test', '"a b"@contoso.test', 'üser@contoso.test', 'a@[127.0.0.1]', 'a@[IPv6:::1]', '@relay.test:a@contoso.test', 'a@b@c', 'a..b@contoso.test', '<nested>@contoso.test', 'a@-bad-.test', 'a'.repeat(65) + '@contoso.test', `a@${'d'.repeat(64)}.test`, 'a@contoso.test.', 'a@contoso'];
const MAIL_PARAMS = ['SIZE=100', 'SIZE=0', 'SIZE=70000', 'SIZE=99999999999999999999', 'SIZE=abc', 'SIZE=', 'BODY=8BITMIME', 'BODY=BINARYMIME', 'BODY=7BIT', 'BODY=nonsense', 'SMTPUTF8', 'SMTPUTF8=yes', 'RET=HDRS', 'RET=FULL', 'RET=x', 'ENVID=abc+2Bdef', 'ENVID=', 'AUTH=<>', 'AUTH=alice@contoso.test', 'AUTH=', 'FOO=bar', 'XYZ', '=', 'SIZE=1 SIZE=2'];
const RCPT_PARAMS = ['NOTIFY=NEVER', 'NOTIFY=SUCCESS,FAILURE,DELAY', 'NOTIFY=NEVER,SUCCESS', 'NOTIFY=', 'ORCPT=rfc822;a@example.net', 'ORCPT=rfc822;', 'ORCPT=utf-8;a\\x{E9}@example.net', 'ORCPT=bad', 'FOO=1', 'NOTIFY=SUCCESS NOTIFY=FAILURE'];
const HELO_ARGS = ['client.test', '', '[127.0.0.1]', '[IPv6:::1]', '[300.1.1.1]', 'bad_name!', 'x'.repeat(300), 'client.test extra words', 'ü.test'];
const SIMPLE = ['RSET', 'NOOP', 'NOOP hello', 'VRFY alice', 'VRFY', 'EXPN list', 'HELP', 'HELP MAIL', 'TURN', 'ETRN contoso.test', 'XCLIENT ADDR=1.2.3.4', 'XFORWARD NAME=x', 'MAIL', 'MAIL FROM', 'MAIL FROM:', 'RCPT', 'RCPT TO:', 'DATA x', 'RSET x', 'AUTH', 'AUTH LOGIN', 'AUTH PLAIN', 'AUTH CRAM-MD5', 'AUTH XOAUTH2 abc', 'AUTH NTLM', 'AUTH PLAIN =', 'AUTH PLAIN !!!', '*', '', ' ', 'BDAT', 'BDAT abc', 'BDAT -1', 'BDAT 1x', 'STARTTLS now', 'QUIT now'];

const arbAddress = fc.oneof(fc.constantFrom(...ADDRESSES), fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, '')));
const arbParams = (list: string[]) => fc.subarray(list, { maxLength: 3 }).map((p) => (p.length ? ` ${p.join(' ')}` : ''));
const arbBrackets = fc.constantFrom((a: string) => `<${a}>`, (a: string) => a, (a: string) => `<${a}`, (a: string) => ` <${a}>`, (a: string) => `<${a}> `);
const arbMail = fc.tuple(arbAddress, arbParams(MAIL_PARAMS), arbBrackets, fc.constantFrom('MAIL FROM:', 'mail from:', 'MAIL FROM: ', 'MAIL FROM :', 'MAIL TO:')).map(([a, p, b, verb]) => `${verb}${b(a)}${p}`);
const arbRcpt = fc.tuple(arbAddress, arbParams(RCPT_PARAMS), arbBrackets, fc.constantFrom('RCPT TO:', 'rcpt to:', 'RCPT TO: ', 'RCPT FROM:')).map(([a, p, b, verb]) => `${verb}${b(a)}${p}`);
const arbHelo = fc.tuple(fc.constantFrom('EHLO', 'HELO', 'ehlo', 'LHLO'), fc.constantFrom(...HELO_ARGS)).map(([v, a]) => (a ? `${v} ${a}` : v));
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const arbAuth = fc.oneof(
  fc.constant(`AUTH PLAIN ${b64(`\0alice\0${PASSWORD}`)}`),
  fc.constant(`AUTH PLAIN ${b64('\0alice\0wrong')}`),
  fc.string({ maxLength: 60 }).map((s) => `AUTH PLAIN ${b64(s)}`),
  fc.constant(`AUTH LOGIN ${b64('alice')}`),
  fc.string({ maxLength: 30 }).map((s) => b64(s)), // an answer to a 334, or garbage
  fc.constant(b64(PASSWORD)),
);
/** Printable garbage, 8-bit bytes, NULs, control characters: anything but CR and LF. */
const arbGarbage = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a).toString('latin1')),
  fc.integer({ min: 513, max: 20_000 }).map((n) => 'X'.repeat(n)),
  fc.integer({ min: 513, max: 5_000 }).map((n) => `MAIL FROM:<${'a'.repeat(n)}@example.net>`),
  fc.integer({ min: 513, max: 5_000 }).map((n) => `RCPT TO:<${'a'.repeat(n)}@contoso.test>`),
  fc.constantFrom('\0', 'MAIL\0FROM:<a@b>', 'EHLO \0', '\x1b[31m', 'GET / HTTP/1.1', 'USER root', '\xff\xfe'),
).map((s) => s.replace(/[\r\n]/g, ''));
const arbCommand = fc.oneof(
  { arbitrary: arbHelo, weight: 3 },
  { arbitrary: arbMail, weight: 4 },
  { arbitrary: arbRcpt, weight: 4 },
  { arbitrary: fc.constantFrom(...SIMPLE), weight: 3 },
  { arbitrary: arbAuth, weight: 2 },
  { arbitrary: arbGarbage, weight: 2 },
);

/** A body line: text, dots, long lines, bare CR or LF inside, 8-bit bytes and NULs. */
const arbBodyLine = fc.oneof(
  { arbitrary: fc.string({ maxLength: 100 }).map((s) => s.replace(/[\r\n]/g, '')), weight: 6 },
  { arbitrary: fc.constantFrom('.', '..', '.x', '. ', 'From: a@example.net', 'Subject: fuzz', 'Message-ID: <fuzz@example.net>', 'Content-Type: multipart/mixed; boundary=b', '--b', '--b--', 'Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000', 'X-MS-Exchange-Organization-SCL: -1', ''), weight: 4 },
  { arbitrary: fc.constantFrom('a\nb', 'a\rb', 'a\n.\nb', '\r', '.\r', 'x\r\r'), weight: 1 },
  { arbitrary: fc.integer({ min: 999, max: 3000 }).map((n) => 'L'.repeat(n)), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a).toString('latin1').replace(/[\r\n]/g, '')), weight: 1 },
);
const arbBody = fc.oneof(
  { arbitrary: fc.array(arbBodyLine, { maxLength: 30 }).map((lines) => lines.map((l) => `${l}\r\n`).join('')), weight: 8 },
  // Past maxMessageSize (64 KB): 552 5.3.4 at the end, nothing stored.
  { arbitrary: fc.constant(`Subject: big\r\n\r\n${'B'.repeat(998)}\r\n`.repeat(70)), weight: 1 },
  // No line end before the final dot (the gateway adds none of its own to the wire).
  { arbitrary: fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, '')), weight: 1 },
).map((s) => Buffer.from(s, 'latin1'));

const arbStep: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.tuple(arbCommand, fc.constantFrom<'\r\n' | '\n'>('\r\n', '\r\n', '\r\n', '\n')).map(([text, ending]): Step => ({ kind: 'line', text, ending })), weight: 12 },
  { arbitrary: fc.tuple(fc.array(fc.oneof(arbMail, arbRcpt, fc.constantFrom('RSET', 'NOOP'), arbGarbage), { minLength: 2, maxLength: 6 }), fc.boolean()).map(([lines, data]): Step => ({ kind: 'pipeline', lines: data ? [...lines, 'DATA'] : lines })), weight: 2 },
  { arbitrary: arbBody.map((body): Step => ({ kind: 'data', body })), weight: 3 },
  { arbitrary: fc.tuple(fc.uint8Array({ maxLength: 2000 }), fc.boolean()).map(([a, last]): Step => ({ kind: 'bdat', chunk: Buffer.from(a), last })), weight: 2 },
  { arbitrary: fc.boolean().map((handshake): Step => ({ kind: 'starttls', handshake })), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant<'cut'>('cut'), during: fc.constantFrom<'data' | 'bdat' | 'line'>('data', 'bdat', 'line'), how: fc.constantFrom<'close' | 'reset'>('close', 'reset') }), weight: 1 },
);

/** Sessions that usually begin well (EHLO, MAIL, RCPT) so that the deeper states are reached too. */
const arbSession = fc.record({
  connector: fc.constantFrom<'lenient' | 'strict'>('lenient', 'lenient', 'strict'),
  opening: fc.constantFrom<string[]>([], ['EHLO client.test'], ['EHLO client.test', 'MAIL FROM:<x@example.net>', 'RCPT TO:<alice@contoso.test>'], ['EHLO client.test', `AUTH PLAIN ${b64(`\0alice\0${PASSWORD}`)}`, 'MAIL FROM:<alice@contoso.test>', 'RCPT TO:<x@example.net>']),
  steps: fc.array(arbStep, { minLength: 1, maxLength: 14 }),
  ending: fc.constantFrom<'quit' | 'close' | 'reset'>('quit', 'quit', 'close', 'reset'),
});
type Session = typeof arbSession extends fc.Arbitrary<infer T> ? T : never;

// ---------------------------------------------------------------------------------------------
// A client that records every line and never waits forever.

class FuzzClient {
  /** Every line the gateway sent, in order. */
  readonly lines: string[] = [];
  /** The last line of each complete reply. */
  readonly replies: string[] = [];
  closed = false;
  private socket: net.Socket;
  private buf = '';
  private taken = 0;
  private wake: (() => void) | null = null;
  private readonly onClose: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.onClose = new Promise((r) => socket.once('close', () => {
      this.closed = true;
      this.wake?.();
      r();
    }));
    this.attach(socket);
  }

  static async connect(p: number): Promise<FuzzClient> {
    const socket = net.connect({ host: '127.0.0.1', port: p });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    return new FuzzClient(socket);
  }

  private attach(s: net.Socket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      for (let i = this.buf.indexOf('\r\n'); i >= 0; i = this.buf.indexOf('\r\n')) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        this.lines.push(line);
        if (line[3] !== '-') this.replies.push(line);
      }
      this.wake?.();
    });
  }

  /** The next `n` complete replies (their last lines), or what came before the connection closed or the time ran out. */
  async next(n = 1): Promise<{ replies: string[]; closed: boolean; timedOut: boolean }> {
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    while (this.replies.length - this.taken < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, deadline - Date.now());
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = null;
    }
    const got = this.replies.slice(this.taken, this.taken + n);
    this.taken += got.length;
    return { replies: got, closed: this.closed && got.length < n, timedOut: got.length < n && !this.closed };
  }

  write(b: string | Buffer): void {
    if (!this.closed) this.socket.write(typeof b === 'string' ? Buffer.from(b, 'latin1') : b);
  }

  async upgrade(): Promise<boolean> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
    secure.on('error', () => undefined);
    const ok = await new Promise<boolean>((resolve) => {
      secure.once('secureConnect', () => resolve(true));
      secure.once('error', () => resolve(false));
      secure.once('close', () => resolve(false));
    });
    if (ok) {
      this.socket = secure;
      this.attach(secure);
    }
    return ok;
  }

  async end(how: 'quit' | 'close' | 'reset'): Promise<string | null> {
    let last: string | null = null;
    if (how === 'quit' && !this.closed) {
      // Inside an AUTH exchange the next line is the answer to the challenge: "*" cancels it (RFC 4954 4).
      if (this.replies.at(-1)?.startsWith('334')) {
        this.write('*\r\n');
        await this.next();
      }
      this.write('QUIT\r\n');
      const r = await this.next();
      last = r.replies[0] ?? null;
    }
    if (how === 'reset' && !(this.socket instanceof tls.TLSSocket)) this.socket.resetAndDestroy();
    else this.socket.end();
    await Promise.race([this.onClose, new Promise((r) => setTimeout(r, REPLY_TIMEOUT_MS))]);
    this.socket.destroy();
    return last;
  }
}

// ---------------------------------------------------------------------------------------------
// Running a session and judging what came back.

interface Outcome {
  transcript: string[];
  queued: string[];
}

const REPLY_LINE = /^([2-5][0-9]{2})([ -]|$)/;

/** Why the outcome breaks a rule, or null. */
function judge(c: FuzzClient, o: Outcome, tlsFailed: boolean): string | null {
  let code: string | null = null;
  for (const line of c.lines) {
    const m = REPLY_LINE.exec(line);
    if (!m) return `malformed reply line ${JSON.stringify(line.slice(0, 200))}`;
    if (Buffer.byteLength(line, 'latin1') + 2 > 512) return `reply line of ${line.length + 2} octets (RFC 5321 4.5.3.1.5: 512 at most): ${JSON.stringify(line.slice(0, 120))}…`;
    if (code && m[1] !== code) return `one reply, two codes: ${code} then ${JSON.stringify(line)}`;
    code = m[2] === '-' ? m[1]! : null;
  }
  if (c.closed && !o.transcript.some((t) => t.startsWith('>> (client '))) {
    const last = c.replies.at(-1) ?? '';
    if (!tlsFailed && !/^(221|421) /.test(last)) return `connection closed by the gateway after ${JSON.stringify(last)}, not a 221 or 421`;
  }
  return null;
}

async function run(s: Session): Promise<Outcome & { error: string | null }> {
  const c = await FuzzClient.connect(port[s.connector]);
  const o: Outcome = { transcript: [], queued: [] };
  let tlsFailed = false;
  let error: string | null = null;
  const note = (dir: '>>' | '<<', text: string) => o.transcript.push(`${dir} ${text.length > 160 ? `${text.slice(0, 160)}… (${text.length})` : text}`);
  /** Sends, then waits for `n` replies; false when the session cannot go on. */
  const exchange = async (bytes: string | Buffer, shown: string, n = 1): Promise<string[] | null> => {
    note('>>', shown);
    c.write(bytes);
    const r = await c.next(n);
    for (const x of r.replies) {
      note('<<', x);
      const id = /\[InternalId=([0-9A-Z]+)\] Queued/.exec(x)?.[1];
      if (id) o.queued.push(id);
    }
    if (r.timedOut) {
      error = `no reply within ${REPLY_TIMEOUT_MS} ms to ${JSON.stringify(shown.slice(0, 120))}`;
      return null;
    }
    return r.closed ? null : r.replies;
  };
  // Dot-stuffed as a client does (RFC 5321 4.5.2), at the start of each CRLF line: a bare LF or
  // CR before a dot is the smuggling case and goes as it is.
  const dataBody = async (body: Buffer): Promise<boolean> => {
    const stuffed = body.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
    return !!(await exchange(Buffer.from(`${stuffed}\r\n.\r\n`, 'latin1'), `(body) ${JSON.stringify(stuffed)} CRLF.CRLF`));
  };

  const greeting = await c.next();
  if (greeting.replies[0]) note('<<', greeting.replies[0]);
  else error = 'no greeting';
  for (const line of s.opening) {
    if (error || c.closed) break;
    await exchange(`${line}\r\n`, line);
  }
  for (const step of s.steps) {
    if (error || c.closed) break;
    // A line after an AUTH challenge is its answer, whatever it says; anything else a client
    // would send only after cancelling it (RFC 4954 4: "*"). Else a BDAT chunk would be read as commands.
    if (step.kind !== 'line' && c.replies.at(-1)?.startsWith('334')) await exchange('*\r\n', '*');
    if (error || c.closed) break;
    if (step.kind === 'line') {
      const r = await exchange(`${step.text}${step.ending}`, step.ending === '\n' ? `${step.text} (LF)` : step.text);
      // A DATA, an AUTH challenge or a STARTTLS reached through a random line: go on as a client would.
      if (r?.[0]?.startsWith('354')) await dataBody(Buffer.from('Subject: via a line\r\n\r\nx\r\n'));
      else if (r?.[0]?.startsWith('220')) {
        tlsFailed = !(await c.upgrade());
        note('>>', tlsFailed ? '(TLS handshake failed)' : '(TLS handshake)');
      }
    } else if (step.kind === 'pipeline') {
      const r = await exchange(step.lines.map((l) => `${l}\r\n`).join(''), step.lines.join(' | '), step.lines.length);
      if (r?.at(-1)?.startsWith('354')) await dataBody(Buffer.from('Subject: pipelined\r\n\r\nx\r\n'));
    } else if (step.kind === 'data') {
      const r = await exchange('DATA\r\n', 'DATA');
      if (r?.[0]?.startsWith('354')) await dataBody(step.body);
    } else if (step.kind === 'cut') {
      // Nothing of a message cut off may be stored: the count at the end says so.
      if (step.during === 'data') {
        const r = await exchange('DATA\r\n', 'DATA');
        if (r?.[0]?.startsWith('354')) c.write('Subject: cut\r\n\r\nhalf a mess');
      } else if (step.during === 'bdat') c.write(`BDAT 100 LAST\r\n${'x'.repeat(40)}`);
      else c.write('MAIL FROM:<half@exa');
      note('>>', `(client ${step.how === 'reset' ? 'resets' : 'closes'} the connection in the middle of ${step.during === 'line' ? 'a command line' : `a ${step.during.toUpperCase()} transfer`})`);
      await c.end(step.how);
      break;
    } else if (step.kind === 'bdat') {
      const head = `BDAT ${step.chunk.length}${step.last ? ' LAST' : ''}`;
      await exchange(Buffer.concat([Buffer.from(`${head}\r\n`), step.chunk]), `${head} (+${step.chunk.length} octets)`);
    } else {
      const r = await exchange('STARTTLS\r\n', 'STARTTLS');
      if (r?.[0]?.startsWith('220')) {
        if (step.handshake) {
          tlsFailed = !(await c.upgrade());
          note('>>', tlsFailed ? '(TLS handshake failed)' : '(TLS handshake)');
        } else {
          // Plaintext where the handshake should be: the gateway's TLS fails, it drops the connection.
          note('>>', '(client sends plaintext instead of a TLS handshake)');
          tlsFailed = true;
          c.write('MAIL FROM:<a@example.net>\r\n');
          const r2 = await c.next();
          if (r2.timedOut) error = 'plaintext after STARTTLS: the connection stayed open';
          else if (r2.replies.length) error = `plaintext after STARTTLS was answered: ${r2.replies[0]}`;
        }
      }
    }
  }
  if (!error && !c.closed) {
    const last = await c.end(s.ending);
    if (s.ending === 'quit') {
      note('>>', 'QUIT');
      if (last !== null) note('<<', last);
      if (!c.closed && last === null) error = 'no reply to QUIT';
      else if (last !== null && !/^221 /.test(last)) error = `QUIT answered ${JSON.stringify(last)}`;
    } else note('>>', `(client ${s.ending === 'reset' ? 'resets' : 'closes'} the connection)`);
  } else await c.end('close');
  error ??= judge(c, o, tlsFailed);
  return { ...o, error };
}

/** Every id answered "Queued" has its job and its body in Redis. */
async function assertQueued(ids: string[]): Promise<void> {
  for (const id of ids) {
    assert.ok(await gw.job(id), `queued ${id}: its job is in Redis`);
    assert.ok(await gw.body(id), `queued ${id}: its body is in Redis`);
  }
}

const queuedByFuzz: string[] = [];
/** Replies seen, by code (FUZZ_STATS=1 prints them, FUZZ_STATS=full by text: which states the runs reach). */
const replyCodes = new Map<string, number>();

describe('random SMTP sessions', () => {
  it('one at a time: every command answered, well-formed replies, closes explained, queued means stored', async () => {
    await fc.assert(
      fc.asyncProperty(arbSession, async (s) => {
        const r = await run(s);
        for (const t of r.transcript.filter((x) => x.startsWith('<< '))) {
          const k = process.env.FUZZ_STATS === 'full' ? t.slice(3, 80).replace(/<[^>]*>|\[InternalId=[^\]]*\]|at .*/g, '') : t.slice(3, 12);
          replyCodes.set(k, (replyCodes.get(k) ?? 0) + 1);
        }
        if (r.error) throw new Error(`${r.error}\n  connector ${s.connector}\n  ${r.transcript.join('\n  ')}`);
        await assertQueued(r.queued);
        queuedByFuzz.push(...r.queued);
      }),
      {
        seed: SEED,
        numRuns: Number(process.env.FUZZ_RUNS ?? 300),
        endOnFailure: true,
        // The session's own transcript (in the error) says more than the generated values, some
        // of which are lines of 20,000 octets.
        asyncReporter: async (d) => {
          if (d.failed) throw new Error(`seed ${d.seed}, path ${d.counterexamplePath ?? '?'} (FUZZ_SEED=${d.seed} replays it): ${d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance)}`);
        },
      },
    );
    if (process.env.FUZZ_STATS) console.log([...replyCodes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}\t${k}`).join('\n'));
    // The runs queue something, else the deeper states were never reached.
    assert.ok(queuedByFuzz.length > 5, `the random sessions queued ${queuedByFuzz.length} messages`);
  });

  it('twenty at once', async () => {
    const sessions = fc.sample(arbSession, { seed: SEED + 1, numRuns: 20 });
    const results = await Promise.all(sessions.map((s) => run(s)));
    for (const [i, r] of results.entries()) {
      assert.equal(r.error, null, `session ${i}: ${r.error}\n  ${r.transcript.join('\n  ')}`);
      await assertQueued(r.queued);
      queuedByFuzz.push(...r.queued);
    }
  });

  it('afterwards: nothing stored but what was queued, no error logged, and a plain transaction still queued', async () => {
    const bad = gw.logs.filter((l) => l.level >= 50 || l.msg === 'smtp listener error');
    assert.deepEqual(bad.map((l) => `${l.msg}: ${JSON.stringify(l.err ?? null)}`), [], 'no error lines in the log');
    const stored = await gw.stored();
    assert.equal(stored.jobs, queuedByFuzz.length, 'one job for each "Queued" reply');
    assert.equal(stored.bodies, queuedByFuzz.length, 'one body for each "Queued" reply');
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.lenient });
    await c.ehlo();
    const t = await c.transaction('x@example.net', ['alice@contoso.test'], 'Subject: after the fuzz\r\n\r\nhello\r\n');
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    assert.ok(await gw.job(queueIdOf(t.end!)));
    await c.quit();
  });
});
