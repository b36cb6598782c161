import assert from 'node:assert/strict';
import { test } from 'node:test';
import { durabilityGap, embeddedAppendFsync } from '@mailgw/queue';

test('the embedded Redis fsyncs every write unless os-buffered was chosen', () => {
  assert.equal(embeddedAppendFsync('fsync'), 'always');
  assert.equal(embeddedAppendFsync('replicas'), 'always');
  assert.equal(embeddedAppendFsync('os-buffered'), 'everysec');
});

test('durabilityGap names what a Redis cannot keep of the promise, and nothing when it can', () => {
  const disk = (appendonly: string, appendfsync: string, replicas = 0) => ({ appendonly, appendfsync, replicas });
  assert.equal(durabilityGap('fsync', disk('yes', 'always'), 0), null);
  assert.match(durabilityGap('fsync', disk('yes', 'everysec'), 0)!, /appendfsync everysec: an OS crash or power loss/);
  assert.match(durabilityGap('fsync', disk('yes', 'no'), 0)!, /appendfsync no/);
  assert.match(durabilityGap('fsync', disk('no', 'always'), 0)!, /appendonly no: a Redis restart loses every queued message/);
  assert.match(durabilityGap('fsync', { unreadable: 'ERR unknown command', replicas: 0 }, 0)!, /cannot be checked/);
  // os-buffered asks for nothing to check; replicas counts replicas, not fsync.
  assert.equal(durabilityGap('os-buffered', disk('no', 'no'), 0), null);
  assert.equal(durabilityGap('replicas', disk('yes', 'everysec', 2), 2), null);
  assert.match(durabilityGap('replicas', disk('yes', 'always', 0), 1)!, /0 connected replica\(s\): every message will be refused/);
  assert.match(durabilityGap('replicas', { unreadable: 'x', replicas: null }, 1)!, /INFO replication could not be read/);
});
