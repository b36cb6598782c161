/**
 * Every Redis key name used by mailgw is built here.
 *
 * The default prefix `{mailgw}` is a Redis Cluster hash tag: every key
 * (message bodies and all BullMQ keys) hashes to the same slot, so the
 * multi-key transactions and BullMQ's Lua scripts work on a cluster too.
 * BullMQ receives the prefix through its own `prefix` option (never through
 * ioredis' `keyPrefix`, which BullMQ refuses); its keys look like
 * `<prefix>:<queueName>:<suffix>`.
 */
export const DEFAULT_PREFIX = '{mailgw}';
export const DEFAULT_QUEUE_NAME = 'delivery';

/** Second key segment used for message bodies; cannot be used as a queue name. */
const BODY_SEGMENT = 'body';
/** Second key segment of a message's header section when it is stored apart from its body. */
const HEAD_SEGMENT = 'head';
/** Second key segments of the delivery workers' bookkeeping; reserved like BODY_SEGMENT. */
const DSN_SEGMENT = 'dsn';
const DESTINATION_SEGMENT = 'dest';
/** Second key segment of operator state (suspended next hops and suspended messages). */
const HOPS_SEGMENT = 'hops';
/** Second key segment of the listeners' sliding-window counters (messageRateLimit, AUTH backoff). */
const RATE_SEGMENT = 'rate';
/** Second key segment of the DNS answer cache (block lists, SPF, DKIM, DMARC), kept for the answer's TTL. */
const DNS_SEGMENT = 'dns';
/** Second key segment of the queue shards' placement on a Redis Cluster (shard-map.ts). */
const SHARDS_SEGMENT = 'shards';
/** Second key segment of the directory's recipient cache (found / not found), kept for cacheTtl / negativeCacheTtl. */
const DIRECTORY_SEGMENT = 'dir';
/** Second key segment of the TLS-RPT (RFC 8460) session counters and report claims. */
const TLSRPT_SEGMENT = 'tlsrpt';
/** Second key segments of sender reputation and the IP Block List (@mailgw/antispam); reserved. */
const SRL_SEGMENT = 'srl';
const IPBLOCK_SEGMENT = 'ipblock';
/** Second key segment of recipient verification's answers (recipientVerification), kept for cacheTtl / negativeCacheTtl. */
const VERIFY_SEGMENT = 'verify';
const RESERVED_SEGMENTS: readonly string[] = [BODY_SEGMENT, HEAD_SEGMENT, DSN_SEGMENT, DESTINATION_SEGMENT, HOPS_SEGMENT, RATE_SEGMENT, DNS_SEGMENT, SHARDS_SEGMENT, DIRECTORY_SEGMENT, TLSRPT_SEGMENT, SRL_SEGMENT, IPBLOCK_SEGMENT, VERIFY_SEGMENT];

const PREFIX_RE = /^[\x21-\x7e]{1,64}$/;
const QUEUE_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

