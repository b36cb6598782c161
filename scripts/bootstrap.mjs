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
//    swaks (test). Checked for what the tests use, not only for presence:
//    `swaks --support` must report TLS and Basic AUTH (swaks installed with
//    --no-install-recommends lacks Net::SSLeay and cannot STARTTLS), and
//    `redis-server --version` must run. A missing or incomplete tool is
//    installed with apt-get as root (swaks with libnet-ssleay-perl,
//    libio-socket-ssl-perl and libauthen-sasl-perl); otherwise the script
//    stops and prints the exact apt-get command. nmap (test, optional: the
//    security suite skips its nmap test without it) and chromium (test, optional:
//    the ops dashboard's browser test skips without it), rspamd and opendkim (test,
//    optional: the content-filter tests skip without them), slapd and ldap-utils (test,
//    optional: the directory tests run a real OpenLDAP and skip without it) and systemd-analyze (Debian's
//    systemd package; test, optional: the unit file check skips without it), promtool (Debian's
//    prometheus package; test, optional: the alert rules check skips without it), 7zz, xz and xorriso
//    (Debian's 7zip, xz-utils and xorriso; test, optional: the 7z and ISO readers' comparisons skip
//    without them) are installed
//    with apt-get as root; failing that only warns.
//
// Idempotent, and fast when all is present: a few stat calls, one hash, and
// `swaks --support` / `redis-server --version` (about 50 ms together, so they
// are run every time rather than cached in a stamp that could go stale when
// packages are removed).
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
  // rspamd and opendkim: the content-filter tests run the real ones (they skip without them).
  // slapd and ldap-utils (ldapadd): the directory tests run a real OpenLDAP (they skip without it).
  // systemd-analyze (Debian package systemd): test/packaging verifies the shipped units with it.
  // promtool (Debian package prometheus): test/packaging checks the shipped alert rules with it.
  // 7zz (Debian package 7zip) and xz (xz-utils): the 7z reader's tests compare it with 7-Zip's
  // own listing and its LZMA decoder with what xz encodes; xorriso: the ISO reader's with the
  // images it writes (they skip without them).
  const packageOf = { nmap: 'nmap', chromium: 'chromium', rspamd: 'rspamd', opendkim: 'opendkim', slapd: 'slapd', ldapadd: 'ldap-utils', 'systemd-analyze': 'systemd', promtool: 'prometheus', '7zz': '7zip', xz: 'xz-utils', xorriso: 'xorriso' };
  const absent = target === 'test' ? [...new Set(Object.keys(packageOf).filter((t) => !which(t)).map((t) => packageOf[t]))] : [];
  if (absent.length === 0 || !isRoot || !which('apt-get')) return;
  console.log(`${tag} installing ${absent.join(' ')} with apt-get (optional test tools)`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  let code = run('apt-get', ['update'], env);
  if (code === 0) code = run('apt-get', ['install', '-y', '--no-install-recommends', ...absent], env);
  if (code !== 0) console.warn(`${tag} could not install ${absent.join(' ')} (apt-get exit ${code}); the tests that need it will be skipped`);
}

// What each required tool must be able to do, and the Debian packages that give it that. A tool
// that is on PATH but lacks a capability the tests use (swaks without Net::SSLeay cannot
// STARTTLS) counts as missing: it would make other tests fail obscurely.
const TOOL_PACKAGES = {
  'redis-server': ['redis-server'],
  // Net::SSLeay + IO::Socket::SSL: --tls; Authen::SASL: the AUTH mechanisms beyond PLAIN/LOGIN.
  swaks: ['swaks', 'libnet-ssleay-perl', 'libio-socket-ssl-perl', 'libauthen-sasl-perl'],
};

/** Runs `cmd args`: { ok (exit 0), out (stdout and stderr together), error (could not run) }; never throws. */
function probe(cmd, args) {
  const res = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { ok: !res.error && res.status === 0, out: `${res.stdout ?? ''}${res.stderr ?? ''}`, error: res.error?.message ?? null };
}

