// The dashboard's message view (Exchange's Queue Viewer "Messages" tab): a search by sender,
// recipient, queue id and status over the queued messages (QueueAdmin.select), one line per
// message, a message's tracking history as a timeline, and, with write access, the bulk
// actions on the matching messages (the page asks before acting on more than one). Pure: the
// HTTP server reads Redis and the tracking log and hands the results in. Addresses are shown as
// people read them (IDN domains in U-labels); the search takes either form (addressMatcher).
import { readableAddress } from '@mailgw/mail';
import { MESSAGE_STATUSES, parseStatus, type MessageFilter, type MessageRow } from './message-filter.js';
import type { MessageView } from './queue-admin.js';
import type { TrackingRecord } from './tracking-search.js';
import { esc } from './dashboard.js';

/** What the admin searched for (the query string of /messages). */
export interface MessageSearch {
  readonly sender?: string;
  readonly recipient?: string;
  readonly id?: string;
  readonly status?: string;
}

/** Bulk actions of the message view: Remove-Message (with or without NDR), Suspend-, Resume-, Retry-Message. */
export const MESSAGE_OPS = ['remove', 'remove-ndr', 'suspend', 'resume', 'retry'] as const;
export type MessageOp = (typeof MESSAGE_OPS)[number];

const OP_LABEL: Readonly<Record<MessageOp, string>> = {
  remove: 'Remove (no NDR)',
  'remove-ndr': 'Remove with NDR',
  suspend: 'Suspend',
  resume: 'Resume',
  retry: 'Retry',
};

/** Rows shown on the page; the count and the bulk actions cover every matching message. */
export const MESSAGE_ROWS_SHOWN = 200;
const MAX_FIELD = 320;

export type ParsedSearch =
  | { readonly ok: true; readonly search: MessageSearch; readonly filter: MessageFilter; readonly id: string | undefined; readonly empty: boolean }
  | { readonly ok: false; readonly error: string };

/** A search from query parameters or a POST body: strings, trimmed, bounded; status one of Exchange's. */
export function parseSearch(get: (key: string) => unknown): ParsedSearch {
  const out: Record<string, string> = {};
  for (const key of ['sender', 'recipient', 'id', 'status'] as const) {
    const v = get(key);
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string' || v.length > MAX_FIELD) return { ok: false, error: `${key} must be text of at most ${MAX_FIELD} characters` };
    if (v.trim() !== '') out[key] = v.trim();
  }
  const status = parseStatus(out.status);
  if (!status.ok) return { ok: false, error: status.error.replace('--status', 'status') };
  const search: MessageSearch = { ...out, ...(status.status ? { status: status.status } : {}) };
  const filter: MessageFilter = { sender: search.sender, recipient: search.recipient, status: status.status };
  return { ok: true, search, filter, id: search.id, empty: Object.keys(search).length === 0 };
}

export interface MessagesView {
  readonly fqdn: string;
  readonly allowWrite: boolean;
  readonly now: number;
  readonly search: MessageSearch;
  /** null: nothing searched yet. */
  readonly result: { readonly rows: readonly MessageRow[]; readonly matched: number } | { readonly error: string } | null;
  /**
   * The message searched by queue id as the queue holds it (`mailgw queue show`): each
   * recipient's status, attempts, next hop and last reply, and the TLS policy of each next
   * hop's last attempt; message null when no queued message has that id; null without an id.
   */
  readonly detail: { readonly id: string; readonly message: Pick<MessageView, 'recipients' | 'hopTls'> | null } | { readonly id: string; readonly error: string } | null;
  /** The tracking history of the message searched by queue id; null without an id. */
  readonly timeline: { readonly id: string; readonly events: readonly TrackingRecord[] } | { readonly id: string; readonly error: string } | null;
}

