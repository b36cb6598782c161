// mailgw agent-log [--agent A] [--action A] [--ip IP|RANGE] [--sender S] [--recipient R]
// [--reason R] [--since 1d] [--json] [--top ips|senders|recipients|reasons|agents] [--limit N]
// [--local]: the anti-spam agent log (Exchange's Get-AgentLog) of every machine (the streams in
// Redis) and this one's files, filtered, or summarised as the Exchange anti-spam report scripts
// do (top blocked IPs, senders, recipients, reasons).
import { parseIpRange, parseIp, rangeContains } from '@mailgw/config';
import { agentLogDir, parseAgentLogLine, queueRedisUrl, readAgentLog, type AgentLogEntry } from '@mailgw/ops';
import { agentLogStreamKey, connectRedis, readTrackingStreams, trackingDay } from '@mailgw/queue';
import { cannotReachRedis } from '../redis-messages.js';
import { readStreamLines, streamDays } from '../stream-lines.js';
import { loadPolicy, type PathOptions } from '../load-policy.js';
import { parseSince } from './track.js';

export interface AgentLogOptions extends PathOptions {
  agent?: string | undefined;
  action?: string | undefined;
  ip?: string | undefined;
  sender?: string | undefined;
  recipient?: string | undefined;
  reason?: string | undefined;
  since?: string | undefined;
  json?: boolean | undefined;
  top?: string | undefined;
  limit?: string | undefined;
  /** This machine's files only, not the gateway-wide streams in Redis. */
  local?: boolean | undefined;
  /** Print the matching lines of every machine as they come (the streams in Redis), until stopped. */
  follow?: boolean | undefined;
}

export interface AgentLogIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env?: NodeJS.ProcessEnv;
  readonly now?: () => number;
  /** Ends --follow (SIGINT from the command line; tests). */
  readonly stop?: AbortSignal;
}

const TOPS = ['ips', 'senders', 'recipients', 'reasons', 'agents'] as const;
type Top = (typeof TOPS)[number];

/** What a --top report counts of one entry (several recipients count each). */
function keysOf(e: AgentLogEntry, top: Top): string[] {
  switch (top) {
    case 'ips':
      return [e.ipAddress];
    case 'senders':
      return [e.p1FromAddress || '<>'];
    case 'recipients':
      return [...e.recipients];
    case 'reasons':
      return [`${e.agent}: ${e.reason}`];
    case 'agents':
      return [`${e.agent} ${e.action}`];
  }
}

export async function runAgentLog(opts: AgentLogOptions, io: AgentLogIO): Promise<number> {
  const usage = (why: string) => {
    io.stderr.write(`mailgw agent-log: ${why}\n`);
    return 2;
  };
  const now = (io.now ?? Date.now)();
  const since = parseSince(opts.since ?? '1d', now);
  if (!since) return usage(`--since "${opts.since}" is neither a duration (30m, 1h, 2d) nor a date`);
  const ip = opts.ip === undefined ? null : parseIpRange(opts.ip);
  if (ip && !ip.ok) return usage(`--ip "${opts.ip}" is not an address or range: ${ip.error}`);
  if (opts.top !== undefined && !(TOPS as readonly string[]).includes(opts.top)) return usage(`--top "${opts.top}" is not one of ${TOPS.join(', ')}`);
  const limit = opts.limit === undefined ? (opts.top ? 10 : Infinity) : Number(opts.limit);
  if (opts.limit !== undefined && (!Number.isInteger(limit) || limit < 1)) return usage(`--limit "${opts.limit}" is not a positive whole number`);
  const loaded = loadPolicy(opts, io.env ?? process.env);
  if (!loaded.ok) {
    io.stderr.write(`mailgw agent-log: the configuration has errors:\n${loaded.errors.map((e) => `  ${e.file}: ${e.path}: ${e.message}`).join('\n')}\n`);
    return 1;
  }
  const lower = (s: string | undefined) => s?.toLowerCase();
  const agent = lower(opts.agent);
  const action = lower(opts.action);
  const sender = lower(opts.sender);
  const recipient = lower(opts.recipient);
  const reason = lower(opts.reason);
  const matches = (e: AgentLogEntry): boolean => {
    if (agent && !e.agent.toLowerCase().includes(agent)) return false;
    if (action && e.action.toLowerCase() !== action) return false;
    if (reason && !e.reason.toLowerCase().includes(reason)) return false;
    if (sender && e.p1FromAddress.toLowerCase() !== sender) return false;
    if (recipient && !e.recipients.some((r) => r.toLowerCase() === recipient)) return false;
    if (ip && ip.ok) {
      // A sender reputation block names an address or a /64: matched when it is inside the range asked.
      const a = parseIp(e.ipAddress.replace(/\/\d+$/, ''));
      if (!a.ok || !rangeContains(ip.value, a.value)) return false;
    }
    return true;
  };
  // Every machine's lines from the gateway-wide streams in Redis (unless --local), with this one's files.
  const g = loaded.policy.config.gateway;
  const url = opts.local ? null : queueRedisUrl(io.env ?? process.env, g, loaded.dataDir);
  if (opts.follow) {
    if (opts.top || opts.json || opts.local) return usage('--follow goes without --top, --json and --local');
    if (!url || g.logs.agentLogStreamMaxLength <= 0) return usage('--follow reads the agent log streams in Redis: set REDIS_URL or redis.url (and keep logs.agentLogStreamMaxLength above 0)');
    // With --since, the lines from then on first (as tail -n), else only new ones.
    return follow(url, g.redis.prefix, matches, io, opts.since === undefined ? null : since);
  }
  const streamLines = url && g.logs.agentLogStreamMaxLength > 0 ? ((await readStreamLines({ command: 'agent-log', url, prefix: g.redis.prefix, days: streamDays(since, now, g.logs.agentLogStreamMaxAge), key: agentLogStreamKey, stderr: io.stderr })) ?? []) : [];
  const counts = new Map<string, number>();
  const lines: AgentLogEntry[] = [];
  let seen = 0;
  for await (const e of readAgentLog(agentLogDir(loaded.dataDir), since, streamLines)) {
    if (!matches(e)) continue;
    seen++;
    if (opts.top) for (const k of keysOf(e, opts.top as Top)) counts.set(k, (counts.get(k) ?? 0) + 1);
    else {
      lines.push(e);
      if (lines.length > limit) lines.shift(); // the latest `limit`
    }
  }
  if (opts.top) {
    const ranked = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, limit);
    if (opts.json) io.stdout.write(`${JSON.stringify(ranked.map(([key, count]) => ({ key, count })), null, 2)}\n`);
    else if (ranked.length === 0) io.stdout.write(`No agent log entries since ${since.toISOString()}.\n`);
    else {
      const w = Math.max(...ranked.map(([, n]) => String(n).length));
      for (const [key, n] of ranked) io.stdout.write(`${String(n).padStart(w)}  ${key}\n`);
    }
    return 0;
  }
  // Several listener processes append to one file: their lines may interleave by a moment.
  lines.sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  if (opts.json) {
    io.stdout.write(`${JSON.stringify(lines, null, 2)}\n`);
    return 0;
  }
  if (seen === 0) {
    io.stdout.write(`No agent log entries since ${since.toISOString()}.\n`);
    return 0;
  }
  for (const e of lines) io.stdout.write(shown(e));
  return 0;
}

