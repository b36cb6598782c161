// One reader of the message record (the BullMQ job: envelope in data, per-recipient state in
// progress) for everything that shows or acts on queued mail: `mailgw queue`, the dashboard,
// metrics. The worker reads the same two parts with the same functions (parseDeliveryJob,
// readState), but strictly: there a bad record is an error, here it is shown for what it is.
import { formatAddress } from '@mailgw/mail';
import { DELIVERY_JOB_VERSION, parseDeliveryJob, type DeliveryJob } from './job.js';
import { tryReadState, type DeliveryState } from './delivery-state.js';

/** What BullMQ gives for a job (Job or its JSON), as much as the record needs. */
export interface RawJob {
  readonly id?: string | number | null | undefined;
  readonly data: unknown;
  readonly progress?: unknown;
  readonly failedReason?: unknown;
}

export interface MessageRecord {
  readonly id: string;
  /** BullMQ state: waiting, prioritized, active, delayed, failed, completed, unknown. */
  readonly state: string;
  /** null when the job data is not a valid delivery job. */
  readonly job: DeliveryJob | null;
  /** null when the job is invalid or its delivery state cannot be read (then `error` says why). */
  readonly delivery: DeliveryState | null;
  /** Why the job or its state cannot be read; null when both are fine. */
  readonly error: string | null;
  /** Set for BullMQ failed jobs (poison or invalid). */
  readonly failedReason: string | null;
}

export function readMessageRecord(raw: RawJob, state: string): MessageRecord {
  let job: DeliveryJob | null = null;
  let error: string | null = null;
  try {
    job = parseDeliveryJob(raw.data);
  } catch (e) {
    error = (e as Error).message;
  }
  let delivery: DeliveryState | null = null;
  if (job) {
    const r = tryReadState(raw.progress, job);
    delivery = r.state;
    error = r.error;
  }
  return { id: String(raw.id), state, job, delivery, error, failedReason: raw.failedReason ? String(raw.failedReason) : null };
}

/** What a filter over many messages looks at, read without validating the whole job. */
export interface Envelope {
  /** '' for the null sender. */
  readonly sender: string;
  readonly recipients: readonly string[];
  /** ms since epoch. */
  readonly receivedAt: number;
  readonly size: number;
  /** Attempts that deferred a recipient (0 before the first). */
  readonly deferrals: number;
}

const isParts = (a: unknown): a is { local: string; domain: string } =>
  typeof a === 'object' && a !== null && typeof (a as { local?: unknown }).local === 'string' && typeof (a as { domain?: unknown }).domain === 'string';

/**
 * The envelope of a stored job, cheaply (no schema validation: about a tenth of the cost of
 * readMessageRecord, which matters at 100,000 messages). null when the data does not have the
 * version-2 shape: the caller then reads the record with readMessageRecord, which says why.
 * Addresses are formatted from their parts, as parseDeliveryJob does.
 */
export function readEnvelope(raw: RawJob): Envelope | null {
  const d = raw.data as { v?: unknown; mailFrom?: { sender?: unknown }; rcptTo?: unknown; receivedAt?: unknown; size?: unknown } | null;
  if (typeof d !== 'object' || d === null || d.v !== DELIVERY_JOB_VERSION || typeof d.mailFrom !== 'object' || d.mailFrom === null) return null;
  const sender = d.mailFrom.sender;
  if (sender !== null && !isParts(sender)) return null;
  if (!Array.isArray(d.rcptTo) || !d.rcptTo.every(isParts)) return null;
  const receivedAt = typeof d.receivedAt === 'string' ? Date.parse(d.receivedAt) : NaN;
  if (!Number.isFinite(receivedAt) || typeof d.size !== 'number') return null;
  const p = raw.progress as { deferrals?: unknown } | null | undefined;
  const deferrals = typeof p === 'object' && p !== null && typeof p.deferrals === 'number' ? p.deferrals : 0;
  return { sender: sender === null ? '' : formatAddress(sender), recipients: (d.rcptTo as Array<{ local: string; domain: string }>).map(formatAddress), receivedAt, size: d.size, deferrals };
}
