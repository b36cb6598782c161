// Shard placement, pure: shards spread evenly over the masters, shard 0 and fixed shards stay,
// the choice is deterministic, and the warnings name a crowded or moved placement.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultShardCount, keySlot, masterOfSlot, placeShards, placementWarnings, shardRows, unplaced, type ClusterMaster } from '@mailgw/queue';

/** A 3-master cluster as `redis-cli --cluster create` splits the slots. */
const THREE: ClusterMaster[] = [
  { id: 'a'.repeat(40), addr: '127.0.0.1:7000', ranges: [[0, 5460]] },
  { id: 'b'.repeat(40), addr: '127.0.0.1:7001', ranges: [[5461, 10922]] },
  { id: 'c'.repeat(40), addr: '127.0.0.1:7002', ranges: [[10923, 16383]] },
];

function perMaster(slots: number[], masters: ClusterMaster[]): Map<string, number> {
  const n = new Map(masters.map((m) => [m.addr, 0]));
  for (const s of slots) {
    const m = masterOfSlot(masters, s)!;
    n.set(m.addr, n.get(m.addr)! + 1);
  }
  return n;
}

test('default count: two shards per master, at most 64', () => {
  assert.equal(defaultShardCount(3), 6);
  assert.equal(defaultShardCount(0), 1);
  assert.equal(defaultShardCount(40), 64);
});

test('3 masters: the unplaced tags leave one master idle; placement gives each master the same number of shards', () => {
  const legacy = [0, 1, 2].map((i) => unplaced('{mailgw}', i, THREE).slot);
  assert.ok([...perMaster(legacy, THREE).values()].includes(0), 'the old tags {mailgw}, {mailgw-1}, {mailgw-2} miss a master');

  for (const count of [3, 6, 9]) {
    const placed = placeShards('{mailgw}', count, THREE, new Map());
    assert.equal(placed.length, count);
    assert.equal(placed[0]!.prefix, '{mailgw}', 'shard 0 keeps the configured prefix');
    for (const p of placed) assert.equal(keySlot(p.prefix), p.slot);
    assert.deepEqual([...perMaster(placed.map((p) => p.slot), THREE).values()], [count / 3, count / 3, count / 3]);
    assert.equal(new Set(placed.map((p) => p.prefix)).size, count, 'distinct prefixes');
    assert.deepEqual(placeShards('{mailgw}', count, THREE, new Map()), placed, 'deterministic');
    assert.deepEqual(placementWarnings(shardRows(placed, THREE), THREE), []);
  }
});

test('fixed shards (stored, or holding mail under their old tag) stay; the others fill the idle masters', () => {
  const fixed = new Map([[1, unplaced('{mailgw}', 1, THREE)], [2, unplaced('{mailgw}', 2, THREE)]]);
  const placed = placeShards('{mailgw}', 6, THREE, fixed);
  assert.equal(placed[1]!.prefix, '{mailgw-1}');
  assert.equal(placed[2]!.prefix, '{mailgw-2}');
  assert.deepEqual([...perMaster(placed.map((p) => p.slot), THREE).values()], [2, 2, 2]);
});

test('warnings: two shards on a master while another has none; a slot a resharding moved', () => {
  const crowded = [unplaced('{mailgw}', 0, THREE), { ...unplaced('{mailgw}', 0, THREE), index: 1, prefix: '{mailgw}x' }, unplaced('{mailgw}', 1, THREE)];
  const w = placementWarnings(shardRows(crowded, THREE), THREE);
  assert.equal(w.length, 1);
  assert.match(w[0]!, /queue shards 0, 1 share the Redis master 127\.0\.0\.1:7002 while 127\.0\.0\.1:7000 has none/);

  // Slot 15028 ({mailgw}) moved from 7002 to 7000.
  const resharded: ClusterMaster[] = [
    { ...THREE[0]!, ranges: [[0, 5460], [15000, 15100]] },
    THREE[1]!,
    { ...THREE[2]!, ranges: [[10923, 14999], [15101, 16383]] },
  ];
  const placed = placeShards('{mailgw}', 3, THREE, new Map());
  const rows = shardRows(placed, resharded);
  assert.deepEqual(rows.map((r) => r.moved), [true, false, false]);
  const moved = placementWarnings(rows, resharded);
  assert.ok(moved.some((m) => /queue shard 0 \(\{mailgw\}, slot 15028\) was placed on 127\.0\.0\.1:7002 but its slot is now served by 127\.0\.0\.1:7000: a resharding moved it/.test(m)), moved.join('\n'));
});

test('not a cluster: no masters, no warnings', () => {
  const rows = shardRows([unplaced('{mailgw}', 0, []), unplaced('{mailgw}', 1, [])], []);
  assert.deepEqual(rows.map((r) => [r.prefix, r.master, r.moved]), [['{mailgw}', '', false], ['{mailgw-1}', '', false]]);
  assert.deepEqual(placementWarnings(rows, []), []);
});
