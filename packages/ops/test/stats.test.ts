// The per-minute activity counters: pure folding into chart series and the SVG, then the
// recorder and the sampler against a real Redis.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { LATENCY_BOUNDS_S, StatsRecorder, lineChart, percentileOf, readStats, sampleHopDepths, seriesFrom, statsKey } from '../src/index.js';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';

const MIN = 60_000;
const T0 = Date.parse('2026-12-02T10:30:00Z');
const m0 = T0 / MIN;

describe('stats: pure parts', () => {
  it('percentileOf gives the bucket bound where p of the observations are reached', () => {
    const b = new Array<number>(LATENCY_BOUNDS_S.length).fill(0);
    assert.equal(percentileOf(b, 0.5), null);
    b[0] = 90; // ≤ 1 s
    b[3] = 10; // ≤ 60 s
    assert.equal(percentileOf(b, 0.5), 1);
    assert.equal(percentileOf(b, 0.9), 1);
    assert.equal(percentileOf(b, 0.99), 60);
  });

  it('seriesFrom folds the hour hashes into points: counts add up, a hop keeps its latest sample, other minutes are ignored', () => {
    const h = {
      [`${m0}|accepted`]: '3',
      [`${m0}|delivered`]: '2',
      [`${m0 - 1}|accepted`]: '1',
      [`${m0 - 1}|failed`]: '4',
      [`${m0 - 20}|accepted`]: '100', // outside a 10-point, 1-minute window
      [`${m0}|lat|1`]: '2',
      [`${m0}|hop|mx:fabrikam.test`]: '7',
      [`${m0}|sampled`]: '1',
      'junk': 'x',
    };
    const s = seriesFrom([h], m0, 10, 1);
    assert.equal(s.at.length, 10);
    assert.equal(s.at[9], m0);
    assert.deepEqual(s.counts.accepted.slice(8), [1, 3]);
    assert.deepEqual(s.counts.failed.slice(8), [4, 0]);
    assert.equal(s.counts.accepted.reduce((a, b) => a + b, 0), 4);
    assert.equal(s.latency.p50[9], 5);
    assert.equal(s.latency.p50[8], null);
    assert.deepEqual(s.hops['mx:fabrikam.test']!.slice(8), [null, 7]);
    // 15-minute steps: both minutes fall into the last point.
    const q = seriesFrom([h], m0, 4, 15);
    assert.equal(q.counts.accepted[3], 4 + 0);
    assert.equal(q.counts.accepted.reduce((a, b) => a + b, 0), 104);
  });

  it('lineChart draws a polyline per series, breaks it where there is no value, and escapes names', () => {
    const svg = lineChart('c1', 'Messages <per minute>', [m0 - 2, m0 - 1, m0], [
      { name: 'a<b>', values: [1, null, 3] },
      { name: 'ok', values: [0, 5, 10] },
    ]);
    assert.equal((svg.match(/<polyline data-series="a&lt;b&gt;"/g) ?? []).length, 2, 'two segments around the gap');
    assert.equal((svg.match(/<polyline data-series="ok"/g) ?? []).length, 1);
    assert.match(svg, /aria-label="Messages &lt;per minute&gt;"/);
    assert.match(svg, />10</, 'the y axis maximum');
    assert.match(svg, />10:28 UTC</, 'the first time label');
    assert.doesNotMatch(svg, /a<b>|style=/);
  });
});

describe('stats: Redis', () => {
  let redis: TestRedis;
  let client: Redis;
  const prefix = '{stats-test}';
  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it('two recorders (two processes) add up in Redis; nothing is written before a flush', async () => {
    const a = new StatsRecorder(client, prefix, undefined, 3_600_000);
    const b = new StatsRecorder(client, prefix, undefined, 3_600_000);
    a.count('accepted', 2, T0);
    b.count('accepted', 1, T0);
    b.latency(3, 1, T0);
    b.count('deferred', 1, T0 - MIN);
    assert.deepEqual(await client.hgetall(statsKey(prefix, m0)), {});
    await a.close();
    await b.close();
    const s = await readStats(client, prefix, '1h', T0);
    assert.equal(s.counts.accepted[59], 3);
    assert.equal(s.counts.deferred[58], 1);
    assert.equal(s.latency.p99[59], 5);
    assert.ok((await client.ttl(statsKey(prefix, m0))) > 25 * 3600, 'kept for the 24-hour chart');
  });

  it('the queue depth per hop is sampled once a minute for the whole gateway', async () => {
    assert.equal(await sampleHopDepths(client, prefix, [{ hop: 'mx:a.test', messages: 4 }], T0), true);
    assert.equal(await sampleHopDepths(client, prefix, [{ hop: 'mx:a.test', messages: 99 }], T0 + 5_000), false);
    assert.equal(await sampleHopDepths(client, prefix, [{ hop: 'mx:a.test', messages: 2 }], T0 + MIN), true);
    const s = await readStats(client, prefix, '24h', T0 + MIN);
    assert.equal(s.hops['mx:a.test']!.at(-1), 2, 'the latest sample of the 15-minute step');
  });
});
