// The pickup directory (Exchange's Set-TransportService -PickupDirectoryPath): what a message
// file dropped there says about its envelope, and the session it is submitted in. Pure: the
// listener's pickup shell (@mailgw/listener pickup.ts) reads and claims the files, asks here,
// and hands the message to the same intake as SMTP.
//
// Two formats, one directory:
// - Exchange's Pickup format: the envelope from the header. Sender (one address) or From (one
//   address; several need a Sender), recipients from To, Cc and Bcc; when the file carries
//   Resent-To/Cc/Bcc, a resent message, from the Resent-* fields instead.
// - Exchange's Replay format (also IIS's and what `mailgw sendmail` writes): leading X-Sender
//   and X-Receiver fields are the envelope, whatever the header says.
// Bcc (and Resent-Bcc) never leave: they are removed, as Exchange and Postfix's cleanup do.
import { connectorSchema, normaliseClientIp } from '@mailgw/config';
import { DSN_NOTIFY, addressKey, type AddressCommandArgs, decodeXtext, fieldText, fieldValue, findAddresses, formatAddress, hasNonAscii, parseAddressCommandArgs, parseEnvelopeAddress, type DsnNotify, type EnvelopeAddress, type HeaderField } from '@mailgw/mail';
import { commandParameters } from './parameters.js';
import { compileConnector, type CompiledConnector, type Policy } from './compile.js';
import { reject, type Decision } from './decision.js';
import type { DirectoryAnswer, MembershipAnswer, RecipientEntry } from './directory.js';
import { formatReply, REPLIES } from './replies.js';
import { NEW_TRANSACTION, organizationLimits, rcpt, recipientLookup, type OversizeRecipient, type Session, type Transaction } from './stages.js';

/** The name the pickup's mail carries as its connector (queue, logs, tracking, metrics). */
export const PICKUP_CONNECTOR = 'Pickup';

/**
 * mailgw's own leading field: `X-Mailgw-Release: quarantine` marks a message an administrator
 * released from quarantine (`mailgw quarantine release`), which no filter holds in quarantine again.
 */
export const RELEASE_FIELD = 'x-mailgw-release';

/** The leading fields of the Replay format; removed from the message. */
const REPLAY_FIELDS = new Set(['x-sender', 'x-receiver', 'x-endofinjectedxheader', RELEASE_FIELD]);

export type PickupEnvelope =
  | {
      readonly ok: true;
      /** Where the envelope came from: X-Sender/X-Receiver, the Resent-* fields or the header. */
      readonly format: 'replay' | 'resent' | 'header';
      /** null: the null sender (X-Sender: <>). */
      readonly sender: EnvelopeAddress | null;
      /** With the Replay format's NOTIFY= and ORCPT= (RFC 3461), when an X-Receiver gave them. */
      readonly recipients: ReadonlyArray<EnvelopeAddress & { readonly notify?: readonly DsnNotify[]; readonly orcpt?: string }>;
      /** The Replay format's RET= and ENVID= on X-Sender (ENVID decoded from xtext, as SMTP's). */
      readonly ret: 'FULL' | 'HDRS' | null;
      readonly envid: string | null;
      /** Indexes of the fields that are not stored (Bcc, the Replay fields). */
      readonly removed: readonly number[];
      /** A From field to add (the message had none): the envelope sender. */
      readonly addFrom: string | null;
      /** Some address is not ASCII (SMTPUTF8, RFC 6531). */
      readonly smtpUtf8: boolean;
      /** Released from quarantine by an administrator (a leading X-Mailgw-Release: quarantine): not quarantined again. */
      readonly release: boolean;
      readonly reason: string;
    }
  | { readonly ok: false; readonly code: string; readonly reason: string };

const bad = (code: string, reason: string): PickupEnvelope => ({ ok: false, code, reason });

/** The addresses of an address-list field, parsed as envelope addresses; unreadable ones are named. */
function addressesOf(f: HeaderField): { found: EnvelopeAddress[]; unreadable: string[] } {
  const found: EnvelopeAddress[] = [];
  const unreadable: string[] = [];
  for (const a of findAddresses(fieldValue(f))) {
    const t = Buffer.from(a.text, 'latin1').toString('utf8');
    const p = parseEnvelopeAddress(t);
    if (p.ok) found.push(p.value);
    else unreadable.push(`${t} (${p.reason})`);
  }
  return { found, unreadable };
}

