#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run by npm start / npm test).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('mailgw: not built yet; run `npm run build` (or `npm start` / `npm test`, which build first)\n');
  process.exit(1);
}
await import(main.href);
