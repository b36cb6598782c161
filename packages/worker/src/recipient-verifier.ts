// Recipient verification's I/O (gateway.yaml recipientVerification): asks a recipient's next hop,
// as delivery would reach it, whether it takes the address (MAIL FROM, RCPT TO, no DATA), and
// keeps the answer in the queue's Redis for every listener: accepted for cacheTtl (asked again in
// the background after refreshAfter, the old answer serving meanwhile, so an outage of the server
// behind never refuses a known recipient), refused for negativeCacheTtl; "could not say" is never
// kept. One probe per address at a time in a process; at most maxProbesPerNextHop per next hop,
// on sessions kept open for the next address to the same hop (one MAIL FROM, then a RCPT each).
// A client waits at most `timeout`: a probe still running then finishes and is cached for the
// sender's next try. What an answer means for the client is @mailgw/policy's verifiedRecipient.
import type { GatewayConfig } from '@mailgw/config';
import { formatReply, isPermanent, isSuccess, type Reply } from '@mailgw/mail';
import type { VerificationAnswer } from '@mailgw/policy';
import { groupByHop, RouteTable, type KeySpace } from '@mailgw/queue';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { openProbeSession, probeOn, type HopContext, type ProbeOutcome } from './smtp-delivery.js';
import { DEFAULT_TIMEOUTS, type SmtpSession, type SmtpTimeouts } from './smtp-session.js';
import type { Hop } from '@mailgw/queue';

/** One cached answer, as stored (JSON) under keys.recipientVerification. */
export interface CachedVerification {
  readonly kind: 'accepted' | 'refused';
  /** The next hop's reply to RCPT TO. */
  readonly reply: string;
  readonly nextHop: string;
  /** When it was asked (epoch ms). */
  readonly at: number;
}

export interface RecipientVerifierOptions {
  /** The configuration now (recipientVerification, the routing table, fqdn): a reload applies to the next probe. */
  readonly settings: () => GatewayConfig;
  /** The queue's Redis: the cache every listener shares. */
  readonly redis: Redis;
  readonly keys: KeySpace;
  /** How probes reach next hops: the delivery workers' DNS, timeouts, TLS trust, MTA-STS. */
  readonly hops: Omit<HopContext, 'clientName'>;
  readonly logger?: Logger;
  /** Told about every answer given (metrics): where it came from. */
  readonly onAnswer?: (kind: VerificationAnswer['kind'], source: 'cache' | 'probe' | 'timeout') => void;
  readonly clock?: () => number;
}

/** A probe session is kept this long for the next address to its hop (a burst of new addresses shares sessions). */
const PROBE_SESSION_IDLE_MS = 5_000;
/** RCPTs in one probe transaction at most (servers limit recipients per transaction; Postfix 1000, Exchange 5000): then QUIT. */
const PROBES_PER_SESSION = 50;
/** Probes that may wait for a next hop's slots, per slot: more are answered "could not say" at once. */
const WAITING_PER_PROBE = 20;
/** A probe's session: a client waits at RCPT (recipientVerification.timeout), so shorter than a delivery's. */
export const PROBE_TIMEOUTS: SmtpTimeouts = { ...DEFAULT_TIMEOUTS, connectionMs: 10_000, greetingMs: 10_000, socketMs: 30_000 };

/** A stale answer is asked again at most this often per address and process. */
const REFRESH_RETRY_MS = 5 * 60_000;
/** Addresses whose refresh times are remembered (then forgotten at once: a refresh too many costs a probe). */
const MAX_REFRESH_REMEMBERED = 100_000;

/** What one probe learnt (cached when accepted or refused). */
export type ProbeAnswer = { kind: 'accepted' | 'refused'; reply: string; nextHop: string; at: number } | { kind: 'unknown'; why: string; nextHop: string | null };