export interface KeySpace {
  /** The key prefix, e.g. `{mailgw}`. Every key starts with `${prefix}:`. */
  readonly prefix: string;
  /** BullMQ queue name, e.g. `delivery`. */
  readonly queueName: string;
  /** Key of the message body of `queueId`: `${prefix}:body:${queueId}`. */
  body(queueId: string): string;
  /**
   * Key of the header section of a large message (`${prefix}:head:${queueId}`): the listener
   * streams the body while DATA arrives and writes the header, final only once the filters
   * have run, at the commit. The message is head + body; small messages have no head key.
   */
  head(queueId: string): string;
  /**
   * A message's bytes on their way in (`${prefix}:body:${queueId}:in`): written with a plain SET
   * and the body's TTL just before enqueue-message.lua renames them to the body key, so they
   * never pass through Lua. Left behind only when that script did not run (the TTL removes it).
   */
  incoming(queueId: string): string;
  /** Hash of the DSNs a worker produced for `queueId` (so the same DSN is never sent twice): `${prefix}:dsn:${queueId}`. */
  dsnClaims(queueId: string): string;
  /** Sorted set of the open connections to one next hop, across workers: `${prefix}:dest:${destination}`. */
  destinationLeases(destination: string): string;
  /** Set of the next hops an operator suspended (`mailgw queue suspend`); workers skip them: `${prefix}:hops:suspended`. */
  readonly suspendedHops: string;
  /** Set of the queue ids of messages an operator suspended (`mailgw queue suspend --sender …`); workers hold them untried: `${prefix}:hops:suspended-messages`. */
  readonly suspendedMessages: string;
  /** Sorted set of one sliding-window counter (already encoded key): `${prefix}:rate:${counter}`. */
  rateCounter(counter: string): string;
  /** One cached DNS answer (or NXDOMAIN/NODATA), expiring with its TTL: `${prefix}:dns:${rrtype}:${name}` (name lower case, no trailing dot). */
  dnsAnswer(rrtype: string, name: string): string;
  /**
   * Hash of the queue shards' placement on a Redis Cluster, field = shard index, value = JSON
   * ShardPlacement; written once per field (HSETNX, first writer wins): `${prefix}:shards`.
   */
  readonly shardMap: string;
  /** The directory's cached answer for a recipient address (lower case): `${prefix}:dir:rcpt:${address}`. */
  directoryRecipient(address: string): string;
  /** What a recipient's next hop answered a probe (JSON, recipientVerification): `${prefix}:verify:${address}` (lower case). */
  recipientVerification(address: string): string;
  /**
   * Hash of one recipient domain's TLS session counters for one UTC day (TLS-RPT, RFC 8460):
   * `${prefix}:tlsrpt:${day}:${domain}` (fields p:/s:/f: per policy, see worker tls-report.ts).
   */
  tlsReportCounters(day: string, domain: string): string;
  /** Set of the domains with counters on one UTC day: `${prefix}:tlsrpt:${day}:domains`. */
  tlsReportDomains(day: string): string;
  /** Claim of one day's report of one domain (one process sends it): `${prefix}:tlsrpt:sent:${day}:${domain}`. */
  tlsReportSent(day: string, domain: string): string;
  /** Hash of one sender's reputation profile (counters, reverse DNS): `${prefix}:srl:${subject}` (an IPv4 address or an IPv6 /64). */
  reputation(subject: string): string;
  /** HyperLogLog of the HELO names one sender gave: `${prefix}:srl:${subject}:helo`. */
  reputationHelo(subject: string): string;
  /** Hash of the IP Block List, field = address or range, value = JSON IpBlockListEntry: `${prefix}:ipblock`. */
  readonly ipBlockList: string;
  /** Counter bumped by every change of the IP Block List (the listeners reload on a new value): `${prefix}:ipblock:version`. */
  readonly ipBlockListVersion: string;
  /** Sorted set of the IP Block List's entries by expiry (ms; +inf: until removed), to drop the expired ones: `${prefix}:ipblock:expiry`. */
  readonly ipBlockListExpiry: string;
  /** BullMQ's hash of the job `jobId` (its data, progress, return value): `${prefix}:${queueName}:${jobId}`. */
  job(jobId: string): string;
  /**
   * BullMQ's list or sorted set of the jobs in one state (read by job-scan.ts):
   * `${prefix}:${queueName}:wait|active|prioritized|delayed|failed`.
   */
  bullState(state: 'active' | 'waiting' | 'prioritized' | 'delayed' | 'failed'): string;
  /** BullMQ's meta hash, events stream and worker marker: `${prefix}:${queueName}:meta|events|marker` (enqueue-message.lua). */
  bullQueueKey(name: 'meta' | 'events' | 'marker'): string;
  /** The prefix handed to BullMQ (`prefix` option). */
  readonly bullPrefix: string;
  /** Every BullMQ key of the queue starts with this. */
  readonly queueKeyPrefix: string;
  /** SCAN pattern that matches every key of this key space. */
  readonly pattern: string;
}

export function assertValidPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix) || prefix.includes(':') || /[*?[\]\\]/.test(prefix)) {
    throw new TypeError(
      `invalid Redis key prefix ${JSON.stringify(prefix)}: 1-64 printable ASCII characters, no ':', no glob characters`,
    );
  }
}

export function assertValidQueueName(queueName: string): void {
  if (!QUEUE_NAME_RE.test(queueName) || RESERVED_SEGMENTS.includes(queueName)) {
    throw new TypeError(
      `invalid queue name ${JSON.stringify(queueName)}: 1-64 characters of [A-Za-z0-9_-], and not ${RESERVED_SEGMENTS.map((r) => `"${r}"`).join(', ')}`,
    );
  }
}

