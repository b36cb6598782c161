// Back pressure: the level from the queue's Redis memory (thresholds, hysteresis, off, unknown
// limit) and who may still start a transaction at each level.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authComplete, backPressure, combinePressure, connect, explain, diskPressureLevel, formatReply, persistencePressure, pressureLevel, pressureRank, type DiskReading, type MemoryReading, type PressureLevel, type Policy, type Session } from '../src/index.js';
import { HASH, policy } from './fixture.js';

const MB = 1024 ** 2;
const S = { enabled: true, mediumPercent: 80, highPercent: 90 };
const at = (pct: number): MemoryReading => ({ usedBytes: (pct / 100) * 1000 * MB, limitBytes: 1000 * MB, limitFrom: 'maxmemory' });

/** The levels a sequence of readings (percent) goes through, from normal. */
function walk(pcts: number[], s = S): PressureLevel[] {
  let level: PressureLevel = 'normal';
  return pcts.map((p) => (level = pressureLevel(level, at(p), s).level));
}

describe('pressureLevel', () => {
  it('rises at mediumPercent and highPercent, and comes down only 5 points below the threshold that raised it', () => {
    assert.deepEqual(walk([50, 79.9, 80, 90, 86, 85, 84.9, 76, 75, 74.9]), ['normal', 'normal', 'medium', 'high', 'high', 'high', 'medium', 'medium', 'medium', 'normal']);
    // Straight from normal to high, and from high straight to normal.
    assert.deepEqual(walk([95, 10]), ['high', 'normal']);
    // From normal, 85% is medium (the hysteresis only holds a level, never raises one).
    assert.deepEqual(walk([85]), ['medium']);
  });

  it('says why, with the figures and where the limit comes from', () => {
    assert.equal(pressureLevel('normal', at(92), S).reason, "the queue's Redis uses 920 MB, 92.0% of its maxmemory (1000 MB): at or above highPercent 90%");
    assert.equal(pressureLevel('high', at(87), S).reason, "the queue's Redis uses 870 MB, 87.0% of its maxmemory (1000 MB): at or above highPercent 90% (high until below 85%)");
    const cluster = pressureLevel('normal', { usedBytes: 100 * MB, limitBytes: 8000 * MB, limitFrom: 'system memory', node: '10.0.0.2:7001' }, S);
    assert.deepEqual(cluster, { level: 'normal', reason: "the queue's Redis (10.0.0.2:7001) uses 100 MB, 1.3% of its system memory (8000 MB): below mediumPercent 80%", resource: 'memory', percent: 1.25 });
  });

  it('off, or with no known limit: always normal', () => {
    assert.deepEqual(pressureLevel('high', at(99), { ...S, enabled: false }), { level: 'normal', reason: 'back pressure is off (backPressure.enabled: false)' });
    assert.equal(pressureLevel('high', { usedBytes: 5, limitBytes: 0, limitFrom: 'maxmemory' }, S).level, 'normal');
  });
});

const GB = 1024 ** 3;
const DS = { ...S, disk: { mediumPercent: 90, highPercent: 95 } };
const disk = (pct: number, size = 100 * GB): DiskReading => ({ path: '/var/lib/mailgw', usedBytes: (pct / 100) * size, availableBytes: ((100 - pct) / 100) * size });

describe('diskPressureLevel', () => {
  it('rises at disk.mediumPercent and disk.highPercent, and comes down 5 points below, as memory does', () => {
    let level: PressureLevel = 'normal';
    const levels = [50, 90, 95, 91, 89.9, 85, 84.9].map((p) => (level = diskPressureLevel(level, disk(p), DS).level));
    assert.deepEqual(levels, ['normal', 'medium', 'high', 'high', 'medium', 'medium', 'normal']);
  });

  it('counts as df does (used of used + available, the root reserve left out) and says where and how much', () => {
    // 900 GB used, 60 GB available (40 GB reserved for root): 93.75%, not 90%.
    const r = diskPressureLevel('normal', { path: '/srv/mailgw', usedBytes: 900 * GB, availableBytes: 60 * GB }, DS);
    assert.deepEqual(r, { level: 'medium', reason: 'the disk under /srv/mailgw is 93.8% full (60.0 GB available of 960.0 GB): at or above disk.mediumPercent 90%', resource: 'disk', percent: 93.75 });
    assert.equal(diskPressureLevel('high', disk(92, 1 * GB), DS).reason, 'the disk under /var/lib/mailgw is 92.0% full (82 MB available of 1024 MB): at or above disk.highPercent 95% (high until below 90%)');
  });

  it('off, without disk thresholds or with an empty reading: normal', () => {
    assert.equal(diskPressureLevel('high', disk(99), { ...DS, enabled: false }).level, 'normal');
    assert.equal(diskPressureLevel('high', disk(99), S).level, 'normal');
    assert.equal(diskPressureLevel('high', { path: '/x', usedBytes: 0, availableBytes: 0 }, DS).level, 'normal');
  });
});

