#!/usr/bin/env node
// Prepares this checkout for `npm start` / `npm test`. Plain Node, no
// dependencies: it runs before node_modules exists.
//
//   node scripts/bootstrap.mjs --for test|start
//
// 1. node modules: `npm ci` when node_modules is missing or stale (the
//    sha256 of package-lock.json differs from the stamp written after the
//    last successful install); `npm install` when there is no lock file.
// 2. system tools: redis-server (for start: unless REDIS_URL is set; for
//    test: always, the tests run their own servers and kill/restart them) and
//    swaks (test). As root they are installed with apt-get; otherwise the
//    script stops and prints the command to run. nmap (test, optional: the
//    security suite skips its nmap test without it) and chromium (test, optional:
//    the ops dashboard's browser test skips without it) are installed with apt-get
//    as root; failing that only warns.
//
// Idempotent, and fast (a few stat calls and one hash) when all is present.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STAMP = path.join(root, 'node_modules', '.mailgw-bootstrap-stamp');
const LOCK = path.join(root, 'package-lock.json');
const tag = 'bootstrap:';

function usage(code) {
  (code ? console.error : console.log)('usage: node scripts/bootstrap.mjs [--for test|start]   (default: test)');
  process.exit(code);
}

function parseArgs(argv) {
  let target = 'test';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--for') target = argv[++i];
    else if (a.startsWith('--for=')) target = a.slice('--for='.length);
    else if (a === '-h' || a === '--help') usage(0);
    else {
      console.error(`${tag} unknown argument ${JSON.stringify(a)}`);
      usage(2);
    }
  }
  if (target !== 'test' && target !== 'start') {
    console.error(`${tag} --for must be "test" or "start", not ${JSON.stringify(target)}`);
    usage(2);
  }
  return target;
}

function run(cmd, args, extraEnv = {}) {
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...extraEnv } });
  if (res.error) {
    console.error(`${tag} could not run ${cmd}: ${res.error.message}`);
    return 127;
  }
  return res.status ?? 1;
}

// ---- node modules ---------------------------------------------------------

function stampFor(lockHash) {
  // The Node ABI is part of the stamp: native add-ons built for another Node
  // major would not load.
  return `${lockHash} node-abi-${process.versions.modules}\n`;
}

function ensureNodeModules() {
  const hasModules = existsSync(path.join(root, 'node_modules'));
  const hasLock = existsSync(LOCK);
  const lockHash = hasLock ? createHash('sha256').update(readFileSync(LOCK)).digest('hex') : null;
  let reason = null;
  if (!hasModules) reason = 'node_modules is missing';
  else if (!hasLock) {
    if (!existsSync(STAMP)) reason = 'there is no package-lock.json and no record of an install';
  } else {
    let stamp = null;
    try {
      stamp = readFileSync(STAMP, 'utf8');
    } catch {
      // no stamp
    }
    if (stamp === null) reason = 'node_modules was not installed by bootstrap (no stamp)';
    else if (stamp !== stampFor(lockHash)) reason = 'package-lock.json or the Node version changed since the last install';
  }
  if (!reason) return 'node_modules up to date';

  const args = hasLock ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  console.log(`${tag} running \`npm ${args.join(' ')}\` because ${reason}`);
  const code = run('npm', args);
  if (code !== 0) {
    console.error(`${tag} \`npm ${args[0]}\` failed (exit ${code})`);
    process.exit(code);
  }
  // `npm install` writes the lock it resolved: stamp that one.
  const finalHash = existsSync(LOCK) ? createHash('sha256').update(readFileSync(LOCK)).digest('hex') : 'no-lock';
  writeFileSync(STAMP, stampFor(finalHash));
  return `installed node modules (npm ${args[0]})`;
}

// ---- system tools ---------------------------------------------------------

const EXTRA_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', '/sbin', '/bin'];

function which(name) {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const p = path.join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Optional test tools: apt-get them as root; a failure only warns (their tests skip). */
function ensureOptionalTools(target) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const absent = target === 'test' ? ['nmap', 'chromium'].filter((t) => !which(t)) : [];
  if (absent.length === 0 || !isRoot || !which('apt-get')) return;
  console.log(`${tag} installing ${absent.join(' ')} with apt-get (optional test tools)`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  let code = run('apt-get', ['update'], env);
  if (code === 0) code = run('apt-get', ['install', '-y', '--no-install-recommends', ...absent], env);
  if (code !== 0) console.warn(`${tag} could not install ${absent.join(' ')} (apt-get exit ${code}); the tests that need it will be skipped`);
}

function ensureTools(target) {
  const needed = [];
  if (target === 'test' || !process.env.REDIS_URL) needed.push('redis-server');
  if (target === 'test') needed.push('swaks');
  const missing = needed.filter((t) => !which(t));
  if (missing.length === 0) {
    if (needed.length === 0) return 'using REDIS_URL';
    return `${needed.join(' and ')} found`;
  }

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && which('apt-get')) {
    const pkgs = target === 'test' ? ['redis-server', 'swaks'] : ['redis-server'];
    console.log(`${tag} installing ${pkgs.join(' ')} with apt-get because ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not on PATH`);
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    let code = run('apt-get', ['update'], env);
    if (code === 0) code = run('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], env);
    const still = needed.filter((t) => !which(t));
    if (code !== 0 || still.length > 0) {
      console.error(
        code !== 0
          ? `${tag} apt-get failed (exit ${code})`
          : `${tag} apt-get finished but ${still.join(' and ')} still cannot be found on PATH`,
      );
      process.exit(1);
    }
    return `installed ${pkgs.join(' and ')}`;
  }

  const pkgs = target === 'test' ? 'redis-server swaks' : 'redis-server';
  console.error(`${tag} ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not installed (looked on PATH and in /usr/sbin, /usr/bin).`);
  console.error(`${tag} install ${missing.length > 1 ? 'them' : 'it'} with:`);
  console.error(`    sudo apt-get install -y ${pkgs}`);
  if (target === 'start') {
    console.error(`${tag} or use an existing Redis instead: REDIS_URL=redis://host:6379 npm start`);
  } else {
    console.error(
      `${tag} (REDIS_URL=redis://host:6379 lets \`npm start\` use an existing Redis, but the tests always run ` +
        'their own redis-server: they stop and restart it)',
    );
  }
  process.exit(1);
}

// ---- main -----------------------------------------------------------------

const target = parseArgs(process.argv.slice(2));
const [major] = process.versions.node.split('.').map(Number);
if (major < 20) {
  console.error(`${tag} Node ${process.versions.node} is too old: mailgw needs Node >= 20`);
  process.exit(1);
}
const tools = ensureTools(target);
ensureOptionalTools(target);
const modules = ensureNodeModules();
console.log(`${tag} ready for ${target}: ${modules}; ${tools}`);
