// The attachment filter judges files uuencoded in a message's text ("begin 644 name" and
// encoded lines, which Outlook and Exchange show as attachments though no MIME part names
// them) and the files in an attached .uue (which WinRAR and 7-Zip open); the transport rules'
// attachment name conditions see the uuencoded files too. The encoder below is
// written from the format's description, independently of the reader (which never decodes).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { archiveNames, archivePartKind, scanMimeParts, UuencodedFiles, uuencodedNames } from '@mailgw/content-filter';
import type { TestGateway } from '../listener/helpers/gateway.js';
import { filterGateways, withAttachment } from './helpers/filter-gateway.js';
import { sendMessage } from './helpers/send-message.js';
import { zip } from './helpers/zip-writer.js';

const REJECTED = '550 5.7.1 Message rejected due to unacceptable attachments';
const OPTS = { depth: 3, maxInflated: 8 * 1024 * 1024 };

/** uuencode (POSIX): lines of up to 45 bytes, a length character 32 + n, 4 characters per 3 bytes, '`' for zero. */
function uuencode(name: string, data: Buffer, o: { mode?: string; xx?: boolean } = {}): string {
  const XX = '+-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const ch = (v: number) => (o.xx ? XX[v]! : v === 0 ? '`' : String.fromCharCode(32 + v));
  const lines = [`begin ${o.mode ?? '644'} ${name}`];
  for (let i = 0; i < data.length; i += 45) {
    const part = data.subarray(i, i + 45);
    let line = ch(part.length);
    for (let j = 0; j < part.length; j += 3) {
      const [a = 0, b = 0, c = 0] = [part[j], part[j + 1], part[j + 2]];
      line += ch(a >> 2) + ch(((a & 3) << 4) | (b >> 4)) + ch(((b & 15) << 2) | (c >> 6)) + ch(c & 63);
    }
    lines.push(line);
  }
  lines.push(ch(0), 'end');
  return lines.join('\r\n') + '\r\n';
}
const program = Buffer.from('MZ\x90\x00\x03\x00\x00\x00 this stands for a program '.repeat(4), 'latin1');

/** The names found in `text` written in the given pieces. */
function found(text: string | Buffer, cuts: number[] = []): string[] {
  const b = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  const f = new UuencodedFiles();
  let at = 0;
  for (const c of [...cuts, b.length]) {
    f.push(b.subarray(at, c));
    at = c;
  }
  f.end();
  return f.names;
}

describe('uuencoded files in text (pure)', () => {
  it('a begin line followed by encoded data names a file: uuencode, xxencode, GNU begin-base64, UTF-8 names, LF or CRLF, quoted-printable', () => {
    assert.deepEqual(found(`Hello,\r\n\r\nsee below.\r\n\r\n${uuencode('setup.exe', program)}\r\nBye\r\n`), ['setup.exe']);
    assert.deepEqual(found(uuencode('tool.exe', program, { xx: true })), ['tool.exe']);
    assert.deepEqual(found(`begin-base64 644 run.js\n${program.toString('base64')}\n====\n`), ['run.js']);
    assert.deepEqual(found(uuencode('résumé.scr', program).replace(/\r\n/g, '\n')), ['résumé.scr']);
    assert.deepEqual(found(uuencode('a.exe', program) + uuencode('b.txt', Buffer.from('text')) + uuencode('c b.vbs', program, { mode: '0755' })), ['a.exe', 'b.txt', 'c b.vbs']);
    // Quoted-printable keeps the begin line and turns each '=' of the data into "=3D".
    const qp = uuencode('x.exe', Buffer.from('t'.repeat(60))).replace(/=/g, '=3D');
    assert.match(qp, /=3D/);
    assert.deepEqual(found(qp), ['x.exe']);
  });

  it('no file without encoded data after the begin line, nor for "begin" within a line or prose', () => {
    assert.deepEqual(found('begin 644 notes.exe\r\nand then we talked about it.\r\n'), []);
    assert.deepEqual(found('We begin 644 setup.exe tomorrow\r\n' + uuencode('x', program).split('\r\n').slice(1).join('\r\n')), []);
    assert.deepEqual(found('begin 999 setup.exe\r\nM86)C9&5F9VAI:FML;6YO<\'%R<W1U=G=X>7I!0D-$149\'2$E*2TQ-3D]045)3\r\n'), [], 'not an octal mode');
    assert.deepEqual(found('begin 644 setup.exe'), [], 'the last line, nothing after it');
    assert.deepEqual(found('begin 644 \r\nM' + 'A'.repeat(60) + '\r\n'), [], 'no name');
    assert.deepEqual(found(`begin 644 a.exe\r\n${'M'.repeat(5000)}\r\n${uuencode('b.txt', program)}`), ['b.txt'], 'a line too long to be encoded data');
  });

  it('the same names wherever the writes end (every cut, and pairs of cuts, of a sample)', () => {
    const text = `Hi\r\nbegin 600 one.exe\r\n${uuencode('two.js', program)}xbegin 644 no.exe\r\n${uuencode('three.scr', program)}`;
    const want = found(text);
    assert.deepEqual(want, ['two.js', 'three.scr']);
    const b = Buffer.from(text);
    for (let i = 0; i <= b.length; i++) assert.deepEqual(found(b, [i]), want, `cut at ${i}`);
    for (let i = 0; i < b.length; i += 7) for (let j = i; j <= b.length; j += 11) assert.deepEqual(found(b, [i, j]), want, `cuts at ${i}, ${j}`);
  });

  it('a .uue file: its files, or why none; a part is one by its name or type; inside a zip', () => {
    const uue = Buffer.from(uuencode('invoice.exe', program) + uuencode('readme.txt', Buffer.from('hello')));
    const r = archiveNames('uue', uue, uue.length, 'invoice.uue', OPTS);
    assert.ok(r.ok);
    assert.deepEqual(r.files.map((f) => f.name), ['invoice.exe', 'readme.txt']);
    assert.deepEqual(uuencodedNames(Buffer.from('just text')), { ok: false, why: 'no uuencoded file in it (no "begin" line followed by encoded data)' });
    assert.deepEqual(uuencodedNames(uue, { files: 1 }), { ok: false, why: "2 files, past what is left of the message's budget of names (1)" });
    assert.equal(archivePartKind(false, 'INVOICE.UUE'), 'uue');
    assert.equal(archivePartKind(null, 'a.xxe'), 'uue');
    assert.equal(archivePartKind('text/x-uuencode', null), 'uue');
    const z = zip([{ name: 'mail.uue', data: uue }]);
    const inZip = archiveNames('zip', z, z.length, 'all.zip', OPTS);
    assert.ok(inZip.ok);
    assert.deepEqual(inZip.files.map((f) => [...f.within, f.name].join('/')), ['mail.uue', 'mail.uue/invoice.exe', 'mail.uue/readme.txt']);
  });
});

describe('the MIME reader', () => {
  it('hands the same parts of an attached .uue whether it skips leaf bodies or not', async () => {
    const m = Buffer.from(withAttachment(Buffer.from(uuencode('invoice.exe', program) + uuencode('notes.txt', program)), 'mail.uue'));
    const fast = await scanMimeParts([m], true, true);
    const slow = await scanMimeParts([m], false, true);
    assert.deepEqual(fast.parts, slow.parts);
    assert.deepEqual(fast.parts.filter((p) => p.part.archive === 'mail.uue').map((p) => p.part.filename), ['invoice.exe', 'notes.txt']);
  });
});

const gateways = filterGateways({
  filter: { attachmentFilter: {} },
  strip: { attachmentFilter: { action: 'Strip' } },
  rules: { transportRules: [{ name: 'No programs', attachmentExtensionMatchesWords: ['exe'], smtpRejectMessageRejectText: 'Programs are not accepted' }, { name: 'Big', attachmentSizeOver: '1KB', prependSubject: '[Big] ' }] },
});

const HEAD = 'From: <sender@example.net>\r\nTo: <alice@contoso.test>\r\nSubject: files\r\n';
const lastRejection = (g: TestGateway) => String(g.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why);

describe('uuencoded files at the attachment filter, over SMTP', () => {
  it('a program uuencoded in a plain (non-MIME) message and in a MIME text part: 550 5.7.1, nothing stored, the log saying where', async () => {
    const before = await gateways.filter.gw.stored();
    assert.equal((await sendMessage(gateways.filter.port, `${HEAD}\r\nPlease run the attached.\r\n\r\n${uuencode('setup.exe', program)}`)).reply, REJECTED);
    assert.match(lastRejection(gateways.filter.gw), /"setup\.exe" uuencoded in the message's text matches FileName:\*\.exe/);
    const mime = `${HEAD}MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n${uuencode('update.js', program)}--b1\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n--b1--\r\n`;
    assert.equal((await sendMessage(gateways.filter.port, mime)).reply, REJECTED);
    assert.match(lastRejection(gateways.filter.gw), /"update\.js" uuencoded in the message's text/);
    assert.deepEqual(await gateways.filter.gw.stored(), before);
  });

  it('a harmless uuencoded file and prose beginning "begin 644" are queued', async () => {
    assert.match((await sendMessage(gateways.filter.port, `${HEAD}\r\n${uuencode('photo.jpg', program)}`)).reply, /^250 2\.6\.0 /);
    assert.match((await sendMessage(gateways.filter.port, `${HEAD}\r\nbegin 644 setup.exe\r\nis what the old manual said to type.\r\n`)).reply, /^250 2\.6\.0 /);
  });

  it('an attached .uue holding a program: 550, named inside it; Strip cannot take a file out of the text and refuses', async () => {
    const uue = Buffer.from(uuencode('invoice.pdf.exe', program));
    assert.equal((await sendMessage(gateways.filter.port, withAttachment(uue, 'invoice.uue', 'application/octet-stream'))).reply, REJECTED);
    assert.match(lastRejection(gateways.filter.gw), /"invoice\.pdf\.exe" inside the archive "invoice\.uue" matches FileName:\*\.exe/);
    assert.equal((await sendMessage(gateways.strip.port, `${HEAD}\r\n${uuencode('setup.exe', program)}`)).reply, '550 5.7.1 Message rejected due to unacceptable attachments');
    assert.match(lastRejection(gateways.strip.gw), /action Strip, but a file is uuencoded in the message's text: nothing to remove/);
  });
});

describe('uuencoded files at the transport rules, over SMTP', () => {
  it("an attachment extension rule matches a program uuencoded in the text, not a harmless file; its size is not measured (attachmentSizeOver does not see it)", async () => {
    assert.equal((await sendMessage(gateways.rules.port, `${HEAD}\r\nPlease run the attached.\r\n\r\n${uuencode('setup.exe', program)}`)).reply, '550 5.7.1 Programs are not accepted');
    const photo = await sendMessage(gateways.rules.port, `${HEAD}\r\n${uuencode('photo.jpg', Buffer.alloc(4096, 7))}`);
    assert.match(photo.reply, /^250 2\.6\.0 /);
    const stored = (await gateways.rules.gw.body(photo.id!))!.toString('latin1');
    assert.match(stored, /\r\nSubject: files\r\n/, 'not tagged [Big]: the size of a uuencoded file is not measured');
  });
});
