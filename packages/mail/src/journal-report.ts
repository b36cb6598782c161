// Envelope journal reports, as Exchange 2007 and later write them (Exchange's "Journal reports";
// the body's lines per [MS-XJRNL]): a message to the journaling mailbox with an empty
// X-MS-Journal-Report field, a text part listing the original's sender, subject, Message-ID and
// every envelope recipient (Bcc ones too) one per line, and the original attached unaltered as
// message/rfc822. Archiving services read exactly this. Pure: composes the bytes around the
// original, which the listener streams between `prefix` and `suffix` without holding it.
import { randomBytes } from 'node:crypto';
import { rfc5322Date } from './date.js';
import { findAddresses } from './address-fields.js';
import type { HeaderField } from './header-block.js';
import { fieldText } from './header-block.js';

export type JournalRecipientKind = 'To' | 'Cc' | 'Bcc' | 'Recipient';

export interface JournalRecipient {
  readonly address: string;
  readonly kind: JournalRecipientKind;
}

export interface JournalReportInput {
  /** The report's From: postmaster@<default accepted domain>. */
  readonly from: string;
  /** The journaling mailbox. */
  readonly to: string;
  /** The report's own Message-ID, with its angle brackets. */
  readonly messageId: string;
  readonly date: Date;
  /** The original's envelope sender ('' for the null sender). */
  readonly sender: string;
  /** The original's header, as it goes to its recipients. */
  readonly fields: readonly HeaderField[];
  /** The original's Message-ID as the listener answered it (with brackets). */
  readonly originalMessageId: string;
  readonly recipients: readonly JournalRecipient[];
  /** How the original travels in the message/rfc822 part: as its BODY= said. */
  readonly transferEncoding: '7bit' | '8bit' | 'binary';
}

const CRLF = '\r\n';

/** No CR/LF/control characters in a report line or header field. */
function clean(s: string, max = 998): string {
  return s.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trim().slice(0, max);
}

function firstAddress(fields: readonly HeaderField[], name: string): string | null {
  const f = fields.find((x) => x.name === name);
  const a = f ? findAddresses(fieldText(f))[0] : undefined;
  return a ? `${a.address.local}@${a.address.domain}` : null;
}

function addressesOf(fields: readonly HeaderField[], name: string): Set<string> {
  return new Set(fields.filter((f) => f.name === name).flatMap((f) => findAddresses(fieldText(f)).map((a) => `${a.address.local}@${a.address.domain}`.toLowerCase())));
}

/**
 * Each envelope recipient's line: as Exchange, To/Cc/Bcc (by the header's To and Cc fields, the
 * others Bcc) only when the addressing can be trusted, i.e. the message was submitted by a user
 * who logged on and may not send as anyone (a server); otherwise "Recipient".
 */
export function journalRecipients(recipients: readonly string[], fields: readonly HeaderField[], addressingTrusted: boolean): JournalRecipient[] {
  if (!addressingTrusted) return recipients.map((address) => ({ address, kind: 'Recipient' }));
  const to = addressesOf(fields, 'to');
  const cc = addressesOf(fields, 'cc');
  return recipients.map((address) => {
    const a = address.toLowerCase();
    return { address, kind: to.has(a) ? 'To' : cc.has(a) ? 'Cc' : 'Bcc' };
  });
}

/** The report's text part: one value per line (Exchange's journal report body). */
export function journalReportLines(i: Pick<JournalReportInput, 'sender' | 'fields' | 'originalMessageId' | 'recipients'>): string[] {
  const subject = i.fields.find((f) => f.name === 'subject');
  const from = firstAddress(i.fields, 'from');
  const headerSender = firstAddress(i.fields, 'sender');
  const lines = [`Sender: ${clean(i.sender === '' ? (from ?? '<>') : i.sender)}`, `Subject: ${clean(subject ? fieldText(subject) : '')}`, `Message-Id: ${clean(i.originalMessageId)}`];
  // Send on behalf: a Sender field that is not the From's author.
  if (from && headerSender && from.toLowerCase() !== headerSender.toLowerCase()) lines.push(`On-Behalf-Of: ${clean(from)}`);
  for (const r of i.recipients) lines.push(`${r.kind}: ${clean(r.address)}`);
  return lines;
}

/**
 * The bytes before and after the original: the report's header, its text part and the
 * message/rfc822 part's header (`prefix`), and the closing boundary (`suffix`).
 */
export function journalReportParts(i: JournalReportInput): { prefix: Buffer; suffix: Buffer } {
  const boundary = `----=_mailgw_journal_${randomBytes(12).toString('hex')}`;
  const subject = i.fields.find((f) => f.name === 'subject');
  // The original's Subject, raw (an encoded-word stays one); UTF-8 only if the original had it.
  const subjectRaw = subject ? subject.raw.toString('latin1').slice(subject.raw.indexOf(':') + 1).replace(/\r\n(?=[ \t])/g, '').trim() : '';
  const text = Buffer.from(journalReportLines(i).join(CRLF) + CRLF, 'utf8');
  const utf8 = /[^\x00-\x7f]/.test(text.toString('latin1'));
  const head = [
    `From: ${i.from}`,
    `To: ${i.to}`,
    `Subject: ${clean(subjectRaw)}`,
    `Date: ${rfc5322Date(i.date)}`,
    `Message-ID: ${i.messageId}`,
    'MIME-Version: 1.0',
    'X-MS-Journal-Report:',
    'Auto-Submitted: auto-generated',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
  ].join(CRLF);
  const prefix = Buffer.concat([
    Buffer.from(`${head}${CRLF}${CRLF}This is a journal report.${CRLF}${CRLF}--${boundary}${CRLF}Content-Type: text/plain; charset=${utf8 ? 'utf-8' : 'us-ascii'}${CRLF}Content-Transfer-Encoding: ${utf8 ? '8bit' : '7bit'}${CRLF}${CRLF}`, 'latin1'),
    text,
    Buffer.from(`${CRLF}--${boundary}${CRLF}Content-Type: message/rfc822${CRLF}Content-Disposition: attachment${CRLF}${i.transferEncoding === '7bit' ? '' : `Content-Transfer-Encoding: ${i.transferEncoding}${CRLF}`}${CRLF}`, 'latin1'),
  ]);
  // The original ends with CRLF as stored (the listener normalises line ends); the boundary follows.
  const suffix = Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'latin1');
  return { prefix, suffix };
}
