// Which DSNs are due (RFC 3461 NOTIFY, Exchange's defaults). Pure.
import type { DeliveryJob } from './job.js';
import type { DeliveryState, DsnKind } from './delivery-state.js';
import type { QueueConfig } from './retry-schedule.js';

type Notify = DeliveryJob['rcptTo'][number]['notify'];

/** Without NOTIFY: failures and delays are reported (Exchange sends delay DSNs by default), successes not. */
export function wants(notify: Notify, kind: DsnKind): boolean {
  if (!notify) return kind !== 'success';
  return notify.includes(kind === 'failed' ? 'FAILURE' : kind === 'delayed' ? 'DELAY' : 'SUCCESS');
}

export interface DueDsn {
  readonly kind: DsnKind;
  readonly indices: readonly number[];
}

/**
 * DSNs to produce now. Never any for the null sender (a DSN is itself sent with the null
 * sender, so this is what prevents bounce loops). The delay DSN is once per message, for
 * recipients still pending once delayNotificationTimeout has passed.
 */
export function dueDsns(job: DeliveryJob, state: DeliveryState, now: number, q: QueueConfig): DueDsn[] {
  if (job.mailFrom.address === '') return [];
  const pick = (kind: DsnKind, ok: (i: number) => boolean) => {
    const indices = state.recipients.flatMap((r, i) => (ok(i) && wants(job.rcptTo[i]!.notify, kind) && !r.reported.includes(kind) ? [i] : []));
    return indices.length > 0 ? [{ kind, indices }] : [];
  };
  const receivedAt = Date.parse(job.receivedAt);
  const delayDue = !state.delayNotified && q.delayNotificationTimeout > 0 && now - receivedAt >= q.delayNotificationTimeout;
  return [
    ...pick('failed', (i) => state.recipients[i]!.status === 'failed'),
    ...pick('success', (i) => state.recipients[i]!.status === 'delivered' && state.recipients[i]!.dsnAction !== null),
    ...(delayDue ? pick('delayed', (i) => state.recipients[i]!.status === 'pending') : []),
  ];
}
