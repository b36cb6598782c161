// The attachment filter reads the names in ISO 9660 disk images (.iso, and .img files that are
// one): Windows mounts them with a double-click, and a shortcut or a library inside was how many
// campaigns got past filters that judged the .iso by its name. Images written by hand
// (helpers/iso-writer.ts) and, where the system has it, by xorriso (Joliet, Rock Ridge); over
// real SMTP into Redis.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { archiveNames, archivePartKind, type ZipReading } from '@mailgw/content-filter';
import { filterGateways, withAttachment } from './helpers/filter-gateway.js';
import { iso } from './helpers/iso-writer.js';
import { sendMessage } from './helpers/send-message.js';
import { sevenZip } from './helpers/seven-zip-writer.js';
import { zip } from './helpers/zip-writer.js';

const REJECTED = '550 5.7.1 Message rejected due to unacceptable attachments';
const OPTS = { depth: 3, maxInflated: 8 * 1024 * 1024 };
const noXorriso = spawnSync('xorriso', ['-version'], { stdio: 'ignore' }).status === 0 ? false : 'xorriso (Debian package xorriso) is not installed';

const show = (r: ZipReading): { files?: string[]; unread?: readonly string[]; why?: string } => (r.ok ? { files: r.files.map((f) => [...f.within, f.name].join('/')), unread: r.unread } : { why: r.why });
const names = (b: Buffer, totalSize = b.length, name = 'a.iso') => show(archiveNames('iso', b, totalSize, name, OPTS));

describe('ISO names (pure)', () => {
  const files = [{ path: 'invoice.pdf.lnk' }, { path: 'data/payload.dll', data: Buffer.alloc(5000, 7) }, { path: 'docs/sub/résumé 日本.txt' }];

  it('Joliet names (what Windows shows), in every directory; the primary tree\'s 8.3 names are not listed beside them', () => {
    assert.deepEqual(names(iso(files)), { files: ['invoice.pdf.lnk', 'data/payload.dll', 'docs/sub/résumé 日本.txt'], unread: [] });
  });

  it('without Joliet: Rock Ridge names (what Linux shows) and the 8.3 names (what Windows then shows), both judged', () => {
    assert.deepEqual(names(iso(files, { joliet: false, rockRidge: true })), { files: ['invoice.pdf.lnk', 'INVOICE.PDF', 'data/payload.dll', 'data/PAYLOAD.DLL', 'docs/sub/résumé 日本.txt', 'docs/sub/R_SUM____.TX'], unread: [] });
    assert.deepEqual(names(iso([{ path: 'setup.exe' }], { joliet: false })), { files: ['setup.exe'], unread: [] }, 'the primary names alone');
  });

  it('archives inside are opened from their extents (a zip, a 7z); an image inside a zip is read', () => {
    const inner = iso([{ path: 'pack.zip', data: zip([{ name: 'run.js' }]) }, { path: 'more.7z', data: sevenZip([{ name: 'tool.scr' }], { header: 'copy' }) }]);
    assert.deepEqual(names(inner), { files: ['pack.zip', 'more.7z', 'pack.zip/run.js', 'more.7z/tool.scr'], unread: [] });
    const z = zip([{ name: 'disk.img', data: iso([{ path: 'a.lnk' }]) }]);
    assert.deepEqual(show(archiveNames('zip', z, z.length, 'all.zip', OPTS)), { files: ['disk.img', 'disk.img/a.lnk'], unread: [] });
    assert.equal(archivePartKind('application/x-iso9660-image', null), 'iso');
    assert.equal(archivePartKind(false, 'INVOICE.IMG'), 'iso');
  });

  it('not an image, a large one\'s first bytes, the budget, corruption: a reason or what could be read, never a throw (fixed corruption sequence)', () => {
    assert.match(String(names(Buffer.alloc(40_000)).why), /^not an ISO 9660 image/);
    const big = iso([{ path: 'first.lnk' }, { path: 'video.mp4', data: Buffer.alloc(300_000, 1) }]);
    // Of an image over 8 MB only its first 256 KB are kept: its directories are there.
    assert.deepEqual(names(big.subarray(0, 64 * 1024), big.length).files, ['first.lnk', 'video.mp4']);
    assert.match(String(names(big.subarray(0, 36 * 1024), big.length).unread?.[0]), /its root directory: past the part of the image that was kept/);
    const budget = { files: 1, inflated: 1 << 20 };
    assert.deepEqual(show(archiveNames('iso', big, big.length, 'a.iso', { ...OPTS, budget })), { why: "2 files, past what is left of the message's budget of names (1)" });
    // A directory record pointing at 5 MB of directory records: read up to 4 MB of directories, then said.
    const records = Buffer.alloc(5 * 1024 * 1024);
    for (let sector = 0; sector < records.length / 2048; sector++) {
      for (let k = 0; k < 60; k++) {
        const r = sector * 2048 + k * 34;
        records[r] = 34;
        records[r + 32] = 1;
        records[r + 33] = 0x61; // "a"
      }
    }
    const crafted = iso([{ path: 'x', data: records }], { joliet: false });
    const at = crafted.indexOf('x;1', 17 * 2048, 'latin1') - 33;
    crafted[at + 25] = 0x02; // "x" is now a directory of 5 MB
    const r = names(crafted);
    assert.match(String(r.unread?.at(-1)), /^x: not read \(its directories exceed 4194304 bytes\)$/);
    let seed = 5;
    const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    const samples = [iso(files), iso(files, { joliet: false, rockRidge: true }), iso([{ path: 'p.zip', data: zip([{ name: 'x.exe' }]) }])];
    let answers = 0;
    for (let i = 0; i < 1500; i++) {
      for (const s of samples) {
        const bad = Buffer.from(s);
        // In the descriptors and directories, where the reader looks.
        for (let k = 1 + rand(6); k > 0; k--) bad[16 * 2048 + rand(8 * 2048)] = rand(256);
        const r = archiveNames('iso', bad, bad.length, 'a.iso', { ...OPTS, budget: { files: 20_000, inflated: 32 << 20 } });
        assert.ok(r.ok ? r.files.every((f) => typeof f.name === 'string') : typeof r.why === 'string');
        answers++;
      }
    }
    assert.equal(answers, 4500);
  });
});

