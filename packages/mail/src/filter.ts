// The contract between the listener and the message filters (sender authentication, rspamd,
// milters): each filter sees the message as received, header first, then the body in the
// chunks DATA arrives in, and answers once at the end with an outcome. A transaction filter
// (a milter) is begun at MAIL instead and answers MAIL and each RCPT as they come, so it can
// refuse one recipient rather than the message. What the outcomes mean for the SMTP answer
// is the policy's decision (policy/src/content.ts); what a filter does with its bytes is its
// own business. Types only: no I/O here.
import type { BodyDisclaimer } from './disclaimer.js';
import type { MailAddress } from './address.js';
import type { HeaderField } from './header-block.js';
import type { EnvelopeRecipient } from './recipient.js';
import type { Reply } from './reply.js';

/** What a filter knows of the message and the session it came in. */
export interface FilterContext extends TransactionContext {
  readonly recipients: readonly EnvelopeRecipient[];
  /** The session is your own users' or servers' (it holds ms-Exch-Bypass-Anti-Spam): transport rules' FromScope InOrganization. */
  readonly internalSession?: boolean | undefined;
  /** The session may send X-MS-Exchange-Organization-* fields (ms-Exch-Accept-Headers-Organization): the header firewall keeps them. */
  readonly organizationHeadersTrusted?: boolean | undefined;
}

/** What a transaction filter knows at MAIL: the session and the sender (the recipients come one by one). */
export interface TransactionContext {
  readonly queueId: string;
  readonly connector: string;
  readonly clientIP: string;
  /** Reverse-resolved name, or "[ip]". */
  readonly clientHostname: string;
  readonly helo: string;
  readonly tls: { readonly protocol: string; readonly cipher: string } | null;
  readonly authUser: string | null;
  /** The SASL mechanism the user authenticated with (PLAIN, LOGIN), when known. */
  readonly authMechanism?: string | null | undefined;
  /** The listener's own address the client reached (Postfix's {daemon_addr}), when known. */
  readonly serverIP?: string | undefined;
  /** null for the null sender. */
  readonly sender: MailAddress | null;
  /** This gateway's FQDN (the MTA name, the authserv-id). */
  readonly fqdn: string;
  /** MAIL carried SMTPUTF8: addresses a filter adds may be UTF-8. */
  readonly smtpUtf8?: boolean | undefined;
}

/** A change to the header section, applied after every filter has answered. */
export type HeaderEdit =
  /** Adds a field; `top` puts it above everything (trace fields: Authentication-Results, Received-SPF). */
  | { readonly op: 'add'; readonly name: string; readonly value: string; readonly top?: boolean }
  /** Removes the `index`-th (1-based) field called `name`, or every one when index is absent. */
  | { readonly op: 'remove'; readonly name: string; readonly index?: number }
  /** Replaces the value of the `index`-th (1-based) field called `name` (adds it if there is none). */
  | { readonly op: 'change'; readonly name: string; readonly index: number; readonly value: string };

/**
 * A change to the envelope (a milter's SMFIR_ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM), applied
 * after every filter has answered, in filter order (policy editEnvelope). ESMTP parameters
 * that came with one are kept for the log only.
 */
export type EnvelopeEdit =
  | { readonly op: 'add-recipient'; readonly recipient: MailAddress; readonly parameters?: string | undefined }
  | { readonly op: 'delete-recipient'; readonly recipient: MailAddress }
  /** `sender` null: the null sender (<>). */
  | { readonly op: 'change-sender'; readonly sender: MailAddress | null; readonly parameters?: string | undefined };

export type FilterVerdict =
  /** Nothing against the message (it may still stamp headers). */
  | 'accept'
  /** Refuse it: 5xx. */
  | 'reject'
  /** Refuse it for now: 4xx. */
  | 'tempfail'
  /** Accept it and drop it (Exchange's "Delete", a milter's discard): the sender gets 250, nobody the message. */
  | 'discard'
  /** Accept it and hold it for an administrator (quarantine). */
  | 'quarantine'
  /** The filter could not judge (down, timed out, broken answer): the filter's failure action applies. */
  | 'error';

