// Every nodemailer internal @mailgw/worker relies on, applied per connection, and the check at
// load that the installed nodemailer is the version they were read in (10.6.1,
// dist/esm/smtp-connection/index.js and data-stream.js, the ESM copy this package imports).
// Upgrading means re-reading the members below, running packages/worker/test,
// test/worker/chunking.test.ts, test/e2e/binarymime.test.ts and
// test/security/outbound-smuggling.test.ts, then changing NODEMAILER_VERSION and the pin in
// package.json together.
//
//   SMTPConnection#_createSendStream()  wrapped on each connection mailgw opens (own property),
//                                       to set the fast transform on the DataStream it creates
//   DataStream#_transform               replaced on those DataStream instances only (own
//                                       property): fast-data-stream.ts
//   DataStream#_flush, #push            wrapped on those instances: push holds the latest chunk
//                                       back; it and the push _flush makes (its final ".")
//                                       leave in one corked write of the socket
//   SMTPConnection#_socket              corked around those two pushes (the DataStream is
//                                       piped to it, so each push writes at once)
//   SMTPConnection#_envelope.rejectedErrors
//                                       read after a failed DATA, whose error no longer lists
//                                       the RCPTs refused earlier (rcptRejections)
//   SMTPConnection#_ehloLines           read before MAIL (ehloOffers): the next hop's EHLO
//                                       keywords, for outboundTransfer: SMTPUTF8 (nodemailer
//                                       sends the keyword only when offered, and otherwise sends
//                                       UTF-8 addresses without it: a silent downgrade),
//                                       CHUNKING and BINARYMIME (which nodemailer does not read)
//   SMTPConnection#_sendCommand, _responseActions, _createSendStream
//                                       for BDAT (useChunking, one transaction at a time, on
//                                       the connections mailgw opens): MAIL's BODY= rewritten
//                                       for BINARYMIME; "DATA" not sent, its reply action run
//                                       with a local "250" once the RCPT replies are in (after
//                                       the last RCPT reply when pipelined); the send stream is
//                                       "BDAT <n> LAST" and the bytes as they are, answered
//                                       through nodemailer's own reply action for the message
//   SMTPConnection#_sendCommand, _responseActions
//                                       for recipient probes (sendCommand): MAIL FROM and RCPT TO
//                                       one at a time on an open session, each reply read by an
//                                       action of our own; then the session is closed (QUIT)
//
// BullMQ is used through its public API (Worker, Job, DelayedError, UnrecoverableError), but
// for abandonWorker below, which reads two Worker internals of BullMQ 6.7.0 (pinned, with its
// storage layout, in @mailgw/queue's library-overrides.ts):
//
//   Worker#lockManager.close()           the lock renewal timer of the Worker's jobs
//   Worker#stalledCheckStopper()         stops the stalled-jobs checker
//
// test/worker/abandoned-close.test.ts shows both with a real Worker.
import type { Worker } from 'bullmq';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { checkPinnedVersion, installedVersion } from '@mailgw/queue';
import { Transform } from 'node:stream';
import { fastTransform, type TransformFn } from './fast-data-stream.js';

export const NODEMAILER_VERSION = '10.6.1';

checkPinnedVersion('nodemailer', NODEMAILER_VERSION, installedVersion('nodemailer', import.meta.url), 'packages/worker/src/library-overrides.ts');

interface DataStreamInternals {
  _transform: TransformFn;
  _flush(done: () => void): void;
  push(chunk: Buffer | null): boolean;
}

interface SendStreamInternals {
  _createSendStream(callback: (...args: unknown[]) => void): DataStreamInternals;
  /** The connection's socket (TLS or plain), which the DataStream is piped to. */
  _socket?: { cork(): void; uncork(): void };
}

/**
 * Outbound DATA on `conn` goes through the fast DataStream transform (fast-data-stream.ts), and
 * each stream holds its latest output chunk back until the next one or the end, so that the
 * last bytes of the message and the final "." leave in one write (the socket corked around
 * them: one writev, no copy of the message): one system call and one segment for the next hop
 * to read instead of two (most mail is a single chunk). Own
 * properties of each stream this connection creates; other SMTPConnection instances and the
 * DataStream class are untouched.
 */
