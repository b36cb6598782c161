// A separate `mailgw worker` process follows configuration changes like `mailgw start` does:
// a valid edit of gateway.yaml switches its routes; an invalid one is rejected and logged, and
// the worker keeps delivering with what it had.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { openMailStore, type MailStore } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { enqueue, eventually, message, randomPrefix } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { spawnWorker, writeConfig, type WorkerProcess } from '../worker/helpers/worker-process.js';

let redis: TestRedis;
let a: FarSide;
let b: FarSide;
let store: MailStore;
let worker: WorkerProcess;
let dir: string;
const prefix = randomPrefix();

const gatewayYaml = (port: number) =>
  ['acceptedDomains: [{ domain: contoso.test, default: true }]', `redis: { prefix: "${prefix}" }`, 'routes:', `  - { domains: ["*"], to: "smtp://127.0.0.1:${port}" }`, ''].join('\n');

before(async () => {
  redis = await startRedis();
  [a, b] = [await startFarSide(), await startFarSide()];
  dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-worker-reload-'));
  const config = writeConfig(dir, gatewayYaml(a.port));
  store = await openMailStore({ url: redis.url, prefix });
  worker = spawnWorker(config, { REDIS_URL: redis.url });
  await worker.ready;
});

after(async () => {
  worker?.child.kill('SIGTERM');
  await worker?.exited;
  await store?.close();
  await Promise.all([a?.close(), b?.close()]);
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const logged = (msg: RegExp) => worker.logs.filter((l) => msg.test(String(l.msg))).length;

it('routes follow a valid edit of gateway.yaml; an invalid edit changes nothing', async () => {
  await enqueue(store, { from: 's@example.net', to: ['x@example.org'], body: message('before reload') });
  await eventually(() => a.messages.some((m) => /before reload/.test(m.raw.toString())), 'delivery through the first route');

  const reloads = logged(/reloaded routes/);
  writeFileSync(path.join(dir, 'gateway.yaml'), gatewayYaml(b.port));
  await eventually(() => logged(/reloaded routes/) > reloads, 'the worker to reload');
  await enqueue(store, { from: 's@example.net', to: ['x@example.org'], body: message('after reload') });
  await eventually(() => b.messages.some((m) => /after reload/.test(m.raw.toString())), 'delivery through the new route');

  writeFileSync(path.join(dir, 'gateway.yaml'), gatewayYaml(b.port).replace('routes:', 'routez:'));
  await eventually(() => logged(/configuration change rejected/) > 0, 'the invalid change to be rejected');
  await enqueue(store, { from: 's@example.net', to: ['x@example.org'], body: message('after bad edit') });
  await eventually(() => b.messages.some((m) => /after bad edit/.test(m.raw.toString())), 'delivery still through the route it had');
  assert.equal(a.messages.length, 1, 'nothing went to the old route after the reload');
});

// Issue 16, defect 2: both edits used to pass `mailgw check` and then throw in the worker's
// reload, and the process exited. Now they are refused by the same compile as at start-up.
it('a route the worker cannot use is refused, naming file and key, and the worker keeps delivering', async () => {
  const refusals = (key: RegExp) => worker.logs.filter((l) => /configuration change rejected/.test(String(l.msg)) && key.test(String(l.msg))).length;
  const withPath = gatewayYaml(a.port).replace(`:${a.port}"`, `:${a.port}/x"`);
  writeFileSync(path.join(dir, 'gateway.yaml'), withPath);
  await eventually(() => refusals(/gateway\.yaml: routes\[0\]\.to: "smtp:\/\/127\.0\.0\.1:\d+\/x": a next hop is/) > 0, 'the route with a path to be refused');

  const unsetEnv = gatewayYaml(a.port).replace(/\}\n$/, ', auth: { user: gw, passEnv: MAILGW_TEST_NEVER_SET } }\n');
  writeFileSync(path.join(dir, 'gateway.yaml'), unsetEnv);
  await eventually(() => refusals(/gateway\.yaml: routes\[0\]\.auth\.passEnv: the environment variable MAILGW_TEST_NEVER_SET is not set/) > 0, 'the unset passEnv to be refused');
  // SIGHUP re-reads the same bad file: refused again, never fatal.
  const before = refusals(/MAILGW_TEST_NEVER_SET/);
  worker.child.kill('SIGHUP');
  await eventually(() => refusals(/MAILGW_TEST_NEVER_SET/) > before, 'SIGHUP with the bad file to be refused');

  assert.equal(worker.child.exitCode, null, `the worker is still running; stderr: ${worker.stderr()}`);
  await enqueue(store, { from: 's@example.net', to: ['x@example.org'], body: message('after unusable routes') });
  await eventually(() => b.messages.some((m) => /after unusable routes/.test(m.raw.toString())), 'delivery still through the route it had');
  assert.equal(a.messages.length, 1, 'the refused routes were never used');
});

it('a reload applies gateway.yaml logLevel (debug lines appear, then stop again)', async () => {
  // Whatever the worker writes at debug while it delivers.
  const debugLines = () => worker.logs.filter((l) => l.level === 20).length;
  assert.equal(debugLines(), 0, 'nothing at debug under the default info');
  const reloads = logged(/reloaded routes/);
  writeFileSync(path.join(dir, 'gateway.yaml'), `logLevel: debug\n${gatewayYaml(b.port)}`);
  await eventually(() => logged(/reloaded routes/) > reloads, 'the worker to reload');
  await enqueue(store, { from: 's@example.net', to: ['x@example.org'], body: message('at debug') });
  await eventually(() => b.messages.some((m) => /at debug/.test(m.raw.toString())), 'delivery');
  await eventually(() => debugLines() > 0, 'debug lines after logLevel: debug');
  const atDebug = debugLines();
  const again = logged(/reloaded routes/);
  writeFileSync(path.join(dir, 'gateway.yaml'), gatewayYaml(b.port));
  await eventually(() => logged(/reloaded routes/) > again, 'the worker to reload');
  await enqueue(store, { from: 's@example.net', to: ['x@example.org'], body: message('at info again') });
  await eventually(() => b.messages.some((m) => /at info again/.test(m.raw.toString())), 'delivery');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(debugLines(), atDebug, 'no debug lines once logLevel is info again');
});
