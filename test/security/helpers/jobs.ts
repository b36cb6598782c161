// What is in Redis, read back independently of the listener: every delivery job's envelope and
// every message body key. "Nothing stored for a refused recipient" is checked against this.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

export interface StoredEnvelope {
  queueId: string;
  mailFrom: string;
  rcptTo: string[];
  /** The receive connector that accepted it, and the authenticated user (null: anonymous). */
  connector: string;
  authUser: string | null;
}

export interface JobReader {
  envelopes(): Promise<StoredEnvelope[]>;
  bodyKeys(): Promise<string[]>;
  /** Header sections stored apart from their body (large messages). */
  headKeys(): Promise<string[]>;
  close(): Promise<void>;
}

const STATES = ['waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized', 'waiting-children'] as const;

export function jobReader(redisUrl: string, prefix = '{mailgw}', queueName = 'delivery'): JobReader {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  connection.on('error', () => undefined);
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const queue = new Queue(queueName, { connection, prefix });
  queue.on('error', () => undefined);
  return {
    async envelopes() {
      const jobs = await queue.getJobs([...STATES], 0, -1);
      return jobs
        .filter((j) => j && j.data)
        .map((j) => ({
          queueId: String(j.id),
          mailFrom: (j.data as { mailFrom: { address: string } }).mailFrom.address,
          rcptTo: (j.data as { rcptTo: Array<{ address: string }> }).rcptTo.map((r) => r.address),
          connector: (j.data as { connector: string }).connector,
          authUser: (j.data as { authUser: string | null }).authUser,
        }));
    },
    async bodyKeys() {
      return redis.keys(`${prefix}:body:*`);
    },
    async headKeys() {
      return redis.keys(`${prefix}:head:*`);
    },
    async close() {
      await queue.close();
      connection.disconnect();
      redis.disconnect();
    },
  };
}
