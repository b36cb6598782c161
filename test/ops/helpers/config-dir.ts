// A gateway configuration on disk for ops tests: gateway.yaml and connectors.d/ in a temporary
// directory, rewritten at will (live reload tests edit them under a running gateway).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withoutRealDns } from '../../harness/dns-server.js';

export interface ConfigDir {
  readonly dir: string;
  readonly gatewayFile: string;
  readonly connectorsDir: string;
  writeGateway(yaml: string): void;
  writeConnector(file: string, yaml: string): void;
  removeConnector(file: string): void;
  remove(): void;
}

export function makeConfigDir(prefix = 'mailgw-ops-'): ConfigDir {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const connectorsDir = path.join(dir, 'connectors.d');
  mkdirSync(connectorsDir);
  const gatewayFile = path.join(dir, 'gateway.yaml');
  return {
    dir,
    gatewayFile,
    connectorsDir,
    writeGateway: (yaml) => writeFileSync(gatewayFile, withoutRealDns(yaml)),
    writeConnector: (file, yaml) => writeFileSync(path.join(connectorsDir, file), yaml),
    removeConnector: (file) => rmSync(path.join(connectorsDir, file), { force: true }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Lines of a YAML list item per accepted domain, for gateway.yaml. */
export const ACCEPTED = ['acceptedDomains:', '  - { domain: contoso.test, default: true }', '  - { domain: fabrikam.test, type: InternalRelay }', '  - { domain: northwind.test, type: InternalRelay }'].join('\n');
