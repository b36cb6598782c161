// Loads files and compiles the policy, reporting every problem at once, never a stack trace.
import { formatIssue, type ConfigIssue, type Env, type GatewayConfig } from '@mailgw/config';
import { loadArcSealKey, loadDkimKeys } from '@mailgw/dkim';
import { loadConfig } from '@mailgw/config/load';
import path from 'node:path';
import { planSockets, readPartnerCAs, tlsFileIssues } from '@mailgw/listener';
import { readDomainSecureSending } from '@mailgw/worker';
import { compilePolicy, type Policy } from '@mailgw/policy';

export interface PathOptions {
  config: string;
  connectors?: string | undefined;
  /** --send-connectors DIR (default: send-connectors.d beside the config, if it exists). */
  'send-connectors'?: string | undefined;
}

/** The file locations loadConfig takes, from the command line's --config, --connectors, --send-connectors. */
export function configPaths(opts: PathOptions): { configPath: string; connectorsDir?: string; sendConnectorsDir?: string } {
  return { configPath: opts.config, ...(opts.connectors ? { connectorsDir: opts.connectors } : {}), ...(opts['send-connectors'] ? { sendConnectorsDir: opts['send-connectors'] } : {}) };
}

export type Loaded = { ok: true; policy: Policy; warnings: ConfigIssue[]; dataDir: string; baseDir: string } | { ok: false; errors: ConfigIssue[]; warnings: ConfigIssue[] };

/** `env` supplies routes' auth.passEnv: an unset variable is an error, as every other. */
export function loadPolicy(opts: PathOptions, env: Env = process.env): Loaded {
  const loaded = loadConfig({ ...configPaths(opts), env });
  if (!loaded.ok) return loaded;
  const keys = signingKeyIssues(loaded.config.gateway, opts.config, loaded.dataDir!);
  if (keys.length > 0) return { ok: false, errors: keys, warnings: loaded.warnings };
  const compiled = compilePolicy(loaded.config);
  const warnings = [...loaded.warnings, ...compiled.warnings];
  if (!compiled.ok) return { ok: false, errors: compiled.errors, warnings };
  // Connectors that cannot share a socket are a configuration error, found before listening.
  const plan = planSockets(compiled.policy.connectors);
  if (!plan.ok) return { ok: false, errors: plan.errors, warnings };
  // The connectors' certificate files, read as the listener will read them: found here, a bad
  // one stops `mailgw check`, a start and a reload alike, naming the file and the key.
  const tls = tlsFileIssues(compiled.policy.connectors, loaded.baseDir);
  warnings.push(...tls.warnings);
  const partnerCAs = readPartnerCAs(loaded.config.gateway.domainSecureCAFile, loaded.baseDir);
  if (!partnerCAs.ok) tls.errors.push({ file: loaded.config.gatewayFile, path: 'domainSecureCAFile', message: partnerCAs.message });
  const sending = readDomainSecureSending(loaded.config.gateway, loaded.baseDir);
  if (!sending.ok) tls.errors.push({ file: loaded.config.gatewayFile, path: sending.key, message: sending.message });
  if (tls.errors.length > 0) return { ok: false, errors: tls.errors, warnings };
  return { ok: true, policy: compiled.policy, warnings, dataDir: loaded.dataDir!, baseDir: loaded.baseDir };
}

/** DKIM and ARC sealing key files that are missing, unreadable, too open or of the wrong type: configuration errors like any other. */
export function signingKeyIssues(gateway: Pick<GatewayConfig, 'dkim' | 'acceptedDomains' | 'senderAuthentication'>, configFile: string, dataDir: string): ConfigIssue[] {
  const where = { configFile, baseDir: path.dirname(path.resolve(configFile)), dataDir };
  const out: ConfigIssue[] = [];
  if (gateway.dkim) {
    const r = loadDkimKeys(gateway.dkim, gateway.acceptedDomains.map((d) => d.domain), where);
    if (!r.ok) out.push(...r.errors);
  }
  // The ARC sealing key is read the same way (and made by the same `mailgw dkim keygen`).
  const seal = gateway.senderAuthentication.arcSeal;
  if (seal) {
    const r = loadArcSealKey(seal, where);
    if (!r.ok) out.push(r.error);
  }
  return out;
}

export function printIssues(out: NodeJS.WritableStream, title: string, issues: readonly ConfigIssue[]): void {
  if (issues.length === 0) return;
  out.write(`${title}\n`);
  for (const i of issues) out.write(`  ${formatIssue(i)}\n`);
}
