// The shipped monitoring files (packaging/monitoring): `promtool check rules` accepts the alert
// rules and `promtool test rules` shows each alert firing on the series that should trigger it
// (mailgw-alerts.test.yml); the Grafana dashboard is valid JSON whose queries, like the rules',
// only use metric names a mailgw process exports (read from a real GatewayMetrics over a real
// Redis, with the gateway-wide gauges the rules need).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@mailgw/config/load';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { BackPressureMonitor } from '@mailgw/listener';
import { GatewayMetrics, QueueAdmin } from '@mailgw/ops';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = path.join(repo, 'packaging', 'monitoring');
const PROMTOOL = '/usr/bin/promtool';
const noPromtool = !existsSync(PROMTOOL) && `${PROMTOOL} is not installed (Debian package prometheus; npm test's bootstrap installs it as root)`;

let redis: TestRedis;
let cfg: ConfigDir;
let admin: QueueAdmin;
/** Series names of /metrics (histograms with their _bucket, _sum and _count). */
let exported: Set<string>;
let text: string;
let monitor: BackPressureMonitor;
let monitorRedis: Redis;

before(async () => {
  redis = await startRedis();
  cfg = makeConfigDir('mailgw-monitoring-');
  cfg.writeGateway(['fqdn: mx.monitoring.test', 'dataDir: ./var', ACCEPTED, 'queue: { delayNotificationTimeout: 3h }', ''].join('\n'));
  cfg.writeConnector('10-default.yaml', 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
  const loaded = loadConfig({ configPath: cfg.gatewayFile });
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
  admin = await QueueAdmin.open({ redisUrl: redis.url, gateway: loaded.config.gateway, dataDir: loaded.dataDir! });
  const metrics = new GatewayMetrics({ queue: admin, process: { role: 'worker', version: 'test' } });
  // A listener's back pressure levels (its monitor reads the same real Redis and the data directory's disk).
  monitor = new BackPressureMonitor({ redis: monitorRedis = new Redis(redis.url), settings: () => loaded.config.gateway.backPressure, logger: pino({ level: 'silent' }), diskPath: loaded.dataDir! });
  await monitor.start();
  metrics.watchBackPressure(monitor);
  text = await metrics.text();
  exported = new Set();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(name!);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(name + s);
  }
});

after(async () => {
  monitor?.stop();
  monitorRedis?.disconnect();
  await admin?.close();
  await redis?.stop();
  cfg?.remove();
});

/** mailgw_* names in a PromQL expression (recording rules, mailgw:…, are not metric names). */
const mailgwNames = (expr: string): string[] => [...expr.matchAll(/\bmailgw_[a-z0-9_]+/g)].map((m) => m[0]);

describe('packaging/monitoring', () => {
  it('mailgw exports the gauges the alerts need: oldest message age, delayNotificationTimeout, live processes by role', () => {
    assert.match(text, /^mailgw_queue_oldest_message_age_seconds\{role="worker"\} 0$/m);
    assert.match(text, /^mailgw_queue_delay_notification_timeout_seconds\{role="worker"\} 10800$/m);
    // No heartbeat in this Redis: every role reported as 0 (an alert sees 0, not a missing series).
    assert.match(text, /^mailgw_processes_live\{role="worker"\} 0$/m);
    assert.match(text, /^mailgw_redis_up\{role="worker"\} 1$/m);
    assert.match(text, /^mailgw_back_pressure_level\{resource="memory",role="worker"\} 0$/m);
  });

  it('promtool accepts the alert rules, and each alert fires when it should', { skip: noPromtool }, () => {
    const check = spawnSync(PROMTOOL, ['check', 'rules', 'mailgw-alerts.yml'], { cwd: dir, encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: 11 rules found/);
    const test = spawnSync(PROMTOOL, ['test', 'rules', 'mailgw-alerts.test.yml'], { cwd: dir, encoding: 'utf8' });
    assert.equal(test.status, 0, test.stdout + test.stderr);
    const alerts = [...readFileSync(path.join(dir, 'mailgw-alerts.yml'), 'utf8').matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]);
    assert.deepEqual(alerts, ['MailgwQueueGrowing', 'MailgwOldestMessageDelayed', 'MailgwNoWorkerAlive', 'MailgwRedisDown', 'MailgwRelayDeniedSpike', 'MailgwBackPressureHigh', 'MailgwBackPressureMedium', 'MailgwContentFilterFailing', 'MailgwDirectoryUnavailable', 'MailgwSigningFailing']);
    const tested = readFileSync(path.join(dir, 'mailgw-alerts.test.yml'), 'utf8');
    for (const a of alerts) assert.match(tested, new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), `${a} is shown firing`);
  });

  it('the alert rules only use metric names mailgw exports', () => {
    const rules = readFileSync(path.join(dir, 'mailgw-alerts.yml'), 'utf8');
    const names = mailgwNames(rules.split('\n').filter((l) => !l.trim().startsWith('#') && !/^\s+(summary|description):/.test(l)).join('\n'));
    assert.ok(names.length >= 5);
    for (const n of names) assert.ok(exported.has(n), `${n} is not exported by mailgw`);
  });

  it('the Grafana dashboard is valid JSON whose queries only use metric names mailgw exports', () => {
    const dashboard = JSON.parse(readFileSync(path.join(dir, 'mailgw-grafana.json'), 'utf8')) as {
      title: string;
      uid: string;
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    };
    assert.equal(dashboard.uid, 'mailgw');
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    assert.ok(exprs.length >= 10, 'the panels have queries');
    for (const { panel, expr } of exprs) {
      const names = mailgwNames(expr);
      assert.ok(names.length > 0, `${panel}: ${expr} queries no mailgw metric`);
      for (const n of names) assert.ok(exported.has(n), `${panel}: ${n} is not exported by mailgw`);
    }
  });
});
