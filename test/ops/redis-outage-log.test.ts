// A Redis outage in the log of `mailgw start`: each process (supervisor, listener, worker)
// says once that Redis is unreachable, however many of its connections fail and retry, and
// once that it is back, with how long it was away; then mail is accepted again. Before, every
// failed reconnection attempt of every connection was a line (about eight a second for this
// small gateway) and nothing said when Redis came back.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { eventually, message } from '../worker/helpers/gateway.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess, type LogLine } from './helpers/gateway-process.js';

let redis: TestRedis;
let cfg: ConfigDir;
let gw: GatewayProcess;
let port: number;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  cfg = makeConfigDir('mailgw-outage-');
  cfg.writeGateway(['fqdn: mx.outage.test', 'dataDir: ./var', ACCEPTED, 'routes:', '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }', 'processes: { listeners: 1, workers: 1 }', ''].join('\n'));
  cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port}"]\ntarpitInterval: 0\n`);
  gw = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url });
});

after(async () => {
  await gw?.stop();
  await redis?.stop();
  cfg?.remove();
});

const PROCESSES = ['supervisor', 'listener', 'worker'];
const byProcess = (lines: LogLine[], test: (l: LogLine) => boolean) =>
  Object.fromEntries(PROCESSES.map((p) => [p, lines.filter((l) => l['process'] === p && test(l)).length]));
/** A line about Redis failing: the outage's own, or any warning or error naming the refused connection. */
const aboutRedisDown = (l: LogLine) => /^Redis (unreachable|still unreachable)/.test(l.msg ?? '') || (Number(l['level']) >= 40 && /ECONNREFUSED|Connection is closed/.test(JSON.stringify(l)));

test('Redis away for seconds: one warning and one recovery line per process, then mail is accepted again', async () => {
  const from = gw.logs.length;
  await redis.kill('SIGKILL');
  for (const p of PROCESSES) await gw.waitForLog((l) => l['process'] === p && /^Redis unreachable/.test(l.msg ?? ''), `the ${p}'s outage warning`, from, 10_000);
  // Every connection retries at least every 2 s (reconnectDelay): several attempts each.
  await new Promise((r) => setTimeout(r, 4500));
  const during = gw.logs.slice(from);
  assert.deepEqual(byProcess(during, aboutRedisDown), { supervisor: 1, listener: 1, worker: 1 }, `lines while Redis was down:\n${during.map((l) => JSON.stringify(l)).join('\n')}`);
  const warning = during.find((l) => l['process'] === 'listener' && /^Redis unreachable/.test(l.msg ?? ''))!;
  assert.equal(warning['level'], 40);
  assert.match(String(warning['err']), /ECONNREFUSED/);

  await redis.restart();
  const back: Record<string, LogLine> = {};
  for (const p of PROCESSES) back[p] = await gw.waitForLog((l) => l['process'] === p && /^Redis reachable again after /.test(l.msg ?? ''), `the ${p}'s recovery line`, from, 15_000);
  for (const p of PROCESSES) {
    assert.equal(back[p]!['level'], 30);
    assert.ok(Number(back[p]!['downMs']) >= 4500, `${p}: downMs ${back[p]!['downMs']}`);
    assert.ok(Number(back[p]!['errors']) >= 2, `${p}: errors ${back[p]!['errors']}`);
  }
  // Nothing more about it once it is back.
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(byProcess(gw.logs.slice(from), aboutRedisDown), { supervisor: 1, listener: 1, worker: 1 });

  await eventually(async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    try {
      await c.ehlo();
      const t = await c.transaction('someone@example.org', ['alice@contoso.test'], message('after the outage'));
      return t.end?.code === 250 ? true : undefined;
    } finally {
      await c.quit();
    }
  }, 'mail to be accepted again after Redis came back');
});
