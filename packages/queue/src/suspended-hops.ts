// Next hops an operator suspended (`mailgw queue suspend <hop>`, Exchange's Suspend-Queue): a
// Redis set shared by every worker and the CLI. Before each attempt a worker reads it and leaves
// the recipients of a suspended hop queued and untried; `resume` takes the hop out again.
import type { Redis } from 'ioredis';
import type { KeySpace } from './keys.js';

export class SuspendedHops {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySpace,
  ) {}

  /** The suspended hop keys (as `Hop.key`), sorted. Read fresh each time: a tiny set, one round trip. */
  async list(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.suspendedHops)).sort();
  }

  async has(hop: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.suspendedHops, hop)) === 1;
  }

  /** true if the hop was not suspended before. */
  async suspend(hop: string): Promise<boolean> {
    return (await this.redis.sadd(this.keys.suspendedHops, hop)) === 1;
  }

  /** true if the hop was suspended. */
  async resume(hop: string): Promise<boolean> {
    return (await this.redis.srem(this.keys.suspendedHops, hop)) === 1;
  }
}
