// Shared by the golden policy test and the listener's replay of the same scenarios over SMTP.
import { buildConfig, formatIssue } from '@mailgw/config';
import { compilePolicy, type Policy, type Scenario } from '@mailgw/policy';
import { parse } from 'yaml';

export interface GoldenScenario extends Scenario {
  name: string;
  expect: {
    connector?: string | null;
    connect?: string;
    admission?: string;
    helo?: string;
    starttls?: string;
    auth?: string;
    mail?: string;
    rcpt?: string[];
    data?: string;
    /** The reply after the message; a "250 2.6.0" accept is compared by its codes (the ids differ). */
    message?: string;
    /** Whether the anti-spam filters judge the message (false: the session holds ms-Exch-Bypass-Anti-Spam). */
    antiSpam?: boolean;
    /** Names of the scenario's header fields (data.headers) the header firewall removes. */
    firewalled?: string[];
  };
}

export interface GoldenFile {
  title: string;
  gateway: Record<string, unknown>;
  connectors: Record<string, Record<string, unknown>>;
  scenarios: GoldenScenario[];
}

/** Validates and compiles a golden file's config; throws with every issue if it is invalid. */
export function loadGolden(g: GoldenFile, name: string, override?: (connector: Record<string, unknown>) => Record<string, unknown>): Policy {
  const built = buildConfig({
    gatewayFile: `${name}#gateway`,
    gatewayData: g.gateway,
    connectorFiles: Object.entries(g.connectors).map(([file, data]) => ({ file: `${name}#${file}`, data: override ? override(data) : data })),
    readReferenced: (p) => ({ ok: false, error: 'no files in golden tests', file: p }),
    parseYaml: parse,
    fallbackFqdn: 'mailgw.test',
  });
  if (!built.ok) throw new Error(built.errors.map(formatIssue).join('\n'));
  const compiled = compilePolicy(built.config);
  if (!compiled.ok) throw new Error(compiled.errors.map(formatIssue).join('\n'));
  return compiled.policy;
}
