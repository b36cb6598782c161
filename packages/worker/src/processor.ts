// One delivery attempt of one message: deliver its pending recipients per next hop, record
// the results in the job, send the DSNs that are due, then finish (body deleted, job
// completed) or go back to the queue, delayed, until the next try.
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { formatAddress, formatReply, headerValue, localReply, messageHeader, messageHeaderFields, parseEnvelopeAddress, parseHeaderFields, withoutHeaderFields, wrapLongLines } from '@mailgw/mail';
import { copyDirection, outboundSender, rewriteCopy, type AddressRewriter, type BounceTagging, type RewriteDirection } from '@mailgw/policy';
import type { DomainPattern } from '@mailgw/config';
import {
  UnreadableDeliveryStateError,
  dueDsns,
  expiresAt,
  nextAttemptAt,
  parseDeliveryJob,
  pendingIndices,
  readState,
  type DeliveryJob,
  type DeliveryState,
  type HopTls,
  type DsnSender,
  type MailStore,
  type QueueConfig,
  type SuspendedHops,
  type SuspendedMessages,
  trackingBase,
  type TrackingBase,
  type TrackingEvent,
  type TrackingLog,
} from '@mailgw/queue';
import { deliverLocalHop } from './local-delivery.js';
import type { Outcomes, RecipientOutcome } from './outcome.js';
import { groupByHop, type Hop, type RouteTable } from '@mailgw/queue';
import { deliverSmtpHop, type OutboundMessage, type SmtpDeliveryContext } from './smtp-delivery.js';
import type { HopSigner, OutboundDkim } from './dkim-signing.js';
import type { CopySealer, OutboundArc } from './arc-sealing.js';
import type { ByteBudget } from './byte-budget.js';

export interface ProcessorContext {
  readonly queue: QueueConfig;
  readonly routes: RouteTable;
  readonly store: MailStore;
  readonly dsn: DsnSender;
  readonly smtp: SmtpDeliveryContext;
  readonly tracking: TrackingLog;
  readonly logger: Logger;
  /** Delay before retrying recipients whose destination was busy (default 2 s, jittered). */
  readonly busyRetryMs: number;
  /** Next hops an operator suspended: their recipients are left queued, untried. */
  readonly suspendedHops?: SuspendedHops;
  /** Messages an operator suspended: nothing is tried, they are held until resumed or expired. */
  readonly suspendedMessages?: SuspendedMessages;
  /** DKIM signing of copies that leave through SMTP; absent when gateway.yaml has no dkim. */
  readonly dkim?: OutboundDkim | null;
  /** ARC sealing of copies that leave through SMTP; absent without senderAuthentication.arcSeal. */
  readonly arc?: OutboundArc | null;
  /** queue.workerMessageBytes: a delivery waits here until its message fits in memory. */
  readonly messageBytes?: Pick<ByteBudget, 'acquire'>;
  /** addressRewriteEntries, and the accepted domains whose mail stays inside; absent without entries. */
  readonly addressRewrite?: AddressRewriting | null;
  /** Bounce verification: senders of the Authoritative domains tagged on copies to outside; absent when off. */
  readonly bounceTags?: BounceTagging | null;
}

export interface AddressRewriting {
  readonly rewriter: AddressRewriter;
  /** Authoritative and InternalRelay domains (@mailgw/config insideDomains). */
  readonly inside: readonly DomainPattern[];
}

const SUSPENDED_REPLY = localReply(451, '4.4.0', 'Next hop suspended by an administrator');
const MESSAGE_SUSPENDED_REPLY = localReply(451, '4.4.0', 'Message suspended by an administrator');

export interface DeliverySummary {
  readonly delivered: number;
  readonly failed: number;
  readonly dsns: readonly string[];
}

/**
 * One tracking line per (event, next hop), listing its recipients and their replies; `sentFrom`
 * is the envelope sender a recipient's copy went out with when address rewriting changed it
 * (the line then says that sender, as sent).
 */
