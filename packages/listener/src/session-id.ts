// Session ids: the session-id column of the protocol log (Exchange's), one per connection.
// smtp-server makes its own for every accepted socket from 10 random bytes formatted through a
// BigInt: 13 µs of a listener's CPU a connection on a 2-core machine, a percent of a 1 KB
// message. The same 16 base-32 digits come from a random prefix drawn once per process and a
// counter: unique within a process as the random ids are, and across processes (several
// listener processes, restarts) by the prefix, 40 random bits.
import { randomBytes } from 'node:crypto';

const COUNTER_DIGITS = 8;
const COUNTER_SPAN = 32 ** COUNTER_DIGITS;

/** A source of session ids for one process: 16 characters of [0-9a-v]. */
export function sessionIds(prefixBytes: Buffer = randomBytes(5)): () => string {
  const prefix = prefixBytes.readUIntBE(0, 5).toString(32).padStart(8, '0');
  let n = 0;
  return () => {
    const id = prefix + n.toString(32).padStart(COUNTER_DIGITS, '0');
    n = (n + 1) % COUNTER_SPAN;
    return id;
  };
}