/** `reason` reads after "X-Sender "…" " / "X-Receiver "…" ". */
type ReplayPath = { ok: true; value: EnvelopeAddress | null; params: ReadonlyMap<string, string> } | { ok: false; reason: string };

/**
 * An X-Sender or X-Receiver value: the path (with or without angle brackets), then the ESMTP
 * parameters MAIL FROM / RCPT TO would carry, judged as SMTP judges them (commandParameters):
 * RET and ENVID on X-Sender, NOTIFY and ORCPT on X-Receiver are kept; BODY, SIZE, SMTPUTF8 are
 * accepted and decided from the file itself.
 */
function replayPath(policy: Policy, value: string, command: 'MAIL' | 'RCPT'): ReplayPath {
  const v = value.trim();
  if (v === '') return { ok: false, reason: 'is empty' };
  const args = parseAddressCommandArgs(v.startsWith('<') ? v : v.replace(/^(\S+)/, '<$1>'));
  if (!args) return { ok: false, reason: 'is not an address: no address in angle brackets' };
  // A UTF-8 path needs no SMTPUTF8 keyword here: the file says what it holds.
  const utf8 = command === 'MAIL' && !args.params.some((p) => p.keyword === 'SMTPUTF8') ? [{ keyword: 'SMTPUTF8', value: null }] : [];
  const judged = judgePath(policy, command, { ...args, params: [...args.params, ...utf8] }, true);
  if (!judged.ok) return { ok: false, reason: judged.decision.reason.code === 'invalid-address' ? `is not an address: ${judged.decision.reason.message}` : `has a parameter SMTP would refuse: ${judged.decision.reason.message}` };
  return { ok: true, value: judged.address, params: judged.params };
}

export type SubmissionPath =
  | {
      readonly ok: true;
      /** null: the null sender (MAIL FROM:<>). */
      readonly address: EnvelopeAddress | null;
      /** The ESMTP parameters by keyword (upper case), values as given ('' for none). */
      readonly params: ReadonlyMap<string, string>;
      /** MAIL: the transaction is an SMTPUTF8 one. */
      readonly smtpUtf8: boolean;
    }
  | { readonly ok: false; readonly decision: Decision };

function judgePath(policy: Policy, command: 'MAIL' | 'RCPT', args: AddressCommandArgs, smtpUtf8: boolean): SubmissionPath {
  const judged = commandParameters(pickupSession(policy), { command, args, smtpUtf8 });
  if (judged.verdict !== 'accept') return { ok: false, decision: judged };
  const params = new Map(args.params.map((p) => [p.keyword, p.value ?? ''] as const));
  if (args.path === '') return { ok: true, address: null, params, smtpUtf8: judged.smtpUtf8 };
  const p = parseEnvelopeAddress(args.path);
  if (!p.ok) return { ok: false, decision: reject(REPLIES.invalidAddress, 'invalid-address', p.reason) };
  return { ok: true, address: p.value, params, smtpUtf8: judged.smtpUtf8 };
}

/**
 * A MAIL FROM or RCPT TO argument of `mailgw sendmail -bs` (SMTP on standard input, as PHP
 * mailers and Symfony's sendmail transport speak it), judged as the pickup will judge the
 * X-Sender or X-Receiver it becomes, with the reply SMTP gives: the parameters as
 * commandParameters judges them on the pickup's session (no BINARYMIME: there is no BDAT on a
 * pipe), the path as an address; a bare user name ("root", as local programs write it) gets the
 * default accepted domain, as Postfix appends @myorigin; SIZE over maxSendSize is refused
 * before any data (552 5.3.4). `smtpUtf8`: RCPT only, the transaction's MAIL carried SMTPUTF8.
 */