function trackOutcomes(tracking: TrackingLog, base: TrackingBase, data: DeliveryJob, outcomes: Outcomes, sentFrom: ReadonlyMap<number, string>): void {
  const groups = new Map<string, { event: TrackingEvent['eventId']; source: string; server: string | null; sender: string | undefined; rcpts: string[]; statuses: string[] }>();
  for (const [i, o] of outcomes) {
    if (o.type === 'busy' || o.type === 'suspended') continue;
    const remote = o.remoteMta;
    const event = o.type === 'delivered' ? (remote === null ? 'DELIVER' : 'SEND') : o.type === 'deferred' ? 'DEFER' : 'FAIL';
    const source = event === 'DELIVER' ? 'STOREDRIVER' : event === 'SEND' ? 'SMTP' : 'QUEUE';
    const sender = sentFrom.get(i);
    const key = `${event}|${remote ?? ''}|${sender ?? ''}`;
    const g = groups.get(key) ?? { event, source, server: remote, sender, rcpts: [], statuses: [] };
    g.rcpts.push(data.rcptTo[i]!.address);
    g.statuses.push(formatReply(o.reply));
    groups.set(key, g);
  }
  for (const g of groups.values()) {
    tracking.write({ ...base, ...(g.sender !== undefined ? { senderAddress: g.sender } : {}), eventId: g.event, source: g.source, recipientAddress: g.rcpts, recipientStatus: g.statuses, ...(g.server ? { serverHostname: g.server } : {}) });
  }
}

function apply(state: DeliveryState, outcomes: Outcomes, now: number): void {
  for (const [i, o] of outcomes) {
    const r = state.recipients[i]!;
    if (o.type === 'busy' || o.type === 'suspended') continue; // nothing was tried
    r.attempts++;
    r.lastAttemptAt = now;
    r.reply = o.reply;
    r.remoteMta = o.remoteMta;
    if (o.type === 'delivered') {
      r.status = 'delivered';
      r.dsnAction = o.dsnAction;
    } else if (o.type === 'failed') r.status = 'failed';
  }
}

/** The pending recipients by next hop (routes.ts); worked out once per attempt. */
type Routing = ReturnType<typeof groupByHop<string>>;

function routePending(data: DeliveryJob, pending: readonly number[], ctx: ProcessorContext): Routing {
  return groupByHop(pending.map((i) => ({ ...data.rcptTo[i]!, index: i })), ctx.routes, data.mailFrom.sender?.domain ?? null);
}

type DeliveryMessage = Omit<OutboundMessage, 'prefix'>;

/**
 * Bounce verification (BATV): the envelope sender of a copy for this hop, as the policy says
 * (@mailgw/policy outboundSender: tagged for outside from an Authoritative domain).
 */
function taggedFrom(t: BounceTagging | null | undefined, hop: Hop, from: string, now: number): string {
  if (!t || from === '') return from;
  const p = parseEnvelopeAddress(from);
  if (!p.ok) return from;
  const sent = outboundSender(t, hop.recipients.map((r) => r.domain), p.value, now);
  return sent === p.value ? from : formatAddress(sent!);
}

/** The message as one direction sees it: its envelope sender and body, and the From: DKIM signs by. */
interface MessageForm {
  readonly message: DeliveryMessage;
  readonly fromHeader: string | null;
}

/** A form of the message, and (made when first asked) its copy for SMTP and LMTP next hops. */
interface CopyForm extends MessageForm {
  smtp(): { copy: DeliveryMessage; signFor: HopSigner | undefined; sealFor: CopySealer | undefined };
}

/**
 * The message with the addresses rewritten that `direction` rewrites (@mailgw/policy
 * address-rewrite.ts): outbound the envelope sender and the address fields, inbound the address
 * fields. As stored when no entry applies.
 */
function rewritten(rw: AddressRewriter, direction: RewriteDirection, data: DeliveryJob, stored: MessageForm, log: Logger): MessageForm {
  const { message } = stored;
  const head = messageHeader(message.body);
  const r = rewriteCopy(rw, direction, data.mailFrom.sender ?? null, head.header);
  if (!r) return stored;
  const body = r.header ? Buffer.concat([r.header, head.separator ? CRLF : EMPTY, head.rest]) : message.body;
  const from = r.senderRewritten && r.sender ? formatAddress(r.sender) : message.from;
  log.debug({ direction, entries: r.entries, fields: r.fields, addresses: r.addresses, ...(r.senderRewritten ? { from: message.from, rewrittenFrom: from } : {}) }, 'addresses rewritten');
  return { message: { ...message, from, body }, fromHeader: r.header ? headerValue(parseHeaderFields(r.header), 'from') : stored.fromHeader };
}

