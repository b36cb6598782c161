// `mailgw sendmail -bs` fuzzed: seeded sessions of mostly-valid transactions, mutated commands and
// parameters, garbage, dots, 8-bit and overlong lines, LF or CRLF, split at random bytes, cut off
// anywhere. Whatever comes in: every reply line is a well-formed SMTP reply, every command gets
// exactly one reply, and every file a 250 stands for is one the pickup takes (pickupEnvelope:
// never a *.bad for what -bs accepted), with the envelope -bs accepted. In-process (the session
// runs on streams, as on a pipe); the policy is a real compiled one.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { parseHeaderFields, messageHeader } from '@mailgw/mail';
import { pickupEnvelope } from '@mailgw/policy';
import { runStdioSmtp } from '../../packages/cli/src/commands/sendmail-smtp.js';
import { policy as compiled } from '../../packages/policy/test/fixture.js';
import { prng, type Rng } from './helpers/fuzz.js';

const policy = compiled({ maxSendSize: '8KB', pickupDirectoryPath: '/nonexistent', pickupDirectoryMaxRecipientsPerMessage: 5, pickupDirectoryMaxHeaderSize: '32KB' }, [{ name: 'Default', bindings: ['0.0.0.0:25'] }]);

const ADDRESSES = ['a@contoso.test', 'root', 'ops@example.net', 'jörg@bücher.test', '', 'a b@x.test', '"q u"@contoso.test', 'x@[127.0.0.1]', 'no-domain@', '@x.test', 'ü@contoso.test'];
const MAIL_PARAMS = ['', ' SIZE=100', ' SIZE=99999', ' BODY=8BITMIME', ' BODY=7BIT', ' BODY=BINARYMIME', ' RET=HDRS', ' RET=bad', ' ENVID=a+2Bb', ' SMTPUTF8', ' AUTH=<>', ' FOO', ' SIZE=', ' ENVID=+0D+0A'];
const RCPT_PARAMS = ['', ' NOTIFY=NEVER', ' NOTIFY=SUCCESS,FAILURE', ' NOTIFY=NEVER,DELAY', ' ORCPT=rfc822;a@b.test', ' ORCPT=bad', ' NOTIFY'];

function bodyLine(r: Rng): string {
  return r.pick(['hello', '.', '..', '.x', '', 'Grüße', 'Subject: x', 'a'.repeat(r.int(1, 3000)), '\t folded', 'From: a@contoso.test']);
}

/** A session as lines (no line ends yet), and how many command lines it has outside DATA. */
function session(r: Rng): string[] {
  const lines: string[] = [];
  const n = r.int(1, 25);
  for (let i = 0; i < n; i++) {
    switch (r.int(0, 11)) {
      case 0:
        lines.push(r.pick(['EHLO app', 'HELO app', 'EHLO', 'ehlo x y']));
        break;
      case 1:
      case 2:
        lines.push(`${r.pick(['MAIL FROM:', 'mail from:', 'MAIL FROM: ', 'MAIL TO:'])}<${r.pick(ADDRESSES)}>${r.pick(MAIL_PARAMS)}`);
        break;
      case 3:
      case 4:
        lines.push(`${r.pick(['RCPT TO:', 'rcpt to:', 'RCPT FROM:'])}<${r.pick(ADDRESSES)}>${r.pick(RCPT_PARAMS)}`);
        break;
      case 5:
      case 6: {
        lines.push('DATA');
        const body = r.int(0, 8);
        for (let j = 0; j < body; j++) lines.push(bodyLine(r));
        if (r.chance(0.9)) lines.push('.');
        break;
      }
      case 7:
        lines.push(r.pick(['RSET', 'NOOP', 'VRFY root', 'HELP', 'STARTTLS', 'AUTH PLAIN', 'BDAT 10 LAST', 'EXPN x']));
        break;
      case 8:
        lines.push(r.pick(['', 'garbage', '\u0000\u0001', 'MAIL', 'RCPT', 'DATA x', 'x'.repeat(r.int(2000, 70_000))]));
        break;
      case 9:
        if (r.chance(0.2)) lines.push('QUIT');
        break;
      default:
        lines.push('MAIL FROM:<a@contoso.test>', 'RCPT TO:<ops@example.net>', 'DATA', 'Subject: ok', '', 'body', '.');
    }
  }
  return lines;
}

