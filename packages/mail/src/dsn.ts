// Delivery status notifications (RFC 3464): a multipart/report with a human-readable part, a
// message/delivery-status part and the original message (RET=FULL) or its headers (RET=HDRS).
// Pure: composes the bytes; the queue's dsn-sender.ts decides when and enqueues them.
import { randomBytes } from 'node:crypto';
import { headerValue, messageHeader, parseHeaderFields } from './header-block.js';
import { rfc5322Date } from './date.js';
import { readableAddress } from './readable.js';
import { echoText } from './reply.js';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed';

export interface DsnRecipient {
  /** The recipient as delivered to (Final-Recipient). */
  readonly address: string;
  /** ORCPT as given by the client ("rfc822;bob@example.com"), if any. */
  readonly orcpt?: string | undefined;
  readonly action: DsnAction;
  /** Enhanced status, e.g. "5.1.1". */
  readonly status: string;
  /** The reply that decided it ("550 5.1.1 User unknown"). */
  readonly diagnostic?: string | null | undefined;
  readonly remoteMta?: string | null | undefined;
  readonly lastAttemptAt?: Date | null | undefined;
  /** delayed only: when the message expires. */
  readonly willRetryUntil?: Date | null | undefined;
  /** The administrator's words for this recipient's status (a system message), shown under its address. */
  readonly explanation?: string | null | undefined;
}

export interface DsnInput {
  /** This gateway's FQDN (Reporting-MTA). */
  readonly reportingMta: string;
  /** postmaster@<default accepted domain> */
  readonly from: string;
  /** The original envelope sender. */
  readonly to: string;
  readonly messageId: string;
  readonly date: Date;
  readonly originalQueueId: string;
  readonly originalEnvelopeId?: string | undefined;
  readonly arrivalDate: Date;
  readonly recipients: readonly DsnRecipient[];
  /** The original message, or null when its body is gone. */
  readonly original: Buffer | null;
  /** What of the original to return. */
  readonly ret: 'FULL' | 'HDRS';
  /** The original came with BODY=BINARYMIME: its body cannot go in a MIME part, only its header is returned. */
  readonly originalBinary?: boolean;
}

const CRLF = '\r\n';


/** No CR/LF/control characters in a header field. */
function clean(s: string, max = 900): string {
  return s.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trim().slice(0, max);
}

/**
 * An address type and value for Final-Recipient, for machines: rfc822 with the domain as the job
 * keeps it (A-labels), or for a UTF-8 local part (SMTPUTF8) RFC 6533's utf-8 type written as
 * utf-8-addr-xtext (\x{HEX} for anything but printable ASCII other than "+", "=", "\"), so the
 * message/delivery-status part stays 7-bit and readable by every DSN parser, wherever the DSN
 * goes. People read the address in the human-readable part (U-labels, UTF-8).
 */
function typedAddress(address: string): string {
  const a = clean(address);
  if (!/[^\x00-\x7f]/.test(a)) return `rfc822;${a}`;
  return `utf-8;${[...a].map((ch) => (/^[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]$/.test(ch) ? ch : `\\x{${ch.codePointAt(0)!.toString(16).toUpperCase()}}`)).join('')}`;
}

