// DATA → queue writer, streaming: line endings checked (or normalised), the header collected
// and kept in memory (the filters may still change it), the body passed through chunk by
// chunk with the writer's backpressure, and every filter session fed the same bytes as they
// arrive (the header as received, then the body). The policy judges hop count and sizes as
// the bytes arrive and decides which incoming fields the header firewall removes; after a
// reject the rest of DATA is read and dropped (smtp-server needs the stream consumed before
// it can answer). The header is written at the commit (intake.ts), once the filters answered.
import { REPLIES, data, firewall, hopCounts, keepsRoutingHeaders, reject, type Decision, type Session } from '@mailgw/policy';
import type { MessageWriter } from '@mailgw/queue';
import { HeaderCollector, fieldValue, parseHeaderFields, rfc5322Date, type HeaderEnd, type HeaderField, type MessageFilterSession } from '@mailgw/mail';
import { LineEndingFilter } from './line-endings.js';
import { messageIdForReply } from './trace-headers.js';

/**
 * The header is held in memory to be rewritten, so it is capped here whatever maxHeaderSize
 * (or Bypass-Message-Size-Limit) allows: a resource limit of the listener, not a policy.
 */
export const HEADER_HOLD_LIMIT = 8 * 1024 * 1024;

const CRLF = Buffer.from('\r\n');

export interface ReceiveOptions {
  /** The policy session when DATA was given. */
  readonly session: Session;
  readonly writer: MessageWriter;
  /** Our Received field, ending in CRLF. */
  readonly receivedHeader: string;
  /** Message-ID to add when the message has none. */
  readonly generatedMessageId: string;
  readonly date: Date;
  /** Filter sessions that see the message as received (none for sessions that bypass them). */
  readonly filters?: readonly MessageFilterSession[];
  /** BODY=BINARYMIME (RFC 3030): bare CR/LF rules do not apply, the octets are stored as they are. */
  readonly binary?: boolean;
  /** The transaction's receiveSizeLimit: a message growing past it is refused (552 5.2.3) before more is stored. */
  readonly receiveSizeLimit?: number | undefined;
}

/** The header section as it will be stored, before the filters' edits. */
export interface HeaderDraft {
  /** Our Received field (ending in CRLF): it goes on top. */
  readonly received: Buffer;
  /** The client's fields that stay (routing headers and firewalled fields removed). */
  readonly fields: readonly HeaderField[];
  /** Fields we add below the client's: Message-ID and Date when it sent none. */
  readonly generated: readonly Buffer[];
  /** Whether an empty line follows (there was one, or a body without one). */
  readonly separator: boolean;
  /** Fields the header firewall removed, with the policy's reason. */
  readonly firewalled: ReadonlyArray<{ readonly name: string; readonly reason: string }>;
}

/** The header section, written: top fields, our Received, the fields, the generated ones, the empty line. */
export function assembleHeader(d: HeaderDraft, edited: { top: readonly Buffer[]; fields: readonly Buffer[] }): Buffer {
  const out: Buffer[] = [...edited.top, d.received];
  for (const raw of edited.fields) {
    out.push(raw);
    // A last field without its CRLF (a message without a body) gets one.
    if (!raw.subarray(-2).equals(CRLF)) out.push(CRLF);
  }
  out.push(...d.generated);
  if (d.separator) out.push(CRLF);
  return Buffer.concat(out);
}

export type ReceiveOutcome =
  | { kind: 'complete'; messageId: string; messageBytes: number; header: HeaderDraft }
  | { kind: 'rejected'; decision: Decision; messageBytes: number }
  | { kind: 'store-failed'; error: unknown; messageBytes: number };

