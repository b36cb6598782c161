// Envelope journal reports (journal-report.ts): the report's header and text lines, the
// recipients' To/Cc/Bcc when the addressing is trusted, and the original between prefix and
// suffix coming out of a MIME parser unaltered, whatever its transfer encoding.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { journalRecipients, journalReportLines, journalReportParts, messageHeaderFields } from '../src/index.js';

const ORIGINAL = Buffer.from(
  ['From: "Boss" <boss@contoso.test>', 'Sender: assistant@contoso.test', 'To: bob@contoso.test, "Carol" <carol@example.org>', 'Cc: dave@contoso.test', 'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=', 'Message-ID: <m1@contoso.test>', '', 'Hello.', '--not-a-boundary', ''].join('\r\n'),
  'latin1',
);
const fields = messageHeaderFields(ORIGINAL);

describe('journal reports', () => {
  it('recipients: To/Cc by the header, the rest Bcc, when the addressing is trusted; otherwise every one "Recipient"', () => {
    const envelope = ['bob@contoso.test', 'Carol@Example.org', 'dave@contoso.test', 'eve@contoso.test'];
    assert.deepEqual(journalRecipients(envelope, fields, true).map((r) => `${r.kind}: ${r.address}`), ['To: bob@contoso.test', 'To: Carol@Example.org', 'Cc: dave@contoso.test', 'Bcc: eve@contoso.test']);
    assert.deepEqual(journalRecipients(envelope, fields, false).map((r) => r.kind), ['Recipient', 'Recipient', 'Recipient', 'Recipient']);
  });

  it('the text: Sender (the envelope sender; the From for a bounce), Subject as text, Message-Id, On-Behalf-Of for send on behalf, a line per recipient', () => {
    const lines = journalReportLines({ sender: 'assistant@contoso.test', fields, originalMessageId: '<m1@contoso.test>', recipients: [{ address: 'bob@contoso.test', kind: 'Recipient' }] });
    assert.deepEqual(lines, ['Sender: assistant@contoso.test', 'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=', 'Message-Id: <m1@contoso.test>', 'On-Behalf-Of: boss@contoso.test', 'Recipient: bob@contoso.test']);
    const bounce = journalReportLines({ sender: '', fields: messageHeaderFields(Buffer.from('From: MAILER-DAEMON@example.org\r\nSubject: x\r\n\r\n')), originalMessageId: '<b@example.org>', recipients: [] });
    assert.equal(bounce[0], 'Sender: MAILER-DAEMON@example.org');
    const injected = journalReportLines({ sender: 'a@b.test', fields: messageHeaderFields(Buffer.from('Subject: one\r\n two\r\n\r\n')), originalMessageId: '<x\r\nBcc: evil@example.org>', recipients: [] });
    assert.deepEqual(injected.slice(1, 3), ['Subject: one two', 'Message-Id: <x Bcc: evil@example.org>'], 'no line can be forged into the report');
  });

  for (const transferEncoding of ['7bit', '8bit', 'binary'] as const) {
    it(`a MIME parser reads the report and finds the original unaltered (${transferEncoding})`, async () => {
      const { prefix, suffix } = journalReportParts({
        from: 'postmaster@contoso.test',
        to: 'journal@archive.test',
        messageId: '<r1@mx.contoso.test>',
        date: new Date('2026-12-07T12:00:00Z'),
        sender: 'assistant@contoso.test',
        fields,
        originalMessageId: '<m1@contoso.test>',
        recipients: [{ address: 'bob@contoso.test', kind: 'To' }],
        transferEncoding,
      });
      const report = Buffer.concat([prefix, ORIGINAL, suffix]);
      const text = report.toString('latin1');
      assert.match(text, /^From: postmaster@contoso\.test\r\nTo: journal@archive\.test\r\nSubject: =\?utf-8\?q\?Gr=C3=BC=C3=9Fe\?=\r\nDate: Mon, 07 Dec 2026 12:00:00 \+0000\r\nMessage-ID: <r1@mx\.contoso\.test>\r\nMIME-Version: 1\.0\r\nX-MS-Journal-Report:\r\n/);
      const parsed = await simpleParser(report);
      assert.equal(parsed.subject, 'Grüße');
      assert.deepEqual(parsed.text?.trim().split(/\r?\n/), ['Sender: assistant@contoso.test', 'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=', 'Message-Id: <m1@contoso.test>', 'On-Behalf-Of: boss@contoso.test', 'To: bob@contoso.test']);
      const original = parsed.attachments.find((a) => a.contentType === 'message/rfc822');
      assert.ok(original);
      assert.ok(original.content.equals(ORIGINAL), 'attached unaltered');
      assert.equal(/Content-Transfer-Encoding: (\w+)\r\n\r\nFrom: "Boss"/.exec(text)?.[1] ?? '7bit', transferEncoding);
    });
  }
});
