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
  withTagSuffix,
  type KeySpace,
} from './keys.js';
export { CLUSTER_SLOTS, crc16, hashedPart, keySlot } from './cluster-slot.js';
export {
  MAX_SHARDS,
  candidatePrefix,
  defaultShardCount,
  masterOfSlot,
  placeShards,
  placementWarnings,
  shardRows,
  unplaced,
  type ClusterMaster,
  type ShardPlacement,
  type ShardRow,
} from './shard-placement.js';
export { clusterMasters, resolveShardMap, type ResolveShardMapOptions, type ShardMap } from './shard-map.js';
export {
  logShardMap,
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
  quickDeliveryJob,
  type DeliveryJob,
  type DeliveryJobInput,
} from './job.js';
export { newQueueId, isQueueId, queueIdTimestamp } from './queue-id.js';
export {
  evictionWarning,
  openMailStore,
  type CommitInput,
  type CommitOptions,
  type MailStore,
  type MailStoreOptions,
  type MessageWriter,
  type StoredDeliveryJob,
  type WriterState,
} from './mail-store.js';
export { createProducerConnection, waitForReady, type ProducerConnectionOptions } from './redis-connection.js';
export { RedisOutageLog, isRedisConnectionError, type OutageLogger, type RedisOutageLogOptions } from './redis-outage-log.js';
export { connectRedis, isClusterTarget, isRedisTarget, multiNodeTarget, type MultiNodeTarget, redisConnectHint, redisTarget, redisUrlForDisplay, unixSocketOptions, type RedisTargetConfig } from './redis-target.js';
export { patientClusterReadyCheck } from './cluster-ready-check.js';
export {
  REDIS_INSTALL_HINT,
  RedisServerNotFoundError,
  findExecutable,
  findFreePort,
  findRedisServer,
  redisServerMajorVersion,
  startRedisServer,
  type RedisKeepAlive,
  REDIS_RESTART_BACKOFF,
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
  type HopTls,
  type RecipientState,
} from './delivery-state.js';
export { SuspendedHops } from './suspended-hops.js';
export { SuspendedMessages } from './suspended-messages.js';
export { DsnSender, dsnSenderOptions, type DsnSenderOptions } from './dsn-sender.js';
export { dueDsns, wants, type DueDsn } from './dsn-policy.js';
export { retryDelay, nextAttemptAt, expiresAt, type DeferralKind, type QueueConfig } from './retry-schedule.js';
export { openGatewayTracking } from './gateway-tracking.js';
export { agentLogStreamKey, openTrackingStream, readTrackingStreams, streamDays, trackingStreamLines, trackingDay, trackingStreamKey, type StreamKey, type TrackingStream, type TrackingStreamSettings } from './tracking-stream.js';
export { deliveryLatencySeconds, openTrackingLog, tapTracking, trackingBase, trackingDir, trackingFileName, type TrackingBase, type TrackingEvent, type TrackingEventId, type TrackingLog, type TrackingLogOptions } from './tracking-log.js';
export { readEnvelope, readMessageRecord, type Envelope, type MessageRecord, type RawJob } from './message-record.js';
export { SCRIPTS, defineScripts, scriptCommand, scriptSource, type ScriptName } from './scripts.js';
export { LOCK_FILE as REDIS_LOCK_FILE, PID_FILE as REDIS_PID_FILE, RedisDataDirBusyError, type Leftover } from './redis-lock.js';
export { RouteTable, groupByHop, hopKey, type Hop, type HopRecipient, type RecipientInput, type Unroutable } from './next-hops.js';
export { durabilityGap, embeddedAppendFsync, embeddedMaxMemory, readPersistence, type Durability, type Persistence } from './durability.js';
export { AGENT_LOG_FILE, PROTOCOL_LOG_FILE, RECENT_WRITE_MS, SEND_PROTOCOL_LOG_FILE, TRACKING_LOG_FILE, logSets, planLogPrune, pruneLogs, startLogRetention, type LogFileInfo, type LogLimits, type LogRetention, type LogRetentionOptions, type LogSet, type PruneResult, type PruneVerdict } from './log-retention.js';
export { SCANNABLE_STATES, jobIds, readHeads, readJobs, scanJobs, type ScannableState, type ScannedJob } from './job-scan.js';
export { DailyLogFile, csvField, type DailyLogFileOptions } from './daily-log-file.js';
export { queueGeneratedMessage, type GeneratedMessage } from './generated-message.js';
export { AOF_MANIFEST, historyFiles, startAofJanitor, type AofJanitorEvent, type AofJanitorOptions } from './aof-janitor.js';
export { IpBlockListStore, IpBlockListView, type IpBlockListRedis } from './ip-block-list.js';
