// Every recorded `npm run bench` run that measured Postfix and `mailgw start` side by side, one
// line each, as the README's table of runs: node --conditions=mailgw-src --import tsx bench/history.ts
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface SizeResult {
  deliveredPerSec: number;
  latency?: { p99AcceptMs?: number };
  pairedRatioMedian?: number;
}
interface Run {
  date: string;
  machine: { cores: number; loadAverageAtStart?: number[] };
  postfix?: { bySize: Record<string, SizeResult> };
  start?: { bySize: Record<string, SizeResult> };
}

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
const fmt = (n: number | undefined, digits = 0) => (n === undefined ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const rows: string[] = [];
for (const file of readdirSync(dir).filter((f) => /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.json$/.test(f)).sort()) {
  const run = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Run;
  if (!run.postfix || !run.start) continue;
  const cell = (size: string): [string, string] => {
    const p = run.postfix!.bySize[size];
    const m = run.start!.bySize[size];
    if (!p || !m) return ['–', '–'];
    const ratio = m.deliveredPerSec / p.deliveredPerSec;
    const paired = m.pairedRatioMedian !== undefined ? ` (${fmt(m.pairedRatioMedian, 2)}×)` : '';
    return [`${fmt(p.deliveredPerSec)} / ${fmt(m.deliveredPerSec)} = **${fmt(ratio, 2)}×**${paired}`, `${fmt(m.latency?.p99AcceptMs, 1)} / ${fmt(p.latency?.p99AcceptMs, 1)}`];
  };
  const [k1, l1] = cell('1024');
  const [k100, l100] = cell('102400');
  const when = `${run.date.slice(0, 10)} ${run.date.slice(11, 16)}`;
  rows.push(`| ${when} | ${run.machine.cores} | ${fmt(run.machine.loadAverageAtStart?.[0], 2)} | ${k1} | ${k100} | ${l1} | ${l100} | \`${file}\` |`);
}
console.log('| run (UTC) | cores | load | 1 KB: Postfix / mailgw delivered/s (run by run) | 100 KB: the same | p99 ms at 1 KB: mailgw / Postfix | at 100 KB | file |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
