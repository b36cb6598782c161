// Exchange's remote domains as a message filter: at the end of the header it reads the message's
// types (an automatic reply, an automatic forward, a read receipt: @mailgw/policy message-types)
// and asks the policy which recipients outside the organisation their remote domain withholds
// such a message from; those are deleted from the envelope (a message left with none is answered
// 250 and delivered to nobody, as Exchange drops them without an NDR). Set up only when some
// remote domain withholds something.
import { messageTypes, remoteDomainsJudgement, remoteDomainsRestrictMessages } from '@mailgw/policy';
import { fieldsByName, type FilterContext, type FilterOutcome, type HeaderField, type MessageFilterSession, type MessageOnlyFilter } from '@mailgw/mail';
import type { DomainPattern, RemoteDomain } from '@mailgw/config';

export const REMOTE_DOMAINS_FILTER_NAME = 'remote-domains';

/** `inside`: the Authoritative and InternalRelay accepted domains (recipients there are not in a remote domain). */
export function remoteDomainsFilter(list: readonly RemoteDomain[], inside: readonly DomainPattern[]): MessageOnlyFilter | null {
  if (!remoteDomainsRestrictMessages(list)) return null;
  return {
    name: REMOTE_DOMAINS_FILTER_NAME,
    // Your own users' mail is what it is for: it runs for every session.
    antiSpam: false,
    onFailure: 'tempfail',
    begin: (ctx) => new RemoteDomainsSession(list, inside, ctx),
  };
}

class RemoteDomainsSession implements MessageFilterSession {
  private fields: Map<string, string[]> | null = null;

  constructor(
    private readonly list: readonly RemoteDomain[],
    private readonly inside: readonly DomainPattern[],
    private readonly ctx: FilterContext,
  ) {}

  header(fields: readonly HeaderField[]): void {
    this.fields = fieldsByName(fields);
  }

  body(): void {}

  async end(): Promise<FilterOutcome> {
    const types = messageTypes({ fields: this.fields ?? new Map(), parts: null, organizationHeadersTrusted: this.ctx.organizationHeadersTrusted === true });
    const { withheld, reason } = remoteDomainsJudgement(this.ctx.recipients, types, this.list, this.inside);
    if (withheld.length === 0) return { filter: REMOTE_DOMAINS_FILTER_NAME, verdict: 'accept', headers: [], reason };
    return { filter: REMOTE_DOMAINS_FILTER_NAME, verdict: 'accept', headers: [], envelope: withheld.map((w) => ({ op: 'delete-recipient', recipient: w.recipient })), reason, notable: true };
  }

  abort(): void {
    this.fields = null;
  }
}
