// `mailgw start` without REDIS_URL runs its own redis-server in <dataDir>/redis: exactly one per
// dataDir, and never one left behind, even when mailgw is killed with SIGKILL.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { REDIS_LOCK_FILE, findFreePort } from '@mailgw/queue';
import { redisServersIn, running, until } from '../harness/procs.js';
import { startGatewayProcess, type GatewayProcess } from '../ops/helpers/gateway-process.js';
import { ACCEPTED, makeConfigDir } from '../ops/helpers/config-dir.js';
import { cliMain, repoRoot } from '../worker/helpers/worker-process.js';

const cfg = makeConfigDir('mailgw-embedded-');
const gateways: GatewayProcess[] = [];
after(async () => {
  for (const g of gateways) if (g.child.exitCode === null && g.child.signalCode === null) await g.stop();
  cfg.remove();
});

const redisDir = path.join(cfg.dir, 'var', 'redis');

async function start(): Promise<{ gw: GatewayProcess; socket: string }> {
  const gw = await startGatewayProcess(cfg.gatewayFile, {});
  gateways.push(gw);
  const line = gw.logs.find((l) => l.msg === 'started an embedded redis-server (set REDIS_URL or redis.url to use your own)');
  assert.ok(line, gw.output());
  return { gw, socket: String(line.socket).replace(/^unix:\/\//, '') };
}

describe('mailgw start: the embedded redis-server', () => {
  it('one per dataDir: a second start is refused, a SIGKILLed mailgw leaves none behind, the next start runs one', async () => {
    const port = await findFreePort();
    cfg.writeGateway(['fqdn: mx.embedded.test', 'dataDir: ./var', ACCEPTED, 'routes:', '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }', 'queue: { drainTimeout: 2s }', ''].join('\n'));
    cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port}"]\n`);

    const first = await start();
    const [redis1, ...more] = redisServersIn(redisDir);
    assert.ok(redis1 !== undefined && more.length === 0, `one redis-server in ${redisDir}`);

    // A second mailgw on the same dataDir: a clear refusal, and still one server.
    const second = await promisify(execFile)(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', cliMain, 'start', '--config', cfg.gatewayFile], {
      cwd: repoRoot,
      env: { ...process.env, REDIS_URL: '' },
      timeout: 30_000,
    }).then(
      () => assert.fail('the second mailgw start succeeded'),
      (e: { code?: number; stderr?: string }) => e,
    );
    assert.equal(second.code, 1, second.stderr);
    assert.match(String(second.stderr), new RegExp(`^mailgw: another mailgw \\(pid ${first.gw.child.pid}\\) already runs the embedded redis-server of \\S+/var/redis; .*stop that one first, or give this one another dataDir\\n$`));
    assert.deepEqual(redisServersIn(redisDir), [redis1]);

    // Something queued just before mailgw dies is still there afterwards (the server was shut
    // down cleanly: SIGTERM from its watchdog, AOF flushed).
    const c = new Redis({ path: first.socket });
    await c.set('mailgw-test:last-write', 'kept');
    c.disconnect();
    first.gw.child.kill('SIGKILL');
    const ms = await until(() => !running(redis1), 'the redis-server of the killed mailgw to exit', 5000);
    assert.ok(ms < 5000);

    const next = await start();
    const servers = redisServersIn(redisDir);
    assert.equal(servers.length, 1, `one redis-server in ${redisDir}: ${servers.join(', ')}`);
    assert.notEqual(servers[0], redis1);
    assert.equal(next.gw.logs.some((l) => String(l.msg).startsWith('a redis-server left running by a previous mailgw')), false, 'nothing was left to shut down');
    const d = new Redis({ path: next.socket });
    try {
      assert.equal(await d.get('mailgw-test:last-write'), 'kept');
    } finally {
      d.disconnect();
    }

    assert.equal(await next.gw.stop(), 0, next.gw.output());
    assert.deepEqual(redisServersIn(redisDir), []);
    assert.equal(existsSync(path.join(redisDir, REDIS_LOCK_FILE)), false, 'a clean stop releases the lock');
  });
});
