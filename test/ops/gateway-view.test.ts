// One view of every process (issue 17): two `mailgw worker` processes with different dataDirs
// ("two machines") against one Redis. Their tracking events reach Redis, so `mailgw track` with
// a third dataDir sees every delivery; each says it is alive (heartbeats), which any process's
// dashboard API lists; a worker serves /metrics and /healthz of its own (gateway.yaml http or
// --http ADDR).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findFreePort, openMailStore, type MailStore } from '@mailgw/queue';
import { runTrack } from '../../packages/cli/src/commands/track.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { captureIO } from './helpers/cli-io.js';
import { enqueue, eventually, message, randomPrefix } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { cliMain, repoRoot, spawnWorker, writeConfig, type WorkerProcess } from '../worker/helpers/worker-process.js';

const TOKEN = 'view-test-token-0123456789';
const prefix = randomPrefix();
let redis: TestRedis;
let far: FarSide;
let store: MailStore;
const dirs: string[] = [];
let a: WorkerProcess;
let b: WorkerProcess;
let aPort: number;
let bPort: number;
let configC: string;

const yaml = (farPort: number, extra = '') =>
  ['acceptedDomains: [{ domain: contoso.test, default: true }]', `redis: { prefix: "${prefix}" }`, 'routes:', `  - { domains: ["*"], to: "smtp://127.0.0.1:${farPort}" }`, extra, ''].join('\n');

const dir = (name: string) => {
  const d = mkdtempSync(path.join(os.tmpdir(), `mailgw-view-${name}-`));
  dirs.push(d);
  return d;
};

before(async () => {
  redis = await startRedis();
  far = await startFarSide();
  store = await openMailStore({ url: redis.url, prefix });
  aPort = await findFreePort();
  bPort = await findFreePort();
  // A: the http section of gateway.yaml (dashboard on, its token from the environment); B: only --http.
  a = spawnWorker(writeConfig(dir('a'), yaml(far.port, `http: { listen: "127.0.0.1:${aPort}", tokenEnv: MAILGW_DASHBOARD_TOKEN }`)), { REDIS_URL: redis.url, MAILGW_DASHBOARD_TOKEN: TOKEN });
  b = spawnWorker(writeConfig(dir('b'), yaml(far.port)), { REDIS_URL: redis.url }, ['--http', `127.0.0.1:${bPort}`]);
  configC = writeConfig(dir('c'), yaml(far.port));
  await Promise.all([a.ready, b.ready]);
});

