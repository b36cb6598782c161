// mailgw queue list|status|show|messages|retry|suspend|resume|remove|resubmit|export: the queue
// as Exchange's Queue Viewer and Get-Queue/Get-Message/Retry-Queue/Suspend-Queue/Suspend-Message/
// Remove-Message show and change it (message-level work in queue-messages.ts), against the
// shared Redis (REDIS_URL, redis.url, or a running `mailgw start`'s own redis-server), from any
// machine with the gateway's configuration.
import { formatAddress, readableAddress, replayEnvelopeFields } from '@mailgw/mail';
import path from 'node:path';
import { formatIssue } from '@mailgw/config';
import { loadConfig } from '@mailgw/config/load';
import { QueueAdmin, queueRedisUrl, searchTracking, type HopRow, type MessageView, type RetryResult, type ShardsView } from '@mailgw/ops';
import { isQueueId, trackingDir } from '@mailgw/queue';
import { cannotReachRedis } from '../redis-messages.js';
import { hasMessageFilter, isEmptyFilter, messageJson, messagesText, pagingArgv, parseFilter, parseLimit, runBulk, type FilterOptions } from './queue-messages.js';
import { configPaths, type PathOptions } from '../load-policy.js';
import { QUEUE_USAGE } from '../usage.js';

export interface QueueOptions extends PathOptions, FilterOptions {
  readonly json?: boolean | undefined;
  /** retry: list each retried and skipped message, not only the counts. */
  readonly verbose?: boolean | undefined;
  readonly hop?: string | undefined;
  readonly all?: boolean | undefined;
  readonly 'with-ndr'?: boolean | undefined;
  /** messages: rows shown (default 1000). */
  readonly limit?: string | undefined;
  /** messages: the page after this queue id. */
  readonly after?: string | undefined;
  /** Bulk actions: no confirmation. */
  readonly yes?: boolean | undefined;
  /** resubmit: a poison message whose delivery state cannot be read starts over. */
  readonly 'reset-state'?: boolean | undefined;
  /** export: X-Sender and X-Receiver fields first (Exchange's Replay format), for the pickup directory. */
  readonly replay?: boolean | undefined;
}

export interface QueueIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /** For confirmations; absent or not a TTY: filtered bulk actions need --yes. */
  readonly stdin?: (NodeJS.ReadableStream & { isTTY?: boolean }) | undefined;
}


const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

