// mailgw explain judges the scenario's attachments with the attachment filter, as the listener's
// filter judges the parts it reads: names and content types, the files inside archives (with
// openArchives), the action's reply; not run for an excepted connector; after the transport rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explain, type DataScenario } from '../src/index.js';
import { policy } from './fixture.js';

const DEFAULT = { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] };
const base = { acceptedDomains: [{ domain: 'contoso.test', default: true }] };
type Attachments = NonNullable<DataScenario['attachments']>;
const stages = (p: ReturnType<typeof policy>, attachments: Attachments, binding = '127.0.0.1:25') =>
  explain(p, { binding, clientIP: '192.0.2.1', mailFrom: 'x@remote.test', rcpt: ['alice@contoso.test'], data: { headers: ['Subject: hi'], attachments } }).stages;
const stage = (p: ReturnType<typeof policy>, attachments: Attachments, binding?: string) => stages(p, attachments, binding).find((x) => x.stage === 'attachments');

describe('explain: the attachment filter on the scenario\'s attachments', () => {
  it('a blocked name or type is refused with the filter\'s reply; a harmless one is queued', () => {
    const p = policy({ ...base, attachmentFilter: {} }, [DEFAULT]);
    const exe = stage(p, ['report.pdf', 'setup.exe'])!;
    assert.deepEqual([exe.decision, exe.reply, exe.reasonCode, exe.input], ['reject', '550 5.7.1 Message rejected due to unacceptable attachments', 'attachment-filter-rejected', '2 attachment(s), 94 entries, action Reject']);
    assert.match(exe.reason, /setup\.exe.*FileName:\*\.exe/);
    const typed = stage(p, [{ name: 'x.bin', contentType: 'application/x-msdownload' }])!;
    assert.equal(typed.decision, 'reject');
    const fine = stage(p, ['report.pdf'])!;
    assert.deepEqual([fine.decision, fine.reasonCode], ['accept', 'attachment-filter-accept']);
  });

  it('the files inside an archive, unless openArchives is false', () => {
    const p = policy({ ...base, attachmentFilter: {} }, [DEFAULT]);
    const inZip = stage(p, [{ name: 'files.tar.gz', files: ['a.txt', 'run.js'] }])!;
    assert.deepEqual([inZip.decision, inZip.input], ['reject', '1 attachment(s), 2 file(s) inside archives, 94 entries, action Reject']);
    assert.match(inZip.reason, /run\.js.*files\.tar\.gz/);
    const closed = policy({ ...base, attachmentFilter: { openArchives: false } }, [DEFAULT]);
    assert.equal(stage(closed, [{ name: 'files.tar.gz', files: ['run.js'] }])!.decision, 'accept');
  });

  it('Strip and SilentDelete answer 250; an excepted connector, no filter or no attachment: no stage', () => {
    const strip = stage(policy({ ...base, attachmentFilter: { action: 'Strip' } }, [DEFAULT]), ['notes.txt', 'setup.exe'])!;
    assert.deepEqual([strip.decision, strip.reasonCode], ['accept', 'attachment-filter-stripped']);
    const del = stage(policy({ ...base, attachmentFilter: { action: 'SilentDelete' } }, [DEFAULT]), ['setup.exe'])!;
    assert.deepEqual([del.decision, del.reasonCode], ['accept', 'attachment-filter-deleted']);
    assert.match(del.reason, /delivered to nobody/);
    const excepted = policy({ ...base, attachmentFilter: { exceptionConnectors: ['Default'] } }, [DEFAULT]);
    assert.equal(stage(excepted, ['setup.exe']), undefined);
    assert.equal(stage(policy(base, [DEFAULT]), ['setup.exe']), undefined);
    assert.equal(stage(policy({ ...base, attachmentFilter: {} }, [DEFAULT]), []), undefined);
  });

  it('after the transport rules: a rule that refuses first leaves no attachment stage', () => {
    const p = policy({ ...base, attachmentFilter: {}, transportRules: [{ name: 'No pdf', attachmentExtensionMatchesWords: ['pdf'], smtpRejectMessageRejectText: 'No PDF' }] }, [DEFAULT]);
    const s = stages(p, ['a.pdf', 'setup.exe']);
    assert.deepEqual(s.map((x) => x.stage).slice(-2), ['message', 'rules']);
    assert.equal(s.at(-1)!.reply, '550 5.7.1 No PDF');
    assert.deepEqual(stages(p, ['setup.exe']).map((x) => x.stage).slice(-3), ['message', 'rules', 'attachments']);
  });
});
