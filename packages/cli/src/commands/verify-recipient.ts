// mailgw verify-recipient <address>: recipient verification (gateway.yaml recipientVerification)
// by hand. Shows the answer the listeners share in Redis, asks the next hop now as a listener
// would (and keeps its answer, as a listener does), and says what RCPT would be answered; or
// forgets the cached answer (a mailbox created or deleted just now). Thin: the probe and cache are
// @mailgw/worker's RecipientVerifier, the reply the policy's verifiedRecipient.
import { formatIssue } from '@mailgw/config';
import { formatReply, parseEnvelopeAddress, recipientToVerify, verifiedRecipient, type VerificationAnswer } from '@mailgw/policy';
import { keySpace } from '@mailgw/queue';
import { PROBE_TIMEOUTS, httpsStsFetch, MtaSts, RecipientVerifier, systemResolver, type CachedVerification, type DnsResolver } from '@mailgw/worker';
import type { Redis } from 'ioredis';
import { loadPolicy, type PathOptions } from '../load-policy.js';
import { commandRedis } from '../redis-messages.js';

export interface VerifyRecipientOptions extends PathOptions {
  /** The envelope sender whose send connector the probe goes by (default: the null sender's). */
  from?: string | undefined;
  /** Only show the cached answer; do not ask the next hop. */
  cached?: boolean | undefined;
  forget?: boolean | undefined;
  json?: boolean | undefined;
}

export interface VerifyRecipientIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /** DNS for mx next hops and named smart hosts (tests); default the system's. */
  readonly resolver?: DnsResolver;
  /** Port for mx next hops (tests); default 25. */
  readonly mxPort?: number;
}

const when = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function cachedText(c: CachedVerification | null): string {
  if (!c) return 'nothing cached';
  return `${c.kind} by ${c.nextHop} at ${when(c.at)}: ${c.reply}`;
}

export async function runVerifyRecipient(args: readonly string[], opts: VerifyRecipientOptions, io: VerifyRecipientIO): Promise<number> {
  const fail = (code: number, why: string) => {
    io.stderr.write(`mailgw verify-recipient: ${why}\n`);
    return code;
  };
  if (args.length !== 1) return fail(2, 'give one address, e.g. mailgw verify-recipient alice@fabrikam.com');
  if (opts.cached && opts.forget) return fail(2, '--cached and --forget do not go together');
  const parsed = parseEnvelopeAddress(args[0]!);
  if (!parsed.ok) return fail(2, `"${args[0]}" is not an address: ${parsed.reason}`);
  let senderDomain: string | null = null;
  if (opts.from !== undefined && opts.from !== '') {
    const s = parseEnvelopeAddress(opts.from);
    if (!s.ok) return fail(2, `--from "${opts.from}" is not an address: ${s.reason}`);
    senderDomain = s.value.domain;
  }
  const loaded = loadPolicy(opts, io.env);
  if (!loaded.ok) return fail(1, `the configuration has errors:\n${loaded.errors.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
  const policy = loaded.policy;
  const g = policy.config.gateway;
  if (!g.recipientVerification) return fail(1, 'gateway.yaml has no recipientVerification: no recipient is verified');
  const address = recipientToVerify(policy, parsed.value);
  if (!address) return fail(1, `${parsed.value.domain} is not in recipientVerification.domains (${g.recipientVerification.domains.map((d) => d.text).join(', ')}): its recipients are not verified`);

  const r = await commandRedis('verify-recipient', io.env, g, loaded.dataDir);
  if (!r.ok) return fail(1, r.why);
  const redis = r.redis as Redis;
  const keys = keySpace(g.redis.prefix);
  const resolver = io.resolver ?? systemResolver();
  const verifier = new RecipientVerifier({
    settings: () => g,
    redis,
    keys,
    hops: { resolver, mxPort: io.mxPort ?? 25, timeouts: PROBE_TIMEOUTS, mtaSts: new MtaSts({ redis, prefix: keys.prefix, resolver, fetch: httpsStsFetch({ resolver }) }) },
  });
  try {
    const before = await verifier.cached(address);
    if (opts.forget) {
      const gone = await verifier.forget(address);
      if (opts.json) io.stdout.write(`${JSON.stringify({ address, forgotten: gone, cached: before })}\n`);
      else io.stdout.write(gone ? `Forgot the cached answer for <${address}> (${cachedText(before)}): the next RCPT asks the next hop.\n` : `Nothing was cached for <${address}>.\n`);
      return 0;
    }
    if (opts.cached) {
      const answer: VerificationAnswer | null = before && { ...before, cached: true };
      const rcpt = answer && verifiedRecipient(policy, parsed.value, answer);
      if (opts.json) io.stdout.write(`${JSON.stringify({ address, cached: before, rcpt: rcpt && formatReply(rcpt.reply) })}\n`);
      else io.stdout.write(`<${address}>: ${cachedText(before)}${rcpt ? `\n  RCPT would be answered ${formatReply(rcpt.reply)} from the cache` : '\n  the next RCPT asks the next hop'}\n`);
      return 0;
    }
    const learnt = await verifier.probeNow(address, senderDomain);
    const answer: VerificationAnswer = learnt.kind === 'unknown' ? learnt : { ...learnt, cached: false };
    const rcpt = verifiedRecipient(policy, parsed.value, answer);
    // What a listener does when it cannot say: a cached "yes" still serves.
    const served = learnt.kind === 'unknown' && before?.kind === 'accepted' ? verifiedRecipient(policy, parsed.value, { ...before, cached: true }) : null;
    if (opts.json) {
      io.stdout.write(`${JSON.stringify({ address, cachedBefore: before, probe: learnt, rcpt: formatReply((served ?? rcpt).reply), reason: (served ?? rcpt).reason })}\n`);
    } else {
      io.stdout.write(`<${address}>\n`);
      io.stdout.write(`  cached before: ${cachedText(before)}\n`);
      if (learnt.kind === 'unknown') io.stdout.write(`  probe: could not verify: ${learnt.why}\n`);
      else io.stdout.write(`  probe: ${learnt.nextHop} answered RCPT TO with ${learnt.reply}\n`);
      io.stdout.write(`  RCPT would be answered ${formatReply((served ?? rcpt).reply)}${served ? ' (from the cached answer)' : ''}: ${(served ?? rcpt).reason.message}\n`);
      if (learnt.kind !== 'unknown') io.stdout.write(`  cached now for ${learnt.kind === 'accepted' ? 'cacheTtl' : 'negativeCacheTtl'}\n`);
    }
    return learnt.kind === 'unknown' ? 1 : 0;
  } finally {
    verifier.close();
    redis.disconnect();
  }
}
