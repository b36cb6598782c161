// The attachment filter opens zip archives: the files in them (and in archives inside them,
// three levels deep) are judged by the FileName entries, the archive is what Reject refuses and
// Strip removes. Over real SMTP into Redis, with archives written here byte by byte (stored and
// deflated entries, UTF-8 names, a self-extractor's stub before the archive, zip64 end records),
// independently of the reader; and the reader on its own on malformed, encrypted, bomb-like and
// very large archives: always an answer, never a throw.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { archiveBytesHeld, scanMimeParts, zipNames } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import type { TestGateway } from '../listener/helpers/gateway.js';
import { filterGateway } from './helpers/filter-gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { sendMessage } from './helpers/send-message.js';
import { zip } from './helpers/zip-writer.js';

const REJECTED = '550 5.7.1 Message rejected due to unacceptable attachments';

const OPTS = { depth: 3, maxInflated: 8 * 1024 * 1024 };
const names = (b: Buffer, total = b.length) => {
  const r = zipNames(b, total, OPTS);
  return r.ok ? { files: r.files.map((f) => [...f.within, f.name].join('/')), unread: r.unread } : { why: r.why };
};

describe('zip names (pure)', () => {
  it('stored and deflated entries, paths, UTF-8 names, a stub before the archive, zip64 end records', () => {
    const files = [{ name: 'readme.txt' }, { name: 'bin/setup.exe', deflate: true }, { name: 'résumé.pdf', utf8: true }];
    assert.deepEqual(names(zip(files)), { files: ['readme.txt', 'bin/setup.exe', 'résumé.pdf'], unread: [] });
    assert.deepEqual(names(zip(files, { stub: Buffer.alloc(5000, 0x4d) })), { files: ['readme.txt', 'bin/setup.exe', 'résumé.pdf'], unread: [] });
    assert.deepEqual(names(zip(files, { zip64: true })), { files: ['readme.txt', 'bin/setup.exe', 'résumé.pdf'], unread: [] });
  });

  it('archives inside archives, stored or deflated, three levels; the fourth is named as not opened', () => {
    const level4 = zip([{ name: 'deep.exe' }]);
    const level3 = zip([{ name: 'l4.zip', data: level4 }, { name: 'three.txt' }]);
    const level2 = zip([{ name: 'l3.zip', data: level3, deflate: true }]);
    const outer = zip([{ name: 'l2.zip', data: level2 }, { name: 'one.txt' }]);
    const r = names(outer);
    assert.deepEqual(r, { files: ['l2.zip', 'l2.zip/l3.zip', 'l2.zip/l3.zip/l4.zip', 'l2.zip/l3.zip/three.txt', 'one.txt'], unread: [] });
    const deeper = names(zip([{ name: 'l1.zip', data: outer }]));
    assert.ok('files' in deeper && !deeper.files!.some((f) => f.endsWith('deep.exe')), 'the fourth level is not opened');
  });

  it('an encrypted inner archive, a zip bomb, an inner archive that is not one: named, not opened', () => {
    // 20 MB of zeros deflate to about 20 KB: opening it would take 20 MB.
    const bomb = { name: 'bomb.zip', data: Buffer.alloc(20 * 1024 * 1024), deflate: true };
    const r = names(zip([{ name: 'secret.zip', data: zip([{ name: 'x.exe' }]), encrypted: true }, { name: 'outer.zip', data: zip([bomb]), deflate: true }, { name: 'fake.zip', data: Buffer.from('not a zip') }]));
    assert.ok('files' in r);
    assert.deepEqual(r.files, ['secret.zip', 'outer.zip', 'outer.zip/bomb.zip', 'fake.zip']);
    assert.equal(r.unread!.length, 3);
    assert.match(r.unread![0]!, /^secret\.zip: encrypted: not opened$/);
    assert.match(r.unread![1]!, /^outer\.zip\/bomb\.zip: larger than 8388608 bytes unpacked: not opened$/);
    assert.match(r.unread![2]!, /^fake\.zip: no end of central directory record/);
  });

  it("the message's budget, shared by all its archives: names past it and nested archives past its bytes are not read, and said so", () => {
    const inner = zip([{ name: 'x.exe' }, { name: 'y.exe' }]);
    const outer = zip([{ name: 'a.txt' }, { name: 'inner.zip', data: inner }]);
    const budget = { files: 3, inflated: 1024 };
    const r = zipNames(outer, outer.length, { ...OPTS, budget });
    assert.ok(r.ok);
    assert.deepEqual(r.files.map((f) => f.name), ['a.txt', 'inner.zip']);
    assert.deepEqual(r.unread, ["inner.zip: 2 files, past what is left of the message's budget of names (1)"]);
    assert.equal(budget.files, 1);
    const deflated = zip([{ name: 'inner.zip', data: inner, deflate: true }]);
    const small = { files: 100, inflated: 10 };
    const d = zipNames(deflated, deflated.length, { ...OPTS, budget: small });
    assert.ok(d.ok);
    assert.deepEqual(d.unread, ['inner.zip: larger than 10 bytes unpacked: not opened']);
    const spent = { files: 100, inflated: 0 };
    const e = zipNames(deflated, deflated.length, { ...OPTS, budget: spent });
    assert.ok(e.ok);
    assert.deepEqual(e.unread, ["inner.zip: not opened (the message's archives have been unpacked to their budget)"]);
  });

  it('only the tail of a large archive: its own names, inner archives not opened', () => {
    const big = zip([{ name: 'video.mp4', data: Buffer.alloc(3 * 1024 * 1024, 7) }, { name: 'inner.zip', data: zip([{ name: 'x.exe' }]) }, { name: 'run.exe' }]);
    const tail = big.subarray(big.length - 64 * 1024);
    assert.deepEqual(names(tail, big.length), { files: ['video.mp4', 'inner.zip', 'run.exe'], unread: ['inner.zip: not opened (only the end of the archive was kept)'] });
  });

  it('not a zip, cut short, a directory pointing anywhere: a reason, never a throw (fixed corruption sequence)', () => {
    assert.deepEqual(names(Buffer.from('PK\x05\x06')), { why: 'no end of central directory record: not a zip archive, or cut short' });
    const good = zip([{ name: 'a.exe' }, { name: 'b.zip', data: zip([{ name: 'c.exe' }]) }], { zip64: true });
    assert.deepEqual(names(good.subarray(0, 100)), { why: 'no end of central directory record: not a zip archive, or cut short' });
    let seed = 20261207;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let n = 0; n < 2000; n++) {
      const b = Buffer.from(good);
      for (let k = 0; k <= n % 3; k++) b[next() % b.length] = next() % 256;
      const r = zipNames(b, b.length, OPTS);
      assert.ok(r.ok ? Array.isArray(r.files) : typeof r.why === 'string');
    }
  });
});

