import type { Redis } from 'ioredis';
import { shardKeySpaces, shardOf, shardProbeOrder, type KeySpace } from './keys.js';
import { openMailStore, type MailStore, type MailStoreOptions, type MessageWriter, type StoredDeliveryJob } from './mail-store.js';

/**
 * `shards` queue shards behind one MailStore: shard i is a plain mail store with the key
 * prefix shardPrefix(prefix, i), so a message's body and job share one hash tag (one
 * connection writes both, and on a Redis Cluster they live on one slot). A message goes to
 * shard shardOf(queueId): lookups by queue id need no index. With one shard this is
 * openMailStore itself.
 */
export interface ShardedMailStore extends MailStore {
  /** One mail store per shard (index = shard); shard 0 has today's `{mailgw}` keys. */
  readonly shards: readonly MailStore[];
  /** The shard store holding (or that would hold) `queueId`. */
  shardFor(queueId: string): MailStore;
}

export interface ShardedMailStoreOptions extends MailStoreOptions {
  /** Number of queue shards (default 1). */
  shards?: number;
}

class Sharded implements ShardedMailStore {
  constructor(readonly shards: readonly MailStore[]) {}

  get keys(): KeySpace {
    return this.shards[0]!.keys;
  }
  get prefix(): string {
    return this.shards[0]!.prefix;
  }
  get queueName(): string {
    return this.shards[0]!.queueName;
  }
  /** Shard 0's: its prefix is the gateway's, where keys outside the queue shards (suspended hops) live. */
  get connection(): Redis {
    return this.shards[0]!.connection;
  }
  /** `ready` only when every shard is. */
  get status(): string {
    return this.shards.find((s) => s.status !== 'ready')?.status ?? 'ready';
  }
  shardFor(queueId: string): MailStore {
    return this.shards[shardOf(queueId, this.shards.length)]!;
  }
  beginMessage(queueId: string): MessageWriter {
    return this.shardFor(queueId).beginMessage(queueId);
  }
  /** Tries the hashed shard first, then the others (a message queued under another shard count). */
  private async find<T>(queueId: string, get: (s: MailStore) => Promise<T | null>): Promise<T | null> {
    for (const i of shardProbeOrder(queueId, this.shards.length)) {
      const hit = await get(this.shards[i]!);
      if (hit !== null) return hit;
    }
    return null;
  }
  readBody(queueId: string): Promise<Buffer | null> {
    return this.find(queueId, (s) => s.readBody(queueId));
  }
  getJob(queueId: string): Promise<StoredDeliveryJob | null> {
    return this.find(queueId, (s) => s.getJob(queueId));
  }
  async deleteBody(queueId: string): Promise<void> {
    // DEL of a missing key is harmless: clear it wherever it is.
    await Promise.all(this.shards.map((s) => s.deleteBody(queueId)));
  }
  finishMessage(queueId: string, progress: unknown): Promise<void> {
    return this.shardFor(queueId).finishMessage(queueId, progress);
  }
  async ping(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.ping()));
  }
  async checkEvictionPolicy(): Promise<string> {
    const policies = await Promise.all(this.shards.map((s) => s.checkEvictionPolicy()));
    return policies.find((p) => p !== 'noeviction') ?? 'noeviction';
  }
  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}

/** A read/delete view pinned to one shard, writing new messages (DSNs) through the whole set. */
export function shardView(all: MailStore, shard: MailStore): MailStore {
  return {
    get keys() {
      return shard.keys;
    },
    get prefix() {
      return shard.prefix;
    },
    get queueName() {
      return shard.queueName;
    },
    get status() {
      return shard.status;
    },
    get connection() {
      return shard.connection;
    },
    beginMessage: (queueId) => all.beginMessage(queueId),
    readBody: (queueId) => shard.readBody(queueId),
    deleteBody: (queueId) => shard.deleteBody(queueId),
    finishMessage: (queueId, progress) => shard.finishMessage(queueId, progress),
    getJob: (queueId) => all.getJob(queueId),
    ping: () => shard.ping(),
    checkEvictionPolicy: () => shard.checkEvictionPolicy(),
    close: () => shard.close(),
  };
}

/** Opens `opts.shards` mail stores (see ShardedMailStore); throws as openMailStore does. */
export async function openShardedMailStore(opts: ShardedMailStoreOptions): Promise<ShardedMailStore> {
  const spaces = shardKeySpaces(opts.prefix, opts.shards ?? 1, opts.queueName);
  const settled = await Promise.allSettled(
    spaces.map((k, i) =>
      openMailStore({
        ...opts,
        prefix: k.prefix,
        queueName: k.queueName,
        ...(opts.connectionName && i > 0 ? { connectionName: `${opts.connectionName}:${i}` } : {}),
      }),
    ),
  );
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(settled.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
    throw failed.reason;
  }
  return new Sharded(settled.map((r) => (r as PromiseFulfilledResult<MailStore>).value));
}
