import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * The delivery job: what a listener hands to the delivery pipeline for one
 * accepted message. It holds the envelope and a reference to the body
 * (`bodyKey`), never the body itself. Versioned (`v: 1`): a worker must refuse
 * versions it does not know.
 *
 * Input types are a little looser than output types (DSN keywords may come in
 * any case and are normalised to upper case), so a listener can pass
 * smtp-server's envelope values through unchanged.
 */
export const DELIVERY_JOB_VERSION = 1 as const;

/** Safe as a BullMQ jobId and inside a Redis key: no ':' and no spaces. */
export const JOB_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

const upperEnum = <const T extends readonly [string, ...string[]]>(values: T) =>
  z
    .string()
    .transform((s) => s.toUpperCase())
    .pipe(z.enum(values));

const TlsInfo = z.strictObject({
  protocol: z.string().min(1).max(64),
  cipher: z.string().min(1).max(256),
});

const MailFrom = z.strictObject({
  /** '' for the null reverse-path (`MAIL FROM:<>`). */
  address: z.string().max(1024),
  ret: upperEnum(['FULL', 'HDRS'] as const).optional(),
  envid: z.string().max(100).optional(),
  body: upperEnum(['7BIT', '8BITMIME'] as const).optional(),
});

const Recipient = z.strictObject({
  address: z.string().min(1).max(1024),
  notify: z
    .array(upperEnum(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'] as const))
    .min(1)
    .refine((n) => !n.includes('NEVER') || n.length === 1, 'NOTIFY=NEVER cannot be combined with other values')
    .optional(),
  orcpt: z.string().max(500).optional(),
});

export const DeliveryJobSchema = z.strictObject({
  v: z.literal(DELIVERY_JOB_VERSION),
  queueId: z.string().regex(JOB_ID_RE, 'queueId must match [A-Za-z0-9_-]{1,128}'),
  messageId: z.string().max(998),
  receivedAt: z.iso.datetime({ offset: true }),
  connector: z.string().min(1).max(256),
  clientIP: z.string().refine((s) => isIP(s) !== 0, 'clientIP must be an IPv4 or IPv6 address'),
  clientHostname: z.string().max(1024),
  helo: z.string().max(1024),
  tls: TlsInfo.nullable(),
  authUser: z.string().max(1024).nullable(),
  mailFrom: MailFrom,
  rcptTo: z.array(Recipient).min(1),
  bodyKey: z.string().min(1),
  size: z.number().int().nonnegative(),
});

/** A validated delivery job, as stored in BullMQ's job data. */
export type DeliveryJob = z.output<typeof DeliveryJobSchema>;
/** What the schema accepts before normalisation. */
export type DeliveryJobInput = z.input<typeof DeliveryJobSchema>;

/** Thrown when a delivery job does not match the schema. */
export class InvalidDeliveryJobError extends Error {
  override readonly name = 'InvalidDeliveryJobError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Validates (and normalises) a job; throws InvalidDeliveryJobError. */
export function parseDeliveryJob(data: unknown): DeliveryJob {
  const result = DeliveryJobSchema.safeParse(data);
  if (!result.success) {
    throw new InvalidDeliveryJobError(`invalid delivery job:\n${z.prettifyError(result.error)}`, {
      cause: result.error,
    });
  }
  return result.data;
}
