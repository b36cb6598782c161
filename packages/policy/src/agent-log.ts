// Which of Exchange's anti-spam agents a decision belongs to, for the agent log (Exchange's
// Get-AgentLog: what connection filtering, the sender and recipient filters, Sender ID, the
// content filter, the Edge rules, attachment filtering and protocol analysis did to whom).
// Pure: the listener asks, @mailgw/ops writes the lines.
import type { FilterOutcome } from '@mailgw/mail';
import { SENDER_AUTHENTICATION_KIND } from './antispam.js';
import { ATTACHMENT_FILTER_NAME } from './attachment-filter.js';
import type { IpBlockListEntry, ReputationVerdict } from './sender-reputation.js';
import { ORIGIN_FILTER_NAME } from './origin-filter.js';

/** The SMTP event an agent acted on, in Exchange's words. */
export type AgentEvent = 'OnConnect' | 'OnMailCommand' | 'OnRcptCommand' | 'OnEndOfData';

export const AGENTS = {
  connectionFiltering: 'Connection Filtering Agent',
  senderFilter: 'Sender Filter Agent',
  recipientFilter: 'Recipient Filter Agent',
  senderId: 'Sender Id Agent',
  contentFilter: 'Content Filter Agent',
  edgeRule: 'Edge Rule Agent',
  attachmentFiltering: 'Attachment Filtering Agent',
  protocolAnalysis: 'Protocol Analysis Agent',
  /** Bounce verification (BATV): not an Exchange agent; named as the gateways that have it name it. */
  bounceVerification: 'Bounce Verification Agent',
} as const;

/** One line of the agent log, with Exchange's fields (camelCase here, as Exchange's in the file). */
export interface AgentLogRecord {
  readonly sessionId: string;
  /** The client (or, for a sender reputation block, the address or /64 blocked). */
  readonly ipAddress: string;
  /** The Message-ID, at the end of DATA. */
  readonly messageId: string;
  /** MAIL FROM ('' for the null sender or before MAIL). */
  readonly p1FromAddress: string;
  /** The header From: addresses, at the end of DATA. */
  readonly p2FromAddresses: readonly string[];
  readonly recipients: readonly string[];
  readonly agent: string;
  readonly event: AgentEvent;
  readonly action: string;
  /** The reply the client got ('' when the action answered nothing). */
  readonly smtpResponse: string;
  /** mailgw's reason code (stable: filter on it). */
  readonly reason: string;
  /** The reason in words. */
  readonly reasonData: string;
  /** The receive connector. */
  readonly connector: string;
  /** The queue id, when the message was stored or judged at the end of DATA. */
  readonly networkMsgId: string;
  /** Exchange: Originating for an authenticated sender, Incoming otherwise. */
  readonly directionality: 'Incoming' | 'Originating';
}

/** Refusals at MAIL and RCPT that are an anti-spam agent's, by reason code; others (relay, AUTH, limits) are not logged there. */
const REFUSALS: ReadonlyMap<string, { readonly agent: string; readonly event: AgentEvent }> = new Map(Object.entries({
  // blockedIPRanges: refused before any connector is chosen.
  'blocked-ip': { agent: AGENTS.connectionFiltering, event: 'OnConnect' },
  'ip-block-list-provider': { agent: AGENTS.connectionFiltering, event: 'OnRcptCommand' },
  'ip-block-list': { agent: AGENTS.connectionFiltering, event: 'OnRcptCommand' },
  'sender-reputation-blocked': { agent: AGENTS.connectionFiltering, event: 'OnRcptCommand' },
  'sender-filtered': { agent: AGENTS.senderFilter, event: 'OnMailCommand' },
  'recipient-blocked': { agent: AGENTS.recipientFilter, event: 'OnRcptCommand' },
  'user-unknown': { agent: AGENTS.recipientFilter, event: 'OnRcptCommand' },
  // A recipient the directory marks for authenticated senders only (RequireSenderAuthenticationEnabled).
  'recipient-auth-required': { agent: AGENTS.recipientFilter, event: 'OnRcptCommand' },
  // A recipient whose delivery restrictions (AcceptMessagesOnlyFrom…) leave this sender out.
  'recipient-restricted': { agent: AGENTS.recipientFilter, event: 'OnRcptCommand' },
  // recipientVerification: recipient validation, as the Recipient Filter agent's, against the next hop.
  'unknown-at-next-hop': { agent: AGENTS.recipientFilter, event: 'OnRcptCommand' },
} satisfies Record<string, { agent: string; event: AgentEvent }>));

