// A small run of the benchmark (npm run bench) so that it keeps working: a few hundred
// messages through listener → Redis → worker → sink, `mailgw start` under both durability
// settings, a few hundred idle connections, and a few hundred directory questions. No Postfix and no smtp-source here (those
// phases are skipped): the full side-by-side run is `npm run bench`.
// It asserts only that every accepted message was delivered, never a speed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('npm run bench, small: 300 messages, all delivered, none lost', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-bench-smoke-'));
  const out = path.join(dir, 'result.json');
  try {
    const args = ['--conditions=mailgw-src', '--import', 'tsx', 'bench/run.ts', '--messages', '300', '--sessions', '10', '--sizes', '1024', '--skip', 'ref,postfix,start,processes,smtp-source,scale', '--idle', '200', '--out', out];
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, log);
    assert.match(log, /mailgw delivered\/s \(at sink\)/, 'the table was printed');
    const result = JSON.parse(await readFile(out, 'utf8')) as { filters?: Record<string, { rejected: number; lost: number }>; endToEnd: Record<string, { accepted: number; rejected: number; allDelivered: boolean; lost: number }>; idle: { greeted: number }; durability: Record<string, { lost: number }>; directory: Array<{ mode: string; questions: number; connections: number; wrong: number }> | { skipped: string } };
    const run = result.endToEnd['node-1024']!;
    assert.equal(run.accepted, 300, log);
    assert.equal(run.rejected, 0);
    assert.equal(run.allDelivered, true);
    assert.equal(run.lost, 0);
    assert.equal(result.idle.greeted, 200, 'every idle connection got its greeting');
    // redis.durability side by side: both settings measured, nothing lost under either.
    assert.deepEqual(Object.keys(result.durability).sort(), ['fsync', 'os-buffered']);
    for (const d of Object.values(result.durability)) assert.equal(d.lost, 0, log);
    // The filters' cost: with them off and with sender authentication (rspamd too when installed),
    // every message accepted (the bench domain passes SPF and DMARC) and delivered.
    assert.ok(result.filters?.off && result.filters['sender-auth'], log);
    for (const f of Object.values(result.filters)) assert.deepEqual([f.rejected, f.lost], [0, 0], log);
    // …measured through `mailgw start`, whose embedded Redis follows the setting.
    assert.match(log, /durability fsync: mailgw start, embedded Redis appendfsync always/);
    assert.match(log, /durability os-buffered: mailgw start, embedded Redis appendfsync everysec/);
    // The directory phase (with slapd installed): every answer right, the kept connection opened before the timed questions.
    if (Array.isArray(result.directory)) {
      assert.equal(result.directory.length, 4, log);
      for (const d of result.directory) {
        assert.equal(d.wrong, 0, log);
        assert.equal(d.questions, 300);
        assert.equal(d.connections, d.mode === 'kept' ? 0 : 300, log);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
