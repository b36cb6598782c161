// The fault tests' accounting (../helpers/scenario.ts) tells a duplicate the client caused (the
// 250 lost with the connection after the final dot, so the client sent the message again) from
// a delivery that was repeated. Checked against a real SMTP server on loopback that stores a
// message and then drops the connection instead of answering 250.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { AFTER_DATA, account, runLoad, unexplainedDuplicates } from '../helpers/scenario.js';

const stored: Buffer[] = [];
let server: net.Server;
let port = 0;
let dropped = 0;

/** Minimal SMTP: 250 to everything, 354 to DATA; stores each message, and drops the connection instead of the 250 for the first copy of m00002. */
before(async () => {
  server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let inData = false;
    sock.write('220 far.test ESMTP\r\n');
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const msg = buf.subarray(0, end + 2);
          buf = buf.subarray(end + 5);
          inData = false;
          stored.push(Buffer.from(msg));
          if (msg.includes('X-Load-Id: m00002') && dropped === 0) {
            dropped++;
            sock.destroy();
            return;
          }
          sock.write('250 2.0.0 stored\r\n');
          continue;
        }
        const eol = buf.indexOf('\r\n');
        if (eol < 0) return;
        const line = buf.subarray(0, eol).toString('latin1').toUpperCase();
        buf = buf.subarray(eol + 2);
        if (line === 'DATA') {
          inData = true;
          sock.write('354 go on\r\n');
        } else if (line === 'QUIT') sock.end('221 bye\r\n');
        else sock.write('250 ok\r\n');
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

after(() => new Promise<void>((r) => server.close(() => r())));

it('a 250 lost after the final dot: the attempt says so, and the copy the client sent again is explained; a repeated delivery is not', async () => {
  const l = await runLoad({ host: '127.0.0.1', port, clients: 2, messages: 6, rcpt: () => 'a@contoso.test', retryDelayMs: 10 });
  assert.equal(dropped, 1);
  assert.deepEqual(l.attempts.get('m00002'), [`closed${AFTER_DATA}`, '250 2.0.0 stored']);
  assert.deepEqual(l.attempts.get('m00003'), ['250 2.0.0 stored']);

  const a = account(l, stored);
  assert.equal(a.accepted, 6);
  assert.equal(a.lost, 0);
  assert.deepEqual(a.duplicateIds, ['m00002×2']);
  assert.deepEqual(unexplainedDuplicates(a, l), []);

  // The same delivery again (a worker that repeated it): nothing on the client's side explains it.
  const again = account(l, [...stored, stored.find((m) => m.includes('X-Load-Id: m00003'))!]);
  assert.deepEqual(unexplainedDuplicates(again, l), ['m00003×2']);
});
