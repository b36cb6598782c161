// mailgw track --message-id X | --sender S | --recipient R | --queue-id Q [--since 1h] [--json] [--local]:
// searches the message tracking log like Exchange's Get-MessageTrackingLog: the gateway-wide
// copy in Redis (the events of every listener and worker, on every machine) and this machine's
// files; --local: the files only.
import path from 'node:path';
import { formatIssue, parseDuration } from '@mailgw/config';
import { loadConfig } from '@mailgw/config/load';
import { agentLogDir, queueRedisUrl, readAgentLog, searchTracking, trafficSummary, type AgentLogEntry, type Ranked, type TrackingQuery, type TrackingRecord, type TrafficSummary } from '@mailgw/ops';
import { agentLogStreamKey, trackingDir } from '@mailgw/queue';
import { readStreamLines, streamDays } from '../stream-lines.js';
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
  // Redis's gateway-wide streams (unless --local) and this machine's files, as the search reads them.
  const url = opts.local ? null : queueRedisUrl(io.env ?? {}, g, dataDir);
  const trackingLines = url ? ((await readStreamLines({ command: 'track', url, prefix: g.redis.prefix, days: streamDays(since, now, g.logs.messageTrackingStreamMaxAge), stderr: io.stderr })) ?? []) : [];
  const events = await searchTracking(trackingDir(dataDir), { since }, trackingLines);
  const agentLines = url && g.logs.agentLogStreamMaxLength > 0 ? ((await readStreamLines({ command: 'track', url, prefix: g.redis.prefix, days: streamDays(since, now, g.logs.agentLogStreamMaxAge), key: agentLogStreamKey, stderr: io.stderr })) ?? []) : [];
  const agent: AgentLogEntry[] = [];
  for await (const e of readAgentLog(agentLogDir(dataDir), since, agentLines)) agent.push(e);
  const summary = trafficSummary(events, agent, { since, until: new Date(now), top });
  io.stdout.write(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : summaryText(summary, url ? 'Redis and this machine\'s files' : 'this machine\'s files'));
  return 0;
}

const num = (n: number) => n.toLocaleString('en-US');

function megabytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** "SMTP 1,200, PICKUP 30" from a count record; '' when empty. */
const parts = (r: Readonly<Record<string, number>>) => Object.entries(r).map(([k, n]) => `${k} ${num(n)}`).join(', ');

/** The summary as one page of text (what cron mails to the admins). */
export function summaryText(s: TrafficSummary, where: string): string {
  const iso = (t: string) => t.replace('T', ' ').replace(/:\d\d\.\d+Z$/, 'Z');
  const out: string[] = [`Mail traffic from ${iso(s.from)} to ${iso(s.to)} (the tracking and agent logs in ${where})`, ''];
  const r = s.received;
  const rows: Array<[string, string, string]> = [
    ['received', `${num(r.messages)} message${r.messages === 1 ? '' : 's'}`, `${megabytes(r.bytes)} from ${num(r.senders)} sender${r.senders === 1 ? '' : 's'}${r.messages ? `; ${parts(r.bySource)}${Object.keys(r.byDirection).length ? `; ${parts(r.byDirection)}` : ''}` : ''}`],
    ['delivered', `${num(s.delivered.recipients)} recipient${s.delivered.recipients === 1 ? '' : 's'}`, `of ${num(s.delivered.messages)} message${s.delivered.messages === 1 ? '' : 's'}`],
    ['deferred', `${num(s.deferred.attempts)} attempt${s.deferred.attempts === 1 ? '' : 's'}`, `for ${num(s.deferred.recipients)} recipient${s.deferred.recipients === 1 ? '' : 's'} (what is still queued: mailq)`],
    ['failed', `${num(s.failed.recipients)} recipient${s.failed.recipients === 1 ? '' : 's'}`, Object.keys(s.dsns).length ? `DSNs queued: ${parts(s.dsns)}` : 'no DSN queued'],
    ['rejected', s.rejected ? `${num(s.rejected.total)} at SMTP` : '(agent log not read)', s.rejected && s.rejected.total ? parts(s.rejected.byAgent) : ''],
  ];
  if (s.poison) rows.push(['poison', `${num(s.poison)} message${s.poison === 1 ? '' : 's'}`, 'set aside: mailgw queue messages --status Poison']);
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  for (const [a, b, c] of rows) out.push(`  ${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`.trimEnd());
  if (r.messages && Object.keys(r.byConnector).length) out.push('', `Received by connector: ${parts(r.byConnector)}`);

  const cols = ['received', 'delivered', 'deferred', 'failed', 'rejected'] as const;
  out.push('', `Per ${s.step} (UTC)`, `  ${(s.step === 'hour' ? 'hour' : 'day').padEnd(16)}${cols.map((c) => c.padStart(10)).join('')}`);
  for (const b of s.buckets) {
    if (cols.every((c) => b[c] === 0)) continue;
    out.push(`  ${(s.step === 'hour' ? b.at.slice(0, 13).replace('T', ' ') + ':00' : b.at.slice(0, 10)).padEnd(16)}${cols.map((c) => num(b[c]).padStart(10)).join('')}`);
  }
  const list = (title: string, items: readonly Ranked[], bytes = false) => {
    out.push('', title);
    if (items.length === 0) {
      out.push('  (none)');
      return;
    }
    const w = Math.max(...items.map((i) => num(i.count).length));
    for (const i of items) out.push(`  ${num(i.count).padStart(w)}  ${bytes && i.bytes !== undefined ? `${megabytes(i.bytes).padStart(9)}  ` : ''}${i.key}`);
  };
  list('Top senders (messages received, bytes)', s.top.senders, true);
  list('Top sender domains', s.top.senderDomains, true);
  list('Top recipients (delivered)', s.top.recipients);
  list('Top recipient domains (delivered)', s.top.recipientDomains);
  list('Top deferral reasons (recipient attempts)', s.top.deferrals);
  list('Top failure reasons (recipients)', s.top.failures);
  if (s.rejected) list('Top rejections (agent log)', s.top.rejections);
  return `${out.join('\n')}\n`;
}