export function useFastDataStream(conn: SMTPConnection): void {
  const c = conn as unknown as SendStreamInternals;
  const create = c._createSendStream;
  c._createSendStream = function (this: SendStreamInternals, callback) {
    const stream = create.call(this, callback);
    stream._transform = fastTransform;
    const push = stream.push.bind(stream);
    const flush = stream._flush;
    let held: Buffer | null = null;
    let ending = false;
    stream.push = (chunk) => {
      // The end of the stream, or nodemailer's final "." (pushed by its own _flush): out with what is held.
      if (chunk === null) {
        if (held) push(held);
        held = null;
        return push(null);
      }
      if (ending) {
        // The last bytes and the final "." in one write (writev) without copying the message:
        // the pipe writes each pushed chunk to the socket at once, and the cork holds them.
        const socket = c._socket;
        socket?.cork();
        try {
          if (held) push(held);
          held = null;
          return push(chunk);
        } finally {
          socket?.uncork();
        }
      }
      const previous = held;
      held = chunk;
      return previous ? push(previous) : true;
    };
    stream._flush = function (this: DataStreamInternals, done) {
      ending = true;
      flush.call(this, done);
    };
    return stream;
  };
}

interface ChunkingInternals {
  _sendCommand(str: string, logStr?: string): void;
  _responseActions: Array<(str: string) => void>;
  _envelope?: { pipelined?: boolean };
  _socket: { write(b: Buffer): boolean };
  _createSendStream(callback: (...args: unknown[]) => void): NodeJS.WritableStream;
  _currentDataStream: Transform | false;
}

/** What the next transaction on a connection sends instead of DATA (useChunking). */
export interface ChunkingPlan {
  /** BODY= on MAIL FROM: BINARYMIME replaces nodemailer's BODY=8BITMIME (or is added). */
  readonly binaryMime: boolean;
}

/** A local reply that stands in for the DATA reply nodemailer waits for (never on the wire). */
const NO_DATA_REPLY = '250 2.0.0 BDAT follows (mailgw: no DATA command)';

/**
 * BDAT (RFC 3030) on `conn` instead of DATA, for the transactions `plan()` returns a plan for
 * (it is asked once per MAIL FROM). nodemailer's envelope handling (MAIL, RCPT, pipelining,
 * refusals) and its reply handling for the message stay as they are; only the DATA command is
 * left out and the message goes as "BDAT <n> LAST" with its bytes unchanged (one chunk: the
 * body is in memory already; no dot-stuffing, no CRLF rewriting). Other connections are
 * untouched.
 */
export function useChunking(conn: SMTPConnection, plan: () => ChunkingPlan | null): void {
  const c = conn as unknown as ChunkingInternals;
  const sendCommand = c._sendCommand;
  const createSendStream = c._createSendStream;
  let current: ChunkingPlan | null = null;
  c._sendCommand = function (this: ChunkingInternals, str: string, logStr?: string) {
    if (/^MAIL FROM:/i.test(str)) {
      current = plan();
      if (current?.binaryMime) str = / BODY=8BITMIME\b/i.test(str) ? str.replace(/ BODY=8BITMIME\b/i, ' BODY=BINARYMIME') : `${str} BODY=BINARYMIME`;
      return sendCommand.call(this, str, logStr);
    }
    if (str !== 'DATA' || !current) return sendCommand.call(this, str, logStr);
    // nodemailer pushed the DATA reply action just before sending DATA: take it back.
    const dataAction = this._responseActions.pop()!;
    if (!this._envelope?.pipelined) {
      // Every RCPT reply is in (nodemailer sends DATA only then).
      queueMicrotask(() => dataAction.call(this, NO_DATA_REPLY));
      return;
    }
    // Pipelined: the last queued action is the last RCPT's; the "DATA reply" comes right after it.
    const lastRcpt = this._responseActions.pop()!;
    this._responseActions.push(function (this: ChunkingInternals, reply: string) {
      lastRcpt.call(this, reply);
      dataAction.call(this, NO_DATA_REPLY);
    });
  };
  c._createSendStream = function (this: ChunkingInternals, callback) {
    if (!current) return createSendStream.call(this, callback);
    current = null;
    // nodemailer's stream pipes a DataStream into the socket and queues the reply action for
    // the message; this keeps the action and replaces the stream by one that collects the bytes.
    const dataStream = createSendStream.call(this, callback) as unknown as Transform;
    dataStream.unpipe();
    dataStream.destroy();
    const parts: Buffer[] = [];
    let size = 0;
    const bdat = Object.assign(
      new Transform({
        transform(chunk: Buffer | string, _enc, done) {
          const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          parts.push(b);
          size += b.length;
          done();
        },
        flush: (done) => {
          // Written to the socket now, ahead of the chunk's bytes (which go through the pipe).
          sendCommand.call(this, `BDAT ${size} LAST`);
          for (const p of parts) bdat.push(p);
          bdat.outByteCount = bdat.inByteCount = size;
          done();
        },
      }),
      { inByteCount: 0, outByteCount: 0 },
    );
    this._currentDataStream = bdat;
    bdat.pipe(this._socket as unknown as NodeJS.WritableStream, { end: false });
    bdat.once('end', () => {
      if (this._currentDataStream === bdat) this._currentDataStream = false;
    });
    return bdat;
  };
}

