// Message-level queue work for `mailgw queue`: `messages` (Exchange's Get-Message), the same
// filters on remove/suspend/resume/retry (Remove-, Suspend-, Resume-, Retry-Message; Postfix's
// postsuper -d/-h/-H), with a count and a confirmation, and `resubmit` for poison messages.
import { readableAddress } from '@mailgw/mail';
import { parseDuration } from '@mailgw/config';
import { confirmation, isEmptyFilter, parseStatus, type BulkResult, type MessageFilter, type MessageRow, type QueueAdmin } from '@mailgw/ops';

/** The filter options of the command line. */
export interface FilterOptions {
  readonly sender?: string | undefined;
  readonly recipient?: string | undefined;
  readonly hop?: string | undefined;
  readonly status?: string | undefined;
  readonly 'older-than'?: string | undefined;
  readonly subject?: string | undefined;
}

export type ParsedFilter = { readonly ok: true; readonly filter: MessageFilter } | { readonly ok: false; readonly error: string };

export function parseFilter(o: FilterOptions): ParsedFilter {
  const status = parseStatus(o.status);
  if (!status.ok) return status;
  let olderThanMs: number | undefined;
  if (o['older-than'] !== undefined) {
    const d = parseDuration(o['older-than']);
    if (!d.ok) return { ok: false, error: `--older-than: ${d.error}` };
    olderThanMs = d.value;
  }
  for (const [k, v] of [['sender', o.sender], ['recipient', o.recipient], ['hop', o.hop], ['subject', o.subject]] as const) {
    if (v !== undefined && v.trim() === '') return { ok: false, error: `--${k} is empty` };
  }
  return { ok: true, filter: { sender: o.sender, recipient: o.recipient, hop: o.hop, status: status.status, olderThanMs, subject: o.subject } };
}

/** Filters other than --hop were given (retry --hop alone keeps its older meaning: delayed messages of a hop). */
export const hasMessageFilter = (f: MessageFilter): boolean => !isEmptyFilter({ ...f, hop: undefined });

export { isEmptyFilter };

export function parseLimit(text: string | undefined): number | null {
  if (text === undefined) return DEFAULT_LIMIT;
  return /^\d{1,9}$/.test(text) && Number(text) > 0 ? Number(text) : null;
}

/** Rows `messages` prints unless --limit says otherwise (Get-Message's ResultSize is 1000 too). */
export const DEFAULT_LIMIT = 1000;

function age(ms: number | null, now: number): string {
  if (ms === null) return '-';
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600) ? `${Math.floor((s % 86_400) / 3600)}h` : ''}`;
}

function size(n: number | null): string {
  if (n === null) return '-';
  return n < 1024 ? `${n}` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)}K` : `${(n / 1024 / 1024).toFixed(1)}M`;
}

function recipients(r: readonly string[]): string {
  if (r.length === 0) return '-';
  const shown = r.map(readableAddress);
  return shown.length <= 2 ? shown.join(',') : `${shown.slice(0, 2).join(',')} +${shown.length - 2}`;
}

/** A row of `queue messages --json`: as stored (A-labels), plus the U-label forms the table shows (as `queue show --json`). */
export function messageJson(row: MessageRow): MessageRow & { readonly readableFrom: string | null; readonly readableRecipients: readonly string[] } {
  return { ...row, readableFrom: row.from === null ? null : readableAddress(row.from), readableRecipients: row.recipients.map(readableAddress) };
}

