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

/** After a failed write, how long lines are dropped before the file is tried again. */
const RETRY_MS = 60_000;

/** Told when a protocol log cannot be written (once per failure episode); mail flow goes on. */
export type ProtocolLogErrorHandler = (connector: string, err: Error) => void;

export class ProtocolLog {
  private stream: WriteStream | null = null;
  private day = '';
  private failed = false;
  private retryAt = 0;

  constructor(
    private readonly dir: string,
    private readonly connector: string,
    private readonly onError: ProtocolLogErrorHandler = () => undefined,
  ) {}

  /** Never throws: a full disk or an unwritable directory must not take the session down. */
  write(e: ProtocolLogEntry, now: Date = new Date()): void {
    const iso = now.toISOString();
    const day = iso.slice(0, 10).replace(/-/g, '');
    if (day !== this.day) {
      this.stream?.end();
      this.stream = null;
      this.day = day;
      this.retryAt = 0;
    }
    if (!this.stream && !this.open(day, iso)) return;
    const line = [iso, this.connector, e.sessionId, String(e.sequence), e.local, e.remote, e.event, e.data, e.context].map(csv).join(',');
    this.stream!.write(`${line}\n`, (err) => {
      if (!err) this.failed = false; // written again: a later failure is reported afresh
    });
  }

  private fail(from: WriteStream | null, err: Error): void {
    if (from !== null && from !== this.stream) return; // a stream already given up
    this.stream = null;
    this.retryAt = Date.now() + RETRY_MS;
    if (!this.failed) this.onError(this.connector, err);
    this.failed = true;
  }

  private open(day: string, iso: string): boolean {
    if (Date.now() < this.retryAt) return false;
    const file = path.join(this.dir, `RECV${day}.LOG`);
    let fresh: boolean;
    try {
      mkdirSync(this.dir, { recursive: true });
      fresh = !existsSync(file) || statSync(file).size === 0;
    } catch (err) {
      this.fail(null, err as Error);
      return false;
    }
    const s = createWriteStream(file, { flags: 'a' });
    this.stream = s;
    s.on('error', (err) => this.fail(s, err));
    if (fresh) {
      s.write(`#Software: mailgw\n#Version: 1\n#Log-type: SMTP Receive Protocol Log\n#Date: ${iso}\n#Fields: ${PROTOCOL_LOG_FIELDS}\n`);
    }
    return true;
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

  constructor(
    private readonly root: string,
    private readonly onError: ProtocolLogErrorHandler = () => undefined,
  ) {}

  for(connector: string): ProtocolLog {
    let log = this.logs.get(connector);
    if (!log) {
      log = new ProtocolLog(path.join(this.root, connectorDirName(connector)), connector, this.onError);
      this.logs.set(connector, log);
    }
    return log;
  }

  async close(): Promise<void> {
    await Promise.all([...this.logs.values()].map((l) => l.close()));
  }
}
