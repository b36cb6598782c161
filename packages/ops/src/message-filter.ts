// Message-level queue views, as Exchange's Get-Message shows them: what status a queued message
// has, whether it matches an administrator's filter (`mailgw queue messages --sender …`, the
// same filters on remove/suspend/resume/retry), and the one line shown for it. Pure: the
// queue admin reads the records from Redis and hands them in.
import { formatReply, readableAddress } from '@mailgw/mail';
import type { MessageRecord } from '@mailgw/queue';

/** Exchange's message statuses that mailgw has (Get-Message -Status). */
export const MESSAGE_STATUSES = ['Active', 'Ready', 'Retry', 'Suspended', 'Poison'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

/** BullMQ states a message of each status can be in (what the admin has to read). */
export const STATES_OF: Readonly<Record<MessageStatus, readonly string[]>> = {
  Active: ['active'],
  Ready: ['waiting', 'prioritized', 'delayed'],
  Retry: ['delayed'],
  Suspended: ['waiting', 'prioritized', 'delayed'],
  Poison: ['failed'],
};

/**
 * The status of a message: Poison (BullMQ failed: set aside, never tried again by itself),
 * Active (a worker is on it now), Suspended (an administrator suspended it), Retry (waiting for
 * its next try after an attempt that deferred a recipient), Ready (waiting for its first try or
 * a worker). null for a job that is no longer queued (completed, gone).
 */
export function messageStatus(state: string, deferrals: number, suspended: boolean): MessageStatus | null {
  if (state === 'failed') return 'Poison';
  if (state === 'active') return 'Active';
  if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return null;
  if (suspended) return 'Suspended';
  return state === 'delayed' && deferrals > 0 ? 'Retry' : 'Ready';
}

export interface MessageFilter {
  /** Envelope sender; `*` matches any characters (`*@contoso.com`); `<>` is the null sender. Case-insensitive. */
  readonly sender?: string | undefined;
  /** Any envelope recipient of the message, same syntax. */
  readonly recipient?: string | undefined;
  /** A next hop (as `mailgw queue list` shows it) of a recipient still pending. */
  readonly hop?: string | undefined;
  readonly status?: MessageStatus | undefined;
  /** Received at least this long ago (ms). */
  readonly olderThanMs?: number | undefined;
  /** Text contained in the Subject header, case-insensitive. */
  readonly subject?: string | undefined;
}

export type FilterParse = { readonly ok: true; readonly status: MessageStatus | undefined } | { readonly ok: false; readonly error: string };

/** `--status` as given on the command line (any case). */
export function parseStatus(text: string | undefined): FilterParse {
  if (text === undefined) return { ok: true, status: undefined };
  const found = MESSAGE_STATUSES.find((s) => s.toLowerCase() === text.toLowerCase());
  return found ? { ok: true, status: found } : { ok: false, error: `--status "${text}" is not one of ${MESSAGE_STATUSES.join(', ')}` };
}

/** Whether the filter selects anything narrower than "every message". */
export function isEmptyFilter(f: MessageFilter): boolean {
  return f.sender === undefined && f.recipient === undefined && f.hop === undefined && f.status === undefined && f.olderThanMs === undefined && f.subject === undefined;
}

/** An address pattern as a matcher: exact (case-insensitive) unless it holds `*`. */
export function addressMatcher(pattern: string): (address: string) => boolean {
  // Compared as people read them (IDN domains in U-labels): "bücher.test" and "xn--bcher-kva.test" match alike.
  const p = readableAddress(pattern.trim().replace(/^<(.*)>$/, '$1').toLowerCase());
  if (!p.includes('*')) return (a) => readableAddress(a.toLowerCase()) === p;
  const re = new RegExp(`^${p.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return (a) => re.test(readableAddress(a.toLowerCase()));
}

/** What the filter looks at, for one message. */
export interface MessageFacts {
  readonly status: MessageStatus;
  /** '' for the null sender; null when the job cannot be read. */
  readonly sender: string | null;
  readonly recipients: readonly string[];
  /** Next hops of the recipients still pending. */
  readonly hops: readonly string[];
  /** ms since epoch; null when unknown. */
  readonly receivedAt: number | null;
  /** null when not read (no --subject) or the message has none. */
  readonly subject: string | null;
}

/** A compiled filter: one matcher per message, built once for a scan of many. */
export function compileFilter(f: MessageFilter, now: number): (m: MessageFacts) => boolean {
  const sender = f.sender === undefined ? null : addressMatcher(f.sender);
  const recipient = f.recipient === undefined ? null : addressMatcher(f.recipient);
  const subject = f.subject?.toLowerCase();
  return (m) => {
    if (f.status !== undefined && m.status !== f.status) return false;
    if (sender && (m.sender === null || !sender(m.sender))) return false;
    if (recipient && !m.recipients.some(recipient)) return false;
    if (f.hop !== undefined && !m.hops.includes(f.hop)) return false;
    if (f.olderThanMs !== undefined && (m.receivedAt === null || now - m.receivedAt < f.olderThanMs)) return false;
    if (subject !== undefined && (m.subject === null || !m.subject.toLowerCase().includes(subject))) return false;
    return true;
  };
}

/** The filter needs each message's Subject (read from its stored header). */
export const needsSubject = (f: MessageFilter): boolean => f.subject !== undefined;

/** One line of `mailgw queue messages` (Get-Message's columns). */
export interface MessageRow {
  readonly id: string;
  readonly status: MessageStatus;
  /** Envelope sender ('' for the null sender; null when the job cannot be read). */
  readonly from: string | null;
  readonly recipients: readonly string[];
  readonly size: number | null;
  readonly receivedAt: number | null;
  readonly hops: readonly string[];
  /** When it is tried next (delayed messages), ms since epoch. */
  readonly nextAttemptAt: number | null;
  /** Why it is poison, or the latest reply of a recipient still pending, or why the record cannot be read. */
  readonly lastError: string | null;
  readonly subject: string | null;
  /** The recipients still to be delivered, each with its latest reply (null: not tried yet); every recipient when the delivery state cannot be read. */
  readonly pending: ReadonlyArray<{ readonly address: string; readonly reply: string | null }>;
}

/** The facts of a record (its status, hops and subject worked out by the caller). */
export function messageFacts(r: MessageRecord, status: MessageStatus, hops: readonly string[], subject: string | null): MessageFacts {
  const receivedAt = r.job ? Date.parse(r.job.receivedAt) : null;
  return {
    status,
    sender: r.job ? r.job.mailFrom.address : null,
    recipients: r.job ? r.job.rcptTo.map((x) => x.address) : [],
    hops,
    receivedAt: receivedAt !== null && Number.isFinite(receivedAt) ? receivedAt : null,
    subject,
  };
}

export function messageRow(r: MessageRecord, facts: MessageFacts): MessageRow {
  let lastError: string | null = null;
  if (facts.status === 'Poison') lastError = r.failedReason ?? r.error;
  else if (r.error) lastError = r.error;
  else if (r.delivery) {
    let at = -1;
    for (const x of r.delivery.recipients) {
      if (x.status === 'pending' && x.reply && (x.lastAttemptAt ?? 0) > at) {
        at = x.lastAttemptAt ?? 0;
        lastError = formatReply(x.reply);
      }
    }
  }
  return {
    id: r.id,
    status: facts.status,
    from: facts.sender,
    recipients: facts.recipients,
    size: r.job?.size ?? null,
    receivedAt: facts.receivedAt,
    hops: facts.hops,
    nextAttemptAt: r.state === 'delayed' ? (r.delivery?.nextAttemptAt ?? null) : null,
    lastError,
    subject: facts.subject,
    pending: pendingRecipients(r),
  };
}

/** The job's recipients the delivery state still has pending (by index: the state follows rcptTo). */
function pendingRecipients(r: MessageRecord): MessageRow['pending'] {
  if (!r.job) return [];
  return r.job.rcptTo.flatMap((x, i) => {
    const st = r.delivery?.recipients[i];
    if (st && st.status !== 'pending') return [];
    return [{ address: x.address, reply: st?.reply ? formatReply(st.reply) : null }];
  });
}

/** Bulk actions above this many messages ask for a confirmation (or --yes). */
export const CONFIRM_ABOVE = 10;

/**
 * Whether a bulk action may go ahead: `--yes` always; an interactive terminal asks above
 * CONFIRM_ABOVE messages; from a non-interactive stdin a filtered action needs --yes, whatever
 * the count (a script says what it means; a pipe cannot answer a question).
 */
export function confirmation(count: number, opts: { yes: boolean; interactive: boolean }): 'go' | 'ask' | 'refuse' {
  if (opts.yes || count === 0) return 'go';
  if (!opts.interactive) return 'refuse';
  return count > CONFIRM_ABOVE ? 'ask' : 'go';
}
