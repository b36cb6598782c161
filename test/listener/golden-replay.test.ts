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
import type { GoldenFile, GoldenScenario } from '../policy/golden.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, passwordHash, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, type Reply } from './helpers/smtp-client.js';

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
  connect: Reply;
  starttls?: Reply;
  auth?: Reply;
  mail?: Reply;
  rcpt: Reply[];
}

async function replay(s: GoldenScenario, r: Relocation): Promise<Replayed> {
  const target = await r.binding(s.binding);
  const host = target.host === '0.0.0.0' ? WILDCARD_TARGET : target.host === '::' ? '::1' : target.host;
  const v6 = host.includes(':');
  const proxy = `PROXY ${net.isIPv6(s.clientIP) ? 'TCP6' : 'TCP4'} ${s.clientIP} ${host} 40000 ${target.port}`;
  const c = await RawSmtp.connect({ host, port: target.port, localAddress: v6 ? PROXY_V6 : PROXY_V4, proxy });
  const out: Replayed = { connect: c.greeting!, rcpt: [] };
  try {
    if (out.connect.code !== 220) return out;
    await c.ehlo('golden.test');
    if (s.tls) {
      out.starttls = await c.starttls();
      if (out.starttls.code !== 220) return out;
      await c.ehlo('golden.test');
    }
    if (s.auth) {
      const pass = s.authValid === false ? 'wrong password' : PASSWORD;
      if ((s.authMechanism ?? 'PLAIN').toUpperCase() === 'LOGIN') {
        out.auth = await c.cmd('AUTH LOGIN');
        if (out.auth.code === 334) out.auth = await c.cmd(Buffer.from(s.auth).toString('base64'));
        if (out.auth.code === 334) out.auth = await c.cmd(Buffer.from(pass).toString('base64'));
      } else {
        out.auth = await c.cmd(`AUTH ${s.authMechanism ?? 'PLAIN'} ${Buffer.from(`\0${s.auth}\0${pass}`).toString('base64')}`);
      }
    }
    if (s.mailFrom === undefined || s.mailFrom === null) return out;
    out.mail = await c.cmd(`MAIL FROM:<${s.mailFrom}>${s.size !== undefined ? ` SIZE=${s.size}` : ''}`);
    if (out.mail.code !== 250) return out;
    for (const to of s.rcpt ?? []) out.rcpt.push(await c.cmd(`RCPT TO:<${to}>`));
    return out;
  } finally {
    await c.quit().catch(() => undefined);
  }
}

for (const f of files) {
  const golden = parse(readFileSync(path.join(dir, f), 'utf8')) as GoldenFile;
  describe(`over SMTP: ${f}`, () => {
    const reloc = new Relocation();
    let gw: TestGateway;
    before(async () => {
      const { gateway, connectors } = await relocate(golden, reloc);
      gw = await startGateway({ redisUrl: redis.url, gateway, connectors, dataDir });
    });
    after(() => gw?.close());

    for (const s of golden.scenarios) {
      it(s.name, async () => {
        const got = await replay(s, reloc);
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
        if (s.expect.starttls !== undefined) assert.equal(got.starttls?.last, s.expect.starttls, why);
        if (s.expect.auth !== undefined) assert.equal(got.auth?.last, s.expect.auth, why);
        if (s.expect.mail !== undefined) assert.equal(got.mail?.last, s.expect.mail, why);
        if (s.expect.rcpt !== undefined) {
          // smtp-server's own parser refuses a path with two '@' (501) before the policy could
          // call it relay (550): both refuse, the listener with the syntax error.
          const expected = s.expect.rcpt.map((e, i) => (e === '550 5.7.1 Unable to relay' && (s.rcpt?.[i]?.split('@').length ?? 0) > 2 ? '501 5.1.7 Invalid address' : e));
          assert.deepEqual(got.rcpt.map((r) => r.last), expected, why);
        }
      });
    }
  });
}