export function keySpace(prefix: string = DEFAULT_PREFIX, queueName: string = DEFAULT_QUEUE_NAME): KeySpace {
  assertValidPrefix(prefix);
  assertValidQueueName(queueName);
  return Object.freeze({
    prefix,
    queueName,
    body: (queueId: string) => `${prefix}:${BODY_SEGMENT}:${queueId}`,
    head: (queueId: string) => `${prefix}:${HEAD_SEGMENT}:${queueId}`,
    incoming: (queueId: string) => `${prefix}:${BODY_SEGMENT}:${queueId}:in`,
    dsnClaims: (queueId: string) => `${prefix}:${DSN_SEGMENT}:${queueId}`,
    destinationLeases: (destination: string) => `${prefix}:${DESTINATION_SEGMENT}:${destination}`,
    suspendedHops: `${prefix}:${HOPS_SEGMENT}:suspended`,
    suspendedMessages: `${prefix}:${HOPS_SEGMENT}:suspended-messages`,
    rateCounter: (counter: string) => `${prefix}:${RATE_SEGMENT}:${counter}`,
    dnsAnswer: (rrtype: string, name: string) => `${prefix}:${DNS_SEGMENT}:${rrtype.toUpperCase()}:${name.toLowerCase().replace(/\.$/, '')}`,
    shardMap: `${prefix}:${SHARDS_SEGMENT}`,
    directoryRecipient: (address: string) => `${prefix}:${DIRECTORY_SEGMENT}:rcpt:${address.toLowerCase()}`,
    recipientVerification: (address: string) => `${prefix}:${VERIFY_SEGMENT}:${address.toLowerCase()}`,
    tlsReportCounters: (day: string, domain: string) => `${prefix}:${TLSRPT_SEGMENT}:${day}:${domain.toLowerCase()}`,
    tlsReportDomains: (day: string) => `${prefix}:${TLSRPT_SEGMENT}:${day}:domains`,
    tlsReportSent: (day: string, domain: string) => `${prefix}:${TLSRPT_SEGMENT}:sent:${day}:${domain.toLowerCase()}`,
    reputation: (subject: string) => `${prefix}:${SRL_SEGMENT}:${subject}`,
    reputationHelo: (subject: string) => `${prefix}:${SRL_SEGMENT}:${subject}:helo`,
    ipBlockList: `${prefix}:${IPBLOCK_SEGMENT}`,
    ipBlockListVersion: `${prefix}:${IPBLOCK_SEGMENT}:version`,
    ipBlockListExpiry: `${prefix}:${IPBLOCK_SEGMENT}:expiry`,
    job: (jobId: string) => `${prefix}:${queueName}:${jobId}`,
    bullState: (state: 'active' | 'waiting' | 'prioritized' | 'delayed' | 'failed') => `${prefix}:${queueName}:${state === 'waiting' ? 'wait' : state}`,
    bullQueueKey: (name: 'meta' | 'events' | 'marker') => `${prefix}:${queueName}:${name}`,
    bullPrefix: prefix,
    queueKeyPrefix: `${prefix}:${queueName}:`,
    pattern: `${prefix}:*`,
  });
}

/**
 * Key prefix of queue shard `index`: shard 0 keeps `prefix` (today's keys), shard i > 0 puts
 * `-i` inside the hash tag (`{mailgw}` → `{mailgw-1}`) so each shard hashes to its own Redis
 * Cluster slot; a prefix without a tag gets `-i` appended.
 */
export function shardPrefix(prefix: string, index: number): string {
  if (!Number.isInteger(index) || index < 0) throw new RangeError(`invalid shard index ${index}`);
  if (index === 0) return prefix;
  return withTagSuffix(prefix, `-${index}`);
}

/**
 * `prefix` with `suffix` inside its hash tag (`{mailgw}` + `-1.2` → `{mailgw-1.2}`), or appended
 * when it has none. Redis hashes the first non-empty {…}: that one is extended.
 */
export function withTagSuffix(prefix: string, suffix: string): string {
  const open = prefix.indexOf('{');
  const close = open >= 0 ? prefix.indexOf('}', open + 1) : -1;
  if (open >= 0 && close > open + 1) return `${prefix.slice(0, close)}${suffix}${prefix.slice(close)}`;
  return `${prefix}${suffix}`;
}

/** Shard of a queue id (FNV-1a of its characters, mod `shards`): stable, no lookup needed. */
export function shardOf(queueId: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < queueId.length; i++) {
    h ^= queueId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}

/**
 * Where to look for a message: its hashed shard first, then the others (it may have been
 * queued under another shard count). Every reader of messages by id probes in this order.
 */
export function shardProbeOrder(queueId: string, shards: number): number[] {
  const first = shardOf(queueId, shards);
  return [first, ...Array.from({ length: shards }, (_, i) => i).filter((i) => i !== first)];
}

/** The key spaces of `shards` queue shards (index = shard). */
export function shardKeySpaces(prefix: string = DEFAULT_PREFIX, shards = 1, queueName: string = DEFAULT_QUEUE_NAME): KeySpace[] {
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`invalid shard count ${shards}`);
  return Array.from({ length: shards }, (_, i) => keySpace(shardPrefix(prefix, i), queueName));
}