/**
 * `swaks --support` prints "=== <feature> supported" or "*** <feature> not available: requires
 * <module>" per feature. The tests use TLS (--tls) and PLAIN/LOGIN (Basic AUTH).
 */
const SWAKS_FEATURES = ['TLS', 'Basic AUTH'];
function swaksGaps(supportOutput) {
  const gaps = [];
  for (const feature of SWAKS_FEATURES) {
    if (new RegExp(`^=== ${feature} supported\\s*$`, 'm').test(supportOutput)) continue;
    const why = new RegExp(`^\\*\\*\\* ${feature} not available: (.*)$`, 'm').exec(supportOutput);
    gaps.push(`${feature} not available${why ? ` (${why[1].trim()})` : ''}`);
  }
  return gaps;
}

/** Why `tool` (found at `bin`) cannot serve the tests, as short phrases; [] when it can. */
function capabilityGaps(tool, bin) {
  if (tool === 'swaks') {
    const r = probe(bin, ['--support']);
    if (r.error) return [`\`swaks --support\` could not run: ${r.error}`];
    return swaksGaps(r.out);
  }
  if (tool === 'redis-server') {
    const r = probe(bin, ['--version']);
    return r.ok && /Redis server v=/.test(r.out) ? [] : [`\`redis-server --version\` failed: ${(r.error ?? r.out).trim().split('\n')[0]}`];
  }
  return [];
}

/** Every needed tool that is missing or incomplete, with why. */
function toolProblems(needed) {
  const problems = [];
  for (const tool of needed) {
    const bin = which(tool);
    if (!bin) problems.push({ tool, why: ['not installed (looked on PATH and in /usr/sbin, /usr/bin)'] });
    else {
      const gaps = capabilityGaps(tool, bin);
      if (gaps.length) problems.push({ tool, why: gaps });
    }
  }
  return problems;
}

const describeProblems = (problems) => problems.map((p) => `${p.tool}: ${p.why.join('; ')}`).join('; ');

function ensureTools(target) {
  const needed = [];
  if (target === 'test' || !process.env.REDIS_URL) needed.push('redis-server');
  if (target === 'test') needed.push('swaks');
  if (needed.length === 0) return 'using REDIS_URL';
  const problems = toolProblems(needed);
  if (problems.length === 0) return `${needed.join(' and ')} found, with ${target === 'test' ? 'TLS and AUTH support in swaks' : 'what mailgw needs'}`;

  // Installing a tool's packages when it is present is harmless: apt-get keeps what is there and
  // adds the missing libraries.
  const pkgs = [...new Set(problems.flatMap((p) => TOOL_PACKAGES[p.tool]))];
  const command = `apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && which('apt-get')) {
    console.log(`${tag} installing ${pkgs.join(' ')} with apt-get because ${describeProblems(problems)}`);
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    let code = run('apt-get', ['update'], env);
    if (code === 0) code = run('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], env);
    if (code !== 0) {
      console.error(`${tag} apt-get failed (exit ${code}); the tests need: ${describeProblems(problems)}`);
      console.error(`${tag} fix apt and run:  ${command}`);
      process.exit(1);
    }
    const still = toolProblems(needed);
    if (still.length > 0) {
      console.error(`${tag} apt-get finished but the tools are still not usable: ${describeProblems(still)}`);
      process.exit(1);
    }
    return `installed ${pkgs.join(' ')}`;
  }

  console.error(`${tag} the ${target === 'test' ? 'tests need' : 'gateway needs'} tools that are missing or incomplete:`);
  for (const p of problems) console.error(`${tag}   ${p.tool}: ${p.why.join('; ')}`);
  console.error(`${tag} install them with:`);
  console.error(`    sudo ${command}`);
  if (target === 'start') {
    console.error(`${tag} or use an existing Redis instead: REDIS_URL=redis://host:6379 npm start`);
  } else if (problems.some((p) => p.tool === 'redis-server')) {
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
