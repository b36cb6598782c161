// The envelope of Exchange's Replay format (IIS's too): leading X-Sender and X-Receiver fields
// with the parameters MAIL FROM and RCPT TO would carry (RFC 3461's RET, ENVID, NOTIFY, ORCPT;
// xtext where the RFC says so). What `mailgw sendmail` and `mailgw queue export --replay`
// write and the pickup directory reads (@mailgw/policy pickupEnvelope). Pure.
import { encodeXtext } from './esmtp-params.js';

export interface ReplayEnvelope {
  /** The envelope sender as written in MAIL FROM; '' for the null sender. */
  readonly sender: string;
  readonly ret?: string | null | undefined;
  /** Decoded; written as xtext. */
  readonly envid?: string | null | undefined;
  readonly recipients: ReadonlyArray<{ readonly address: string; readonly notify?: readonly string[] | null | undefined; readonly orcpt?: string | null | undefined }>;
}

/** The X-Sender and X-Receiver fields, each ending in CRLF, to go before the message. */
export function replayEnvelopeFields(e: ReplayEnvelope): Buffer {
  const mail = `X-Sender: <${e.sender}>${e.ret ? ` RET=${e.ret}` : ''}${e.envid ? ` ENVID=${encodeXtext(e.envid)}` : ''}`;
  const rcpts = e.recipients.map((r) => `X-Receiver: <${r.address}>${r.notify?.length ? ` NOTIFY=${r.notify.join(',')}` : ''}${r.orcpt ? ` ORCPT=${encodeXtext(r.orcpt)}` : ''}`);
  return Buffer.from([mail, ...rcpts].join('\r\n') + '\r\n', 'utf8');
}
