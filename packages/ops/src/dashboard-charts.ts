// The dashboard's charts as plain SVG, drawn on the server from the gateway-wide per-minute
// counters (stats.ts): no charting library and no build step. Pure.
import { esc } from './dashboard.js';
import type { StatsSeries } from './stats.js';

const W = 640;
const H = 160;
const PAD = { left: 44, right: 8, top: 10, bottom: 22 };
/** Colour per line, by series name (SVG presentation attributes: allowed by the page's CSP). */
const COLOURS = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];

export interface ChartLine {
  readonly name: string;
  readonly values: ReadonlyArray<number | null>;
}

const fmt = (n: number): string => (n >= 10_000 ? `${Math.round(n / 1000)}k` : n >= 100 ? String(Math.round(n)) : String(+n.toFixed(1)));

function timeLabel(minute: number): string {
  return new Date(minute * 60_000).toISOString().slice(11, 16);
}

/** One line chart: a polyline per series (gaps where a value is null), the maximum on the y axis, times under it. */
export function lineChart(id: string, title: string, at: readonly number[], lines: readonly ChartLine[], unit = ''): string {
  const n = at.length;
  const finite = lines.flatMap((l) => l.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const max = Math.max(1, ...finite);
  const x = (i: number) => PAD.left + (n <= 1 ? 0 : (i * (W - PAD.left - PAD.right)) / (n - 1));
  const y = (v: number) => H - PAD.bottom - (Math.min(v, max) / max) * (H - PAD.top - PAD.bottom);
  const paths = lines.map((l, k) => {
    const segments: string[][] = [[]];
    l.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) segments.push([]);
      else segments[segments.length - 1]!.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    });
    const colour = COLOURS[k % COLOURS.length]!;
    return segments
      .filter((s) => s.length > 0)
      .map((s) => {
        // A lone value (one minute with deliveries) would be an invisible one-point line: a dot too.
        const dot = s.length === 1 ? `<circle cx="${s[0]!.split(',')[0]}" cy="${s[0]!.split(',')[1]}" r="2.5" fill="${colour}"/>` : '';
        return `<polyline data-series="${esc(l.name)}" fill="none" stroke="${colour}" stroke-width="1.5" points="${s.join(' ')}"/>${dot}`;
      })
      .join('');
  });
  const anchor = (i: number) => (i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle');
  const ticks = n > 0 ? [0, Math.floor((n - 1) / 2), n - 1].map((i) => `<text x="${x(i).toFixed(1)}" y="${H - 6}" font-size="10" text-anchor="${anchor(i)}" fill="#555">${timeLabel(at[i]!)} UTC</text>`).join('') : '';
  const legend = lines
    .map((l, k) => {
      const total = l.values.reduce<number>((a, v) => a + (v !== null && Number.isFinite(v) ? v : 0), 0);
      return `<span class="legend"><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" fill="${COLOURS[k % COLOURS.length]}"/></svg> ${esc(l.name)}${unit === '' ? ` <b>${fmt(total)}</b>` : ''}</span>`;
    })
    .join(' ');
  return (
    `<figure class="chart"><figcaption>${esc(title)}</figcaption>` +
    `<svg id="${esc(id)}" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(title)}">` +
    `<line x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}" stroke="#999"/>` +
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}" stroke="#999"/>` +
    `<text x="${PAD.left - 4}" y="${PAD.top + 8}" font-size="10" text-anchor="end" fill="#555">${fmt(max)}${esc(unit)}</text>` +
    `<text x="${PAD.left - 4}" y="${H - PAD.bottom}" font-size="10" text-anchor="end" fill="#555">0</text>` +
    `${ticks}${paths.join('')}</svg><div class="legends">${legend}</div></figure>`
  );
}

/** The charts of one range: messages, queue depth per next hop (the 8 deepest), latency. */
export function chartsFor(range: string, s: StatsSeries): string {
  const per = s.stepMinutes === 1 ? 'per minute' : `per ${s.stepMinutes} minutes`;
  const messages = lineChart(`chart-messages-${range}`, `Messages ${per}, last ${range}`, s.at, [
    { name: 'accepted', values: s.counts.accepted },
    { name: 'delivered', values: s.counts.delivered },
    { name: 'deferred', values: s.counts.deferred },
    { name: 'failed', values: s.counts.failed },
  ]);
  const deepest = Object.entries(s.hops)
    .map(([hop, values]) => ({ hop, values, peak: Math.max(0, ...values.filter((v): v is number => v !== null)) }))
    .sort((a, b) => b.peak - a.peak)
    .slice(0, 8);
  const hops = deepest.length
    ? lineChart(`chart-hops-${range}`, `Queue depth per next hop, last ${range}`, s.at, deepest.map((d) => ({ name: d.hop, values: d.values })), ' msg')
    : `<figure class="chart"><figcaption>Queue depth per next hop, last ${esc(range)}</figcaption><p class="small" id="chart-hops-${esc(range)}">Nothing queued in this period.</p></figure>`;
  const latency = lineChart(`chart-latency-${range}`, `Delivery latency (receipt to delivery), last ${range}`, s.at, [
    { name: 'p50', values: s.latency.p50 },
    { name: 'p90', values: s.latency.p90 },
    { name: 'p99', values: s.latency.p99 },
  ], ' s');
  return `<section class="charts" data-range="${esc(range)}">${messages}${hops}${latency}</section>`;
}
