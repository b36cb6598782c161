// The cost per message of DKIM signing, measured where it happens: `mailgw listen` and one
// `mailgw worker` on an embedded-style Redis, the Node load generator at 1 KB (and 100 KB),
// relayed by a printers-style anonymous relay connector (bench.test is the accepted domain the
// mail comes from, sink.test the outside domain it goes to), and the worker's CPU per message
// with signing off, with an RSA-2048 key, an Ed25519 key, and both (a rotation); and with ARC
// sealing instead (`arc`: senderAuthentication.arcSeal, every message carrying mailgw's own
// Authentication-Results as mail it authenticated on arrival does, which the bench connector is
// allowed to send). Keys are made with @mailgw/dkim in the run's temp dir. The default bench run
// keeps signing off everywhere else; this phase is `--skip dkim` to leave out.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateDkimKey, writeKeyFile } from '@mailgw/dkim';
import { startRedisServer } from '@mailgw/queue';
import { cpuMs, freePort, mailgw, startLatencySink, stopChild, waitForPort } from './procs.js';
import { percentile, runLoad } from './smtp-client.js';

export interface DkimCost {
  readonly size: number;
  readonly acceptedPerSec: number;
  readonly p99AcceptMs: number;
  /** Worker CPU per message (where signing runs), ms. */
  readonly workerCpuMs: number;
  /** Messages at the sink that carry a DKIM-Signature (0 with signing off). */
  readonly signed: number;
  /** Messages at the sink that carry an ARC-Seal (variant arc only). */
  readonly sealed: number;
  readonly lost: number;
}

export type DkimVariant = 'off' | 'rsa' | 'ed25519' | 'rsa+ed25519' | 'arc';
const VARIANTS: DkimVariant[] = ['off', 'rsa', 'ed25519', 'rsa+ed25519', 'arc'];
/** What the listener puts on mail it authenticated (sender authentication is off in the bench: the load sends it). */
const OUR_RESULTS = 'Authentication-Results: bench.mailgw.test; spf=pass smtp.mailfrom=bench.test; dmarc=pass header.from=bench.test\r\n';

export async function measureDkimCost(o: { messages: number; sessions: number; sizes: readonly number[]; from: string; to: string; log: (s: string) => void }): Promise<Record<string, DkimCost>> {
  const out: Record<string, DkimCost> = {};
  for (const size of o.sizes) {
    for (const v of VARIANTS) {
      const r = await oneVariant(o, v, size);
      out[`${v}@${size}`] = r;
      o.log(`dkim ${v} ${size} B: accepted ${r.acceptedPerSec.toFixed(0)}/s, worker CPU ${r.workerCpuMs.toFixed(3)} ms/message, signed ${r.signed}, sealed ${r.sealed}, lost ${r.lost}`);
    }
  }
  return out;
}

async function oneVariant(o: { messages: number; sessions: number; from: string; to: string }, v: DkimVariant, size: number): Promise<DkimCost> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-bench-dkim-'));
  const redis = await startRedisServer({ dataDir: path.join(dir, 'redis'), unixSocket: path.join(dir, 'redis.sock') });
  const sink = await startLatencySink();
  const port = await freePort();
  mkdirSync(path.join(dir, 'connectors.d'));
  const configPath = path.join(dir, 'gateway.yaml');
  const from = o.from.slice(o.from.indexOf('@') + 1);
  const selectors: string[] = [];
  const arc = v === 'arc';
  if (arc) writeKeyFile(path.join(dir, 'var/dkim', from, 'arc.key'), generateDkimKey('rsa'));
  for (const alg of v === 'off' || arc ? [] : v.split('+')) {
    writeKeyFile(path.join(dir, 'var/dkim', from, `${alg}.key`), generateDkimKey(alg as 'rsa' | 'ed25519'));
    selectors.push(`{ name: ${alg}, algorithm: ${alg} }`);
  }
  writeFileSync(
    configPath,
    [
      'fqdn: bench.mailgw.test',
      `dataDir: ${path.join(dir, 'var')}`,
      'logLevel: warn',
      'acceptedDomains:',
      `  - { domain: ${from}, default: true }`,
      'routes:',
      `  - { domains: ["*"], to: "smtp://127.0.0.1:${sink.port}" }`,
      'queue: { maxConnectionsPerDestination: 100 }',
      arc ? `senderAuthentication: { enabled: false, arcSeal: { domain: ${from}, selector: arc } }` : 'senderAuthentication: { enabled: false }',
      ...(selectors.length ? ['dkim:', `  domains: [{ domain: ${from}, selectors: [${selectors.join(', ')}] }]`] : []),
      '',
    ].join('\n'),
  );
  writeFileSync(
    path.join(dir, 'connectors.d/bench.yaml'),
    [
      'name: Bench relay',
      'usage: Custom',
      `bindings: ["127.0.0.1:${port}"]`,
      'remoteIPRanges: [127.0.0.1]',
      'permissionGroups: [AnonymousUsers]',
      // arc: the load's Authentication-Results of bench.mailgw.test must get past the header firewall.
      `permissions: [{ user: NT AUTHORITY\\ANONYMOUS LOGON, extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient${arc ? ', ms-Exch-Accept-Headers-Organization' : ''}] }]`,
      'maxInboundConnection: unlimited',
      'maxInboundConnectionPerSource: unlimited',
      'maxInboundConnectionPercentagePerSource: 100',
      'messageRateLimit: unlimited',
      'tarpitInterval: 0',
      '',
    ].join('\n'),
  );
  const env = { REDIS_URL: redis.socketUrl ?? redis.url };
  const listener = mailgw(['listen', '--config', configPath], env);
  const worker = mailgw(['worker', '--config', configPath], env);
  try {
    await waitForPort(port);
    const extraHeader = arc ? OUR_RESULTS : '';
    const warm = await runLoad({ host: '127.0.0.1', port, from: o.from, to: o.to, messages: Math.min(300, o.messages), sessions: o.sessions, size, extraHeader });
    await sink.waitFor(warm.ok, 120_000);
    const before = sink.count();
    const signedBefore = sink.signed();
    const sealedBefore = sink.sealed();
    const cpu0 = cpuMs(worker.pid);
    const load = await runLoad({ host: '127.0.0.1', port, from: o.from, to: o.to, messages: o.messages, sessions: o.sessions, size, extraHeader });
    await sink.waitFor(before + load.ok, 120_000);
    const cpu1 = cpuMs(worker.pid);
    return {
      size,
      acceptedPerSec: load.ok / load.seconds,
      p99AcceptMs: percentile(load.latencies, 99),
      workerCpuMs: (cpu1 - cpu0) / Math.max(1, load.ok),
      signed: sink.signed() - signedBefore,
      sealed: sink.sealed() - sealedBefore,
      lost: before + load.ok - sink.count(),
    };
  } finally {
    await Promise.all([stopChild(listener), stopChild(worker)]);
    await sink.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
