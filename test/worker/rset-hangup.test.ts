// Two ways a next hop broke deliveries, found by test/security/fuzz-next-hop.test.ts:
// - it refuses a message, then drops the connection when the worker sends RSET (to clean the
//   session before pooling it). nodemailer never calls a pending RSET back when the
//   connection dies; the delivery, decided already, waited for it forever: its job stayed
//   active, its lock renewed, the refusal never recorded;
// - it answers the final dot with "2500 …", which nodemailer took for a 250 (it reads the
//   first digit): recorded as delivered on a reply that is none.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startFaultRig, type FaultRig } from '../security/helpers/delivery.js';
import { until } from '../security/helpers/scenario.js';

let redis: TestRedis;
let rig: FaultRig;
let hop: net.Server;
const rsets: string[] = [];
/** How the hop answers the final dot. */
let dotReply = '550 5.7.1 message refused';

before(async () => {
  redis = await startRedis();
  hop = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.write('220 rset-hangup.test ESMTP\r\n');
    let buf = '';
    let inData = false;
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buf = buf.slice(end + 5);
          inData = false;
          socket.write(`${dotReply}\r\n`);
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-rset-hangup.test\r\n250 PIPELINING\r\n');
        else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'RSET') {
          rsets.push(line);
          socket.destroy(); // no reply: the connection is simply gone
          return;
        } else if (verb === 'QUIT') {
          socket.end('221 bye\r\n');
          return;
        } else socket.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => hop.listen(0, '127.0.0.1', () => r()));
  rig = await startFaultRig(redis.url, (hop.address() as net.AddressInfo).port, { concurrency: 2 });
});

after(async () => {
  await rig?.close();
  await new Promise<void>((r) => hop.close(() => r()));
  await redis?.stop();
});

it('a connection dropped during RSET ends the delivery: the refusal is recorded and the job completes', async () => {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: rig.port });
  await c.ehlo();
  const t = await c.transaction('', ['alice@contoso.test'], 'Subject: refused, then RSET dropped\r\n\r\nhello\r\n');
  assert.equal(t.end?.code, 250, t.end?.last);
  await c.quit();
  const done = await until(async () => (await rig.queue.pending()) === 0, 15_000);
  assert.ok(rsets.length > 0, 'the worker never sent RSET: the scenario did not happen');
  assert.ok(done, `the delivery never ended: ${JSON.stringify(await rig.queue.counts())}`);
  assert.equal((await rig.queue.counts()).completed, 1);
});

it('a reply to the final dot that is not a reply ("2500 …") is no delivery: the message waits (4.5.0)', async () => {
  dotReply = '2500 looks like a yes';
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: rig.port });
  await c.ehlo();
  const t = await c.transaction('sender@example.net', ['bob@contoso.test'], 'Subject: malformed dot reply\r\n\r\nhello\r\n');
  assert.equal(t.end?.code, 250, t.end?.last);
  await c.quit();
  const queueId = /\[InternalId=([0-9A-Z]+)\]/.exec(t.end!.last)![1]!;
  let state: { recipients?: Array<{ status: string; reply?: { code: number; enhanced: string; text: string } }> } = {};
  const waited = await until(async () => {
    state = ((await rig.queue.bull.getJob(queueId))?.progress ?? {}) as typeof state;
    return (state.recipients?.[0]?.reply?.code ?? 0) > 0;
  }, 15_000);
  assert.ok(waited, `no attempt recorded: ${JSON.stringify(state)}`);
  const r = state.recipients![0]!;
  assert.equal(r.status, 'pending');
  assert.equal(r.reply!.code, 451);
  assert.equal(r.reply!.enhanced, '4.5.0');
  assert.match(r.reply!.text, /answered the message with a malformed reply: 2500 looks like a yes/);
});
