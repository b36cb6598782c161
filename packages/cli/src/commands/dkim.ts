// mailgw dkim keygen <domain> [--selector S] [--algorithm rsa|ed25519]: a new private key under
// dataDir (0600) and the exact TXT record to publish. mailgw dkim check <domain> [--selector S]:
// looks each selector's record up through the gateway's resolver (dns.servers, dns.timeout) and
// says whether it is the public half of the key. The ARC sealing key (senderAuthentication.arcSeal)
// is made, published and checked the same way.
import path from 'node:path';
import { formatIssue, selectorKeyPath, normaliseDomain, type GatewayConfig, type RouteSecret } from '@mailgw/config';
import { loadConfig } from '@mailgw/config/load';
import { nodeUpstream } from '@mailgw/antispam';
import { checkPublishedRecords, generateDkimKey, readKeyFile, recordName, recordValue, writeKeyFile, zoneLine, type DkimAlgorithm } from '@mailgw/dkim';
import type { PathOptions } from '../load-policy.js';

export interface DkimOptions extends PathOptions {
  selector?: string | undefined;
  algorithm?: string | undefined;
}

export interface DkimIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** TXT lookup (records, each as its strings); default: node:dns with gateway.yaml's dns.servers. */
  readonly lookupTxt?: (name: string) => Promise<string[][]>;
}

const SELECTOR_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

interface Target {
  selector: string;
  algorithm: DkimAlgorithm;
  file: string;
}

/** The selectors of `domain` to act on: the one given on the command line, or those in gateway.yaml's dkim and its ARC sealing key (senderAuthentication.arcSeal, always RSA). */
function targets(g: GatewayConfig<RouteSecret>, domain: string, dataDir: string, configFile: string, opts: DkimOptions): Target[] {
  const seal = g.senderAuthentication.arcSeal;
  const signing = g.dkim?.domains.find((d) => d.domain === domain)?.selectors ?? [];
  // One key may both sign and seal (an RSA selector of dkim named in arcSeal): listed once.
  const sealing = seal && seal.domain === domain && !signing.some((x) => x.name === seal.selector) ? [{ name: seal.selector, algorithm: 'rsa' as const, keyFile: seal.keyFile }] : [];
  const configured = [...signing, ...sealing];
  const file = (s: { name: string; keyFile?: string | undefined }) => selectorKeyPath(domain, s.name, s.keyFile, path.dirname(path.resolve(configFile)), dataDir);
  if (opts.selector !== undefined) {
    const s = opts.selector.toLowerCase();
    const c = configured.find((x) => x.name === s);
    const given = opts.algorithm?.toLowerCase();
    const algorithm: DkimAlgorithm = given === 'rsa' || given === 'ed25519' ? given : (c?.algorithm ?? 'rsa');
    return [{ selector: s, algorithm, file: file(c ?? { name: s }) }];
  }
  return configured.map((c) => ({ selector: c.name, algorithm: c.algorithm, file: file(c) }));
}

export async function runDkim(sub: string | undefined, args: readonly string[], opts: DkimOptions, io: DkimIO): Promise<number> {
  const usage = 'usage: mailgw dkim keygen <domain> [--selector S] [--algorithm rsa|ed25519] | mailgw dkim check <domain> [--selector S]';
  if ((sub !== 'keygen' && sub !== 'check') || args.length !== 1) {
    io.stderr.write(`mailgw dkim: ${usage}\n`);
    return 2;
  }
  const d = normaliseDomain(args[0]!);
  if (!d.ok || d.value.startsWith('[')) {
    io.stderr.write(`mailgw dkim: "${args[0]}" is not a domain name\n`);
    return 2;
  }
  const domain = d.value;
  if (opts.algorithm !== undefined && !['rsa', 'ed25519'].includes(opts.algorithm.toLowerCase())) {
    io.stderr.write(`mailgw dkim: --algorithm must be rsa or ed25519, not "${opts.algorithm}"\n`);
    return 2;
  }
  if (opts.selector !== undefined && !SELECTOR_RE.test(opts.selector.toLowerCase())) {
    io.stderr.write(`mailgw dkim: --selector must be a DNS label (letters, digits, hyphens), not "${opts.selector}"\n`);
    return 2;
  }
  const loaded = loadConfig({ configPath: opts.config, ...(opts.connectors ? { connectorsDir: opts.connectors } : {}), secrets: 'unresolved' });
  if (!loaded.ok) {
    io.stderr.write(`mailgw: the configuration has ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}.\n`);
    for (const i of loaded.errors) io.stderr.write(`  ${formatIssue(i)}\n`);
    return 1;
  }
  const g = loaded.config.gateway;
  const dataDir = loaded.dataDir!;
  return sub === 'keygen' ? keygen(g, domain, dataDir, opts, io) : check(g, domain, dataDir, opts, io);
}

