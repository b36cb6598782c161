// What a listener reports to whoever watches it (metrics, the message tracking log): one event
// per connection closed, message taken or refused, policy refusal and failed AUTH. Optional;
// an observer that throws is logged and never disturbs the SMTP session.
import type { AgentLogRecord } from '@mailgw/policy';
import type { Logger } from 'pino';

export type ListenerEvent =
  /** A connection ended; `result` is the summary line's (quit, idle-timeout, refused:blocked-ip, connection-limit, …). */
  | { readonly type: 'connection'; readonly connector: string | null; readonly clientIP: string; readonly result: string }
  /** A message was queued (250 after DATA). */
  | {
      readonly type: 'message-accepted';
      readonly connector: string;
      readonly queueId: string;
      readonly messageId: string;
      readonly size: number;
      readonly sender: string;
      readonly recipients: readonly string[];
      readonly clientIP: string;
      readonly clientHostname: string;
      readonly authUser: string | null;
      readonly fqdn: string;
      /** Where it came from: SMTP (absent) or a file of the pickup directory. */
      readonly source?: 'pickup' | undefined;
      /** What agents did to it, one entry per filter whose rules matched ("transport-rules: rule "X" …"). */
      readonly agentInfo?: readonly string[] | undefined;
      /** Recipients failed at intake (the message is over their own size limit), with the reply their DSN gives. */
      readonly failed?: ReadonlyArray<{ readonly recipient: string; readonly reply: string; readonly reason: string }> | undefined;
    }
  /** DATA was refused: by the policy (`reason` is its code) or because the queue was unavailable (`queue-unavailable`). */
  | { readonly type: 'message-rejected'; readonly connector: string; readonly reason: string }
  /** The policy refused a command (MAIL or RCPT); relay denials have reason `relay-denied` or `relay-denied-ip`. */
  | { readonly type: 'refused'; readonly connector: string; readonly reason: string }
  | { readonly type: 'auth-failure'; readonly connector: string; readonly clientIP: string; readonly user: string }
  /**
   * A content filter judged a message at the end of DATA (its verdict before the policy weighs the
   * others'); `rules`: the transport rules that matched, when the filter is the transport rules.
   */
  | { readonly type: 'filter-outcome'; readonly connector: string; readonly filter: string; readonly verdict: string; readonly rules?: ReadonlyArray<{ readonly rule: string; readonly mode: string }> | undefined }
  /** An anti-spam agent acted: the agent log's line (a refusal at MAIL or RCPT, a content filter's verdict, a sender blocked). */
  | { readonly type: 'agent-action'; readonly record: AgentLogRecord }
  /** Sender reputation put a sender (an address, or an IPv6 /64) on the IP Block List. */
  | { readonly type: 'sender-blocked'; readonly range: string; readonly srl: number }
  /** A journal report was stored beside a message (journalRules): one per journaling mailbox, with the rules that sent it there. */
  /** A file of the pickup directory: sent (queued, or deleted by a rule), renamed *.bad, or left for later; `reason` the .bad's or the deferral's. */
  | { readonly type: 'pickup-file'; readonly result: 'queued' | 'bad' | 'deferred'; readonly reason: string }
  /** A journal report stored beside message `of` (its queue id): the report's own queue id, Message-ID, envelope sender and size for its tracking events. */
  | { readonly type: 'journal-report'; readonly connector: string; readonly to: string; readonly rules: readonly string[]; readonly report?: { readonly queueId: string; readonly messageId: string; readonly sender: string; readonly size: number; readonly of: string; readonly fqdn: string } | undefined }
  /** A connector's protocol log could not be written (full disk, EACCES, …): reported once per failure episode; mail flow goes on. */
  | { readonly type: 'log-write-failed'; readonly log: 'protocol'; readonly connector: string; readonly error: string };

export type ListenerObserver = (event: ListenerEvent) => void;

/** Calls the observer, if any; its failures are logged, never thrown into the session. */
export function notify(observer: ListenerObserver | undefined, logger: Logger, event: ListenerEvent): void {
  if (!observer) return;
  try {
    observer(event);
  } catch (err) {
    logger.warn({ err, event: event.type }, 'listener observer failed');
  }
}
