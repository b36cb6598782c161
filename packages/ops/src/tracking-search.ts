// Searches the message tracking log (<dataDir>/logs/tracking/MSGTRK<yyyymmdd>.log, JSON lines)
// like Exchange's Get-MessageTrackingLog: by Message-ID, sender, recipient or queue id, from a
// point in time on. Streams the files line by line; a line that is not JSON is skipped.
import { readableAddress } from '@mailgw/mail';
import { dailyLogLines } from './daily-log-lines.js';

/** One tracking log line as written (TrackingEvent plus `dateTime`). */
export interface TrackingRecord {
  readonly dateTime: string;
  readonly eventId: string;
  readonly source?: string;
  readonly internalMessageId?: string;
  readonly messageId?: string;
  readonly senderAddress?: string;
  readonly recipientAddress?: readonly string[];
  readonly recipientStatus?: readonly string[];
  readonly reference?: string;
  readonly [field: string]: unknown;
}

export interface TrackingQuery {
  /** Message-ID header, with or without the angle brackets. */
  readonly messageId?: string;
  readonly sender?: string;
  readonly recipient?: string;
  /** Events of this queue id (and DSN events that reference it). */
  readonly queueId?: string;
  /** Only events at or after this time. */
  readonly since?: Date;
}

/** This machine's tracking log files (MSGTRK<yyyymmdd>.log). */
export const TRACKING_FILE = /^MSGTRK(\d{8})\.log$/;

const bare = (id: string) => id.trim().replace(/^<|>$/g, '').toLowerCase();

export function matches(r: TrackingRecord, q: TrackingQuery): boolean {
  if (q.since && !(Date.parse(r.dateTime) >= q.since.getTime())) return false;
  if (q.messageId !== undefined && bare(r.messageId ?? '') !== bare(q.messageId)) return false;
  // Addresses compared as people read them: an IDN domain given in U-labels finds the A-labels the log holds.
  const same = (a: string, b: string) => readableAddress(a.trim().toLowerCase()) === readableAddress(b.trim().toLowerCase());
  if (q.sender !== undefined && !same(r.senderAddress ?? '', q.sender)) return false;
  if (q.recipient !== undefined && !(r.recipientAddress ?? []).some((a) => same(a, q.recipient!))) return false;
  if (q.queueId !== undefined && r.internalMessageId !== q.queueId && r.reference !== q.queueId) return false;
  return true;
}

/** Parses one tracking line; null for a torn or foreign line. */
export function parseTrackingLine(line: string): TrackingRecord | null {
  if (!line.trim()) return null;
  try {
    const r = JSON.parse(line) as TrackingRecord;
    return typeof r.dateTime === 'string' && typeof r.eventId === 'string' ? r : null;
  } catch {
    return null; // a torn line from a crash
  }
}

/**
 * Matching events from every log file in `dir` and from `alsoLines` (the gateway-wide copy in
 * Redis: the same lines, written by every process), each event once, oldest first. A missing
 * directory yields none.
 */
export async function searchTracking(dir: string, q: TrackingQuery, alsoLines: readonly string[] = []): Promise<TrackingRecord[]> {
  const seen = new Set<string>();
  const out: TrackingRecord[] = [];
  const take = (line: string) => {
    if (seen.has(line)) return; // this machine's file and the stream hold the same line
    seen.add(line);
    const r = parseTrackingLine(line);
    if (r && matches(r, q)) out.push(r);
  };
  for (const line of alsoLines) take(line);
  for await (const line of dailyLogLines(dir, TRACKING_FILE, q.since ?? null)) take(line);
  // Several processes append to one file (and to the stream): their lines interleave.
  return out.sort((a, b) => a.dateTime.localeCompare(b.dateTime));
}

