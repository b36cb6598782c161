// Bounded retention of finished jobs (queue.completedJobRetention/…MaxCount, failedJob…), as
// BullMQ job options. Give the same options to every producer (the listener's mail store) and
// to the worker, since a job's own options win over the worker's.
import type { KeepJobs } from 'bullmq';
import type { QueueConfig } from '@mailgw/queue';

export function jobRetention(q: QueueConfig): { removeOnComplete: KeepJobs; removeOnFail: KeepJobs } {
  return {
    removeOnComplete: { age: Math.ceil(q.completedJobRetention / 1000), count: q.completedJobMaxCount },
    removeOnFail: { age: Math.ceil(q.failedJobRetention / 1000), count: q.failedJobMaxCount },
  };
}