describe('images made by xorriso on this machine', { skip: noXorriso }, () => {
  let work: string;
  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'mailgw-iso-'));
    const dir = path.join(work, 'in');
    mkdirSync(path.join(dir, 'docs', 'sub'), { recursive: true });
    writeFileSync(path.join(dir, 'invoice.pdf.lnk'), 'L');
    writeFileSync(path.join(dir, 'docs', 'sub', 'readme.txt'), 'hi');
    writeFileSync(path.join(dir, 'docs', 'Résumé 日本 a name longer than 8.3.pdf.exe'), 'MZ');
    writeFileSync(path.join(dir, 'pack.zip'), zip([{ name: 'run.js' }]));
  });
  after(() => rmSync(work, { recursive: true, force: true }));
  const expected = ['invoice.pdf.lnk', 'pack.zip', 'docs/Résumé 日本 a name longer than 8.3.pdf.exe', 'docs/sub/readme.txt', 'pack.zip/run.js'];

  for (const [label, args] of [['Joliet and Rock Ridge', ['-J', '-R']], ['Joliet', ['-J']], ['Rock Ridge only', ['-R']]] as const) {
    it(label, () => {
      const out = path.join(work, `${label.replace(/\W+/g, '-')}.iso`);
      execFileSync('xorriso', ['-as', 'mkisofs', ...args, '-quiet', '-o', out, path.join(work, 'in')], { stdio: 'ignore' });
      const got = names(readFileSync(out)).files ?? [];
      // Every real name is there; without Joliet, the 8.3 names Windows would show beside them.
      for (const e of expected) assert.ok(got.includes(e), `${e} in ${JSON.stringify(got)}`);
      if ((args as readonly string[]).includes('-J')) assert.deepEqual([...got].sort(), [...expected].sort());
      else assert.ok(got.some((n) => /^docs\/[A-Z0-9_]{1,8}\.EXE$/.test(n)), `an 8.3 name in ${JSON.stringify(got)}`);
    });
  }
});

const gateways = filterGateways({ filter: { attachmentFilter: {} } });

describe('disk images at the attachment filter, over SMTP', () => {
  it('a shortcut in an .iso, a program in an .img that is an ISO: 550 5.7.1, the log naming it; a harmless image is queued', async () => {
    const { gw, port } = gateways.filter;
    assert.equal((await sendMessage(port, withAttachment(iso([{ path: 'Invoice.pdf.lnk' }, { path: 'lib/helper.dat' }]), 'Invoice.iso', 'application/x-iso9660-image'))).reply, REJECTED);
    assert.match(String(gw.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why), /"Invoice\.pdf\.lnk" inside the archive "Invoice\.iso" matches FileName:\*\.lnk/);
    assert.equal((await sendMessage(port, withAttachment(iso([{ path: 'setup.exe' }], { joliet: false }), 'scan.img'))).reply, REJECTED);
    assert.match((await sendMessage(port, withAttachment(iso([{ path: 'photos/a.jpg' }]), 'photos.iso'))).reply, /^250 2\.6\.0 /);
  });
});
