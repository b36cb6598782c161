// Strip writes the message again with mailsplit and replaces the parts the first reading found,
// by their order. mailsplit does not read every message the same whatever its writes (a line
// starting with a bare CR before a delimiter counts as one only when the line ending before it
// came in the same write), so the second reading must be given the writes the first was given:
// otherwise the n-th part there is not the n-th part here, and the wrong part is replaced while
// the program stays.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { DEFAULT_ATTACHMENT_FILTER_ENTRIES, type AttachmentFilterConfig } from '@mailgw/config';
import { parseHeaderFields } from '@mailgw/mail';
import { attachmentFilter } from '../src/index.js';

it('Strip replaces the part the first reading found, whatever the writes the message came in', async () => {
  const cfg: AttachmentFilterConfig = { action: 'Strip', rejectResponse: 'no', adminMessage: 'This attachment was removed.', exceptionConnectors: [], entries: DEFAULT_ATTACHMENT_FILTER_ENTRIES, openArchives: true };
  const header = Buffer.from('From: <a@example.net>\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n');
  // The writes as DATA might bring them: the bare-CR delimiter line starts the second write.
  const writes = [
    Buffer.from('--b\nContent-Type: text/plain\n\nxx\n--c\n\r'),
    Buffer.from('\n\r--b\nContent-Type: text/plain; name="note.txt"\n\nhidden in one reading\n--b\nContent-Type: application/x-msdownload; name="evil.exe"\n\nTVqQAAMAAAAEAAAA\n--b--\n'),
  ];
  const session = attachmentFilter(cfg).begin({ queueId: 'q', connector: 'Internet', clientIP: '127.0.0.1', clientHostname: '[127.0.0.1]', helo: 'x', tls: null, authUser: null, sender: null, recipients: [], fqdn: 'mx.contoso.test' });
  await session.header(parseHeaderFields(header).slice(0, -1));
  for (const w of writes) await session.body(w);
  const outcome = await session.end();
  assert.equal(outcome.verdict, 'accept', outcome.reason);
  const body = outcome.replaceBody?.toString('latin1') ?? '';
  assert.doesNotMatch(body, /TVqQAAMAAAAEAAAA/, 'the program is gone');
  assert.match(body, /name="?evil\.exe\.txt"?/, 'replaced by the admin message');
  assert.match(body, /hidden in one reading/, 'the part before it is untouched');
});

it('Strip finishes whatever the writes: the body\'s last 4 octets on their own (as smtp-server hands them on), a few octets each (it used to wait for its timeout)', async () => {
  const cfg: AttachmentFilterConfig = { action: 'Strip', rejectResponse: 'no', adminMessage: 'This attachment was removed.', exceptionConnectors: [], entries: DEFAULT_ATTACHMENT_FILTER_ENTRIES, openArchives: true };
  const header = Buffer.from('From: <a@example.net>\r\nContent-Type: multipart/mixed; boundary="m1"\r\n\r\n');
  const body = Buffer.from(['--m1', 'Content-Type: text/plain', '', 'Here is the tool.', '--m1', 'Content-Type: application/octet-stream; name="tool.exe"', 'Content-Disposition: attachment; filename="tool.exe"', 'Content-Transfer-Encoding: base64', '', 'TVogZmFrZSBwcm9ncmFt', '--m1--', ''].join('\r\n'));
  const outcomes: string[] = [];
  const cuts = (size: number) => Array.from({ length: Math.ceil(body.length / size) }, (_, i) => body.subarray(i * size, (i + 1) * size));
  for (const writes of [[body], [body.subarray(0, -4), body.subarray(-4)], cuts(50), cuts(7), cuts(3), cuts(1)]) {
    const size = writes[0]!.length;
    const session = attachmentFilter(cfg).begin({ queueId: 'q', connector: 'Internet', clientIP: '127.0.0.1', clientHostname: '[127.0.0.1]', helo: 'x', tls: null, authUser: null, sender: null, recipients: [], fqdn: 'mx.contoso.test' });
    await session.header(parseHeaderFields(header).slice(0, -1));
    for (const w of writes) await session.body(w);
    const outcome = await Promise.race([session.end(), new Promise<null>((r) => setTimeout(() => r(null), 5000).unref())]);
    assert.ok(outcome, `${writes.length} writes (the first of ${size} octets): the filter answered`);
    assert.equal(outcome.verdict, 'accept', outcome.reason);
    outcomes.push(outcome.replaceBody?.toString('latin1') ?? '');
  }
  assert.doesNotMatch(outcomes[0]!, /TVogZmFrZSBwcm9ncmFt/);
  for (const o of outcomes) assert.equal(o, outcomes[0], 'the same message whatever the writes');
});
