// @mailgw/listener: the SMTP side of mailgw. Every enabled connector listens on its bindings;
// each connection asks the policy engine what to answer and hands accepted mail to the queue.
export { bindFailureHint, clientErrorReason, startListeners, type ListenerAddress, type ListenerOptions, type Listeners, type ReloadSummary } from './start-listeners.js';
export { type IpListLookup } from './context.js';
export { BackPressureMonitor, diskReading, memoryReading, persistenceReading, type BackPressureGauge, type BackPressureMonitorOptions, type ResourcePressure } from './back-pressure-monitor.js';
export { type ListenerEvent, type ListenerObserver } from './observer.js';
export {
  ConnectionCounter,
  ConnectionLimits,
  RemoteConnectionLimits,
  isAdmissionMessage,
  type Admission,
  type AdmissionChannel,
  type AdmissionMessage,
  type AdmissionReply,
  type ConnectionGate,
} from './connection-limits.js';
export { planSockets, type ListenPlan, type PlannedSocket } from './listen-plan.js';
export {
  authBackoffOf,
  authFailureKey,
  createMemoryRateCounter,
  createRedisRateCounter,
  type AuthBackoff,
  type RateCounter,
  type RedisRateCounterOptions,
} from './rate-counter.js';
export { PROTOCOL_LOG_FIELDS, connectorDirName } from './protocol-log.js';
export { LineEndingFilter, type LineEndingMode } from './message/line-endings.js';
export { PickupDirectory, PICKUP_POLL_MS, isPickupFileName, openPickupFile, type OpenedPickupFile, type PickupScan } from './pickup.js';
export { ensureSelfSigned, readPartnerCAs, tlsFileIssues, CERT_EXPIRY_WARNING_DAYS } from './tls-material.js';
export { receivedHeader, type ReceivedInput } from './message/trace-headers.js';
export { SMTP_SERVER_VERSION } from './library-overrides.js';