after(async () => {
  for (const w of [a, b]) w?.child.kill('SIGTERM');
  await Promise.all([a?.exited, b?.exited]);
  await store?.close();
  await far?.close();
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const get = async (port: number, p: string, headers: Record<string, string> = {}) => {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { headers });
  return { status: r.status, text: await r.text() };
};

describe('one view of every process', () => {
  const ids: string[] = [];

  it('mailgw track on a third machine (its own, empty dataDir) sees the deliveries of both workers from Redis; --local sees none', async () => {
    for (let i = 0; i < 8; i++) ids.push(await enqueue(store, { from: 's@example.net', to: [`r${i}@example.org`], body: message(`view ${i}`) }));
    await eventually(() => far.messages.length >= 8, 'all 8 delivered');
    const deliveredBy = new Set<number>();
    await eventually(async () => {
      for (const id of ids) {
        const io = captureIO();
        const code = await runTrack({ config: configC, 'queue-id': id, json: true }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url } });
        assert.equal(code, 0, io.err());
        const events = io.out().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { eventId: string; serverHostname?: string });
        if (!events.some((e) => e.eventId === 'SEND')) return false;
      }
      return true;
    }, 'a SEND event of every message in Redis');
    // Which worker delivered each: their own files (each holds only its own events).
    for (const id of ids) {
      let files = 0;
      for (const [k, d] of [dirs[0]!, dirs[1]!].entries()) {
        const io = captureIO();
        await runTrack({ config: path.join(d, 'gateway.yaml'), 'queue-id': id, json: true, local: true }, { stdout: io.stdout, stderr: io.stderr });
        if (io.out().includes('"SEND"')) {
          deliveredBy.add(k);
          files++;
        }
      }
      assert.equal(files, 1, `the SEND of ${id} is in exactly one worker's file`);
    }
    assert.ok(deliveredBy.size >= 1);
    const io = captureIO();
    await runTrack({ config: configC, 'queue-id': ids[0]!, local: true }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url } });
    assert.match(io.out(), /^no matching events in /, 'the third machine has no files of its own');
  });

  it('each event is listed once although this machine has it in its file and in Redis', async () => {
    const cfgA = path.join(dirs[0]!, 'gateway.yaml');
    for (const id of ids) {
      const io = captureIO();
      await runTrack({ config: cfgA, 'queue-id': id, json: true }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url } });
      const lines = io.out().trim().split('\n').filter(Boolean);
      assert.equal(new Set(lines).size, lines.length, `duplicates for ${id}:\n${io.out()}`);
    }
  });

  it('the dashboard API of one worker lists both worker processes (heartbeats in Redis)', async () => {
    const r = await get(aPort, '/api/state', { authorization: `Bearer ${TOKEN}` });
    assert.equal(r.status, 200, r.text);
    const state = JSON.parse(r.text) as { processes: Array<{ role: string; pid: number; host: string; version: string; deliveriesInProgress?: number; deliveriesWaitingForMemory?: number; crowdedNextHops?: number }> };
    const pids = state.processes.map((p) => p.pid).sort();
    assert.deepEqual(pids, [a.child.pid!, b.child.pid!].sort());
    assert.ok(state.processes.every((p) => p.role === 'worker' && p.host === os.hostname() && /\d+\.\d+/.test(p.version)));
    // Their heartbeats carry the delivery figures (a beat may predate the last deliveries' end;
    // none of these small messages ever waits for room within the default 256 MB).
    assert.ok(state.processes.every((p) => typeof p.deliveriesInProgress === 'number' && p.deliveriesWaitingForMemory === 0 && p.crowdedNextHops === 0), JSON.stringify(state.processes));
    const page = await get(aPort, '/fragment', { authorization: `Bearer ${TOKEN}` });
    assert.match(page.text, new RegExp(`<tr data-process="[^"]+:${b.child.pid}">`));
  });

  it('a worker started with --http serves /metrics (its role and its deliveries) and /healthz', async () => {
    const m = await get(bPort, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.text, /^mailgw_process_info\{role="worker",host="[^"]+",version="[^"]+"\} 1$/m);
    // Every series carries the process role as a label: the same names in every process.
    assert.match(m.text, /^mailgw_queue_jobs\{state="completed",role="worker"\} \d+$/m);
    assert.match(m.text, /^mailgw_redis_up\{role="worker"\} 1$/m);
    assert.match(m.text, /^process_cpu_user_seconds_total\{role="worker"\} /m);
    // Its delivery workers: idle, nothing held, the default queue.workerMessageBytes (256 MB).
    assert.match(m.text, /^mailgw_worker_deliveries_in_progress\{role="worker"\} 0$/m);
    assert.match(m.text, /^mailgw_worker_deliveries_waiting_for_memory\{role="worker"\} 0$/m);
    assert.match(m.text, /^mailgw_worker_message_bytes_held\{role="worker"\} 0$/m);
    assert.match(m.text, /^mailgw_worker_message_bytes_limit\{role="worker"\} 268435456$/m);
    const h = await get(bPort, '/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(JSON.parse(h.text), { status: 'ok', redis: 'up', role: 'worker', deliveriesInProgress: 0, deliveriesWaitingForMemory: 0, crowdedNextHops: 0 });
    // B's dashboard is off: no token configured.
    assert.equal((await get(bPort, '/')).status, 404);
  });

  it('a stopped worker leaves the process list', async () => {
    b.child.kill('SIGTERM');
    await b.exited;
    const r = await get(aPort, '/api/state', { authorization: `Bearer ${TOKEN}` });
    const state = JSON.parse(r.text) as { processes: Array<{ pid: number }> };
    assert.deepEqual(state.processes.map((p) => p.pid), [a.child.pid]);
  });

  it('--http that is not IP:port is refused before anything starts', () => {
    const r = spawnSync(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', cliMain, 'worker', '--config', configC, '--http', 'localhost'], { cwd: repoRoot, env: { ...process.env, REDIS_URL: redis.url }, encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--http must be IP:port .*not "localhost"/);
  });
});
