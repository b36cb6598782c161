// Per-recipient results of a message, kept in its BullMQ job's `progress` field: it lives and
// dies with the job, survives retries and crashes, and leaves the job data (the listener's
// validated envelope) untouched. A re-run delivers only recipients still pending.
import { z } from 'zod';
import type { DeliveryJob } from '@mailgw/queue';

const ReplySchema = z.object({ code: z.number().int(), status: z.string(), text: z.string() });

export const DSN_KINDS = ['failed', 'delayed', 'success'] as const;
export type DsnKind = (typeof DSN_KINDS)[number];

const RecipientStateSchema = z.object({
  status: z.enum(['pending', 'delivered', 'failed']),
  /** Last reply for this recipient (success, deferral or failure). */
  reply: ReplySchema.nullable(),
  remoteMta: z.string().nullable(),
  /** Attempts that tried this recipient. */
  attempts: z.number().int().nonnegative(),
  lastAttemptAt: z.number().nullable(),
  /** delivered only: what a SUCCESS DSN says; null when the next hop took the DSN request over. */
  dsnAction: z.enum(['delivered', 'relayed']).nullable(),
  /** DSNs already produced for this recipient. */
  reported: z.array(z.enum(DSN_KINDS)),
});
export type RecipientState = z.output<typeof RecipientStateSchema>;

const DeliveryStateSchema = z.object({
  v: z.literal(1),
  recipients: z.array(RecipientStateSchema),
  /** Attempts that ended with at least one recipient deferred. */
  deferrals: z.number().int().nonnegative(),
  /** The delay DSN is sent once per message. */
  delayNotified: z.boolean(),
  nextAttemptAt: z.number().nullable(),
});
export type DeliveryState = z.output<typeof DeliveryStateSchema>;

export function initialState(job: DeliveryJob): DeliveryState {
  return {
    v: 1,
    recipients: job.rcptTo.map(() => ({
      status: 'pending',
      reply: null,
      remoteMta: null,
      attempts: 0,
      lastAttemptAt: null,
      dsnAction: null,
      reported: [],
    })),
    deferrals: 0,
    delayNotified: false,
    nextAttemptAt: null,
  };
}

/** The state stored in `progress`, or a fresh one (first attempt, or not ours). */
export function readState(progress: unknown, job: DeliveryJob): DeliveryState {
  const r = DeliveryStateSchema.safeParse(progress);
  if (r.success && r.data.recipients.length === job.rcptTo.length) return r.data;
  return initialState(job);
}

export const pendingIndices = (s: DeliveryState): number[] =>
  s.recipients.flatMap((r, i) => (r.status === 'pending' ? [i] : []));
