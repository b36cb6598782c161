// mailq's listing (sendmail -bp) in Postfix's format, from queue rows: the lines monitoring parses
// (check_mailq's "-- N Kbytes in M Requests." and "Mail queue is empty"), the status marks, the
// null sender as MAILER-DAEMON, recipients grouped under the reason of their last deferral, a
// poison message's reason for all of them. Pure (rows in, text out).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MessageRow } from '@mailgw/ops';
import { arrivalTime, mailqText } from '../../packages/cli/src/commands/mailq.js';

const at = new Date(2026, 11, 7, 9, 5, 3).getTime(); // local time, as mailq prints it
const row = (over: Partial<MessageRow>): MessageRow => ({
  id: '01M998N41K8VQX78VKZ3NPP89G',
  status: 'Retry',
  from: 'alerts@contoso.test',
  recipients: [],
  size: 2048,
  receivedAt: at,
  hops: [],
  nextAttemptAt: null,
  lastError: null,
  subject: null,
  pending: [],
  ...over,
});
const INDENT = ' '.repeat(26 + 1 + 1 + 8 + 1 + 19 + 2);

describe('mailq', () => {
  it('an empty queue is the line check_mailq looks for', () => {
    assert.equal(mailqText([]), 'Mail queue is empty\n');
  });

  it("asctime's first 19 characters in local time, the day padded with a space", () => {
    assert.equal(arrivalTime(at), 'Mon Dec  7 09:05:03');
    assert.equal(arrivalTime(new Date(2027, 0, 15, 23, 59, 59).getTime()), 'Fri Jan 15 23:59:59');
  });

  it('one entry per message: id, mark, size, arrival, sender; recipients under the reason of their deferral', () => {
    const text = mailqText([
      row({
        pending: [
          { address: 'a@fabrikam.test', reply: '451 4.4.1 Could not connect to 127.0.0.1[127.0.0.1]:2626' },
          { address: 'new@fabrikam.test', reply: null },
          { address: 'b@fabrikam.test', reply: '451 4.4.1 Could not connect to 127.0.0.1[127.0.0.1]:2626' },
          { address: 'c@example.net', reply: '452 4.2.2 Mailbox full' },
        ],
      }),
      row({ id: '01M998N4Q3C8Z878KZJDJYZ8QP', status: 'Active', from: '', size: 100, pending: [{ address: 'root@contoso.test', reply: null }] }),
    ]);
    assert.equal(
      text,
      [
        '-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------',
        '01M998N41K8VQX78VKZ3NPP89G      2048 Mon Dec  7 09:05:03  alerts@contoso.test',
        `${INDENT}new@fabrikam.test`,
        '(451 4.4.1 Could not connect to 127.0.0.1[127.0.0.1]:2626)',
        `${INDENT}a@fabrikam.test`,
        `${INDENT}b@fabrikam.test`,
        '(452 4.2.2 Mailbox full)',
        `${INDENT}c@example.net`,
        '',
        '01M998N4Q3C8Z878KZJDJYZ8QP*      100 Mon Dec  7 09:05:03  MAILER-DAEMON',
        `${INDENT}root@contoso.test`,
        '',
        '-- 3 Kbytes in 2 Requests.',
        '',
      ].join('\n'),
    );
  });

  it('held messages (suspended, poison) are marked "!"; a poison message\'s reason is said once for all its recipients', () => {
    const text = mailqText([
      row({ status: 'Suspended', pending: [{ address: 'x@example.net', reply: '451 4.4.1 later' }] }),
      row({ id: '01M998N4Q3C8Z878KZJDJYZ8QQ', status: 'Poison', lastError: 'the delivery state cannot be read', pending: [{ address: 'y@example.net', reply: '451 4.4.1 later' }, { address: 'z@example.net', reply: null }] }),
    ]);
    const lines = text.split('\n');
    assert.match(lines[1]!, /^01M998N41K8VQX78VKZ3NPP89G! /);
    assert.equal(lines[2], '(451 4.4.1 later)');
    assert.match(lines[5]!, /^01M998N4Q3C8Z878KZJDJYZ8QQ! /);
    assert.deepEqual(lines.slice(6, 9), ['(the delivery state cannot be read)', `${INDENT}y@example.net`, `${INDENT}z@example.net`]);
    assert.equal(lines.at(-2), '-- 4 Kbytes in 2 Requests.');
  });

  it('a long reason is wrapped at 78 columns, in one pair of parentheses; IDN addresses are shown in U-labels', () => {
    const reason = `451 4.7.5 ${'word '.repeat(30).trim()}`;
    const text = mailqText([row({ from: 'jörg@xn--bcher-kva.test', size: 1, pending: [{ address: 'dana@xn--bcher-kva.test', reply: reason }] })]);
    const lines = text.split('\n');
    assert.match(lines[1]!, / jörg@bücher\.test$/);
    const wrapped = lines.slice(2, lines.findIndex((l) => l.endsWith(')')) + 1);
    assert.ok(wrapped.length >= 2, text);
    assert.ok(wrapped.every((l) => l.length <= 78), text);
    assert.equal(wrapped.join(' '), `(${reason})`);
    assert.equal(lines[2 + wrapped.length], `${INDENT}dana@bücher.test`);
    assert.equal(lines.at(-2), '-- 1 Kbytes in 1 Request.');
  });
});
