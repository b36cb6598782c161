// One daily CSV log file of a protocol log (Exchange's SmtpReceive and SmtpSend logs): a new
// file each UTC day, a header when the file is new, and writes that never throw. A failed write
// (full disk, EACCES, the directory gone) drops the stream and its lines: it is reported once
// per failure episode, and the file is tried again after LOG_RETRY_MS. Mail flow never waits on it.
import { createWriteStream, existsSync, mkdirSync, statSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { LOG_RETRY_MS } from './tracking-log.js';

export interface DailyLogFileOptions {
  readonly dir: string;
  /** File name of a UTC day (yyyymmdd), e.g. RECV20261202.LOG. */
  readonly fileName: (day: string) => string;
  /** Written first to a new (or empty) file. */
  readonly header: (isoDate: string) => string;
  /** Told once per failure episode. */
  readonly onError: (err: Error) => void;
}

/** CSV field quoting of Exchange's protocol logs (CR and LF shown as \r and \n). */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""').replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"` : v;
}

export class DailyLogFile {
  private stream: WriteStream | null = null;
  private day = '';
  private failed = false;
  private retryAt = 0;

  constructor(private readonly o: DailyLogFileOptions) {}

  /** Appends one line (without its newline) to today's file; never throws. */
  write(line: string, now: Date = new Date()): void {
    const iso = now.toISOString();
    const day = iso.slice(0, 10).replace(/-/g, '');
    if (day !== this.day) {
      this.stream?.end();
      this.stream = null;
      this.day = day;
      this.retryAt = 0;
    }
    if (!this.stream && !this.open(day, iso)) return;
    this.stream!.write(`${line}\n`, (err) => {
      if (!err) this.failed = false; // written again: a later failure is reported afresh
    });
  }

  private fail(from: WriteStream | null, err: Error): void {
    if (from !== null && from !== this.stream) return; // a stream already given up
    this.stream = null;
    this.retryAt = Date.now() + LOG_RETRY_MS;
    if (!this.failed) this.o.onError(err);
    this.failed = true;
  }

  private open(day: string, iso: string): boolean {
    if (Date.now() < this.retryAt) return false;
    const file = path.join(this.o.dir, this.o.fileName(day));
    let fresh: boolean;
    try {
      mkdirSync(this.o.dir, { recursive: true });
      fresh = !existsSync(file) || statSync(file).size === 0;
    } catch (err) {
      this.fail(null, err as Error);
      return false;
    }
    const s = createWriteStream(file, { flags: 'a' });
    this.stream = s;
    s.on('error', (err) => this.fail(s, err));
    if (fresh) s.write(this.o.header(iso));
    return true;
  }

  close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    this.day = '';
    return s ? new Promise((resolve) => s.end(resolve)) : Promise.resolve();
  }
}