export function submissionPath(policy: Policy, command: 'MAIL' | 'RCPT', argument: string, smtpUtf8 = false): SubmissionPath {
  const args = parseAddressCommandArgs(argument);
  if (!args) return { ok: false, decision: reject(REPLIES.invalidAddress, 'invalid-address', `no address in angle brackets in "${argument.trim().slice(0, 80)}"`) };
  const g = policy.config.gateway;
  const path = args.path !== '' && !args.path.includes('@') && /^[^\s<>@,;:"()\\]+$/.test(args.path) ? `${args.path}@${g.defaultDomain}` : args.path;
  const body = args.params.find((p) => p.keyword === 'BODY')?.value?.toUpperCase();
  if (command === 'MAIL' && body === 'BINARYMIME') return { ok: false, decision: reject(REPLIES.binaryMimeNeedsBdat, 'binarymime-needs-bdat', 'BODY=BINARYMIME needs BDAT, which a pipe does not offer') };
  if (command === 'RCPT' && path === '') return { ok: false, decision: reject(REPLIES.invalidAddress, 'invalid-address', 'a recipient cannot be the null path <>') };
  const judged = judgePath(policy, command, { path, params: args.params }, smtpUtf8);
  if (!judged.ok || command !== 'MAIL') return judged;
  const size = judged.params.get('SIZE');
  if (size !== undefined && g.maxSendSize !== null && Number(size) > g.maxSendSize) {
    return { ok: false, decision: reject(REPLIES.messageTooBig, 'size-over-max-send-size', `SIZE=${size} is over the organisation's maxSendSize (${g.maxSendSize} bytes)`) };
  }
  return judged;
}

/**
 * The envelope of a pickup file from its header fields (CRLF line ends, as parseHeaderFields
 * gives them), or why the file cannot be sent (it is then renamed *.bad).
 */
export function pickupEnvelope(policy: Policy, fields: readonly HeaderField[]): PickupEnvelope {
  const max = policy.config.gateway.pickupDirectoryMaxRecipientsPerMessage;
  const removed: number[] = [];
  let sender: EnvelopeAddress | null = null;
  let recipients: Array<EnvelopeAddress & { notify?: readonly DsnNotify[]; orcpt?: string }> = [];
  let ret: 'FULL' | 'HDRS' | null = null;
  let envid: string | null = null;
  let format: 'replay' | 'resent' | 'header';
  let release = false;
  let lead = 0;
  while (lead < fields.length && REPLAY_FIELDS.has(fields[lead]!.name)) lead++;
  if (lead > 0) {
    // Replay format: exactly one X-Sender and at least one X-Receiver, before any other field.
    format = 'replay';
    const senders = fields.slice(0, lead).filter((f) => f.name === 'x-sender');
    if (senders.length !== 1) return bad('pickup-x-sender', `the file starts with X- envelope fields but has ${senders.length} X-Sender fields (exactly one is needed)`);
    const s = replayPath(policy, fieldText(senders[0]!), 'MAIL');
    if (!s.ok) return bad('pickup-x-sender', `X-Sender "${fieldText(senders[0]!)}" ${s.reason}`);
    sender = s.value;
    const r0 = s.params.get('RET');
    ret = r0 ? (r0.toUpperCase() as 'FULL' | 'HDRS') : null;
    envid = s.params.has('ENVID') ? decodeXtext(s.params.get('ENVID')!) : null;
    for (const f of fields.slice(0, lead)) {
      if (f.name !== 'x-receiver') continue;
      const r = replayPath(policy, fieldText(f), 'RCPT');
      if (!r.ok || r.value === null) return bad('pickup-x-receiver', `X-Receiver "${fieldText(f)}" ${r.ok ? 'is not an address' : r.reason}`);
      const notify = r.params.get('NOTIFY');
      const orcpt = r.params.get('ORCPT');
      recipients.push({ ...r.value, ...(notify ? { notify: notify.toUpperCase().split(',').filter((n): n is DsnNotify => (DSN_NOTIFY as readonly string[]).includes(n)) } : {}), ...(orcpt ? { orcpt: decodeXtext(orcpt) } : {}) });
    }
    for (let i = 0; i < lead; i++) removed.push(i);
    if (recipients.length === 0) return bad('pickup-no-recipients', 'the file starts with X-Sender but has no X-Receiver field: nobody to send it to');
    const marks = fields.slice(0, lead).filter((f) => f.name === RELEASE_FIELD);
    if (marks.some((f) => fieldText(f).trim().toLowerCase() !== 'quarantine')) return bad('pickup-release', `X-Mailgw-Release "${fieldText(marks.find((f) => fieldText(f).trim().toLowerCase() !== 'quarantine')!)}" is not "quarantine"`);
    release = marks.length > 0;
  } else {
    const named = (n: string) => fields.filter((f) => f.name === n);
    const resent = ['resent-to', 'resent-cc', 'resent-bcc'].some((n) => named(n).length > 0);
    format = resent ? 'resent' : 'header';
    const pre = resent ? 'resent-' : '';
    const Pre = resent ? 'Resent-' : '';
    // The originator: Sender (one address), else From (one address; with several, Sender says who sent it).
    const senderFields = named(`${pre}sender`);
    const fromFields = named(`${pre}from`);
    if (senderFields.length > 0) {
      const a = addressesOf(senderFields[0]!).found;
      if (a.length !== 1) return bad('pickup-sender', `${Pre}Sender "${fieldText(senderFields[0]!)}" must hold exactly one address, it holds ${a.length}`);
      sender = a[0]!;
    } else if (fromFields.length > 0) {
      const a = fromFields.flatMap((f) => addressesOf(f).found);
      if (a.length === 0) return bad('pickup-from', `${Pre}From "${fieldText(fromFields[0]!)}" holds no address that can be read`);
      if (a.length > 1) return bad('pickup-from', `${Pre}From holds ${a.length} addresses and there is no ${Pre}Sender field to say which one sent the message`);
      sender = a[0]!;
    } else {
      return bad('pickup-no-sender', resent ? 'a resent message (Resent-To/Cc/Bcc) needs a Resent-From or Resent-Sender field' : 'the file has no From or Sender field: nobody to send it as');
    }
    const unreadable: string[] = [];
    for (const n of [`${pre}to`, `${pre}cc`, `${pre}bcc`]) {
      for (const f of named(n)) {
        const a = addressesOf(f);
        recipients.push(...a.found);
        unreadable.push(...a.unreadable);
      }
    }
    if (unreadable.length > 0) return bad('pickup-recipient', `recipient ${unreadable[0]} cannot be sent to${unreadable.length > 1 ? ` (and ${unreadable.length - 1} more)` : ''}`);
    if (recipients.length === 0) return bad('pickup-no-recipients', `no address in ${Pre}To, ${Pre}Cc or ${Pre}Bcc: nobody to send it to`);
  }
  // Bcc never leaves (Resent-Bcc neither): the recipients got it from the envelope.
  fields.forEach((f, i) => {
    if (i >= lead && (f.name === 'bcc' || f.name === 'resent-bcc')) removed.push(i);
  });
  // One delivery per address.
  const seen = new Set<string>();
  recipients = recipients.filter((r) => !seen.has(addressKey(r)) && !!seen.add(addressKey(r)));
  if (recipients.length > max) return bad('pickup-too-many-recipients', `${recipients.length} recipients, more than pickupDirectoryMaxRecipientsPerMessage (${max})`);
  const hasFrom = fields.some((f, i) => i >= lead && f.name === 'from');
  const addFrom = !hasFrom && sender ? `<${sender.address}>` : null;
  const all = [...(sender ? [sender] : []), ...recipients];
  const what = format === 'replay' ? 'X-Sender/X-Receiver' : format === 'resent' ? 'the Resent-* fields' : 'the header';
  return {
    ok: true,
    format,
    sender,
    recipients,
    ret,
    envid,
    removed,
    addFrom,
    smtpUtf8: all.some((a) => hasNonAscii(a.local) || hasNonAscii(a.domain)),
    release,
    reason: `envelope from ${what}: <${sender?.address ?? ''}> to ${recipients.length} recipient${recipients.length === 1 ? '' : 's'}${removed.length > lead ? ', Bcc removed' : ''}${addFrom ? ', From added' : ''}${release ? ', released from quarantine' : ''}`,
  };
}

/** The envelope of a file the pickup takes. */
export type TakenEnvelope = Extract<PickupEnvelope, { ok: true }>;

/** What the directory said, for pickupRecipients: each recipient by recipientLookup's address, the sender's groups when a recipient has delivery restrictions. */
export interface PickupDirectoryAnswers {
  readonly recipients?: Readonly<Record<string, RecipientEntry | DirectoryAnswer>>;
  readonly sender?: MembershipAnswer | undefined;
}

/** The directory questions pickupRecipients needs answered first (recipients: { directory: true }). */
export function pickupLookups(policy: Policy, env: TakenEnvelope): string[] {
  return env.recipients.map((r) => recipientLookup(policy, r.address)).filter((a): a is string => a !== null);
}

export type PickupRecipients = { readonly decisions: ReadonlyArray<{ readonly recipient: string; readonly decision: Decision }> } & (
  | { readonly kind: 'taken'; readonly transaction: Transaction; readonly refused: readonly OversizeRecipient[] }
  /** A recipient could not be judged now (the directory did not answer): the file waits. */
  | { readonly kind: 'later'; readonly why: string }
  /** Every recipient refused: the file is renamed *.bad. */
  | { readonly kind: 'bad'; readonly code: string; readonly why: string; readonly refused: readonly OversizeRecipient[] }
);

/**
 * Each recipient of a pickup file through rcpt(), as RCPT would judge it (unknown mailboxes,
 * blocked recipients, the directory's delivery restrictions and MaxReceiveSize): one refused for
 * good is failed from the start (the sender gets a DSN) while the others are taken; with every
 * one refused the file is bad; a temporary refusal (a question the directory left unanswered)
 * leaves the file for a later look. What the pickup does and what `mailgw explain --pickup` shows.
 */
export function pickupRecipients(policy: Policy, env: TakenEnvelope, answers: PickupDirectoryAnswers): PickupRecipients {
  const session = pickupSession(policy);
  let transaction: Transaction = NEW_TRANSACTION;
  const refused: OversizeRecipient[] = [];
  const decisions: Array<{ recipient: string; decision: Decision }> = [];
  const senderAnswer = (): MembershipAnswer | null => (env.sender ? (answers.sender ?? { kind: 'unavailable', why: 'the directory was not asked about the sender' }) : null);
  for (const r of env.recipients) {
    const lookup = recipientLookup(policy, r.address);
    const entry = lookup === null ? undefined : (answers.recipients?.[lookup] ?? 'unavailable');
    const e = typeof entry === 'object' ? entry : undefined;
    const restrictions = e?.restrictions ? { lists: e.restrictions, sender: { address: env.sender?.address.toLowerCase() ?? null, answer: senderAnswer() } } : undefined;
    const d = rcpt(policy, session, { recipient: r.address, transaction, notify: r.notify, orcpt: r.orcpt, directory: typeof entry === 'string' ? entry : e?.answer, restrictions, maxReceiveSize: e?.maxReceiveSize });
    decisions.push({ recipient: r.address, decision: d.decision });
    if (d.decision.verdict === 'accept') {
      transaction = d.transaction;
      continue;
    }
    if (d.decision.reply.code < 500) return { kind: 'later', why: d.decision.reason.message, decisions };
    if (d.address) refused.push({ recipient: { local: d.address.local, domain: d.address.domain }, reply: d.decision.reply, code: d.decision.reason.code, reason: d.decision.reason.message });
  }
  if (transaction.recipients.length === 0) {
    return { kind: 'bad', code: refused[0]?.code ?? 'pickup-no-recipients', why: `every recipient was refused: ${refused.map((o) => `${formatAddress(o.recipient)} (${formatReply(o.reply)})`).join(', ')}`, refused, decisions };
  }
  return { kind: 'taken', transaction, refused, decisions };
}

/**
 * The session pickup mail is submitted in: a connector of its own, never listening, that acts as
 * the gateway's own server (Exchange submits pickup mail as the transport server itself): any
 * sender, any recipient, no anti-spam, no connector size limit; but not trusted with the
 * organisation's X-MS-Exchange-Organization-* fields or journal reports (anyone who may write
 * to the directory could forge them), and the organisation's maxSendSize applies (the shell
 * caps the file by it). Made once per policy.
 */
export function pickupSession(policy: Policy): Session {
  let s = sessions.get(policy);
  if (!s) {
    const connector = pickupConnector(policy);
    s = { connector, client: normaliseClientIp('127.0.0.1')!, tls: false, user: null, principals: connector.initialPrincipals, rights: connector.initialRights, relayDenied: null, organization: organizationLimits(policy) };
    sessions.set(policy, s);
  }
  return s;
}

const sessions = new WeakMap<Policy, Session>();

function pickupConnector(policy: Policy): CompiledConnector {
  const g = policy.config.gateway;
  const config = connectorSchema.parse({
    name: PICKUP_CONNECTOR,
    // Never listened on: the pickup's session is not chosen by connect().
    bindings: ['127.0.0.1:25'],
    remoteIPRanges: ['127.0.0.1'],
    authMechanism: ['ExternalAuthoritative'],
    permissionGroups: ['ExchangeServers'],
    // Files written on Linux end their lines in LF: normalised, never refused.
    bareLinefeedRejectionEnabled: false,
    maxHeaderSize: g.pickupDirectoryMaxHeaderSize,
    // pickupDirectoryMaxRecipientsPerMessage decides (pickupEnvelope), not a connector's 200.
    maxRecipientsPerMessage: g.pickupDirectoryMaxRecipientsPerMessage,
  });
  return { ...compileConnector({ ...config, file: `${policy.config.gatewayFile}#pickupDirectoryPath`, fqdn: g.fqdn }, new Set([g.fqdn.toLowerCase()])), pickup: true };
}
