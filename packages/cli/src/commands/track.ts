// mailgw track --message-id X | --sender S | --recipient R | --queue-id Q [--since 1h] [--json] [--local]:
// searches the message tracking log like Exchange's Get-MessageTrackingLog: the gateway-wide
// copy in Redis (the events of every listener and worker, on every machine) and this machine's
// files; --local: the files only.
import path from 'node:path';
import { formatIssue, parseDuration } from '@mailgw/config';
import { loadConfig } from '@mailgw/config/load';
import { queueRedisUrl, readTraffic, searchTracking, summaryText, type TrackingQuery, type TrackingRecord } from '@mailgw/ops';
import { trackingDir } from '@mailgw/queue';
import { openStreamRedis, readStreamLines, streamDays } from '../stream-lines.js';
import { readableAddress } from '@mailgw/mail';
import { configPaths, type PathOptions } from '../load-policy.js';

export interface TrackOptions extends PathOptions {
  readonly 'message-id'?: string | undefined;
  readonly sender?: string | undefined;
  readonly recipient?: string | undefined;
  readonly 'queue-id'?: string | undefined;
  readonly since?: string | undefined;
  readonly json?: boolean | undefined;
  readonly local?: boolean | undefined;
  /** The traffic summary of the period (pflogsumm's page) instead of the events. */
  readonly summary?: boolean | undefined;
  /** --summary: the length of the top lists. */
  readonly top?: string | undefined;
}

export interface TrackIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env?: NodeJS.ProcessEnv;
  /** Clock, for --since. */
  readonly now?: () => number;
}

/** --since: a duration back from now (1h, 2d, 00:30:00) or a date (2026-11-25, 2026-11-25T10:00Z). */
export function parseSince(text: string, now: number): Date | null {
  const d = parseDuration(text);
  if (d.ok) return new Date(now - d.value);
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : new Date(t);
}

function line(r: TrackingRecord): string {
  // Addresses as people read them: IDN domains in U-labels (the log keeps A-labels).
  const rcpts = (r.recipientAddress ?? []).map(readableAddress).join(',');
  const status = (r.recipientStatus ?? []).filter(Boolean);
  return [
    r.dateTime,
    r.eventId.padEnd(7),
    String(r.source ?? '').padEnd(11),
    String(r.internalMessageId ?? ''),
    String(r.messageId ?? ''),
    `<${readableAddress(r.senderAddress ?? '')}>`,
    `-> ${rcpts}`,
    ...(status.length ? [`[${[...new Set(status)].join(' | ')}]`] : []),
    ...(r.reference ? [`ref ${r.reference}`] : []),
  ].join('  ');
}

/** The configuration, for dataDir and Redis (route secrets are not looked up); null: its errors were said. */
function trackConfig(opts: TrackOptions, io: TrackIO): { dataDir: string; config: Extract<ReturnType<typeof loadConfig>, { ok: true }>['config'] } | null {
  const loaded = loadConfig({ ...configPaths(opts), secrets: 'unresolved' });
  if (!loaded.ok) {
    io.stderr.write(`mailgw track: the configuration has ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}:\n`);
    for (const i of loaded.errors) io.stderr.write(`  ${formatIssue(i)}\n`);
    return null;
  }
  return { dataDir: path.resolve(loaded.dataDir!), config: loaded.config };
}

export async function runTrack(opts: TrackOptions, io: TrackIO): Promise<number> {
  if (opts.summary) return runSummary(opts, io);
  if (opts.top !== undefined) {
    io.stderr.write('mailgw track: --top goes with --summary\n');
    return 2;
  }
  const query: { -readonly [K in keyof TrackingQuery]: TrackingQuery[K] } = {};
  if (opts['message-id'] !== undefined) query.messageId = opts['message-id'];
  if (opts.sender !== undefined) query.sender = opts.sender;
  if (opts.recipient !== undefined) query.recipient = opts.recipient;
  if (opts['queue-id'] !== undefined) query.queueId = opts['queue-id'];
  if (Object.keys(query).length === 0) {
    io.stderr.write('mailgw track: give --message-id, --sender, --recipient or --queue-id (and optionally --since 1h)\n');
    return 2;
  }
  if (opts.since !== undefined) {
    const since = parseSince(opts.since, (io.now ?? Date.now)());
    if (!since) {
      io.stderr.write(`mailgw track: --since "${opts.since}" is neither a duration (30m, 1h, 2d) nor a date\n`);
      return 2;
    }
    query.since = since;
  }
  const loaded = trackConfig(opts, io);
  if (!loaded) return 1;
  const dataDir = loaded.dataDir;
  const dir = trackingDir(dataDir);
  const gateway = loaded.config.gateway;
  let streamLines: string[] = [];
  let where = dir;
  const url = opts.local ? null : queueRedisUrl(io.env ?? {}, gateway, dataDir);
  if (url) {
    const days = streamDays(query.since ?? null, (io.now ?? Date.now)(), gateway.logs.messageTrackingStreamMaxAge);
    const lines = await readStreamLines({ command: 'track', url, prefix: gateway.redis.prefix, days, stderr: io.stderr });
    if (lines) {
      streamLines = lines;
      where = `${dir} or in Redis`;
    }
  }
  const found = await searchTracking(dir, query, streamLines);
  if (opts.json) for (const r of found) io.stdout.write(`${JSON.stringify(r)}\n`);
  else if (found.length === 0) io.stdout.write(`no matching events in ${where}\n`);
  else for (const r of found) io.stdout.write(`${line(r)}\n`);
  return 0;
}

async function runSummary(opts: TrackOptions, io: TrackIO): Promise<number> {
  const fail = (why: string) => {
    io.stderr.write(`mailgw track: ${why}\n`);
    return 2;
  };
  if (opts['message-id'] !== undefined || opts.sender !== undefined || opts.recipient !== undefined || opts['queue-id'] !== undefined) return fail('--summary covers all the traffic of the period: it takes no --message-id, --sender, --recipient or --queue-id');
  const top = opts.top === undefined ? 10 : /^\d{1,4}$/.test(opts.top) && Number(opts.top) > 0 ? Number(opts.top) : null;
  if (top === null) return fail(`--top "${opts.top}" is not a number from 1 to 9999`);
  const now = (io.now ?? Date.now)();
  const since = parseSince(opts.since ?? '1d', now);
  if (!since) return fail(`--since "${opts.since}" is neither a duration (30m, 1h, 2d) nor a date`);
  const loaded = trackConfig(opts, io);
  if (!loaded) return 1;
  const dataDir = loaded.dataDir;
  const g = loaded.config.gateway;
  // Redis's gateway-wide streams (every process's lines), else (--local, no Redis, Redis away) this machine's files.
  const url = opts.local ? null : queueRedisUrl(io.env ?? {}, g, dataDir);
  const redis = url ? await openStreamRedis({ command: 'track', url, instead: "summing up this machine's files only", stderr: io.stderr }) : null;
  try {
    const { summary, where } = await readTraffic({ redis, prefix: g.redis.prefix, logs: g.logs, dataDir }, since, now, top);
    io.stdout.write(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : summaryText(summary, where));
  } finally {
    redis?.disconnect();
  }
  return 0;
}
