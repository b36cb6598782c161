// quickDeliveryJob (job.ts) repeats DeliveryJobSchema's rules by hand for speed. The contract:
// a job it takes, the schema takes too, with the same output; what it leaves (null), the
// schema decides. Checked on generated jobs, valid and mutated, and on the listener's shapes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DeliveryJobSchema, keySpace, newQueueId, parseDeliveryJob, quickDeliveryJob } from '@mailgw/queue';
import { envelope } from './fixtures.js';

const SEED = Number(process.env.MAILGW_FUZZ_SEED ?? 20261204);

/** Asserts the contract; true when the quick path took the job. */
function agreeWithSchema(data: unknown): boolean {
  const quick = quickDeliveryJob(data);
  const schema = DeliveryJobSchema.safeParse(data);
  if (quick === null) return false;
  assert.ok(schema.success, `the quick path took a job the schema refuses: ${JSON.stringify(data)}\n${schema.success ? '' : schema.error.message}`);
  assert.deepStrictEqual(quick, schema.data, JSON.stringify(data));
  return true;
}

// Valid values, near the schema's limits, with case games for the keywords (ı upper-cases to I).
const upTo = (max: number, min = 0) => fc.oneof(fc.string({ minLength: min, maxLength: Math.min(max, 8) }), fc.string({ minLength: max, maxLength: max }));
const keyword = (words: readonly string[]) =>
  fc.oneof(fc.constantFrom(...words), fc.constantFrom(...words).map((w) => w.toLowerCase()), fc.constantFrom(...words).map((w) => w.replace(/I/g, 'ı')));
const address = fc.record({ local: upTo(1024, 1), domain: upTo(255, 1) }, { noNullPrototype: true });
const recipient = fc.record(
  {
    local: upTo(1024, 1),
    domain: upTo(255, 1),
    notify: fc.oneof(fc.constant(['NEVER']), fc.uniqueArray(keyword(['SUCCESS', 'FAILURE', 'DELAY']), { minLength: 1, maxLength: 3 })),
    orcpt: upTo(500),
    address: upTo(1100),
  },
  { requiredKeys: ['local', 'domain'], noNullPrototype: true },
);
const valid = {
  v: fc.constant(2),
  queueId: fc.oneof(fc.constant(newQueueId()), fc.stringMatching(/^[A-Za-z0-9_-]{1,128}$/)),
  messageId: upTo(998),
  receivedAt: fc.date({ min: new Date(0), max: new Date(2e14), noInvalidDate: true }).map((d) => d.toISOString()),
  connector: upTo(256, 1),
  clientIP: fc.oneof(fc.ipV4(), fc.ipV6()),
  clientHostname: upTo(1024),
  helo: upTo(1024),
  tls: fc.option(fc.record({ protocol: upTo(64, 1), cipher: upTo(256, 1) }, { noNullPrototype: true })),
  authUser: fc.option(upTo(1024)),
  mailFrom: fc.record(
    { sender: fc.option(address), ret: keyword(['FULL', 'HDRS']), envid: upTo(100), body: keyword(['7BIT', '8BITMIME', 'BINARYMIME']), smtpUtf8: fc.constant(true), address: upTo(1100) },
    { requiredKeys: ['sender'], noNullPrototype: true },
  ),
  rcptTo: fc.array(recipient, { minLength: 1, maxLength: 3 }),
  bodyKey: fc.oneof(fc.constant(keySpace().body('X')), fc.string({ minLength: 1, maxLength: 8 })),
  size: fc.oneof(fc.nat(), fc.constant(2 ** 53 - 1)),
};
const job = fc.record(valid, { noNullPrototype: true });
// Values each field might wrongly get: just past a limit, another type, a near-miss format.
const wrong = fc.oneof(
  fc.constantFrom(null, undefined, 7, -1, 0.5, Number.NaN, Infinity, 2 ** 53, true, false, '', 'x'.repeat(99), 'x'.repeat(101), 'x'.repeat(257), 'x'.repeat(999), 'x'.repeat(1025), 'x'.repeat(1101)),
  fc.constantFrom('2026-02-29T00:00:00.000Z', '2024-02-29T23:59:59.999Z', '2026-12-04T16:00:00Z', '2026-12-04T16:00:00.000+01:00', '2026-13-01T00:00:00.000Z', '+275760-09-13T00:00:00.000Z'),
  fc.constantFrom('999.1.1.1', '::ffff:1.2.3.4', 'has:colon', 'NEVER', 'never', 'SOMETIMES', 'FULL', 'hdrs', '8bıtmime'),
  fc.constantFrom([], [null], ['NEVER', 'DELAY'], [{ local: 'a', domain: 'b' }], { local: 'a', domain: 'b' }, { local: 'a', domain: 'b', extra: 1 }, { protocol: 'TLSv1.3' }, Object.create(null) as object, new Date()),
  fc.string({ maxLength: 12 }),
);
// The schema's length limits: a mutation often sets a field to one character past (or at) its limit.
const LIMITS: Record<string, number> = { messageId: 998, connector: 256, clientHostname: 1024, helo: 1024, authUser: 1024, envid: 100, orcpt: 500, address: 1100, local: 1024, domain: 255, protocol: 64, cipher: 256 };
// One thing wrong, at the top or one level down: a value replaced, a key gone, a key too many.
const mutated = fc.tuple(job, fc.constantFrom('top', 'mailFrom', 'rcpt', 'tls'), fc.constantFrom('replace', 'drop', 'extra'), fc.nat(), wrong).map(([j, where, how, n, value]) => {
  const out: Record<string, unknown> = { ...j, mailFrom: { ...j.mailFrom }, rcptTo: j.rcptTo.map((r) => ({ ...r })), tls: j.tls && { ...j.tls } };
  const target = (where === 'mailFrom' ? out.mailFrom : where === 'rcpt' ? (out.rcptTo as object[])[0] : where === 'tls' && out.tls ? out.tls : out) as Record<string, unknown>;
  const keys = [...Object.keys(target), 'notify', 'ret', 'smtpUtf8'];
  const k = keys[n % keys.length]!;
  if (how === 'extra') target.unexpected = value;
  else if (how === 'drop') delete target[k];
  else target[k] = k in LIMITS && n % 2 === 0 ? 'x'.repeat(LIMITS[k]! + 1 - (n % 4 === 0 ? 1 : 0)) : value;
  return out;
});

