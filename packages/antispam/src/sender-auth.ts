// Sender authentication as a message filter: SPF, DKIM, DMARC and ARC by mailauth's
// authenticate(), fed while DATA arrives (the header as received, then each body chunk), so
// the DKIM body hashes are computed on the way and nothing is buffered whole or read twice.
// Every DNS lookup goes through the gateway's resolver with a per-message budget. The answer
// (reject, tempfail, quarantine, stamp) is the policy's senderAuthenticationOutcome; this
// module only runs the checks and adds one Authentication-Results header with our authserv-id.
import { PassThrough } from 'node:stream';
import type { IpRange, SenderAuthenticationConfig } from '@mailgw/config';
import { drained, fieldValue, formatAddress, type FilterContext, type FilterOutcome, type HeaderField, type MessageOnlyFilter, type MessageFilterSession } from '@mailgw/mail';
import { SENDER_AUTHENTICATION_KIND, contentFilterBypass, isInternalServer, originatingClient, senderAuthenticationOutcome, type ArcResults, type SenderAuthResults } from '@mailgw/policy';
import { authenticate, type AuthenticateResult } from 'mailauth';
import { budgeted, mailauthResolver, type DnsResolver } from './dns.js';

export interface SenderAuthFilterOptions {
  /** The gateway's resolver (cached, timed out); each message gets its own budget on top. */
  readonly resolver: DnsResolver;
  /** The actions and limits (gateway senderAuthentication); a function so a reload takes effect for the next message. */
  readonly config: () => SenderAuthenticationConfig;
  /** DNS lookups one message may cause (gateway dns.lookupBudget). */
  readonly lookupBudget: () => number;
  /** The organisation's own SMTP servers (gateway internalSMTPServers): for their mail SPF is judged for the host before them. */
  readonly internalServers?: () => readonly IpRange[];
  readonly name?: string;
}

const CRLF = Buffer.from('\r\n');

/** The value of a header line mailauth produced ("Name: value…"), folded lines kept. */
function fieldOf(headers: string, name: string): string | null {
  const re = new RegExp(`(?:^|\\r\\n)${name}:[ \\t]*((?:.|\\r\\n[ \\t])*)`, 'i');
  const m = re.exec(headers);
  return m ? m[1]!.replace(/\r\n$/, '') : null;
}

/** The newest ARC set as mailauth verified it: its instance, sealer (ARC-Seal d=) and recorded DMARC result. */
function arcResults(arc: AuthenticateResult['arc']): ArcResults | null {
  if (!arc) return null;
  // mailauth keeps the parsed chain on a non-enumerable `chain` (newest set last); its types do not say so.
  const chain = (arc as { chain?: unknown }).chain;
  const newest = Array.isArray(chain) ? (chain.at(-1) as { 'arc-seal'?: { parsed?: { d?: { value?: unknown } } } } | undefined) : undefined;
  const d = newest?.['arc-seal']?.parsed?.d?.value;
  const aar = (arc.authenticationResults ?? null) as { dmarc?: { result?: unknown; header?: { from?: unknown } } } | null;
  const dm = aar?.dmarc;
  return {
    result: arc.status.result,
    instance: typeof arc.i === 'number' && arc.i > 0 ? arc.i : null,
    sealer: typeof d === 'string' && d ? d.toLowerCase() : null,
    sealerDmarc: dm && typeof dm.result === 'string' ? { result: dm.result, from: typeof dm.header?.from === 'string' ? dm.header.from : '' } : null,
  };
}

/** mailauth's answer reduced to what the policy judges, with the Authentication-Results value. */
export function authResults(r: AuthenticateResult): SenderAuthResults {
  const spf = r.spf ? { result: r.spf.status.result, domain: r.spf.domain } : { result: 'none', domain: '' };
  const dmarc = r.dmarc ? { result: r.dmarc.status.result, domain: r.dmarc.domain, policy: r.dmarc.policy ? String(r.dmarc.policy).toLowerCase() : null } : null;
  return {
    spf,
    dkim: (r.dkim.results ?? []).map((d) => ({ result: d.status.result, domain: d.signingDomain })),
    dmarc,
    arc: arcResults(r.arc),
    authenticationResults: fieldOf(r.headers, 'Authentication-Results') ?? '',
    receivedSpf: fieldOf(r.headers, 'Received-SPF'),
  };
}

