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
import { envelope, parts } from './fixtures.js';

function fullJob(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const id = newQueueId();
  return { ...envelope(id), v: 2, bodyKey: keySpace().body(id), size: 123, ...overrides };
}

test('a complete job validates and keeps its shape', () => {
  const input = fullJob();
  const job: DeliveryJob = parseDeliveryJob(input);
  // The addresses are parts; their text form is derived from the parts (never parsed back).
  const { mailFrom, rcptTo, ...rest } = job;
  assert.deepEqual(rest, Object.fromEntries(Object.entries(input).filter(([k]) => k !== 'mailFrom' && k !== 'rcptTo')));
  assert.deepEqual(mailFrom, { ...(input.mailFrom as object), address: 'sender@test.example' });
  assert.deepEqual(
    rcptTo.map((r) => r.address),
    ['rcpt1@dest.example', 'rcpt2@dest.example'],
  );
});

test('a quoted local part is kept as parts and written quoted', () => {
  const job = parseDeliveryJob(fullJob({ rcptTo: [{ local: 'john doe', domain: 'contoso.test' }] }));
  assert.deepEqual(job.rcptTo[0], { local: 'john doe', domain: 'contoso.test', address: '"john doe"@contoso.test' });
  // A stored text form never overrides the parts.
  const stale = parseDeliveryJob(fullJob({ rcptTo: [{ local: 'john doe', domain: 'contoso.test', address: 'someone@else.test' }] }));
  assert.equal(stale.rcptTo[0]!.address, '"john doe"@contoso.test');
});

test('a version 1 job (addresses as text) is read by parsing its addresses once, quoted local parts included', () => {
  const { mailFrom: _m, rcptTo: _r, ...base } = fullJob();
  const job = parseDeliveryJob({
    ...base,
    v: 1,
    mailFrom: { address: '', ret: 'FULL' },
    rcptTo: [{ address: '"john doe"@Contoso.TEST', notify: ['never'] }, { address: 'bob@bücher.test' }],
  });
  assert.equal(job.v, 2);
  assert.equal(job.mailFrom.sender, null);
  assert.equal(job.mailFrom.address, '');
  assert.deepEqual(job.rcptTo.map((r) => [r.local, r.domain, r.address]), [
    ['john doe', 'contoso.test', '"john doe"@contoso.test'],
    ['bob', 'xn--bcher-kva.test', 'bob@xn--bcher-kva.test'],
  ]);
  assert.deepEqual(job.rcptTo[0]!.notify, ['NEVER']);
  // An address that does not parse is not guessed at: the job is invalid.
  assert.throws(() => parseDeliveryJob({ ...base, v: 1, mailFrom: { address: '' }, rcptTo: [{ address: 'no-at-sign' }] }), InvalidDeliveryJobError);
});

test('null sender, no TLS, authenticated user, minimal recipient', () => {
  const job = parseDeliveryJob(
    fullJob({ mailFrom: { sender: null }, tls: null, authUser: 'alice', rcptTo: [parts('x@y.example')] }),
  );
  assert.equal(job.mailFrom.address, '');
  assert.equal(job.tls, null);
  assert.equal(job.authUser, 'alice');
});

test('DSN keywords are normalised to upper case and checked', () => {
  const job = parseDeliveryJob(
    fullJob({
      mailFrom: { sender: parts('a@b.example'), ret: 'full', body: '8bitmime' },
      rcptTo: [{ ...parts('x@y.example'), notify: ['success', 'Delay'] }],
    }),
  );
  assert.equal(job.mailFrom.ret, 'FULL');
  assert.equal(job.mailFrom.body, '8BITMIME');
  assert.deepEqual(job.rcptTo[0]!.notify, ['SUCCESS', 'DELAY']);
  assert.throws(
    () => parseDeliveryJob(fullJob({ rcptTo: [{ ...parts('x@y.example'), notify: ['NEVER', 'SUCCESS'] }] })),
    InvalidDeliveryJobError,
  );
  assert.throws(
    () => parseDeliveryJob(fullJob({ rcptTo: [{ ...parts('x@y.example'), notify: ['SOMETIMES'] }] })),
    InvalidDeliveryJobError,
  );
});

test('invalid jobs are refused with a readable message', () => {
  const cases: Record<string, unknown>[] = [
    { v: 3 },
    { rcptTo: [{ local: '', domain: 'x.test' }] },
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
