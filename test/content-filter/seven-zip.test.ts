// The attachment filter reads the names in 7z archives (nothing is unpacked but the header,
// which 7-Zip compresses with LZMA): a program in one is refused as in a zip. The archives are
// real 7-Zip 26.02 ones (fixtures/, see its README) and ones written by hand
// (helpers/seven-zip-writer.ts); where the system has them, 7-Zip itself (7zz: archives of
// 1,500 files in every method, compared with its own listing) and xz (LZMA and LZMA2 streams
// for the decoder). Over real SMTP into Redis: refusals, a large archive read from its end, the
// password-protected rule.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { archiveNames, archivePartKind, lzma2Decode, lzmaDecode, lzmaProperties, scanMimeParts, sevenZipNames, type ZipReading } from '@mailgw/content-filter';
import { filterGateways, PASSWORD_RULE, withAttachment } from './helpers/filter-gateway.js';
import { sendMessage } from './helpers/send-message.js';
import { sevenZip, sevenZipAround, sevenZipNumber } from './helpers/seven-zip-writer.js';
import { zip } from './helpers/zip-writer.js';

const REJECTED = '550 5.7.1 Message rejected due to unacceptable attachments';
const OPTS = { depth: 3, maxInflated: 8 * 1024 * 1024 };
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name));
const has = (tool: string, arg: string) => spawnSync(tool, [arg], { stdio: 'ignore' }).status === 0;
const no7zz = has('7zz', 'i') ? false : '7zz (Debian package 7zip) is not installed';
const noXz = has('xz', '--version') ? false : 'xz (Debian package xz-utils) is not installed';

const show = (r: ZipReading): { files?: string[]; encrypted?: string[]; unread?: readonly string[]; why?: string; locked?: true } => (r.ok ? { files: r.files.map((f) => [...f.within, f.name].join('/')), encrypted: r.files.filter((f) => f.encrypted).map((f) => f.name), unread: r.unread } : { why: r.why, ...(r.locked ? { locked: true } : {}) });
const names = (b: Buffer, totalSize = b.length) => show(archiveNames('7z', b, totalSize, 'a.7z', OPTS));
/** Of a large archive, what the listener keeps: its first 32 bytes and its last `tail`. */
const ends = (b: Buffer, tail: number) => Buffer.concat([b.subarray(0, 32), b.subarray(b.length - tail)]);

const INVOICE = ['invoice/empty.log', 'invoice/invoice.pdf.exe', 'invoice/readme.txt', 'invoice/scans/page1.jpg'];

