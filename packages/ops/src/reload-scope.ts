// Which gateway.yaml changes a live reload cannot apply: the Redis the queue lives in, where
// state is kept, the HTTP server itself, and the worker settings fixed when a BullMQ Worker or
// the connection pool starts. Everything else (connectors, accepted domains, users, lists,
// routes, retry and expiry timing, logLevel) applies at once. Pure.
import type { GatewayConfig } from '@mailgw/config';

const RESTART_QUEUE_KEYS = [
  'workerConcurrency',
  'workerMessageBytes',
  'maxConnectionsPerDestination',
  'lockDuration',
  'stalledInterval',
  'maxStalledCount',
  'drainTimeout',
  'completedJobRetention',
  'completedJobMaxCount',
  'failedJobRetention',
  'failedJobMaxCount',
  'shards',
] as const;

const httpText = (g: GatewayConfig) => (g.http ? JSON.stringify([g.http.listen.text, g.http.token ?? null, g.http.allowWrite]) : 'off');

/** Keys whose new value takes effect only after a restart. */
export function restartOnlyChanges(before: GatewayConfig, after: GatewayConfig): string[] {
  const out: string[] = [];
  if (before.redis.url !== after.redis.url) out.push('redis.url');
  if (String(before.redis.sentinels) !== String(after.redis.sentinels) || before.redis.name !== after.redis.name) out.push('redis.sentinels');
  if (String(before.redis.cluster) !== String(after.redis.cluster)) out.push('redis.cluster');
  if (before.redis.prefix !== after.redis.prefix) out.push('redis.prefix');
  if (before.redis.waitForReplicas !== after.redis.waitForReplicas || before.redis.replicaTimeout !== after.redis.replicaTimeout) out.push('redis.waitForReplicas');
  if (before.dataDir !== after.dataDir) out.push('dataDir');
  if (httpText(before) !== httpText(after)) out.push('http');
  if (JSON.stringify(before.processes) !== JSON.stringify(after.processes)) out.push('processes');
  if (before.redis.durability !== after.redis.durability) out.push('redis.durability');
  if (before.redis.maxMemory !== after.redis.maxMemory) out.push('redis.maxMemory');
  // The filters and the DNS resolver are built when the listeners start.
  // …and the TLS-RPT counters and daily run when the workers start.
  for (const k of ['attachmentFilter', 'rspamd', 'milters', 'dns', 'directory', 'tlsReports', 'quarantineMailbox'] as const) if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) out.push(k);
  if (before.senderAuthentication.enabled !== after.senderAuthentication.enabled) out.push('senderAuthentication.enabled');
  for (const k of RESTART_QUEUE_KEYS) if (before.queue[k] !== after.queue[k]) out.push(`queue.${k}`);
  return out;
}
