// `mailgw start` without REDIS_URL runs its own redis-server in <dataDir>/redis: exactly one per
// dataDir, never one left behind, even when mailgw is killed with SIGKILL, and started again
// when it dies under a running gateway.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { REDIS_LOCK_FILE, findFreePort } from '@mailgw/queue';
import { redisServersIn, running, until } from '../harness/procs.js';
import { startGatewayProcess, type GatewayProcess } from '../ops/helpers/gateway-process.js';
import { ACCEPTED, makeConfigDir } from '../ops/helpers/config-dir.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
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

  it('a redis-server that dies under a running gateway is started again: mail is taken and delivered again, what was queued is kept', async () => {
    const port = await findFreePort();
    cfg.writeGateway(['fqdn: mx.embedded.test', 'dataDir: ./var', ACCEPTED, 'processes: { listeners: 1, workers: 1 }', 'routes:', '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }', 'queue: { drainTimeout: 2s }', ''].join('\n'));
    cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port}"]\ntarpitInterval: 0\n`);
    const box = path.join(cfg.dir, 'var', 'mailboxes', 'contoso.test', 'kim', 'new');
    const delivered = () => (existsSync(box) ? readdirSync(box).length : 0);
    const send = async (subject: string) => {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port });
      try {
        await c.ehlo();
        const t = await c.transaction('someone@example.net', ['kim@contoso.test'], `Subject: ${subject}\r\n\r\nhello\r\n`);
        // The first refusal of the transaction, or the reply to its data.
        return [t.mail, ...t.rcpt, t.data, t.end].find((r) => r && r.code >= 400)?.last ?? t.end?.last ?? '';
      } finally {
        await c.quit();
      }
    };
    const { gw } = await start();
    assert.match(await send('before'), /^250 2\.6\.0 /);
    await until(() => delivered() === 1, 'the first message in the maildir', 15_000);

    const [dead] = redisServersIn(redisDir);
    assert.ok(dead !== undefined);
    const from = gw.logs.length;
    process.kill(dead, 'SIGKILL');
    const exited = await gw.waitForLog((l) => String(l.msg).startsWith('the embedded redis-server exited (SIGKILL); starting it again in 0.5 s'), 'the exit logged', from, 10_000);
    assert.equal(exited.level, 50);
    await gw.waitForLog((l) => l.msg === 'the embedded redis-server runs again (its append-only file replayed); mail is accepted and delivered again', 'the restart logged', from, 15_000);
    const servers = redisServersIn(redisDir);
    assert.equal(servers.length, 1, `one redis-server in ${redisDir}`);
    assert.notEqual(servers[0], dead);

    // The listener's and the worker's connections come back by themselves (the same socket).
    let reply = '';
    for (let i = 0; i < 40 && !reply.startsWith('250'); i++) {
      reply = await send(`after ${i}`);
      if (!reply.startsWith('250')) {
        assert.match(reply, /^451 4\.3\.0 /, 'until Redis is back: a temporary failure, never a 250 for nothing');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    assert.match(reply, /^250 2\.6\.0 /);
    await until(() => delivered() === 2, 'the message sent after the restart in the maildir', 15_000);

    assert.equal(await gw.stop(), 0, gw.output());
    assert.deepEqual(redisServersIn(redisDir), []);
  });
});
