// What every policy function returns: a verdict, the reply to speak, and why.
import type { Reply } from './replies.js';

export type Verdict = 'accept' | 'reject' | 'defer';

export interface Reason {
  /** Stable, machine-readable: "relay-denied", "sender-not-permitted", … */
  readonly code: string;
  /** For the log and `mailgw explain`: which connector, range, right, group or grant decided. */
  readonly message: string;
}

export interface Decision {
  readonly verdict: Verdict;
  readonly reply: Reply;
  readonly reason: Reason;
  /** The connection must be closed after the reply. */
  readonly disconnect: boolean;
}

export function accept(reply: Reply, code: string, message: string): Decision {
  return { verdict: 'accept', reply, reason: { code, message }, disconnect: false };
}

export function reject(reply: Reply, code: string, message: string, disconnect = false): Decision {
  return { verdict: reply.code >= 400 && reply.code < 500 ? 'defer' : 'reject', reply, reason: { code, message }, disconnect };
}
