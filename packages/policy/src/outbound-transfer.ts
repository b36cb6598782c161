// How one message goes to a next hop, from what the next hop announced in EHLO: BDAT when it
// offers CHUNKING (RFC 3030: no dot-stuffing, no end marker, the stored bytes as they are),
// DATA otherwise; BODY=BINARYMIME only to a hop offering BINARYMIME and CHUNKING, and never a
// downgrade: an SMTPUTF8 message to a hop without SMTPUTF8 fails with 5.6.7 (RFC 6531 3.2),
// a BINARYMIME message to a hop without BINARYMIME with 5.6.3 (RFC 3030 3: the sender must
// not send binary data as DATA; mailgw converts nothing). LMTP hops get DATA: the per-recipient
// replies after DATA are LMTP's (RFC 2033), BDAT would change them. Pure.
import { localReply, type Reply } from '@mailgw/mail';

export type TransferBody = '7BIT' | '8BITMIME' | 'BINARYMIME';

export interface TransferInput {
  /** The body type the message came in with (MAIL … BODY=). */
  readonly body: TransferBody;
  /** The message came in with SMTPUTF8. */
  readonly smtpUtf8: boolean;
  /** The session is LMTP. */
  readonly lmtp: boolean;
  /** EHLO keywords of the next hop, upper case ("CHUNKING", "BINARYMIME", "SMTPUTF8", …). */
  readonly offered: ReadonlySet<string>;
  /** The next hop as replies name it: "host[address]". */
  readonly where: string;
}

export type TransferPlan =
  | { readonly send: true; readonly command: 'BDAT' | 'DATA'; readonly body: TransferBody; readonly reason: string }
  | { readonly send: false; readonly reply: Reply; readonly reasonCode: 'smtputf8-not-offered' | 'binarymime-not-offered'; readonly reason: string };

export function outboundTransfer(i: TransferInput): TransferPlan {
  if (i.smtpUtf8 && !i.offered.has('SMTPUTF8')) {
    const reason = `${i.where} does not offer SMTPUTF8 and the message needs it (internationalised addresses, RFC 6531)`;
    return { send: false, reply: localReply(550, '5.6.7', reason), reasonCode: 'smtputf8-not-offered', reason };
  }
  const chunking = !i.lmtp && i.offered.has('CHUNKING');
  if (i.body === 'BINARYMIME') {
    if (chunking && i.offered.has('BINARYMIME')) return { send: true, command: 'BDAT', body: 'BINARYMIME', reason: `${i.where} offers CHUNKING and BINARYMIME` };
    const missing = i.lmtp ? 'is an LMTP hop (no BDAT)' : !i.offered.has('CHUNKING') ? 'does not offer CHUNKING' : 'does not offer BINARYMIME';
    const reason = `Conversion required but not supported: the message is binary (BODY=BINARYMIME) and ${i.where} ${missing} (RFC 3030)`;
    return { send: false, reply: localReply(554, '5.6.3', reason), reasonCode: 'binarymime-not-offered', reason };
  }
  if (chunking) return { send: true, command: 'BDAT', body: i.body, reason: `${i.where} offers CHUNKING` };
  return { send: true, command: 'DATA', body: i.body, reason: i.lmtp ? 'LMTP: DATA' : `${i.where} does not offer CHUNKING` };
}
