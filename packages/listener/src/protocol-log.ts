// Exchange's SMTP receive protocol log, per connector with protocolLoggingLevel: Verbose:
// dataDir/logs/protocol/<connector>/RECV<yyyymmdd>.LOG, CSV with Exchange's fields.
// Events: + connect, - disconnect, > sent, < received, * information.
import path from 'node:path';
import { DailyLogFile, csvField } from '@mailgw/queue';

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

/** A directory-safe form of a connector name. */
export function connectorDirName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** Told when a protocol log cannot be written (once per failure episode); mail flow goes on. */
export type ProtocolLogErrorHandler = (connector: string, err: Error) => void;

export class ProtocolLog {
  private readonly file: DailyLogFile;

  constructor(
    dir: string,
    private readonly connector: string,
    onError: ProtocolLogErrorHandler = () => undefined,
  ) {
    this.file = new DailyLogFile({
      dir,
      fileName: (day) => `RECV${day}.LOG`,
      header: (iso) => `#Software: mailgw\n#Version: 1\n#Log-type: SMTP Receive Protocol Log\n#Date: ${iso}\n#Fields: ${PROTOCOL_LOG_FIELDS}\n`,
      onError: (err) => onError(connector, err),
    });
  }

  /** Never throws: a full disk or an unwritable directory must not take the session down. */
  write(e: ProtocolLogEntry, now: Date = new Date()): void {
    this.file.write([now.toISOString(), this.connector, e.sessionId, String(e.sequence), e.local, e.remote, e.event, e.data, e.context].map(csvField).join(','), now);
  }

  close(): Promise<void> {
    return this.file.close();
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
