// Messages an operator suspended one by one (`mailgw queue suspend --sender …`, Exchange's
// Suspend-Message, Postfix's `postsuper -h`): a Redis set of queue ids shared by every worker
// and the CLI. Before each attempt a worker asks whether its message is in it and, if so, tries
// nothing and holds the message (it still expires); `resume` takes the id out again. The set
// lives on the unsharded key space, like the suspended hops: one place to look for every shard.
import type { Redis } from 'ioredis';
import type { KeySpace } from './keys.js';

export class SuspendedMessages {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySpace,
  ) {}

  /** Every suspended queue id (one SMEMBERS; ids of messages gone since are dropped by `forget`). */
  async list(): Promise<Set<string>> {
    return new Set(await this.redis.smembers(this.keys.suspendedMessages));
  }

  async has(queueId: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.suspendedMessages, queueId)) === 1;
  }

  /** Suspends the messages; returns how many were not suspended before. */
  async suspend(queueIds: readonly string[]): Promise<number> {
    if (queueIds.length === 0) return 0;
    return this.redis.sadd(this.keys.suspendedMessages, ...queueIds);
  }

  /** Resumes the messages (also used when a message leaves the queue); returns how many were suspended. */
  async resume(queueIds: readonly string[]): Promise<number> {
    if (queueIds.length === 0) return 0;
    return this.redis.srem(this.keys.suspendedMessages, ...queueIds);
  }
}
