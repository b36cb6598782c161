import { buildConfig, formatIssue } from '@mailgw/config';
import { parse } from 'yaml';
import { compilePolicy, type CompileResult, type Policy } from '../src/index.js';

export const HASH = '$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA';

export function compile(gateway: Record<string, unknown>, connectors: Array<Record<string, unknown>>, env: Record<string, string> = {}): CompileResult {
  const built = buildConfig({
    gatewayFile: 'gateway.yaml',
    gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }], ...gateway },
    connectorFiles: connectors.map((data, i) => ({ file: `connectors.d/${i}.yaml`, data })),
    readReferenced: (p) => ({ ok: false, error: 'none', file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
    env,
  });
  if (!built.ok) throw new Error(built.errors.map(formatIssue).join('\n'));
  return compilePolicy(built.config);
}

export function policy(gateway: Record<string, unknown>, connectors: Array<Record<string, unknown>>): Policy {
  const r = compile(gateway, connectors);
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.policy;
}
