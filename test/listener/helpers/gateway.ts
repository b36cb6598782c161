// Starts a real gateway in-process for a test: config written as objects (validated and
// compiled exactly as from files), listeners on ports free at run time, a mail store on the
// test's redis-server, and a log that the test can read.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { buildConfig, formatIssue, hashPassword } from '@mailgw/config';
import type { MailAddress, MessageFilter } from '@mailgw/mail';
import { startListeners, type BackPressureGauge, type IpListLookup, type ListenerObserver, type Listeners, type RateCounter } from '@mailgw/listener';
import { compilePolicy, type DirectoryLookup, type RecipientVerification, type IpBlockListSource, type Policy, type ReputationRecorder } from '@mailgw/policy';
import { findFreePort, openShardedMailStore, type MailStore, type StoredDeliveryJob } from '@mailgw/queue';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { parse } from 'yaml';

export const PASSWORD = 'correct horse';
let aliceHash: Promise<string> | null = null;
/** A real scrypt hash of PASSWORD (cheap parameters: tests only). */
export function passwordHash(): Promise<string> {
  aliceHash ??= hashPassword(PASSWORD, { ln: 4 });
  return aliceHash;
}

/** A TCP port free on every address (IPv4 and IPv6) a moment ago, never one this process was given before. */
export const freePort = (): Promise<number> => findFreePort('::');

export async function baseGateway(extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  return {
    fqdn: 'mx.contoso.test',
    acceptedDomains: [
      { domain: 'contoso.test', type: 'Authoritative', default: true },
      { domain: 'fabrikam.test', type: 'InternalRelay' },
    ],
    users: [{ name: 'alice', passwordHash: await passwordHash(), addresses: ['alice@contoso.test'] }],
    ...extra,
  };
}

export function compile(gateway: Record<string, unknown>, connectors: Record<string, Record<string, unknown>>): Policy {
  const built = buildConfig({
    gatewayFile: 'test#gateway',
    gatewayData: gateway,
    connectorFiles: Object.entries(connectors).map(([file, data]) => ({ file: `test#${file}`, data })),
    readReferenced: (p) => ({ ok: false, error: 'no files in tests', file: p }),
    parseYaml: parse,
    fallbackFqdn: 'mx.contoso.test',
    env: process.env,
  });
  if (!built.ok) throw new Error(built.errors.map(formatIssue).join('\n'));
  const compiled = compilePolicy(built.config);
  if (!compiled.ok) throw new Error(compiled.errors.map(formatIssue).join('\n'));
  return compiled.policy;
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface TestGateway {
  readonly policy: Policy;
  readonly store: MailStore;
  readonly listeners: Listeners;
  readonly dataDir: string;
  readonly logs: LogLine[];
  /** Body keys and queued jobs in Redis now. */
  stored(): Promise<{ bodies: number; jobs: number }>;
  job(queueId: string): Promise<StoredDeliveryJob | null>;
  body(queueId: string): Promise<Buffer | null>;
  close(): Promise<void>;
}

export interface GatewayOptions {
  redisUrl: string;
  gateway?: Record<string, unknown>;
  connectors: Record<string, Record<string, unknown>>;
  rateCounter?: RateCounter;
  /** Shared across gateways of one test file (certificates are made once). */
  dataDir?: string;
  commandTimeoutMs?: number;
  /** queue.shards (default 1): the store is openShardedMailStore's, as in serve. */
  shards?: number;
  /** Message filters the listeners run at DATA. */
  filters?: readonly MessageFilter[];
  /** Instead: the filters for a policy, asked at start and at each reload. */
  filtersFor?: (policy: Policy) => readonly MessageFilter[];
  filterTimeoutMs?: number;
  quarantineMailbox?: MailAddress;
  /** Connection filtering's DNS list lookups (IP Block/Allow List Providers). */
  ipLists?: IpListLookup;
  ipBlockList?: IpBlockListSource;
  reputation?: ReputationRecorder;
  /** Reverse DNS for client host names (@mailgw/antispam reverseLookup). */
  resolver?: { reverse(ip: string, cb: (err: Error | null, hostnames: string[]) => void): void };
  /** The directory (AD/LDAP) the listeners ask. */
  directory?: DirectoryLookup;
  /** Recipient verification at the next hop (@mailgw/worker's RecipientVerifier). */
  recipientVerification?: RecipientVerification;
  /** Back pressure the listeners ask at MAIL FROM. */
  backPressure?: BackPressureGauge;
  /** Who hears the listeners' events (metrics, tracking). */
  observer?: ListenerObserver;
  /** How long a pickup file may look unfinished (default 60 s). */
  pickupSettleMs?: number;
}

export async function startGateway(o: GatewayOptions): Promise<TestGateway> {
  const policy = compile(o.gateway ?? (await baseGateway()), o.connectors);
  const ownDir = !o.dataDir;
  const dataDir = o.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'mailgw-listener-'));
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const prefix = '{mailgw}';
  const store = await openShardedMailStore({ url: o.redisUrl, prefix, shards: o.shards ?? 1, commandTimeoutMs: o.commandTimeoutMs ?? 1000, connectTimeoutMs: 3000 });
  const listeners = await startListeners({ policy, store, logger, dataDir, ...(o.rateCounter ? { rateCounter: o.rateCounter } : {}), ...(o.filters ? { filters: o.filters } : {}), ...(o.filtersFor ? { filtersFor: o.filtersFor } : {}), ...(o.filterTimeoutMs ? { filterTimeoutMs: o.filterTimeoutMs } : {}), ...(o.ipLists ? { ipLists: o.ipLists } : {}), ...(o.ipBlockList ? { ipBlockList: o.ipBlockList } : {}), ...(o.reputation ? { reputation: o.reputation } : {}), ...(o.resolver ? { resolver: o.resolver } : {}), ...(o.directory ? { directory: o.directory } : {}), ...(o.recipientVerification ? { recipientVerification: o.recipientVerification } : {}), ...(o.backPressure ? { backPressure: o.backPressure } : {}), ...(o.quarantineMailbox ? { quarantineMailbox: o.quarantineMailbox } : {}), ...(o.observer ? { observer: o.observer } : {}), ...(o.pickupSettleMs !== undefined ? { pickupSettleMs: o.pickupSettleMs } : {}) });
  const redis = new Redis(o.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined); // tests stop Redis on purpose
  const queueConnection = new Redis(o.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  queueConnection.on('error', () => undefined);
  const queue = new Queue('delivery', { connection: queueConnection, prefix });
  queue.on('error', () => undefined); // else BullMQ prints every reconnect error while Redis is down
  return {
    policy,
    store,
    listeners,
    dataDir,
    logs,
    async stored() {
      const bodies = await redis.keys(`${prefix}:body:*`);
      const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized');
      return { bodies: bodies.length, jobs: Object.values(counts).reduce((a, b) => a + b, 0) };
    },
    job: (id) => store.getJob(id),
    body: (id) => store.readBody(id),
    async close() {
      await listeners.close({ graceMs: 2000 });
      await store.close();
      await queue.close();
      queueConnection.disconnect();
      redis.disconnect();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
