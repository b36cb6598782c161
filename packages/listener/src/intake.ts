// One message from DATA to the queue: a queue id, our Received header, the streamed body
// (receive-message.ts), then the job committed with the envelope. The outcome says what to
// answer; nothing is left in Redis unless the outcome is "queued".
import { REPLIES, type Decision, type Reply, type Session } from '@mailgw/policy';
import { newQueueId, type MailStore, type MessageWriter } from '@mailgw/queue';
import type { EnvelopeRecipient, MailAddress } from '@mailgw/mail';
import { commitInput } from './delivery-job.js';
import { receiveMessage } from './message/receive-message.js';
import { generatedMessageId, receivedHeader, withProtocol } from './message/trace-headers.js';

export interface IntakeInput {
  readonly session: Session;
  readonly store: MailStore;
  readonly clientIP: string;
  /** Reverse-resolved name or the "[ip]" literal. */
  readonly clientHostname: string;
  readonly helo: string;
  /** The session began with EHLO (not HELO). */
  readonly ehlo: boolean;
  readonly tls: { protocol: string; cipher: string } | null;
  readonly sender: MailAddress | null;
  readonly recipients: readonly EnvelopeRecipient[];
  readonly ret: string | null | undefined;
  readonly envid: string | null | undefined;
  readonly bodyType: string | undefined;
}

export type IntakeOutcome =
  | { kind: 'queued'; reply: Reply; queueId: string; messageId: string; size: number }
  | { kind: 'rejected'; decision: Decision; queueId: string; size: number }
  | { kind: 'store-failed'; reply: Reply; queueId: string; error: unknown }
  /** The client went away mid-DATA; nothing to answer. */
  | { kind: 'gone' };

export async function takeMessage(stream: AsyncIterable<Buffer>, i: IntakeInput): Promise<IntakeOutcome> {
  const c = i.session.connector;
  const queueId = newQueueId();
  const date = new Date();
  const failed = (error: unknown): IntakeOutcome => ({ kind: 'store-failed', reply: REPLIES.queueUnavailable, queueId, error });
  let writer: MessageWriter;
  try {
    writer = i.store.beginMessage(queueId);
  } catch (e) {
    return failed(e);
  }
  const received = receivedHeader({
    helo: i.helo,
    clientHostname: i.clientHostname,
    clientIP: i.clientIP,
    fqdn: c.config.fqdn,
    connector: c.name,
    protocol: withProtocol(i.ehlo, !!i.tls, !!i.session.user),
    tls: i.tls,
    authUser: i.session.user?.name ?? null,
    queueId,
    date,
  });
  let got;
  try {
    got = await receiveMessage(stream, { session: i.session, writer, receivedHeader: received, generatedMessageId: generatedMessageId(queueId, c.config.fqdn), date });
  } catch {
    return { kind: 'gone' }; // the writer was aborted
  }
  if (got.kind === 'rejected') return { kind: 'rejected', decision: got.decision, queueId, size: got.messageBytes };
  if (got.kind === 'store-failed') return failed(got.error);
  try {
    await writer.commit(
      commitInput({
        queueId,
        messageId: got.messageId,
        receivedAt: date,
        connector: c.name,
        clientIP: i.clientIP,
        clientHostname: i.clientHostname,
        helo: i.helo,
        tls: i.tls,
        authUser: i.session.user?.name ?? null,
        sender: i.sender,
        recipients: i.recipients,
        dsnEnabled: c.config.deliveryStatusNotificationEnabled,
        ret: i.ret,
        envid: i.envid,
        bodyType: i.bodyType,
      }),
    );
  } catch (e) {
    await writer.abort();
    return failed(e);
  }
  return { kind: 'queued', reply: REPLIES.queued(got.messageId, queueId), queueId, messageId: got.messageId, size: got.messageBytes };
}
