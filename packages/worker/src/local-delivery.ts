// Delivery of a maildir hop: one file per recipient, each with its own Delivered-To.
import { deliverToMaildir } from './maildir.js';
import type { Outcomes } from './outcome.js';
import { localReply } from '@mailgw/mail';
import type { Hop } from '@mailgw/queue';

export interface LocalMessage {
  /** Envelope sender ('' for the null sender). */
  readonly from: string;
  readonly body: Buffer;
}

export async function deliverLocalHop(hop: Hop, message: LocalMessage): Promise<Outcomes> {
  if (hop.target.kind !== 'maildir') throw new TypeError(`not a maildir hop: ${hop.key}`);
  const root = hop.target.root;
  const out: Outcomes = new Map();
  for (const r of hop.recipients) {
    try {
      await deliverToMaildir({ root, domain: r.domain, local: r.local, returnPath: message.from, deliveredTo: r.address, body: message.body });
      out.set(r.index, { type: 'delivered', reply: localReply(250, '2.0.0', 'Delivered to mailbox'), remoteMta: null, dsnAction: 'delivered' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (err instanceof RangeError) {
        out.set(r.index, { type: 'failed', reply: localReply(550, '5.1.3', `Bad destination mailbox: ${err.message}`), remoteMta: null });
      } else if (code === 'ENOSPC' || code === 'EDQUOT') {
        out.set(r.index, { type: 'deferred', reply: localReply(452, '4.3.1', `Mail system full (${code})`), remoteMta: null, connectionFailure: false });
      } else {
        out.set(r.index, { type: 'deferred', reply: localReply(451, '4.3.0', `Local delivery failed: ${code ?? (err as Error).message}`), remoteMta: null, connectionFailure: false });
      }
    }
  }
  return out;
}
