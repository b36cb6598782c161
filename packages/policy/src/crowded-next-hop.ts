// When a delivery should not wait in the process for a session to its next hop.
//
// A worker runs up to workerConcurrency deliveries at once, and a next hop takes at most
// maxConnectionsPerDestination sessions. Deliveries beyond that wait in the process for a
// session (the worker's connection-pool.ts): right for a next hop that answers quickly, but each waiting
// delivery holds a worker slot, its message in memory and its share of workerMessageBytes, and
// after 5 s it goes back to the queue to try again 1 to 3 s later. With a slow smart host (all
// outbound mail to one next hop) most of a worker's slots would wait on it, and mail to other
// next hops with them (measured: 50 messages to a quick next hop queued behind 300 for one
// taking 1 s a message were all delivered after 11.6 s). Postfix's qmgr hands a message to a
// delivery agent only when its destination has a free slot; a BullMQ worker cannot pick jobs by
// destination, so it does the next best thing: once a full round of deliveries already waits
// for a slow next hop's sessions, a new one goes back to the queue before its body is read,
// until about its turn, spaced by the rate at which the next hop's sessions free up. Pure: the
// worker's connection pool holds the figures and the clock.

/** What the process knows of one next hop when a delivery for it starts. */
export interface DestinationLoad {
  /** Deliveries of this process for it, from before their bodies are read until their attempts end. */
  readonly inProgress: number;
  /** Its maxConnectionsPerDestination. */
  readonly limit: number;
  /** How long a message holds one of its sessions (moving average, ms); null before the first. */
  readonly msPerMessage: number | null;
  /** The latest turn already given to a delivery sent back to the queue (epoch ms; 0: none). */
  readonly lastTurnAt: number;
}

/** A delivery sent back to the queue until `at` (epoch ms), and why. */
export interface Turn {
  readonly at: number;
  readonly reason: string;
}

/** A line that moves within this is waited for in the process (cheaper than a trip through the queue). */
export const MIN_SEND_BACK_MS = 1000;
/** The furthest turn given (the estimate is only that; the delivery looks again then). */
export const MAX_TURN_MS = 10 * 60_000;

/**
 * null: go ahead and wait in the process if need be. That is so while fewer than a round
 * (`limit`) of deliveries wait beyond those its sessions take, while the line ahead moves
 * within MIN_SEND_BACK_MS, and before any message to it was timed. Otherwise the turn: the
 * time at which about a round still waits ahead of it (sessions that started together free up
 * together, and a shorter line would leave some idle; a delivery that comes back for its turn
 * is not sent back again), and after the turns given before it.
 */
export function crowdedTurn(load: DestinationLoad, now: number): Turn | null {
  const { limit, msPerMessage } = load;
  if (limit < 1 || msPerMessage === null) return null;
  const waiting = load.inProgress - limit;
  if (waiting < limit) return null;
  const gap = msPerMessage / limit; // the next hop frees a session this often
  if ((waiting + 1) * gap < MIN_SEND_BACK_MS) return null;
  const ahead = now + (waiting + 1 - limit) * gap;
  const at = Math.min(Math.max(ahead, load.lastTurnAt + gap), now + MAX_TURN_MS);
  return {
    at: Math.ceil(at),
    reason: `${waiting} deliveries already wait for its ${limit} sessions, about ${Math.round(msPerMessage)} ms per message`,
  };
}