function keygen(g: GatewayConfig<RouteSecret>, domain: string, dataDir: string, opts: DkimOptions, io: DkimIO): number {
  const now = new Date();
  const selector = opts.selector ?? `s${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  const [t] = targets(g, domain, dataDir, opts.config, { ...opts, selector });
  const configured = g.dkim?.domains.find((x) => x.domain === domain)?.selectors.find((x) => x.name === t!.selector);
  if (configured && opts.algorithm !== undefined && configured.algorithm !== t!.algorithm) {
    io.stderr.write(`mailgw dkim keygen: gateway.yaml lists selector ${t!.selector} of ${domain} with algorithm ${configured.algorithm}, not ${t!.algorithm}; change one of them\n`);
    return 2;
  }
  const key = generateDkimKey(t!.algorithm);
  try {
    writeKeyFile(t!.file, key);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    io.stderr.write(code === 'EEXIST' ? `mailgw dkim keygen: ${t!.file} already exists; keys are never overwritten: rotate with a new --selector\n` : `mailgw dkim keygen: cannot write ${t!.file}: ${code ?? (e as Error).message}\n`);
    return 1;
  }
  io.stdout.write(
    `Wrote the ${t!.algorithm === 'rsa' ? 'RSA-2048' : 'Ed25519'} private key ${t!.file} (mode 0600).\n\n` +
      `Publish this TXT record in the DNS zone of ${domain}:\n\n${zoneLine(domain, t!.selector, key, t!.algorithm)}\n\n` +
      `name:  ${recordName(domain, t!.selector)}\nvalue: ${recordValue(key, t!.algorithm)}\n\n` +
      (configured
        ? `gateway.yaml already lists selector ${t!.selector} for ${domain}.\n`
        : `Then add it to gateway.yaml and check it with \`mailgw dkim check ${domain}\`:\n\ndkim:\n  domains:\n    - domain: ${domain}\n      selectors:\n        - { name: ${t!.selector}, algorithm: ${t!.algorithm} }\n`),
  );
  return 0;
}

async function check(g: GatewayConfig<RouteSecret>, domain: string, dataDir: string, opts: DkimOptions, io: DkimIO): Promise<number> {
  const list = targets(g, domain, dataDir, opts.config, opts);
  if (list.length === 0) {
    io.stderr.write(`mailgw dkim check: gateway.yaml's dkim lists no selector for ${domain}; name one with --selector\n`);
    return 2;
  }
  const upstream = nodeUpstream({ servers: g.dns.servers, timeoutMs: g.dns.timeout });
  const lookupTxt = io.lookupTxt ?? (async (name: string) => (await upstream.query(name, 'TXT')).records);
  let bad = 0;
  for (const t of list) {
    const name = recordName(domain, t.selector);
    const key = readKeyFile(t.file, t.algorithm);
    if (typeof key === 'string') {
      io.stdout.write(`${name}: KEY PROBLEM: ${key}\n`);
      bad++;
      continue;
    }
    let records: string[] = [];
    try {
      records = (await lookupTxt(name)).map((r) => r.join(''));
    } catch (e) {
      // No such name or no TXT is an answer (nothing published); anything else is not.
      const code = (e as { code?: string }).code;
      if (code !== 'ENOTFOUND' && code !== 'ENODATA') {
        io.stdout.write(`${name}: LOOKUP FAILED: ${(e as Error).message} (try again)\n`);
        bad++;
        continue;
      }
    }
    const r = checkPublishedRecords(records, key, t.algorithm);
    if (r.ok) io.stdout.write(`${name}: OK, the published ${t.algorithm} key ${r.detail} ${t.file}\n`);
    else {
      io.stdout.write(`${name}: MISMATCH: ${r.problem}\n  publish: ${recordValue(key, t.algorithm)}\n`);
      bad++;
    }
  }
  return bad === 0 ? 0 : 1;
}