const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);
const RECEIVED: ReadonlySet<string> = new Set(['received']);

/**
 * A send connector without ms-Exch-Send-Headers-Routing (sendHeadersRouting: false): the copy it
 * sends has no Received field, so the far side does not see the hosts and client addresses the
 * mail came through. As it was when there is none.
 */
function withoutReceived(form: MessageForm, connector: string, log: Logger): MessageForm {
  const body = withoutHeaderFields(form.message.body, RECEIVED);
  if (!body) return form;
  log.debug({ connector }, 'Received fields removed (sendHeadersRouting: false)');
  return { ...form, message: { ...form.message, body } };
}

/**
 * Local mailboxes get the form as it is. A copy for an SMTP or LMTP next hop has no line over
 * 998 octets (RFC 5322 2.1.1; @mailgw/mail long-lines.ts), a binary one has no lines; it is
 * wrapped before it is signed, so a DKIM signature covers what is sent, and it may carry
 * DKIM-Signature fields.
 */
function copyForm(form: MessageForm, ctx: ProcessorContext, log: Logger, wrapLog: { said: boolean }): CopyForm {
  let made: { copy: DeliveryMessage; signFor: HopSigner | undefined; sealFor: CopySealer | undefined } | null = null;
  return {
    ...form,
    smtp() {
      if (made) return made;
      const { message } = form;
      const wrapped = message.binaryMime ? null : wrapLongLines(message.body);
      if (wrapped && wrapped.lines > 0 && !wrapLog.said) {
        wrapLog.said = true;
        log.info({ longLines: wrapped.lines, longestLine: wrapped.longest }, 'lines over 998 octets wrapped for the next hop');
      }
      const copy = { ...message, body: wrapped?.body ?? message.body };
      made = { copy, signFor: ctx.dkim?.forMessage(copy.body, log, form.fromHeader, message.binaryMime), sealFor: ctx.arc?.forCopy(copy.body, log, message.binaryMime) };
      return made;
    },
  };
}

async function attempt(data: DeliveryJob, pending: readonly number[], routing: Routing, body: Buffer, from: string | null, suspended: readonly string[], ctx: ProcessorContext, log: Logger, hopTls: Map<string, HopTls>, sentFrom: Map<number, string>): Promise<Outcomes> {
  const outcomes: Outcomes = new Map();
  const { hops: routed, unroutable } = routing;
  for (const u of unroutable) {
    outcomes.set(u.index, u.permanent ? { type: 'failed', reply: u.reply, remoteMta: null } : { type: 'deferred', reply: u.reply, remoteMta: null, connectionFailure: false });
  }
  const held = new Set(suspended);
  for (const hop of routed) if (held.has(hop.key)) for (const rc of hop.recipients) outcomes.set(rc.index, { type: 'suspended', reply: SUSPENDED_REPLY });
  const hops = routed.filter((h) => !held.has(h.key));
  const message: DeliveryMessage = { from: data.mailFrom.address, body, ret: data.mailFrom.ret, envid: data.mailFrom.envid, eightBit: data.mailFrom.body === '8BITMIME', binaryMime: data.mailFrom.body === 'BINARYMIME', smtpUtf8: data.mailFrom.smtpUtf8 === true };
  // One form of the message per way it is sent (address rewriting's direction, Received fields kept or not), else one for all hops.
  const forms = new Map<string, CopyForm>();
  const wrapLog = { said: false };
  const stored: MessageForm = { message, fromHeader: from };
  const asStored = (): CopyForm => {
    let form = forms.get('as-stored');
    if (!form) forms.set('as-stored', (form = copyForm(stored, ctx, log, wrapLog)));
    return form;
  };
  const formFor = (hop: Hop): CopyForm => {
    const rw = ctx.addressRewrite;
    const direction = rw ? copyDirection(hop.recipients.map((r) => r.domain), rw.inside) : null;
    const strip = hop.connector.sendHeadersRouting === false && hop.target.kind !== 'maildir';
    const key = `${direction ?? 'as-stored'}${strip ? ':no-received' : ''}`;
    let form = forms.get(key);
    if (!form) {
      let m = direction && rw ? rewritten(rw.rewriter, direction, data, stored, log) : stored;
      if (strip) m = withoutReceived(m, hop.connector.name, log);
      // A form no step changed shares the stored one (wrapped and signed once).
      form = m === stored ? asStored() : copyForm(m, ctx, log, wrapLog);
      forms.set(key, form);
    }
    return form;
  };
  // The delivery's lines (TLS policy, DANE, MTA-STS) carry the message's queue id.
  const smtp = { ...ctx.smtp, logger: log };
  const results = await Promise.allSettled(
    hops.map(async (hop) => {
      const form = formFor(hop);
      if (form.message.from !== message.from) for (const rc of hop.recipients) sentFrom.set(rc.index, form.message.from);
      if (hop.target.kind === 'maildir') return deliverLocalHop(hop, form.message);
      const { copy, signFor, sealFor } = form.smtp();
      // The ARC set goes on top and covers the DKIM-Signature below it (RFC 8617 §5.1: sealed last).
      const signatures = (await signFor?.(hop)) ?? null;
      const seal = (await sealFor?.(signatures)) ?? null;
      const from = taggedFrom(ctx.bounceTags, hop, copy.from, Date.now());
      return deliverSmtpHop(hop, { ...copy, from, prefix: seal ? (signatures ? Buffer.concat([seal, signatures]) : seal) : signatures }, smtp, (t) => hopTls.set(hop.key, t));
    }),
  );
  results.forEach((r, h) => {
    const hop = hops[h]!;
    if (r.status === 'fulfilled') {
      for (const [i, o] of r.value) outcomes.set(i, o);
      return;
    }
    log.error({ err: r.reason, hop: hop.key }, 'delivery to a next hop failed unexpectedly');
    const o: RecipientOutcome = { type: 'deferred', reply: localReply(451, '4.3.0', 'Temporary local error during delivery'), remoteMta: null, connectionFailure: false };
    for (const rc of hop.recipients) outcomes.set(rc.index, o);
  });
  return outcomes;
}

