// The envelope a connection hands to the queue with each accepted message (the job schema of
// @mailgw/queue): who sent it from where, over what, and the DSN parameters when the connector
// offers DSN.
import type { EnvelopeRecipient, MailAddress } from '@mailgw/mail';
import type { CommitInput } from '@mailgw/queue';
import { MAX_ENVID, MAX_ORCPT } from '@mailgw/policy';

export interface JobFacts {
  readonly queueId: string;
  readonly messageId: string;
  readonly receivedAt: Date;
  readonly connector: string;
  readonly clientIP: string;
  readonly clientHostname: string;
  readonly helo: string;
  readonly tls: { protocol: string; cipher: string } | null;
  readonly authUser: string | null;
  /** As the policy parsed it at MAIL; null for the null sender. */
  readonly sender: MailAddress | null;
  /** As the policy parsed them at RCPT. */
  readonly recipients: readonly EnvelopeRecipient[];
  readonly dsnEnabled: boolean;
  readonly ret: string | null | undefined;
  readonly envid: string | null | undefined;
  /** smtp-server's envelope.bodyType: '7bit', '8bitmime' or 'binarymime'. */
  readonly bodyType: string | undefined;
  /** MAIL carried SMTPUTF8 (RFC 6531). */
  readonly smtpUtf8: boolean;
}

// RFC 3461 limits; a longer value is dropped rather than failing the whole message.

export function commitInput(f: JobFacts): CommitInput {
  const dsn = f.dsnEnabled;
  return {
    queueId: f.queueId,
    messageId: f.messageId,
    receivedAt: f.receivedAt.toISOString(),
    connector: f.connector,
    clientIP: f.clientIP,
    clientHostname: f.clientHostname.slice(0, 1024),
    helo: f.helo.slice(0, 1024),
    tls: f.tls,
    authUser: f.authUser,
    mailFrom: {
      sender: f.sender ? { local: f.sender.local, domain: f.sender.domain } : null,
      ...(dsn && f.ret ? { ret: f.ret } : {}),
      ...(dsn && f.envid && f.envid.length <= MAX_ENVID ? { envid: f.envid } : {}),
      body: f.bodyType === 'binarymime' ? 'BINARYMIME' : f.bodyType === '8bitmime' ? '8BITMIME' : '7BIT',
      ...(f.smtpUtf8 ? { smtpUtf8: true as const } : {}),
    },
    rcptTo: f.recipients.map((r) => ({
      local: r.local,
      domain: r.domain,
      ...(dsn && r.notify && r.notify.length > 0 ? { notify: [...r.notify] } : {}),
      ...(dsn && r.orcpt && r.orcpt.length <= MAX_ORCPT ? { orcpt: r.orcpt } : {}),
    })),
  };
}
