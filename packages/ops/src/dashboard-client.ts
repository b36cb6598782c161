// The dashboard's static script and style, served as files (the page's Content-Security-Policy
// allows no inline script). The script refreshes the server-rendered fragment every few seconds
// and posts button actions with a custom header, which a cross-site form cannot send.

export const DASHBOARD_JS = `'use strict';
const content = document.getElementById('content');
const status = document.getElementById('status');
let busy = false;
async function refresh() {
  const r = await fetch('fragment', { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) return location.reload();
  if (r.ok) content.innerHTML = await r.text();
}
document.addEventListener('click', async (ev) => {
  const b = ev.target.closest('button[data-action]');
  if (!b || busy) return;
  busy = true;
  b.disabled = true;
  const body = {};
  if (b.dataset.hop) body.hop = b.dataset.hop;
  if (b.dataset.all) body.all = true;
  try {
    const r = await fetch('api/' + b.dataset.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-mailgw-action': '1' },
      body: JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({}));
    status.textContent = r.ok ? j.message : 'Error: ' + (j.error || r.status);
    status.className = r.ok ? 'ok' : 'bad';
    await refresh();
  } finally {
    busy = false;
  }
});
setInterval(() => { if (!busy) refresh().catch(() => undefined); }, 5000);
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
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; margin-bottom: 1em; }
figure.chart { margin: 0; border: 1px solid #ddd; padding: .5em; }
figure.chart figcaption { font-weight: bold; margin-bottom: .3em; }
.legends { font-size: 12px; } .legend { margin-right: 1em; white-space: nowrap; }
`;