export async function processDelivery(job: Job, token: string | undefined, ctx: ProcessorContext): Promise<DeliverySummary> {
  let data: DeliveryJob;
  try {
    data = parseDeliveryJob(job.data);
  } catch (err) {
    ctx.logger.error({ queueId: job.id, err }, 'invalid delivery job: set aside in the failed set');
    throw new UnrecoverableError((err as Error).message);
  }
  const log = ctx.logger.child({ queueId: data.queueId });
  let admitted: Admitted | null = null;
  let release: (() => void) | null = null;
  try {
    admitted = await admitOrDefer(job, token, data, ctx, log);
    // Held from before the body is read until the attempt, its DSNs included, is over.
    release = ctx.messageBytes ? await ctx.messageBytes.acquire(data.size) : null;
    return await run(job, token, data, ctx, log, admitted.routing);
  } catch (err) {
    if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
    if (err instanceof UnreadableDeliveryStateError) {
      // Starting over would deliver again to recipients already delivered: set it aside, as
      // Exchange's poison queue does, for an administrator (`mailgw queue show`).
      log.error({ err: err.message }, 'poison message: its delivery state cannot be read; set aside in the failed set, nothing delivered again');
      throw new UnrecoverableError(err.message);
    }
    // Redis or disk trouble mid-way: what was recorded stays recorded; try again soon.
    log.error({ err }, 'delivery attempt failed; retrying');
    await job.moveToDelayed(Date.now() + Math.min(ctx.queue.transientRetryInterval, 60_000), token);
    throw new DelayedError();
  } finally {
    release?.();
    admitted?.release();
  }
}

/** A delivery let through admitOrDefer: what to call when it is over, and its routing if worked out. */
interface Admitted {
  readonly release: () => void;
  readonly routing: Routing | null;
}

const NOTHING_ADMITTED: Admitted = { release: () => undefined, routing: null };

/**
 * Before the body is read or memory is taken for it. A message whose every pending recipient
 * goes to a crowded next hop (@mailgw/policy's crowded-next-hop.ts) goes back to the queue until about its
 * turn, holding neither a worker slot nor its body meanwhile: DelayedError. Otherwise its SMTP
 * next hops count it as in progress until the function returned is called. Anything this
 * cannot judge (an unreadable state, an expired or unroutable message) is left to the attempt.
 */
