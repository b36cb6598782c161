// The golden policy scenarios (test/policy/*.yaml) replayed over real SMTP: the listener must
// answer what the pure engine answers. Bindings move to free ports on loopback addresses; the
// scenarios' client addresses (203.0.113.9, 2001:db8::5, …) arrive through a trusted PROXY v1
// header, so connector selection sees them exactly as written.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { MessageFilter } from '@mailgw/mail';
import type { DataScenario } from '@mailgw/policy';
import type { GoldenFile, GoldenScenario } from '../policy/golden.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, passwordHash, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, dotStuff, queueIdOf, type ClientReply } from './helpers/smtp-client.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'policy');
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
const PROXY_V4 = '127.0.0.250';
const PROXY_V6 = '::1';
/** Where a scenario's wildcard binding is reached: a local address no exact binding uses. */
const WILDCARD_TARGET = '127.0.0.99';

let redis: TestRedis;
let dataDir: string;

before(async () => {
  redis = await startRedis();
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-golden-'));
});

after(async () => {
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Maps the golden file's addresses and ports onto this machine. */
class Relocation {
  private readonly ports = new Map<number, number>();
  private readonly v4 = new Map<string, string>();

  async port(p: number): Promise<number> {
    if (!this.ports.has(p)) this.ports.set(p, await freePort());
    return this.ports.get(p)!;
  }

  address(ip: string): string {
    if (ip === '0.0.0.0' || ip === '::') return ip;
    if (net.isIPv6(ip)) throw new Error(`no loopback alias for ${ip}`);
    if (ip.startsWith('127.')) return ip;
    if (!this.v4.has(ip)) this.v4.set(ip, `127.0.1.${this.v4.size + 1}`);
    return this.v4.get(ip)!;
  }

  async binding(text: string): Promise<{ host: string; port: number; text: string }> {
    const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d+)$/.exec(text.trim())!;
    const ip = m[1] ?? m[2]!;
    const host = this.address(ip);
    const port = await this.port(Number(m[3]));
    return { host, port, text: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` };
  }
}

async function relocate(g: GoldenFile, r: Relocation): Promise<{ gateway: Record<string, unknown>; connectors: Record<string, Record<string, unknown>> }> {
  const hash = await passwordHash();
  const gateway = {
    ...g.gateway,
    users: ((g.gateway.users as Array<Record<string, unknown>> | undefined) ?? []).map((u) => ({ ...u, passwordHash: hash })),
    trustedProxies: [PROXY_V4, PROXY_V6],
  };
  const connectors: Record<string, Record<string, unknown>> = {};
  for (const [file, c] of Object.entries(g.connectors)) {
    const bindings = [];
    for (const b of c.bindings as string[]) bindings.push((await r.binding(b)).text);
    connectors[file] = { ...c, bindings, tarpitInterval: 0 };
  }
  return { gateway, connectors };
}

interface Replayed {
  connect: ClientReply;
  helo?: ClientReply;
  starttls?: ClientReply;
  auth?: ClientReply;
  mail?: ClientReply;
  rcpt: ClientReply[];
  data?: ClientReply;
  message?: ClientReply;
}

/** The next address up (the scenario's "other" connections come from there). */
function neighbour(ip: string): string {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4) throw new Error(`connections from others: IPv4 scenarios only (${ip})`);
  parts[3] = (parts[3]! + 1) % 256;
  return parts.join('.');
}

/** A message as the scenario's `data` describes it, ending in CRLF (dot-stuffed by the client). */
function messageFor(d: DataScenario | true, fqdn: string): string {
  const spec: DataScenario = d === true ? {} : d;
  const local = spec.localHops ?? 0;
  const foreign = Math.max(0, (spec.receivedHeaders ?? 0) - local);
  const received = (host: string) => `Received: from relay.golden.test ([192.0.2.1])\r\n\tby ${host} (golden); Mon, 1 Jan 2024 00:00:00 +0000\r\n`;
  let header = received(fqdn).repeat(local) + received('mx.elsewhere.test').repeat(foreign) + 'Subject: golden\r\n' + (spec.headers ?? []).map((h) => `${h}\r\n`).join('');
  const pad = (spec.headerBytes ?? 0) - header.length - 2;
  for (let left = pad; left > 0; left -= 900) header += `X-Pad: ${'p'.repeat(Math.max(1, Math.min(890, left - 10)))}\r\n`;
  let body = spec.bareLineEndings ? 'a bare\nline feed\r\n' : 'golden\r\n';
  const fill = (spec.messageBytes ?? 0) - header.length - 2 - body.length;
  for (let left = fill; left > 0; left -= 1000) body += `${'b'.repeat(Math.max(1, Math.min(998, left - 2)))}\r\n`;
  return `${header}\r\n${body}`;
}

async function replay(s: GoldenScenario, r: Relocation, fqdn: string): Promise<Replayed> {
  const target = await r.binding(s.binding);
  const host = target.host === '0.0.0.0' ? WILDCARD_TARGET : target.host === '::' ? '::1' : target.host;
  const v6 = host.includes(':');
  const open = (clientIP: string) =>
    RawSmtp.connect({ host, port: target.port, localAddress: v6 ? PROXY_V6 : PROXY_V4, proxy: `PROXY ${net.isIPv6(clientIP) ? 'TCP6' : 'TCP4'} ${clientIP} ${host} 40000 ${target.port}` });
  const pass = s.authValid === false ? 'wrong password' : PASSWORD;
  const authenticate = async (c: RawSmtp, password: string): Promise<ClientReply> => {
    if ((s.authMechanism ?? 'PLAIN').toUpperCase() === 'LOGIN') {
      let a = await c.cmd('AUTH LOGIN');
      if (a.code === 334) a = await c.cmd(Buffer.from(s.auth!).toString('base64'));
      if (a.code === 334) a = await c.cmd(Buffer.from(password).toString('base64'));
      return a;
    }
    return c.cmd(`AUTH ${s.authMechanism ?? 'PLAIN'} ${Buffer.from(`\0${s.auth}\0${password}`).toString('base64')}`);
  };
  const greet = async (c: RawSmtp): Promise<ClientReply> => {
    const h = await c.ehlo(s.helo ?? 'golden.test');
    if (h.code === 250 && s.tls) {
      const t = await c.starttls();
      if (t.code === 220) await c.ehlo(s.helo ?? 'golden.test');
    }
    return h;
  };

  // The conditions the scenario names, made for real first.
  const held: RawSmtp[] = [];
  const out: Replayed = { connect: { code: 0, lines: [], last: '' }, rcpt: [] };
  try {
    const counts = s.connections ?? { open: 0, fromClient: 0 };
    for (let i = 0; i < counts.open; i++) held.push(await open(i < counts.fromClient ? s.clientIP : neighbour(s.clientIP)));
    for (let i = 0; i < (s.authFailures ?? 0); i++) {
      const f = await open(s.clientIP);
      await greet(f);
      await authenticate(f, 'wrong password');
      await f.quit().catch(() => undefined);
    }

    const c = await open(s.clientIP);
    held.push(c);
    out.connect = c.greeting!;
    if (out.connect.code !== 220) return out;
    out.helo = await c.ehlo(s.helo ?? 'golden.test');
    if (out.helo.code !== 250) return out;
    if (s.tls) {
      out.starttls = await c.starttls();
      if (out.starttls.code !== 220) return out;
      await c.ehlo(s.helo ?? 'golden.test');
    }
    if (s.auth) {
      out.auth = await authenticate(c, pass);
      if (out.auth.code === 421) return out;
    }
    if (s.mailFrom === undefined || s.mailFrom === null) {
      if (s.data) out.data = await c.cmd('DATA');
      return out;
    }
    for (let i = 0; i < (s.recentMessages ?? 0); i++) {
      assert.equal((await c.cmd(`MAIL FROM:<${s.mailFrom}>`)).code, 250, 'recentMessages must stay within the limit');
      await c.cmd('RSET');
    }
    out.mail = await c.cmd(`MAIL FROM:<${s.mailFrom}>${s.size !== undefined ? ` SIZE=${s.size}` : ''}`);
    if (out.mail.code !== 250) return out;
    for (const to of s.rcpt ?? []) out.rcpt.push(await c.cmd(`RCPT TO:<${to}>`));
    if (!s.data) return out;
    out.data = await c.cmd('DATA');
    if (out.data.code !== 354) return out;
    c.write(dotStuff(messageFor(s.data, fqdn)));
    c.write('.\r\n');
    out.message = await c.read();
    return out;
  } finally {
    for (const h of held) await h.quit().catch(() => undefined);
  }
}

for (const f of files) {
  const golden = parse(readFileSync(path.join(dir, f), 'utf8')) as GoldenFile;
  describe(`over SMTP: ${f}`, () => {
    const reloc = new Relocation();
    let gw: TestGateway;
    // An anti-spam filter that only records which messages it judged (by queue id).
    const judged = new Set<string>();
    const recorder: MessageFilter = {
      name: 'golden-recorder',
      antiSpam: true,
      onFailure: 'accept',
      begin: (ctx) => ({ header: () => undefined, body: () => undefined, abort: () => undefined, end: async () => (judged.add(ctx.queueId), { filter: 'golden-recorder', verdict: 'accept', headers: [], reason: 'recorded' }) }),
    };
    before(async () => {
      const { gateway, connectors } = await relocate(golden, reloc);
      gw = await startGateway({ redisUrl: redis.url, gateway, connectors, dataDir, filters: [recorder] });
    });
    after(() => gw?.close());

    for (const s of golden.scenarios) {
      // DNS list answers come from a DNS server, which this replay does not run: those
      // scenarios are replayed over SMTP by test/antispam/connection-filter.test.ts instead.
      const skip = s.ipLists ? 'gives DNS list answers (ipLists): covered over SMTP by test/antispam/connection-filter.test.ts' : s.ipBlockList ? 'gives IP Block List entries: covered over SMTP by test/antispam/sender-reputation.test.ts' : false;
      it(s.name, { skip }, async () => {
        const got = await replay(s, reloc, String(golden.gateway.fqdn ?? 'mailgw.test'));
        const why = JSON.stringify(got);
        if (s.expect.connector !== undefined) {
          let line;
          for (let i = 0; i < 100 && !line; i++) {
            line = gw.logs.find((l) => l.msg === 'smtp connection' && l.client === s.clientIP.replace(/^::ffff:/i, '') && !l.seen);
            if (!line) await new Promise((res) => setTimeout(res, 10));
          }
          assert.ok(line, `no summary log line for ${s.clientIP}`);
          line.seen = true;
          assert.equal(line.connector, s.expect.connector, why);
        }
        if (s.expect.connect !== undefined) {
          // An accepted connection is greeted with the connector's banner, not the engine's 220.
          if (s.expect.connect.startsWith('220')) assert.equal(got.connect.code, 220, why);
          else assert.equal(got.connect.last, s.expect.connect, why);
        }
        if (s.expect.admission !== undefined) {
          if (s.expect.admission.startsWith('220')) assert.equal(got.connect.code, 220, why);
          else assert.equal(got.connect.last, s.expect.admission, why);
        }
        // EHLO answers "250-<fqdn> Hello [ip]" and its keywords: the first line is the policy's.
        if (s.expect.helo !== undefined) assert.equal(got.helo && `${got.helo.code} ${got.helo.lines[0]}`, s.expect.helo, why);
        if (s.expect.starttls !== undefined) assert.equal(got.starttls?.last, s.expect.starttls, why);
        if (s.expect.auth !== undefined) assert.equal(got.auth?.last, s.expect.auth, why);
        if (s.expect.mail !== undefined) assert.equal(got.mail?.last, s.expect.mail, why);
        if (s.expect.rcpt !== undefined) {
          // smtp-server's own parser refuses a path with two '@' (501) before the policy could
          // call it relay (550): both refuse, the listener with the syntax error.
          const expected = s.expect.rcpt.map((e, i) => (e === '550 5.7.1 Unable to relay' && (s.rcpt?.[i]?.split('@').length ?? 0) > 2 ? '501 5.1.7 Invalid address' : e));
          assert.deepEqual(got.rcpt.map((r) => r.last), expected, why);
        }
        if (s.expect.data !== undefined) assert.equal(got.data?.last, s.expect.data, why);
        if (s.expect.message !== undefined) {
          if (s.expect.message.startsWith('250 2.6.0 ')) assert.match(got.message?.last ?? '', /^250 2\.6\.0 /, why);
          else assert.equal(got.message?.last, s.expect.message, why);
        }
        if ((s.expect.antiSpam !== undefined || s.expect.firewalled !== undefined) && got.message?.code === 250) {
          const id = queueIdOf(got.message);
          if (s.expect.antiSpam !== undefined) assert.equal(judged.has(id), s.expect.antiSpam, `anti-spam filters ran: ${why}`);
          if (s.expect.firewalled !== undefined) {
            const stored = (await gw.body(id))!.toString('latin1').toLowerCase();
            // Per field name: as many of its lines gone as the golden file says were removed, the others kept.
            const removed = new Map<string, number>();
            for (const h of (typeof s.data === 'object' ? s.data.headers : undefined) ?? []) {
              const name = h.slice(0, h.indexOf(':')).trim().toLowerCase();
              if (!stored.includes(`\r\n${h.toLowerCase()}\r\n`)) removed.set(name, (removed.get(name) ?? 0) + 1);
            }
            const expected = new Map<string, number>();
            for (const n of s.expect.firewalled) expected.set(n.toLowerCase(), (expected.get(n.toLowerCase()) ?? 0) + 1);
            assert.deepEqual(Object.fromEntries([...removed].sort()), Object.fromEntries([...expected].sort()), `fields removed from the stored message: ${why}`);
          }
        }
      });
    }
  });
}
