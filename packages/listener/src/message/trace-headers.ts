// The header fields mailgw adds: its Received line, and Message-ID/Date when the client sent
// none (RFC 5321 4.4, RFC 5322 3.6). Every value taken from the client is reduced to safe
// characters first, so nothing it sends can break out of a header line.

import { rfc5322Date } from '@mailgw/mail';

/** Host names and address literals as the client gave them, reduced to DNS-safe characters. */
function hostToken(s: string): string {
  const t = s.replace(/[^A-Za-z0-9.\-_:[\]]/g, '?').slice(0, 255);
  return t === '' ? 'unknown' : t;
}

/** Text for inside a comment "(…)": no control characters, parentheses and backslash escaped. */
function commentText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, ' ').replace(/([()\\])/g, '\\$1').slice(0, 256);
}

export interface ReceivedInput {
  /** HELO/EHLO argument. */
  readonly helo: string;
  /** Reverse-resolved name; "" or the "[ip]" literal when there is none. */
  readonly clientHostname: string;
  readonly clientIP: string;
  readonly fqdn: string;
  readonly connector: string;
  /** "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "SMTP"… */
  readonly protocol: string;
  readonly tls: { readonly protocol: string; readonly cipher: string } | null;
  readonly authUser: string | null;
  readonly queueId: string;
  readonly date: Date;
}

/** The Received field, folded, ending in CRLF. */
export function receivedHeader(r: ReceivedInput): string {
  const literal = r.clientIP.includes(':') ? `[IPv6:${r.clientIP}]` : `[${r.clientIP}]`;
  const named = r.clientHostname !== '' && !r.clientHostname.startsWith('[');
  const lines = [
    `Received: from ${hostToken(r.helo)} (${named ? `${hostToken(r.clientHostname)} ` : ''}${literal})`,
    `\tby ${hostToken(r.fqdn)} (mailgw, connector ${commentText(r.connector)})`,
    `\twith ${r.protocol}${r.tls ? ` (${commentText(r.tls.protocol)} cipher=${commentText(r.tls.cipher)})` : ''}${r.authUser ? ` (authenticated as ${commentText(r.authUser)})` : ''}`,
    `\tid ${r.queueId}; ${rfc5322Date(r.date)}`,
  ];
  return lines.join('\r\n') + '\r\n';
}

/**
 * The Received field of a message from the pickup directory, as Postfix writes one for local
 * submission ("by host (Postfix, from userid 1000)"): no "from" clause, nobody connected.
 */
export function pickupReceivedHeader(r: { readonly fqdn: string; readonly uid: number; readonly queueId: string; readonly date: Date }): string {
  return [`Received: by ${hostToken(r.fqdn)} (mailgw, pickup directory, from userid ${r.uid})`, `\tid ${r.queueId}; ${rfc5322Date(r.date)}`].join('\r\n') + '\r\n';
}

/** Protocol keyword for "with" (RFC 3848). */
export function withProtocol(ehlo: boolean, tls: boolean, auth: boolean): string {
  return `${ehlo ? 'ESMTP' : 'SMTP'}${tls ? 'S' : ''}${auth ? 'A' : ''}`;
}

export function generatedMessageId(queueId: string, fqdn: string): string {
  return `<${queueId}@${fqdn}>`;
}

/**
 * The id to quote in the 250 reply: the first <…> of the client's Message-ID value, else the
 * value itself (REPLIES.queued makes it printable ASCII and cuts it for the wire).
 */
export function messageIdForReply(value: string): string {
  const m = /<[^<>\s]{1,250}>/.exec(value);
  // eslint-disable-next-line no-control-regex
  const v = m ? m[0] : value.replace(/[\x00-\x20\x7f]+/g, ' ').trim();
  return v === '' ? '<>' : v;
}