async function admitOrDefer(job: Job, token: string | undefined, data: DeliveryJob, ctx: ProcessorContext, log: Logger): Promise<Admitted> {
  const pool = ctx.smtp.pool;
  let state: DeliveryState;
  try {
    state = readState(job.progress, data);
  } catch {
    return NOTHING_ADMITTED;
  }
  const pending = pendingIndices(state);
  const now = Date.now();
  const expiry = expiresAt(Date.parse(data.receivedAt), ctx.queue);
  if (pending.length === 0 || now >= expiry) return NOTHING_ADMITTED;
  const routing = routePending(data, pending, ctx);
  const { hops, unroutable } = routing;
  const smtpHops = hops.filter((h) => h.target.kind !== 'maildir');
  // Back for the turn it was given: it takes its place in the line.
  if (pool.takeTurn(data.queueId)) return admit(pool, smtpHops, routing);
  const turns: Array<{ hop: string; at: number; reason: string }> = [];
  for (const hop of smtpHops) {
    const turn = pool.nextTurn(hop.key, hop.connector.maxConnectionsPerDestination ?? undefined, now);
    if (turn) turns.push({ hop: hop.key, ...turn });
  }
  if (turns.length === 0 || turns.length < hops.length || unroutable.length > 0) return admit(pool, smtpHops, routing);
  const at = Math.min(...turns.map((t) => t.at), expiry);
  pool.bookTurn(data.queueId, turns.map((t) => t.hop), at);
  state.nextAttemptAt = at;
  await job.updateProgress(state);
  log.info({ pending: pending.length, hops: turns.map((t) => t.hop), retryInMs: at - now, reason: turns[0]!.reason }, 'destination busy; retrying when its turn is due');
  await job.moveToDelayed(at, token);
  throw new DelayedError();
}

function admit(pool: ProcessorContext['smtp']['pool'], hops: readonly Hop[], routing: Routing): Admitted {
  const admitted = hops.map((h) => pool.admit(h.key));
  return { release: () => admitted.forEach((release) => release()), routing };
}

