import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteBudget } from '../src/byte-budget.js';

const settled = () => new Promise((res) => setImmediate(res));

test('grants while the bytes fit, then in order of asking as bytes come back', async () => {
  const b = new ByteBudget(100);
  const r1 = await b.acquire(60);
  const r2 = await b.acquire(40);
  assert.equal(b.inUse, 100);
  const order: string[] = [];
  const p3 = b.acquire(50).then((r) => (order.push('50'), r));
  const p4 = b.acquire(10).then((r) => (order.push('10'), r));
  await settled();
  assert.deepEqual(order, [], 'nothing fits while 100 of 100 are held');
  assert.equal(b.queued, 2);
  r2(); // 60 held: 50 does not fit yet, and the 10 behind it waits its turn
  await settled();
  assert.deepEqual(order, [], 'a small request does not overtake a larger one asked for first');
  r1(); // 0 held: both fit
  await settled();
  assert.deepEqual(order, ['50', '10']);
  assert.equal(b.inUse, 60);
  (await p3)();
  (await p4)();
  assert.equal(b.inUse, 0);
});

test('a request larger than the whole budget runs alone once nothing is held', async () => {
  const b = new ByteBudget(100);
  const small = await b.acquire(30);
  let bigGranted = false;
  const big = b.acquire(500).then((r) => ((bigGranted = true), r));
  await settled();
  assert.equal(bigGranted, false);
  small();
  const release = await big;
  assert.equal(b.inUse, 500);
  let next = false;
  const after = b.acquire(1).then((r) => ((next = true), r));
  await settled();
  assert.equal(next, false, 'nothing runs beside it');
  release();
  (await after)();
  assert.equal(b.inUse, 0);
});

test('releasing twice gives the bytes back once', async () => {
  const b = new ByteBudget(10);
  const r = await b.acquire(8);
  r();
  r();
  assert.equal(b.inUse, 0);
  const again = await b.acquire(10);
  assert.equal(b.inUse, 10);
  again();
});

test('a budget must be positive', () => {
  assert.throws(() => new ByteBudget(0), /must be positive/);
  assert.throws(() => new ByteBudget(Number.NaN), /must be positive/);
});

test('wouldWait says whether a request now would queue', async () => {
  const b = new ByteBudget(100);
  assert.equal(b.wouldWait(100), false);
  const r = await b.acquire(70);
  assert.equal(b.wouldWait(30), false);
  assert.equal(b.wouldWait(31), true);
  const queued = b.acquire(50);
  assert.equal(b.wouldWait(1), true, 'someone is already waiting: a newcomer queues behind');
  r();
  (await queued)();
  assert.equal(b.wouldWait(1000), false, 'nothing held: even an oversize request runs');
});
