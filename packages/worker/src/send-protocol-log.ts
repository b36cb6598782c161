// Exchange's SMTP send protocol log (SmtpSend), per send connector with protocolLoggingLevel:
// Verbose: dataDir/logs/smtp-send/<connector>/SEND<yyyymmdd>.LOG, CSV with the fields of the
// receive protocol log (packages/listener/src/protocol-log.ts). Events: + connect, - disconnect,
// > sent, < received, * information. Commands are logged as nodemailer writes them to its
// transaction log: AUTH secrets are masked there, message bodies are never logged.
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, statSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { format } from 'node:util';

export const SEND_LOG_FIELDS = 'date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context';

export type SendLogEvent = '+' | '-' | '>' | '<' | '*';

function csv(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""').replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"` : v;
}

class SendLogFile {
  private stream: WriteStream | null = null;
  private day = '';

  constructor(
    private readonly dir: string,
    readonly connector: string,
  ) {}

  write(fields: readonly string[], now = new Date()): void {
    const iso = now.toISOString();
    const day = iso.slice(0, 10).replace(/-/g, '');
    if (day !== this.day) this.open(day, iso);
    this.stream!.write(`${[iso, this.connector, ...fields].map(csv).join(',')}\n`);
  }

  private open(day: string, iso: string): void {
    this.stream?.end();
    mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, `SEND${day}.LOG`);
    const fresh = !existsSync(file) || statSync(file).size === 0;
    this.stream = createWriteStream(file, { flags: 'a' });
    this.stream.on('error', () => undefined); // a full disk must not stop delivery
    this.day = day;
    if (fresh) this.stream.write(`#Software: mailgw\n#Version: 1\n#Log-type: SMTP Send Protocol Log\n#Date: ${iso}\n#Fields: ${SEND_LOG_FIELDS}\n`);
  }

  close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    this.day = '';
    return s ? new Promise((resolve) => s.end(resolve)) : Promise.resolve();
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

  constructor(private readonly root: string) {}

  session(connector: string, local: string, remote: string): SendSessionLog {
    let f = this.files.get(connector);
    if (!f) {
      f = new SendLogFile(path.join(this.root, connector.replace(/[^A-Za-z0-9._-]+/g, '_')), connector);
      this.files.set(connector, f);
    }
    return new SendSessionLog(f, local, remote);
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}
