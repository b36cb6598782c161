// The system tools the suite drives (swaks, redis-server) are complete, not only present: a
// swaks without Net::SSLeay is on PATH but cannot STARTTLS, and then the TLS tests elsewhere fail
// with an error that says nothing about the machine. Here the gap fails once, by name, with the
// command that fixes it (scripts/bootstrap.mjs runs it as root).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { startRedis, type TestRedis } from './redis.js';

const FIX = 'apt-get install -y --no-install-recommends swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl (npm test runs scripts/bootstrap.mjs, which does it as root)';

describe('test tools', () => {
  it('swaks supports TLS and Basic AUTH (swaks --support)', () => {
    const r = spawnSync('swaks', ['--support'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.error, undefined, `swaks cannot run: ${r.error?.message}; install it: ${FIX}`);
    const out = `${r.stdout}${r.stderr}`;
    for (const feature of ['TLS', 'Basic AUTH']) {
      assert.match(out, new RegExp(`^=== ${feature} supported$`, 'm'), `swaks lacks ${feature}:\n${out}\nfix: ${FIX}`);
    }
  });

  let redis: TestRedis | null = null;
  after(() => redis?.stop());
  it('redis-server starts and answers PING', async () => {
    redis = await startRedis({ appendonly: false });
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = net.connect({ host: redis!.host, port: redis!.port });
      let buf = '';
      sock.setTimeout(5000, () => reject(new Error('no reply to PING within 5 s')));
      sock.on('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('\r\n')) {
          sock.destroy();
          resolve(buf.trim());
        }
      });
      sock.on('error', reject);
    });
    assert.equal(reply, '+PONG');
  });
});
