// The attachment filter opens tar archives and gzip files as it opens zips: the names in them
// (and in archives inside them, whatever their kinds) judged by the FileName entries. The
// archives are made by the system's GNU tar and gzip (ustar, GNU long names, pax headers, a
// gzip header's original name), independently of the reader; the reader on its own on
// malformed and cut archives (always an answer, never a throw); and over real SMTP into Redis.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { archiveNames, archivePartKind, gunzippedName, scanMimeParts, type ArchiveKind } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import type { TestGateway } from '../listener/helpers/gateway.js';
import { filterGateway, withAttachment } from './helpers/filter-gateway.js';
import { sendMessage } from './helpers/send-message.js';
import { zip } from './helpers/zip-writer.js';

const REJECTED = '550 5.7.1 Message rejected due to unacceptable attachments';
const OPTS = { depth: 3, maxInflated: 8 * 1024 * 1024 };

let work: string;
let n = 0;
/** A fresh directory with these files (path → contents) in it. */
function tree(files: Record<string, string | Buffer>): string {
  const dir = path.join(work, `t${++n}`);
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), data);
  }
  return dir;
}
/** GNU tar of `files`, in `format` (ustar, gnu, pax), gzipped with -z. */
function tar(files: Record<string, string | Buffer>, o: { format?: 'ustar' | 'gnu' | 'pax'; gzip?: boolean } = {}): Buffer {
  const dir = tree(files);
  const out = path.join(work, `a${++n}.tar${o.gzip ? '.gz' : ''}`);
  execFileSync('tar', [`--format=${o.format ?? 'gnu'}`, o.gzip ? '-czf' : '-cf', out, '-C', dir, ...Object.keys(files)]);
  return readFileSync(out);
}
/** gzip of one file named `name` (gzip keeps the name in its header). */
function gzipFile(name: string, data: string | Buffer): Buffer {
  const dir = tree({ [name]: data });
  execFileSync('gzip', ['-N', path.join(dir, name)]);
  return readFileSync(path.join(dir, `${name}.gz`));
}
const names = (kind: ArchiveKind, b: Buffer, name: string, total = b.length, o: Parameters<typeof archiveNames>[4] = OPTS) => {
  const r = archiveNames(kind, b, total, name, o);
  return r.ok ? { files: r.files.map((f) => [...f.within, f.name].join('/')), unread: r.unread } : { why: r.why };
};

let redis: TestRedis;
let gw: TestGateway;
let port: number;
let gwClosed: TestGateway;
let portClosed: number;

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'mailgw-tar-'));
  redis = await startRedis({ appendonly: false });
  ({ gw, port } = await filterGateway(redis.url, { attachmentFilter: {} }));
  ({ gw: gwClosed, port: portClosed } = await filterGateway(redis.url, { attachmentFilter: { openArchives: false } }));
});

