import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isQueueId, newQueueId, queueIdTimestamp } from '@mailgw/queue';

test('queue ids are 26 Crockford base32 characters with no colon', () => {
  const id = newQueueId();
  assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.ok(!id.includes(':'));
  assert.ok(isQueueId(id));
  assert.ok(!isQueueId('abc'));
  assert.ok(!isQueueId(`${id.slice(0, 25)}:`));
});

test('queue ids are unique and strictly increasing, even within one millisecond', () => {
  const ids = Array.from({ length: 20000 }, () => newQueueId());
  assert.equal(new Set(ids).size, ids.length);
  const sorted = [...ids].sort();
  assert.deepEqual(sorted, ids);
  const fixed = Array.from({ length: 1000 }, () => newQueueId(1_700_000_000_000 + 10_000_000_000));
  assert.deepEqual([...fixed].sort(), fixed);
  assert.equal(new Set(fixed).size, fixed.length);
});

test('queue ids encode their time and sort by it', () => {
  const t = Date.UTC(2030, 0, 2, 3, 4, 5, 678);
  const id = newQueueId(t);
  assert.equal(queueIdTimestamp(id), t);
  const later = newQueueId(t + 1);
  assert.ok(later > id);
  assert.ok(queueIdTimestamp(later) >= t + 1);
  assert.throws(() => queueIdTimestamp('nope'), TypeError);
});