/** The filter and --limit options as typed, to repeat them in the next page's command. */
export function pagingArgv(o: FilterOptions & { readonly limit?: string | undefined }): string {
  const quote = (v: string) => (/^[A-Za-z0-9@._*+=:,/-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  const parts: string[] = [];
  for (const k of ['sender', 'recipient', 'hop', 'status', 'older-than', 'subject', 'limit'] as const) {
    const v = o[k];
    if (v !== undefined) parts.push(`--${k} ${quote(v)}`);
  }
  return parts.join(' ');
}

export interface PageInfo {
  /** The bookmark this page starts after. */
  readonly after: string | null;
  /** The bookmark of the next page (the last id shown), null on the last page. */
  readonly next: string | null;
  /** The options to repeat for the next page. */
  readonly argv: string;
}

/** Get-Message's table: one line per message, oldest first, and how to get the next page. */
export function messagesText(r: { readonly rows: readonly MessageRow[]; readonly matched: number; readonly remaining: number }, now: number, page: PageInfo = { after: null, next: null, argv: '' }): string {
  const { rows, matched } = r;
  if (matched === 0) return 'No message matches.\n';
  if (rows.length === 0) return `No message after ${page.after} (${matched} match in all; drop --after to start again).\n`;
  const head = ['QUEUE ID', 'STATUS', 'FROM', 'TO', 'SIZE', 'AGE', 'LAST ERROR'];
  const cells = rows.map((row) => [row.id, row.status, row.from === null ? '?' : `<${readableAddress(row.from)}>`, recipients(row.recipients), size(row.size), age(row.receivedAt, now), (row.lastError ?? '').replace(/\s+/g, ' ')]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join('  ').trimEnd();
  const before = matched - r.remaining;
  let more: string;
  if (page.next !== null) {
    const first = before + 1;
    more = `\n${first}-${before + rows.length} of ${matched} matching messages shown; next page: mailgw queue messages ${page.argv ? `${page.argv} ` : ''}--after ${page.next}\n`;
  } else if (before > 0) more = `\n${before + 1}-${matched} of ${matched} matching messages shown (the last page)\n`;
  else more = `\n${matched} message${matched === 1 ? '' : 's'}\n`;
  return [line(head), ...cells.map(line)].join('\n') + '\n' + more;
}

const n = (k: number) => `${k} message${k === 1 ? '' : 's'}`;

/** "suspended 3 messages, skipped 1 (1 being delivered now …)"; with verbose every id. */
export function bulkText(verb: string, r: BulkResult, verbose: boolean): string {
  const why = new Map<string, number>();
  for (const s of r.skipped) why.set(s.why, (why.get(s.why) ?? 0) + 1);
  const reasons = [...why].map(([w, k]) => `${k} ${w}`).join('; ');
  let out = `${verb} ${n(r.done.length)}${r.skipped.length ? `, skipped ${r.skipped.length} (${reasons})` : ''}\n`;
  if (verbose) out += r.done.map((id) => `  ${id}  ${verb}\n`).join('') + r.skipped.map((s) => `  ${s.id}  skipped: ${s.why}\n`).join('');
  return out;
}

export interface ConfirmIO {
  readonly stdin?: (NodeJS.ReadableStream & { isTTY?: boolean }) | undefined;
  readonly stderr: NodeJS.WritableStream;
}

/** Reads one line from an interactive stdin. */
function ask(io: ConfirmIO, question: string): Promise<string> {
  return new Promise((resolve) => {
    const stdin = io.stdin!;
    io.stderr.write(question);
    let text = '';
    const done = (answer: string) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.pause?.();
      resolve(answer);
    };
    const onData = (d: Buffer | string) => {
      text += d.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) done(text.slice(0, nl).trim());
    };
    const onEnd = () => done(text.trim());
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume?.();
  });
}

export type BulkAction = 'remove' | 'suspend' | 'resume' | 'retry';

/**
 * Selects, counts, confirms and acts. Returns the exit code: 0 done (also when nothing
 * matched), 1 refused or declined.
 */
export async function runBulk(
  admin: QueueAdmin,
  action: BulkAction,
  target: { readonly ids: readonly string[] } | { readonly filter: MessageFilter },
  opts: { readonly yes: boolean; readonly withNdr: boolean; readonly verbose: boolean; readonly json: boolean },
  io: ConfirmIO & { readonly stdout: NodeJS.WritableStream },
): Promise<number> {
  const ids = 'ids' in target ? target.ids : (await admin.select(target.filter)).ids;
  // Queue ids named one by one are what the admin means; a filter is confirmed.
  if ('filter' in target) {
    const verdict = confirmation(ids.length, { yes: opts.yes, interactive: io.stdin?.isTTY === true });
    const what = `${action}${action === 'remove' && opts.withNdr ? ' (with NDRs)' : ''}`;
    if (verdict === 'refuse') {
      io.stderr.write(`mailgw queue ${action}: ${n(ids.length)} match; not done: stdin is not a terminal, so nobody can confirm. Add --yes to ${what} them (mailgw queue messages with the same filters lists them)\n`);
      return 1;
    }
    if (verdict === 'ask') {
      const answer = await ask(io, `${n(ids.length)} match. ${what[0]!.toUpperCase()}${what.slice(1)} them? [y/N] `);
      if (!/^y(es)?$/i.test(answer)) {
        io.stderr.write(`mailgw queue ${action}: nothing done\n`);
        return 1;
      }
    }
  }
  let ndrs: readonly string[] | null = null;
  let r: BulkResult;
  if (action === 'remove') {
    const removed = await admin.removeMessages(ids, { withNdr: opts.withNdr });
    ndrs = opts.withNdr ? removed.ndrs : null;
    r = removed;
  } else r = action === 'suspend' ? await admin.suspendMessages(ids) : action === 'resume' ? await admin.resumeMessages(ids) : await admin.retryMessages(ids);
  const verb = { remove: 'removed', suspend: 'suspended', resume: 'resumed', retry: 'retried' }[action];
  if (opts.json) io.stdout.write(`${JSON.stringify({ matched: ids.length, [verb]: r.done, skipped: r.skipped, ...(ndrs ? { ndrs } : {}) }, null, 2)}\n`);
  else {
    io.stdout.write(bulkText(verb, r, opts.verbose));
    if (ndrs) io.stdout.write(`${ndrs.length} NDR${ndrs.length === 1 ? '' : 's'} queued to the senders\n`);
  }
  return r.done.length === 0 && r.skipped.length > 0 ? 1 : 0;
}