test('whatever the quick path takes, the schema takes with the same output (generated jobs)', () => {
  let taken = 0;
    fc.assert(fc.property(job, (j) => { if (agreeWithSchema(j)) taken++; }), { seed: SEED, numRuns: 2000 });
  // The valid jobs must mostly take the quick path, or this test checks nothing.
  assert.ok(taken > 1900, `only ${taken} of 2,000 valid jobs took the quick path`);
  let mutantsTaken = 0;
  fc.assert(fc.property(mutated, (j) => { if (agreeWithSchema(j)) mutantsTaken++; }), { seed: SEED + 1, numRuns: 4000 });
  assert.ok(mutantsTaken > 200 && mutantsTaken < 3800, `${mutantsTaken} of 4,000 mutated jobs took the quick path`);
});

test('the jobs a listener builds take the quick path, and parse as before', () => {
  const id = newQueueId();
  const base = { ...envelope(id), v: 2 as const, bodyKey: keySpace().body(id), size: 1234 };
  const shapes: Record<string, unknown>[] = [
    base,
    { ...base, tls: null, authUser: 'alice', mailFrom: { sender: null, body: '7BIT' }, rcptTo: [{ local: 'john doe', domain: 'contoso.test' }] },
    { ...base, mailFrom: { sender: { local: 'ü', domain: 'bücher.test' }, body: '8BITMIME', smtpUtf8: true }, clientIP: '::1' },
    { ...base, rcptTo: [{ local: 'x', domain: 'y.test', notify: ['never'] }] },
  ];
  for (const s of shapes) {
    const quick = quickDeliveryJob(s);
    assert.notEqual(quick, null, JSON.stringify(s));
    agreeWithSchema(s);
    assert.deepStrictEqual(parseDeliveryJob(s), quick);
  }
  // Read back from Redis (JSON), as a worker does.
  assert.notEqual(quickDeliveryJob(JSON.parse(JSON.stringify(parseDeliveryJob(base)))), null);
});

test('what the quick path leaves goes to the schema: version 1 upgraded, errors worded', () => {
  const id = newQueueId();
  const base = { ...envelope(id), v: 2 as const, bodyKey: keySpace().body(id), size: 1 };
  assert.equal(quickDeliveryJob({ ...base, v: 1 }), null);
  assert.equal(quickDeliveryJob({ ...base, receivedAt: '2026-12-04T16:00:00.000+01:00' }), null);
  assert.equal(parseDeliveryJob({ ...base, receivedAt: '2026-12-04T16:00:00.000+01:00' }).receivedAt, '2026-12-04T16:00:00.000+01:00');
  assert.equal(quickDeliveryJob({ ...base, rcptTo: [{ local: 'x', domain: 'y.test', notify: ['NEVER', 'DELAY'] }] }), null);
  assert.throws(() => parseDeliveryJob({ ...base, rcptTo: [{ local: 'x', domain: 'y.test', notify: ['NEVER', 'DELAY'] }] }), /NOTIFY=NEVER cannot be combined/);
  assert.throws(() => parseDeliveryJob({ ...base, size: -1 }), /invalid delivery job/);
});
