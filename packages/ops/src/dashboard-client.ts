// The dashboard's static script and style, served as files (the page's Content-Security-Policy
// allows no inline script). The script refreshes the server-rendered fragment every few seconds
// and posts button actions with a custom header, which a cross-site form cannot send.

export const DASHBOARD_JS = `'use strict';
const content = document.getElementById('content');
const status = document.getElementById('status');
let busy = false;
async function refresh() {
  const r = await fetch(content.dataset.src || 'fragment', { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) return location.reload();
  if (r.ok) content.innerHTML = await r.text();
}
function say(text, ok) {
  status.textContent = text;
  status.className = ok ? 'ok' : 'bad';
}
const OPS = { remove: 'Remove (no NDR to the senders)', 'remove-ndr': 'Remove, with an NDR to each sender', suspend: 'Suspend', resume: 'Resume', retry: 'Retry' };
// Acting on more than one message asks first, in the page: the buttons of #confirm carry the
// same data plus data-confirmed.
function askFirst(b) {
  const box = document.getElementById('confirm');
  box.replaceChildren();
  const q = document.createElement('p');
  q.textContent = OPS[b.dataset.op] + ': ' + b.dataset.count + ' messages. Are you sure?';
  const yes = document.createElement('button');
  yes.type = 'button';
  yes.textContent = 'Yes, ' + b.dataset.count + ' messages';
  yes.id = 'confirm-yes';
  for (const k of ['action', 'op', 'count', 'search']) yes.dataset[k] = b.dataset[k];
  yes.dataset.confirmed = '1';
  const no = document.createElement('button');
  no.type = 'button';
  no.textContent = 'Cancel';
  no.id = 'confirm-no';
  no.addEventListener('click', () => { box.hidden = true; box.replaceChildren(); });
  q.append(' ', yes, ' ', no);
  box.append(q);
  box.hidden = false;
}
document.addEventListener('click', async (ev) => {
  const b = ev.target.closest('button[data-action]');
  if (!b || busy) return;
  let body = {};
  if (b.dataset.action === 'messages') {
    if (Number(b.dataset.count) > 1 && b.dataset.confirmed !== '1') return askFirst(b);
    body = { op: b.dataset.op, search: JSON.parse(b.dataset.search), expect: Number(b.dataset.count) };
  }
  busy = true;
  b.disabled = true;
  if (b.dataset.hop) body.hop = b.dataset.hop;
  if (b.dataset.all) body.all = true;
  if (b.dataset.range) body.range = b.dataset.range;
  try {
    const r = await fetch('api/' + b.dataset.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-mailgw-action': '1' },
      body: JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({}));
    say(r.ok ? j.message : 'Error: ' + (j.error || r.status), r.ok);
    await refresh();
  } finally {
    busy = false;
  }
});
// The dashboard refreshes itself; the message view only after an action (a search is a snapshot).
setInterval(() => { if (!busy && content.dataset.auto === '1') refresh().catch(() => undefined); }, 5000);
`;

export const DASHBOARD_CSS = `body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
header { display: flex; align-items: baseline; gap: 1em; }
h1 small { font-weight: normal; color: #666; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #a00; } .ok { color: #070; } .small { color: #666; font-size: 12px; }
.status-suspended { color: #a60; font-weight: bold; } .status-retry { color: #a00; }
.count { margin-right: 1em; }
td.actions { white-space: nowrap; }
nav { color: #666; }
#message-search { margin: .5em 0 1em; } #message-search label { margin-right: .5em; }
#confirm { border: 2px solid #a60; background: #fff8e6; padding: 0 .8em; margin: .5em 0; }
ol.timeline { list-style: none; padding-left: 1em; border-left: 3px solid #ccc; }
ol.timeline li { margin: .3em 0; } ol.timeline time { color: #666; font-variant-numeric: tabular-nums; }
.event-defer { color: #a60; } .event-fail { color: #a00; } .event-deliver, .event-send { color: #070; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; margin-bottom: 1em; }
figure.chart { margin: 0; border: 1px solid #ddd; padding: .5em; }
figure.chart figcaption { font-weight: bold; margin-bottom: .3em; }
.legends { font-size: 12px; } .legend { margin-right: 1em; white-space: nowrap; }
`;
