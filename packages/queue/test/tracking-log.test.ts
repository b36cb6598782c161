import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openTrackingLog, trackingDir } from '@mailgw/queue';

test('tracking log: one JSON line per event, one file per UTC day, under dataDir/logs/tracking', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-trk-'));
  try {
    let now = new Date('2030-05-06T23:59:59.500Z');
    const log = openTrackingLog(trackingDir(dataDir), { now: () => now });
    const base = { source: 'SMTP', internalMessageId: 'Q1', messageId: '<m@x>', senderAddress: 'a@x.test', recipientAddress: ['b@y.test'] };
    log.write({ ...base, eventId: 'RECEIVE', clientIp: '192.0.2.1', messageSubject: 'x'.repeat(1000) });
    now = new Date('2030-05-07T00:00:00.100Z');
    log.write({ ...base, eventId: 'SEND', recipientStatus: ['250 2.0.0 OK'], serverHostname: 'mx.y.test' });
    await log.close();
    const dir = path.join(dataDir, 'logs', 'tracking');
    assert.deepEqual((await readdir(dir)).sort(), ['MSGTRK20300506.log', 'MSGTRK20300507.log']);
    const first = JSON.parse((await readFile(path.join(dir, 'MSGTRK20300506.log'), 'utf8')).trim()) as Record<string, unknown>;
    assert.equal(first.eventId, 'RECEIVE');
    assert.equal(first.dateTime, '2030-05-06T23:59:59.500Z');
    assert.equal((first.messageSubject as string).length, 256);
    const second = (await readFile(path.join(dir, 'MSGTRK20300507.log'), 'utf8')).trim().split('\n');
    assert.equal(second.length, 1);
    assert.deepEqual(JSON.parse(second[0]!).recipientStatus, ['250 2.0.0 OK']);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('an unwritable tracking directory reports once and never throws', async () => {
  const errors: Error[] = [];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-trk-'));
  await writeFile(path.join(dir, 'file'), 'not a directory');
  const log = openTrackingLog(path.join(dir, 'file', 'tracking'), { onError: (e) => errors.push(e) });
  log.write({ eventId: 'FAIL', source: 'QUEUE', internalMessageId: 'Q', messageId: '', senderAddress: '', recipientAddress: [] });
  log.write({ eventId: 'FAIL', source: 'QUEUE', internalMessageId: 'Q', messageId: '', senderAddress: '', recipientAddress: [] });
  await log.close();
  await rm(dir, { recursive: true, force: true });
  assert.equal(errors.length, 1);
});
