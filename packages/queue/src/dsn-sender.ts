// Produces DSNs and hands them to the queue (through @mailgw/queue, like any message), so the
// normal pipeline delivers them. Each (message, recipient, kind) is claimed in Redis first:
// re-runs after a crash or retry never send the same DSN twice.
import type { Redis } from 'ioredis';
import type { GatewayConfig } from '@mailgw/config';
import { composeDsn, replyStatus, formatReply, type DsnAction, type DsnRecipient } from '@mailgw/mail';
import { dsnWithheld, dsnWording, type DsnWording } from '@mailgw/policy';
import type { DeliveryJob } from './job.js';
import type { KeySpace } from './keys.js';
import type { MailStore } from './mail-store.js';
import { newQueueId } from './queue-id.js';
import { queueGeneratedMessage } from './generated-message.js';
import type { DeliveryState, DsnKind } from './delivery-state.js';

export interface DsnSenderOptions {
  /** This gateway's FQDN. */
  readonly fqdn: string;
  /** postmaster@<default accepted domain>: the From of every DSN (but see fromFor), and where copies go. */
  readonly postmaster: string;
  /** How long claims are remembered (default: the message expiry + 1 day). */
  readonly claimTtlMs: number;
  /** Failure codes whose DSNs are copied to the postmaster (generateCopyOfDSNFor). */
  readonly copyFor?: readonly string[];
  /** systemMessages' texts and externalPostmasterAddress; absent: none, and every DSN from `postmaster`. */
  readonly wording?: DsnWording;
  /** Why a DSN of a kind may not go to a sender's domain (remoteDomains ndrEnabled / deliveryReportEnabled false); null: it may. */
  readonly withheld?: (senderDomain: string, kind: DsnKind) => string | null;
}

/** The DSN settings of a gateway: worker and `mailgw queue remove --with-ndr` send the same DSNs. */
export function dsnSenderOptions(g: Pick<GatewayConfig, 'fqdn' | 'defaultDomain' | 'acceptedDomains' | 'systemMessages' | 'generateCopyOfDSNFor' | 'externalPostmasterAddress' | 'remoteDomains'> & { readonly queue: { readonly messageExpirationTimeout: number } }): DsnSenderOptions {
  return {
    fqdn: g.fqdn,
    postmaster: `postmaster@${g.defaultDomain}`,
    claimTtlMs: g.queue.messageExpirationTimeout + 86_400_000,
    ...(g.generateCopyOfDSNFor.length > 0 ? { copyFor: g.generateCopyOfDSNFor } : {}),
    wording: dsnWording(g),
    withheld: dsnWithheld(g),
  };
}

const SENT = 'sent:';
const DEFAULT_FULL_RETURN_MAX = 10 * 1024 * 1024;

export class DsnSender {
  constructor(
    private readonly store: MailStore,
    private readonly redis: Redis,
    private readonly keys: KeySpace,
    private readonly opts: DsnSenderOptions,
  ) {}

  /** Why a `kind` DSN for `job` is not to be sent at all (its sender's remote domain takes none), or null: ask send(). */
  withheld(job: DeliveryJob, kind: DsnKind): string | null {
    return job.mailFrom.sender ? (this.opts.withheld?.(job.mailFrom.sender.domain, kind) ?? null) : null;
  }