export interface FilterOutcome {
  /** The filter's name as configured ("rspamd", "opendkim", "sender-auth"). */
  readonly filter: string;
  readonly verdict: FilterVerdict;
  /** The reply a reject/tempfail should carry, when the filter chose one. */
  readonly reply?: Reply | undefined;
  /** Header changes the filter asks for (applied unless the message is refused). */
  readonly headers: readonly HeaderEdit[];
  /** A new body (a milter's SMFIR_REPLBODY): the bytes after the header section. */
  readonly replaceBody?: Buffer | undefined;
  /** Envelope changes the filter asks for (applied unless the message is refused). */
  readonly envelope?: readonly EnvelopeEdit[] | undefined;
  /** For the log and `mailgw explain`: why. */
  readonly reason: string;
  /** Spam confidence level the filter assigns (-1..9), when it has one. */
  readonly scl?: number | undefined;
  /** Worth an info line in the log even when the message is taken as it is (a transport rule matched). */
  readonly notable?: boolean | undefined;
  /** The transport rules that matched (the transport rules filter only), for the log and the metrics. */
  readonly rules?: ReadonlyArray<{ readonly rule: string; readonly mode: 'Enforce' | 'Audit' }> | undefined;
  /** Lines a transport rule's logEventText asks for (the transport rules filter only): each a warning in the log. */
  readonly events?: ReadonlyArray<{ readonly rule: string; readonly text: string }> | undefined;
  /** Disclaimers to put into the message as stored (the transport rules filter only), in order: applied to the body the filters leave. */
  readonly disclaimers?: readonly BodyDisclaimer[] | undefined;
}

/** One message's pass through one filter. */
export interface MessageFilterSession {
  /** The header section as received (fields in order, raw bytes). */
  header(fields: readonly HeaderField[]): void | Promise<void>;
  /** The next body bytes (after the header's empty line), CRLF line ends. */
  body(chunk: Buffer): void | Promise<void>;
  /** End of DATA: the outcome. Must settle within the filter's own timeout; never throws. */
  end(): Promise<FilterOutcome>;
  /** The message will not be needed (client gone, refused earlier): release everything. */
  abort(): void;
}

/**
 * A transaction filter's answer to MAIL or to one RCPT (a milter's reply at that stage).
 * `continue`: nothing against it; `accept`: nothing against the message, and the filter
 * wants no more of it; reject/tempfail: refuse this command (at RCPT: this recipient only);
 * `discard`: take the command, drop the message at the end of DATA; `error`: the filter could
 * not judge (its failure action applies to this command).
 */
export interface StageOutcome {
  readonly filter: string;
  readonly verdict: 'continue' | 'accept' | 'reject' | 'tempfail' | 'discard' | 'error';
  /** The reply a reject/tempfail should carry, when the filter chose one. */
  readonly reply?: Reply | undefined;
  /** For the log: why. */
  readonly reason: string;
}

/** One transaction's pass through a transaction filter: MAIL, each accepted RCPT, then the message. */
export interface TransactionFilterSession {
  /** After the gateway accepted MAIL. Never throws. */
  mail(): Promise<StageOutcome>;
  /** After the gateway accepted a (new) recipient. Never throws. */
  rcpt(recipient: MailAddress): Promise<StageOutcome>;
  /** DATA: the message's pass, with the recipients the transaction holds. */
  data(ctx: FilterContext): MessageFilterSession;
  /** The transaction ended before DATA (RSET, refused, client gone): release everything. */
  abort(): void;
}

interface FilterTraits {
  readonly name: string;
  /**
   * An anti-spam filter (sender authentication, rspamd, a spam milter) is skipped for sessions
   * holding ms-Exch-Bypass-Anti-Spam; one that is not (a signing milter) runs for every session.
   */
  readonly antiSpam: boolean;
  /** What its failure means (down, slow, broken answer): Postfix's milter_default_action. */
  readonly onFailure: 'tempfail' | 'accept' | 'reject';
  /**
   * What the filter is, when the policy decides per connector whether it runs
   * ('sender-authentication': the connector's senderAuthenticationEnabled); absent: antiSpam decides.
   */
  readonly kind?: 'sender-authentication';
  /** The connectors (by name) whose mail it judges; absent: every connector. */
  readonly connectors?: readonly string[] | undefined;
  /** The connectors (by name) whose mail it does not judge (the attachment filter's exceptionConnectors). */
  readonly exceptConnectors?: readonly string[] | undefined;
  /** A transaction filter that also judges the pickup directory's messages (Postfix's non_smtpd_milters). */
  readonly pickup?: boolean;
  /** It may ask for disclaimers (FilterOutcome.disclaimers): intake then keeps the message's body to change it. */
  readonly mayAddDisclaimers?: boolean;
}

/** A filter that judges the message at DATA (sender authentication, rspamd, the attachment filter). */
export interface MessageOnlyFilter extends FilterTraits {
  begin(ctx: FilterContext): MessageFilterSession;
  readonly transaction?: undefined;
}

/** A filter that judges the envelope as it comes, then the message (a milter). */
export interface TransactionFilter extends FilterTraits {
  transaction(ctx: TransactionContext): TransactionFilterSession;
  readonly begin?: undefined;
}

export type MessageFilter = MessageOnlyFilter | TransactionFilter;
