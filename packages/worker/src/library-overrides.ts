// Every nodemailer internal @mailgw/worker relies on, applied per connection, and the check at
// load that the installed nodemailer is the version they were read in (10.6.1,
// dist/esm/smtp-connection/index.js and data-stream.js, the ESM copy this package imports).
// Upgrading means re-reading the members below, running packages/worker/test and
// test/security/outbound-smuggling.test.ts, then changing NODEMAILER_VERSION and the pin in
// package.json together.
//
//   SMTPConnection#_createSendStream()  wrapped on each connection mailgw opens (own property),
//                                       to set the fast transform on the DataStream it creates
//   DataStream#_transform               replaced on those DataStream instances only (own
//                                       property): fast-data-stream.ts
//   SMTPConnection#_supportedExtensions
//                                       read before MAIL: whether the next hop offered SMTPUTF8
//                                       (nodemailer sends the keyword only then, and otherwise
//                                       sends UTF-8 addresses without it: a silent downgrade)
//   SMTPConnection#_envelope.rejectedErrors
//                                       read after a failed DATA, whose error no longer lists
//                                       the RCPTs refused earlier (rcptRejections)
//
// BullMQ is used through its public API only (Worker, Job, DelayedError, UnrecoverableError);
// its storage layout is relied on in @mailgw/queue (see its library-overrides.ts).
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { checkPinnedVersion, installedVersion } from '@mailgw/queue';
import { fastTransform, type TransformFn } from './fast-data-stream.js';

export const NODEMAILER_VERSION = '10.6.1';

checkPinnedVersion('nodemailer', NODEMAILER_VERSION, installedVersion('nodemailer', import.meta.url), 'packages/worker/src/library-overrides.ts');

interface SendStreamInternals {
  _createSendStream(callback: (...args: unknown[]) => void): { _transform: TransformFn };
}

/**
 * Outbound DATA on `conn` goes through the fast DataStream transform (fast-data-stream.ts):
 * an own property of each stream this connection creates. Other SMTPConnection instances and
 * the DataStream class are untouched.
 */
export function useFastDataStream(conn: SMTPConnection): void {
  const c = conn as unknown as SendStreamInternals;
  const create = c._createSendStream;
  c._createSendStream = function (this: SendStreamInternals, callback) {
    const stream = create.call(this, callback);
    stream._transform = fastTransform;
    return stream;
  };
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

/** The EHLO keywords nodemailer recorded for `conn` (upper case, e.g. "SMTPUTF8"). Read only. */
export function offersExtension(conn: SMTPConnection, keyword: string): boolean {
  const ext = (conn as unknown as { _supportedExtensions?: unknown })._supportedExtensions;
  return Array.isArray(ext) && ext.includes(keyword);
}
