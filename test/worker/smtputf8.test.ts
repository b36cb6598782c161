// SMTPUTF8 outbound (RFC 6531 3.2): a message received with SMTPUTF8 goes to a next hop that
// offers it with the keyword and its UTF-8 addresses, bounces with 5.6.7 from one that does
// not (nothing sent: no silent downgrade), and reaches a Maildir under its UTF-8 local part.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseDsn } from './helpers/dsn.js';
import { enqueue, eventually, mailbox, message, withoutDeliveryHeaders } from './helpers/gateway.js';
import { rigsPerTest } from './helpers/rig.js';

const { farSide, rig, done } = rigsPerTest();

describe('SMTPUTF8 outbound', () => {
  test('a next hop offering SMTPUTF8 gets MAIL … SMTPUTF8 and the UTF-8 addresses', async () => {
    const far = await farSide();
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, { from: 'jörg@contoso.test', to: ['ålice@remote.test'], body: message('utf8 ok'), smtpUtf8: true });
    await done(r, id);
    assert.equal(far.messages.length, 1);
    assert.equal(far.messages[0]!.smtpUtf8, true);
    assert.equal(far.messages[0]!.mailFrom, 'jörg@contoso.test');
    assert.deepEqual(far.messages[0]!.rcptTo, ['ålice@remote.test']);
  });

  test('a next hop without SMTPUTF8: nothing sent, the recipient bounces with 5.6.7', async () => {
    const far = await farSide({ smtpUtf8: false });
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['ålice@remote.test'], body: message('utf8 refused'), smtpUtf8: true });
    await done(r, id);
    assert.equal(far.messages.length, 0, 'no downgrade: the far side got nothing');
    const p = await r.progress(id);
    assert.equal(p!.recipients[0]!.status, 'failed');
    assert.equal(p!.recipients[0]!.reply!.enhanced, '5.6.7');
    const [dsnFile] = await eventually(async () => {
      const box = await mailbox(r.root, 'alice@contoso.test');
      return box.length > 0 ? box : null;
    }, 'the DSN in the sender mailbox');
    const dsn = await parseDsn(withoutDeliveryHeaders(dsnFile!).rest);
    assert.equal(dsn.recipients[0]!.status, '5.6.7');
  });

  test('a plain message still goes to a next hop without SMTPUTF8', async () => {
    const far = await farSide({ smtpUtf8: false });
    const r = await rig({ routes: () => [{ domains: ['*'], to: `smtp://127.0.0.1:${far.port}` }] });
    await r.start();
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body: message('plain') });
    await done(r, id);
    assert.equal(far.messages.length, 1);
    assert.equal(far.messages[0]!.smtpUtf8, false);
  });

  test('Maildir delivery to a UTF-8 local part', async () => {
    const r = await rig({ routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }] });
    await r.start();
    const body = message('utf8 maildir');
    const id = await enqueue(r.store, { from: 'jörg@remote.test', to: ['ålice@contoso.test'], body, smtpUtf8: true });
    await done(r, id);
    assert.equal((await r.progress(id))!.recipients[0]!.status, 'delivered');
    // The directory name keeps the UTF-8 bytes percent-encoded (maildir.ts mailboxName).
    const dir = path.join(r.root, 'contoso.test', '%C3%A5lice', 'new');
    const names = readdirSync(dir);
    assert.equal(names.length, 1, 'delivered into the maildir of ålice');
    const file = readFileSync(path.join(dir, names[0]!));
    // Return-Path and Delivered-To carry the addresses in UTF-8 (RFC 6532).
    assert.ok(file.subarray(0, 200).includes(Buffer.from('Return-Path: <jörg@remote.test>\r\n', 'utf8')), file.subarray(0, 200).toString('utf8'));
    assert.ok(file.subarray(0, 200).includes(Buffer.from('Delivered-To: ålice@contoso.test\r\n', 'utf8')), file.subarray(0, 200).toString('utf8'));
    assert.ok(file.subarray(file.length - body.length).equals(body));
  });
});