function relative(ms: number | null, now: number): string {
  if (ms === null) return 'in progress';
  const s = Math.floor((ms - now) / 1000);
  if (s <= 0) return 'now';
  return s < 60 ? `in ${s}s` : s < 3600 ? `in ${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}` : `in ${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** Left-aligned columns, the last one unpadded. */
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

function listText(rows: readonly HopRow[], poison: number, now: number): string {
  if (rows.length === 0 && poison === 0) return 'No mail queued.\n';
  const body = table(
    ['NEXT HOP', 'CONNECTOR', 'STATUS', 'MSGS', 'RCPTS', 'OLDEST', 'NEXT RETRY', 'LAST ERROR'],
    rows.map((r) => [r.hop, r.connector ?? '-', r.status, String(r.messages), String(r.recipients), iso(r.oldest), r.status === 'Suspended' ? 'suspended' : relative(r.nextRetry, now), r.lastError ?? '']),
  );
  return body + (poison > 0 ? `\n${poison} poison message${poison === 1 ? '' : 's'} (failed jobs): see them with mailgw queue show <id>, retry with mailgw queue retry <id>\n` : '');
}

export function showText(m: MessageView, events: ReadonlyArray<Record<string, unknown>>, now: number): string {
  const j = m.job;
  const out: string[] = [`Queue ID:     ${m.id}`, `State:        ${m.state}${m.nextAttemptAt !== null ? ` (next attempt ${relative(m.nextAttemptAt, now)}, ${iso(m.nextAttemptAt)})` : ''}`];
  if (m.failedReason) out.push(`Failed:       ${m.failedReason}`);
  if (!j) return [...out, 'The job data is not a valid delivery job.', ''].join('\n');
  out.push(
    `Message-ID:   ${j.messageId}`,
    `Received:     ${j.receivedAt} on connector ${j.connector} from ${j.clientHostname}${j.clientHostname === `[${j.clientIP}]` ? '' : ` [${j.clientIP}]`} (HELO ${j.helo}${j.tls ? `, ${j.tls.protocol}` : ''}${j.authUser ? `, AUTH ${j.authUser}` : ''})`,
    `Sender:       <${readableAddress(j.mailFrom.address)}>${j.mailFrom.body && j.mailFrom.body !== '7BIT' ? ` BODY=${j.mailFrom.body}` : ''}${j.mailFrom.smtpUtf8 ? ' SMTPUTF8' : ''}${j.mailFrom.ret ? ` RET=${j.mailFrom.ret}` : ''}${j.mailFrom.envid ? ` ENVID=${j.mailFrom.envid}` : ''}`,
    `Size:         ${j.size} bytes`,
    `Deferrals:    ${m.deferrals}`,
    'Recipients:',
  );
  out.push(
    table(
      ['  ADDRESS', 'STATUS', 'ATTEMPTS', 'NEXT HOP', 'LAST REPLY'],
      m.recipients.map((r) => [`  ${readableAddress(r.address)}`, r.status, String(r.attempts), r.hop ? `${r.hop}${r.suspended ? ' (suspended)' : ''}` : r.remoteMta ? `via ${r.remoteMta}` : '-', r.lastReply ?? '-']),
    ).trimEnd(),
  );
  if (m.hopTls.length > 0) {
    // Which TLS policy decided each next hop's last attempt, and why (DANE, MTA-STS, connector, opportunistic).
    out.push('TLS policy (last attempt per next hop):');
    for (const t of m.hopTls) {
      out.push(`  ${t.hop}: ${t.policy}${t.host ? ` (${t.host})` : ''}, ${iso(t.at)}`, `    ${t.detail}`, `    why: ${t.reason}`);
    }
  }
  out.push('Tracking:');
  if (events.length === 0) out.push('  (no events in this machine\'s tracking log)');
  for (const e of events) {
    const rcpts = Array.isArray(e.recipientAddress) ? (e.recipientAddress as string[]).map(readableAddress).join(', ') : '';
    const status = Array.isArray(e.recipientStatus) ? ` ${(e.recipientStatus as string[])[0] ?? ''}` : '';
    out.push(`  ${String(e.dateTime)}  ${String(e.eventId).padEnd(7)} ${String(e.source ?? '').padEnd(11)} ${rcpts}${status}${e.reference ? ` -> ${String(e.reference)}` : ''}`);
  }
  return out.join('\n') + '\n';
}

/**
 * `queue show --json`: the message view as stored, addresses in A-labels (what the job, the
 * tracking log and the `--sender`/`--recipient` filters carry, ASCII for every consumer), plus
 * `readableSender` and each recipient's `readableAddress` in U-labels (what `queue show` prints),
 * so a script that displays addresses needs no IDNA of its own. Always present, equal to the
 * address when it has no IDN domain.
 */
export function showJson(m: MessageView, tracking: ReadonlyArray<Record<string, unknown>>): Record<string, unknown> {
  return {
    ...m,
    ...(m.job ? { readableSender: readableAddress(m.job.mailFrom.address) } : {}),
    recipients: m.recipients.map((r) => ({ ...r, readableAddress: readableAddress(r.address) })),
    tracking,
  };
}

/** `queue status`: shard → prefix → slot → master → messages, the masters' shares, the placement warnings. */
export function statusText(v: ShardsView): string {
  const body = table(
    ['SHARD', 'PREFIX', 'SLOT', 'MASTER', 'MESSAGES'],
    v.shards.map((s) => [String(s.index), s.prefix, String(s.slot), v.cluster ? `${s.master || '(no master)'}${s.moved ? ` (placed on ${s.addr})` : ''}` : '-', String(s.messages)]),
  );
  const head = v.cluster
    ? `${v.shards.length} queue shards on a Redis Cluster of ${v.masters.length} masters (placement stored in Redis):\n`
    : `${v.shards.length} queue shard${v.shards.length === 1 ? '' : 's'} on one Redis (no cluster: no placement):\n`;
  const masters = v.cluster ? `\n${v.masters.map((m) => `master ${m.addr}: ${m.shards.length === 0 ? 'no shard' : `shard${m.shards.length === 1 ? '' : 's'} ${m.shards.join(', ')}`}`).join('\n')}\n` : '';
  return head + body + masters + v.warnings.map((w) => `warning: ${w}\n`).join('');
}

const messages = (n: number) => `${n} message${n === 1 ? '' : 's'}`;

/**
 * `retry <id>` names the message; `--hop` and `--all` (hundreds of messages, maybe) print counts,
 * the skipped ones grouped by why; `verbose` lists every id, one per line.
 */
export function retryText(r: RetryResult, opts: { one: boolean; verbose: boolean }): string {
  if (opts.one) {
    return `retried ${messages(r.retried.length)}${r.retried.length ? `: ${r.retried.join(' ')}` : ''}\n` + r.skipped.map((s) => `  ${s.id}: ${s.why}\n`).join('');
  }
  if (opts.verbose) {
    return (
      `retried ${messages(r.retried.length)}, skipped ${r.skipped.length}\n` +
      r.retried.map((id) => `  ${id}  retried\n`).join('') +
      r.skipped.map((s) => `  ${s.id}  skipped: ${s.why}\n`).join('')
    );
  }
  const why = new Map<string, number>();
  for (const s of r.skipped) why.set(s.why, (why.get(s.why) ?? 0) + 1);
  const reasons = [...why].map(([w, n]) => `${n} ${w}`).join('; ');
  return `retried ${messages(r.retried.length)}, skipped ${r.skipped.length}${reasons ? ` (${reasons}); --verbose lists them` : ''}\n`;
}

export async function runQueue(sub: string | undefined, args: readonly string[], opts: QueueOptions, io: QueueIO): Promise<number> {
  const usage = (why: string) => {
    io.stderr.write(`mailgw queue: ${why}\n\n${QUEUE_USAGE}`);
    return 2;
  };
  const needs = (n: number, what: string) => (args.length === n ? null : usage(`${sub} takes ${what}`));
  const parsed = parseFilter(opts);
  if (!parsed.ok) return usage(parsed.error);
  const filter = parsed.filter;
  const filtered = !isEmptyFilter(filter);
  const limit = parseLimit(opts.limit);
  if (limit === null) return usage(`--limit "${opts.limit}" is not a positive whole number`);
  if (opts.after !== undefined && sub !== 'messages') return usage('--after pages `queue messages` only');
  if (opts.after !== undefined && !isQueueId(opts.after.toUpperCase())) return usage(`--after "${opts.after}" is not a queue id (26 characters, as queue messages prints them)`);
  const after = opts.after?.toUpperCase();
  /** remove/suspend/resume/retry over messages: named by queue id, or selected by filters. */
  let bulk: { ids: readonly string[] } | { filter: typeof filter } | null = null;
  switch (sub) {
    case 'list':
    case 'status':
      if (args.length) return usage(`${sub} takes no arguments`);
      break;
    case 'messages':
      if (args.length) return usage('messages takes filters (--sender, --recipient, --hop, --status, --older-than, --subject), no arguments');
      break;
    case 'show':
    case 'export':
    case 'resubmit': {
      const bad = needs(1, 'one queue id');
      if (bad !== null) return bad;
      break;
    }
    case 'remove': {
      if (filtered && args.length === 0) bulk = { filter };
      else if (filtered || args.length !== 1) return usage('remove takes one queue id, or filters (--sender, --recipient, --hop, --status, --older-than, --subject)');
      break;
    }
    case 'suspend':
    case 'resume': {
      // A queue id names a message (Suspend-Message); anything else is a next hop (Suspend-Queue).
      if (filtered && args.length === 0) bulk = { filter };
      else if (filtered || args.length !== 1) return usage(`${sub} takes one next hop (as \`mailgw queue list\` shows it), one queue id, or message filters (--sender, --recipient, --hop, --status, --older-than, --subject)`);
      else if (isQueueId(args[0])) bulk = { ids: [args[0]!] };
      break;
    }
    case 'retry': {
      if (hasMessageFilter(filter)) {
        if (args.length > 0 || opts.all === true) return usage('retry takes one queue id, or --hop H, or --all, or message filters');
        bulk = { filter };
        break;
      }
      const given = [args.length > 0, opts.hop !== undefined, opts.all === true].filter(Boolean).length;
      if (given !== 1 || args.length > 1) return usage('retry takes one queue id, or --hop H, or --all, or message filters');
      break;
    }
    default:
      return usage(sub ? `unknown subcommand "${sub}"` : 'give a subcommand');
  }

  // Hop keys never contain a password: the queue admin works without the smarthosts' secrets.
  const loaded = loadConfig({ ...configPaths(opts), env: io.env, secrets: 'unresolved' });
  if (!loaded.ok) {
    io.stderr.write(`mailgw queue: the configuration has ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}:\n`);
    for (const i of loaded.errors) io.stderr.write(`  ${formatIssue(i)}\n`);
    return 1;
  }
  const gateway = loaded.config.gateway;
  const dataDir = loaded.dataDir!;
  const url = queueRedisUrl(io.env, gateway, dataDir);
  if (!url) {
    io.stderr.write('mailgw queue: no Redis to look at: set REDIS_URL or redis.url in gateway.yaml (or run this where `mailgw start` runs its own)\n');
    return 1;
  }
  let admin: QueueAdmin;
  try {
    admin = await QueueAdmin.open({ redisUrl: url, gateway, dataDir });
  } catch (e) {
    io.stderr.write(`mailgw queue: ${cannotReachRedis(url, e)}\n`);
    return 1;
  }
  const out = (s: string) => io.stdout.write(s);
  const now = Date.now();
  try {
    if (bulk !== null && (sub === 'remove' || sub === 'suspend' || sub === 'resume' || sub === 'retry')) {
      return await runBulk(admin, sub, bulk, { yes: opts.yes === true, withNdr: opts['with-ndr'] === true, verbose: opts.verbose === true, json: opts.json === true }, io);
    }
    switch (sub) {
      case 'messages': {
        const r = await admin.select(filter, { limit, now, ...(after ? { after } : {}) });
        const next = r.remaining > r.rows.length && r.rows.length > 0 ? r.rows[r.rows.length - 1]!.id : null;
        out(opts.json ? `${JSON.stringify({ matched: r.matched, remaining: r.remaining, limit, after: after ?? null, next, messages: r.rows.map(messageJson) }, null, 2)}\n` : messagesText(r, now, { after: after ?? null, next, argv: pagingArgv(opts) }));
        return 0;
      }
      case 'resubmit': {
        const r = await admin.resubmit(args[0]!, { resetState: opts['reset-state'] === true });
        if (!r.ok) {
          io.stderr.write(`mailgw queue: ${r.id}: ${r.why}\n`);
          return 1;
        }
        out(`resubmitted ${r.id}${r.reset ? ' with every recipient pending (its delivery state was reset)' : ''}: a worker tries it now\n`);
        return 0;
      }
      case 'list': {
        const { rows, poison } = await admin.hops(now);
        out(opts.json ? `${JSON.stringify({ hops: rows, poison, counts: await admin.counts() }, null, 2)}\n` : listText(rows, poison, now));
        return 0;
      }
      case 'status': {
        const v = await admin.shards();
        out(opts.json ? `${JSON.stringify(v, null, 2)}\n` : statusText(v));
        return 0;
      }
      case 'show': {
        const m = await admin.message(args[0]!, now);
        if (!m) {
          io.stderr.write(`mailgw queue: no message ${args[0]} in the queue\n`);
          return 1;
        }
        const tracking = await searchTracking(trackingDir(path.resolve(dataDir)), { queueId: m.id });
        out(opts.json ? `${JSON.stringify(showJson(m, tracking), null, 2)}\n` : showText(m, tracking, now));
        return 0;
      }
      case 'export': {
        const body = await admin.body(args[0]!);
        if (!body) {
          io.stderr.write(`mailgw queue: no message body for ${args[0]} (unknown, or already delivered)\n`);
          return 1;
        }
        let envelope: Buffer = Buffer.alloc(0);
        if (opts.replay) {
          // Exchange's Export-Message for its Replay directory: the envelope of the recipients
          // still pending, so that the file dropped into a pickup directory is sent to them again.
          const m = await admin.message(args[0]!, now);
          const pending = m?.recipients.filter((r) => r.status === 'pending') ?? [];
          if (!m?.job || pending.length === 0) {
            io.stderr.write(`mailgw queue: ${args[0]} has no recipient left to deliver to: nothing to send again (without --replay, the message alone)\n`);
            return 1;
          }
          const waiting = new Set(pending.map((r) => r.address));
          const f = m.job.mailFrom;
          envelope = replayEnvelopeFields({ sender: f.sender ? formatAddress(f.sender) : '', ret: f.ret, envid: f.envid, recipients: m.job.rcptTo.filter((r) => waiting.has(formatAddress(r))).map((r) => ({ address: formatAddress(r), notify: r.notify, orcpt: r.orcpt })) });
        }
        const whole = envelope.length > 0 ? Buffer.concat([envelope, body]) : body;
        await new Promise<void>((resolve, reject) => io.stdout.write(whole, (err) => (err ? reject(err) : resolve())));
        return 0;
      }
      case 'retry': {
        const r = await admin.retry(opts.all ? { all: true } : opts.hop !== undefined ? { hop: opts.hop } : { id: args[0]! });
        if (opts.json) out(`${JSON.stringify({ retried: r.retried, skipped: r.skipped }, null, 2)}\n`);
        else out(retryText(r, { one: args.length > 0, verbose: opts.verbose === true }));
        if (opts.hop !== undefined && (await admin.suspended()).includes(opts.hop)) out(`note: ${opts.hop} is suspended; its messages wait until mailgw queue resume ${opts.hop}\n`);
        return args.length > 0 && r.retried.length === 0 ? 1 : 0;
      }
      case 'suspend': {
        const fresh = await admin.suspend(args[0]!);
        out(fresh ? `suspended ${args[0]}: its messages stay queued and are not attempted until mailgw queue resume\n` : `${args[0]} was already suspended\n`);
        if (!(await admin.hops(now)).rows.some((r) => r.hop === args[0] && r.messages > 0)) out(`note: no queued message uses ${args[0]} now (mailgw queue list shows the hops)\n`);
        return 0;
      }
      case 'resume': {
        const r = await admin.resume(args[0]!);
        out(r.wasSuspended ? `resumed ${args[0]}; retried ${r.retried.retried.length} message${r.retried.retried.length === 1 ? '' : 's'} now\n` : `${args[0]} was not suspended\n`);
        return 0;
      }
      case 'remove': {
        const r = await admin.remove(args[0]!, { withNdr: opts['with-ndr'] === true });
        if (!r.ok) {
          io.stderr.write(`mailgw queue: ${r.id}: ${r.why}\n`);
          return 1;
        }
        const ndr = opts['with-ndr'] ? (r.ndr ? `; NDR ${r.ndr} queued for ${r.ndrRecipients.join(', ')}` : r.ndrWithheld ? `; no NDR: the sender's ${r.ndrWithheld}` : '; no NDR is due (null sender, NOTIFY, or nothing pending)') : '';
        out(`removed ${r.id} (${r.pending} recipient${r.pending === 1 ? '' : 's'} still pending)${ndr}\n`);
        return 0;
      }
    }
    return 2;
  } catch (e) {
    io.stderr.write(`mailgw queue ${sub}: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await admin.close();
  }
}
