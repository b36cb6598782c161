// A milter that misbehaves at a random point of the conversation (an unknown reply, a reply code
// that is none, a frame of length 0 or 4 GB, two replies at once, a half packet, silence, the
// connection closed): whatever it does and wherever, every SMTP command gets a well-formed reply
// in time, a 250 at the end of DATA means the message is stored (or was discarded on purpose),
// and the gateway goes on serving. Seeded, so a failure names the case that broke.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf, type ClientReply } from '../listener/helpers/smtp-client.js';
import { prng } from '../security/helpers/fuzz.js';

const pkt = (cmd: string, data: Buffer = Buffer.alloc(0)): Buffer => {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(data.length + 1, 0);
  h.write(cmd, 4, 'latin1');
  return Buffer.concat([h, data]);
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};


/** What the milter does at its chosen moment. */
const MISCHIEF = ['unknown', 'replycode', 'zero-length', 'huge-length', 'two-at-once', 'half-then-close', 'close', 'silence', 'progress', 'reject', 'tempfail', 'discard', 'accept'] as const;
type Mischief = (typeof MISCHIEF)[number];

/** The plan for the next connection: at its `at`-th command that wants a reply, `what`. */
let plan: { at: number; what: Mischief; r: () => number } = { at: -1, what: 'unknown', r: prng(1).next };

let redis: TestRedis;
let gw: TestGateway;
let chaos: net.Server;
const sockets = new Set<net.Socket>();
let port = 0;

before(async () => {
  redis = await startRedis();
  chaos = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    const { at, what, r } = plan;
    let n = 0;
    let buf = Buffer.alloc(0);
    let done = false;
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (!done && buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const cmd = String.fromCharCode(buf[4]!);
        buf = buf.subarray(4 + len);
        // Macros, ABORT and QUIT are not answered.
        if (cmd === 'D' || cmd === 'A' || cmd === 'Q') continue;
        const normal = cmd === 'O' ? pkt('O', Buffer.concat([u32(6), u32(0x1 | 0x2 | 0x10 | 0x20), u32(0)])) : cmd === 'E' ? pkt('a') : pkt('c');
        if (n++ !== at) {
          sock.write(normal);
          continue;
        }
        switch (what) {
          case 'unknown':
            sock.write(pkt(String.fromCharCode(0x41 + Math.floor(r() * 58)), Buffer.from('junk'.repeat(Math.floor(r() * 4)))));
            break;
          case 'replycode':
            sock.write(pkt('y', Buffer.from(`${['250 2.0.0 fine', '451 4.7.1 later', '553 5.1.3 odd', 'xyz', '', '5', '999 9.9.9 nine'][Math.floor(r() * 7)]}\0`)));
            break;
          case 'zero-length':
            sock.write(Buffer.alloc(4));
            break;
          case 'huge-length':
            sock.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x63]));
            break;
          case 'two-at-once':
            sock.write(Buffer.concat([normal, pkt('c')]));
            break;
          case 'half-then-close':
            sock.end(normal.subarray(0, 3));
            done = true;
            break;
          case 'close':
            sock.destroy();
            done = true;
            break;
          case 'silence':
            break;
          case 'progress':
            sock.write(Buffer.concat([pkt('p'), pkt('p'), normal]));
            break;
          case 'reject':
            sock.write(pkt('r'));
            break;
          case 'tempfail':
            sock.write(pkt('t'));
            break;
          case 'discard':
            sock.write(pkt('d'));
            break;
          case 'accept':
            sock.write(pkt('a'));
            break;
        }
      }
    });
  });
  await new Promise<void>((r) => chaos.listen(0, '127.0.0.1', r));
  port = await freePort();
  const connectors = { internet: { name: 'Internet', usage: 'Internet', bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 } };
  const gateway = await baseGateway({ milters: [{ name: 'chaos', address: `inet:127.0.0.1:${(chaos.address() as net.AddressInfo).port}`, connectTimeout: '500ms', commandTimeout: '300ms', eomTimeout: '500ms' }] });
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors, filters: contentFilters(compile(gateway, connectors).config.gateway) });
});

after(async () => {
  await gw?.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => chaos?.close(() => r()));
  await redis?.stop();
});

const wellFormed = (r: ClientReply, what: string) => assert.match(r.last, /^[2-5]\d\d[ -]/, `${what}: ${JSON.stringify(r.last)}`);

it('whatever a milter does wrong, and wherever, every command is answered, a 250 means stored or discarded, and the gateway goes on', async () => {
  const seen = new Map<string, number>();
  for (let seed = 1; seed <= 45; seed++) {
    const r = prng(seed * 7919).next;
    plan = { at: Math.floor(r() * 14), what: MISCHIEF[Math.floor(r() * MISCHIEF.length)]!, r };
    const label = `seed ${seed}: ${plan.what} at command ${plan.at}`;
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo('chaos.test');
    const t0 = Date.now();
    const mail = await c.cmd('MAIL FROM:<sender@example.net>');
    wellFormed(mail, `${label}, MAIL`);
    const rcpts = [await c.cmd('RCPT TO:<alice@contoso.test>'), await c.cmd('RCPT TO:<bob@contoso.test>')];
    rcpts.forEach((x, i) => wellFormed(x, `${label}, RCPT ${i}`));
    const data = await c.cmd('DATA');
    wellFormed(data, `${label}, DATA`);
    let end: ClientReply | null = null;
    if (data.code === 354) {
      c.write(`Subject: ${label}\r\nFrom: <sender@example.net>\r\n\r\n${'body line\r\n'.repeat(50)}.\r\n`);
      end = await c.read();
      wellFormed(end, `${label}, end of DATA`);
    }
    await c.quit();
    assert.ok(Date.now() - t0 < 5000, `${label}: took ${Date.now() - t0} ms`);
    if (end?.code === 250) {
      const id = queueIdOf(end);
      const stored = (await gw.body(id)) !== null;
      const discarded = gw.logs.some((l) => l.msg === 'message discarded by a filter' && l.queueId === id);
      assert.ok(stored || discarded, `${label}: 250 but neither stored nor discarded`);
    }
    const outcome = `${mail.code}/${rcpts.map((x) => x.code).join(',')}/${end?.code ?? data.code}`;
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
  }
  // The cases reached different places: refusals at MAIL, at RCPT, at the end, and messages taken.
  const outcomes = [...seen.keys()];
  assert.ok(outcomes.some((o) => o.startsWith('451/')), outcomes.join(' '));
  assert.ok(outcomes.some((o) => /^250\/[^/]*\/250$/.test(o)), outcomes.join(' '));
  assert.ok(outcomes.some((o) => /^250\/[^/]*\/451$/.test(o)), outcomes.join(' '));
  // And a well-behaved milter after all of that: the gateway still takes mail.
  plan = { at: -1, what: 'unknown', r: prng(1).next };
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  await c.ehlo('chaos.test');
  const t = await c.transaction('sender@example.net', ['alice@contoso.test'], 'Subject: after the chaos\r\n\r\nbody\r\n');
  await c.quit();
  assert.match(t.end!.last, /^250 2\.6\.0 /);
});