describe('7z names (pure)', () => {
  it('archives written by hand: names (UTF-16, beyond the BMP too), directories left out, empty files kept, encrypted files marked; the header plain or stored', () => {
    const files = [{ name: 'docs', directory: true }, { name: 'docs/readme.txt' }, { name: 'empty.txt', data: Buffer.alloc(0) }, { name: 'bin/setup.exe', encrypted: true }, { name: 'résumé 日本 😀.pdf' }];
    const want = { files: ['docs/readme.txt', 'empty.txt', 'bin/setup.exe', 'résumé 日本 😀.pdf'], encrypted: ['bin/setup.exe'], unread: [] };
    assert.deepEqual(names(sevenZip(files)), want);
    assert.deepEqual(names(sevenZip(files, { header: 'copy' })), want);
    assert.deepEqual(names(sevenZip(files, { attributes: true })), want, 'directories told by their attribute');
    assert.deepEqual(names(sevenZip([])), { files: [], encrypted: [], unread: [] });
  });

  it('archives made by 7-Zip 26.02: the LZMA-compressed header decoded; -mhe is password-protected as a whole; -p marks the files; PPMd and BCJ2 folders', () => {
    assert.deepEqual(names(fixture('7zip-26.02-lzma-header.7z')), { files: INVOICE, encrypted: [], unread: [] });
    assert.deepEqual(names(fixture('7zip-26.02-ppmd-nonsolid.7z')), { files: INVOICE, encrypted: [], unread: [] });
    assert.deepEqual(names(fixture('7zip-26.02-encrypted-names.7z')), { why: 'its list of files is encrypted (7z -mhe: a password hides even the names)', locked: true });
    // The empty file has no data to encrypt.
    assert.deepEqual(names(fixture('7zip-26.02-encrypted-files.7z')), { files: INVOICE, encrypted: INVOICE.slice(1), unread: [] });
    assert.deepEqual(names(sevenZip([{ name: 'x.exe' }], { header: 'aes' })), { why: 'its list of files is encrypted (7z -mhe: a password hides even the names)', locked: true });
    assert.deepEqual(names(sevenZip([{ name: 'x.exe' }], { header: 'bzip2' })), { why: 'its list of files is packed with BZip2, which is not read' });
  });

  it('of a large one, its first 32 bytes and its end are enough (the header is there); a header outside what was kept is said so', () => {
    const big = sevenZip([{ name: 'video.mp4', data: Buffer.alloc(300_000, 1) }, { name: 'player.exe' }], { header: 'copy' });
    assert.deepEqual(names(ends(big, 4096), big.length), { files: ['video.mp4', 'player.exe'], encrypted: [], unread: [] });
    assert.deepEqual(names(ends(big, 40), big.length), { why: 'its list of files is not in the part of it that was kept' });
    const real = fixture('7zip-26.02-lzma-header.7z');
    // The same mapping when "the end" happens to be all of it (the process' archive memory was full).
    assert.deepEqual(names(Buffer.concat([real.subarray(0, 32), real]), real.length), { files: INVOICE, encrypted: [], unread: [] });
  });

  it('the message budget: names counted; a compressed header charged eight times its size against the bytes unpacked, a stored one nothing', () => {
    const real = fixture('7zip-26.02-lzma-header.7z');
    const budget = { files: 100, inflated: 1024 * 1024 };
    assert.equal(sevenZipNames(real, real.length, budget).ok, true);
    assert.equal(budget.files, 96);
    assert.ok(budget.inflated < 1024 * 1024 && (1024 * 1024 - budget.inflated) % 8 === 0, String(budget.inflated));
    const stored = sevenZip([{ name: 'a.txt' }], { header: 'copy' });
    const b2 = { files: 100, inflated: 1024 * 1024 };
    sevenZipNames(stored, stored.length, b2);
    assert.deepEqual(b2, { files: 99, inflated: 1024 * 1024 });
    assert.deepEqual(show(sevenZipNames(real, real.length, { files: 3, inflated: 1024 * 1024 })), { why: "4 files, past what is left of the message's budget of names (3)" });
    assert.deepEqual(show(sevenZipNames(real, real.length, { files: 100, inflated: 10 })), { why: "not read (the message's archives have been unpacked to their budget)" });
  });

  it('not 7z, cut short, corrupted: a reason, never a throw (fixed corruption sequence)', () => {
    assert.match(String(names(Buffer.from('MZ a self-extractor, not read')).why), /^not a 7z archive/);
    const real = fixture('7zip-26.02-lzma-header.7z');
    assert.match(String(names(real.subarray(0, 100)).why), /^malformed \(a part of it lies past its end\)/);
    assert.equal(sevenZipNumber(0x3fff).length, 2);
    // Crafted counts: 2^40 streams in a folder whose CRCs are "all defined" (nothing may be built
    // for them before they are seen to fit), and 10,001 files.
    const num = sevenZipNumber;
    const crafted = Buffer.concat([Buffer.from([0x01, 0x04, 0x06]), num(0), num(1), Buffer.from([0x09]), num(3), Buffer.from([0x00, 0x07, 0x0b, 0x01, 0x00, 0x01, 0x01, 0x00, 0x0c]), num(3), Buffer.from([0x00, 0x08, 0x0d]), num(2 ** 40), Buffer.from([0x0a, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x00])]);
    assert.deepEqual(names(sevenZipAround(Buffer.from('abc'), crafted)), { why: 'malformed (its header is cut short)' });
    const many = Array.from({ length: 10_001 }, (_, i) => ({ name: `f${i}`, data: Buffer.alloc(0) }));
    assert.deepEqual(names(sevenZip(many)), { why: '10001 files (more than 10000 are not read)' });
    let seed = 7;
    const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    const samples = [real, fixture('7zip-26.02-ppmd-nonsolid.7z'), fixture('7zip-26.02-encrypted-files.7z'), sevenZip([{ name: 'a.txt' }, { name: 'd', directory: true }, { name: 'e', data: Buffer.alloc(0) }], { header: 'copy', attributes: true })];
    let answers = 0;
    for (let i = 0; i < 1500; i++) {
      for (const s of samples) {
        const bad = Buffer.from(s);
        // Mostly in the header (the archive's end), where the reader looks.
        for (let k = 1 + rand(4); k > 0; k--) bad[rand(2) ? bad.length - 1 - rand(Math.min(120, bad.length)) : rand(bad.length)] = rand(256);
        const cut = rand(4) === 0 ? bad.subarray(0, rand(bad.length)) : bad;
        const r = sevenZipNames(cut, cut.length, { files: 20_000, inflated: 32 * 1024 * 1024 });
        assert.ok(r.ok ? r.files.every((f) => typeof f.name === 'string') : typeof r.why === 'string');
        answers++;
      }
    }
    assert.equal(answers, 6000);
  });

  it('a 7z inside a zip is listed; a part is a 7z by its type or its name', () => {
    const z = zip([{ name: 'pack.7z', data: fixture('7zip-26.02-lzma-header.7z') }]);
    const r = show(archiveNames('zip', z, z.length, 'all.zip', OPTS));
    assert.deepEqual(r, { files: ['pack.7z', ...INVOICE.map((n) => `pack.7z/${n}`)], encrypted: [], unread: [] });
    assert.equal(archivePartKind('application/x-7z-compressed', null), '7z');
    assert.equal(archivePartKind(false, 'Invoice.7Z'), '7z');
    assert.equal(archivePartKind('application/octet-stream', 'photos.7z.'), '7z');
  });
});

