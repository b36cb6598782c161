// Sender reputation's counting (Exchange's Protocol Analysis agent): after each message a rated
// session sent (and each recipient refused as unknown), its sender's profile in the queue's
// Redis is updated in one MULTI (shared by every listener process and machine), its reverse DNS
// looked up once, and the profile judged by the policy (reputationVerdict). A sender that
// reaches the block threshold goes on the IP Block List and its profile is deleted, as Exchange
// does: after the block it starts afresh. Nothing here delays an SMTP reply: the listener calls
// observe() and goes on.
import type { IpAddress } from '@mailgw/config';
import { reputationSubject, reputationVerdict, reverseDnsResult, SRL_SPAM_SCL, type IpBlockListEntry, type Policy, type ReputationObservation, type ReputationProfile, type ReputationVerdict, type ReverseDnsResult } from '@mailgw/policy';
import type { IpBlockListStore, KeySpace } from '@mailgw/queue';
import type { DnsResolver } from './dns.js';
import { forwardConfirmedNames } from './reverse-lookup.js';

/** A profile not added to for this long is forgotten (Redis expires it). */
export const PROFILE_RETENTION_MS = 30 * 86_400_000;

/** The part of an ioredis client the counting uses. */
export interface ReputationRedis {
  multi(): ReputationMulti;
  hset(key: string, field: string, value: string): Promise<unknown>;
  del(...keys: string[]): Promise<number>;
  hgetall(key: string): Promise<Record<string, string>>;
  pfcount(key: string): Promise<number>;
}
export interface ReputationMulti {
  hincrby(key: string, field: string, by: number): ReputationMulti;
  pfadd(key: string, ...elements: string[]): ReputationMulti;
  pexpire(key: string, ms: number): ReputationMulti;
  hgetall(key: string): ReputationMulti;
  pfcount(key: string): ReputationMulti;
  exec(): Promise<Array<[Error | null, unknown]> | null>;
}

export interface SenderReputationOptions {
  readonly redis: ReputationRedis;
  readonly keys: Pick<KeySpace, 'reputation' | 'reputationHelo'>;
  readonly blockList: IpBlockListStore;
  /** The policy now (a reload's thresholds apply to the next message). */
  readonly policy: () => Policy;
  /** For the reverse DNS check; none: reverse DNS stays unknown (no points). */
  readonly resolver?: DnsResolver | null;
  readonly now?: () => number;
  /** Every judged message (debug logging). */
  readonly onRated?: (subject: string, verdict: ReputationVerdict) => void;
  readonly onBlocked?: (entry: IpBlockListEntry, verdict: ReputationVerdict) => void;
  readonly onError?: (err: unknown) => void;
}

const num = (v: string | undefined) => (v === undefined ? 0 : Number(v) || 0);

export function profileOf(hash: Record<string, string>, heloNames: number): ReputationProfile {
  const rdns = hash.reverseDns;
  return {
    messages: num(hash.messages),
    spam: num(hash.spam),
    heloLiteralMismatch: num(hash.heloLiteralMismatch),
    heloLocalName: num(hash.heloLocalName),
    heloNames,
    recipients: num(hash.recipients),
    unknownRecipients: num(hash.unknownRecipients),
    reverseDns: rdns === 'match' || rdns === 'mismatch' || rdns === 'none' ? rdns : 'unknown',
  };
}

export class SenderReputation {
  private pending = new Set<Promise<void>>();
  constructor(private readonly o: SenderReputationOptions) {}

  /** Counts one message or unknown recipient; never throws, never waits (failures go to onError). */
  observe(obs: ReputationObservation): void {
    const p = this.record(obs).catch((err: unknown) => this.o.onError?.(err));
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Resolves when every observe() so far is counted (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  /** A sender's profile and level now (`mailgw reputation`). */
  async profile(client: IpAddress): Promise<{ subject: string; profile: ReputationProfile; verdict: ReputationVerdict }> {
    const { key } = reputationSubject(client);
    const [hash, names] = await Promise.all([this.o.redis.hgetall(this.o.keys.reputation(key)), this.o.redis.pfcount(this.o.keys.reputationHelo(key))]);
    const profile = profileOf(hash, names);
    return { subject: key, profile, verdict: reputationVerdict(this.o.policy(), profile, (this.o.now ?? Date.now)()) };
  }

  /** Forgets a sender's profile (`mailgw reputation --reset`): it is rated afresh from its next message. */
  async reset(client: IpAddress): Promise<{ subject: string; existed: boolean }> {
    const { key } = reputationSubject(client);
    const n = await this.o.redis.del(this.o.keys.reputation(key), this.o.keys.reputationHelo(key));
    return { subject: key, existed: n > 0 };
  }

  private async record(obs: ReputationObservation): Promise<void> {
    const subject = reputationSubject(obs.client);
    const k = this.o.keys.reputation(subject.key);
    const kh = this.o.keys.reputationHelo(subject.key);
    const m = this.o.redis.multi();
    if (obs.kind === 'unknown-recipient') m.hincrby(k, 'unknownRecipients', 1);
    else {
      m.hincrby(k, 'messages', 1).hincrby(k, 'recipients', obs.recipients);
      if (obs.scl !== null && obs.scl >= SRL_SPAM_SCL) m.hincrby(k, 'spam', 1);
      if (obs.heloFacts.kind === 'literal-mismatch') m.hincrby(k, 'heloLiteralMismatch', 1);
      if (obs.heloFacts.kind === 'local-name') m.hincrby(k, 'heloLocalName', 1);
      if (obs.heloFacts.name) m.pfadd(kh, obs.heloFacts.name);
    }
    m.pexpire(k, PROFILE_RETENTION_MS).pexpire(kh, PROFILE_RETENTION_MS).hgetall(k).pfcount(kh);
    const res = await m.exec();
    if (!res) throw new Error('sender reputation: MULTI was discarded');
    const failed = res.find(([e]) => e);
    if (failed) throw failed[0]!;
    const hash = res[res.length - 2]![1] as Record<string, string>;
    const names = Number(res[res.length - 1]![1]) || 0;
    let profile = profileOf(hash, names);
    if (hash.reverseDns === undefined && this.o.resolver) {
      const rdns = await this.reverseDns(obs.client, obs.helo);
      if (rdns !== 'unknown') await this.o.redis.hset(k, 'reverseDns', rdns);
      profile = { ...profile, reverseDns: rdns };
    }
    const now = (this.o.now ?? Date.now)();
    const verdict = reputationVerdict(this.o.policy(), profile, now);
    this.o.onRated?.(subject.key, verdict);
    if (verdict.blockUntil === null) return;
    const entry = await this.o.blockList.add({ range: subject.range.text, kind: 'machine', expiresAt: verdict.blockUntil, comment: verdict.level.reason, now });
    await this.o.redis.del(k, kh);
    this.o.onBlocked?.(entry, verdict);
  }

  /** The client's reverse DNS judged against its HELO (one lookup per profile). */
  private async reverseDns(client: IpAddress, helo: string): Promise<ReverseDnsResult> {
    return reverseDnsResult(helo, await forwardConfirmedNames(this.o.resolver!, client)).result;
  }
}
