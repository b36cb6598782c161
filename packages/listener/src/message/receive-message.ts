// DATA → queue writer, streaming: line endings checked (or normalised), the header collected
// and rewritten (our Received on top, the client's Received/Resent-* dropped without
// Accept-Headers-Routing, Message-ID/Date added when missing), the body passed through chunk
// by chunk with the writer's backpressure. The policy judges hop count and sizes as the bytes
// arrive; after a reject the rest of DATA is read and dropped (smtp-server needs the stream
// consumed before it can answer).
import { REPLIES, data, hopCounts, keepsRoutingHeaders, reject, type Decision, type Session } from '@mailgw/policy';
import type { MessageWriter } from '@mailgw/queue';
import { HeaderCollector, fieldValue, parseHeaderFields, rfc5322Date, type HeaderEnd } from '@mailgw/mail';
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
}

export type ReceiveOutcome =
  | { kind: 'complete'; messageId: string; messageBytes: number }
  | { kind: 'rejected'; decision: Decision; messageBytes: number }
  | { kind: 'store-failed'; error: unknown; messageBytes: number };

export async function receiveMessage(stream: AsyncIterable<Buffer>, opts: ReceiveOptions): Promise<ReceiveOutcome> {
  const { session, writer } = opts;
  const rejectBare = session.connector.config.bareLinefeedRejectionEnabled;
  const lines = new LineEndingFilter(rejectBare ? 'reject' : 'normalise');
  const header = new HeaderCollector();
  let headerDone = false;
  let headerBytes = 0;
  let receivedHeaders = 0;
  let localHops = 0;
  let messageId = opts.generatedMessageId;
  let messageBytes = 0;
  let failure: Decision | null = null;
  let storeError: unknown = null;

  const judge = (): Decision | null => {
    const d = data(session, { bareLineEndings: lines.bare, receivedHeaders, localHops, headerBytes: headerDone ? headerBytes : header.bytes, messageBytes });
    if (d.verdict !== 'accept') return d;
    if (!headerDone && header.bytes > HEADER_HOLD_LIMIT) {
      return reject(REPLIES.headerTooBig, 'header-hold-limit', `header longer than the listener's ${HEADER_HOLD_LIMIT}-byte hold limit`);
    }
    return null;
  };

  const writeHeader = async (end: HeaderEnd): Promise<void> => {
    headerDone = true;
    headerBytes = end.header.length;
    const fields = parseHeaderFields(end.header);
    ({ receivedHeaders, localHops } = hopCounts(session, fields.filter((f) => f.name === 'received').map(fieldValue)));
    failure = judge();
    if (failure) return;
    const keep = keepsRoutingHeaders(session);
    const kept = keep ? fields : fields.filter((f) => f.name !== 'received' && !f.name.startsWith('resent-'));
    const idField = fields.find((f) => f.name === 'message-id');
    const out: Buffer[] = [Buffer.from(opts.receivedHeader, 'utf8')];
    for (const f of kept) out.push(f.raw);
    const last = kept[kept.length - 1]?.raw;
    if (last && !last.subarray(-2).equals(CRLF)) out.push(CRLF);
    if (idField) messageId = messageIdForReply(fieldValue(idField));
    else out.push(Buffer.from(`Message-ID: ${opts.generatedMessageId}\r\n`, 'latin1'));
    if (!fields.some((f) => f.name === 'date')) out.push(Buffer.from(`Date: ${rfc5322Date(opts.date)}\r\n`, 'latin1'));
    if (end.separator || end.rest.length > 0) out.push(CRLF);
    await writer.write(Buffer.concat(out));
    if (end.rest.length > 0) await writer.write(end.rest);
  };

  const consume = async (chunk: Buffer): Promise<void> => {
    // Once a bare CR/LF is seen, the policy judges before anything more is stored.
    if (lines.bare) {
      failure = judge();
      if (failure) return;
    }
    if (headerDone) {
      failure = judge();
      if (!failure && chunk.length > 0) await writer.write(chunk);
      return;
    }
    const end = header.push(chunk);
    if (end) await writeHeader(end);
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
        if (!failure && !headerDone) await writeHeader(header.end());
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
  return { kind: 'complete', messageId, messageBytes };
}
