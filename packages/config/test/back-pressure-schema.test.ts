// gateway.yaml `backPressure` and `redis.maxMemory`: defaults, the forms admins write, and
// errors that name gateway.yaml and the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';

const build = (extra: Record<string, unknown> = {}) => buildFrom({ ...GATEWAY, ...extra }, { 'default.yaml': DEFAULT });

describe('gateway.yaml backPressure and redis.maxMemory', () => {
  it('on by default: medium at 80%, high at 90%, the disk at 90% and 95%, read every 2 s; the embedded Redis gets maxmemory auto', () => {
    const r = build();
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.backPressure, { enabled: true, mediumPercent: 80, highPercent: 90, checkInterval: 2000, disk: { mediumPercent: 90, highPercent: 95 } });
    assert.equal(r.config.gateway.redis.maxMemory, 'auto');
  });

  it('takes other thresholds, a duration, a size or unlimited; unset keys keep their default', () => {
    const r = build({ backPressure: { highPercent: 95, checkInterval: '500ms' }, redis: { maxMemory: '4gb' } });
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.backPressure, { enabled: true, mediumPercent: 80, highPercent: 95, checkInterval: 500, disk: { mediumPercent: 90, highPercent: 95 } });
    const d = build({ backPressure: { disk: { mediumPercent: 70 } } });
    assert.ok(d.ok);
    assert.deepEqual(d.config.gateway.backPressure.disk, { mediumPercent: 70, highPercent: 95 });
    assert.equal(r.config.gateway.redis.maxMemory, 4 * 1024 ** 3);
    const u = build({ backPressure: { enabled: false }, redis: { maxMemory: 'unlimited' } });
    assert.ok(u.ok);
    assert.equal(u.config.gateway.backPressure.enabled, false);
    assert.equal(u.config.gateway.redis.maxMemory, 'unlimited');
  });

  it('refuses thresholds out of order or out of range, a bad interval, a bad size and unknown keys', () => {
    expectError(build({ backPressure: { mediumPercent: 90, highPercent: 90 } }), 'gateway.yaml', 'backPressure.mediumPercent', /mediumPercent must be below highPercent/);
    expectError(build({ backPressure: { highPercent: 101 } }), 'gateway.yaml', 'backPressure.highPercent', /./);
    expectError(build({ backPressure: { mediumPercent: 0 } }), 'gateway.yaml', 'backPressure.mediumPercent', /./);
    expectError(build({ backPressure: { checkInterval: '10ms' } }), 'gateway.yaml', 'backPressure.checkInterval', /./);
    expectError(build({ backPressure: { memoryHighPercent: 90 } }), 'gateway.yaml', 'backPressure.memoryHighPercent', /unknown key/);
    expectError(build({ backPressure: { disk: { mediumPercent: 96 } } }), 'gateway.yaml', 'backPressure.disk.mediumPercent', /mediumPercent must be below highPercent/);
    expectError(build({ backPressure: { disk: { highPercent: 100.5 } } }), 'gateway.yaml', 'backPressure.disk.highPercent', /./);
    expectError(build({ backPressure: { disk: { freeBytes: 1 } } }), 'gateway.yaml', 'backPressure.disk.freeBytes', /unknown key/);
    expectError(build({ backPressure: { disk: 90 } }), 'gateway.yaml', 'backPressure.disk', /./);
    expectError(build({ redis: { maxMemory: 'lots' } }), 'gateway.yaml', 'redis.maxMemory', /^must be auto, unlimited or a size of at least 16mb such as 4gb: "lots" is not a size/);
    expectError(build({ redis: { maxMemory: '1mb' } }), 'gateway.yaml', 'redis.maxMemory', /: "1mb" is less$/);
  });
});
