// The listener's part of the message tracking log: for every message queued, RECEIVE (what came
// in over SMTP) and SUBMIT (handed to the delivery queue, where the workers take it: Exchange's
// submission to categorization), written through the listener's observer hook into the same
// log the workers write.
import type { ListenerObserver } from '@mailgw/listener';
import type { TrackingLog } from '@mailgw/queue';

export function receiveTracker(log: TrackingLog): ListenerObserver {
  return (e) => {
    if (e.type === 'journal-report' && e.report) {
      // A journal report is a message of its own (the Journal connector's): its life in the
      // tracking log starts here, made by the journaling agent for the message it reports on.
      const r = e.report;
      const report = { internalMessageId: r.queueId, messageId: r.messageId, senderAddress: r.sender, recipientAddress: [e.to], recipientCount: 1, totalBytes: r.size, serverHostname: r.fqdn };
      log.write({ eventId: 'RECEIVE', source: 'AGENT', ...report, connectorId: 'Journal', directionality: 'Originating', reference: r.of, sourceContext: `journal report of ${r.of} (${e.rules.map((n) => `"${n}"`).join(', ')})` });
      log.write({ eventId: 'SUBMIT', source: 'QUEUE', ...report });
      return;
    }
    if (e.type !== 'message-accepted') return;
    // What both events say about the message.
    const message = {
      internalMessageId: e.queueId,
      messageId: e.messageId,
      senderAddress: e.sender,
      recipientAddress: e.recipients,
      recipientCount: e.recipients.length,
      totalBytes: e.size,
      serverHostname: e.fqdn,
    };
    log.write({
      eventId: 'RECEIVE',
      // Exchange's RECEIVE from its Pickup directory has source PICKUP.
      source: e.source === 'pickup' ? 'PICKUP' : 'SMTP',
      ...message,
      clientIp: e.clientIP,
      clientHostname: e.clientHostname,
      connectorId: e.connector,
      // Exchange: mail from an authenticated sender is Originating, anything else Incoming; the
      // pickup's is the organisation's own.
      directionality: e.authUser || e.source === 'pickup' ? 'Originating' : 'Incoming',
    });
    // Exchange's AGENTINFO: what the transport rules did to it, between RECEIVE and SUBMIT.
    if (e.agentInfo && e.agentInfo.length > 0) log.write({ eventId: 'AGENTINFO', source: 'AGENT', ...message, sourceContext: e.agentInfo.join('; ') });
    log.write({ eventId: 'SUBMIT', source: 'QUEUE', ...message });
    // Exchange's categorizer fails a recipient the message is too large for (its own
    // MaxReceiveSize): FAIL from ROUTING, before any delivery; the worker's DSN follows.
    for (const f of e.failed ?? []) log.write({ eventId: 'FAIL', source: 'ROUTING', ...message, recipientAddress: [f.recipient], recipientCount: 1, recipientStatus: [f.reply], sourceContext: f.reason });
  };
}