  /**
   * Claims `indices` for a `kind` DSN and enqueues one DSN for those not reported before.
   * Returns the DSN's queue id and the recipients it covers, or null when all were reported.
   */
  async send(job: DeliveryJob, state: DeliveryState, kind: DsnKind, indices: readonly number[], body: Buffer | null, expiresAt: number): Promise<{ queueId: string; indices: number[]; copyQueueId?: string } | null> {
    const key = this.keys.dsnClaims(job.queueId);
    const id = newQueueId();
    const claimed: number[] = [];
    for (const i of indices) {
      const field = `${kind}:${i}`;
      if (await this.redis.hsetnx(key, field, id)) {
        claimed.push(i);
        continue;
      }
      const holder = await this.redis.hget(key, field);
      if (holder === null || holder.startsWith(SENT)) continue;
      // An earlier run claimed it and stopped before marking it sent: did its DSN reach the queue?
      if (await this.store.getJob(holder)) {
        await this.redis.hset(key, field, SENT + holder);
        continue;
      }
      await this.redis.hset(key, field, id);
      claimed.push(i);
    }
    await this.redis.pexpire(key, this.opts.claimTtlMs);
    if (claimed.length === 0) return null;
    // Never to the null sender (dueDsns already holds back); the check also narrows the type.
    if (!job.mailFrom.sender) return null;

    const now = new Date();
    const senderDomain = job.mailFrom.sender.domain;
    const recipients: DsnRecipient[] = claimed.map((i) => {
      const r = state.recipients[i]!;
      const rcpt = job.rcptTo[i]!;
      const action: DsnAction = kind === 'failed' ? 'failed' : kind === 'delayed' ? 'delayed' : (r.dsnAction ?? 'delivered');
      const status = r.reply ? replyStatus(r.reply) : kind === 'failed' ? '5.0.0' : kind === 'delayed' ? '4.0.0' : '2.0.0';
      const explanation = this.opts.wording?.explanation(senderDomain, status) ?? null;
      return {
        address: rcpt.address,
        orcpt: rcpt.orcpt,
        action,
        status,
        ...(explanation ? { explanation } : {}),
        diagnostic: r.reply ? formatReply(r.reply) : null,
        remoteMta: r.remoteMta,
        lastAttemptAt: r.lastAttemptAt ? new Date(r.lastAttemptAt) : null,
        willRetryUntil: kind === 'delayed' ? new Date(expiresAt) : null,
      };
    });
    const dsn = {
      reportingMta: this.opts.fqdn,
      from: this.opts.wording?.from(senderDomain) ?? this.opts.postmaster,
      to: job.mailFrom.address,
      messageId: `<${id}@${this.opts.fqdn}>`,
      date: now,
      originalQueueId: job.queueId,
      originalEnvelopeId: job.mailFrom.envid,
      arrivalDate: new Date(job.receivedAt),
      recipients,
      original: body,
      // No RET: the whole message up to a size, as Exchange attaches the original to an NDR.
      originalBinary: job.mailFrom.body === 'BINARYMIME',
      ret: job.mailFrom.ret ?? (body && body.length <= DEFAULT_FULL_RETURN_MAX ? 'FULL' : 'HDRS'),
    } as const;
    // To the sender, from the null sender: nothing ever bounces back to a bounce.
    await queueGeneratedMessage(this.store, { queueId: id, messageId: `<${id}@${this.opts.fqdn}>`, connector: 'DSN', fqdn: this.opts.fqdn, sender: null, to: job.mailFrom.sender, body: composeDsn(dsn), receivedAt: now });
    // Exchange's GenerateCopyOfDSNFor: the postmaster gets a copy of a failure DSN with one of
    // the listed codes, with the original's header only (why it failed, not what was written).
    let copyQueueId: string | undefined;
    if (kind === 'failed' && this.opts.copyFor && recipients.some((r) => this.opts.copyFor!.includes(r.status))) {
      copyQueueId = newQueueId();
      const at = this.opts.postmaster.lastIndexOf('@');
      const copy = composeDsn({ ...dsn, to: this.opts.postmaster, messageId: `<${copyQueueId}@${this.opts.fqdn}>`, ret: 'HDRS' });
      await queueGeneratedMessage(this.store, { queueId: copyQueueId, messageId: `<${copyQueueId}@${this.opts.fqdn}>`, connector: 'DSN', fqdn: this.opts.fqdn, sender: null, to: { local: this.opts.postmaster.slice(0, at), domain: this.opts.postmaster.slice(at + 1) }, body: copy, receivedAt: now });
    }
    const marks: string[] = claimed.flatMap((i) => [`${kind}:${i}`, SENT + id]);
    await this.redis.hset(key, ...marks);
    return { queueId: id, indices: claimed, ...(copyQueueId ? { copyQueueId } : {}) };
  }
}
