// The dashboard page, rendered on the server: connectors with this process's live counters and
// the next-hop queues (Exchange's Queue Viewer), with retry/suspend/resume buttons when write
// access is on. The page's script (dashboard-client.ts) only re-fetches the fragment and posts
// the buttons' actions. Pure.
import type { ConnectorCounters, QueueSnapshot } from './metrics.js';
import { highestPressure, type ProcessHeartbeat } from './process-registry.js';
import type { StatsSeries } from './stats.js';
import { readableDomain } from '@mailgw/mail';
import { chartsFor } from './dashboard-charts.js';
import type { IpBlockListEntry } from '@mailgw/policy';

export interface DashboardConnector {
  readonly name: string;
  readonly enabled: boolean;
  readonly usage: string;
  readonly bindings: readonly string[];
  readonly counters: Readonly<ConnectorCounters>;
}

export interface DashboardView {
  readonly fqdn: string;
  readonly connectors: readonly DashboardConnector[];
  readonly queue: QueueSnapshot;
  /** Every live process of the gateway (heartbeats in Redis); null when Redis could not say. */
  readonly processes: readonly ProcessHeartbeat[] | null;
  /** The gateway's per-minute counters for the last hour and day; null when Redis could not say. */
  readonly charts?: { readonly '1h': StatsSeries; readonly '24h': StatsSeries } | null;
  /** The IP Block List (sender reputation's and the admins' entries); null when Redis could not say; left out: not shown. */
  readonly ipBlockList?: readonly IpBlockListEntry[] | null;
  readonly allowWrite: boolean;
  readonly now: number;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

function when(ms: number | null, now: number): string {
  if (ms === null) return '—';
  const d = Math.round((ms - now) / 1000);
  const abs = Math.abs(d);
  const span = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.floor(abs / 60)}m` : abs < 86_400 ? `${Math.floor(abs / 3600)}h${Math.floor((abs % 3600) / 60)}m` : `${Math.floor(abs / 86_400)}d`;
  return d > 0 ? `in ${span}` : d === 0 ? 'now' : `${span} ago`;
}

/**
 * A next-hop key as people read it: the domain of an MX hop ("mx:<domain>",
 * "send:<connector>:mx:<domain>") in U-labels. The key itself (A-labels) stays what the buttons
 * send and what `mailgw queue --hop` takes.
 */
export function readableHop(hop: string): string {
  const m = /^((?:send:.*:)?mx:)([^:]+)$/.exec(hop);
  return m ? m[1]! + readableDomain(m[2]!) : hop;
}

function hopCell(hop: string): string {
  const shown = readableHop(hop);
  return shown === hop ? `<td>${esc(hop)}</td>` : `<td title="${esc(hop)}">${esc(shown)}</td>`;
}

function button(action: string, label: string, attrs: Record<string, string>): string {
  const data = Object.entries(attrs).map(([k, v]) => ` data-${k}="${esc(v)}"`).join('');
  return `<button type="button" data-action="${action}"${data}>${esc(label)}</button>`;
}

function connectorsTable(v: DashboardView): string {
  const rows = v.connectors.map((c) => {
    const n = c.counters;
    return `<tr data-connector="${esc(c.name)}"><td>${esc(c.name)}</td><td>${c.enabled ? 'Enabled' : 'Disabled'}</td><td>${esc(c.usage)}</td><td>${esc(c.bindings.join(', '))}</td>` +
      `<td class="n">${n.connections}</td><td class="n">${n.accepted}</td><td class="n">${n.rejected}</td><td class="n">${n.relayDenied}</td><td class="n">${n.authFailures}</td></tr>`;
  });
  return `<h2>Receive connectors</h2><table id="connectors"><thead><tr><th>Name</th><th>State</th><th>Usage</th><th>Bindings</th>` +
    `<th>Connections</th><th>Accepted</th><th>Rejected</th><th>Relay denied</th><th>AUTH failures</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function queuesTable(v: DashboardView): string {
  const q = v.queue;
  if (!q.redisUp) return `<h2>Queues</h2><p class="bad" id="redis-down">Redis is not reachable: ${esc(q.error ?? 'unknown error')}</p>`;
  const counts = Object.entries(q.counts).map(([k, n]) => `<span class="count" data-state="${esc(k)}">${esc(k)} <b>${n}</b></span>`).join(' ');
  const rows = q.hops.map((h) => {
    const actions = v.allowWrite
      ? [button('retry', 'Retry', { hop: h.hop }), h.status === 'Suspended' ? button('resume', 'Resume', { hop: h.hop }) : button('suspend', 'Suspend', { hop: h.hop })].join(' ')
      : '';
    return `<tr data-hop="${esc(h.hop)}">${hopCell(h.hop)}<td class="status-${h.status.toLowerCase()}">${h.status}</td><td class="n">${h.messages}</td><td class="n">${h.recipients}</td>` +
      `<td>${when(h.oldest, v.now)}</td><td>${when(h.nextRetry, v.now)}</td><td>${esc(h.lastError ?? '')}</td>${v.allowWrite ? `<td class="actions">${actions}</td>` : ''}</tr>`;
  });
  const empty = rows.length === 0 ? `<tr><td colspan="${v.allowWrite ? 8 : 7}">No mail queued.</td></tr>` : '';
  const all = v.allowWrite ? `<p>${button('retry', 'Retry all', { all: '1' })}</p>` : '';
  return `<h2>Queues</h2><p>${counts}${q.poison > 0 ? ` <span class="bad">poison messages: ${q.poison}</span>` : ''}</p>` +
    `<table id="queues"><thead><tr><th>Next hop</th><th>Status</th><th>Messages</th><th>Recipients</th><th>Oldest</th><th>Next retry</th><th>Last error</th>${v.allowWrite ? '<th></th>' : ''}</tr></thead>` +
    `<tbody>${rows.join('')}${empty}</tbody></table>${all}`;
}

function processesTable(v: DashboardView): string {
  if (v.processes === null) return '<h2>Processes</h2><p class="bad">The process list is not available (Redis did not answer).</p>';
  const rows = v.processes.map(
    (p) =>
      `<tr data-process="${esc(`${p.host}:${p.pid}`)}"><td>${esc(p.host)}</td><td>${p.pid}</td><td>${esc(p.role)}</td><td>${esc(p.version)}</td>` +
      `<td>${when(p.startedAt, v.now).replace(' ago', '')}</td><td class="n">${p.connections ?? '—'}</td><td class="n">${p.deliveriesInProgress ?? '—'}${p.deliveriesWaitingForMemory ? ` <span class="bad" title="waiting for room within queue.workerMessageBytes">(${p.deliveriesWaitingForMemory} waiting for memory)</span>` : ''}${p.crowdedNextHops ? ` <span class="bad" title="next hops so slow that deliveries for them go back to the queue, unread, until their turn">(${p.crowdedNextHops} slow next hop${p.crowdedNextHops === 1 ? '' : 's'})</span>` : ''}</td>` +
      `<td${p.backPressure && p.backPressure.level !== 'normal' ? ` class="bad" title="${esc(p.backPressure.reason)}"` : ''}>${p.backPressure ? esc(p.backPressure.level) : '—'}</td><td>${when(p.at, v.now)}</td></tr>`,
  );
  const empty = rows.length === 0 ? '<tr><td colspan="9">No process has reported.</td></tr>' : '';
  return `<h2>Processes</h2><table id="processes"><thead><tr><th>Host</th><th>PID</th><th>Role</th><th>Version</th><th>Up</th>` +
    `<th>Connections</th><th>Deliveries in progress</th><th>Back pressure</th><th>Last heartbeat</th></tr></thead><tbody>${rows.join('')}${empty}</tbody></table>`;
}

/** The IP Block List: who is refused at RCPT, by whom, until when; Remove with write access. */
function ipBlockListTable(v: DashboardView): string {
  if (v.ipBlockList === undefined) return '';
  if (v.ipBlockList === null) return '<h2>IP Block List</h2><p class="bad">The IP Block List is not available (Redis did not answer).</p>';
  const rows = v.ipBlockList.map(
    (e) =>
      `<tr data-range="${esc(e.range)}"><td>${esc(e.range)}</td><td>${e.kind === 'machine' ? 'sender reputation' : 'admin'}</td><td>${when(e.addedAt, v.now)}</td>` +
      `<td>${e.expiresAt === null ? 'never' : when(e.expiresAt, v.now)}</td><td>${esc(e.comment)}</td>${v.allowWrite ? `<td class="actions">${button('ip-block-list/remove', 'Remove', { range: e.range })}</td>` : ''}</tr>`,
  );
  const empty = rows.length === 0 ? `<tr><td colspan="${v.allowWrite ? 6 : 5}">Nobody is blocked.</td></tr>` : '';
  return `<h2>IP Block List</h2><table id="ip-block-list"><thead><tr><th>Address or range</th><th>Added by</th><th>Added</th><th>Expires</th><th>Why</th>${v.allowWrite ? '<th></th>' : ''}</tr></thead>` +
    `<tbody>${rows.join('')}${empty}</tbody></table>`;
}

/** A banner while any listener process refuses mail under back pressure: the highest level, with who and why. */
function backPressureBanner(v: DashboardView): string {
  const under = (v.processes ?? []).filter((p) => p.backPressure && p.backPressure.level !== 'normal');
  const worst = highestPressure(under.map((p) => p.backPressure!));
  if (!worst) return '';
  const level = worst.level;
  const what = level === 'high' ? 'all new mail is refused' : 'mail from anonymous senders is refused';
  return `<p id="back-pressure" class="bad">Back pressure ${esc(level)}: ${what} (452 4.3.1) by ${under.length} listener process${under.length === 1 ? '' : 'es'} (${under.map((p) => esc(`${p.host}:${p.pid}`)).join(', ')}). ${esc(worst.reason)}.</p>`;
}

/** The part of the page the script refreshes. */
function chartsSection(v: DashboardView): string {
  if (v.charts === undefined) return '';
  if (v.charts === null) return '<h2>Activity</h2><p class="bad">The charts are not available (Redis did not answer).</p>';
  return `<h2>Activity</h2>${chartsFor('1h', v.charts['1h'])}<details><summary>Last 24 hours</summary>${chartsFor('24h', v.charts['24h'])}</details>`;
}

export function renderFragment(v: DashboardView): string {
  return `${backPressureBanner(v)}${chartsSection(v)}${connectorsTable(v)}${queuesTable(v)}${processesTable(v)}${ipBlockListTable(v)}<p class="small">Connector counters are this process's since it started; the charts, queues, processes and the IP Block List are the whole gateway's, read from Redis (${new Date(v.queue.at).toISOString()}).</p>`;
}

export function htmlDocument(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${esc(title)}</title><link rel="stylesheet" href="dashboard.css"></head><body>${body}</body></html>`;
}

export function renderPage(v: DashboardView): string {
  return htmlDocument(
    `mailgw — ${v.fqdn}`,
    `<header><h1>mailgw <small>${esc(v.fqdn)}</small></h1><nav><b>Dashboard</b> · <a href="messages">Messages</a> · <a href="traffic">Traffic</a></nav><span>${v.allowWrite ? 'read-write' : 'read-only'}</span></header>` +
      `<p id="status" role="status"></p><main id="content" data-src="fragment" data-auto="1">${renderFragment(v)}</main><script src="dashboard.js"></script>`,
  );
}

export function renderLogin(message: string | null): string {
  return htmlDocument(
    'mailgw — sign in',
    `<header><h1>mailgw</h1></header><main>${message ? `<p class="bad">${esc(message)}</p>` : ''}` +
      `<form method="get" action="./"><label>Dashboard token <input type="password" name="token" autocomplete="current-password" required></label> <button type="submit">Open</button></form></main>`,
  );
}

/** The periods the Traffic page offers (any other --since works through ?since=). */
const TRAFFIC_PERIODS: ReadonlyArray<readonly [string, string]> = [['1h', 'last hour'], ['1d', 'last day'], ['7d', 'last week']];

/** The Traffic page: `mailgw track --summary` of the period, the same page cron mails. */
export function renderTrafficPage(v: { readonly fqdn: string; readonly allowWrite: boolean; readonly since: string; readonly text: string }): string {
  const periods = TRAFFIC_PERIODS.map(([p, label]) => (p === v.since ? `<b>${label}</b>` : `<a href="traffic?since=${p}">${label}</a>`)).join(' · ');
  return htmlDocument(
    `mailgw — traffic — ${v.fqdn}`,
    `<header><h1>mailgw <small>${esc(v.fqdn)}</small></h1><nav><a href="./">Dashboard</a> · <a href="messages">Messages</a> · <b>Traffic</b></nav><span>${v.allowWrite ? 'read-write' : 'read-only'}</span></header>` +
      `<h2>Traffic</h2><p>${periods} · <a href="api/traffic?since=${esc(encodeURIComponent(v.since))}">JSON</a></p><main><pre id="traffic">${esc(v.text)}</pre></main>`,
  );
}
