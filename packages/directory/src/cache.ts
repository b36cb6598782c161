// The directory as the listeners use it: AUTH straight to the directory (never cached, so a
// deleted or disabled account stops at once), recipient lookups cached in Redis under
// keys.directoryRecipient (shared by every listener), found for cacheTtl and not found for
// negativeCacheTtl; an outage is never cached. Redis trouble only skips the cache.
import type { DirectoryConfig } from '@mailgw/config';
import { DELIVERY_RESTRICTION_KEYS, type DeliveryRestrictions, type DirectoryAnswer, type DirectoryLookup, type EntryAttributes, type MembershipAnswer, type RecipientEntry, type SendAsAnswer } from '@mailgw/policy';
import { connectRedis, keySpace } from '@mailgw/queue';
import { createDirectoryClient, type ConnectionEvent, type DirectoryClient } from './client.js';

/** A question the service answered (from a cache or the directory, with how long the directory took), or what happened to a connection. */
export type DirectoryEvent =
  | ConnectionEvent
  | { readonly type: 'question'; readonly question: 'recipient' | 'logon' | 'groups' | 'attributes' | 'send-as'; readonly result: string; readonly source: 'cache' | 'directory'; readonly seconds?: number };

export interface DirectoryServiceOptions {
  readonly config: DirectoryConfig;
  /**
   * Redis for the shared recipient cache (any target the queue takes: redis://, unix://, a
   * Sentinel or Cluster target); without it a cache in this process.
   */
  readonly redisUrl?: string;
  readonly prefix?: string;
  /** Told about outages and cache errors (pino's warn fits). */
  readonly onProblem?: (what: string, detail: string) => void;
  /** Told about every question and connection (the metrics). */
  readonly onEvent?: (e: DirectoryEvent) => void;
}

export interface DirectoryService extends DirectoryLookup {
  readonly client: DirectoryClient;
  entryAttributes(address: string, attributes: readonly string[]): Promise<EntryAttributes>;
  memberships(address: string): Promise<MembershipAnswer>;
  sendAs(address: string, sids: readonly string[]): Promise<SendAsAnswer>;
  close(): Promise<void>;
}

/** Senders' attributes (disclaimer tokens) and addresses' groups (transport rules) kept in this process: at most this many addresses each, for cacheTtl. */
const ATTRIBUTE_CACHE_SIZE = 10_000;

/** The cached answers in Redis: 1 found, a found and for authenticated senders only, 0 not found. */
const CACHE_VALUES: Record<Exclude<DirectoryAnswer, 'unavailable'>, string> = { found: '1', 'found-auth-required': 'a', 'not-found': '0' };
const CACHED_ANSWERS: ReadonlyMap<string, DirectoryAnswer> = new Map(Object.entries(CACHE_VALUES).map(([answer, v]) => [v, answer as DirectoryAnswer]));

/**
 * A cached recipient entry as Redis holds it: one character without delivery restrictions or a
 * size limit (as before they were read, so a cache written by an older listener still reads),
 * JSON with them: `a` authenticated senders only, `r` the restriction lists, `m` the largest
 * message in bytes.
 */
export function encodeRecipientEntry(e: RecipientEntry): string | null {
  if (e.answer === 'unavailable') return null;
  const m = e.maxReceiveSize ?? null;
  if (e.answer === 'not-found' || (!e.restrictions && m === null)) return CACHE_VALUES[e.answer];
  return JSON.stringify({ a: e.answer === 'found-auth-required', ...(e.restrictions ? { r: e.restrictions } : {}), ...(m !== null ? { m } : {}) });
}

/** The entry a cached value holds, or null (a value this version does not know is a miss: asked again). */
export function decodeRecipientEntry(v: string): RecipientEntry | null {
  const answer = CACHED_ANSWERS.get(v);
  if (answer) return { answer, restrictions: null };
  if (!v.startsWith('{')) return null;
  try {
    const o = JSON.parse(v) as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.a !== 'boolean') return null;
    let restrictions: DeliveryRestrictions | null = null;
    if (o.r !== undefined) {
      if (typeof o.r !== 'object' || o.r === null) return null;
      const r = o.r as Record<string, unknown>;
      const list = (k: keyof DeliveryRestrictions): string[] | null => {
        const l = r[k];
        return Array.isArray(l) && l.every((x) => typeof x === 'string') ? (l as string[]) : null;
      };
      const [accept, acceptDL, reject, rejectDL] = DELIVERY_RESTRICTION_KEYS.map(list);
      if (!accept || !acceptDL || !reject || !rejectDL) return null;
      restrictions = { acceptMessagesOnlyFrom: accept, acceptMessagesOnlyFromDLMembers: acceptDL, rejectMessagesFrom: reject, rejectMessagesFromDLMembers: rejectDL };
    }
    if (o.m !== undefined && !(typeof o.m === 'number' && Number.isSafeInteger(o.m) && o.m > 0)) return null;
    if (!restrictions && o.m === undefined) return null;
    return { answer: o.a ? 'found-auth-required' : 'found', restrictions, ...(typeof o.m === 'number' ? { maxReceiveSize: o.m } : {}) };
  } catch {
    return null;
  }
}

