// The receive protocol log never throws into a session: a log directory that cannot be made
// (its parent is a file: ENOTDIR) is reported once and the lines are dropped.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ProtocolLogs } from '../src/protocol-log.js';

const entry = { sessionId: 'S1', sequence: 0, local: '127.0.0.1:25', remote: '127.0.0.2:40000', event: '+' as const, data: '', context: '' };

test('protocol log: an unwritable directory is reported once per connector and never throws', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-plog-'));
  try {
    await writeFile(path.join(dir, 'logs'), 'a file where the directory should be');
    const errors: Array<[string, string | undefined]> = [];
    const logs = new ProtocolLogs(path.join(dir, 'logs', 'protocol'), (connector, err) => errors.push([connector, (err as NodeJS.ErrnoException).code]));
    for (let i = 0; i < 3; i++) logs.for('Default').write({ ...entry, sequence: i });
    await logs.close();
    assert.deepEqual(errors, [['Default', 'ENOTDIR']]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('protocol log: writes the header and CSV lines to RECV<yyyymmdd>.LOG', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-plog-'));
  try {
    const logs = new ProtocolLogs(dir);
    logs.for('Client Proxy').write(entry, new Date('2030-01-02T03:04:05Z'));
    await logs.close();
    const text = await readFile(path.join(dir, 'Client_Proxy', 'RECV20300102.LOG'), 'utf8');
    assert.match(text, /^#Software: mailgw\n/);
    assert.match(text, /\n2030-01-02T03:04:05\.000Z,Client Proxy,S1,0,127\.0\.0\.1:25,127\.0\.0\.2:40000,\+,,\n$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
