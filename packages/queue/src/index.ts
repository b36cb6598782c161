export { QueueUnavailableError, isQueueUnavailableError } from './errors.js';
export { BULLMQ_VERSION, IOREDIS_VERSION, LibraryVersionError, checkPinnedVersion, installedVersion } from './library-overrides.js';
export {
  DEFAULT_PREFIX,
  DEFAULT_QUEUE_NAME,
  assertValidPrefix,
  assertValidQueueName,
  keySpace,
  shardKeySpaces,
  shardOf,
  shardProbeOrder,
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
export { createProducerConnection, waitForReady, type ProducerConnectionOptions } from './redis-connection.js';
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
export {
  DSN_KINDS,
  UnreadableDeliveryStateError,
  initialState,
  pendingIndices,
  readState,
  tryReadState,
  type DeliveryState,
  type DsnKind,
  type RecipientState,
} from './delivery-state.js';
export { SuspendedHops } from './suspended-hops.js';
export { SuspendedMessages } from './suspended-messages.js';
export { DsnSender, dsnSenderOptions, type DsnSenderOptions } from './dsn-sender.js';
export { dueDsns, wants, type DueDsn } from './dsn-policy.js';
export { retryDelay, nextAttemptAt, expiresAt, type DeferralKind, type QueueConfig } from './retry-schedule.js';
export { openTrackingLog, trackingBase, trackingDir, trackingFileName, type TrackingBase, type TrackingEvent, type TrackingEventId, type TrackingLog, type TrackingLogOptions } from './tracking-log.js';
export { readEnvelope, readMessageRecord, type Envelope, type MessageRecord, type RawJob } from './message-record.js';
export { SCRIPTS, defineScripts, scriptCommand, scriptSource, type ScriptName } from './scripts.js';
export { LOCK_FILE as REDIS_LOCK_FILE, PID_FILE as REDIS_PID_FILE, RedisDataDirBusyError, type Leftover } from './redis-lock.js';
export { RouteTable, groupByHop, hopKey, type Hop, type HopRecipient, type RecipientInput, type Unroutable } from './next-hops.js';
export { durabilityGap, embeddedAppendFsync, readPersistence, type Durability, type Persistence } from './durability.js';
export { SCANNABLE_STATES, readHeads, scanJobs, type ScannableState, type ScannedJob } from './job-scan.js';
