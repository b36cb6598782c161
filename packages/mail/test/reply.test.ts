import assert from 'node:assert/strict';
import { test } from 'node:test';
import { echoText, formatReply, localReply, MAX_REPLY_TEXT, parseReply, replyStatus } from '../src/reply.js';

test('a next hop\'s reply is parsed into code, enhanced status and one line of text', () => {
  assert.deepEqual(parseReply('550 5.1.1 <b@x>: unknown'), { code: 550, enhanced: '5.1.1', text: '<b@x>: unknown' });
  // Continuation lines repeat the codes: their text is kept, the codes are not.
  assert.deepEqual(parseReply('451-4.7.1 first\n451 4.7.1 second'), { code: 451, enhanced: '4.7.1', text: 'first second' });
  assert.deepEqual(parseReply('554 no enhanced code'), { code: 554, enhanced: null, text: 'no enhanced code' });
  assert.equal(replyStatus(parseReply('554 no enhanced code')!), '5.0.0');
  // An enhanced code of another class is not one (RFC 3463 §2): it stays text.
  assert.deepEqual(parseReply('550 4.1.1 class mismatch'), { code: 550, enhanced: null, text: '4.1.1 class mismatch' });
  assert.equal(parseReply('garbage'), null);
  assert.equal(parseReply(''), null);
});

test('one reply shape both ways: what the worker parses formats back to the line it read', () => {
  for (const line of ['550 5.1.1 User unknown', '250 2.0.0 OK', '354 Start mail input; end with <CRLF>.<CRLF>', '451 no code']) {
    assert.equal(formatReply(parseReply(line)!), line);
  }
});

test('a local reply is one printable line whatever the message held', () => {
  const r = localReply(451, '4.3.0', 'Local delivery failed:\r\nBcc: evil@x.test\u0000');
  assert.equal(formatReply(r), '451 4.3.0 Local delivery failed: Bcc: evil@x.test');
});

test('echoText: outside text in a reply is printable US-ASCII and bounded', () => {
  assert.equal(echoText('FOO', 64), 'FOO');
  // CR and LF would end the line and let the rest pass for a reply of its own; NUL, TAB, 8-bit
  // and UTF-8 are not US-ASCII text either.
  assert.equal(echoText('a\r\n250 b\0\tc\xe9\u2713', 64), 'a??250 b??c??');
  assert.equal(echoText('x'.repeat(64), 64), 'x'.repeat(64));
  assert.equal(echoText('x'.repeat(65), 64), `${'x'.repeat(61)}...`);
  assert.equal(`250 ${echoText('y'.repeat(2000), MAX_REPLY_TEXT)}\r\n`.length, 512);
});
