export { QueueUnavailableError, isQueueUnavailableError } from './errors.js';
export {
  DEFAULT_PREFIX,
  DEFAULT_QUEUE_NAME,
  assertValidPrefix,
  assertValidQueueName,
  keySpace,
  shardKeySpaces,
  shardOf,
  shardPrefix,
  type KeySpace,
} from './keys.js';
export {
  openShardedMailStore,
  shardView,
  type ShardedMailStore,
  type ShardedMailStoreOptions,
} from './sharded-store.js';
export {
  DELIVERY_JOB_VERSION,
  DeliveryJobSchema,
  InvalidDeliveryJobError,
  parseDeliveryJob,
  type DeliveryJob,
  type DeliveryJobInput,
} from './job.js';
export { newQueueId, isQueueId, queueIdTimestamp } from './queue-id.js';
export {
  openMailStore,
  type CommitInput,
  type MailStore,
  type MailStoreOptions,
  type MessageWriter,
  type StoredDeliveryJob,
  type WriterState,
} from './mail-store.js';
export { createProducerConnection, type ProducerConnectionOptions } from './redis-connection.js';
export { connectRedis, isRedisTarget, redisTarget, unixSocketOptions, type RedisTargetConfig } from './redis-target.js';
export {
  REDIS_INSTALL_HINT,
  RedisServerNotFoundError,
  findExecutable,
  findFreePort,
  findRedisServer,
  startRedisServer,
  type RedisServer,
  type RedisServerOptions,
} from './redis-server.js';
export { LOCK_FILE as REDIS_LOCK_FILE, PID_FILE as REDIS_PID_FILE, RedisDataDirBusyError, type Leftover } from './redis-lock.js';
