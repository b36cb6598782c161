import assert from 'node:assert/strict';
import { it } from 'node:test';
import { parseDuration, parseSize } from '../src/units.js';

it('sizes use binary units as Exchange does', () => {
  assert.deepEqual(parseSize('36MB'), { ok: true, value: 37748736 });
  assert.deepEqual(parseSize('64 KB'), { ok: true, value: 65536 });
  assert.deepEqual(parseSize(1000), { ok: true, value: 1000 });
  assert.equal(parseSize('36 MiBs').ok, false);
  assert.equal(parseSize(-1).ok, false);
});

it('durations: units, combinations, Exchange timespans and seconds', () => {
  assert.deepEqual(parseDuration('10m'), { ok: true, value: 600_000 });
  assert.deepEqual(parseDuration('1h30m'), { ok: true, value: 5_400_000 });
  assert.deepEqual(parseDuration('00:05:00'), { ok: true, value: 300_000 });
  assert.deepEqual(parseDuration('2.00:00:00'), { ok: true, value: 172_800_000 });
  assert.deepEqual(parseDuration(30), { ok: true, value: 30_000 });
  assert.equal(parseDuration('ten minutes').ok, false);
});
