// The pure key → slot function against Redis' own CLUSTER KEYSLOT: recorded answers, and a live
// cluster-enabled redis-server asked about the gateway's tags and a few hundred other keys.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { candidatePrefix, connectRedis, crc16, keySlot, startRedisServer } from '@mailgw/queue';

test('CRC16-XMODEM check value and recorded CLUSTER KEYSLOT answers (redis-server 7)', () => {
  assert.equal(crc16('123456789'), 0x31c3);
  const recorded: Array<[string, number]> = [
    ['somekey', 11058],
    ['foo', 12182],
    ['{user1000}.following', 3443],
    ['{mailgw}', 15028],
    ['{mailgw-1}', 5637],
    ['{mailgw-2}', 9830],
    ['a{}b', 13694], // empty tag: the whole key is hashed
    ['{}{x}', 3257], // the first {…} is empty: the whole key again
  ];
  for (const [key, slot] of recorded) assert.equal(keySlot(key), slot, key);
  assert.equal(keySlot('{mailgw}:body:01ABC'), keySlot('{mailgw}'), 'only the tag counts');
});

test('keySlot answers as CLUSTER KEYSLOT of a live redis-server for the shard tags and random keys', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-keyslot-'));
  const server = await startRedisServer({ dataDir: path.join(dir, 'data'), extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf')] });
  const redis = connectRedis(server.url, {});
  try {
    const keys: string[] = [];
    for (let i = 0; i < 8; i++) for (let a = 0; a < 8; a++) keys.push(candidatePrefix('{mailgw}', i, a) + ':delivery:wait');
    for (let i = 0; i < 300; i++) keys.push(`k${i}-${Math.random().toString(36).slice(2)}${i % 3 === 0 ? `{t${i}}` : ''}é`);
    for (const key of keys) assert.equal(keySlot(key), Number(await redis.call('CLUSTER', 'KEYSLOT', key)), key);
  } finally {
    redis.disconnect();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
