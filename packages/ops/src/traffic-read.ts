// Where the traffic summary's records come from (`mailgw track --summary`, the dashboard's
// Traffic page): the gateway-wide streams in Redis, which hold every process's events, when
// there is a Redis and the streams are kept; else this machine's files. One or the other, never
// both (the same line is in each): so no line has to be remembered to be counted once, and a
// day of millions of events is read a page at a time into the tally, never held.
import path from 'node:path';
import type { LogsConfig } from '@mailgw/config';
import type { Cluster, Redis } from 'ioredis';
import { AGENT_LOG_FILE, agentLogStreamKey, streamDays, trackingDir, trackingStreamLines } from '@mailgw/queue';
import { agentLogDir, parseAgentLogLine } from './agent-log.js';
import { dailyLogLines } from './daily-log-lines.js';
import { TRACKING_FILE, parseTrackingLine } from './tracking-search.js';
import { TrafficTally, type TrafficSummary } from './traffic-summary.js';

export interface TrafficSource {
  /** The queue's Redis; null: this machine's files only. */
  readonly redis: Redis | Cluster | null;
  readonly prefix: string;
  readonly logs: Pick<LogsConfig, 'messageTrackingStreamMaxLength' | 'messageTrackingStreamMaxAge' | 'agentLogStreamMaxLength' | 'agentLogStreamMaxAge'>;
  readonly dataDir: string;
}

/** The summary of [since, now), and where its lines were read ("Redis, every process", "this machine's files"). */
export async function readTraffic(src: TrafficSource, since: Date, now: number, top: number): Promise<{ summary: TrafficSummary; where: string }> {
  const tally = new TrafficTally({ since, until: new Date(now), top });
  const dataDir = path.resolve(src.dataDir);
  const fromStreams = src.redis !== null && src.logs.messageTrackingStreamMaxLength > 0;
  const tracking = fromStreams ? trackingStreamLines(src.redis!, src.prefix, streamDays(since, now, src.logs.messageTrackingStreamMaxAge)) : dailyLogLines(trackingDir(dataDir), TRACKING_FILE, since);
  for await (const line of tracking) {
    const r = parseTrackingLine(line);
    if (r) tally.add(r);
  }
  const agentFromStreams = src.redis !== null && src.logs.agentLogStreamMaxLength > 0;
  const agent = agentFromStreams ? trackingStreamLines(src.redis!, src.prefix, streamDays(since, now, src.logs.agentLogStreamMaxAge), agentLogStreamKey) : dailyLogLines(agentLogDir(dataDir), AGENT_LOG_FILE, since);
  tally.agentLogRead();
  for await (const line of agent) {
    const e = parseAgentLogLine(line);
    if (e) tally.addAgent(e);
  }
  const where = fromStreams && agentFromStreams ? 'Redis, every process' : fromStreams ? "Redis; the agent log: this machine's files" : "this machine's files";
  return { summary: tally.summary(), where };
}