/** Resolves with `p`, or with undefined after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function senderAuthenticationFilter(o: SenderAuthFilterOptions): MessageOnlyFilter {
  const name = o.name ?? 'sender-authentication';
  return {
    name,
    antiSpam: true,
    kind: SENDER_AUTHENTICATION_KIND,
    // A failure of the filter itself (a bug, the overall timeout) follows tempErrorAction at
    // end(); this is only for a filter that could not even start.
    onFailure: 'tempfail',
    begin(ctx: FilterContext): MessageFilterSession {
      const cfg = o.config();
      // Set-SenderIdConfig's bypass lists: no check, no Authentication-Results.
      const bypass = contentFilterBypass({ bypassedSenders: [], bypassedSenderDomains: cfg.bypassedSenderDomains, bypassedRecipients: cfg.bypassedRecipients }, ctx.sender, ctx.recipients);
      if (bypass) {
        return { header() {}, body() {}, abort() {}, end: async () => ({ filter: name, verdict: 'accept', headers: [], reason: `not checked: ${bypass} (senderAuthentication)` }) };
      }
      const dns = budgeted(o.resolver, o.lookupBudget());
      // Small buffer: the writer waits for mailauth to consume (bounded memory for large mail).
      const input = new PassThrough({ highWaterMark: 64 * 1024 });
      const started = Date.now();
      const check = (ip: string, helo: string) =>
        authenticate(input, {
          ip,
          helo,
          sender: ctx.sender ? formatAddress(ctx.sender) : '',
          mta: ctx.fqdn,
          resolver: mailauthResolver(dns),
          minBitLength: cfg.minBitLength,
          disableBimi: true,
        }).then(
          (r) => ({ ok: true as const, r }),
          (e: unknown) => ({ ok: false as const, error: e instanceof Error ? e.message : String(e) }),
        );
      // From one of the organisation's own relays the host before it is only known from the
      // Received fields: the checks start at the end of the header instead of now.
      const internal = o.internalServers?.() ?? [];
      let result = isInternalServer(ctx.clientIP, internal) ? null : check(ctx.clientIP, ctx.helo);
      let judgedFor = '';
      const write = (chunk: Buffer): Promise<void> | void => {
        if (input.destroyed || input.writableEnded) return;
        if (!input.write(chunk)) return drained(input);
      };
      const failed = (why: string): FilterOutcome => {
        // The checks could not finish: a temporary failure, as tempErrorAction says.
        const temp = cfg.tempErrorAction === 'tempfail';
        return temp
          ? { filter: name, verdict: 'tempfail', headers: [], reason: `${why}; tempErrorAction tempfail` }
          : { filter: name, verdict: 'accept', headers: [{ op: 'add', name: 'Authentication-Results', value: `${ctx.fqdn}; auth=temperror (${why.replace(/[()\\]/g, ' ')})`, top: true }], reason: `${why}; tempErrorAction accept` };
      };
      return {
        async header(fields: readonly HeaderField[]) {
          if (!result) {
            const origin = originatingClient(ctx.clientIP, fields.filter((f) => f.name === 'received').map(fieldValue), internal);
            if (origin.kind === 'received') {
              judgedFor = `; SPF judged for ${origin.ip}, which handed the message to internal server ${ctx.clientIP}${origin.hops > 1 ? ` (${origin.hops} Received fields down)` : ''}`;
              result = check(origin.ip, origin.helo ?? ctx.helo);
            } else {
              judgedFor = `; SPF judged for internal server ${ctx.clientIP}: ${origin.kind === 'unknown' ? origin.why : 'no Received field'}`;
              result = check(ctx.clientIP, ctx.helo);
            }
          }
          for (const f of fields) await write(f.raw);
          await write(CRLF);
        },
        body(chunk: Buffer) {
          return write(chunk) ?? undefined;
        },
        async end(): Promise<FilterOutcome> {
          result ??= check(ctx.clientIP, ctx.helo);
          input.end();
          const left = Math.max(0, cfg.timeout - (Date.now() - started));
          const got = await within(result, left);
          if (!got) {
            input.destroy();
            return failed(`SPF/DKIM/DMARC checks did not finish within ${cfg.timeout} ms`);
          }
          if (!got.ok) return failed(`sender authentication failed: ${got.error}`);
          const outcome = senderAuthenticationOutcome(cfg, authResults(got.r), name);
          return { ...outcome, reason: `${outcome.reason} (${dns.used()} DNS lookups, ${Date.now() - started} ms)${judgedFor}` };
        },
        abort() {
          input.destroy(new Error('message abandoned'));
        },
      };
    },
  };
}
