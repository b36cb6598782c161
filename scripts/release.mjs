#!/usr/bin/env node
// `npm run release`: a self-contained release of mailgw, to install on a server without a git
// clone, npm registry access or a build:
//
//   release/mailgw-<version>/          bin/mailgw (the launcher), packages/*/{package.json,dist,bin,lua},
//                                      node_modules (production dependencies only), packaging/systemd,
//                                      README.md, package.json, package-lock.json
//   release/mailgw-<version>.tar.gz    the same directory, packed
//
// It needs a built tree (`npm run release` runs `tsc -b` first) and this checkout's node_modules:
// they are copied and pruned of development dependencies offline (`npm prune --omit=dev`).
// The directory is relocatable (node_modules/@mailgw/* are relative links); install it as
// /opt/mailgw (README "Running it as a service").
//
//   node scripts/release.mjs [--out DIR]     (default DIR: release/ in this checkout)
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tag = 'release:';

function fail(msg) {
  console.error(`${tag} ${msg}`);
  process.exit(1);
}

const args = process.argv.slice(2);
let outDir = path.join(root, 'release');
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out' && args[i + 1]) outDir = path.resolve(args[++i]);
  else fail(`unknown argument "${args[i]}" (usage: node scripts/release.mjs [--out DIR])`);
}

const rootPkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const version = JSON.parse(readFileSync(path.join(root, 'packages/cli/package.json'), 'utf8')).version;
const name = `mailgw-${version}`;
const dest = path.join(outDir, name);

if (!existsSync(path.join(root, 'node_modules'))) fail('no node_modules in this checkout: run `npm ci` first');
const packages = readdirSync(path.join(root, 'packages'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
for (const p of packages) {
  if (!existsSync(path.join(root, 'packages', p, 'dist'))) fail(`packages/${p}/dist is missing: run \`npm run build\` (npm run release does it first)`);
}

rmSync(dest, { recursive: true, force: true });
mkdirSync(dest, { recursive: true });

// The workspaces: what runs, nothing to build or test.
for (const p of packages) {
  const from = path.join(root, 'packages', p);
  const to = path.join(dest, 'packages', p);
  mkdirSync(to, { recursive: true });
  cpSync(path.join(from, 'package.json'), path.join(to, 'package.json'));
  cpSync(path.join(from, 'dist'), path.join(to, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.tsbuildinfo') });
  for (const extra of ['bin', 'lua', 'README.md']) {
    if (existsSync(path.join(from, extra))) cpSync(path.join(from, extra), path.join(to, extra), { recursive: true });
  }
}

// The root manifest without the development scripts (they need the sources and scripts/).
const { scripts: _scripts, ...manifest } = rootPkg;
writeFileSync(path.join(dest, 'package.json'), `${JSON.stringify({ ...manifest, version }, null, 2)}\n`);
cpSync(path.join(root, 'package-lock.json'), path.join(dest, 'package-lock.json'));
cpSync(path.join(root, 'README.md'), path.join(dest, 'README.md'));
cpSync(path.join(root, 'packaging'), path.join(dest, 'packaging'), { recursive: true });

// The launcher: node from PATH (Node.js >= 20), wherever the directory (or a link to it) is.
mkdirSync(path.join(dest, 'bin'));
writeFileSync(
  path.join(dest, 'bin', 'mailgw'),
  '#!/bin/sh\n# mailgw launcher of a release directory (Node.js >= 20 on PATH).\nhere=$(dirname "$(readlink -f "$0")")\n# Linked as /usr/sbin/sendmail: mailgw sendmail; as mailq and newaliases: sendmail -bp and -bi.\ncase "${0##*/}" in sendmail) set -- sendmail "$@" ;; mailq) set -- sendmail -bp "$@" ;; newaliases) set -- sendmail -bi "$@" ;; esac\nexec node "$here/../packages/cli/bin/mailgw.js" "$@"\n',
);
chmodSync(path.join(dest, 'bin', 'mailgw'), 0o755);

// Production dependencies: this checkout's, copied (links kept) and pruned offline.
cpSync(path.join(root, 'node_modules'), path.join(dest, 'node_modules'), { recursive: true, verbatimSymlinks: true, filter: (src) => path.basename(src) !== '.mailgw-bootstrap-stamp' });
const prune = spawnSync('npm', ['prune', '--omit=dev', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dest, encoding: 'utf8' });
if (prune.status !== 0) fail(`npm prune --omit=dev failed in ${dest}:\n${prune.stdout}${prune.stderr}`);

const tarball = path.join(outDir, `${name}.tar.gz`);
const tar = spawnSync('tar', ['-czf', tarball, '-C', outDir, name], { encoding: 'utf8' });
if (tar.status !== 0) fail(`tar failed: ${tar.stderr}`);
console.log(`${tag} ${dest}\n${tag} ${tarball}`);