/**
 * Sends one command on an open session and resolves with the reply line(s) nodemailer read for
 * it (a recipient probe's MAIL FROM and RCPT TO: nodemailer has no API for an envelope without
 * DATA). Rejects when the connection ends or fails first.
 */
export function sendCommand(conn: SMTPConnection, line: string): Promise<string> {
  const c = conn as unknown as ChunkingInternals;
  return new Promise<string>((resolve, reject) => {
    const gone = (err?: Error) => {
      conn.off('error', gone);
      conn.off('end', gone);
      reject(err ?? new Error('connection closed'));
    };
    conn.once('error', gone);
    conn.once('end', gone);
    c._responseActions.push((str: string) => {
      conn.off('error', gone);
      conn.off('end', gone);
      resolve(str);
    });
    c._sendCommand(line);
  });
}

/** The EHLO keywords the next hop of `conn` announced (upper case: "CHUNKING", "SMTPUTF8", …); none after HELO. Read only. */
export function ehloOffers(conn: SMTPConnection): Set<string> {
  const lines = (conn as unknown as { _ehloLines?: unknown })._ehloLines;
  const out = new Set<string>();
  if (Array.isArray(lines)) for (const l of lines) if (typeof l === 'string') out.add((l.split(/[\s=]/)[0] ?? '').toUpperCase());
  return out;
}

/** nodemailer's error, as far as the worker reads it. */
export interface SmtpError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: SmtpError[];
}

/**
 * When DATA fails after some RCPTs were refused, nodemailer's error no longer lists those
 * refusals; its private envelope still does. Read only; covered by a test (partial RCPT
 * rejections followed by a DATA failure).
 */
export function rcptRejections(conn: SMTPConnection): SmtpError[] {
  const env = (conn as unknown as { _envelope?: { rejectedErrors?: SmtpError[] } })._envelope;
  return Array.isArray(env?.rejectedErrors) ? env.rejectedErrors : [];
}

/**
 * What BullMQ's close(true) stops, for a Worker whose close() is still waiting for its jobs.
 * close() is memoised, so a close(true) after it is the same waiting promise: the lock renewal
 * would go on extending the abandoned jobs' locks (no other worker could take them over) and
 * its timer, with the stalled checker and the blocking connection, would keep the process
 * alive. Closes the lock manager, stops the stalled checker, disconnects the Worker
 * (QueueBase#disconnect, public: the blocking connection BullMQ owns).
 */
export async function abandonWorker(w: Worker): Promise<void> {
  const internals = w as unknown as { lockManager?: { close(): Promise<void> }; stalledCheckStopper?: () => void };
  await internals.lockManager?.close();
  internals.stalledCheckStopper?.();
  await w.disconnect();
}
