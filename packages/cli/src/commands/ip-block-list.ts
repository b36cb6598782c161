// mailgw ip-block-list [list|add|remove] and mailgw reputation <ip>: the IP Block List in the
// queue's Redis (Exchange Get-/Add-/Remove-IPBlockListEntry), which every listener of the
// gateway reads within a second, and a sender's reputation profile and level (Exchange has no
// cmdlet for it; admins asked). Thin: the store is @mailgw/antispam's, the judgement the policy's.
import { formatDuration, formatIssue, parseDuration, parseIp } from '@mailgw/config';
import { SenderReputation, type ReputationRedis } from '@mailgw/antispam';
import { ipBlockListEntryFor, type IpBlockListEntry } from '@mailgw/policy';
import { connectRedis, IpBlockListStore, keySpace, type IpBlockListRedis } from '@mailgw/queue';
import { loadPolicy, type PathOptions } from '../load-policy.js';
import { commandRedis } from '../redis-messages.js';

export interface IpBlockListOptions extends PathOptions {
  for?: string | undefined;
  comment?: string | undefined;
  json?: boolean | undefined;
  /** mailgw reputation: forget the profile. */
  reset?: boolean | undefined;
}

export interface IpBlockListIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  readonly now?: number;
}

type Opened = { ok: true; redis: ReturnType<typeof connectRedis>; store: IpBlockListStore; reputation: SenderReputation } | { ok: false; code: number };

