// Log retention on real files: back-dated (utimes) files past the maximum age, directories
// over the maximum size, several processes pruning at once, and the file of the current day.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { LOG_RETENTION_DEFAULTS } from '@mailgw/config';
import { logSets, planLogPrune, pruneLogs, startLogRetention, type LogSet } from '@mailgw/queue';

const DAY = 86_400_000;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'mailgw-logret-'));
  dirs.push(d);
  return d;
}

const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');

/** Writes `file` with `bytes` bytes, last modified `ageDays` ago. */
async function logFile(file: string, bytes: number, ageDays: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, Buffer.alloc(bytes, 0x61));
  const t = (Date.now() - ageDays * DAY) / 1000;
  await utimes(file, t, t);
}

const trackingName = (ageDays: number) => `MSGTRK${ymd(Date.now() - ageDays * DAY)}.log`;
const recvName = (ageDays: number) => `RECV${ymd(Date.now() - ageDays * DAY)}.LOG`;
const sendName = (ageDays: number) => `SEND${ymd(Date.now() - ageDays * DAY)}.LOG`;

describe('log retention', () => {
  it("gateway.yaml's defaults are Exchange's: tracking 30 days / 1000 MB, protocol logs 30 days / 250 MB, the agent log 7 days / 250 MB", () => {
    const [tracking, protocol, send, agent] = logSets('/data', LOG_RETENTION_DEFAULTS);
    assert.deepEqual(agent!.limits, { maxAgeMs: 7 * DAY, maxBytes: 250 * 1024 * 1024 });
    assert.equal(agent!.dir, path.join('/data', 'logs', 'agent'));
    assert.ok(agent!.pattern.test('AGENTLOG20261206.LOG') && !agent!.pattern.test('RECV20261206.LOG'));
    assert.deepEqual(tracking!.limits, { maxAgeMs: 30 * DAY, maxBytes: 1000 * 1024 * 1024 });
    assert.deepEqual(protocol!.limits, { maxAgeMs: 30 * DAY, maxBytes: 250 * 1024 * 1024 });
    assert.deepEqual(send!.limits, { maxAgeMs: 30 * DAY, maxBytes: 250 * 1024 * 1024 });
    assert.equal(send!.dir, path.join('/data', 'logs', 'smtp-send'));
    assert.equal(tracking!.dir, path.join('/data', 'logs', 'tracking'));
    assert.equal(protocol!.dir, path.join('/data', 'logs', 'protocol'));
  });

  it('deletes tracking and protocol log files older than the maximum age, and nothing else', async () => {
    const d = await dataDir();
    const t = path.join(d, 'logs', 'tracking');
    const p = path.join(d, 'logs', 'protocol');
    await logFile(path.join(t, trackingName(31)), 10, 31);
    await logFile(path.join(t, trackingName(29)), 10, 29);
    await logFile(path.join(t, trackingName(0)), 10, 0);
    await logFile(path.join(t, 'notes.txt'), 10, 400); // not a log file: never touched
    await logFile(path.join(p, 'Default', recvName(45)), 10, 45);
    await logFile(path.join(p, 'Client_Proxy', recvName(31)), 10, 31);
    await logFile(path.join(p, 'Client_Proxy', recvName(1)), 10, 1);
    const sets = logSets(d, LOG_RETENTION_DEFAULTS);
    const rt = await pruneLogs(sets[0]!);
    const rp = await pruneLogs(sets[1]!);
    assert.deepEqual(rt.deleted.map((v) => [path.basename(v.file), v.reason]), [[trackingName(31), 'max-age']]);
    assert.deepEqual((await readdir(t)).sort(), [trackingName(29), trackingName(0), 'notes.txt'].sort());
    assert.deepEqual(rp.deleted.map((v) => v.reason), ['max-age', 'max-age']);
    assert.deepEqual(await readdir(path.join(p, 'Default')), []);
    assert.deepEqual(await readdir(path.join(p, 'Client_Proxy')), [recvName(1)]);
  });

  it('deletes the oldest files while the directory is over its maximum size (protocol: all connectors together)', async () => {
    const d = await dataDir();
    const p = path.join(d, 'logs', 'protocol');
    // 5 files of 400 KB over two connectors = 2000 KB; limit 1 MB: the three oldest go.
    await logFile(path.join(p, 'Default', recvName(5)), 400 * 1024, 5);
    await logFile(path.join(p, 'Client', recvName(4)), 400 * 1024, 4);
    await logFile(path.join(p, 'Default', recvName(3)), 400 * 1024, 3);
    await logFile(path.join(p, 'Client', recvName(2)), 400 * 1024, 2);
    await logFile(path.join(p, 'Default', recvName(1)), 400 * 1024, 1);
    const set = logSets(d, { ...LOG_RETENTION_DEFAULTS, receiveProtocolLogMaxDirectorySize: 1024 * 1024 })[1]!;
    const r = await pruneLogs(set);
    assert.deepEqual(
      r.deleted.map((v) => [path.relative(p, v.file), v.reason]),
      [
        [path.join('Default', recvName(5)), 'max-directory-size'],
        [path.join('Client', recvName(4)), 'max-directory-size'],
        [path.join('Default', recvName(3)), 'max-directory-size'],
      ],
    );
    assert.equal(r.bytes, 800 * 1024);
    assert.deepEqual(await readdir(path.join(p, 'Default')), [recvName(1)]);
    assert.deepEqual(await readdir(path.join(p, 'Client')), [recvName(2)]);
  });

  it('send protocol logs (logs/smtp-send/<send connector>) have their own limits: age, then size over all send connectors', async () => {
    const d = await dataDir();
    const sp = path.join(d, 'logs', 'smtp-send');
    await logFile(path.join(sp, 'Outbound', sendName(40)), 10, 40); // older than 30 days
    await logFile(path.join(sp, 'Outbound', sendName(4)), 400 * 1024, 4);
    await logFile(path.join(sp, 'Tenant_B', sendName(3)), 400 * 1024, 3);
    await logFile(path.join(sp, 'Outbound', sendName(1)), 400 * 1024, 1);
    await logFile(path.join(sp, 'Outbound', recvName(60)), 10, 60); // not a send log: not this set's
    const set = logSets(d, { ...LOG_RETENTION_DEFAULTS, sendProtocolLogMaxDirectorySize: 1024 * 1024 })[2]!;
    assert.equal(set.name, 'send-protocol');
    const r = await pruneLogs(set);
    assert.deepEqual(
      r.deleted.map((v) => [path.relative(sp, v.file), v.reason]),
      [
        [path.join('Outbound', sendName(40)), 'max-age'],
        [path.join('Outbound', sendName(4)), 'max-directory-size'],
      ],
    );
    assert.equal(r.bytes, 800 * 1024);
    assert.deepEqual((await readdir(path.join(sp, 'Outbound'))).sort(), [recvName(60), sendName(1)].sort());
    assert.deepEqual(await readdir(path.join(sp, 'Tenant_B')), [sendName(3)]);
    // The receive protocol set never touches send logs, nor the send set receive logs.
    const p = path.join(d, 'logs', 'protocol');
    await logFile(path.join(p, 'Default', sendName(90)), 10, 90);
    assert.deepEqual((await pruneLogs(logSets(d, LOG_RETENTION_DEFAULTS)[1]!)).deleted, []);
  });

  it("never deletes the current day's file or one written in the last minutes, even over the size limit", async () => {
    const d = await dataDir();
    const t = path.join(d, 'logs', 'tracking');
    await logFile(path.join(t, trackingName(0)), 300 * 1024, 0);
    await logFile(path.join(t, trackingName(1)), 300 * 1024, 0); // yesterday's, still being finished
    await logFile(path.join(t, trackingName(2)), 300 * 1024, 2);
    const set = logSets(d, { ...LOG_RETENTION_DEFAULTS, messageTrackingLogMaxDirectorySize: 100 * 1024, messageTrackingLogMaxAge: 1000 })[0]!;
    const r = await pruneLogs(set);
    assert.deepEqual(r.deleted.map((v) => path.basename(v.file)), [trackingName(2)]);
    assert.deepEqual((await readdir(t)).sort(), [trackingName(1), trackingName(0)].sort());
  });

  it('0 turns a limit off', async () => {
    const files = [{ file: 'MSGTRK20200101.log', day: '20200101', size: 10 ** 9, mtimeMs: 0 }];
    assert.deepEqual(planLogPrune(files, { maxAgeMs: 0, maxBytes: 0 }, Date.UTC(2026, 0, 1)), []);
  });

  it('several processes pruning the same directory at once: each file deleted once, no error', async () => {
    const d = await dataDir();
    const t = path.join(d, 'logs', 'tracking');
    for (let age = 31; age < 61; age++) await logFile(path.join(t, trackingName(age)), 1024, age);
    await logFile(path.join(t, trackingName(0)), 1024, 0);
    const set = logSets(d, LOG_RETENTION_DEFAULTS)[0]!;
    const results = await Promise.all([pruneLogs(set), pruneLogs(set), pruneLogs(set), pruneLogs(set)]);
    const deleted = results.flatMap((r) => r.deleted.map((v) => path.basename(v.file)));
    assert.equal(deleted.length, 30, 'every old file deleted by exactly one of them');
    assert.equal(new Set(deleted).size, 30);
    assert.deepEqual(await readdir(t), [trackingName(0)]);
  });

  it('a log directory that does not exist yet (or is not a directory) is nothing to prune', async () => {
    const d = await dataDir();
    await writeFile(path.join(d, 'logs'), 'a file where the directory should be');
    for (const set of logSets(d, LOG_RETENTION_DEFAULTS)) assert.deepEqual(await pruneLogs(set), { deleted: [], bytes: 0 });
  });

  it('startLogRetention runs at once, logs what it deleted, and again on each run', async () => {
    const d = await dataDir();
    const t = path.join(d, 'logs', 'tracking');
    await logFile(path.join(t, trackingName(40)), 10, 40);
    const lines: Array<[object, string]> = [];
    const logger = { info: (o: object, m: string) => lines.push([o, m]), warn: (o: object, m: string) => lines.push([o, m]) };
    const runs: string[] = [];
    const r = startLogRetention({ sets: (): LogSet[] => logSets(d, LOG_RETENTION_DEFAULTS), logger, onRun: (s) => runs.push(s.name) });
    await r.run(); // queued behind the start-up run
    assert.deepEqual(await readdir(t), []);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]![1], 'log retention deleted 1 old tracking log file');
    await logFile(path.join(t, trackingName(35)), 10, 35);
    await r.run();
    assert.deepEqual(await readdir(t), []);
    assert.deepEqual(runs, ['tracking', 'protocol', 'send-protocol', 'agent', 'tracking', 'protocol', 'send-protocol', 'agent', 'tracking', 'protocol', 'send-protocol', 'agent']);
    await r.stop();
  });
});
