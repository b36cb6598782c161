// nmap's smtp-open-relay script (16 relay tricks: null sender, percent hack, quoted local
// parts, user@domain@host, source routes, bang paths, IP literals) run from an outside
// address on loopback against the shipped Default connector: it must find no open relay.
// The same scan from a device address of Printers Relay is the positive control: it proves
// that nmap really ran its tests against mailgw here and would have reported a relay.
//
// nmap runs as shipped by Debian: `-sV` (service detection, so the script's port rule accepts
// a port other than 25/465/587) with `-S <loopback address> -e lo` (needs raw sockets: root).
// Without raw sockets it falls back to a connect scan, `--script +smtp-open-relay` forcing
// the script onto the port; the test is skipped, with the reason, when nmap is absent.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { shippedConfig } from './helpers/shipped.js';

const NMAP_TIMEOUT_MS = 120_000;

function findNmap(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v nmap'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}
const nmap = findNmap();
const rawSockets = typeof process.getuid === 'function' && process.getuid() === 0;

let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  if (!nmap) return;
  redis = await startRedis();
  port = await freePort();
  const cfg = await shippedConfig({
    defaultPort: port,
    clientPort: await freePort(),
    relayRanges: ['127.0.0.16/28'],
    // Shipped tarpit (5 s per error) would make nmap's 16 tests last minutes; six of them are
    // syntax errors (501) that would hit maxProtocolErrors and cut the scan short: lifted so
    // every test runs to the end.
    connectorExtra: { tarpitInterval: '50ms', maxProtocolErrors: 'unlimited' },
  });
  gw = await startGateway({ redisUrl: redis.url, gateway: cfg.gateway, connectors: cfg.connectors });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

function scan(source: string, mode: 'sV' | 'sT'): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const args = [
    '-Pn',
    '-n',
    ...(mode === 'sV' ? ['-sV', '--version-intensity', '0', '-S', source, '-e', 'lo'] : ['-sT', '-S', source, '-e', 'lo']),
    '-p',
    String(port),
    '--script',
    mode === 'sV' ? 'smtp-open-relay' : '+smtp-open-relay',
    '--script-args',
    'smtp-open-relay.ip=127.0.0.1',
    '--host-timeout',
    `${NMAP_TIMEOUT_MS / 1000 - 10}s`,
    '127.0.0.1',
  ];
  return new Promise((resolve) => {
    execFile(nmap!, args, { timeout: NMAP_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? null) : 0 });
    });
  });
}

/** The script's one-line verdict, e.g. "Server doesn't seem to be an open relay, all tests failed". */
function verdict(out: string): string | null {
  return /\|_?smtp-open-relay: (.+)/.exec(out)?.[1]?.trim() ?? null;
}

async function run(source: string): Promise<{ verdict: string | null; out: string; mode: string }> {
  const mode = rawSockets ? 'sV' : 'sT';
  const r = await scan(source, mode);
  return { verdict: verdict(r.stdout), out: `${r.stdout}\n${r.stderr}`, mode };
}

const refusals = (client: string, code: string) =>
  gw.logs.filter((l) => l.msg === 'policy refused' && l.client === client && l.reason === code).length;

describe('nmap smtp-open-relay', { concurrency: true }, () => {
  it('finds no open relay on Default from an outside address (127.0.0.9)', { skip: nmap ? false : 'nmap is not installed (apt-get install nmap)' }, async () => {
    const r = await run('127.0.0.9');
    assert.equal(r.verdict, "Server doesn't seem to be an open relay, all tests failed", r.out);
    // All of nmap's relay attempts reached the policy and were refused as relay (the other six
    // are syntax errors refused earlier): the scan ran to its end.
    assert.equal(refusals('127.0.0.9', 'relay-denied'), 10, r.out);
    assert.ok(gw.logs.some((l) => l.msg === 'smtp connection' && l.client === '127.0.0.9' && l.connector === 'Default'), 'nmap was served by Default');
    assert.deepEqual(await gw.stored(), { bodies: 0, jobs: 0 });
  });

  it('positive control: reports the Printers Relay connector (device 127.0.0.17) as the relay it is', { skip: nmap ? false : 'nmap is not installed (apt-get install nmap)' }, async () => {
    const r = await run('127.0.0.17');
    assert.equal(r.verdict, 'Server is an open relay (10/16 tests)', r.out);
    assert.ok(gw.logs.some((l) => l.msg === 'smtp connection' && l.client === '127.0.0.17' && l.connector === 'Printers Relay'));
  });
});