export function createDirectoryService(o: DirectoryServiceOptions): DirectoryService {
  const event = o.onEvent ?? (() => undefined);
  const client = createDirectoryClient(o.config, { onConnection: event });
  /** Asks the directory, timed, and tells the answer's kind. */
  async function timed<T>(question: 'recipient' | 'logon' | 'groups' | 'attributes' | 'send-as', ask: () => Promise<T>, result: (a: T) => string): Promise<T> {
    const t0 = process.hrtime.bigint();
    const a = await ask();
    event({ type: 'question', question, result: result(a), source: 'directory', seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    return a;
  }
  const kindOf = (a: { kind: string }) => a.kind;
  const keys = keySpace(o.prefix ?? '{mailgw}');
  // connectRedis, not new Redis(url): ioredis alone takes a redis+sentinel:// or
  // redis+cluster:// target for the host "redis+sentinel", so with gateway.yaml's
  // redis: { sentinels } or { cluster } the cache was never reached.
  const redis = o.redisUrl ? connectRedis(o.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectionName: `mailgw:directory:${process.pid}` }) : null;
  redis?.on('error', () => undefined);
  const local = new Map<string, { entry: RecipientEntry; until: number }>();
  const problem = o.onProblem ?? (() => undefined);

  async function cached(address: string): Promise<RecipientEntry | null> {
    if (!redis) {
      const hit = local.get(address);
      if (hit && hit.until > Date.now()) return hit.entry;
      local.delete(address);
      return null;
    }
    try {
      if (redis.status === 'wait') await redis.connect();
      const v = await redis.get(keys.directoryRecipient(address));
      return v === null ? null : decodeRecipientEntry(v);
    } catch (e) {
      problem('directory cache unavailable', e instanceof Error ? e.message : String(e));
      return null;
    }
  }

  async function store(address: string, entry: RecipientEntry): Promise<void> {
    const value = encodeRecipientEntry(entry);
    if (value === null) return;
    const ttl = entry.answer === 'not-found' ? o.config.negativeCacheTtl : o.config.cacheTtl;
    if (ttl <= 0) return;
    if (!redis) {
      local.set(address, { entry, until: Date.now() + ttl });
      return;
    }
    try {
      await redis.set(keys.directoryRecipient(address), value, 'PX', ttl);
    } catch (e) {
      problem('directory cache unavailable', e instanceof Error ? e.message : String(e));
    }
  }

  // A signature's attributes change seldom and a busy sender sends often: kept per process, never
  // an outage (the next message asks again).
  const attributeCache = new Map<string, { answer: EntryAttributes; until: number }>();
  async function entryAttributes(address: string, attributes: readonly string[]): Promise<EntryAttributes> {
    const key = `${address.toLowerCase()}\0${attributes.join('\0')}`;
    const hit = attributeCache.get(key);
    if (hit && hit.until > Date.now()) {
      event({ type: 'question', question: 'attributes', result: hit.answer.kind, source: 'cache' });
      return hit.answer;
    }
    attributeCache.delete(key);
    const answer = await timed('attributes', () => client.entryAttributes(address.toLowerCase(), attributes), kindOf);
    if (answer.kind === 'unavailable') problem('directory unavailable', `attributes of ${address}: ${answer.why}`);
    else if (o.config.cacheTtl > 0) {
      if (attributeCache.size >= ATTRIBUTE_CACHE_SIZE) attributeCache.delete(attributeCache.keys().next().value!);
      attributeCache.set(key, { answer, until: Date.now() + o.config.cacheTtl });
    }
    return answer;
  }

  // Group membership changes seldom and a busy address sends often: kept per process, as long as a
  // recipient lookup (found: cacheTtl, not found: negativeCacheTtl), never an outage.
  const membershipCache = new Map<string, { answer: MembershipAnswer; until: number }>();
  async function memberships(address: string): Promise<MembershipAnswer> {
    const key = address.toLowerCase();
    const hit = membershipCache.get(key);
    if (hit && hit.until > Date.now()) {
      event({ type: 'question', question: 'groups', result: hit.answer.kind, source: 'cache' });
      return hit.answer;
    }
    membershipCache.delete(key);
    const answer = await timed('groups', () => client.memberships(key), kindOf);
    if (answer.kind === 'unavailable') problem('directory unavailable', `groups of ${address}: ${answer.why}`);
    else {
      const ttl = answer.kind === 'found' ? o.config.cacheTtl : o.config.negativeCacheTtl;
      if (ttl > 0) {
        if (membershipCache.size >= ATTRIBUTE_CACHE_SIZE) membershipCache.delete(membershipCache.keys().next().value!);
        membershipCache.set(key, { answer, until: Date.now() + ttl });
      }
    }
    return answer;
  }

  async function recipientEntry(address: string): Promise<RecipientEntry> {
    const a = address.toLowerCase();
    const hit = await cached(a);
    if (hit) {
      event({ type: 'question', question: 'recipient', result: hit.answer, source: 'cache' });
      return hit;
    }
    const entry = await timed('recipient', () => client.recipientEntry(a, (line) => (/trying the next server/.test(line) ? problem('directory server failed', line) : undefined)), (x) => x.answer);
    if (entry.answer === 'unavailable') problem('directory unavailable', `recipient lookup of ${a}`);
    await store(a, entry);
    return entry;
  }

  return {
    client,
    entryAttributes,
    memberships,
    // Asked only when the policy would refuse a directory user's sender: not cached, so a
    // removed permission stops at once, as AUTH does.
    sendAs: async (address, sids) => {
      const r = await timed('send-as', () => client.sendAs(address, sids), kindOf);
      if (r.kind === 'unavailable') problem('directory unavailable', `Send As on ${address}: ${r.why}`);
      return r;
    },
    logon: async (login, password) => {
      const r = await timed('logon', () => client.logon(login, password), kindOf);
      if (r.kind === 'unavailable') problem('directory unavailable', r.why);
      return r;
    },
    recipientEntry,
    async close() {
      redis?.disconnect();
      await client.close();
    },
  };
}