/** `routing`: the pending recipients' next hops, when admitOrDefer worked them out from the same state. */
async function run(job: Job, token: string | undefined, data: DeliveryJob, ctx: ProcessorContext, log: Logger, routing: Routing | null): Promise<DeliverySummary> {
  const state = readState(job.progress, data);
  const now = Date.now();
  const receivedAt = Date.parse(data.receivedAt);
  const expiry = expiresAt(receivedAt, ctx.queue);
  const pending = pendingIndices(state);
  // Issued in the same tick: on one auto-pipelined connection they share a round trip.
  const [body, suspendedHops, messageSuspended] = await Promise.all([
    ctx.store.readBody(data.queueId),
    pending.length > 0 && ctx.suspendedHops ? ctx.suspendedHops.list() : [],
    pending.length > 0 && ctx.suspendedMessages ? ctx.suspendedMessages.has(data.queueId) : false,
  ]);
  // Read once: the Subject for the tracking log, the From: for DKIM.
  const fields = body ? messageHeaderFields(body) : null;
  const subject = fields ? headerValue(fields, 'subject') : null;
  const base = trackingBase(data, subject);

  let outcomes: Outcomes = new Map();
  const hopTls = new Map<string, HopTls>();
  /** The envelope sender each recipient's copy went out with, where address rewriting changed it (tracking). */
  const sentFrom = new Map<number, string>();
  if (pending.length > 0) {
    if (!body) {
      log.error('message body missing from the queue');
      const reply = localReply(554, '5.3.0', 'Message body missing from the queue');
      for (const i of pending) outcomes.set(i, { type: 'failed', reply, remoteMta: null });
    } else if (now >= expiry) {
      for (const i of pending) {
        const last = state.recipients[i]!.reply;
        const reply = localReply(550, '4.4.7', `Message expired${last ? `; last error: ${formatReply(last)}` : ''}`);
        outcomes.set(i, { type: 'failed', reply, remoteMta: state.recipients[i]!.remoteMta });
      }
    } else if (messageSuspended) {
      // Suspended by an administrator: nothing is tried (expiry above still applies).
      for (const i of pending) outcomes.set(i, { type: 'suspended', reply: MESSAGE_SUSPENDED_REPLY });
    } else {
      outcomes = await attempt(data, pending, routing ?? routePending(data, pending, ctx), body, fields ? headerValue(fields, 'from') : null, suspendedHops, ctx, log, hopTls, sentFrom);
    }
  }
  apply(state, outcomes, now);
  // The TLS policy of each hop's last attempt, for `mailgw queue show`.
  if (hopTls.size > 0) state.hopTls = { ...state.hopTls, ...Object.fromEntries(hopTls) };
  trackOutcomes(ctx.tracking, base, data, outcomes, sentFrom);
  const deferred = [...outcomes.values()].filter((o): o is Extract<RecipientOutcome, { type: 'deferred' }> => o.type === 'deferred');
  const busy = [...outcomes.values()].some((o) => o.type === 'busy');
  const suspended = [...outcomes.values()].some((o) => o.type === 'suspended');
  if (deferred.length > 0) state.deferrals++;
  const dues = dueDsns(data, state, now, ctx.queue);
  // Outcomes are recorded before DSNs go out, so a crash cannot report a recipient twice; with
  // no DSN due, the write below (done or deferred) records them in the same round trip.
  if (dues.length > 0) await job.updateProgress(state);

  const dsns: string[] = [];
  for (const due of dues) {
    // A sender whose remote domain takes no DSN of this kind: reported (never asked again), not sent.
    const withheld = ctx.dsn.withheld(data, due.kind);
    const sent = withheld ? null : await ctx.dsn.send(data, state, due.kind, due.indices, body, expiry);
    for (const i of due.indices) state.recipients[i]!.reported.push(due.kind);
    if (withheld) log.info({ kind: due.kind, recipients: due.indices.length, sender: data.mailFrom.address, reason: withheld }, 'DSN withheld');
    if (!sent) continue;
    dsns.push(sent.queueId);
    log.info({ kind: due.kind, dsn: sent.queueId, recipients: sent.indices.length, ...(sent.copyQueueId ? { postmasterCopy: sent.copyQueueId } : {}) }, 'DSN queued');
    ctx.tracking.write({
      ...base,
      eventId: 'DSN',
      source: 'DSN',
      recipientAddress: sent.indices.map((i) => data.rcptTo[i]!.address),
      recipientStatus: sent.indices.map((i) => { const r = state.recipients[i]!.reply; return r ? formatReply(r) : due.kind; }),
      reference: sent.queueId,
      sourceContext: due.kind,
    });
  }
  if (now - receivedAt >= ctx.queue.delayNotificationTimeout) state.delayNotified = true;

  const remaining = pendingIndices(state);
  const delivered = state.recipients.filter((r) => r.status === 'delivered').length;
  const failed = state.recipients.filter((r) => r.status === 'failed').length;
  if (remaining.length === 0) {
    state.nextAttemptAt = null;
    // Final state and body deletion in one atomic step (no BullMQ progress event: nobody waits
    // for one), then BullMQ completes the job.
    await ctx.store.finishMessage(data.queueId, state);
    // A suspended message that expired leaves the queue: its id leaves the suspended set.
    if (messageSuspended) await ctx.suspendedMessages?.resume([data.queueId]);
    // Why a recipient failed, as the log's reader would ask first (the tracking log has every one).
    const failedNow = [...outcomes.values()].find((o) => o.type === 'failed');
    log.info({ delivered, failed, ...(failedNow ? { reply: formatReply(failedNow.reply) } : {}) }, 'message done');
    return { delivered, failed, dsns };
  }
  const onlyBusy = deferred.length === 0 && busy;
  // Held for a suspended hop or as a suspended message: looked at again every
  // messageRetryInterval (so it still expires); `mailgw queue resume` retries it at once.
  const onlyHeld = deferred.length === 0 && !busy && suspended;
  const kind = deferred.length > 0 && deferred.every((o) => o.connectionFailure) ? 'connection' : 'reply';
  const at = onlyBusy
    ? Math.min(now + ctx.busyRetryMs * (0.5 + Math.random()), expiry)
    : onlyHeld
      ? Math.min(now + ctx.queue.messageRetryInterval, expiry)
      : nextAttemptAt(now, receivedAt, Math.max(1, state.deferrals), kind, ctx.queue);
  state.nextAttemptAt = at;
  await job.updateProgress(state);
  log.info({ pending: remaining.length, delivered, failed, retryInMs: at - now, ...(deferred[0] ? { reply: formatReply(deferred[0].reply) } : {}) }, onlyBusy ? 'destination busy; retrying shortly' : onlyHeld ? (messageSuspended ? 'message suspended; held' : 'next hop suspended; held') : 'deferred');
  await job.moveToDelayed(at, token);
  throw new DelayedError();
}