export class RecipientVerifier {
  private readonly inFlight = new Map<string, Promise<ProbeAnswer>>();
  private readonly slots = new Map<string, { active: number; waiting: Array<() => void> }>();
  /** Next hops whose failure was logged at warn, and when (one warning a minute per next hop). */
  private readonly warned = new Map<string, number>();
  /** Open probe sessions nobody uses now, per next hop, each closed after PROBE_SESSION_IDLE_MS. */
  private readonly idle = new Map<string, Array<{ session: SmtpSession; timer: NodeJS.Timeout }>>();
  private closed = false;
  /** Probes each open probe session has served. */
  private readonly probesOn = new WeakMap<SmtpSession, number>();
  /** When a stale answer was last asked again, per address (mayRefresh). */
  private readonly refreshTried = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly o: RecipientVerifierOptions) {
    this.now = o.clock ?? Date.now;
  }

  /** The answer for `address` (lower case), from the cache or a probe, within the configured timeout. */
  async verify(address: string, senderDomain: string | null): Promise<VerificationAnswer> {
    const rv = this.o.settings().recipientVerification;
    if (!rv) return { kind: 'unknown', why: 'recipientVerification is not configured', nextHop: null };
    const hit = await this.cached(address);
    if (hit) {
      const age = this.now() - hit.at;
      if (hit.kind === 'accepted' && age >= rv.refreshAfter && !this.inFlight.has(address) && this.mayRefresh(address)) {
        // Asked again behind the scenes; the answer we have serves meanwhile.
        void this.probe(address, senderDomain);
      }
      this.o.onAnswer?.(hit.kind, 'cache');
      return { ...hit, cached: true };
    }
    const running = this.probe(address, senderDomain);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), rv.timeout);
      timer.unref?.();
    });
    const learnt = await Promise.race([running, late]);
    clearTimeout(timer);
    if (!learnt) {
      this.o.onAnswer?.('unknown', 'timeout');
      return { kind: 'unknown', why: `no answer from the next hop within ${rv.timeout} ms (the probe goes on; its answer is kept for the next try)`, nextHop: null };
    }
    this.o.onAnswer?.(learnt.kind, 'probe');
    return learnt.kind === 'unknown' ? learnt : { ...learnt, cached: false };
  }

  /**
   * Whether a stale answer may be asked again now: at most once every REFRESH_RETRY_MS per
   * address in a process, so that while the server behind is down (the refresh cannot replace
   * the answer) each RCPT of a known recipient does not cost a connection attempt.
   */
  private mayRefresh(address: string): boolean {
    const now = this.now();
    const last = this.refreshTried.get(address);
    if (last !== undefined && now - last < REFRESH_RETRY_MS) return false;
    if (this.refreshTried.size >= MAX_REFRESH_REMEMBERED) this.refreshTried.clear();
    this.refreshTried.set(address, now);
    return true;
  }

  /** The cached answer for `address`, if any (`mailgw verify-recipient` shows it). */
  async cached(address: string): Promise<CachedVerification | null> {
    const a = address.toLowerCase();
    try {
      const raw = await this.o.redis.get(this.o.keys.recipientVerification(a));
      return raw ? parseCached(raw) : null;
    } catch (err) {
      this.o.logger?.debug({ err: (err as Error).message }, 'recipient verification cache not read (Redis): asking the next hop');
      return null;
    }
  }

  /** Forgets the cached answer for `address` (a mailbox created or deleted just now). */
  async forget(address: string): Promise<boolean> {
    const a = address.toLowerCase();
    return (await this.o.redis.del(this.o.keys.recipientVerification(a))) > 0;
  }

  /** Asks the next hop now, whatever the cache holds, and caches the answer (`mailgw verify-recipient`). */
  probeNow(address: string, senderDomain: string | null): Promise<ProbeAnswer> {
    return this.probe(address.toLowerCase(), senderDomain);
  }

  /** One probe per address at a time; its answer is cached when it is one. */
  private probe(address: string, senderDomain: string | null): Promise<ProbeAnswer> {
    const running = this.inFlight.get(address);
    if (running) return running;
    const p = this.ask(address, senderDomain)
      .then(async (learnt) => {
        await this.store(address, learnt);
        return learnt;
      })
      .catch((err: unknown): ProbeAnswer => ({ kind: 'unknown', why: `probe failed: ${(err as Error).message}`, nextHop: null }))
      .finally(() => this.inFlight.delete(address));
    this.inFlight.set(address, p);
    return p;
  }

  private async ask(address: string, senderDomain: string | null): Promise<ProbeAnswer> {
    const g = this.o.settings();
    const rv = g.recipientVerification!;
    const at = address.lastIndexOf('@');
    const local = address.slice(0, at);
    const domain = address.slice(at + 1);
    const { hops, unroutable } = groupByHop([{ index: 0, local, domain }], new RouteTable(g.sendConnectors), senderDomain);
    const hop: Hop | undefined = hops[0];
    if (!hop) return { kind: 'unknown', why: unroutable[0] ? formatReply(unroutable[0].reply) : `no next hop for ${domain}`, nextHop: null };
    if (hop.target.kind === 'maildir') return { kind: 'unknown', why: `${domain} is delivered here (${hop.key}): there is no next hop to ask`, nextHop: hop.key };
    if (!(await this.slot(hop.key, rv.maxProbesPerNextHop))) {
      // A harvest of many addresses at once must not queue probes without end (memory, and the server behind).
      return { kind: 'unknown', why: `${rv.maxProbesPerNextHop * WAITING_PER_PROBE} probes already wait for ${hop.key}`, nextHop: hop.key };
    }
    let outcome: ProbeOutcome;
    try {
      const idle = this.takeIdle(hop.key);
      const opened = idle ? { ok: true as const, session: idle } : await openProbeSession(hop, { ...this.o.hops, clientName: g.fqdn, ...(this.o.logger ? { logger: this.o.logger } : {}) });
      if (!opened.ok) outcome = { kind: 'failed', reply: opened.reply };
      else {
        outcome = await probeOn(opened.session, rv.probeSender, address);
        // Kept for the next address to this hop when the transaction is open and has room.
        if (outcome.kind === 'answered' && outcome.rcpt && !this.closed) this.keepIdle(hop.key, opened.session);
        else opened.session.close();
      }
    } finally {
      this.release(hop.key);
    }
    return this.judge(hop.key, address, rv.probeSender, outcome);
  }

  /** An open probe session to `hop` nobody uses now, if one is still usable. */
  private takeIdle(hop: string): SmtpSession | null {
    const list = this.idle.get(hop);
    while (list && list.length > 0) {
      const p = list.pop()!;
      clearTimeout(p.timer);
      if (p.session.usable) return p.session;
      p.session.close();
    }
    this.idle.delete(hop);
    return null;
  }

  /** Keeps a probe session open for PROBE_SESSION_IDLE_MS, for at most PROBES_PER_SESSION probes. */
  private keepIdle(hop: string, session: SmtpSession): void {
    const done = (this.probesOn.get(session) ?? 0) + 1;
    if (!session.usable || done >= PROBES_PER_SESSION) {
      session.close();
      return;
    }
    this.probesOn.set(session, done);
    const entry = { session, timer: setTimeout(() => this.dropIdle(hop, entry), PROBE_SESSION_IDLE_MS) };
    entry.timer.unref?.();
    const list = this.idle.get(hop) ?? [];
    list.push(entry);
    this.idle.set(hop, list);
  }

  private dropIdle(hop: string, entry: { session: SmtpSession; timer: NodeJS.Timeout }): void {
    const list = this.idle.get(hop);
    const i = list?.indexOf(entry) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
    if (list && list.length === 0) this.idle.delete(hop);
    entry.session.close();
  }

  /** Closes the open probe sessions (QUIT); probes after this open sessions of their own and close them. */
  close(): void {
    this.closed = true;
    for (const [hop, list] of this.idle) for (const e of [...list]) this.dropIdle(hop, e);
  }

  private judge(hopKey: string, address: string, sender: string, outcome: ProbeOutcome): ProbeAnswer {
    const now = this.now();
    if (outcome.kind === 'failed') {
      this.warn(hopKey, { reply: formatReply(outcome.reply) }, 'recipient verification: the next hop could not be asked');
      return { kind: 'unknown', why: `${hopKey}: ${formatReply(outcome.reply)}`, nextHop: hopKey };
    }
    const where = `${hopKey} (${outcome.host})`;
    if (outcome.notSent) return { kind: 'unknown', why: outcome.notSent, nextHop: hopKey };
    if (!outcome.rcpt) {
      // The probe sender itself was refused: the server behind must take it (or set probeSender).
      this.warn(hopKey, { probeSender: `<${sender}>`, reply: formatReply(outcome.mail) }, 'recipient verification: the next hop refuses the probe sender; set recipientVerification.probeSender to an address it takes');
      return { kind: 'unknown', why: `${where} refused MAIL FROM:<${sender}>: ${formatReply(outcome.mail)}`, nextHop: hopKey };
    }
    const r: Reply = outcome.rcpt;
    if (isSuccess(r)) return { kind: 'accepted', reply: formatReply(r), nextHop: hopKey, at: now };
    if (isPermanent(r)) {
      this.o.logger?.debug({ hop: hopKey, to: address, reply: formatReply(r) }, 'recipient verification: the next hop refused the recipient');
      return { kind: 'refused', reply: formatReply(r), nextHop: hopKey, at: now };
    }
    return { kind: 'unknown', why: `${where} answered RCPT TO with ${formatReply(r)}`, nextHop: hopKey };
  }

  private async store(address: string, learnt: ProbeAnswer): Promise<void> {
    if (learnt.kind === 'unknown') return;
    const rv = this.o.settings().recipientVerification;
    if (!rv) return;
    const ttl = learnt.kind === 'accepted' ? rv.cacheTtl : rv.negativeCacheTtl;
    if (ttl <= 0) return;
    const v: CachedVerification = { kind: learnt.kind, reply: learnt.reply, nextHop: learnt.nextHop, at: learnt.at };
    try {
      await this.o.redis.set(this.o.keys.recipientVerification(address), JSON.stringify(v), 'PX', ttl);
    } catch (err) {
      this.o.logger?.warn({ err: (err as Error).message }, 'recipient verification answer not cached (Redis): the next RCPT asks the next hop again');
    }
  }

  /** A probe slot for `hop` (resolves true when it is this probe's turn), or false when too many wait already. */
  private slot(hop: string, max: number): Promise<boolean> {
    const s = this.slots.get(hop) ?? { active: 0, waiting: [] };
    this.slots.set(hop, s);
    if (s.active < max) {
      s.active++;
      return Promise.resolve(true);
    }
    if (s.waiting.length >= max * WAITING_PER_PROBE) return Promise.resolve(false);
    return new Promise((resolve) => s.waiting.push(() => resolve(true)));
  }

  private release(hop: string): void {
    const s = this.slots.get(hop);
    if (!s) return;
    const next = s.waiting.shift();
    if (next) next();
    else if (--s.active === 0) this.slots.delete(hop);
  }

  private warn(hop: string, fields: Record<string, unknown>, msg: string): void {
    const last = this.warned.get(hop) ?? -Infinity;
    const now = this.now();
    if (now - last < 60_000) {
      this.o.logger?.debug({ hop, ...fields }, msg);
      return;
    }
    this.warned.set(hop, now);
    this.o.logger?.warn({ hop, ...fields }, msg);
  }
}

/** A cached answer, or null for anything else under the key (an older format, a hand-made value). */
export function parseCached(raw: string): CachedVerification | null {
  try {
    const v = JSON.parse(raw) as Partial<CachedVerification>;
    if ((v.kind === 'accepted' || v.kind === 'refused') && typeof v.reply === 'string' && typeof v.nextHop === 'string' && typeof v.at === 'number') return { kind: v.kind, reply: v.reply, nextHop: v.nextHop, at: v.at };
  } catch {
    // not JSON
  }
  return null;
}