describe('persistencePressure and combinePressure', () => {
  it('a Redis that cannot write its append-only file is high, named; one that can is normal', () => {
    assert.deepEqual(persistencePressure({ aofWriteFailed: true, node: '10.0.0.2:7001' }, DS), { level: 'high', reason: "the queue's Redis (10.0.0.2:7001) cannot write its append-only file (aof_last_write_status:err; a full disk?) and refuses every write", resource: 'redis-writes' });
    assert.equal(persistencePressure({ aofWriteFailed: false }, DS).level, 'normal');
    assert.equal(persistencePressure({ aofWriteFailed: true }, { ...DS, enabled: false }).level, 'normal');
  });

  it('the highest level wins with its own reason; among equals the first; nothing read is normal', () => {
    const memory = pressureLevel('normal', at(85), DS);
    const full = diskPressureLevel('normal', disk(96), DS);
    const writes = persistencePressure({ aofWriteFailed: false }, DS);
    assert.equal(combinePressure([memory, full, writes]), full);
    assert.equal(combinePressure([memory, diskPressureLevel('normal', disk(91), DS)]), memory);
    assert.equal(combinePressure([]).level, 'normal');
    assert.deepEqual(['normal', 'medium', 'high'].map((l) => pressureRank(l as PressureLevel)), [0, 1, 2]);
  });
});

describe('backPressure at MAIL FROM', () => {
  const p: Policy = policy({ users: [{ name: 'alice', passwordHash: HASH, addresses: ['alice@contoso.test'] }] }, [
    { name: 'Internet', usage: 'Internet', bindings: ['0.0.0.0:25'] },
    { name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'] },
    { name: 'Exchange', bindings: ['0.0.0.0:2525'], remoteIPRanges: ['10.0.0.5'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
  ]);
  const open = (port: number, ip: string): Session => {
    const r = connect(p, { localAddress: '192.0.2.1', localPort: port, clientIP: ip });
    assert.ok(r.session, r.decision.reason.message);
    return r.session;
  };
  const anonymous = open(25, '203.0.113.9');
  const alice = authComplete(p, open(587, '198.51.100.7'), 'alice', true).session;
  const exchange = open(2525, '10.0.0.5');
  const state = (level: PressureLevel) => ({ level, reason: 'figures' });

  it('normal: everyone', () => {
    for (const s of [anonymous, alice, exchange]) assert.equal(backPressure(s, state('normal')).verdict, 'accept');
  });

  it('medium: anonymous senders get 452 4.3.1; authenticated users and externally secured connectors go on', () => {
    const d = backPressure(anonymous, state('medium'));
    assert.equal(formatReply(d.reply), '452 4.3.1 Insufficient system resources');
    assert.equal(d.verdict, 'defer');
    assert.deepEqual(d.reason, { code: 'back-pressure-medium', message: 'back pressure medium, mail from anonymous senders refused: figures' });
    assert.deepEqual(backPressure(alice, state('medium')).reason, { code: 'back-pressure-exempt', message: 'back pressure medium, but user alice is authenticated: figures' });
    assert.deepEqual(backPressure(exchange, state('medium')).reason, { code: 'back-pressure-exempt', message: 'back pressure medium, but connector "Exchange" is externally secured: figures' });
  });

  it('high: everyone gets 452 4.3.1, and the connection stays open', () => {
    for (const s of [anonymous, alice, exchange]) {
      const d = backPressure(s, state('high'));
      assert.equal(formatReply(d.reply), '452 4.3.1 Insufficient system resources');
      assert.equal(d.reason.code, 'back-pressure-high');
      assert.equal(d.disconnect, false);
    }
  });
});

describe('explain with a back pressure level', () => {
  const p: Policy = policy({ users: [{ name: 'alice', passwordHash: HASH, addresses: ['alice@contoso.test'] }] }, [
    { name: 'Internet', usage: 'Internet', bindings: ['0.0.0.0:25'] },
    { name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'] },
  ]);
  const mailStage = (s: Parameters<typeof explain>[1]) => explain(p, s).stages.find((x) => x.stage === 'mail')!;

  it('answers MAIL FROM as a listener under that level would: who is refused, who goes on and why', () => {
    const anon = { binding: '0.0.0.0:25', clientIP: '203.0.113.9', mailFrom: 'someone@example.net' };
    assert.equal(mailStage(anon).reply, '250 2.1.0 Sender OK');
    assert.equal(mailStage({ ...anon, backPressure: 'normal' }).reply, '250 2.1.0 Sender OK');
    const medium = mailStage({ ...anon, backPressure: 'medium' });
    assert.deepEqual([medium.reply, medium.reasonCode], ['452 4.3.1 Insufficient system resources', 'back-pressure-medium']);
    assert.equal(medium.reason, 'back pressure medium, mail from anonymous senders refused: the scenario gives back pressure medium');
    const alice = { binding: '0.0.0.0:587', clientIP: '198.51.100.7', tls: true, auth: 'alice', mailFrom: 'alice@contoso.test' };
    const exempt = mailStage({ ...alice, backPressure: 'medium' });
    assert.equal(exempt.reply, '250 2.1.0 Sender OK');
    assert.match(exempt.reason, /; back pressure medium, but user alice is authenticated: the scenario gives back pressure medium$/);
    assert.equal(mailStage({ ...alice, backPressure: 'high' }).reply, '452 4.3.1 Insufficient system resources');
    // Refused at MAIL: no RCPT stage follows.
    assert.deepEqual(explain(p, { ...anon, rcpt: ['bob@contoso.test'], backPressure: 'high' }).stages.map((x) => x.stage), ['connect', 'admission', 'mail']);
  });
});

