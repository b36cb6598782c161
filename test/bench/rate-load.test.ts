// The bench's open-loop load (runRate): messages start on a schedule, not when the ones before
// them are done, so its latency is what a client waits at that offered rate, not N sessions'
// share of the throughput.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { runRate } from '../../bench/lib/smtp-client.js';

async function slowServer(replyAfterMs: number): Promise<{ port: number; received: () => number; mostWaiting: () => number; close: () => Promise<void> }> {
  let received = 0;
  let waiting = 0;
  let mostWaiting = 0;
  const server = new SMTPServer({
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    onData(stream, _session, cb) {
      stream.resume();
      stream.on('end', () => {
        mostWaiting = Math.max(mostWaiting, ++waiting);
        setTimeout(() => (waiting--, received++, cb()), replyAfterMs);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.server.address() as { port: number }).port, received: () => received, mostWaiting: () => mostWaiting, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('runRate starts messages on schedule while earlier ones wait for their 250', async () => {
  const far = await slowServer(300);
  try {
    const r = await runRate({ host: '127.0.0.1', port: far.port, from: 'a@bench.test', to: 'b@sink.test', messages: 20, ratePerSec: 100, size: 1024 });
    assert.equal(r.ok, 20);
    assert.equal(far.received(), 20);
    assert.equal(r.lateStarts, 0);
    assert.ok(r.latencies.every((ms) => ms >= 300), 'each waited for its delayed 250');
    // A new message every 10 ms while each waits 300 ms for its 250: many wait at once (one
    // at a time is what a closed loop of one session would give).
    assert.ok(far.mostWaiting() >= 5, `at most ${far.mostWaiting()} waiting at once`);
  } finally {
    await far.close();
  }
});

test('runRate counts starts held back by maxInFlight as late, and still sends every message', async () => {
  const far = await slowServer(200);
  try {
    const r = await runRate({ host: '127.0.0.1', port: far.port, from: 'a@bench.test', to: 'b@sink.test', messages: 10, ratePerSec: 200, size: 512, maxInFlight: 2 });
    assert.equal(r.ok, 10);
    assert.ok(r.lateStarts >= 5, `late starts ${r.lateStarts}`);
    assert.equal(far.mostWaiting(), 2, 'never more than maxInFlight at once');
  } finally {
    await far.close();
  }
});
