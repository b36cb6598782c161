#!/usr/bin/env node
// Summarises a .cpuprofile: self time per function (and per file), top N.
// Usage: node bench/lib/prof-top.mjs file.cpuprofile [N]
import { readFileSync } from 'node:fs';
const prof = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const top = Number(process.argv[3] ?? 30);
const self = new Map();
const byFile = new Map();
const dt = new Map();
for (let i = 0; i < prof.samples.length; i++) dt.set(prof.samples[i], (dt.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
let total = 0;
for (const n of prof.nodes) {
  const t = (dt.get(n.id) ?? 0) / 1000;
  total += t;
  const cf = n.callFrame;
  const file = (cf.url || '(native)').replace(/^.*node_modules\//, 'nm/').replace(/^file:\/\/.*\/packages\//, 'pkg/');
  const key = `${cf.functionName || '(anon)'}  ${file}:${cf.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + t);
  const f = file.replace(/\/[^/]*$/, '') || file;
  byFile.set(file, (byFile.get(file) ?? 0) + t);
}
const show = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${v.toFixed(0).padStart(7)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`).join('\n');
console.log(`total ${total.toFixed(0)} ms\n-- by function\n${show(self, top)}\n-- by file\n${show(byFile, 20)}`);
