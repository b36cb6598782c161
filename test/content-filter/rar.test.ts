// The attachment filter reads the names in RAR archives (RAR 5 and RAR 1.5-4; nothing is
// unpacked): a program in one is refused as in a zip. The archives are written by hand in
// helpers/rar-writer.ts; the reader was also checked against real archives made by WinRAR
// (libarchive's test files, not kept here): RAR 5 UTF-8 names, RAR 4 names in its compact
// Unicode form.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { archiveNames, archivePartKind, rar4UnicodeName, rarNames } from '@mailgw/content-filter';
import { filterGateways, PASSWORD_RULE, withAttachment } from './helpers/filter-gateway.js';
import { rar4, rar5 } from './helpers/rar-writer.js';
import { sendMessage } from './helpers/send-message.js';
import { zip } from './helpers/zip-writer.js';

const REJECTED = '550 5.7.1 Message rejected due to unacceptable attachments';
const OPTS = { depth: 3, maxInflated: 8 * 1024 * 1024 };
const names = (b: Buffer, name = 'a.rar') => {
  const r = archiveNames('rar', b, b.length, name, OPTS);
  return r.ok ? { files: r.files.map((f) => [...f.within, f.name].join('/')), encrypted: r.files.filter((f) => f.encrypted).map((f) => f.name), unread: r.unread } : { why: r.why };
};

