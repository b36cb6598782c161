// gateway.yaml attachmentFilter: off unless present; present, Reject with the default entries;
// entries as Exchange writes them or as objects; every wrong value named with its key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMMON_ATTACHMENT_TYPES, DEFAULT_ATTACHMENT_FILTER_ENTRIES } from '../src/index.js';
import { GATEWAY, buildGateway, expectError } from './fixture.js';

const build = (attachmentFilter: unknown, extra: Record<string, unknown> = {}) => buildGateway({ ...GATEWAY, attachmentFilter, ...extra });

describe('gateway.yaml attachmentFilter', () => {
  it('is off unless present; {} is Reject with the default entries and the Exchange reply text', () => {
    const off = buildGateway(GATEWAY);
    assert.ok(off.ok);
    assert.equal(off.config.gateway.attachmentFilter, undefined);
    const on = build({});
    assert.ok(on.ok);
    assert.deepEqual(on.config.gateway.attachmentFilter, { action: 'Reject', rejectResponse: 'Message rejected due to unacceptable attachments', adminMessage: 'This attachment was removed.', exceptionConnectors: [], entries: DEFAULT_ATTACHMENT_FILTER_ENTRIES, openArchives: true });
    const names = DEFAULT_ATTACHMENT_FILTER_ENTRIES.map((e) => `${e.type}:${e.name}`);
    for (const n of ['FileName:*.exe', 'FileName:*.js', 'FileName:*.vbs', 'FileName:*.scr', 'FileName:*.lnk', 'ContentType:application/x-msdownload']) assert.ok(names.includes(n), n);
  });

  it('takes entries as "Type:name" or { type, name }, types in any case; content types lower-cased, file names kept', () => {
    const r = build({ action: 'silentdelete', entries: ['filename:*.DOCM', { type: 'ContentType', name: 'Application/Zip' }], exceptionConnectors: 'Default' });
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.attachmentFilter, {
      action: 'SilentDelete',
      rejectResponse: 'Message rejected due to unacceptable attachments',
      adminMessage: 'This attachment was removed.',
      exceptionConnectors: ['Default'],
      entries: [{ type: 'FileName', name: '*.DOCM' }, { type: 'ContentType', name: 'application/zip' }],
      openArchives: true,
    });
    const closed = build({ openArchives: false });
    assert.ok(closed.ok);
    assert.equal(closed.config.gateway.attachmentFilter?.openArchives, false);
  });

  it('a whole list by name: Preset:EdgeDefault and Preset:CommonAttachments (Exchange Online\'s file types), combined with entries, each entry once', () => {
    const r = build({ entries: ['Preset:CommonAttachments', 'preset:edgedefault', 'FileName:*.one', 'FileName:*.ISO'] });
    assert.ok(r.ok);
    const names = r.config.gateway.attachmentFilter!.entries.map((e) => `${e.type}:${e.name}`);
    assert.equal(names.length, COMMON_ATTACHMENT_TYPES.length + DEFAULT_ATTACHMENT_FILTER_ENTRIES.length - 22 + 1, 'the 22 types in both lists once, *.ISO already there');
    for (const t of ['FileName:*.iso', 'FileName:*.img', 'FileName:*.xll', 'FileName:*.docm', 'FileName:*.jar', 'ContentType:application/x-msdownload', 'FileName:*.ps1', 'FileName:*.one']) assert.ok(names.includes(t), t);
    assert.equal(names.indexOf('FileName:*.ace'), 0, 'in the order given');
    expectError(build({ entries: ['Preset:Strict'] }), 'gateway.yaml', 'attachmentFilter.entries[0]', /"Preset:Strict": there is no such list; the lists are Preset:EdgeDefault and Preset:CommonAttachments/);
  });

  it('Strip takes an adminMessage (Exchange\'s text by default)', () => {
    const r = build({ action: 'strip', adminMessage: 'Removed by the mail gateway: ask the helpdesk.' });
    assert.ok(r.ok);
    assert.deepEqual([r.config.gateway.attachmentFilter?.action, r.config.gateway.attachmentFilter?.adminMessage], ['Strip', 'Removed by the mail gateway: ask the helpdesk.']);
  });

  it('says what is wrong, with the key', () => {
    expectError(build({ adminMessage: 'removed\u0007' }), 'gateway.yaml', 'attachmentFilter.adminMessage', /no control characters/);
    expectError(build({ action: 'Quarantine' }), 'gateway.yaml', 'attachmentFilter.action', /"Quarantine" is not one of: Reject, Strip, SilentDelete/);
    expectError(build({ entries: ['*.exe'] }), 'gateway.yaml', 'attachmentFilter.entries[0]', /"\*\.exe" names no type; write "FileName:\*\.exe"/);
    expectError(build({ entries: ['Extension:exe'] }), 'gateway.yaml', 'attachmentFilter.entries[0]', /type "Extension" is not FileName or ContentType/);
    expectError(build({ entries: ['FileName:'] }), 'gateway.yaml', 'attachmentFilter.entries[0]', /needs a name of 1 to 255 characters/);
    expectError(build({ entries: ['FileName:bin/*.exe'] }), 'gateway.yaml', 'attachmentFilter.entries[0]', /"bin\/\*\.exe" is not a file name/);
    expectError(build({ entries: ['ContentType:not a type'] }), 'gateway.yaml', 'attachmentFilter.entries[0]', /"not a type" is not a content type/);
    expectError(build({ rejectResponse: 'Nope\u00e9' }), 'gateway.yaml', 'attachmentFilter.rejectResponse', /printable ASCII only/);
    expectError(build({ exceptionConnectors: ['Nowhere'] }), 'gateway.yaml', 'attachmentFilter.exceptionConnectors[0]', /no connector is named "Nowhere" \(connectors: Default\)/);
    expectError(build({ actions: 'Reject' }), 'gateway.yaml', 'attachmentFilter.actions', /unknown key \(did you mean "action"\?\)/);
  });
});
