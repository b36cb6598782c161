// The envelope as the listener accepts it and the queue keeps it: a sender (or the null
// sender) and recipients, each address as parts, with their RFC 3461 DSN parameters.
import type { MailAddress } from './address.js';

export const DSN_NOTIFY = ['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'] as const;
export type DsnNotify = (typeof DSN_NOTIFY)[number];

/** One recipient of a message, from RCPT TO to the last delivery attempt. */
export interface EnvelopeRecipient extends MailAddress {
  /** NOTIFY=, upper case; absent: the default (failures and delays reported). */
  readonly notify?: readonly DsnNotify[] | undefined;
  /** ORCPT= as the client gave it ("rfc822;bob@example.com"). */
  readonly orcpt?: string | undefined;
}
