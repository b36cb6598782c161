// The listener's part of the message tracking log: a RECEIVE event for every message queued,
// written through the listener's observer hook into the same log the workers write.
import type { ListenerObserver } from '@mailgw/listener';
import type { TrackingLog } from '@mailgw/queue';

export function receiveTracker(log: TrackingLog): ListenerObserver {
  return (e) => {
    if (e.type !== 'message-accepted') return;
    log.write({
      eventId: 'RECEIVE',
      source: 'SMTP',
      internalMessageId: e.queueId,
      messageId: e.messageId,
      senderAddress: e.sender,
      recipientAddress: e.recipients,
      recipientCount: e.recipients.length,
      totalBytes: e.size,
      clientIp: e.clientIP,
      clientHostname: e.clientHostname,
      serverHostname: e.fqdn,
      connectorId: e.connector,
      // Exchange: mail from an authenticated sender is Originating, anything else Incoming.
      directionality: e.authUser ? 'Originating' : 'Incoming',
    });
  };
}