async function open(command: string, opts: PathOptions, io: IpBlockListIO): Promise<Opened> {
  const fail = (code: number, why: string): Opened => {
    io.stderr.write(`mailgw ${command}: ${why}\n`);
    return { ok: false, code };
  };
  const loaded = loadPolicy(opts, io.env);
  if (!loaded.ok) return fail(1, `the configuration has errors:\n${loaded.errors.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
  const g = loaded.policy.config.gateway;
  const r = await commandRedis(command, io.env, g, loaded.dataDir);
  if (!r.ok) return fail(1, r.why);
  const redis = r.redis;
  const keys = keySpace(g.redis.prefix);
  const store = new IpBlockListStore(redis as IpBlockListRedis, keys);
  const policy = loaded.policy;
  const reputation = new SenderReputation({ redis: redis as unknown as ReputationRedis, keys, blockList: store, policy: () => policy, ...(io.now !== undefined ? { now: () => io.now! } : {}) });
  return { ok: true, redis, store, reputation };
}

const when = (ms: number | null) => (ms === null ? 'never' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'));

function printEntries(out: NodeJS.WritableStream, entries: readonly IpBlockListEntry[]): void {
  if (entries.length === 0) {
    out.write('The IP Block List is empty.\n');
    return;
  }
  const rows = entries.map((e) => [e.range, e.kind === 'machine' ? 'sender reputation' : 'admin', when(e.addedAt), when(e.expiresAt), e.comment]);
  const head = ['RANGE', 'ADDED BY', 'ADDED', 'EXPIRES', 'COMMENT'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`;
  out.write(line(head));
  for (const r of rows) out.write(line(r));
}

export async function runIpBlockList(sub: string | undefined, args: readonly string[], opts: IpBlockListOptions, io: IpBlockListIO): Promise<number> {
  const usage = (why: string) => {
    io.stderr.write(`mailgw ip-block-list: ${why}\n`);
    return 2;
  };
  const action = sub ?? 'list';
  if (!['list', 'add', 'remove'].includes(action)) return usage(`unknown subcommand "${action}" (list, add, remove)`);
  if (action !== 'list' && args.length !== 1) return usage(`${action} takes one address or range, e.g. 192.0.2.7 or 198.51.100.0/24`);
  let forMs: number | null = null;
  if (opts.for !== undefined) {
    if (action !== 'add') return usage('--for goes with add');
    const d = parseDuration(opts.for);
    if (!d.ok || d.value <= 0) return usage(`--for "${opts.for}" is not a duration like 24h or 7d`);
    forMs = d.value;
  }
  if (opts.comment !== undefined && action !== 'add') return usage('--comment goes with add');
  const o = await open('ip-block-list', opts, io);
  if (!o.ok) return o.code;
  try {
    const now = io.now ?? Date.now();
    if (action === 'list') {
      const entries = await o.store.list(now);
      if (opts.json) io.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
      else printEntries(io.stdout, entries);
      return 0;
    }
    if (action === 'add') {
      let entry: IpBlockListEntry;
      try {
        entry = await o.store.add({ range: args[0]!, kind: 'static', expiresAt: forMs === null ? null : now + forMs, comment: opts.comment ?? '', now });
      } catch (e) {
        return usage(`"${args[0]}" is not an address or range: ${(e as Error).message}`);
      }
      io.stdout.write(`${entry.range} is on the IP Block List ${entry.expiresAt === null ? 'until removed' : `for ${formatDuration(forMs!)} (until ${when(entry.expiresAt)})`}: every listener refuses it at RCPT within a second.\n`);
      return 0;
    }
    const removed = await o.store.remove(args[0]!);
    if (!removed) {
      io.stderr.write(`mailgw ip-block-list: ${args[0]} is not an entry of the IP Block List (see mailgw ip-block-list list)\n`);
      return 1;
    }
    io.stdout.write(`${args[0]} is off the IP Block List.\n`);
    return 0;
  } catch (e) {
    io.stderr.write(`mailgw ip-block-list: ${(e as Error).message}\n`);
    return 1;
  } finally {
    o.redis.disconnect();
  }
}

export async function runReputation(args: readonly string[], opts: IpBlockListOptions, io: IpBlockListIO): Promise<number> {
  const ip = args.length === 1 ? parseIp(args[0]!) : null;
  if (!ip || !ip.ok) {
    io.stderr.write(`mailgw reputation: give one IP address, e.g. mailgw reputation 192.0.2.7\n`);
    return 2;
  }
  const o = await open('reputation', opts, io);
  if (!o.ok) return o.code;
  try {
    if (opts.reset) {
      const r = await o.reputation.reset(ip.value);
      io.stdout.write(r.existed ? `The profile of ${r.subject} is forgotten: it is rated afresh from its next message (an IP Block List entry stays: mailgw ip-block-list remove).\n` : `${r.subject} has no profile: nothing to forget.\n`);
      return 0;
    }
    const now = io.now ?? Date.now();
    const [r, entries] = await Promise.all([o.reputation.profile(ip.value), o.store.list(now)]);
    const blocked = ipBlockListEntryFor(entries, ip.value, now);
    if (opts.json) {
      io.stdout.write(`${JSON.stringify({ subject: r.subject, profile: r.profile, srl: r.verdict.level.srl, parts: r.verdict.level.parts, reason: r.verdict.reason, blocked }, null, 2)}\n`);
      return 0;
    }
    const p = r.profile;
    io.stdout.write(`Sender ${r.subject}\n`);
    io.stdout.write(`  messages ${p.messages}, spam ${p.spam}, recipients ${p.recipients}, unknown recipients ${p.unknownRecipients}, HELO not its own ${p.heloLiteralMismatch + p.heloLocalName} (${p.heloLiteralMismatch} another address, ${p.heloLocalName} this organisation's name), ${p.heloNames} HELO names, reverse DNS ${p.reverseDns}\n`);
    io.stdout.write(`  ${r.verdict.reason}\n`);
    for (const part of r.verdict.level.parts) io.stdout.write(`    ${part.signal.padEnd(12)} +${part.points}  ${part.detail}\n`);
    io.stdout.write(blocked ? `  On the IP Block List: ${blocked.range} (${blocked.kind === 'machine' ? 'sender reputation' : 'admin'}), until ${when(blocked.expiresAt)}\n` : '  Not on the IP Block List.\n');
    return 0;
  } catch (e) {
    io.stderr.write(`mailgw reputation: ${(e as Error).message}\n`);
    return 1;
  } finally {
    o.redis.disconnect();
  }
}
