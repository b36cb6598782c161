// The anti-spam agent log (Exchange's agent log, read with Get-AgentLog): one CSV line per
// action of an anti-spam agent (connection filtering, the sender and recipient filters, sender
// authentication, the content filters, the Edge rules, sender reputation), in
// <dataDir>/logs/agent/AGENTLOG<yyyymmdd>.LOG with Exchange's fields, written by every listener
// process of the machine; `mailgw agent-log` reads and summarises it. Writes never throw and never
// hold up a session (DailyLogFile); gateway.yaml logs.agentLogEnabled turns it off. A copy goes to
// a capped stream per UTC day in the queue's Redis (as the tracking log's), so `mailgw
// agent-log` on any machine reads every machine's lines.
import path from 'node:path';
import type { ListenerObserver } from '@mailgw/listener';
import type { AgentLogRecord } from '@mailgw/policy';
import { AGENT_LOG_FILE, csvField, DailyLogFile, trackingDay, type TrackingStream } from '@mailgw/queue';
import { dailyLogLines } from './daily-log-lines.js';

export const AGENT_LOG_FIELDS = ['Timestamp', 'SessionId', 'IPAddress', 'MessageId', 'P1FromAddress', 'P2FromAddresses', 'Recipients', 'Agent', 'Event', 'Action', 'SmtpResponse', 'Reason', 'ReasonData', 'Diagnostics', 'NetworkMsgID', 'TenantID', 'Directionality'] as const;

export function agentLogDir(dataDir: string): string {
  return path.join(dataDir, 'logs', 'agent');
}

/** One line as read back: the record and its time. */
export interface AgentLogEntry extends AgentLogRecord {
  readonly timestamp: string;
}

export class AgentLog {
  private readonly file: DailyLogFile;

  /** `stream`: the gateway-wide copy in Redis (agentLogStreamKey), when there is one. */
  constructor(dir: string, onError: (err: Error) => void = () => undefined, private readonly stream: TrackingStream | null = null) {
    this.file = new DailyLogFile({
      dir,
      fileName: (day) => `AGENTLOG${day}.LOG`,
      header: (iso) => `#Software: mailgw\n#Version: 1\n#Log-type: Agent Log\n#Date: ${iso}\n#Fields: ${AGENT_LOG_FIELDS.join(',')}\n`,
      onError,
    });
  }

  write(r: AgentLogRecord, now: Date = new Date()): void {
    const fields = [now.toISOString(), r.sessionId, r.ipAddress, r.messageId, r.p1FromAddress, r.p2FromAddresses.join(';'), r.recipients.join(';'), r.agent, r.event, r.action, r.smtpResponse, r.reason, r.reasonData, `connector=${r.connector}`, r.networkMsgId, '', r.directionality];
    const line = fields.map(csvField).join(',');
    this.file.write(line, now);
    this.stream?.append(line, trackingDay(now));
  }

  /** The listener's observer: writes each agent action while `enabled()` says so (a reload applies). */
  observer(enabled: () => boolean): ListenerObserver {
    return (e) => {
      if (e.type === 'agent-action' && enabled()) this.write(e.record);
    };
  }

  async close(): Promise<void> {
    await this.stream?.close();
    await this.file.close();
  }
}

/** Splits one CSV line as csvField writes it (quotes doubled; CR and LF shown as \r and \n). */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) {
          v += line.slice(i);
          i = line.length;
          break;
        }
        v += line.slice(i, q);
        if (line[q + 1] === '"') {
          v += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      out.push(v.replace(/\\r/g, '\r').replace(/\\n/g, '\n'));
      if (line[i] === ',') i++;
      else return out;
    } else {
      const c = line.indexOf(',', i);
      if (c < 0) {
        out.push(line.slice(i));
        return out;
      }
      out.push(line.slice(i, c));
      i = c + 1;
    }
  }
}

const EVENTS = new Set(['OnConnect', 'OnMailCommand', 'OnRcptCommand', 'OnEndOfData']);

/** One data line of the file, or null (a header, or a line that is not one of ours). */
export function parseAgentLogLine(line: string): AgentLogEntry | null {
  if (line === '' || line.startsWith('#')) return null;
  const f = parseCsvLine(line);
  if (f.length !== AGENT_LOG_FIELDS.length || !EVENTS.has(f[8]!)) return null;
  return {
    timestamp: f[0]!,
    sessionId: f[1]!,
    ipAddress: f[2]!,
    messageId: f[3]!,
    p1FromAddress: f[4]!,
    p2FromAddresses: f[5] ? f[5].split(';') : [],
    recipients: f[6] ? f[6].split(';') : [],
    agent: f[7]!,
    event: f[8] as AgentLogEntry['event'],
    action: f[9]!,
    smtpResponse: f[10]!,
    reason: f[11]!,
    reasonData: f[12]!,
    connector: f[13]!.replace(/^connector=/, ''),
    networkMsgId: f[14]!,
    directionality: f[16] === 'Originating' ? 'Originating' : 'Incoming',
  };
}

/**
 * Every entry from `since` on: the gateway-wide streams' lines (`streamLines`, every machine's)
 * and this machine's files, each line once (a line of this machine is in both), oldest file
 * first (files of earlier days skipped).
 */
export async function* readAgentLog(dir: string, since: Date | null = null, streamLines: readonly string[] = []): AsyncGenerator<AgentLogEntry> {
  const from = since ? since.toISOString() : '';
  const seen = new Set<string>();
  const take = (line: string): AgentLogEntry | null => {
    if (seen.has(line)) return null;
    seen.add(line);
    const e = parseAgentLogLine(line);
    return e && e.timestamp >= from ? e : null;
  };
  for (const line of streamLines) {
    const e = take(line);
    if (e) yield e;
  }
  for await (const line of dailyLogLines(dir, AGENT_LOG_FILE, since)) {
    const e = take(line);
    if (e) yield e;
  }
}
