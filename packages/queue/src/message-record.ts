// One reader of the message record (the BullMQ job: envelope in data, per-recipient state in
// progress) for everything that shows or acts on queued mail: `mailgw queue`, the dashboard,
// metrics. The worker reads the same two parts with the same functions (parseDeliveryJob,
// readState), but strictly: there a bad record is an error, here it is shown for what it is.
import { parseDeliveryJob, type DeliveryJob } from './job.js';
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
