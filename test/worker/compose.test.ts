// docker-compose.yml cannot run here (no Docker engine): check what it says instead, and that
// every mailgw command and option it uses exists in the CLI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { cliMain, repoRoot } from './helpers/worker-process.js';

interface Service {
  image?: string;
  build?: { context: string; dockerfile_inline?: string };
  command?: string[];
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  container_name?: string;
  stop_grace_period?: string;
}

// `merge: true` resolves the `<<: *mailgw` anchors as Compose does.
const compose = parse(readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;

function cli(args: string[]) {
  const r = spawnSync(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', cliMain, ...args], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, REDIS_URL: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('docker-compose.yml', () => {
  test('has redis, listener and worker', () => {
    assert.deepEqual(Object.keys(services).sort(), ['listener', 'redis', 'worker']);
  });

  test('redis: AOF on, fsynced always, rewritten at 512mb, noeviction, a healthcheck, a volume', () => {
    const r = services.redis!;
    const cmd = r.command!.join(' ');
    assert.match(cmd, /^redis-server /);
    assert.match(cmd, /--appendonly yes/);
    // redis.durability's default, fsync: every write on disk before the 250.
    assert.match(cmd, /--appendfsync always/);
    assert.match(cmd, /--maxmemory-policy noeviction/);
    // Bodies pass through the AOF: rewritten at 512mb as the embedded Redis, not every few seconds.
    assert.match(cmd, /--auto-aof-rewrite-min-size 512mb/);
    assert.deepEqual(r.healthcheck!.test, ['CMD', 'redis-cli', 'ping']);
    assert.ok(r.volumes!.some((v) => v.endsWith(':/data')));
  });

  test('listener publishes 25→2525 and 587→2587; the worker publishes nothing and has no fixed name (scalable)', () => {
    assert.deepEqual(services.listener!.ports!.map((p) => p.split('#')[0]!.trim()), ['25:2525', '587:2587']);
    assert.equal(services.worker!.ports, undefined);
    assert.equal(services.worker!.container_name, undefined);
  });

  test('listener and worker: built from this repository, config mounted from it, wait for a healthy redis', () => {
    for (const name of ['listener', 'worker']) {
      const s = services[name]!;
      assert.equal(s.build!.context, '.');
      assert.match(s.build!.dockerfile_inline!, /npm ci[^\n]*&& npx tsc -b/);
      assert.equal(s.environment!.REDIS_URL, 'redis://redis:6379');
      assert.equal(s.depends_on!.redis!.condition, 'service_healthy');
      for (const v of s.volumes!) {
        const [src, dst] = v.split(':');
        if (src!.startsWith('./')) assert.ok(existsSync(path.join(repoRoot, src!)), `${name} mounts ${src}, which exists`);
        if (!src!.startsWith('./')) assert.ok(src! in compose.volumes, `${name} uses a declared volume ${src}`);
        assert.ok(dst!.startsWith('/etc/mailgw'));
      }
      assert.equal(s.command![s.command!.indexOf('--config') + 1], '/etc/mailgw/gateway.yaml');
      assert.ok(s.volumes!.includes('./gateway.yaml:/etc/mailgw/gateway.yaml:ro'));
    }
    assert.equal(services.listener!.command![0], 'listen');
    assert.equal(services.worker!.command![0], 'worker');
  });

  test('every command it runs exists in the CLI and accepts its options', () => {
    const usage = cli(['help']);
    assert.equal(usage.code, 0);
    for (const name of ['listener', 'worker']) {
      const [command, ...args] = services[name]!.command!;
      assert.match(usage.out, new RegExp(`^  ${command}\\s`, 'm'), `mailgw help lists ${command}`);
      // The same arguments with a config that is not there: the command and its options are
      // understood (no "unknown command", no option error), and it stops on the missing file.
      const r = cli([command!, ...args.map((a) => (a === '/etc/mailgw/gateway.yaml' ? '/nonexistent/mailgw/gateway.yaml' : a))]);
      assert.equal(r.code, 1, `${command}: ${r.err}`);
      assert.doesNotMatch(r.err, /unknown command|Unknown option/i);
      assert.match(r.err, /file not found/);
    }
  });
});