/** "rfc822;bob@example.com" from ORCPT's xtext (RFC 3461 §4): "+2B" → "+". */
function decodeOrcpt(orcpt: string): string {
  return clean(orcpt.replace(/\+([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
}

const SUBJECT_PREFIX: Record<DsnAction, string> = {
  failed: 'Undeliverable',
  delayed: 'Delivery delayed',
  delivered: 'Delivered',
  relayed: 'Relayed',
};

const INTRO: Record<DsnAction, string> = {
  failed: 'Delivery has failed to these recipients or groups:',
  delayed: 'Delivery is delayed to these recipients or groups. The gateway will keep trying:',
  delivered: 'Your message has been delivered to the following recipients:',
  relayed: 'Your message has been relayed to the following recipients; the server it was relayed to sends no delivery notifications:',
};

function humanPart(input: DsnInput, action: DsnAction, subject: string | null): string {
  const lines = [INTRO[action], ''];
  for (const r of input.recipients) {
    // For people: the domain in U-labels (the machine part below keeps the A-label).
    lines.push(clean(readableAddress(r.address)));
    // Line by line: the text keeps its line breaks, each line cleaned of control characters.
    if (r.explanation) for (const l of r.explanation.split(/\r\n|\r|\n/)) lines.push(l.trim() ? `    ${clean(l, 998)}` : '');
    if (r.diagnostic) lines.push(`    ${clean(r.diagnostic)}`);
    if (r.willRetryUntil) lines.push(`    The gateway will keep trying until ${rfc5322Date(r.willRetryUntil)}.`);
    lines.push('');
  }
  lines.push('Diagnostic information for administrators:', '', `Generating server: ${input.reportingMta}`);
  lines.push(`Queue ID: ${input.originalQueueId}`);
  if (subject) lines.push(`Original subject: ${clean(subject)}`);
  return lines.join(CRLF) + CRLF;
}

/**
 * A value of the message/delivery-status part, which is 7-bit (RFC 3464 §2.1.1): a next hop's
 * reply may carry 8-bit text, and a decoded ENVID or ORCPT any octet; those become "?".
 */
function statusValue(s: string): string {
  return echoText(clean(s), 900);
}

function statusPart(input: DsnInput): string {
  const msg = [`Reporting-MTA: dns;${statusValue(input.reportingMta)}`];
  if (input.originalEnvelopeId) msg.push(`Original-Envelope-Id: ${statusValue(input.originalEnvelopeId)}`);
  msg.push(`X-Mailgw-Queue-Id: ${statusValue(input.originalQueueId)}`, `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`);
  const blocks = [msg.join(CRLF)];
  for (const r of input.recipients) {
    const f: string[] = [];
    if (r.orcpt) f.push(`Original-Recipient: ${statusValue(decodeOrcpt(r.orcpt))}`);
    f.push(`Final-Recipient: ${typedAddress(r.address)}`, `Action: ${r.action}`, `Status: ${r.status}`);
    if (r.remoteMta) f.push(`Remote-MTA: dns;${statusValue(r.remoteMta)}`);
    if (r.diagnostic) f.push(`Diagnostic-Code: smtp;${statusValue(r.diagnostic)}`);
    if (r.lastAttemptAt) f.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttemptAt)}`);
    if (r.willRetryUntil) f.push(`Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}`);
    blocks.push(f.join(CRLF));
  }
  return blocks.join(CRLF + CRLF) + CRLF;
}

function boundaryFor(parts: Buffer[]): string {
  for (;;) {
    const b = `=_mailgw_${randomBytes(12).toString('hex')}`;
    if (!parts.some((p) => p.includes(b))) return b;
  }
}

/** The DSN as a complete message (CRLF line ends), ready for the queue. */
export function composeDsn(input: DsnInput): Buffer {
  if (input.recipients.length === 0) throw new RangeError('a DSN needs at least one recipient');
  const actions = new Set(input.recipients.map((r) => r.action));
  // One DSN reports one kind of event; its subject says which.
  const action: DsnAction = actions.has('failed') ? 'failed' : actions.has('delayed') ? 'delayed' : actions.has('relayed') && !actions.has('delivered') ? 'relayed' : 'delivered';
  const header = input.original ? messageHeader(input.original) : null;
  const fields = header ? parseHeaderFields(header.header) : [];
  const subject = headerValue(fields, 'subject');
  const origMessageId = headerValue(fields, 'message-id');
  // The header section with the empty line that ends it.
  const headers = header ? Buffer.concat([header.header, Buffer.from(CRLF)]) : null;

  // RFC 3461 §4.3: only a failure DSN returns the full message.
  // A binary original (RFC 3030) is no 8bit content: its header only.
  const full = input.ret === 'FULL' && action === 'failed' && input.original !== null && !input.originalBinary;
  let returned: Buffer | null = null;
  let returnedType = '';
  if (full) {
    returned = input.original;
    returnedType = 'message/rfc822';
  } else if (headers) {
    returned = headers;
    returnedType = 'text/rfc822-headers';
  }

  const human = Buffer.from(humanPart(input, action, subject), 'utf8');
  const status = Buffer.from(statusPart(input), 'utf8');
  const boundary = boundaryFor([human, status, ...(returned ? [returned] : [])]);
  const eightBit = (b: Buffer) => b.some((c) => c > 0x7f);
  const top = [
    `From: Mail Delivery System <${clean(input.from)}>`,
    `To: <${clean(input.to)}>`,
    `Date: ${rfc5322Date(input.date)}`,
    `Subject: ${SUBJECT_PREFIX[action]}: ${subject ? clean(subject, 200) : '(no subject)'}`,
    `Message-ID: ${input.messageId}`,
    ...(origMessageId ? [`In-Reply-To: ${clean(origMessageId)}`, `References: ${clean(origMessageId)}`] : []),
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-formatted message. Portions of it may not be readable without a MIME-capable mail program.',
    '',
  ].join(CRLF);
  const parts: Buffer[] = [
    Buffer.from(top + CRLF, 'utf8'),
    Buffer.from(`--${boundary}${CRLF}Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: ${eightBit(human) ? '8bit' : '7bit'}${CRLF}${CRLF}`),
    human,
    Buffer.from(`${CRLF}--${boundary}${CRLF}Content-Type: message/delivery-status${CRLF}${CRLF}`),
    status,
  ];
  if (returned) {
    const enc = eightBit(returned) ? '8bit' : '7bit';
    parts.push(Buffer.from(`${CRLF}--${boundary}${CRLF}Content-Type: ${returnedType}${CRLF}Content-Transfer-Encoding: ${enc}${CRLF}${CRLF}`), returned);
  }
  // The CRLF before a delimiter belongs to the delimiter, not to the part.
  parts.push(Buffer.from(`${CRLF}--${boundary}--${CRLF}`));
  return Buffer.concat(parts);
}
