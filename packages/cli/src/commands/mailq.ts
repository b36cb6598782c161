// `mailq` (and `sendmail -bp`): the queue in Postfix's mailq format, for the admin's fingers and
// for the monitoring that parses it (Nagios/Icinga check_mailq, Munin's postfix_mailqueue,
// scripts that grep "Mail queue is empty" or the "-- N Kbytes in M Requests." line). What
// `mailgw queue messages` shows, laid out as postqueue -p lays it out: one entry per message,
// the status after the queue id (`*` being delivered now, `!` held: suspended or poison), the
// size, the arrival time, the sender, then each recipient still to be delivered under the
// reason of its last deferral, in parentheses.
import { readableAddress } from '@mailgw/mail';
import type { MessageRow } from '@mailgw/ops';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** asctime()'s first 19 characters, in local time: "Mon Dec  7 22:00:07". */
export function arrivalTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** Postfix's status character: '*' in the active queue, '!' on hold, ' ' waiting. */
function mark(row: MessageRow): string {
  if (row.status === 'Active') return '*';
  if (row.status === 'Suspended' || row.status === 'Poison') return '!';
  return ' ';
}

/** A reason as postqueue prints it: in parentheses, wrapped to 78 columns. */
function reasonLines(text: string): string[] {
  const words = `(${text.replace(/\s+/g, ' ').trim()})`.split(' ');
  const out: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur !== '' && cur.length + 1 + w.length > 78) {
      out.push(cur);
      cur = w;
    } else cur = cur === '' ? w : `${cur} ${w}`;
  }
  if (cur !== '') out.push(cur);
  return out;
}

export function mailqText(rows: readonly MessageRow[]): string {
  if (rows.length === 0) return 'Mail queue is empty\n';
  const idWidth = Math.max(10, ...rows.map((r) => r.id.length));
  // Recipients start under the sender: id, mark, space, size (8), space, time (19), two spaces.
  const indent = ' '.repeat(idWidth + 1 + 1 + 8 + 1 + 19 + 2);
  const out: string[] = ['-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------'];
  let bytes = 0;
  for (const r of rows) {
    bytes += r.size ?? 0;
    const sender = r.from === null ? '?' : r.from === '' ? 'MAILER-DAEMON' : readableAddress(r.from);
    const when = r.receivedAt === null ? '?'.padEnd(19) : arrivalTime(r.receivedAt);
    out.push(`${r.id.padEnd(idWidth)}${mark(r)} ${String(r.size ?? 0).padStart(8)} ${when}  ${sender}`);
    // A poison message's reason is why it was set aside, for all of its recipients.
    if (r.status === 'Poison' && r.lastError) out.push(...reasonLines(r.lastError));
    // Recipients not tried yet first, then those of each reason under it (in order of appearance).
    const groups = new Map<string | null, string[]>([[null, []]]);
    for (const p of r.pending) {
      const key = r.status === 'Poison' ? null : p.reply;
      groups.set(key, [...(groups.get(key) ?? []), p.address]);
    }
    for (const [reason, addresses] of groups) {
      if (reason !== null && addresses.length > 0) out.push(...reasonLines(reason));
      for (const a of addresses) out.push(`${indent}${readableAddress(a)}`);
    }
    out.push('');
  }
  const kbytes = Math.ceil(bytes / 1024);
  out.push(`-- ${kbytes} Kbytes in ${rows.length} Request${rows.length === 1 ? '' : 's'}.`);
  return `${out.join('\n')}\n`;
}
