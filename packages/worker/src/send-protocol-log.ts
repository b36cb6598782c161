// Exchange's SMTP send protocol log (SmtpSend), per send connector with protocolLoggingLevel:
// Verbose: dataDir/logs/smtp-send/<connector>/SEND<yyyymmdd>.LOG, CSV with the fields of the
// receive protocol log (packages/listener/src/protocol-log.ts). Events: + connect, - disconnect,
// > sent, < received, * information. Commands are logged as nodemailer writes them to its
// transaction log: AUTH secrets are masked there, message bodies are never logged.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { DailyLogFile, csvField } from '@mailgw/queue';
import { format } from 'node:util';

export const SEND_LOG_FIELDS = 'date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context';

export type SendLogEvent = '+' | '-' | '>' | '<' | '*';

/** Told when a send protocol log cannot be written (once per failure episode); delivery goes on. */
export type SendLogErrorHandler = (connector: string, err: Error) => void;

class SendLogFile {
  private readonly file: DailyLogFile;

  constructor(
    dir: string,
    readonly connector: string,
    onError: SendLogErrorHandler,
  ) {
    this.file = new DailyLogFile({
      dir,
      fileName: (day) => `SEND${day}.LOG`,
      header: (iso) => `#Software: mailgw\n#Version: 1\n#Log-type: SMTP Send Protocol Log\n#Date: ${iso}\n#Fields: ${SEND_LOG_FIELDS}\n`,
      onError: (err) => onError(connector, err),
    });
  }

  /** Never throws: a full disk or an unwritable directory must not stop delivery. */
  write(fields: readonly string[], now = new Date()): void {
    this.file.write([now.toISOString(), this.connector, ...fields].map(csvField).join(','), now);
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/** One outbound session's lines in its connector's log. */
export class SendSessionLog {
  private sequence = 0;
  readonly id = randomBytes(8).toString('hex').toUpperCase();

  constructor(
    private readonly file: SendLogFile,
    private readonly local: string,
    private readonly remote: string,
  ) {}

  write(event: SendLogEvent, data: string, context = ''): void {
    this.file.write([this.id, String(this.sequence++), this.local, this.remote, event, data, context]);
  }

  /**
   * A logger for nodemailer's SMTPConnection (`transactionLog: true`): its 'client' lines are
   * what we sent, its 'server' lines what we received.
   */
  nodemailerLogger(): Record<'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal', (entry: unknown, message?: unknown, ...args: unknown[]) => void> {
    const none = () => undefined;
    return {
      trace: none,
      info: none,
      warn: none,
      error: none,
      fatal: none,
      debug: (entry, message, ...args) => {
        const tnx = (entry as { tnx?: unknown } | null)?.tnx;
        if (tnx !== 'client' && tnx !== 'server') return;
        const text = format(String(message ?? ''), ...args);
        for (const line of text.split(/\r?\n/)) if (line !== '') this.write(tnx === 'client' ? '>' : '<', line);
      },
    };
  }
}

/** The send protocol logs of one worker process: one file per Verbose connector, opened on first use. */
export class SendProtocolLogs {
  private readonly files = new Map<string, SendLogFile>();

  constructor(
    private readonly root: string,
    private readonly onError: SendLogErrorHandler = () => undefined,
  ) {}

  session(connector: string, local: string, remote: string): SendSessionLog {
    let f = this.files.get(connector);
    if (!f) {
      f = new SendLogFile(path.join(this.root, connector.replace(/[^A-Za-z0-9._-]+/g, '_')), connector, this.onError);
      this.files.set(connector, f);
    }
    return new SendSessionLog(f, local, remote);
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}
