// The NDR for a message an administrator removes (`mailgw queue remove --with-ndr`, Exchange's
// Remove-Message -WithNDR): its pending recipients fail with Exchange's "deleted by
// administrative action" and the sender gets the same RFC 3464 DSN a worker sends, through the
// queue's DsnSender (claimed in Redis: never sent twice), unless NOTIFY or the null sender
// say otherwise.
import { localReply, type Reply } from '@mailgw/mail';
import { dueDsns, expiresAt, type DeliveryJob, type DeliveryState, type DsnSender, type QueueConfig } from '@mailgw/queue';

export const ADMIN_REMOVED_REPLY: Reply = localReply(550, '5.3.2', 'QUEUE.Admin; message deleted by administrative action');

export interface AdminNdrResult {
  /** Recipients that were still pending (now failed). */
  readonly failed: readonly number[];
  /** Queue id of the NDR, or null when none is due (null sender, NOTIFY without FAILURE, nothing pending). */
  readonly ndr: string | null;
  /** The NDR covers these recipients. */
  readonly reported: readonly number[];
  /** Why no NDR went although one was due (remoteDomains ndrEnabled false for the sender's domain). */
  readonly withheld?: string;
}

/** Fails the pending recipients in `state` (mutated) and queues the NDR that is due. */
export async function sendAdministrativeNdr(job: DeliveryJob, state: DeliveryState, body: Buffer | null, dsn: DsnSender, q: QueueConfig, now = Date.now()): Promise<AdminNdrResult> {
  const failed: number[] = [];
  state.recipients.forEach((r, i) => {
    if (r.status !== 'pending') return;
    r.status = 'failed';
    r.reply = ADMIN_REMOVED_REPLY;
    r.lastAttemptAt = now;
    failed.push(i);
  });
  // Only the failure DSN for these recipients: delay or success reports are not ours to send here.
  const due = dueDsns(job, state, now, q).find((d) => d.kind === 'failed');
  const indices = due ? due.indices.filter((i) => failed.includes(i)) : [];
  if (indices.length === 0) return { failed, ndr: null, reported: [] };
  const withheld = dsn.withheld(job, 'failed');
  if (withheld) return { failed, ndr: null, reported: [], withheld };
  const sent = await dsn.send(job, state, 'failed', indices, body, expiresAt(Date.parse(job.receivedAt), q));
  return { failed, ndr: sent?.queueId ?? null, reported: sent?.indices ?? [] };
}
