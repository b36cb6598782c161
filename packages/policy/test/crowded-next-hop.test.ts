import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_TURN_MS, crowdedTurn } from '../src/crowded-next-hop.js';

const now = 1_000_000;
const slow = { limit: 20, msPerMessage: 2000, lastTurnAt: 0 }; // a session frees every 100 ms

test('up to a round waiting beyond the sessions: go ahead, wait in the process', () => {
  assert.equal(crowdedTurn({ ...slow, inProgress: 20 }, now), null, 'one per session');
  assert.equal(crowdedTurn({ ...slow, inProgress: 39 }, now), null, '19 waiting');
});

test('a round waiting at a slow next hop: back to the queue until a round is left ahead', () => {
  const t = crowdedTurn({ ...slow, inProgress: 40 }, now);
  // 20 wait; once one more is through (100 ms), a round (20) is left ahead of it.
  assert.deepEqual(t, { at: now + 100, reason: '20 deliveries already wait for its 20 sessions, about 2000 ms per message' });
});

test('deliveries sent back one after another get turns spaced by the rate sessions free up', () => {
  let lastTurnAt = 0;
  const ats: number[] = [];
  for (let i = 0; i < 4; i++) {
    const t = crowdedTurn({ inProgress: 4, limit: 2, msPerMessage: 1000, lastTurnAt }, now)!;
    ats.push(t.at - now);
    lastTurnAt = t.at;
  }
  assert.deepEqual(ats, [500, 1000, 1500, 2000]);
});

test('a longer line: later turns', () => {
  assert.equal(crowdedTurn({ ...slow, inProgress: 100 }, now)!.at, now + 6100, '80 waiting: 61 through before a round is left');
});

test('a turn given long ago does not hold a new one back', () => {
  const t = crowdedTurn({ inProgress: 8, limit: 4, msPerMessage: 1000, lastTurnAt: now - 60_000 }, now)!;
  assert.equal(t.at, now + 250);
});

test('a quick next hop: its line moves faster than a trip through the queue, whatever its length', () => {
  assert.equal(crowdedTurn({ inProgress: 100, limit: 20, msPerMessage: 50, lastTurnAt: 0 }, now), null, '80 waiting, 2.5 ms apart: 200 ms');
  assert.ok(crowdedTurn({ inProgress: 440, limit: 20, msPerMessage: 50, lastTurnAt: 0 }, now), '420 waiting: over a second');
});

test('nothing is sent back before a message to the next hop was timed', () => {
  assert.equal(crowdedTurn({ inProgress: 100, limit: 1, msPerMessage: null, lastTurnAt: 0 }, now), null);
});

test('never further than MAX_TURN_MS, however long the line', () => {
  const t = crowdedTurn({ inProgress: 5000, limit: 1, msPerMessage: 30_000, lastTurnAt: 0 }, now)!;
  assert.equal(t.at, now + MAX_TURN_MS);
});

test('a limit below one never sends a delivery back (nothing could ever be its turn)', () => {
  assert.equal(crowdedTurn({ inProgress: 10, limit: 0, msPerMessage: 100, lastTurnAt: 0 }, now), null);
});
