// Message tracking log (Exchange's MSGTRK): one JSON line per event in
// <dataDir>/logs/tracking/MSGTRK<yyyymmdd>.log (UTC day). Appends only; each line goes out in
// one write, so several processes (listener, workers) may share the directory. Never throws
// at the caller: a full disk must not stop mail (lines are dropped, the failure reported once,
// the file tried again a minute later).
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import type { DeliveryJob } from './job.js';
import { isQueueId, queueIdTimestamp } from './queue-id.js';
import { isoDay, trackingDay, type TrackingStream } from './tracking-stream.js';

/** Exchange's event ids. The listener writes RECEIVE/SUBMIT (and AGENTINFO when a transport rule matched); workers SEND, DELIVER, DEFER, FAIL, DSN. */
export type TrackingEventId =
  | 'RECEIVE'
  | 'AGENTINFO'
  | 'SUBMIT'
  | 'SEND'
  | 'DELIVER'
  | 'DEFER'
  | 'FAIL'
  | 'DSN'
  | 'EXPAND'
  | 'REDIRECT'
  | 'DROP'
  | 'RESUBMIT'
  | 'POISONMESSAGE';

/** The fields of Exchange's tracking log, in camelCase; absent fields are left out. */
export interface TrackingEvent {
  eventId: TrackingEventId;
  /** SMTP, STOREDRIVER (local mailbox), DSN, QUEUE, ROUTING, AGENT */
  source: string;
  /** mailgw's queue id of the message. */
  internalMessageId: string;
  /** The Message-ID header. */
  messageId: string;
  senderAddress: string;
  recipientAddress: readonly string[];
  /** Per recipient: the reply or reason ("250 2.0.0 OK"). */
  recipientStatus?: readonly string[];
  returnPath?: string;
  totalBytes?: number;
  recipientCount?: number;
  messageSubject?: string;
  clientIp?: string;
  clientHostname?: string;
  serverIp?: string;
  serverHostname?: string;
  connectorId?: string;
  sourceContext?: string;
  /** For DSN events: the queue id of the DSN message. */
  reference?: string;
  relatedRecipientAddress?: readonly string[];
  directionality?: 'Incoming' | 'Originating';
}

export interface TrackingLog {
  /** Appends one event (buffered; flushed by close()). */
  write(event: TrackingEvent): void;
  close(): Promise<void>;
}

export interface TrackingLogOptions {
  /** Called for write failures (default: ignored). */
  onError?: (err: Error) => void;
  /** Clock, for tests. */
  now?: () => Date;
  /** The gateway-wide copy in Redis (tracking-stream.ts): every line goes there too, even while the file fails. */
  stream?: TrackingStream;
}

/** The tracking directory under a data dir: <dataDir>/logs/tracking */
export function trackingDir(dataDir: string): string {
  return path.join(dataDir, 'logs', 'tracking');
}

export function trackingFileName(d: Date): string {
  return fileNameOfDay(trackingDay(d));
}

const fileNameOfDay = (day: string): string => `MSGTRK${day}.log`;

/** After a failed write, how long lines are dropped before the file is tried again. */
export const LOG_RETRY_MS = 60_000;

export function openTrackingLog(dir: string, opts: TrackingLogOptions = {}): TrackingLog {
  const now = opts.now ?? (() => new Date());
  /** The day (yyyymmdd) of the file `stream` appends to. */
  let streamDay = '';
  let stream: WriteStream | null = null;
  let failed = false;
  let retryAt = 0;
  // A failure (full disk, EACCES, the directory gone) drops the stream: lines are lost (never
  // mail) until the next try, LOG_RETRY_MS later; it is reported once per failure episode.
  const report = (from: WriteStream | null, err: Error) => {
    if (from !== null && from !== stream) return; // a stream already given up
    stream = null;
    retryAt = Date.now() + LOG_RETRY_MS;
    if (!failed) opts.onError?.(err);
    failed = true;
  };
  const streamFor = (day: string): WriteStream | null => {
    if (day === streamDay && stream) return stream;
    if (day !== streamDay) {
      stream?.end();
      stream = null;
      streamDay = day;
      retryAt = 0; // a new file: try it at once
    }
    if (Date.now() < retryAt) return null;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      report(null, err as Error);
      return null;
    }
    const s = createWriteStream(path.join(dir, fileNameOfDay(day)), { flags: 'a' });
    stream = s;
    s.on('error', (err) => report(s, err));
    return s;
  };
  return {
    write(event) {
      // One toISOString an event: the line's dateTime, and from it the day (file, stream).
      const dateTime = now().toISOString();
      const day = isoDay(dateTime);
      const subject = event.messageSubject?.slice(0, 256);
      const line = JSON.stringify({ dateTime, ...event, ...(subject !== undefined ? { messageSubject: subject } : {}) });
      opts.stream?.append(line, day);
      const s = streamFor(day);
      if (!s) return;
      // Batch the lines of ~20 ms into one append: a write per event costs a system call each
      // (measured: a tenth of the listener's CPU at 300 msg/s). end() flushes what is corked.
      if (s.writableCorked === 0) {
        s.cork();
        setTimeout(() => s.uncork(), 20).unref();
      }
      s.write(line + '\n', (err) => {
        if (!err) failed = false; // written again: a later failure is reported afresh
      });
    },
    async close() {
      const s = stream;
      stream = null;
      await opts.stream?.close();
      if (!s) return;
      await new Promise<void>((resolve) => s.end(() => resolve()));
    },
  };
}

/** The fields every event about a queued message repeats, from its job (and its Subject when known). */
export type TrackingBase = Pick<TrackingEvent, 'internalMessageId' | 'messageId' | 'senderAddress' | 'totalBytes' | 'recipientCount' | 'clientIp' | 'clientHostname' | 'connectorId'> & { messageSubject?: string };

export function trackingBase(job: DeliveryJob, subject: string | null = null): TrackingBase {
  return {
    internalMessageId: job.queueId,
    messageId: job.messageId,
    senderAddress: job.mailFrom.address,
    totalBytes: job.size,
    recipientCount: job.rcptTo.length,
    clientIp: job.clientIP,
    clientHostname: job.clientHostname,
    connectorId: job.connector,
    ...(subject !== null ? { messageSubject: subject } : {}),
  };
}

/** A tracking log that also hands every event to `observe` (metrics, activity counters) first. */
export function tapTracking(log: TrackingLog, observe: (e: TrackingEvent) => void): TrackingLog {
  return {
    write: (e) => {
      observe(e);
      log.write(e);
    },
    close: () => log.close(),
  };
}

/**
 * Seconds from receipt to `now` for a SEND or DELIVER event (a queue id encodes the moment the
 * listener began taking the message); null for other events and foreign ids.
 */
export function deliveryLatencySeconds(e: TrackingEvent, now: number): number | null {
  if ((e.eventId !== 'SEND' && e.eventId !== 'DELIVER') || !isQueueId(e.internalMessageId)) return null;
  return Math.max(0, now - queueIdTimestamp(e.internalMessageId)) / 1000;
}