let redis: TestRedis;
let gw: TestGateway;
let port: number;
let gwStrip: TestGateway;
let portStrip: number;
let gwClosed: TestGateway;
let portClosed: number;
/** Transport rules only (no attachment filter): a rule on password-protected archives. */
let gwRules: TestGateway;
let portRules: number;

const gateway = (attachmentFilter: Record<string, unknown> | null, extra: Record<string, unknown> = {}) => filterGateway(redis.url, { ...(attachmentFilter ? { attachmentFilter } : {}), ...extra });

before(async () => {
  redis = await startRedis({ appendonly: false });
  ({ gw, port } = await gateway({}));
  ({ gw: gwStrip, port: portStrip } = await gateway({ action: 'Strip' }));
  ({ gw: gwClosed, port: portClosed } = await gateway({ openArchives: false }));
  ({ gw: gwRules, port: portRules } = await gateway(null, { transportRules: [{ name: 'No encrypted archives', attachmentIsPasswordProtected: true, smtpRejectMessageRejectText: 'Password-protected archives cannot be scanned' }] }));
});

after(async () => {
  for (const g of [gw, gwStrip, gwClosed, gwRules]) await g?.close();
  await redis?.stop();
});

let boundaries = 0;
/** A message with a text part and the archive attached (base64, lines of 76), named and typed as given. */
function withArchive(archive: Buffer, head = 'Content-Type: application/zip; name="files.zip"\r\nContent-Disposition: attachment; filename="files.zip"'): string {
  const B = `zb-${++boundaries}`;
  const body = archive.toString('base64').replace(/.{76}/g, '$&\r\n');
  return `From: <sender@example.net>\r\nTo: <alice@contoso.test>\r\nSubject: archive\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${B}"\r\n\r\n--${B}\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--${B}\r\n${head}\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}\r\n--${B}--\r\n`;
}

const send = sendMessage;

