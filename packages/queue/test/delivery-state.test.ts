import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnreadableDeliveryStateError, initialState, parseDeliveryJob, readState, tryReadState } from '@mailgw/queue';
import { envelope } from './fixtures.js';

const job = parseDeliveryJob({ ...envelope('STATE1'), v: 2, bodyKey: 'k', size: 1 });

test('no state recorded yet (BullMQ progress 0 or nothing) starts fresh', () => {
  for (const p of [0, undefined, null, '']) assert.deepEqual(readState(p, job), initialState(job));
});

test('a recorded state is read back, including replies written before the shared Reply shape', () => {
  const s = initialState(job);
  s.recipients[0]!.status = 'delivered';
  s.recipients[0]!.reply = { code: 250, enhanced: '2.0.0', text: 'OK' };
  assert.deepEqual(readState(JSON.parse(JSON.stringify(s)), job), s);
  const old = JSON.parse(JSON.stringify(s));
  old.recipients[0].reply = { code: 550, status: '5.1.1', text: '550 5.1.1 User unknown' };
  old.recipients[1].reply = { code: 451, status: '4.0.0', text: '451 try later' };
  const read = readState(old, job);
  assert.deepEqual(read.recipients[0]!.reply, { code: 550, enhanced: '5.1.1', text: 'User unknown' });
  assert.deepEqual(read.recipients[1]!.reply, { code: 451, enhanced: '4.0.0', text: 'try later' });
});

test('a state that is there but unreadable is never replaced by a fresh one (that would deliver twice)', () => {
  const delivered = initialState(job);
  delivered.recipients[0]!.status = 'delivered';
  const cases: unknown[] = [{ v: 1, recipients: 'garbage' }, { v: 9 }, 'not json', 42, { ...delivered, recipients: delivered.recipients.slice(1) }];
  for (const p of cases) {
    assert.throws(() => readState(p, job), (e: unknown) => e instanceof UnreadableDeliveryStateError && /STATE1/.test((e as Error).message), JSON.stringify(p));
    const view = tryReadState(p, job);
    assert.equal(view.state, null);
    assert.match(view.error!, /cannot be read|recipients/);
  }
});
