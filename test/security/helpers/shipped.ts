// The shipped configuration (gateway.yaml + connectors.d/*.yaml), read from the repository and
// moved onto ports free at run time, so the security tests attack what an admin would deploy:
// Default (anonymous, usage Internet), Printers Relay (anonymous + Accept-Any-Recipient for its
// remote range) and Client (AUTH after STARTTLS). Only ports, the relay range, timings and the
// test account change; every other key is as shipped.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { passwordHash } from '../../listener/helpers/gateway.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const SHIPPED_DEFAULT_PORT = 2525;
export const SHIPPED_CLIENT_PORT = 2587;

export interface ShippedOptions {
  /** Port that replaces 2525 (Default and Printers Relay). */
  defaultPort: number;
  /** Port that replaces 2587 (Client). */
  clientPort: number;
  /** remoteIPRanges of Printers Relay (shipped: a TEST-NET placeholder). */
  relayRanges: string[];
  /** Extra keys for every connector (e.g. tarpitInterval, timeouts). */
  connectorExtra?: Record<string, unknown>;
  /** Extra keys for gateway.yaml. */
  gatewayExtra?: Record<string, unknown>;
}

export interface ShippedConfig {
  gateway: Record<string, unknown>;
  connectors: Record<string, Record<string, unknown>>;
}

export function readShipped(): { gateway: Record<string, unknown>; connectors: Array<{ file: string; data: Record<string, unknown> }> } {
  const gateway = parse(readFileSync(path.join(root, 'gateway.yaml'), 'utf8')) as Record<string, unknown>;
  const dir = path.join(root, 'connectors.d');
  const connectors = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => ({ file, data: parse(readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown> }));
  return { gateway, connectors };
}

export async function shippedConfig(o: ShippedOptions): Promise<ShippedConfig> {
  const shipped = readShipped();
  const names = shipped.connectors.map((c) => c.data.name);
  for (const expected of ['Default', 'Printers Relay', 'Client']) {
    if (!names.includes(expected)) throw new Error(`connectors.d no longer ships a connector named "${expected}" (has ${names.join(', ')}): update test/security`);
  }
  const movePort = (b: string) => b.replace(/:2525$/, `:${o.defaultPort}`).replace(/:2587$/, `:${o.clientPort}`);
  const connectors: Record<string, Record<string, unknown>> = {};
  for (const { file, data } of shipped.connectors) {
    const c: Record<string, unknown> = { ...data, ...o.connectorExtra, bindings: (data.bindings as string[]).map(movePort) };
    if (data.name === 'Printers Relay') c.remoteIPRanges = o.relayRanges;
    connectors[file] = c;
  }
  const { dataDir: _dataDir, ...gateway } = shipped.gateway;
  return {
    gateway: {
      ...gateway,
      users: [{ name: 'alice', passwordHash: await passwordHash(), addresses: ['alice@contoso.test'] }],
      // Tests never reach real DNS: sender authentication has its own tests (test/antispam).
      senderAuthentication: { enabled: false },
      ...o.gatewayExtra,
    },
    connectors,
  };
}
