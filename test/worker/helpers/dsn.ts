/** Reads a DSN as a mail client would: mailparser, then the message/delivery-status fields. */
import { simpleParser, type ParsedMail } from 'mailparser';

export interface ParsedDsn {
  readonly mail: ParsedMail;
  /** Per-message fields, then one record per recipient. */
  readonly message: Record<string, string>;
  readonly recipients: Array<Record<string, string>>;
  /** The returned original (message/rfc822) or headers (text/rfc822-headers). */
  readonly returned: { type: string; content: Buffer } | null;
}

export async function parseDsn(raw: Buffer): Promise<ParsedDsn> {
  const mail = await simpleParser(raw);
  const type = mail.headers.get('content-type') as { value: string; params: Record<string, string> } | undefined;
  if (type?.value !== 'multipart/report' || type.params['report-type'] !== 'delivery-status') throw new Error(`not a DSN: ${type?.value}`);
  // mailparser reads message/delivery-status as a text part and appends it to mail.text,
  // after the human-readable part.
  const text = mail.text ?? '';
  const at = text.indexOf('Reporting-MTA:');
  if (at < 0) throw new Error('no message/delivery-status fields in the DSN');
  const blocks = text
    .slice(at)
    .trim()
    .split(/\r?\n\r?\n/)
    .map((b) => Object.fromEntries(b.split(/\r?\n/).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])) as Record<string, string>);
  const ret = mail.attachments.find((a) => a.contentType === 'message/rfc822' || a.contentType === 'text/rfc822-headers');
  return { mail, message: blocks[0]!, recipients: blocks.slice(1), returned: ret ? { type: ret.contentType, content: ret.content } : null };
}
