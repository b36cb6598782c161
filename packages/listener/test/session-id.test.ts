// Session ids without random bytes per connection (session-id.ts): the shape of smtp-server's
// own (16 base-32 digits), distinct within a process and between processes.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { sessionIds } from '../src/session-id.js';
import { GatewayServer } from '../src/gateway-server.js';

test('ids have the shape of smtp-server\'s, and a process never repeats one', () => {
  const next = sessionIds();
  const seen = new Set<string>();
  for (let i = 0; i < 50_000; i++) {
    const id = next();
    assert.match(id, /^[0-9a-v]{16}$/);
    assert.ok(!seen.has(id), `${id} repeated`);
    seen.add(id);
  }
});

test('two processes (two random prefixes) never give the same id; the prefix takes all 40 bits', () => {
  const a = sessionIds(Buffer.from([0, 0, 0, 0, 1]));
  const b = sessionIds(Buffer.from([0, 0, 0, 0, 2]));
  const ids = new Set<string>();
  for (let i = 0; i < 1000; i++) ids.add(a()).add(b());
  assert.equal(ids.size, 2000);
  assert.equal(sessionIds(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]))(), 'vvvvvvvv00000000');
  assert.equal(sessionIds(Buffer.from([0, 0, 0, 0, 0]))(), '0000000000000000');
});

test('a GatewayServer connection without a PROXY header gets its id from the process\'s source, at setImmediate', async () => {
  const server = Object.create(GatewayServer.prototype) as GatewayServer;
  // No trusted proxies: the library's PROXY reader is never reached.
  Object.defineProperty(server, '_expectsProxyHeader', { value: () => false });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    let returned = false;
    const id = new Promise<string>((resolve, reject) => {
      server._handleProxy(new net.Socket(), (err, options) => {
        if (err) return reject(err);
        assert.ok(returned, 'the callback comes after _handleProxy returned, as the library\'s does');
        resolve(options!.id!);
      });
      returned = true;
    });
    ids.push(await id);
  }
  assert.equal(new Set(ids).size, 3);
  for (const id of ids) assert.match(id, /^[0-9a-v]{16}$/);
  // One source per process: consecutive counters under one prefix.
  assert.equal(ids[1]!.slice(0, 8), ids[0]!.slice(0, 8));
  assert.equal(parseInt(ids[1]!.slice(8), 32), parseInt(ids[0]!.slice(8), 32) + 1);
});
