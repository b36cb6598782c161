// Exchange's message types (the transport rule condition -MessageTypeMatches) read from what a
// message carries on the wire. Exchange decides them from the MAPI message class; a gateway sees
// MIME, so each type is the MIME form that class takes (MS-OXCMAIL, MS-OXORMMS, RFC 3834,
// RFC 8098, RFC 8551) or, for the types only Exchange writes, the X-MS-Exchange-Organization
// fields Exchange puts on them, which count only from a session that may send such fields
// (ms-Exch-Accept-Headers-Organization: the header firewall removes them from anyone else).
import type { MessageType } from '@mailgw/config';
import { parseContentType } from '@mailgw/mail';

/** A MIME part as the type reading needs it. */
export interface TypedPart {
  /** type/subtype, lower case. */
  readonly contentType: string | null;
  readonly filename: string | null;
  /** Inside a message attached to this one (a forwarded invitation is not this message's). */
  readonly inAttachedMessage: boolean;
}

export interface MessageTypeInput {
  /** Header fields by lower-case name, unfolded values as received. */
  readonly fields: ReadonlyMap<string, readonly string[]>;
  /** The parts below the top (null: the structure was not read; the types that need it are then not found). */
  readonly parts: readonly TypedPart[] | null;
  /** The session may send X-MS-Exchange-Organization-* fields (ms-Exch-Accept-Headers-Organization). */
  readonly organizationHeadersTrusted: boolean;
}

const first = (fields: ReadonlyMap<string, readonly string[]>, name: string): string | null => fields.get(name)?.[0] ?? null;
const words = (v: string | null): string[] => (v ?? '').toLowerCase().split(/[\s,;]+/).filter((w) => w !== '');

/** Every type the message is (often none; a signed meeting request is both). */
export function messageTypes(m: MessageTypeInput): Set<MessageType> {
  const out = new Set<MessageType>();
  const ct = parseContentType(first(m.fields, 'content-type'));
  const smimeType = ct.params.get('smime-type')?.toLowerCase();
  const org = (name: string): string | null => (m.organizationHeadersTrusted ? first(m.fields, `x-ms-exchange-organization-${name}`) : null);
  const contentClass = (first(m.fields, 'content-class') ?? '').trim().toLowerCase();

  // RFC 3834 5.1: the first token ("auto-replied; owner-email=…" is Cloud's form).
  const autoSubmitted = words(first(m.fields, 'auto-submitted'))[0];
  const suppress = words(first(m.fields, 'x-auto-response-suppress'));
  if (autoSubmitted === 'auto-replied' || (suppress.includes('all') && m.fields.has('x-ms-exchange-inbox-rules-loop'))) out.add('OOF');
  if ((org('autoforwarded') ?? '').trim().toLowerCase() === 'true') out.add('AutoForward');
  if (org('approval-requestor') !== null) out.add('ApprovalRequest');

  if (ct.type === 'multipart/signed') out.add('Signed');
  else if (ct.type === 'multipart/encrypted') out.add('Encrypted');
  else if (ct.type === 'application/pkcs7-mime' || ct.type === 'application/x-pkcs7-mime') {
    // Without smime-type (older agents) the usual case, an enveloped message, is assumed.
    if (smimeType === 'signed-data') out.add('Signed');
    else if (smimeType !== 'compressed-data' && smimeType !== 'certs-only') out.add('Encrypted');
  }
  if (ct.type === 'multipart/report' && ct.params.get('report-type')?.toLowerCase() === 'disposition-notification') out.add('ReadReceipt');
  if (contentClass === 'voice' || contentClass === 'voice-ca' || contentClass === 'voice-uc') out.add('Voicemail');
  if (contentClass === 'rpmsg.message') out.add('PermissionControlled');

  if (ct.type === 'text/calendar') out.add('Calendaring');
  for (const p of m.parts ?? []) {
    if (p.inAttachedMessage) continue;
    if (p.contentType === 'text/calendar' && p.filename === null) out.add('Calendaring');
    if (p.contentType === 'application/x-microsoft-rpmsg-message') out.add('PermissionControlled');
  }
  return out;
}
