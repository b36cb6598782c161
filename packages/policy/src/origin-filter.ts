// Connection filtering of the host behind one of the organisation's own relays
// (internalSMTPServers), as Exchange's Connection Filtering agent does for its InternalSMTPServers:
// the relay itself is exempt at connect and RCPT (antispam.ts, sender-reputation.ts), and at the
// end of the header the host that handed the message to it (originating-client.ts) is judged by
// the same IP Allow List, IP Block List and DNS list providers, as if it had connected. One
// answer for the message: refused when any recipient would have been refused at RCPT (the
// sender learns it and can write to a bypassed recipient alone), taken when none would. Sender
// reputation rates that host too (with the HELO the relay recorded), never the relay.
import { formatAddress, type MailAddress } from '@mailgw/mail';
import { normaliseClientIp } from '@mailgw/config';
import type { Policy } from './compile.js';
import { accept, reject, type Decision } from './decision.js';
import { connectionFilter, type IpListAnswer } from './antispam.js';
import { ipBlockListFilter, type IpBlockListEntry } from './sender-reputation.js';
import { originatingClient } from './originating-client.js';
import { REPLIES } from './replies.js';
import type { Session } from './stages.js';

/** The listener's filter that judges the host before a relay (the agent log names it Connection Filtering Agent). */
export const ORIGIN_FILTER_NAME = 'connection-filter-origin';

/** The session as if the host before the relay had connected, or why there is none to judge. */
export function originSession(policy: Policy, session: Session, received: readonly string[]): { readonly session: Session; readonly ip: string; readonly helo: string } | { readonly session: null; readonly why: string } {
  const o = originatingClient(session.client.text, received, policy.config.gateway.internalSMTPServers);
  if (o.kind === 'client') return { session: null, why: `client ${session.client.text} is not one of internalSMTPServers` };
  if (o.kind === 'unknown') return { session: null, why: o.why };
  const client = normaliseClientIp(o.ip);
  return client ? { session: { ...session, client }, ip: client.text, helo: o.helo ?? '' } : { session: null, why: `${o.ip} is not an address` };
}

/** The message's answer: the first refusal any recipient would have had at RCPT, or accepted. */
export function originConnectionFilter(policy: Policy, origin: Session, relay: string, recipients: readonly MailAddress[], answers: readonly IpListAnswer[], entries: readonly IpBlockListEntry[], now: number): Decision {
  const judged = recipients.map((r) => {
    const rcpt = { address: formatAddress(r) };
    const listed = ipBlockListFilter(policy, origin, rcpt, entries, now);
    return listed && listed.verdict !== 'accept' ? listed : (listed ?? connectionFilter(policy, origin, rcpt, answers));
  });
  const refused = judged.filter((d) => d.verdict !== 'accept');
  const via = `${origin.client.text}, which handed the message to internal server ${relay}`;
  if (refused.length === 0) return accept(REPLIES.startMailInput, judged[0]?.reason.code ?? 'not-block-listed', `${via}: ${judged[0]?.reason.message ?? 'no recipient'}`);
  const first = refused[0]!;
  return reject(first.reply, first.reason.code, `${via}: ${first.reason.message} (${refused.length} of ${recipients.length} recipients would have been refused at RCPT: the whole message is refused)`);
}
