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

/** Asserts the build fails with an issue at file+path whose message matches. */
export function expectError(r: BuildResult, file: string, keyPath: string, message: RegExp): void {
  assert.equal(r.ok, false, 'configuration should be invalid');
  if (r.ok) return;
  const hit = r.errors.find((e) => e.file === file && e.path === keyPath && message.test(e.message));
  assert.ok(hit, `no error ${file}: ${keyPath}: ${message}; got:\n${r.errors.map(formatIssue).join('\n')}`);
}