export async function receiveMessage(stream: AsyncIterable<Buffer>, opts: ReceiveOptions): Promise<ReceiveOutcome> {
  const { session, writer } = opts;
  const rejectBare = session.connector.config.bareLinefeedRejectionEnabled;
  const lines = new LineEndingFilter(opts.binary ? 'binary' : rejectBare ? 'reject' : 'normalise');
  const header = new HeaderCollector();
  let headerDone = false;
  let headerBytes = 0;
  let receivedHeaders = 0;
  let localHops = 0;
  let messageId = opts.generatedMessageId;
  let messageBytes = 0;
  let failure: Decision | null = null;
  let storeError: unknown = null;
  let draft: HeaderDraft | null = null;
  const filters = opts.filters ?? [];
  // A filter's own trouble is its end()'s outcome; a throw here must not lose the message.
  const feed = async (f: (s: MessageFilterSession) => void | Promise<void>): Promise<void> => {
    if (filters.length === 0) return;
    await Promise.all(filters.map(async (s) => {
      try {
        await f(s);
      } catch {
        // reported by the session's end()
      }
    }));
  };

  const judge = (): Decision | null => {
    const d = data(session, { bareLineEndings: lines.bare, receivedHeaders, localHops, headerBytes: headerDone ? headerBytes : header.bytes, messageBytes, receiveSizeLimit: opts.receiveSizeLimit });
    if (d.verdict !== 'accept') return d;
    if (!headerDone && header.bytes > HEADER_HOLD_LIMIT) {
      return reject(REPLIES.headerTooBig, 'header-hold-limit', `header longer than the listener's ${HEADER_HOLD_LIMIT}-byte hold limit`);
    }
    return null;
  };

  const takeHeader = async (end: HeaderEnd): Promise<void> => {
    headerDone = true;
    headerBytes = end.header.length;
    const fields = parseHeaderFields(end.header);
    ({ receivedHeaders, localHops } = hopCounts(session, fields.filter((f) => f.name === 'received').map(fieldValue)));
    failure = judge();
    if (failure) return;
    await feed((s) => s.header(fields));
    const keepRouting = keepsRoutingHeaders(session);
    const firewalled: Array<{ name: string; reason: string }> = [];
    const kept = fields.filter((f) => {
      if (!keepRouting && (f.name === 'received' || f.name.startsWith('resent-'))) return false;
      const why = firewall(session, f.name, fieldValue(f));
      if (why) firewalled.push({ name: f.name, reason: why });
      return why === null;
    });
    const idField = fields.find((f) => f.name === 'message-id');
    const generated: Buffer[] = [];
    if (idField) messageId = messageIdForReply(fieldValue(idField));
    else generated.push(Buffer.from(`Message-ID: ${opts.generatedMessageId}\r\n`, 'latin1'));
    if (!fields.some((f) => f.name === 'date')) generated.push(Buffer.from(`Date: ${rfc5322Date(opts.date)}\r\n`, 'latin1'));
    draft = { received: Buffer.from(opts.receivedHeader, 'utf8'), fields: kept, generated, separator: end.separator || end.rest.length > 0, firewalled };
    if (end.rest.length > 0) await body(end.rest);
  };

  const body = async (chunk: Buffer): Promise<void> => {
    await Promise.all([writer.write(chunk), feed((s) => s.body(chunk))]);
  };

  const consume = async (chunk: Buffer): Promise<void> => {
    // Once a bare CR/LF is seen, the policy judges before anything more is stored.
    if (lines.bare) {
      failure = judge();
      if (failure) return;
    }
    if (headerDone) {
      failure = judge();
      if (!failure && chunk.length > 0) await body(chunk);
      return;
    }
    const end = header.push(chunk);
    if (end) await takeHeader(end);
    else failure = judge();
  };

  try {
    for await (const raw of stream) {
      messageBytes += raw.length;
      if (failure || storeError) continue; // drain
      try {
        await consume(lines.push(raw));
      } catch (e) {
        storeError = e;
      }
    }
    if (!failure && !storeError) {
      try {
        const tail = lines.end();
        await consume(tail);
        if (!failure && !headerDone) await takeHeader(header.end());
      } catch (e) {
        storeError = e;
      }
    }
  } catch (e) {
    // The client went away mid-DATA: nothing is stored.
    await writer.abort();
    throw e;
  }
  if (failure) {
    await writer.abort();
    return { kind: 'rejected', decision: failure, messageBytes };
  }
  if (storeError) {
    await writer.abort();
    return { kind: 'store-failed', error: storeError, messageBytes };
  }
  return { kind: 'complete', messageId, messageBytes, header: draft! };
}