describe('LZMA (pure)', () => {
  it('properties: lc, lp, pb and the dictionary (at least 4 KB); out of range refused', () => {
    assert.deepEqual(lzmaProperties(Buffer.from([0x5d, 0, 0, 1, 0])), { lc: 3, lp: 0, pb: 2, dictSize: 65536 });
    assert.deepEqual(lzmaProperties(Buffer.from([0x5d, 0, 0, 0, 0])).dictSize, 4096);
    assert.throws(() => lzmaProperties(Buffer.from([225, 0, 0, 0, 0])), /out of range/);
  });

  const xz = (args: string[], input: Buffer) => execFileSync('xz', [...args, '-c'], { input, maxBuffer: 64 * 1024 * 1024 });
  const text = () => Buffer.from(Array.from({ length: 6000 }, (_, i) => `line ${i}: ${'the quick brown fox '.repeat(i % 7)}${i * 7919}\n`).join(''));

  it('decodes what xz encodes: LZMA with every kind of lc/lp/pb, LZMA2 with compressed and stored chunks', { skip: noXz }, () => {
    const data = Buffer.concat([text().subarray(0, 100_000), randomBytes(100_000), text().subarray(0, 100_000)]);
    for (const filter of ['preset=6', 'preset=0', 'preset=1,lc=0,lp=2,pb=0', 'preset=6,lc=4,lp=0,pb=4', 'preset=6,lc=1,lp=3,pb=1']) {
      const alone = xz(['--format=lzma', `--lzma1=${filter}`], data);
      // The .lzma format: 5 bytes of properties, 8 of size, then the stream (with an end marker: the size is unknown).
      assert.ok(lzmaDecode(alone.subarray(13), alone.subarray(0, 5), data.length).equals(data), filter);
      const raw2 = xz(['--format=raw', `--lzma2=${filter}`], data);
      assert.ok(lzma2Decode(raw2, data.length).equals(data), `lzma2 ${filter}`);
    }
  });

  it('corrupted or cut streams: an error saying why, never a hang or a write past the declared size (fixed corruption sequence)', { skip: noXz }, () => {
    const data = text().subarray(0, 60_000);
    const alone = xz(['--format=lzma'], data);
    const raw2 = xz(['--format=raw', '--lzma2=preset=6'], data);
    assert.throws(() => lzmaDecode(alone.subarray(13, 400), alone.subarray(0, 5), data.length), /cut short/);
    assert.throws(() => lzma2Decode(raw2.subarray(0, 400), data.length), /cut short/);
    let seed = 3;
    const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    let outcomes = 0;
    for (let i = 0; i < 300; i++) {
      const a = Buffer.from(alone.subarray(13));
      const b = Buffer.from(raw2);
      for (let k = 1 + rand(3); k > 0; k--) {
        a[rand(a.length)] = rand(256);
        b[rand(b.length)] = rand(256);
      }
      for (const run of [() => lzmaDecode(a, alone.subarray(0, 5), data.length), () => lzma2Decode(b, data.length)]) {
        try {
          assert.equal(run().length, data.length);
        } catch (e) {
          assert.ok(e instanceof Error && !(e instanceof assert.AssertionError) && e.message.length > 0, String(e));
        }
        outcomes++;
      }
    }
    assert.equal(outcomes, 600);
  });
});

