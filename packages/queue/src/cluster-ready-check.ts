// A Redis Cluster client with enableOfflineQueue: false (the producer's fail-fast setting)
// must not flap while it connects. ioredis 6.0.0's ready check sends CLUSTER INFO to a
// sampled node connection and, with the offline queue off, rejects it at once ("Connection is
// closed.") when that node is still connecting; the whole client then disconnects and retries
// with the reconnect backoff. Measured on a local 3-master cluster: 25 such rounds in one run
// of test/worker/cluster.test.ts, and under CI's load a store stayed unready past its 5 s
// connect timeout. Here the check is retried while the client is still
// establishing itself, so only a real answer (an error from Redis, or cluster_state:fail)
// makes it reconnect.
import type { Cluster } from 'ioredis';
import './library-overrides.js';

/** ioredis' utils.CONNECTION_CLOSED_ERROR_MSG: a command refused because its node is not ready. */
const NODE_NOT_READY = 'Connection is closed.';
const RETRY_EVERY_MS = 20;

type ReadyCheckCallback = (err?: Error | null, state?: string) => void;
interface ClusterInternals {
  readyCheck(callback: ReadyCheckCallback): void;
}

/**
 * Replaces `cluster`'s ready check (own property) by one that retries, for up to `withinMs`,
 * while the CLUSTER INFO is refused only because the node it went to is not connected yet.
 */
export function patientClusterReadyCheck(cluster: Cluster, withinMs: number): void {
  const internals = cluster as unknown as ClusterInternals;
  const original = internals.readyCheck;
  if (typeof original !== 'function') throw new TypeError('ioredis Cluster#readyCheck is missing (see library-overrides.ts)');
  internals.readyCheck = function patientReadyCheck(this: Cluster, callback: ReadyCheckCallback): void {
    const deadline = Date.now() + withinMs;
    const attempt = (): void => {
      original.call(this, (err, state) => {
        if (err?.message === NODE_NOT_READY && this.status === 'connect' && Date.now() < deadline) {
          setTimeout(attempt, RETRY_EVERY_MS).unref();
          return;
        }
        callback(err, state);
      });
    };
    attempt();
  };
}
