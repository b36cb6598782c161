// A binding the system refuses: the error names the address, the connector and the system's
// reason, says what to do about it, and leaves nothing listening (the bindings opened before it
// are closed again).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { bindFailureHint, startListeners } from '@mailgw/listener';
import { openShardedMailStore, type ShardedMailStore } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { compile, baseGateway, freePort } from './helpers/gateway.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const listenOn = (port: number, host: string) =>
  new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(port, host, () => resolve(s));
  });
const closeServer = (s: net.Server) => new Promise<void>((r) => s.close(() => r()));

describe('bindings the system refuses', () => {
  let redis: TestRedis;
  let store: ShardedMailStore;
  let dataDir: string;
  before(async () => {
    redis = await startRedis({ appendonly: false });
    store = await openShardedMailStore({ url: redis.url, prefix: '{mailgw}', commandTimeoutMs: 1000 });
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-bind-'));
  });
  after(async () => {
    await store.close();
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const start = async (bindings: string[]) => startListeners({ policy: compile(await baseGateway(), { 'busy.yaml': { name: 'Busy', bindings, tarpitInterval: 0 } }), store, logger: pino({ level: 'silent' }), dataDir });

  test('a port another program holds: EADDRINUSE, who to ask, and the binding opened before it closed again', async () => {
    const [free, busy] = [await freePort(), await freePort()];
    const squatter = await listenOn(busy, '127.0.0.1');
    try {
      await assert.rejects(start([`127.0.0.2:${free}`, `127.0.0.1:${busy}`]), (err: Error) => {
        assert.equal(
          err.message,
          `cannot listen on 127.0.0.1:${busy} for connector "Busy": listen EADDRINUSE: address already in use 127.0.0.1:${busy}: another program listens there already (Postfix, sendmail, another mailgw?); \`ss -ltnp 'sport = :${busy}'\` shows which`,
        );
        return true;
      });
      // The first binding was opened and is closed again: the port can be taken.
      await closeServer(await listenOn(free, '127.0.0.2'));
    } finally {
      await closeServer(squatter);
    }
  });

  test('an address no interface has: EADDRNOTAVAIL and where to look', async () => {
    const port = await freePort();
    // 192.0.2.1 (TEST-NET-1) is on no interface here; a bind sends nothing.
    await assert.rejects(start([`192.0.2.1:${port}`]), (err: Error) => {
      assert.match(err.message, new RegExp(`^cannot listen on 192\\.0\\.2\\.1:${port} for connector "Busy": .*EADDRNOTAVAIL.*: no interface of this machine has that address \\(\`ip -br addr\` lists them\\): correct the connector's bindings$`));
      return true;
    });
  });

  test('the hint for each code', () => {
    assert.match(bindFailureHint('EACCES', 25), /^ports below 1024 need root or the CAP_NET_BIND_SERVICE capability/);
    assert.equal(bindFailureHint('EACCES', 2525), 'the system refused this process the port');
    assert.match(bindFailureHint('EADDRINUSE', 587), /ss -ltnp 'sport = :587'/);
    assert.equal(bindFailureHint('EINVAL', 25), '');
    assert.equal(bindFailureHint(undefined, 25), '');
  });
});
