import { randomBytes } from 'node:crypto';

/**
 * Queue ids: unique, time-sortable identifiers of accepted messages. Used as
 * the BullMQ jobId (so they contain no ':') and shown as Exchange's InternalId
 * (`250 2.6.0 … Queued as <id>`).
 *
 * Format: 26 characters of Crockford base32 (ULID layout): 10 characters of
 * milliseconds since the epoch, then 16 characters (80 bits) of randomness.
 * Within one process ids are strictly increasing, even inside one
 * millisecond (the random part is incremented), so lexical order = order of
 * acceptance.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const QUEUE_ID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const TIME_LEN = 10;
const RANDOM_LEN = 16;
const MAX_TIME = 2 ** 48 - 1;
const RANDOM_MAX = (1n << 80n) - 1n;

let lastTime = -1;
let lastRandom = 0n;

function encodeTime(ms: number): string {
  let out = '';
  let t = ms;
  for (let i = 0; i < TIME_LEN; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

function encodeRandom(value: bigint): string {
  let out = '';
  let v = value;
  for (let i = 0; i < RANDOM_LEN; i++) {
    out = ALPHABET[Number(v & 31n)] + out;
    v >>= 5n;
  }
  return out;
}

// Random bytes drawn 10 at a time from a 4 KiB pool: one randomBytes call per 409 ids
// instead of one per id (a system call each).
const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let poolOffset = 0;

function freshRandom(): bigint {
  if (poolOffset + 10 > pool.length) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  const bytes = pool.subarray(poolOffset, poolOffset + 10);
  poolOffset += 10;
  // Keep the top bit clear so that many increments within one millisecond
  // cannot overflow the 80-bit field.
  return (BigInt(bytes[0]! & 0x7f) << 72n) | (BigInt(bytes.readUIntBE(1, 6)) << 24n) | BigInt(bytes.readUIntBE(7, 3));
}

/** Returns a new queue id; `now` (ms since epoch) is for tests. */
export function newQueueId(now: number = Date.now()): string {
  if (!Number.isInteger(now) || now < 0 || now > MAX_TIME) throw new RangeError(`invalid timestamp ${now}`);
  if (now > lastTime) {
    lastTime = now;
    lastRandom = freshRandom();
  } else {
    // Same (or earlier: clock went back) millisecond: stay monotonic.
    lastRandom += 1n;
    if (lastRandom > RANDOM_MAX) {
      lastTime += 1;
      lastRandom = freshRandom();
    }
  }
  return encodeTime(lastTime) + encodeRandom(lastRandom);
}

export function isQueueId(value: unknown): value is string {
  return typeof value === 'string' && QUEUE_ID_RE.test(value);
}

/** Milliseconds since the epoch encoded in a queue id. */
export function queueIdTimestamp(id: string): number {
  if (!isQueueId(id)) throw new TypeError(`not a queue id: ${JSON.stringify(id)}`);
  let t = 0;
  for (let i = 0; i < TIME_LEN; i++) t = t * 32 + ALPHABET.indexOf(id[i]!);
  return t;
}
