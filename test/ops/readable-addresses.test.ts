// `mailgw queue messages` shows addresses readably: IDN domains in U-labels (the job keeps
// A-labels), a domain that is not valid punycode as it is.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { messagesText } from '../../packages/cli/src/commands/queue-messages.js';

it('the messages table shows U-labels; bad punycode as it is', () => {
  const text = messagesText({ rows: [{ id: 'Q1', status: 'Ready', from: 'jörg@xn--bcher-kva.test', recipients: ['dana@xn--bcher-kva.test', 'eve@xn--zz.test', 'x@xn--bcher-kva.test'], size: 10, receivedAt: 0, hops: [], nextAttemptAt: null, lastError: null, subject: null }], matched: 1, remaining: 1 }, 1000);
  assert.match(text, /<jörg@bücher\.test> +dana@bücher\.test,eve@xn--zz\.test \+1 /);
  assert.doesNotMatch(text, /xn--bcher/);
});
