// @mailgw/ops: what an admin needs on day two. Queue inspection and management against the
// shared Redis, message tracking search, Prometheus metrics, the operations HTTP server with
// its dashboard, and the triggers of live configuration reload.
export { QueueAdmin, type BulkResult, type ResubmitResult, type SelectResult, type MessageView, type QueueAdminOptions, type RecipientView, type RemoveResult, type RetryResult, type RetryTarget, type ShardStatus, type ShardsView } from './queue-admin.js';
export { UNREACHABLE, hopRows, nextAttempt, pendingHops, type HopRow, type HopStatus, type QueuedMessage } from './hop-view.js';
export { ADMIN_REMOVED_REPLY, sendAdministrativeNdr, type AdminNdrResult } from './admin-ndr.js';
export { matches, searchTracking, type TrackingQuery, type TrackingRecord } from './tracking-search.js';
export { receiveTracker } from './receive-tracking.js';
export { AGENT_LOG_FIELDS, AgentLog, agentLogDir, parseAgentLogLine, parseCsvLine, readAgentLog, type AgentLogEntry } from './agent-log.js';
export { GatewayMetrics, type ConnectorCounters, type DirectoryMetricEvent, type GatewayMetricsOptions, type ProcessReport, type QueueSnapshot, type QueueSource, type WorkerSource } from './metrics.js';
export { startOpsHttp, type ConfiguredConnector, type OpsHttpOptions, type OpsHttpServer } from './http-server.js';
export { renderFragment, renderPage, type DashboardConnector, type DashboardView } from './dashboard.js';
export { watchConfig, type ConfigWatch, type ConfigWatchOptions } from './config-watch.js';
export { announceEmbeddedRedis, embeddedUrlFile, forgetEmbeddedRedis, queueRedisUrl } from './redis-url.js';
export { restartOnlyChanges } from './reload-scope.js';
export { HEARTBEAT_MS, STALE_AFTER_MS, liveOf, liveProcesses, processesKey, startHeartbeat, type HeartbeatFigures, type HeartbeatPressure, type ProcessHeartbeat, type ProcessRole } from './process-registry.js';
export { LATENCY_BOUNDS_S, STATS_RANGES, STAT_KINDS, StatsRecorder, minuteOf, percentileOf, readStats, sampleHopDepths, seriesFrom, statsKey, type StatKind, type StatsRange, type StatsSeries } from './stats.js';
export { chartsFor, lineChart, type ChartLine } from './dashboard-charts.js';
export { CONFIRM_ABOVE, MESSAGE_STATUSES, addressMatcher, compileFilter, confirmation, isEmptyFilter, messageFacts, messageRow, messageStatus, parseStatus, type MessageFacts, type MessageFilter, type MessageRow, type MessageStatus } from './message-filter.js';
export { TrafficTally, summaryText, trafficSummary, type Ranked, type TrafficBucket, type TrafficSummary } from './traffic-summary.js';
export { readTraffic, type TrafficSource } from './traffic-read.js';