function shown(e: AgentLogEntry): string {
  const to = e.recipients.length ? ` -> ${e.recipients.join(',')}` : '';
  return `${e.timestamp}  ${e.ipAddress}  ${e.agent}  ${e.action}  ${e.reason}  <${e.p1FromAddress}>${to}${e.smtpResponse ? `  [${e.smtpResponse}]` : ''}\n    ${e.reasonData}\n`;
}

/** --follow: the new lines of today's stream (the next day's after midnight), as they come. */
async function follow(url: string, prefix: string, matches: (e: AgentLogEntry) => boolean, io: AgentLogIO, since: Date | null): Promise<number> {
  const redis = connectRedis(url, { lazyConnect: true, maxRetriesPerRequest: null, connectTimeout: 3000 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    io.stderr.write(`mailgw agent-log: ${cannotReachRedis(url, err)}\n`);
    return 1;
  }
  const stopped = new Promise<void>((resolve) => {
    if (io.stop?.aborted) resolve();
    io.stop?.addEventListener('abort', () => resolve(), { once: true });
  });
  const from = since ? since.toISOString() : '';
  const print = (fields: string[]) => {
    const i = fields.indexOf('e');
    const e = i >= 0 ? parseAgentLogLine(fields[i + 1] ?? '') : null;
    if (e && e.timestamp >= from && matches(e)) io.stdout.write(shown(e));
  };
  let day = trackingDay(new Date((io.now ?? Date.now)()));
  // Stream ids are milliseconds: --since starts there; the days before today are read first.
  let last = since ? `${since.getTime()}-0` : '$';
  try {
    if (since) {
      for (const d of streamDays(since, (io.now ?? Date.now)(), Number.MAX_SAFE_INTEGER).filter((x) => x < day)) {
        const lines = await readTrackingStreams(redis, prefix, [d], agentLogStreamKey);
        for (const line of lines) print(['e', line]);
      }
    }
    while (!io.stop?.aborted) {
      const today = trackingDay(new Date((io.now ?? Date.now)()));
      if (today !== day) [day, last] = [today, '0'];
      // Blocks up to a second, so a new day and the stop are seen.
      // A read cut short by the stop (the connection closes) is no error.
      const read = (redis.xread('COUNT', 500, 'BLOCK', 1000, 'STREAMS', agentLogStreamKey(prefix, day), last) as Promise<Array<[string, Array<[string, string[]]>]> | null>).catch(() => null);
      const got = await Promise.race([read, stopped.then(() => null)]);
      for (const [, entries] of got ?? []) {
        for (const [id, fields] of entries) {
          last = id;
          print(fields);
        }
      }
    }
    return 0;
  } finally {
    redis.disconnect();
  }
}