describe('archives made by 7-Zip on this machine, against its own listing', { skip: no7zz }, () => {
  let work: string;
  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'mailgw-7z-'));
    const dir = path.join(work, 'files');
    mkdirSync(path.join(dir, 'sub', 'deeper'), { recursive: true });
    mkdirSync(path.join(dir, 'emptydir'));
    for (let i = 0; i < 1500; i++) writeFileSync(path.join(dir, i % 3 ? 'sub' : '.', `file-é-${i}-日本.txt`), `file ${i}\n`.repeat(i % 50));
    writeFileSync(path.join(dir, 'sub', 'deeper', 'tool.exe'), randomBytes(5000));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const [label, args] of [
    ['default (solid LZMA2, LZMA header)', []],
    ['one folder per file', ['-ms=off']],
    ['PPMd', ['-m0=PPMd']],
    ['BCJ2 chain', ['-mf=BCJ2']],
    ['stored', ['-mx=0']],
    ['BZip2', ['-m0=BZip2']],
    ['Deflate, uncompressed header', ['-m0=Deflate', '-mhc=off']],
    ['encrypted files', ['-pinfected']],
  ] as const) {
    it(label, () => {
      const file = path.join(work, `${label.replace(/\W+/g, '-')}.7z`);
      execFileSync('7zz', ['a', '-bd', '-bso0', ...args, file, '.'], { cwd: path.join(work, 'files') });
      const listing = execFileSync('7zz', ['l', '-slt', '-pinfected', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).split(/\n\n/);
      const expected = listing
        .filter((b) => /^Path = /m.test(b) && /^Attributes = /m.test(b) && !/^Attributes = D/m.test(b))
        .map((b) => `${/^Path = (.*)$/m.exec(b)![1]}|${/^Encrypted = \+/m.test(b)}`)
        .sort();
      const r = sevenZipNames(readFileSync(file), readFileSync(file).length, { files: 20_000, inflated: 32 * 1024 * 1024 });
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(expected.length, 1501);
      assert.deepEqual(r.files.map((f) => `${f.name}|${f.encrypted}`).sort(), expected);
    });
  }
});

const gateways = filterGateways({ filter: { attachmentFilter: {} }, rules: { transportRules: [PASSWORD_RULE] }, common: { attachmentFilter: { entries: ['Preset:CommonAttachments'] } } });

const with7z = (archive: Buffer, name: string, type = 'application/x-7z-compressed') => withAttachment(archive, name, type);