/** The agent that refused a connection, a MAIL or a RCPT, or null when it was not an anti-spam agent. */
export function refusalAgent(code: string): { readonly agent: string; readonly event: AgentEvent } | null {
  return REFUSALS.get(code) ?? null;
}

/** Refusals at the end of DATA that are an anti-spam agent's and not a content filter's, by reason code. */
const DATA_REFUSALS: ReadonlyMap<string, { readonly agent: string; readonly event: AgentEvent }> = new Map(Object.entries({
  'bounce-not-verified': { agent: AGENTS.bounceVerification, event: 'OnEndOfData' },
}));

export function dataRefusalAgent(code: string): { readonly agent: string; readonly event: AgentEvent } | null {
  return DATA_REFUSALS.get(code) ?? null;
}

/** The agent a content filter plays (a milter is named as itself). */
export function filterAgent(filter: string): string {
  if (filter === SENDER_AUTHENTICATION_KIND) return AGENTS.senderId;
  if (filter === 'rspamd') return AGENTS.contentFilter;
  if (filter === 'transport-rules') return AGENTS.edgeRule;
  if (filter === ATTACHMENT_FILTER_NAME) return AGENTS.attachmentFiltering;
  if (filter === ORIGIN_FILTER_NAME) return AGENTS.connectionFiltering;
  return `Milter ${filter}`;
}

/** Exchange's action words for a filter's verdict at the end of DATA. */
export function filterAction(verdict: FilterOutcome['verdict']): string {
  switch (verdict) {
    case 'reject':
      return 'RejectMessage';
    case 'tempfail':
      return 'TempRejectMessage';
    case 'discard':
      return 'DeleteMessage';
    case 'quarantine':
      return 'QuarantineMessage';
    case 'error':
      return 'FilterFailed';
    default:
      return 'AcceptMessage';
  }
}

/**
 * Whether a filter's outcome belongs in the agent log: whatever it refused, deleted, quarantined
 * or failed at; the content filter's every verdict (its SCL, as Exchange logs every message it
 * scores); a transport rule that matched.
 */
export function agentLogWorthy(o: Pick<FilterOutcome, 'filter' | 'verdict' | 'scl' | 'rules'>): boolean {
  if (o.verdict !== 'accept') return true;
  if (o.filter === 'rspamd' && o.scl !== undefined) return true;
  return (o.rules?.length ?? 0) > 0;
}

/**
 * The Protocol Analysis agent's line for a sender it put on the IP Block List (Exchange logs
 * BlockSender at the end of DATA of the message that tipped the level); no session, message or
 * reply of its own: the sender's address (or IPv6 /64) is the IPAddress.
 */
export function senderBlockRecord(entry: Pick<IpBlockListEntry, 'range' | 'expiresAt'>, verdict: Pick<ReputationVerdict, 'reason'>): AgentLogRecord {
  const until = entry.expiresAt === null ? 'removed' : new Date(entry.expiresAt).toISOString();
  return {
    sessionId: '',
    ipAddress: entry.range,
    messageId: '',
    p1FromAddress: '',
    p2FromAddresses: [],
    recipients: [],
    agent: AGENTS.protocolAnalysis,
    event: 'OnEndOfData',
    action: 'BlockSender',
    smtpResponse: '',
    reason: 'sender-reputation',
    reasonData: `${verdict.reason}; on the IP Block List until ${until}`,
    connector: '',
    networkMsgId: '',
    directionality: 'Incoming',
  };
}