describe('RAR names (pure)', () => {
  it('RAR 5 and RAR 4: file names (paths, UTF-8), directories left out, encrypted files marked', () => {
    const files = [{ name: 'docs', directory: true }, { name: 'docs/readme.txt' }, { name: 'bin/setup.exe', encrypted: true }, { name: 'résumé.pdf' }];
    assert.deepEqual(names(rar5(files)), { files: ['docs/readme.txt', 'bin/setup.exe', 'résumé.pdf'], encrypted: ['bin/setup.exe'], unread: [] });
    const latin = files.map((f) => ({ ...f, name: f.name.replace(/\//g, '\\') }));
    assert.deepEqual(names(rar4(latin)), { files: ['docs\\readme.txt', 'bin\\setup.exe', 'résumé.pdf'], encrypted: ['bin\\setup.exe'], unread: [] });
  });

  it("RAR 4's Unicode names: the ANSI name, a NUL, RAR's compact form (high byte, 2-bit opcodes, runs from the ANSI name)", () => {
    // Ω (U+03A9) by opcode 1 (a low byte with the high byte 0x03), then "x.exe" as a run of 5 from the ANSI name.
    const raw = Buffer.concat([Buffer.from('?x.exe', 'latin1'), Buffer.from([0, 0x03, 0x70, 0xa9, 0x03])]);
    assert.equal(rar4UnicodeName(raw), 'Ωx.exe');
    // Opcode 2: a whole UTF-16 unit (中 U+4E2D), opcode 0: a low byte alone ('.'), then a run with a correction (+1: "dyd" → "eze").
    const raw2 = Buffer.concat([Buffer.from('?.dyd', 'latin1'), Buffer.from([0, 0x00, 0b10001100, 0x2d, 0x4e, 0x2e, 0x81, 0x01])]);
    assert.equal(rar4UnicodeName(raw2), '中.eze');
    assert.equal(rar4UnicodeName(Buffer.from('plain-utf8-é.exe', 'utf8')), 'plain-utf8-é.exe', 'no NUL: UTF-8');
    assert.deepEqual(names(rar4([{ name: '', rawName: raw }])), { files: ['Ωx.exe'], encrypted: [], unread: [] });
  });

  it('encrypted headers, not RAR, cut short, the budget: a reason, never a throw (fixed corruption sequence)', () => {
    assert.deepEqual(names(rar5([], { encryptedHeaders: true })), { why: 'its headers are encrypted (a password hides the names)' });
    assert.deepEqual(names(rar4([{ name: 'x.exe' }], { encryptedHeaders: true })), { why: 'its headers are encrypted (a password hides the names)' });
    assert.match(String(names(Buffer.from('MZ this is a self-extractor, not read')).why), /^not a RAR archive/);
    const good = rar5([{ name: 'a.txt', data: Buffer.alloc(3000, 1) }, { name: 'b.exe' }]);
    assert.deepEqual(names(good.subarray(0, 1500)), { files: ['a.txt'], encrypted: [], unread: ['cut short after 1 files: the rest not read'] });
    const budget = { files: 1 };
    assert.deepEqual(rarNames(good, budget), { ok: false, why: "2 files, past what is left of the message's budget of names (1)" });
    // Of a large one only its first bytes are kept: the files in them.
    const head = archiveNames('rar', good.subarray(0, 1500), good.length, 'big.rar', OPTS);
    assert.ok(head.ok, JSON.stringify(head));
    assert.deepEqual([head.files.map((f) => f.name), head.unread.at(-1)], [['a.txt'], `only its first 1500 of ${good.length} bytes were kept (larger than a whole archive is kept): the files after them not read`]);
    let seed = 11;
    const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    const v4 = rar4([{ name: 'a.txt' }, { name: 'b.exe', encrypted: true }]);
    for (let i = 0; i < 2000; i++) {
      for (const g of [good, v4]) {
        const bad = Buffer.from(g);
        for (let k = 1 + rand(6); k > 0; k--) bad[rand(bad.length)] = rand(256);
        const r = rarNames(bad.subarray(0, rand(3) === 0 ? rand(bad.length) : bad.length));
        assert.ok(r.ok ? Array.isArray(r.files) : typeof r.why === 'string');
      }
    }
  });

  it('a RAR inside a zip is listed; a part is a RAR by its type or its name', () => {
    const z = zip([{ name: 'pack.rar', data: rar5([{ name: 'run.js' }]) }]);
    const r = archiveNames('zip', z, z.length, 'all.zip', OPTS);
    assert.ok(r.ok);
    assert.deepEqual(r.files.map((f) => [...f.within, f.name].join('/')), ['pack.rar', 'pack.rar/run.js']);
    assert.equal(archivePartKind('application/vnd.rar', null), 'rar');
    assert.equal(archivePartKind('application/x-rar-compressed', 'x.bin'), 'rar');
    assert.equal(archivePartKind(false, 'Invoice.RAR'), 'rar');
  });
});

const gateways = filterGateways({ filter: { attachmentFilter: {} }, rules: { transportRules: [PASSWORD_RULE] } });

const withRar = (archive: Buffer, name: string, type = 'application/x-rar-compressed') => withAttachment(archive, name, type);

describe('RAR archives at the attachment filter, over SMTP', () => {
  it('a program in a RAR 5 or RAR 4 archive: 550 5.7.1, nothing stored, the log naming it', async () => {
    const before = await gateways.filter.gw.stored();
    assert.equal((await sendMessage(gateways.filter.port, withRar(rar5([{ name: 'invoice.pdf' }, { name: 'invoice.pdf.scr' }]), 'invoice.rar'))).reply, REJECTED);
    assert.match(String(gateways.filter.gw.logs.filter((l) => l.msg === 'message rejected').at(-1)?.why), /"invoice\.pdf\.scr" inside the archive "invoice\.rar" matches FileName:\*\.scr/);
    assert.equal((await sendMessage(gateways.filter.port, withRar(rar4([{ name: 'tools\\update.exe' }]), 'tools.bin', 'application/vnd.rar'))).reply, REJECTED);
    assert.deepEqual(await gateways.filter.gw.stored(), before);
  });

  it('harmless files are queued; encrypted headers are judged by the archive\'s own name, the reason says why', async () => {
    assert.match((await sendMessage(gateways.filter.port, withRar(rar5([{ name: 'photo.jpg' }]), 'photos.rar'))).reply, /^250 2\.6\.0 /);
    assert.match((await sendMessage(gateways.filter.port, withRar(rar5([], { encryptedHeaders: true }), 'secret.rar'))).reply, /^250 2\.6\.0 /);
    const outcome = gateways.filter.gw.logs.filter((l) => l.msg === 'filter outcome' && l.filter === 'attachment-filter').at(-1);
    assert.match(String(outcome?.reason), /"secret\.rar": its headers are encrypted/);
  });
});

describe('transport rules: attachmentIsPasswordProtected with RAR', () => {
  it('a RAR whose names are encrypted, one with an encrypted file, and such a RAR inside a zip are refused by the rule; an open one passes', async () => {
    const refusal = '550 5.7.1 Password-protected archives cannot be scanned';
    assert.equal((await sendMessage(gateways.rules.port, withRar(rar5([], { encryptedHeaders: true }), 'secret.rar'))).reply, refusal, 'rar -hp: the names are hidden');
    assert.equal((await sendMessage(gateways.rules.port, withRar(rar4([{ name: 'x.doc' }], { encryptedHeaders: true }), 'old.rar'))).reply, refusal, 'RAR 4 with encrypted headers');
    assert.equal((await sendMessage(gateways.rules.port, withRar(rar5([{ name: 'a.txt' }, { name: 'b.doc', encrypted: true }]), 'mixed.rar'))).reply, refusal, 'one encrypted file');
    const zipped = zip([{ name: 'inner.rar', data: rar5([], { encryptedHeaders: true }) }]);
    assert.equal((await sendMessage(gateways.rules.port, withRar(zipped, 'outer.zip', 'application/zip'))).reply, refusal, 'inside a zip');
    assert.match((await sendMessage(gateways.rules.port, withRar(rar5([{ name: 'a.txt' }]), 'open.rar'))).reply, /^250 2\.6\.0 /);
  });
});
