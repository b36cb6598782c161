// A message mailgw writes itself (a DSN, a TLS-RPT report) goes through the same queue as
// received mail: committed as if this gateway had sent it to itself over loopback, to one
// recipient that never gets a DSN back (RFC 3461: nothing bounces to a bounce or a report).
import type { MailAddress } from '@mailgw/mail';
import type { MessageWriter } from './mail-store.js';

export interface GeneratedMessage {
  readonly queueId: string;
  readonly messageId: string;
  /** The connector name shown in the queue and the tracking log (DSN, TLSRPT). */
  readonly connector: string;
  /** This gateway's FQDN: the client host name and HELO of the job. */
  readonly fqdn: string;
  /** The envelope sender; null for the null sender <>. */
  readonly sender: MailAddress | null;
  readonly to: MailAddress;
  readonly body: Buffer;
  readonly receivedAt: Date;
}

/** Writes and commits `m` into the queue of `store`. */
export async function queueGeneratedMessage(store: { beginMessage(queueId: string): MessageWriter }, m: GeneratedMessage): Promise<void> {
  const writer = store.beginMessage(m.queueId);
  await writer.write(m.body);
  await writer.commit({
    queueId: m.queueId,
    messageId: m.messageId,
    receivedAt: m.receivedAt.toISOString(),
    connector: m.connector,
    clientIP: '127.0.0.1',
    clientHostname: m.fqdn,
    helo: m.fqdn,
    tls: null,
    authUser: null,
    mailFrom: { sender: m.sender },
    rcptTo: [{ local: m.to.local, domain: m.to.domain, notify: ['NEVER'] }],
  });
}
