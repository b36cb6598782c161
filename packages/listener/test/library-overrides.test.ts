// The smtp-server overrides (library-overrides.ts) are guarded by an exact version and apply
// to mailgw's own server and connection instances only: a plain SMTPServer in the same process
// behaves as published (its 100 ms early-talker wait, its own DATA parser).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { LibraryVersionError, checkPinnedVersion } from '@mailgw/queue';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { SMTP_SERVER_VERSION } from '../src/library-overrides.js';
import { GatewayConnection } from '../src/connection.js';
import { GatewayServer } from '../src/gateway-server.js';
import { feedDataStream } from '../src/fast-data-mode.js';

test('the version check refuses any other smtp-server, and package.json pins the same version', () => {
  assert.throws(
    () => checkPinnedVersion('smtp-server', SMTP_SERVER_VERSION, '3.21.7', 'packages/listener/src/library-overrides.ts'),
    (e: unknown) => e instanceof LibraryVersionError && /^smtp-server 3\.21\.7 is installed, but mailgw overrides internals of smtp-server 3\.21\.6 exactly/.test(e.message),
  );
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(pkg.dependencies['smtp-server'], SMTP_SERVER_VERSION);
});

test('overrides live on mailgw subclasses and parser instances; smtp-server prototypes are untouched', () => {
  for (const m of ['init', '_createParser', '_onCommand', 'send', '_armTimeout', 'handler_QUIT'] as const) {
    assert.ok(Object.hasOwn(GatewayConnection.prototype, m), `GatewayConnection overrides ${m}`);
    assert.notEqual((SMTPConnection.prototype as unknown as Record<string, unknown>)[m], (GatewayConnection.prototype as unknown as Record<string, unknown>)[m]);
  }
  for (const m of ['connect', '_handleProxy', '_expectsProxyHeader'] as const) {
    assert.ok(Object.hasOwn(GatewayServer.prototype, m), `GatewayServer overrides ${m}`);
    assert.notEqual(SMTPServer.prototype[m], GatewayServer.prototype[m]);
  }
  // The library still draws its own random session id (for a plain SMTPServer, and behind a PROXY header).
  assert.match(String(SMTPServer.prototype._handleProxy), /randomBytes\(10\)/);
  assert.notEqual((SMTPStream.prototype as unknown as Record<string, unknown>)._feedDataStream, feedDataStream);
  // The library's own early-talker wait is still in its init().
  assert.match(String(SMTPConnection.prototype.init), /setTimeout\([\s\S]*100\)/);
});

test('a plain SMTPServer in the same process keeps the library behaviour (100 ms wait before the greeting)', async () => {
  const plain = new SMTPServer({ disableReverseLookup: true, authOptional: true, name: 'plain.test', logger: false });
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  const { port } = plain.server.address() as net.AddressInfo;
  try {
    const started = Date.now();
    const greeting = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('data', (d) => {
        resolve(d.toString());
        s.destroy();
      });
      s.once('error', reject);
    });
    assert.match(greeting, /^220 plain\.test /);
    assert.ok(Date.now() - started >= 90, `greeting after ${Date.now() - started} ms: the library's 100 ms wait is kept`);
  } finally {
    await new Promise<void>((resolve) => plain.close(() => resolve()));
  }
});
