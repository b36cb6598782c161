#!/usr/bin/env node
// Runs the test suite: typechecks the tests, then runs every
// packages/*/test/**/*.test.ts and test/**/*.test.ts with Node's test runner
// on the TypeScript sources (`--conditions=mailgw-src --import tsx`).
//
//   npm test                 all tests (pretest bootstraps and builds first)
//   npm test -- policy smtp  only test files whose path contains "policy" or "smtp"
//
// Env: MAILGW_TEST_TIMEOUT_MS (per test, default 300000),
//      MAILGW_TEST_CONCURRENCY (test files run at once, default: Node's).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2).filter((a) => a !== '--');

/** Files under `dir` (recursively, skipping node_modules/dist/dot dirs) accepted by `keep`. */
function walk(dir, keep, out = []) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
      walk(p, keep, out);
    } else if (e.isFile() && keep(e.name)) out.push(p);
  }
  return out;
}

const testRoots = [path.join(root, 'test')];
for (const e of readdirSync(path.join(root, 'packages'), { withFileTypes: true })) {
  if (e.isDirectory()) testRoots.push(path.join(root, 'packages', e.name, 'test'));
}

const isTest = (name) => name.endsWith('.test.ts');
const all = testRoots.flatMap((d) => walk(d, isTest)).sort();
const rel = (p) => path.relative(root, p);
const files = filters.length ? all.filter((f) => filters.some((s) => rel(f).includes(s))) : all;

if (all.length === 0) {
  console.error('run-tests: no test files found (packages/*/test/**/*.test.ts, test/**/*.test.ts)');
  process.exit(1);
}
if (files.length === 0) {
  console.error(`run-tests: no test file matches ${filters.map((f) => JSON.stringify(f)).join(' or ')}; test files:`);
  for (const f of all) console.error(`  ${rel(f)}`);
  process.exit(1);
}

// 1. Typecheck the tests (and the harness) against the built packages' types.
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
if (!existsSync(tsc)) {
  console.error('run-tests: typescript is not installed: run `npm test` (its pretest step installs and builds) or `npm ci`');
  process.exit(1);
}
console.log('run-tests: typechecking tests (tsc -p test/tsconfig.json)');
const check = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'test', 'tsconfig.json')], {
  cwd: root,
  stdio: 'inherit',
});
if (check.status !== 0) {
  console.error(`run-tests: test typecheck failed (exit ${check.status ?? check.signal}); not running tests`);
  process.exit(check.status || 1);
}

// 2. Run them. Spec output on the terminal; a TAP copy in a temp file whose
// summary lines (# tests/# pass/# fail…) are printed at the end.
const tmp = mkdtempSync(path.join(os.tmpdir(), 'mailgw-tests-'));
const tapFile = path.join(tmp, 'report.tap');
const timeout = process.env.MAILGW_TEST_TIMEOUT_MS ?? '300000';
const args = [
  '--conditions=mailgw-src',
  '--import',
  'tsx',
  '--test',
  `--test-timeout=${timeout}`,
  ...(process.env.MAILGW_TEST_CONCURRENCY ? [`--test-concurrency=${process.env.MAILGW_TEST_CONCURRENCY}`] : []),
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tapFile}`,
  ...files.map(rel),
];
console.log(`run-tests: ${files.length} test file${files.length === 1 ? '' : 's'}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);

const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
const forward = (sig) => () => child.kill(sig);
process.on('SIGINT', forward('SIGINT'));
process.on('SIGTERM', forward('SIGTERM'));
child.on('exit', (code, signal) => {
  let summary = [];
  try {
    summary = readFileSync(tapFile, 'utf8')
      .split('\n')
      .filter((l) => /^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /.test(l));
  } catch {
    // the runner died before writing a report
  }
  rmSync(tmp, { recursive: true, force: true });
  if (summary.length) console.log(summary.join('\n'));
  // A file that fails outside its tests (an import or a before hook that throws) makes the exit
  // code non-zero while "# fail" can still say 0: say so, rather than let the summary look green.
  if (!signal && code !== 0 && summary.some((l) => l === '# fail 0')) {
    console.error(`run-tests: exit code ${code} although no test failed: a test file failed outside its tests (look for ✖ above)`);
  }
  if (signal) {
    console.error(`run-tests: test runner killed by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