describe('7z archives at the attachment filter, over SMTP', () => {
  it('a program in a 7z (7-Zip\'s own, or known by its type): 550 5.7.1, nothing stored, the log naming it', async () => {
    const before = await gateways.filter.gw.stored();
    assert.equal((await sendMessage(gateways.filter.port, with7z(fixture('7zip-26.02-lzma-header.7z'), 'invoice.7z'))).reply, REJECTED);
    assert.match(String(gateways.filter.gw.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why), /"invoice\/invoice\.pdf\.exe" inside the archive "invoice\.7z" matches FileName:\*\.exe/);
    assert.equal((await sendMessage(gateways.filter.port, with7z(sevenZip([{ name: 'run.js' }], { header: 'copy' }), 'scripts.bin'))).reply, REJECTED);
    assert.deepEqual(await gateways.filter.gw.stored(), before);
  });

  it('harmless files are queued; a header encrypted with -mhe is judged by the archive\'s own name, the reason says why', async () => {
    assert.match((await sendMessage(gateways.filter.port, with7z(sevenZip([{ name: 'photo.jpg' }, { name: 'notes.txt' }]), 'photos.7z'))).reply, /^250 2\.6\.0 /);
    assert.match((await sendMessage(gateways.filter.port, with7z(fixture('7zip-26.02-encrypted-names.7z'), 'secret.7z'))).reply, /^250 2\.6\.0 /);
    const outcome = gateways.filter.gw.logs.filter((l) => l.msg === 'filter outcome' && l.filter === 'attachment-filter').at(-1);
    assert.match(String(outcome?.reason), /"secret\.7z": its list of files is encrypted/);
  });

  it('a 7z over 8 MB: its start and end are kept, and its header there lists every file, the last one too', async () => {
    const big = sevenZip([{ name: 'video.mp4', data: randomBytes(9 * 1024 * 1024) }, { name: 'player.exe' }], { header: 'copy' });
    assert.equal((await sendMessage(gateways.filter.port, with7z(big, 'media.7z'))).reply, REJECTED);
    assert.match(String(gateways.filter.gw.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why), /"player\.exe" inside the archive "media\.7z"/);
    const harmless = sevenZip([{ name: 'video.mp4', data: randomBytes(9 * 1024 * 1024) }, { name: 'subtitles.srt' }], { header: 'copy' });
    assert.match((await sendMessage(gateways.filter.port, with7z(harmless, 'media.7z'))).reply, /^250 2\.6\.0 /);
  });
});

describe("Exchange Online's file types (Preset:CommonAttachments)", () => {
  it('a disk image, an Excel add-in or a macro document in a 7z is refused; with the default list it passes (not a program)', async () => {
    for (const name of ['invoice.iso', 'report.xll', 'contract.docm']) {
      const archive = sevenZip([{ name }], { header: 'copy' });
      assert.equal((await sendMessage(gateways.common.port, with7z(archive, 'files.7z'))).reply, REJECTED, name);
      assert.match((await sendMessage(gateways.filter.port, with7z(archive, 'files.7z'))).reply, /^250 2\.6\.0 /, `${name}: not on Exchange Edge's list`);
    }
    assert.match(String(gateways.common.gw.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why), /"contract\.docm" inside the archive "files\.7z" matches FileName:\*\.docm/);
  });
});

describe('the MIME reader', () => {
  it('hands the same parts whether it skips leaf bodies or not', async () => {
    const m = Buffer.from(withAttachment(fixture('7zip-26.02-lzma-header.7z'), 'invoice.7z'));
    const fast = await scanMimeParts([m], true, true);
    const slow = await scanMimeParts([m], false, true);
    assert.deepEqual(fast.parts, slow.parts);
    assert.deepEqual(fast.parts.filter((p) => p.part.archive !== undefined).map((p) => p.part.filename), INVOICE);
  });
});

describe('transport rules: attachmentIsPasswordProtected with 7z', () => {
  it('a 7z whose names are encrypted, one whose files are, and such a 7z inside a zip are refused by the rule; an open one passes', async () => {
    const refusal = '550 5.7.1 Password-protected archives cannot be scanned';
    assert.equal((await sendMessage(gateways.rules.port, with7z(fixture('7zip-26.02-encrypted-names.7z'), 'secret.7z'))).reply, refusal, '7z -mhe: the names are hidden');
    assert.equal((await sendMessage(gateways.rules.port, with7z(fixture('7zip-26.02-encrypted-files.7z'), 'files.7z'))).reply, refusal, '7z -p');
    const zipped = zip([{ name: 'inner.7z', data: fixture('7zip-26.02-encrypted-names.7z') }]);
    assert.equal((await sendMessage(gateways.rules.port, with7z(zipped, 'outer.zip', 'application/zip'))).reply, refusal, 'inside a zip');
    assert.match((await sendMessage(gateways.rules.port, with7z(fixture('7zip-26.02-lzma-header.7z'), 'open.7z'))).reply, /^250 2\.6\.0 /);
  });
});
