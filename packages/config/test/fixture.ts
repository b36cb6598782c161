// Building a configuration from objects, as the loader does from files, for the config tests.
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { formatIssue } from '../src/issues.js';
import { buildConfig, type BuildResult } from '../src/validate.js';

export const GATEWAY = { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }] };
export const DEFAULT = { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] };

/** gateway.yaml's data and connectors.d's files (by file name). */
export function buildFrom(gateway: unknown, connectors: Record<string, unknown>): BuildResult {
  return buildConfig({
    gatewayFile: 'gateway.yaml',
    gatewayData: gateway,
    connectorFiles: Object.entries(connectors).map(([file, data]) => ({ file: `connectors.d/${file}`, data })),
    readReferenced: (p) => ({ ok: false, error: `cannot read ${p}: ENOENT`, file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
  });
}

/**
 * gateway.yaml's data (with the Default connector) where gateway.yaml refers to `files` (by the
 * name given), with an environment and a secrets mode, as the loader gives them.
 */
export function buildGateway(gateway: unknown, files: Record<string, string> = {}, env: Record<string, string> = {}, secrets: 'resolve' | 'unresolved' = 'resolve'): BuildResult {
  // Route passwords stay unresolved in 'unresolved' mode: callers with routes must not read them.
  return buildConfig({
    secrets,
    gatewayFile: 'gateway.yaml',
    gatewayData: gateway,
    connectorFiles: [{ file: 'connectors.d/default.yaml', data: DEFAULT }],
    readReferenced: (p) => (p in files ? { ok: true, text: files[p]!, file: p } : { ok: false, error: `cannot read ${p}: ENOENT`, file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
    env,
  }) as BuildResult;
}

/** Asserts the build fails with an issue at file+path whose message matches. */
export function expectError(r: BuildResult, file: string, keyPath: string, message: RegExp): void {
  assert.equal(r.ok, false, 'configuration should be invalid');
  if (r.ok) return;
  const hit = r.errors.find((e) => e.file === file && e.path === keyPath && message.test(e.message));
  assert.ok(hit, `no error ${file}: ${keyPath}: ${message}; got:\n${r.errors.map(formatIssue).join('\n')}`);
}
