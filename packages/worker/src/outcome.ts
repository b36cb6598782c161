// What one delivery attempt did to one recipient.
import type { Reply } from '@mailgw/mail';

export type RecipientOutcome =
  /** Accepted by the next hop or written to its mailbox. */
  | {
      readonly type: 'delivered';
      readonly reply: Reply;
      readonly remoteMta: string | null;
      /** What a SUCCESS DSN from us would say; null when the next hop took the DSN request over. */
      readonly dsnAction: 'delivered' | 'relayed' | null;
    }
  /** Temporary failure: retried on the queue's schedule. */
  | { readonly type: 'deferred'; readonly reply: Reply; readonly remoteMta: string | null; readonly connectionFailure: boolean }
  /** Permanent failure: the sender gets a DSN. */
  | { readonly type: 'failed'; readonly reply: Reply; readonly remoteMta: string | null }
  /** Nothing was tried: every connection to the destination is in use (maxConnectionsPerDestination). */
  | { readonly type: 'busy'; readonly reply: Reply }
  /** Nothing was tried: an operator suspended the next hop (`mailgw queue suspend`). */
  | { readonly type: 'suspended'; readonly reply: Reply };

/** Outcomes of one attempt, by index into the job's rcptTo. */
export type Outcomes = Map<number, RecipientOutcome>;
