// The bench's open-loop load (runRate): messages start on a schedule, not when the ones before
// them are done, so its latency is what a client waits at that offered rate, not N sessions'
// share of the throughput.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runRate } from '../../bench/lib/smtp-client.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';

/** A far side that answers the final dot after `replyAfterMs`, counting the most messages waiting for that at once. */
async function slowFarSide(replyAfterMs: number): Promise<{ far: FarSide; mostWaiting: () => number }> {
  let arrived = 0;
  let mostWaiting = 0;
  // A message waits from its data's arrival until its reply (then it is in far.messages).
  const far: FarSide = await startFarSide({ dataDelayMs: replyAfterMs, onDataReceived: () => (mostWaiting = Math.max(mostWaiting, ++arrived - far.messages.length)) });
  return { far, mostWaiting: () => mostWaiting };
}

test('runRate starts messages on schedule while earlier ones wait for their 250', async () => {
  const { far, mostWaiting } = await slowFarSide(300);
  try {
    const r = await runRate({ host: '127.0.0.1', port: far.port, from: 'a@bench.test', to: 'b@sink.test', messages: 20, ratePerSec: 100, size: 1024 });
    assert.equal(r.ok, 20);
    assert.equal(far.messages.length, 20);
    assert.equal(r.lateStarts, 0);
    // The far side's 300 ms timer counts from the event loop's cached time, which lags the real
    // time by however long the loop has been busy (or descheduled on a loaded machine), so it
    // can fire short of 300 ms by performance.now() (seen in a full run: under 300 ms).
    // Answered at once, a message would take about a millisecond.
    const shortest = Math.min(...r.latencies);
    assert.ok(shortest >= 250, `each waited for its delayed 250 (the shortest took ${shortest.toFixed(1)} ms)`);
    // A new message every 10 ms while each waits 300 ms for its 250: many wait at once (one
    // at a time is what a closed loop of one session would give).
    assert.ok(mostWaiting() >= 5, `at most ${mostWaiting()} waiting at once`);
  } finally {
    await far.close();
  }
});

test('runRate counts starts held back by maxInFlight as late, and still sends every message', async () => {
  const { far, mostWaiting } = await slowFarSide(200);
  try {
    const r = await runRate({ host: '127.0.0.1', port: far.port, from: 'a@bench.test', to: 'b@sink.test', messages: 10, ratePerSec: 200, size: 512, maxInFlight: 2 });
    assert.equal(r.ok, 10);
    assert.ok(r.lateStarts >= 5, `late starts ${r.lateStarts}`);
    assert.equal(mostWaiting(), 2, 'never more than maxInFlight at once');
  } finally {
    await far.close();
  }
});