function age(ms: number | null, now: number): string {
  if (ms === null) return '—';
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

function size(n: number | null): string {
  if (n === null) return '—';
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** The first two recipients as people read them (U-labels), and how many more. */
function firstRecipients(r: readonly string[]): string {
  const shown = r.slice(0, 2).map(readableAddress).join(', ');
  return r.length <= 2 ? shown : `${shown} +${r.length - 2}`;
}

/** `messages?…` for a search (the links of the page). */
export function searchHref(s: MessageSearch): string {
  const q = new URLSearchParams(Object.entries(s).filter(([, v]) => typeof v === 'string' && v !== '') as Array<[string, string]>);
  const text = q.toString();
  return text ? `messages?${text}` : 'messages';
}

function form(s: MessageSearch): string {
  const input = (name: keyof MessageSearch, label: string, hint: string) =>
    `<label>${label} <input type="text" name="${name}" value="${esc(s[name] ?? '')}" placeholder="${esc(hint)}" maxlength="${MAX_FIELD}"></label>`;
  const options = ['', ...MESSAGE_STATUSES].map((st) => `<option value="${st}"${(s.status ?? '') === st ? ' selected' : ''}>${st || 'any'}</option>`).join('');
  return `<form id="message-search" method="get" action="messages">${input('sender', 'Sender', '*@contoso.com')} ${input('recipient', 'Recipient', 'user@fabrikam.com')} ` +
    `${input('id', 'Queue id', '')} <label>Status <select name="status">${options}</select></label> <button type="submit">Search</button></form>`;
}

function actions(v: MessagesView, matched: number): string {
  if (!v.allowWrite || matched === 0) return '';
  const search = JSON.stringify(v.search);
  const buttons = MESSAGE_OPS.map(
    (op) => `<button type="button" data-action="messages" data-op="${op}" data-count="${matched}" data-search="${esc(search)}">${esc(OP_LABEL[op])}</button>`,
  ).join(' ');
  return `<p id="message-actions">On the ${matched} matching message${matched === 1 ? '' : 's'}: ${buttons}</p><div id="confirm" hidden></div>`;
}

function results(v: MessagesView): string {
  const r = v.result;
  if (r === null) return '<p>Search by sender (<code>*</code> matches any characters), recipient, queue id or status.</p>';
  if ('error' in r) return `<p class="bad" id="search-error">${esc(r.error)}</p>`;
  const rows = r.rows.map(
    (m) =>
      `<tr data-id="${esc(m.id)}"><td><a href="${esc(searchHref({ ...v.search, id: m.id }))}">${esc(m.id)}</a></td><td>${m.from === null ? '?' : esc(`<${readableAddress(m.from)}>`)}</td>` +
      `<td>${esc(firstRecipients(m.recipients))}</td><td class="n">${size(m.size)}</td><td>${age(m.receivedAt, v.now)}</td>` +
      `<td class="status-${m.status.toLowerCase()}">${m.status}</td><td>${esc(m.lastError ?? '')}</td></tr>`,
  );
  const empty = rows.length === 0 ? '<tr><td colspan="7">No message matches.</td></tr>' : '';
  const shown = r.matched > r.rows.length ? `${r.rows.length} of ${r.matched} matching messages shown` : `${r.matched} matching message${r.matched === 1 ? '' : 's'}`;
  return `<p id="matched" data-matched="${r.matched}">${shown}</p>${actions(v, r.matched)}` +
    `<table id="messages"><thead><tr><th>Queue id</th><th>From</th><th>To</th><th>Size</th><th>Age</th><th>Status</th><th>Last error</th></tr></thead>` +
    `<tbody>${rows.join('')}${empty}</tbody></table>`;
}

function eventDetail(e: TrackingRecord): string {
  const rcpts = (e.recipientAddress ?? []).map(readableAddress).join(', ');
  const status = [...new Set((e.recipientStatus ?? []).filter(Boolean))].join(' | ');
  const parts = [e.source ? `source ${e.source}` : '', rcpts ? `→ ${rcpts}` : '', status, e.reference ? `about ${e.reference}` : ''].filter(Boolean);
  return parts.join(' · ');
}

const isoSeconds = (ms: number | null) => (ms === null ? '—' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

/** Recipients and next hops of the message searched by queue id (what `mailgw queue show` prints). */
function detail(v: MessagesView): string {
  const d = v.detail;
  if (d === null) return '';
  const head = `<h2>Recipients of ${esc(d.id)}</h2>`;
  if ('error' in d) return `${head}<p class="bad">The queue could not be read: ${esc(d.error)}</p>`;
  if (d.message === null) return `${head}<p id="detail-missing">No queued message has this id (delivered and removed, or never queued here).</p>`;
  const rows = d.message.recipients.map(
    (r) =>
      `<tr data-address="${esc(r.address)}"><td>${esc(readableAddress(r.address))}</td><td class="status-${r.status}">${r.status}</td><td class="n">${r.attempts}</td>` +
      `<td>${esc(r.hop ? `${r.hop}${r.suspended ? ' (suspended)' : ''}` : r.remoteMta ? `via ${r.remoteMta}` : '—')}</td><td>${esc(r.lastReply ?? '—')}</td></tr>`,
  );
  const table = `<table id="recipients"><thead><tr><th>Recipient</th><th>Status</th><th>Attempts</th><th>Next hop</th><th>Last reply</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  // Which TLS policy decided each next hop's last attempt, and why (DANE, MTA-STS, connector, opportunistic).
  const tls = d.message.hopTls.map(
    (t) =>
      `<li data-hop="${esc(t.hop)}" data-policy="${esc(t.policy)}"><b>${esc(t.hop)}</b>: ${esc(t.policy)}${t.host ? ` (${esc(t.host)})` : ''}, <time>${esc(isoSeconds(t.at))}</time>` +
      `<br>${esc(t.detail)}<br><span class="why">why: ${esc(t.reason)}</span></li>`,
  );
  const policy = tls.length === 0 ? '<p id="hop-tls-none">No delivery attempted yet: no TLS policy decided.</p>' : `<ul id="hop-tls">${tls.join('')}</ul>`;
  return `${head}${table}<h3>TLS policy (last attempt per next hop)</h3>${policy}`;
}

function timeline(v: MessagesView): string {
  const t = v.timeline;
  if (t === null) return '';
  const head = `<h2>Tracking history of ${esc(t.id)}</h2>`;
  if ('error' in t) return `${head}<p class="bad">The tracking log could not be read: ${esc(t.error)}</p>`;
  if (t.events.length === 0) return `${head}<p id="timeline-empty">No tracking events for this queue id (in Redis or this machine's files).</p>`;
  const items = t.events.map(
    (e) =>
      `<li data-event="${esc(e.eventId)}"><time datetime="${esc(e.dateTime)}">${esc(e.dateTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</time> ` +
      `<b class="event event-${esc(e.eventId.toLowerCase())}">${esc(e.eventId)}</b> <span>${esc(eventDetail(e))}</span></li>`,
  );
  return `${head}<ol id="timeline" class="timeline">${items.join('')}</ol>`;
}

/** The part of the message page the script reloads after an action. */
export function renderMessagesFragment(v: MessagesView): string {
  return `${results(v)}${detail(v)}${timeline(v)}`;
}

export function renderMessagesPage(v: MessagesView, document: (title: string, body: string) => string): string {
  const src = searchHref(v.search).replace(/^messages\??/, 'messages?fragment=1&');
  return document(
    `mailgw — messages — ${v.fqdn}`,
    `<header><h1>mailgw <small>${esc(v.fqdn)}</small></h1><nav><a href="./">Dashboard</a> · <b>Messages</b> · <a href="traffic">Traffic</a></nav><span>${v.allowWrite ? 'read-write' : 'read-only'}</span></header>` +
      `<h2>Messages</h2>${form(v.search)}<p id="status" role="status"></p><main id="content" data-src="${esc(src)}">${renderMessagesFragment(v)}</main><script src="dashboard.js"></script>`,
  );
}
