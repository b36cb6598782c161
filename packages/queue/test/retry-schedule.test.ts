import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gatewaySchema } from '@mailgw/config';
import { nextAttemptAt, retryDelay } from '@mailgw/queue';

const q = gatewaySchema.parse({ acceptedDomains: [{ domain: 'a.test' }] }).queue;

test("Exchange's defaults: 6 transient retries 5 min apart, then 15 min (replies) or 10 min (connections)", () => {
  assert.equal(q.transientRetryAttempts, 6);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => retryDelay(n, 'reply', q)), Array(6).fill(5 * 60_000));
  assert.equal(retryDelay(7, 'reply', q), 15 * 60_000);
  assert.equal(retryDelay(7, 'connection', q), 10 * 60_000);
  assert.equal(retryDelay(50, 'connection', q), 10 * 60_000);
  assert.equal(q.messageExpirationTimeout, 2 * 86_400_000);
  assert.equal(q.delayNotificationTimeout, 4 * 3_600_000);
});

test('the next attempt is never after the expiry', () => {
  const received = 1_000_000;
  const expiry = received + q.messageExpirationTimeout;
  assert.equal(nextAttemptAt(received + 60_000, received, 1, 'reply', q), received + 60_000 + 5 * 60_000);
  assert.equal(nextAttemptAt(expiry - 1000, received, 9, 'reply', q), expiry);
});
