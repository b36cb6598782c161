import { isIP } from 'node:net';
import { z } from 'zod';
import { DSN_NOTIFY, formatAddress, parseEnvelopeAddress, type DsnNotify, type MailAddress } from '@mailgw/mail';

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
  // Every message is parsed twice (the listener's commit, the worker's read): the common,
  // well-formed job takes the hand-written path, anything else the schema, which also words
  // the errors.
  const quick = quickDeliveryJob(data);
  if (quick) return quick;
  const result = DeliveryJobSchema.safeParse(upgradeV1(data));
  if (!result.success) {
    throw new InvalidDeliveryJobError(`invalid delivery job:\n${z.prettifyError(result.error)}`, {
      cause: result.error,
    });
  }
  return result.data;
}

// ------------------------------------------------------------ the quick path

// quickDeliveryJob: DeliveryJobSchema's rules written out by hand, for the jobs every message
// produces. Measured: the schema took 4% of a listener's CPU at 1 KB messages (it is called on
// every commit and every delivery). It answers null, never "invalid", for anything it does not
// take (a version 1 job, an unknown or undefined-valued key, a date not in toISOString's form):
// the schema then decides. Whatever it takes, the schema takes too and gives the same output;
// packages/queue/test/job-quick.test.ts checks that on generated and mutated jobs.

type Plain = Record<string, unknown>;

// Written out, not read from the schema: a field added to the schema is then not taken here
// (the job goes to the schema, output unchanged) until this path is taught it.
const JOB_KEYS = new Set(['v', 'queueId', 'messageId', 'receivedAt', 'connector', 'clientIP', 'clientHostname', 'helo', 'tls', 'authUser', 'mailFrom', 'rcptTo', 'bodyKey', 'size']);
const MAIL_FROM_KEYS = new Set(['sender', 'ret', 'envid', 'body', 'smtpUtf8', 'address']);
const TLS_KEYS = new Set(['protocol', 'cipher']);
const ADDRESS_KEYS = new Set(['local', 'domain']);
const RECIPIENT_KEYS = new Set(['local', 'domain', 'notify', 'orcpt', 'address']);
const RETS: ReadonlySet<string> = new Set(['FULL', 'HDRS']);
const BODIES: ReadonlySet<string> = new Set(['7BIT', '8BITMIME', 'BINARYMIME']);
const NOTIFIES: ReadonlySet<string> = new Set(DSN_NOTIFY);
const ISO_UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A plain object whose keys are all in `allowed` and none of whose values is undefined. */
function plain(x: unknown, allowed: ReadonlySet<string>): Plain | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null;
  const proto = Object.getPrototypeOf(x) as unknown;
  if (proto !== Object.prototype && proto !== null) return null;
  for (const k in x) if (!allowed.has(k) || (x as Plain)[k] === undefined) return null;
  return x as Plain;
}

const str = (x: unknown, min: number, max: number): x is string => typeof x === 'string' && x.length >= min && x.length <= max;

function quickAddress(x: unknown): MailAddress | null {
  const a = plain(x, ADDRESS_KEYS);
  if (!a || !str(a.local, 1, 1024) || !str(a.domain, 1, 255)) return null;
  return { local: a.local, domain: a.domain };
}

/** `s` upper-cased (as the schema's upperEnum does) when that is one of `values`. */
function upper(s: unknown, values: ReadonlySet<string>): string | null {
  if (typeof s !== 'string') return null;
  const u = s.toUpperCase();
  return values.has(u) ? u : null;
}

/** The job as parseDeliveryJob returns it, or null when the schema must decide. */
export function quickDeliveryJob(data: unknown): DeliveryJob | null {
  const d = plain(data, JOB_KEYS);
  if (!d) return null;
  for (const k of JOB_KEYS) if (!(k in d)) return null;
  if (d.v !== DELIVERY_JOB_VERSION) return null;
  if (typeof d.queueId !== 'string' || !JOB_ID_RE.test(d.queueId)) return null;
  if (!str(d.messageId, 0, 998) || !str(d.connector, 1, 256) || !str(d.clientHostname, 0, 1024) || !str(d.helo, 0, 1024) || !str(d.bodyKey, 1, Infinity)) return null;
  if (typeof d.receivedAt !== 'string' || !ISO_UTC_MS.test(d.receivedAt)) return null;
  const when = new Date(d.receivedAt);
  if (Number.isNaN(when.getTime()) || when.toISOString() !== d.receivedAt) return null;
  if (typeof d.clientIP !== 'string' || isIP(d.clientIP) === 0) return null;
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) return null;
  if (d.authUser !== null && !str(d.authUser, 0, 1024)) return null;

  let tls: { protocol: string; cipher: string } | null = null;
  if (d.tls !== null) {
    const t = plain(d.tls, TLS_KEYS);
    if (!t || !str(t.protocol, 1, 64) || !str(t.cipher, 1, 256)) return null;
    tls = { protocol: t.protocol, cipher: t.cipher };
  }

  const m = plain(d.mailFrom, MAIL_FROM_KEYS);
  if (!m || !('sender' in m)) return null;
  const sender = m.sender === null ? null : quickAddress(m.sender);
  if (m.sender !== null && !sender) return null;
  const mailFrom: DeliveryJob['mailFrom'] = { sender, address: sender ? formatAddress(sender) : '' };
  if ('ret' in m) {
    const ret = upper(m.ret, RETS);
    if (!ret) return null;
    mailFrom.ret = ret as 'FULL' | 'HDRS';
  }
  if ('envid' in m) {
    if (!str(m.envid, 0, 100)) return null;
    mailFrom.envid = m.envid;
  }
  if ('body' in m) {
    const body = upper(m.body, BODIES);
    if (!body) return null;
    mailFrom.body = body as '7BIT' | '8BITMIME' | 'BINARYMIME';
  }
  if ('smtpUtf8' in m) {
    if (m.smtpUtf8 !== true) return null;
    mailFrom.smtpUtf8 = true;
  }
  if ('address' in m && !str(m.address, 0, 1100)) return null;

  if (!Array.isArray(d.rcptTo) || d.rcptTo.length === 0) return null;
  const rcptTo: DeliveryJob['rcptTo'] = [];
  for (const x of d.rcptTo as unknown[]) {
    const r = plain(x, RECIPIENT_KEYS);
    if (!r || !str(r.local, 1, 1024) || !str(r.domain, 1, 255)) return null;
    const out: DeliveryJob['rcptTo'][number] = { local: r.local, domain: r.domain, address: formatAddress({ local: r.local, domain: r.domain }) };
    if ('notify' in r) {
      if (!Array.isArray(r.notify) || r.notify.length === 0) return null;
      const notify: DsnNotify[] = [];
      for (const n of r.notify as unknown[]) {
        const u = upper(n, NOTIFIES);
        if (!u) return null;
        notify.push(u as DsnNotify);
      }
      if (notify.includes('NEVER') && notify.length !== 1) return null;
      out.notify = notify;
    }
    if ('orcpt' in r) {
      if (!str(r.orcpt, 0, 500)) return null;
      out.orcpt = r.orcpt;
    }
    if ('address' in r && !str(r.address, 0, 1100)) return null;
    rcptTo.push(out);
  }

  return {
    v: DELIVERY_JOB_VERSION,
    queueId: d.queueId,
    messageId: d.messageId,
    receivedAt: d.receivedAt,
    connector: d.connector,
    clientIP: d.clientIP,
    clientHostname: d.clientHostname,
    helo: d.helo,
    tls,
    authUser: d.authUser as string | null,
    mailFrom,
    rcptTo,
    bodyKey: d.bodyKey,
    size: d.size,
  };
}