after(async () => {
  for (const g of [gw, gwClosed]) await g?.close();
  await redis?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('which parts are opened, and as what', () => {
  it('by content type first, else by file name (trailing dots and spaces ignored)', () => {
    assert.equal(archivePartKind('application/x-tar', 'x.bin'), 'tar');
    assert.equal(archivePartKind('Application/GZIP', null), 'gzip');
    assert.equal(archivePartKind('application/x-compressed-tar', false), 'gzip');
    assert.equal(archivePartKind('application/zip', 'a.tar'), 'zip');
    assert.equal(archivePartKind('application/octet-stream', 'backup.TGZ'), 'gzip');
    assert.equal(archivePartKind('application/octet-stream', 'logs.tar.gz. '), 'gzip');
    assert.equal(archivePartKind(false, 'src.tar'), 'tar');
    assert.equal(archivePartKind('application/pdf', 'report.pdf'), null);
    assert.equal(archivePartKind(false, 'target.gzip'), null);
    assert.equal(gunzippedName('a.tgz'), 'a.tar');
    assert.equal(gunzippedName('a.tar.gz'), 'a.tar');
    assert.equal(gunzippedName('invoice.pdf.GZ'), 'invoice.pdf');
  });
});

describe('tar and gzip names (pure), archives by GNU tar and gzip', () => {
  it('tar: ustar names with a prefix, GNU long names, pax paths; directories are not files', () => {
    const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(90)}.exe`;
    for (const format of ['ustar', 'gnu', 'pax'] as const) {
      const files = { 'readme.txt': 'hello', 'bin/setup.exe': 'MZ', [format === 'ustar' ? `${'d'.repeat(120)}/run.js` : long]: 'x' };
      assert.deepEqual(names('tar', tar(files, { format }), 'a.tar'), { files: Object.keys(files), unread: [] }, format);
    }
    const pax = tar({ 'résumé.exe': 'MZ' }, { format: 'pax' });
    assert.deepEqual(names('tar', pax, 'a.tar'), { files: ['résumé.exe'], unread: [] });
  });

  it("gzip: the header's original name, else the gzip's own name without .gz; inflated only when that file is an archive", () => {
    assert.deepEqual(names('gzip', gzipFile('report.exe', 'MZ'), 'report.pdf.gz'), { files: ['report.exe'], unread: [] });
    assert.deepEqual(names('gzip', gzipSync('MZ'), 'invoice.pdf.gz'), { files: ['invoice.pdf'], unread: [] }, 'no name in the header (Node writes none)');
    // A bomb that is not an archive is never inflated: 20 MB of zeros named .txt.
    const budget = { files: 10, inflated: 32 * 1024 * 1024 };
    assert.deepEqual(names('gzip', gzipSync(Buffer.alloc(20 * 1024 * 1024)), 'zeros.txt.gz', undefined, { ...OPTS, budget }), { files: ['zeros.txt'], unread: [] });
    assert.equal(budget.inflated, 32 * 1024 * 1024, 'nothing was inflated');
    const tgz = tar({ 'a.txt': 'a' }, { gzip: true });
    names('gzip', tgz, 'a.tgz', undefined, { ...OPTS, budget });
    assert.ok(budget.inflated < 32 * 1024 * 1024, 'an archive inside is inflated, and counted');
  });

  it('.tar.gz and .tgz: the names of the tar inside; a zip in a tar, a tgz in a zip; the depth counts every level', () => {
    const tgz = tar({ 'a.txt': 'a', 'tools/x.exe': 'MZ' }, { gzip: true });
    assert.deepEqual(names('gzip', tgz, 'files.tgz'), { files: ['files.tar', 'files.tar/a.txt', 'files.tar/tools/x.exe'], unread: [] });
    const withZip = tar({ 'inner.zip': zip([{ name: 'deep.js', data: Buffer.from('x') }]) });
    assert.deepEqual(names('tar', withZip, 'a.tar'), { files: ['inner.zip', 'inner.zip/deep.js'], unread: [] });
    const zipped = zip([{ name: 'src.tgz', data: tgz }]);
    assert.deepEqual(names('zip', zipped, 'all.zip'), { files: ['src.tgz', 'src.tgz/src.tar', 'src.tgz/src.tar/a.txt', 'src.tgz/src.tar/tools/x.exe'], unread: [] }, 'zip(1) → gzip(2) → tar(3); tar -z writes no name in the gzip header');
    const deeper = names('zip', zip([{ name: 'outer.zip', data: zipped }]), 'top.zip');
    assert.ok('files' in deeper);
    assert.deepEqual(deeper.files, ['outer.zip', 'outer.zip/src.tgz', 'outer.zip/src.tgz/src.tar'], 'the tar is the fourth level: named, not opened');
  });

  it("bombs and budgets: a .tar.gz inflating past 8 MB, and the message's shared budget of names and bytes", () => {
    const bomb = gzipFile('huge.tar', Buffer.alloc(20 * 1024 * 1024));
    assert.deepEqual(names('gzip', bomb, 'huge.tar.gz'), { files: ['huge.tar'], unread: ['huge.tar: larger than 8388608 bytes unpacked: not opened'] });
    const budget = { files: 2, inflated: 1024 * 1024 };
    const r = names('tar', tar({ 'a.txt': 'a', 'b.txt': 'b', 'c.exe': 'MZ' }), 'a.tar', undefined, { ...OPTS, budget });
    assert.deepEqual(r, { files: ['a.txt', 'b.txt'], unread: ["past the message's budget of names after 2 files: the rest not read"] });
    const tgz = tar({ 'a.txt': 'a' }, { gzip: true });
    assert.deepEqual(names('gzip', tgz, 'x.tgz', undefined, { ...OPTS, budget: { files: 10, inflated: 0 } }), { files: ['x.tar'], unread: ["x.tar: not opened (the message's archives have been unpacked to their budget)"] });
  });

  it('only the end of a large one kept, not tar, not gzip, cut short: a reason, never a throw (fixed corruption sequence)', () => {
    const t = tar({ 'a.txt': 'a'.repeat(3000), 'b.exe': 'MZ' });
    // Only its first bytes kept (a large one): the files in them, the rest said not read.
    assert.deepEqual(names('tar', t.subarray(0, 1024), 'big.tar', t.length), { files: ['a.txt'], unread: ['cut short after 1 files: the rest not read', `only its first 1024 of ${t.length} bytes were kept (larger than a whole archive is kept): the files after them not read`] });
    const tgzHead = tar({ 'first.exe': 'MZ', 'big.bin': randomBytes(2 * 1024 * 1024) }, { gzip: true });
    const head = names('gzip', tgzHead.subarray(0, 4096), 'big.tgz', tgzHead.length);
    assert.ok('files' in head && head.files!.includes('big.tar/first.exe'), `a cut gzip inflates what it holds: ${JSON.stringify(head)}`);
    assert.deepEqual(names('tar', Buffer.from('just some text, not a tar archive at all'.repeat(20)), 'x.tar'), { why: 'not a tar archive (its first header has no valid checksum)' });
    assert.deepEqual(names('gzip', Buffer.from('not gzip at all, not even close'), 'x.gz'), { why: 'not gzip data' });
    const cut = names('tar', t.subarray(0, 1536), 'cut.tar');
    assert.deepEqual(cut, { files: ['a.txt'], unread: ['cut short after 1 files: the rest not read'] }, 'the name is in the header, the data is cut');
    const tgz = tar({ 'a.txt': 'a', 'b.zip': zip([{ name: 'c.exe', data: Buffer.from('MZ') }]) }, { gzip: true });
    // Corruptions: each a deterministic change of one to eight octets, the reader answers every time.
    let seed = 7;
    const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    for (let i = 0; i < 1500; i++) {
      for (const [kind, good, name] of [['tar', t, 'a.tar'], ['gzip', tgz, 'a.tgz']] as const) {
        const bad = Buffer.from(good);
        for (let k = 1 + rand(8); k > 0; k--) bad[rand(bad.length)] = rand(256);
        const len = rand(4) === 0 ? rand(bad.length) : bad.length;
        const r = archiveNames(kind, bad.subarray(0, len), len, name, { ...OPTS, budget: { files: 100, inflated: 1024 * 1024 } });
        assert.ok(r.ok ? Array.isArray(r.files) : typeof r.why === 'string');
      }
    }
  });
});

const lastWhy = () => String(gw.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why);

describe('tar and gzip at the attachment filter, over SMTP', () => {
  it('a program in a .tar.gz, in a tar by type, behind a gzip header name: 550 5.7.1, nothing stored, the log naming it', async () => {
    const before = await gw.stored();
    assert.equal((await sendMessage(port, withAttachment(tar({ 'docs/a.pdf': '%PDF', 'docs/update.exe': 'MZ' }, { gzip: true }), 'docs.tar.gz'))).reply, REJECTED);
    assert.match(lastWhy(), /"docs\/update\.exe" inside the archive "docs\.tar\.gz\/docs\.tar" matches FileName:\*\.exe/);
    assert.equal((await sendMessage(port, withAttachment(tar({ 'run.vbs': 'x' }), 'data.bin', 'application/x-tar'))).reply, REJECTED);
    assert.match(lastWhy(), /"run\.vbs" inside the archive "data\.bin" matches FileName:\*\.vbs/);
    assert.equal((await sendMessage(port, withAttachment(gzipFile('invoice.exe', 'MZ'), 'invoice.pdf.gz'))).reply, REJECTED);
    assert.match(lastWhy(), /"invoice\.exe" inside the archive "invoice\.pdf\.gz" matches FileName:\*\.exe/);
    assert.deepEqual(await gw.stored(), before);
  });

  it('harmless ones are queued; one that cannot be read is judged by its own name, the reason says why', async () => {
    assert.match((await sendMessage(port, withAttachment(tar({ 'a.txt': 'a', 'b.csv': 'b' }, { gzip: true }), 'data.tgz'))).reply, /^250 2\.6\.0 /);
    assert.match((await sendMessage(port, withAttachment(Buffer.from('plain text pretending'), 'logs.tar'))).reply, /^250 2\.6\.0 /);
    const outcome = gw.logs.filter((l) => l.msg === 'filter outcome' && l.filter === 'attachment-filter').at(-1);
    assert.equal(outcome?.verdict, 'accept');
    assert.match(String(outcome?.reason), /not read in archives \(judged by their own names\): "logs\.tar": not a tar archive/);
  });

  it('a tar over 8 MB: the files in its first 256 KB are judged (a program there refused), those after them said not read; openArchives: false opens none', async () => {
    const early = tar({ 'player.exe': 'MZ', 'video.mp4': Buffer.alloc(9 * 1024 * 1024, 0x41) });
    assert.equal((await sendMessage(port, withAttachment(early, 'media.tar'))).reply, REJECTED);
    assert.match(lastWhy(), /"player\.exe" inside the archive "media\.tar" matches FileName:\*\.exe/);
    const late = tar({ 'video.mp4': Buffer.alloc(9 * 1024 * 1024, 0x41), 'player.exe': 'MZ' });
    assert.match((await sendMessage(port, withAttachment(late, 'media.tar'))).reply, /^250 2\.6\.0 /);
    const outcome = gw.logs.filter((l) => l.msg === 'filter outcome' && l.filter === 'attachment-filter').at(-1);
    assert.match(String(outcome?.reason), /"media\.tar": only its first 262144 of \d+ bytes were kept \(larger than a whole archive is kept\): the files after them not read/);
    assert.match((await sendMessage(portClosed, withAttachment(tar({ 'setup.exe': 'MZ' }, { gzip: true }), 'setup.tgz'))).reply, /^250 2\.6\.0 /);
  });

  it('the MIME reader hands the same parts whether it skips leaf bodies or not', async () => {
    const m = Buffer.from(withAttachment(tar({ 'x.exe': 'MZ', 'y.txt': 'y' }, { gzip: true }), 'pack.tgz'));
    const fast = await scanMimeParts([m], true, true);
    const slow = await scanMimeParts([m], false, true);
    assert.deepEqual(fast.parts, slow.parts);
    assert.deepEqual(fast.parts.filter((p) => p.part.archive !== undefined).map((p) => [p.part.archive, p.part.filename]), [['pack.tgz', 'pack.tar'], ['pack.tgz/pack.tar', 'x.exe'], ['pack.tgz/pack.tar', 'y.txt']]);
  });
});
