import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { deliverToMaildir, mailboxDir, mailboxName, uniqueName } from '@mailgw/worker';

describe('maildir delivery', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mailgw-maildir-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('writes <root>/<domain>/<local>/new with Return-Path and Delivered-To, bytes unchanged, tmp left empty', async () => {
    const body = Buffer.from('Subject: x\r\n\r\n.dot line\r\nbinary \x00\xff\r\n');
    const file = await deliverToMaildir({ root, domain: 'contoso.test', local: 'Alice', returnPath: 'bob@remote.test', deliveredTo: 'alice@contoso.test', body });
    assert.equal(path.dirname(file), path.join(root, 'contoso.test', 'alice', 'new'));
    for (const d of ['tmp', 'new', 'cur']) await readdir(path.join(root, 'contoso.test', 'alice', d));
    assert.deepEqual(await readdir(path.join(root, 'contoso.test', 'alice', 'tmp')), []);
    const stored = await readFile(file);
    const prefix = 'Return-Path: <bob@remote.test>\r\nDelivered-To: alice@contoso.test\r\n';
    assert.equal(stored.subarray(0, prefix.length).toString(), prefix);
    assert.ok(stored.subarray(prefix.length).equals(body));
    assert.match(path.basename(file), new RegExp(`^\\d+\\.M\\d+P${process.pid}R[0-9a-f]+Q\\d+\\..+,S=${stored.length}$`));
  });

  test('LF-only messages get LF headers; the null sender is Return-Path: <>', async () => {
    const file = await deliverToMaildir({ root, domain: 'contoso.test', local: 'lf', returnPath: '', deliveredTo: 'lf@contoso.test', body: Buffer.from('Subject: y\n\nhi\n') });
    assert.match((await readFile(file)).toString(), /^Return-Path: <>\nDelivered-To: lf@contoso\.test\nSubject: y\n/);
  });

  test('unique names differ even within one millisecond', () => {
    const names = new Set(Array.from({ length: 1000 }, () => uniqueName(10, 1_700_000_000_000)));
    assert.equal(names.size, 1000);
  });

  test('local parts can never leave the domain directory', () => {
    assert.equal(mailboxName('../../etc'), '%2E.%2F..%2Fetc');
    assert.equal(mailboxName('a/b'), 'a%2Fb');
    assert.equal(mailboxName('.hidden'), '%2Ehidden');
    assert.equal(mailboxName('"quoted name"'), '%22quoted%20name%22');
    assert.equal(mailboxName('Jörg'), 'j%C3%B6rg');
    assert.equal(mailboxName('100%'), '100%25');
    for (const l of ['..', '.', '../x', 'a/../../b']) {
      const dir = mailboxDir('/srv/mail', 'contoso.test', l);
      assert.ok(dir.startsWith('/srv/mail/contoso.test/') && !dir.slice('/srv/mail/contoso.test/'.length).includes('/'), dir);
    }
    assert.throws(() => mailboxDir('/srv/mail', '..', 'x'), RangeError);
  });
});
