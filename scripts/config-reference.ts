// Prints the configuration reference tables for README.md from the zod schemas, so the docs
// list every key with the default the code really uses:
//   node --conditions=mailgw-src --import tsx scripts/config-reference.ts
import { connectorShape, directoryShape, formatDuration, formatSize, gatewayShape, sendConnectorShape } from '@mailgw/config';
import type { z } from 'zod';

const SIZES = new Set(['maxMessageSize', 'maxHeaderSize']);
const DURATIONS = new Set(['connectionTimeout', 'connectionInactivityTimeout', 'tarpitInterval', 'greetingDelay', 'cacheTtl', 'negativeCacheTtl', 'timeout', 'idleTimeout']);

function defaultOf(key: string, schema: z.ZodType): string {
  const def = (schema as unknown as { _zod: { def: { type: string; defaultValue?: unknown } } })._zod.def;
  if (def.type !== 'default') return def.type === 'optional' ? '(none)' : '**required**';
  const v = def.defaultValue;
  if (v === null) return 'unlimited';
  if (typeof v === 'number' && SIZES.has(key)) return formatSize(v);
  if (typeof v === 'number' && DURATIONS.has(key)) return v === 0 ? '0' : formatDuration(v);
  if (Array.isArray(v) && v.length === 2 && key === 'remoteIPRanges') return 'all IPv4 and IPv6';
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return 'see below';
  return `\`${JSON.stringify(v)}\``;
}

function table(shape: Record<string, z.ZodType>): string {
  const rows = Object.entries(shape).map(([k, s]) => `| \`${k}\` | ${defaultOf(k, s)} | ${(s.description ?? '').replace(/\|/g, '\\|')} |`);
  return ['| key | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

process.stdout.write(`### Connector files (connectors.d/*.yaml)\n\n${table(connectorShape as unknown as Record<string, z.ZodType>)}\n\n`);
process.stdout.write(`### gateway.yaml\n\n${table(gatewayShape as unknown as Record<string, z.ZodType>)}\n\n`);
process.stdout.write(`### Send connector files (send-connectors.d/*.yaml)\n\n${table(sendConnectorShape as unknown as Record<string, z.ZodType>)}\n`);
process.stdout.write(`\n#### gateway.yaml \`directory\` (in "The directory")\n\n${table(directoryShape as unknown as Record<string, z.ZodType>)}\n`);
