// Delivery of an smtp://, smtps://, lmtp:// or mx hop: look the hosts up, take a pooled
// session (or open one, trying hosts and addresses in order), send the recipients in groups
// with identical DSN parameters, and turn every reply into a per-recipient outcome.
import { BUSY, type ConnectionPool } from './connection-pool.js';
import { lookupMx, lookupTargetHost, type DnsResolver, type NextHopHost } from './dns-resolver.js';
import type { Outcomes, RecipientOutcome } from './outcome.js';
import { isPermanent, isSuccess, localReply, type Reply } from '@mailgw/mail';
import type { Hop, HopRecipient } from '@mailgw/queue';
import { SessionOpenError, SmtpSession, type SmtpTimeouts } from './smtp-session.js';

export interface SmtpDeliveryContext {
  readonly pool: ConnectionPool;
  readonly resolver: DnsResolver;
  /** Our EHLO name. */
  readonly clientName: string;
  /** Port for mx delivery (25; tests use another). */
  readonly mxPort: number;
  readonly timeouts: SmtpTimeouts;
  /** At most this many addresses are tried per connection attempt (default 10). */
  readonly maxAddresses?: number;
}

export interface OutboundMessage {
  readonly from: string;
  readonly body: Buffer;
  readonly ret?: string | undefined;
  readonly envid?: string | undefined;
  readonly eightBit: boolean;
  /** Received with SMTPUTF8: only next hops offering it get the message (RFC 6531 3.2). */
  readonly smtpUtf8?: boolean;
}

const BUSY_REPLY = localReply(451, '4.4.5', 'All connections to the destination are in use; retrying shortly');

function outcomeFor(reply: Reply, remoteMta: string, connectionLost: boolean, dsnSupported: boolean): RecipientOutcome {
  if (isSuccess(reply)) return { type: 'delivered', reply, remoteMta, dsnAction: dsnSupported ? null : 'relayed' };
  if (isPermanent(reply)) return { type: 'failed', reply, remoteMta };
  return { type: 'deferred', reply, remoteMta, connectionFailure: connectionLost };
}

/** Recipients that can share one transaction: same NOTIFY and ORCPT (they apply per send()). */
function dsnGroups(recipients: readonly HopRecipient[]): HopRecipient[][] {
  const groups = new Map<string, HopRecipient[]>();
  for (const r of recipients) {
    const key = JSON.stringify([r.notify ?? null, r.orcpt ?? null]);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()];
}

async function connectAny(hop: Hop, hosts: readonly NextHopHost[], ctx: SmtpDeliveryContext): Promise<SmtpSession> {
  const t = hop.target;
  if (t.kind === 'maildir') throw new TypeError('maildir hop');
  const port = t.kind === 'mx' ? ctx.mxPort : t.port;
  let last: SessionOpenError | null = null;
  let tried = 0;
  for (const host of hosts) {
    for (const address of host.addresses) {
      if (tried++ >= (ctx.maxAddresses ?? 10)) break;
      try {
        return await SmtpSession.open({
          address,
          port,
          hostName: host.name,
          secure: t.kind === 'smtp' && t.secure,
          lmtp: t.kind === 'smtp' && t.lmtp,
          requireTLS: t.kind === 'smtp' && t.requireTLS,
          verifyTLS: t.verifyTLS,
          clientName: ctx.clientName,
          auth: t.kind === 'smtp' ? t.auth : null,
          timeouts: ctx.timeouts,
        });
      } catch (err) {
        if (!(err instanceof SessionOpenError)) throw err;
        last = err;
      }
    }
  }
  throw last ?? new SessionOpenError(localReply(451, '4.4.1', `No address to connect to for ${hop.key}`));
}

export async function deliverSmtpHop(hop: Hop, message: OutboundMessage, ctx: SmtpDeliveryContext): Promise<Outcomes> {
  const out: Outcomes = new Map();
  const t = hop.target;
  const all = (o: RecipientOutcome, rs: readonly HopRecipient[] = hop.recipients) => {
    for (const r of rs) if (!out.has(r.index)) out.set(r.index, o);
  };
  if (t.kind === 'maildir') throw new TypeError(`not an SMTP hop: ${hop.key}`);

  const lookup = t.kind === 'mx' ? await lookupMx(hop.domain!, ctx.resolver) : await lookupTargetHost(t.host, ctx.resolver);
  if (!lookup.ok) {
    all(lookup.permanent ? { type: 'failed', reply: lookup.reply, remoteMta: null } : { type: 'deferred', reply: lookup.reply, remoteMta: null, connectionFailure: true });
    return out;
  }

  for (const group of dsnGroups(hop.recipients)) {
    const first = group[0]!;
    const byAddress = new Map<string, HopRecipient[]>();
    for (const r of group) byAddress.set(r.address, [...(byAddress.get(r.address) ?? []), r]);
    try {
      const report = await ctx.pool.run(
        hop.key,
        () => connectAny(hop, lookup.hosts, ctx),
        (session) =>
          session
            .send(
              {
                from: message.from,
                to: [...byAddress.keys()],
                size: message.body.length,
                use8BitMime: message.eightBit,
                smtpUtf8: message.smtpUtf8 === true,
                dsn: { ret: message.ret, envid: message.envid, notify: first.notify, orcpt: first.orcpt },
              },
              message.body,
            )
            .then((r) => ({ ...r, remote: session.remoteName })),
      );
      if (report === BUSY) {
        all({ type: 'busy', reply: BUSY_REPLY });
        break;
      }
      for (const [address, reply] of report.replies) {
        for (const r of byAddress.get(address) ?? []) out.set(r.index, outcomeFor(reply, report.remote, report.connectionLost, report.dsnSupported));
      }
    } catch (err) {
      if (!(err instanceof SessionOpenError)) throw err;
      // Nobody reachable: the rest of the hop waits for the next try.
      all({ type: 'deferred', reply: err.reply, remoteMta: null, connectionFailure: true });
      break;
    }
  }
  all({ type: 'deferred', reply: localReply(451, '4.0.0', 'Not attempted'), remoteMta: null, connectionFailure: false });
  return out;
}