async function play(seed: number): Promise<{ out: string; files: Buffer[]; input: string }> {
  const r = prng(seed);
  const lines = session(r);
  const eol = r.pick(['\r\n', '\n']);
  const bytes = Buffer.from(lines.join(eol) + (r.chance(0.8) ? eol : ''), 'utf8');
  const input = new PassThrough();
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on('data', (c: Buffer) => chunks.push(c));
  const files: Buffer[] = [];
  const done = runStdioSmtp(input, output, { policy, deliver: async (f) => (files.push(f), `f${files.length}.eml`), log: () => undefined });
  // Split at random bytes, as a pipe may deliver them.
  for (let at = 0; at < bytes.length; ) {
    const n = r.int(1, 4096);
    input.write(bytes.subarray(at, at + n));
    at += n;
  }
  input.end();
  await done;
  return { out: Buffer.concat(chunks).toString('utf8'), files, input: lines.map((l) => (l.length > 80 ? `${l.slice(0, 80)}…(${l.length})` : l)).join(' | ') };
}

describe('sendmail -bs when the pickup directory cannot be written', () => {
  it('451 4.3.0 (452 4.3.1 for a full disk), the reason on stderr, and the session goes on', async () => {
    for (const [code, reply] of [['EACCES', '451 4.3.0 Temporary server error, please try again later'], ['ENOSPC', '452 4.3.1 Insufficient system resources']] as const) {
      const input = new PassThrough();
      const output = new PassThrough();
      const chunks: Buffer[] = [];
      output.on('data', (c: Buffer) => chunks.push(c));
      const logged: string[] = [];
      let tries = 0;
      const done = runStdioSmtp(input, output, {
        policy,
        deliver: async () => {
          tries++;
          throw Object.assign(new Error(`${code}: no`), { code });
        },
        log: (l) => logged.push(l),
      });
      input.end('MAIL FROM:<a@contoso.test>\r\nRCPT TO:<b@contoso.test>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n');
      await done;
      const replies = Buffer.concat(chunks).toString('utf8').split('\r\n');
      assert.deepEqual(replies.slice(-5), ['354 Start mail input; end with <CRLF>.<CRLF>', reply, '250 2.0.0 OK', '221 2.0.0 Service closing transmission channel', '']);
      assert.equal(tries, 1);
      assert.deepEqual(logged, [`cannot write into the pickup directory: ${code}: no`]);
    }
  });
});

describe('sendmail -bs fuzzed', () => {
  it('300 seeded sessions: well-formed replies, and every 250 after DATA is a file the pickup takes', async () => {
    let accepted = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const { out, files, input } = await play(seed);
      const where = `seed ${seed}: ${input}`;
      const replies = out.split('\r\n');
      assert.equal(replies.pop(), '', `${where}: output ends with CRLF`);
      for (const l of replies) assert.match(l, /^[2-5]\d\d[ -]/, `${where}: ${JSON.stringify(l)}`);
      assert.match(replies[0]!, /^220 /, where);
      const queued = replies.filter((l) => /^250 2\.0\.0 Ok: queued as /.test(l)).length;
      assert.equal(files.length, queued, `${where}: one file per 250 after DATA`);
      for (const f of files) {
        const head = messageHeader(f);
        const e = pickupEnvelope(policy, parseHeaderFields(head.header));
        assert.ok(e.ok, `${where}: the pickup would make it *.bad: ${e.ok ? '' : e.reason}`);
        assert.equal(e.format, 'replay', where);
        assert.ok(e.recipients.length >= 1 && e.recipients.length <= 5, where);
        assert.ok(f.length <= 8 * 1024 + 4096, `${where}: over maxSendSize (${f.length})`);
        accepted++;
      }
    }
    // The generator makes valid transactions often enough for the last check to mean something.
    assert.ok(accepted > 100, `only ${accepted} messages accepted over 300 sessions`);
  });
});
