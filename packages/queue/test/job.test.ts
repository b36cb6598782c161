import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_PREFIX,
  InvalidDeliveryJobError,
  keySpace,
  newQueueId,
  parseDeliveryJob,
  type DeliveryJob,
} from '@mailgw/queue';
import { envelope } from './fixtures.js';

function fullJob(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const id = newQueueId();
  return { ...envelope(id), v: 1, bodyKey: keySpace().body(id), size: 123, ...overrides };
}

test('a complete job validates and keeps its shape', () => {
  const input = fullJob();
  const job: DeliveryJob = parseDeliveryJob(input);
  assert.deepEqual(job, input);
});

test('null sender, no TLS, authenticated user, minimal recipient', () => {
  const job = parseDeliveryJob(
    fullJob({ mailFrom: { address: '' }, tls: null, authUser: 'alice', rcptTo: [{ address: 'x@y.example' }] }),
  );
  assert.equal(job.mailFrom.address, '');
  assert.equal(job.tls, null);
  assert.equal(job.authUser, 'alice');
});

test('DSN keywords are normalised to upper case and checked', () => {
  const job = parseDeliveryJob(
    fullJob({
      mailFrom: { address: 'a@b.example', ret: 'full', body: '8bitmime' },
      rcptTo: [{ address: 'x@y.example', notify: ['success', 'Delay'] }],
    }),
  );
  assert.equal(job.mailFrom.ret, 'FULL');
  assert.equal(job.mailFrom.body, '8BITMIME');
  assert.deepEqual(job.rcptTo[0]!.notify, ['SUCCESS', 'DELAY']);
  assert.throws(
    () => parseDeliveryJob(fullJob({ rcptTo: [{ address: 'x@y.example', notify: ['NEVER', 'SUCCESS'] }] })),
    InvalidDeliveryJobError,
  );
  assert.throws(
    () => parseDeliveryJob(fullJob({ rcptTo: [{ address: 'x@y.example', notify: ['SOMETIMES'] }] })),
    InvalidDeliveryJobError,
  );
});

test('invalid jobs are refused with a readable message', () => {
  const cases: Record<string, unknown>[] = [
    { v: 2 },
    { clientIP: '999.1.1.1' },
    { rcptTo: [] },
    { receivedAt: 'yesterday' },
    { queueId: 'has:colon' },
    { size: -1 },
    { tls: { protocol: 'TLSv1.3' } },
    { unexpected: true },
  ];
  for (const c of cases) {
    assert.throws(
      () => parseDeliveryJob(fullJob(c)),
      (err: unknown) => err instanceof InvalidDeliveryJobError && /invalid delivery job/.test(err.message),
      JSON.stringify(c),
    );
  }
  assert.throws(() => parseDeliveryJob({ ...fullJob(), mailFrom: undefined }), InvalidDeliveryJobError);
});

test('key space: default prefix is a cluster hash tag, every key under it', () => {
  assert.equal(DEFAULT_PREFIX, '{mailgw}');
  const ks = keySpace();
  assert.equal(ks.body('ABC'), '{mailgw}:body:ABC');
  assert.equal(ks.queueKeyPrefix, '{mailgw}:delivery:');
  assert.equal(ks.pattern, '{mailgw}:*');
  assert.throws(() => keySpace('a:b'), TypeError);
  assert.throws(() => keySpace('', 'q'), TypeError);
  assert.throws(() => keySpace('{x}', 'body'), TypeError);
  assert.throws(() => keySpace('{x}', 'has:colon'), TypeError);
});
