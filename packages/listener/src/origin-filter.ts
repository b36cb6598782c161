// The I/O shell of connection filtering for mail one of the organisation's own relays hands on
// (gateway internalSMTPServers): a message filter that, at the end of the header, finds the host
// before the relay in the Received fields, asks the DNS lists about it and judges it with the IP
// Allow List and IP Block List as if it had connected (@mailgw/policy origin-filter.ts). Only
// for sessions from such a relay; the connection filter at RCPT exempts them.
import { fieldValue, type FilterOutcome, type HeaderField, type MessageFilterSession, type MessageOnlyFilter } from '@mailgw/mail';
import { ORIGIN_FILTER_NAME, fromInternalServer, ipListQueries, originConnectionFilter, originSession, type IpBlockListSource, type IpListAnswer, type Policy, type Session } from '@mailgw/policy';
import { askIpLists, type IpListLookup } from './context.js';

/** The filter for `session`'s mail, or null when its client is not one of internalSMTPServers. */
export function originFilter(policy: Policy, session: Session, ipLists: IpListLookup | undefined, ipBlockList: IpBlockListSource | undefined, onOrigin?: (origin: { readonly session: Session; readonly helo: string }) => void): MessageOnlyFilter | null {
  if (!fromInternalServer(policy, session)) return null;
  return {
    name: ORIGIN_FILTER_NAME,
    // As connection filtering: not for sessions holding Bypass-Anti-Spam.
    antiSpam: true,
    onFailure: 'tempfail',
    begin(ctx): MessageFilterSession {
      let judged: { origin: Session; answers: Promise<readonly IpListAnswer[]> } | { why: string } | null = null;
      return {
        header(fields: readonly HeaderField[]) {
          const o = originSession(policy, session, fields.filter((f) => f.name === 'received').map(fieldValue));
          if (!o.session) {
            judged = { why: o.why };
            return;
          }
          // Sender reputation rates this host's message instead of the relay's.
          onOrigin?.({ session: o.session, helo: o.helo });
          // Asked now, while the body streams in; a list that fails or is slow is skipped, as at RCPT.
          const queries = ipListQueries(policy, o.session);
          judged = { origin: o.session, answers: queries.length > 0 && ipLists ? askIpLists(ipLists, queries) : Promise.resolve([]) };
        },
        body() {},
        async end(): Promise<FilterOutcome> {
          if (!judged || 'why' in judged) return { filter: ORIGIN_FILTER_NAME, verdict: 'accept', headers: [], reason: `no host before internal server ${session.client.text} to judge: ${judged?.why ?? 'no header'}` };
          const d = originConnectionFilter(policy, judged.origin, session.client.text, ctx.recipients, await judged.answers, ipBlockList?.entries() ?? [], Date.now());
          if (d.verdict === 'accept') return { filter: ORIGIN_FILTER_NAME, verdict: 'accept', headers: [], reason: d.reason.message };
          return { filter: ORIGIN_FILTER_NAME, verdict: 'reject', reply: d.reply, headers: [], reason: d.reason.message, notable: true };
        },
        abort() {
          judged = null;
        },
      };
    },
  };
}
