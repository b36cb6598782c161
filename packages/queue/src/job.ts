import { isIP } from 'node:net';
import { z } from 'zod';
import { DSN_NOTIFY, formatAddress, parseEnvelopeAddress, type MailAddress } from '@mailgw/mail';

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
export const DELIVERY_JOB_VERSION = 2 as const;

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

/** An address as parts (@mailgw/mail MailAddress); the job never holds an address only as text. */
const Address = z.strictObject({
  local: z.string().min(1).max(1024),
  domain: z.string().min(1).max(255),
});

const MailFrom = z
  .strictObject({
    /** null for the null reverse-path (`MAIL FROM:<>`). */
    sender: Address.nullable(),
    ret: upperEnum(['FULL', 'HDRS'] as const).optional(),
    envid: z.string().max(100).optional(),
    /** BODY= of MAIL (RFC 6152, RFC 3030); BINARYMIME messages leave only by BDAT to a hop offering it. */
    body: upperEnum(['7BIT', '8BITMIME', 'BINARYMIME'] as const).optional(),
    /** MAIL carried SMTPUTF8 (RFC 6531): the envelope may hold UTF-8 addresses; never downgraded. */
    smtpUtf8: z.literal(true).optional(),
    /** Stored for people reading Redis; recomputed from the parts on every read. */
    address: z.string().max(1100).optional(),
  })
  // `address`: the sender as written on the wire, '' for the null sender (derived, never parsed back).
  .transform((m) => ({ ...m, address: m.sender ? formatAddress(m.sender) : '' }));

const Recipient = z
  .strictObject({
    ...Address.shape,
    notify: z
      .array(upperEnum(DSN_NOTIFY))
      .min(1)
      .refine((n) => !n.includes('NEVER') || n.length === 1, 'NOTIFY=NEVER cannot be combined with other values')
      .optional(),
    orcpt: z.string().max(500).optional(),
    /** Stored for people reading Redis; recomputed from the parts on every read. */
    address: z.string().max(1100).optional(),
  })
  // `address`: the recipient as written in RCPT TO and logs (derived from the parts).
  .transform((r) => ({ ...r, address: formatAddress(r) }));

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

/**
 * Version 1 stored addresses as text: parse them once, with the listener's parser, into the
 * parts version 2 keeps. An address that no longer parses is left as it is and fails the schema.
 */
function upgradeV1(data: unknown): unknown {
  if (typeof data !== 'object' || data === null || (data as { v?: unknown }).v !== 1) return data;
  const d = data as { mailFrom?: { address?: unknown }; rcptTo?: unknown };
  const parts = (text: unknown): MailAddress | unknown => {
    if (typeof text !== 'string') return text;
    const p = parseEnvelopeAddress(text);
    return p.ok ? { local: p.value.local, domain: p.value.domain } : text;
  };
  const { address: senderText, ...mailFrom } = d.mailFrom ?? {};
  return {
    ...d,
    v: DELIVERY_JOB_VERSION,
    mailFrom: { ...mailFrom, sender: senderText === '' ? null : parts(senderText) },
    rcptTo: Array.isArray(d.rcptTo)
      ? d.rcptTo.map((r: unknown) => {
          if (typeof r !== 'object' || r === null) return r;
          const { address, ...rest } = r as { address?: unknown };
          const p = parts(address);
          return typeof p === 'object' && p !== null ? { ...rest, ...p } : r;
        })
      : d.rcptTo,
  };
}

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
  const result = DeliveryJobSchema.safeParse(upgradeV1(data));
  if (!result.success) {
    throw new InvalidDeliveryJobError(`invalid delivery job:\n${z.prettifyError(result.error)}`, {
      cause: result.error,
    });
  }
  return result.data;
}
