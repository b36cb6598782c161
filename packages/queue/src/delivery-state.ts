// Per-recipient results of a message, kept in its BullMQ job's `progress` field: it lives and
// dies with the job, survives retries and crashes, and leaves the job data (the listener's
// validated envelope) untouched. A re-run delivers only recipients still pending.
//
// A state that is there but cannot be read is never replaced by a fresh one: that would
// deliver again to recipients already delivered. readState reports it, and the worker sets
// the message aside as poison.
import { z } from 'zod';
import type { Reply } from '@mailgw/mail';
import type { DeliveryJob } from './job.js';

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** A Reply ({code, enhanced, text}); states written before the shared Reply ({code, status, text: whole line}) are read too. */
const ReplySchema = z.union([
  z.strictObject({ code: z.number().int(), enhanced: z.string().nullable(), text: z.string() }),
  z.strictObject({ code: z.number().int(), status: z.string(), text: z.string() }).transform((r): Reply => {
    // Old text was the whole line: "550 5.1.1 User unknown".
    const rest = r.text.replace(/^\d{3}[ -]?/, '');
    const hasStatus = ENHANCED.test(r.status) && rest.startsWith(r.status);
    return { code: r.code, enhanced: ENHANCED.test(r.status) ? r.status : null, text: hasStatus ? rest.slice(r.status.length).trim() : rest };
  }),
]);

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

/** The outbound TLS policy of a next hop's last attempt (DANE, MTA-STS, connector, opportunistic), for `mailgw queue show`. */
const HopTlsSchema = z.object({
  /** DANE | MTA-STS enforce | MTA-STS testing | connector | opportunistic. */
  policy: z.string(),
  /** The policy in one line, as the 4.7.5 replies and the send protocol log give it. */
  detail: z.string(),
  reason: z.string(),
  /** The MX or smart host of the last session (or tried last). */
  host: z.string().nullable(),
  at: z.number(),
});
export type HopTls = z.output<typeof HopTlsSchema>;

const DeliveryStateSchema = z.object({
  v: z.literal(1),
  /** Per next hop key: the TLS policy of its last attempt (absent in states written before). */
  hopTls: z.record(z.string(), HopTlsSchema).optional(),
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

/** Thrown for a stored delivery state that cannot be read: the message is poison, never restarted. */
export class UnreadableDeliveryStateError extends Error {
  override readonly name = 'UnreadableDeliveryStateError';
}

/** No state recorded yet: BullMQ's initial progress (0), or nothing. */
function isUnset(progress: unknown): boolean {
  return progress === undefined || progress === null || progress === 0 || progress === '';
}

/**
 * The state stored in `progress`; a fresh one only when none was ever recorded (first
 * attempt). Throws UnreadableDeliveryStateError when a state is there but unusable.
 */
export function readState(progress: unknown, job: DeliveryJob): DeliveryState {
  if (isUnset(progress)) return initialState(job);
  const r = DeliveryStateSchema.safeParse(progress);
  if (!r.success) {
    throw new UnreadableDeliveryStateError(`delivery state of ${job.queueId} cannot be read (${z.prettifyError(r.error).replace(/\n+/g, '; ')}); set aside rather than delivered again`);
  }
  if (r.data.recipients.length !== job.rcptTo.length) {
    throw new UnreadableDeliveryStateError(`delivery state of ${job.queueId} has ${r.data.recipients.length} recipients, the job ${job.rcptTo.length}; set aside rather than delivered again`);
  }
  return r.data;
}

/** readState for views (ops): null instead of an exception for an unreadable state. */
export function tryReadState(progress: unknown, job: DeliveryJob): { state: DeliveryState | null; error: string | null } {
  try {
    return { state: readState(progress, job), error: null };
  } catch (e) {
    if (e instanceof UnreadableDeliveryStateError) return { state: null, error: e.message };
    throw e;
  }
}

export const pendingIndices = (s: DeliveryState): number[] =>
  s.recipients.flatMap((r, i) => (r.status === 'pending' ? [i] : []));