describe('zip archives at the attachment filter, over SMTP', () => {
  it('a program inside a zip, or inside a zip inside it: 550 5.7.1, nothing stored, the log naming the file and the archive', async () => {
    const before = await gw.stored();
    assert.equal((await send(port, withArchive(zip([{ name: 'invoice.pdf' }, { name: 'invoice.pdf.exe', deflate: true }])))).reply, REJECTED);
    assert.equal((await send(port, withArchive(zip([{ name: 'docs.zip', data: zip([{ name: 'run.js' }]), deflate: true }])))).reply, REJECTED);
    assert.deepEqual(await gw.stored(), before);
    const why = gw.logs.filter((l) => l.msg === 'message rejected').map((l) => String(l.why));
    assert.match(why.at(-2)!, /"invoice\.pdf\.exe" inside the archive "files\.zip" matches FileName:\*\.exe/);
    assert.match(why.at(-1)!, /"run\.js" inside the archive "files\.zip\/docs\.zip" matches FileName:\*\.js/);
  });

  it('harmless files in a zip, a zip named only by its type, and an archive that cannot be read: queued, the unread one said in the reason', async () => {
    assert.match((await send(port, withArchive(zip([{ name: 'a.txt' }, { name: 'b.pdf', deflate: true }])))).reply, /^250 2\.6\.0 /);
    assert.equal((await send(port, withArchive(zip([{ name: 'tool.exe' }]), 'Content-Type: application/x-zip-compressed'))).reply, REJECTED, 'no name, the type says zip');
    assert.match(String(gw.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why), /"tool\.exe" inside the archive "\(unnamed archive\)" matches FileName:\*\.exe/);
    assert.match((await send(port, withArchive(Buffer.from('garbage, not an archive')))).reply, /^250 2\.6\.0 /);
    const outcome = gw.logs.filter((l) => l.msg === 'filter outcome' && l.filter === 'attachment-filter').at(-1);
    assert.equal(outcome?.verdict, 'accept');
    assert.match(String(outcome?.reason), /\(3 MIME parts read; not read in archives \(judged by their own names\): "files\.zip": no end of central directory record/);
  });

  it('Strip removes the archive and delivers the rest', async () => {
    const r = await send(portStrip, withArchive(zip([{ name: 'setup.exe' }])));
    assert.match(r.reply, /^250 2\.6\.0 /);
    const body = (await gwStrip.body(r.id!))!.toString('latin1');
    assert.match(body, /Content-Disposition: attachment; filename=files\.zip\.txt\r\n/);
    assert.match(body, /See attached\./);
    assert.doesNotMatch(body, /UEsDB/, 'the archive (base64 of PK\\x03\\x04) is gone');
  });

  it('an archive over 8 MB: its directory read from its tail (a program in it refused); the listener holds no archive bytes after it, nor after a client that left mid-DATA', async () => {
    const big = zip([{ name: 'video.mp4', data: Buffer.alloc(9 * 1024 * 1024, 0x41) }, { name: 'player.exe' }]);
    assert.equal((await send(port, withArchive(big))).reply, REJECTED);
    assert.match(String(gw.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why), /"player\.exe" inside the archive "files\.zip" matches FileName:\*\.exe/);
    assert.equal(archiveBytesHeld(), 0);
    // A client that sends half of a large archive and goes away.
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
    await c.ehlo('sender.test');
    await c.cmd('MAIL FROM:<sender@example.net>');
    await c.cmd('RCPT TO:<alice@contoso.test>');
    await c.cmd('DATA');
    const m = withArchive(big);
    c.write(m.slice(0, m.length / 2));
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(archiveBytesHeld() > 0, 'the archive is being kept while it streams in');
    c.destroy();
    for (let i = 0; i < 50 && archiveBytesHeld() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(archiveBytesHeld(), 0);
  });

  it('openArchives: false: the archive is judged by its own name only', async () => {
    assert.match((await send(portClosed, withArchive(zip([{ name: 'setup.exe' }])))).reply, /^250 2\.6\.0 /);
  });
});

describe('transport rules: attachmentIsPasswordProtected', () => {
  it('an archive with an encrypted file, or one inside it, is refused by the rule; an open archive and a message without one pass', async () => {
    const refusal = '550 5.7.1 Password-protected archives cannot be scanned';
    assert.equal((await send(portRules, withArchive(zip([{ name: 'readme.txt' }, { name: 'invoice.doc', encrypted: true }])))).reply, refusal);
    assert.equal((await send(portRules, withArchive(zip([{ name: 'inner.zip', data: zip([{ name: 'payload.js', encrypted: true }]) }])))).reply, refusal, 'inside an inner archive');
    assert.equal((await send(portRules, withArchive(zip([{ name: 'tool.exe', encrypted: true }]), 'Content-Type: application/zip'))).reply, refusal, 'an archive known by its type only');
    assert.match((await send(portRules, withArchive(zip([{ name: 'setup.exe' }])))).reply, /^250 2\.6\.0 /, 'no attachment filter here, and nothing encrypted');
    assert.match((await send(portRules, 'From: <sender@example.net>\r\nTo: <alice@contoso.test>\r\nSubject: plain\r\n\r\nNo attachment.\r\n')).reply, /^250 2\.6\.0 /);
  });

  it('false is refused in the configuration, naming the rule and the key', async () => {
    await assert.rejects(gateway(null, { transportRules: [{ name: 'Nothing', attachmentIsPasswordProtected: false, deleteMessage: true }] }), /transportRules\[0\]\.attachmentIsPasswordProtected.*must be true, or left out: false is no condition/s);
  });
});

describe('the MIME reader with archives (scanMimeParts)', () => {
  it('skipping leaf bodies or not, the same parts, the archive\'s files included; a zip as the whole message is read too', async () => {
    const m = Buffer.from(withArchive(zip([{ name: 'x.exe' }, { name: 'y.txt' }])));
    const fast = await scanMimeParts([m], true, true);
    const slow = await scanMimeParts([m], false, true);
    assert.deepEqual(fast.parts, slow.parts);
    assert.deepEqual(fast.parts.filter((p) => p.part.archive !== undefined).map((p) => [p.part.archive, p.part.filename, p.place.index]), [['files.zip', 'x.exe', 2], ['files.zip', 'y.txt', 2]]);
    const root = Buffer.from(`From: <a@example.net>\r\nContent-Type: application/zip; name="all.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n${zip([{ name: 'z.exe' }]).toString('base64')}\r\n`);
    const whole = await scanMimeParts([root], true, true);
    assert.deepEqual(whole.parts.map((p) => p.part.filename), ['all.zip', 'z.exe']);
  });
});
