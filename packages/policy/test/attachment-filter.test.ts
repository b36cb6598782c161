// The attachment filter's decisions: which entry a part matches (file name wildcards without
// regard to case, the name Windows would act on; content types exactly), and the verdict of
// the configured action with its reply and reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttachmentFilterEntry } from '@mailgw/config';
import { attachmentMatcher, attachmentVerdict, configuredFilters, effectiveFileName } from '../src/index.js';

const entries: AttachmentFilterEntry[] = [
  { type: 'FileName', name: '*.exe' },
  { type: 'FileName', name: 'report-??.xls' },
  { type: 'FileName', name: 'exact name.txt' },
  { type: 'ContentType', name: 'application/x-msdownload' },
];
const match = attachmentMatcher(entries);
const hit = (filename: string | null, contentType: string | null = null) => {
  const e = match({ filename, contentType });
  return e ? `${e.type}:${e.name}` : null;
};

describe('attachmentMatcher', () => {
  it('file names: wildcards, any case, the whole name', () => {
    assert.equal(hit('setup.exe'), 'FileName:*.exe');
    assert.equal(hit('SETUP.EXE'), 'FileName:*.exe');
    assert.equal(hit('.exe'), 'FileName:*.exe');
    assert.equal(hit('setup.exe.txt'), null);
    assert.equal(hit('setup.exes'), null);
    assert.equal(hit('report-07.xls'), 'FileName:report-??.xls');
    assert.equal(hit('report-7.xls'), null);
    assert.equal(hit('Exact Name.TXT'), 'FileName:exact name.txt');
    assert.equal(hit('exact name.txt.bak'), null);
  });
  it('judges the name Windows acts on: no path, no trailing dots or spaces', () => {
    assert.equal(effectiveFileName('C:\\Users\\x\\run.exe'), 'run.exe');
    assert.equal(effectiveFileName('../../run.exe. . '), 'run.exe');
    assert.equal(hit('dir/sub/run.exe'), 'FileName:*.exe');
    assert.equal(hit('invoice.exe.'), 'FileName:*.exe');
    assert.equal(hit('invoice.exe   '), 'FileName:*.exe');
  });
  it('a control character in a name: the name before it and the whole name are both judged', () => {
    assert.equal(hit('evil.exe\u0000.pdf'), 'FileName:*.exe');
    assert.equal(hit('report.pdf\u0000.exe'), 'FileName:*.exe');
    assert.equal(hit('report.pdf\u0000.txt'), null);
  });
  it('regular-expression characters in a pattern are literal', () => {
    const m = attachmentMatcher([{ type: 'FileName', name: 'a+b(1).[x]' }]);
    assert.ok(m({ filename: 'A+B(1).[X]', contentType: null }));
    assert.equal(m({ filename: 'aab(1).x', contentType: null }), null);
  });
  it('endings of several dots (*.tar.gz), the first entry in the list reported when several match', () => {
    const m = attachmentMatcher([{ type: 'FileName', name: 'setup*' }, { type: 'FileName', name: '*.tar.gz' }, { type: 'FileName', name: '*.gz' }, { type: 'FileName', name: '*.EXE' }]);
    const name = (f: string) => m({ filename: f, contentType: null })?.name ?? null;
    assert.equal(name('backup.TAR.GZ'), '*.tar.gz');
    assert.equal(name('backup.gz'), '*.gz');
    assert.equal(name('setup.tar.gz'), 'setup*', 'a pattern earlier in the list wins over an ending');
    assert.equal(name('x.exe'), '*.EXE');
    assert.equal(name('x.tar.gzip'), null);
  });

  it('the same entry as one regular expression per entry would give (random names and entries)', async () => {
    const fc = (await import('fast-check')).default;
    const piece = fc.constantFrom('a', 'B', '.', 'exe', 'EXE', 'tar', 'gz', ' ', '-', '*', '?', 'x');
    const text = fc.array(piece, { minLength: 1, maxLength: 6 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.array(text, { minLength: 1, maxLength: 6 }), text, (patterns, filename) => {
        const list: AttachmentFilterEntry[] = patterns.map((p) => ({ type: 'FileName', name: p.startsWith('*') || p.length % 2 ? p : `*${p}` }));
        const reference = list.find((e) => new RegExp(`^${e.name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'isu').test(effectiveFileName(filename))) ?? null;
        assert.equal(attachmentMatcher(list)({ filename, contentType: null }), reference, JSON.stringify({ list, filename }));
      }),
      { numRuns: 3000, seed: 20261207 },
    );
  });

  it('content types exactly, in any case; a part may match by type with no name', () => {
    assert.equal(hit(null, 'application/x-msdownload'), 'ContentType:application/x-msdownload');
    assert.equal(hit('harmless.txt', 'Application/X-MSDownload'), 'ContentType:application/x-msdownload');
    assert.equal(hit(null, 'application/x-msdownloads'), null);
    assert.equal(hit(null, null), null);
  });
});

describe('attachmentVerdict', () => {
  const exe = { part: { filename: 'setup.exe', contentType: 'application/octet-stream' }, entry: entries[0]! };
  const typed = { part: { filename: null, contentType: 'application/x-msdownload' }, entry: entries[3]! };
  it('no match: accept', () => {
    assert.deepEqual(attachmentVerdict([], { action: 'Reject', rejectResponse: 'x' }), { verdict: 'accept', reason: 'no attachment matches an entry' });
  });
  it('Reject: 550 5.7.1 with the rejectResponse, naming the parts and entries', () => {
    const v = attachmentVerdict([exe, typed], { action: 'Reject', rejectResponse: 'Message rejected due to unacceptable attachments' });
    assert.equal(v.verdict, 'reject');
    assert.deepEqual([v.reply?.code, v.reply?.enhanced, v.reply?.text], [550, '5.7.1', 'Message rejected due to unacceptable attachments']);
    assert.equal(v.reason, '"setup.exe" (application/octet-stream) matches FileName:*.exe; a part of type application/x-msdownload matches ContentType:application/x-msdownload: rejected (action Reject)');
  });
  it('SilentDelete: discard; more than three matches are counted, not listed', () => {
    const v = attachmentVerdict([exe, exe, exe, exe, exe], { action: 'SilentDelete', rejectResponse: 'x' });
    assert.equal(v.verdict, 'discard');
    assert.match(v.reason, /; and 2 more: deleted \(action SilentDelete\)$/);
  });
  it('Strip: the nodes to replace, once each (an attached message holding matches goes whole)', () => {
    const at = (index: number, inAttachedMessage = false) => ({ index, root: false, container: false, inAttachedMessage });
    const v = attachmentVerdict([{ ...exe, place: at(4) }, { ...typed, place: at(2) }, { ...exe, place: at(7, true) }, { ...typed, place: at(7, true) }], { action: 'Strip', rejectResponse: 'no' });
    assert.deepEqual(v.verdict === 'strip' && v.strip, [2, 4, 7]);
    assert.match(v.reason, /"setup\.exe" \(application\/octet-stream\) in an attached message matches FileName:\*\.exe; and 1 more: 3 parts removed \(action Strip\)$/);
  });
  it('Strip refuses, as Reject, what has no part to remove: the message itself, a container', () => {
    const root = attachmentVerdict([{ ...typed, place: { index: 0, root: true, container: false, inAttachedMessage: false } }], { action: 'Strip', rejectResponse: 'no' });
    assert.deepEqual([root.verdict, root.verdict === 'reject' && root.reply.code], ['reject', 550]);
    assert.match(root.reason, /rejected \(action Strip, but the message itself is of that kind: nothing to remove\)$/);
    const box = attachmentVerdict([{ ...exe, place: { index: 3, root: false, container: true, inAttachedMessage: false } }], { action: 'Strip', rejectResponse: 'no' });
    assert.match(box.reason, /a multipart container matches: nothing to remove/);
  });
});

describe('configuredFilters', () => {
  it('the attachment filter runs first, not as an anti-spam filter, with its exception connectors', () => {
    const f = configuredFilters({ attachmentFilter: { exceptionConnectors: ['Client'] }, rspamd: {}, milters: [] });
    assert.deepEqual(f.map((x) => [x.name, x.antiSpam, x.exceptConnectors ?? null]), [['attachment-filter', false, ['Client']], ['rspamd', true, null]]);
  });
});
