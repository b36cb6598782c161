// mailgw recipient-limit <user | DN> [--reset] [--json]: throttlingPolicy.recipientRateLimit by
// hand: how many recipients a user addressed in the last 24 hours (the counter every listener
// shares in Redis), its limit and when the next one is allowed; --reset clears the counter (a
// compromised account cleaned up, a legitimate mailing). Thin: the key and the limit are the
// policy's recipientRateSubject.
import { formatIssue } from '@mailgw/config';
import { RECIPIENT_RATE_WINDOW_MS, recipientRateSubject } from '@mailgw/policy';
import { keySpace } from '@mailgw/queue';
import { loadPolicy, type PathOptions } from '../load-policy.js';
import { commandRedis } from '../redis-messages.js';

export interface RecipientLimitOptions extends PathOptions {
  reset?: boolean | undefined;
  json?: boolean | undefined;
}

export interface RecipientLimitIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  readonly now?: number;
}

const when = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export async function runRecipientLimit(args: readonly string[], opts: RecipientLimitOptions, io: RecipientLimitIO): Promise<number> {
  const fail = (code: number, why: string) => {
    io.stderr.write(`mailgw recipient-limit: ${why}\n`);
    return code;
  };
  if (args.length !== 1 || args[0]!.trim() === '') return fail(2, 'give one user: a local user\'s name (alice) or a directory user\'s DN (CN=Alice,OU=Staff,DC=contoso,DC=com)');
  const loaded = loadPolicy(opts, io.env);
  if (!loaded.ok) return fail(1, `the configuration has errors:\n${loaded.errors.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
  const policy = loaded.policy;
  const arg = args[0]!.trim();
  // A DN has an "=" (CN=…); a login name does not.
  const who = arg.includes('=') ? { dn: arg } : { name: arg };
  const subject = recipientRateSubject(policy, who);
  const label = 'dn' in who ? `directory user ${who.dn}` : policy.users.has(who.name.toLowerCase()) ? `user ${who.name}` : `${who.name} (not a local user: a directory user is counted by its DN)`;
  const r = await commandRedis('recipient-limit', io.env, policy.config.gateway, loaded.dataDir);
  if (!r.ok) return fail(1, r.why);
  const redis = r.redis;
  try {
    const key = keySpace(policy.config.gateway.redis.prefix).rateCounter(encodeURIComponent(subject.key));
    const now = io.now ?? Date.now();
    if (opts.reset) {
      const had = await redis.zcount(key, now - RECIPIENT_RATE_WINDOW_MS, '+inf');
      await redis.del(key);
      if (opts.json) io.stdout.write(`${JSON.stringify({ key: subject.key, reset: true, had })}\n`);
      else io.stdout.write(`${label}: the counter is cleared (${had} recipient${had === 1 ? '' : 's'} in the last 24 hours forgotten); every listener counts from 0 at the next RCPT.\n`);
      return 0;
    }
    const count = await redis.zcount(key, now - RECIPIENT_RATE_WINDOW_MS, '+inf');
    const oldest = count > 0 ? await redis.zrangebyscore(key, now - RECIPIENT_RATE_WINDOW_MS, '+inf', 'WITHSCORES', 'LIMIT', 0, 1) : [];
    const oldestAt = oldest.length === 2 ? Number(oldest[1]) : null;
    const limited = subject.limit !== null && count >= subject.limit;
    const source = subject.from === 'user' ? 'its own recipientRateLimit' : 'throttlingPolicy.recipientRateLimit';
    if (opts.json) {
      io.stdout.write(`${JSON.stringify({ key: subject.key, limit: subject.limit, from: subject.from, recipients: count, limited, nextAllowedAt: limited && oldestAt !== null ? oldestAt + RECIPIENT_RATE_WINDOW_MS : null })}\n`);
      return 0;
    }
    if (subject.limit === null) io.stdout.write(`${label}: not counted (${source} is unlimited).\n`);
    else {
      io.stdout.write(`${label}: ${count} of ${subject.limit} recipients in the last 24 hours (${source}).\n`);
      if (limited && oldestAt !== null) io.stdout.write(`  limited: RCPT gets 550 5.1.90 until ${when(oldestAt + RECIPIENT_RATE_WINDOW_MS)} (or mailgw recipient-limit ${arg} --reset)\n`);
    }
    return 0;
  } finally {
    redis.disconnect();
  }
}
