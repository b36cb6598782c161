// Exchange's SMTP receive protocol log, per connector with protocolLoggingLevel: Verbose:
// dataDir/logs/protocol/<connector>/RECV<yyyymmdd>.LOG, CSV with Exchange's fields.
// Events: + connect, - disconnect, > sent, < received, * information.
import { createWriteStream, existsSync, mkdirSync, statSync, type WriteStream } from 'node:fs';
import path from 'node:path';

export const PROTOCOL_LOG_FIELDS = 'date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context';

export type ProtocolEvent = '+' | '-' | '>' | '<' | '*';

export interface ProtocolLogEntry {
  readonly sessionId: string;
  readonly sequence: number;
  readonly local: string;
  readonly remote: string;
  readonly event: ProtocolEvent;
  readonly data: string;
  readonly context: string;
}

function csv(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""').replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"` : v;
}

/** A directory-safe form of a connector name. */
export function connectorDirName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_');
}

export class ProtocolLog {
  private stream: WriteStream | null = null;
  private day = '';

  constructor(
    private readonly dir: string,
    private readonly connector: string,
  ) {}

  write(e: ProtocolLogEntry, now: Date = new Date()): void {
    const iso = now.toISOString();
    const day = iso.slice(0, 10).replace(/-/g, '');
    if (day !== this.day) this.open(day, iso);
    const line = [iso, this.connector, e.sessionId, String(e.sequence), e.local, e.remote, e.event, e.data, e.context].map(csv).join(',');
    this.stream!.write(`${line}\n`);
  }

  private open(day: string, iso: string): void {
    this.stream?.end();
    mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, `RECV${day}.LOG`);
    const fresh = !existsSync(file) || statSync(file).size === 0;
    this.stream = createWriteStream(file, { flags: 'a' });
    this.stream.on('error', () => undefined); // a full disk must not take the listener down
    this.day = day;
    if (fresh) {
      this.stream.write(`#Software: mailgw\n#Version: 1\n#Log-type: SMTP Receive Protocol Log\n#Date: ${iso}\n#Fields: ${PROTOCOL_LOG_FIELDS}\n`);
    }
  }

  close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    this.day = '';
    return s ? new Promise((resolve) => s.end(resolve)) : Promise.resolve();
  }
}

/** One log per Verbose connector, created on first use. */
export class ProtocolLogs {
  private readonly logs = new Map<string, ProtocolLog>();

  constructor(private readonly root: string) {}

  for(connector: string): ProtocolLog {
    let log = this.logs.get(connector);
    if (!log) {
      log = new ProtocolLog(path.join(this.root, connectorDirName(connector)), connector);
      this.logs.set(connector, log);
    }
    return log;
  }

  async close(): Promise<void> {
    await Promise.all([...this.logs.values()].map((l) => l.close()));
  }
}
