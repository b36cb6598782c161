// scripts/bootstrap.mjs checks what the tools can do, not only that they are on PATH. Run on a
// copy of the script in a scratch checkout (its own package-lock.json and install stamp, so it
// never runs npm), with fake swaks / apt-get first on PATH: the fake swaks lacks TLS until the
// fake apt-get "installs" libnet-ssleay-perl, and apt-get records what it was asked for.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const isRoot = process.getuid?.() === 0;
const PKGS = 'swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl';

interface Scratch {
  readonly dir: string;
  readonly state: string;
  /** apt-get invocations, one argument list per line. */
  aptCalls(): string[];
  run(opts?: { uid?: number; aptFixes?: boolean }): { code: number | null; out: string; err: string };
}

const scratches: string[] = [];
after(() => {
  for (const d of scratches) rmSync(d, { recursive: true, force: true });
});

function scratch(initial: { tls: boolean }): Scratch {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-bootstrap-'));
  scratches.push(dir);
  chmodSync(dir, 0o755); // readable by the unprivileged user of the non-root case
  mkdirSync(path.join(dir, 'scripts'));
  copyFileSync(path.join(repo, 'scripts/bootstrap.mjs'), path.join(dir, 'scripts/bootstrap.mjs'));
  const lock = '{"lockfileVersion":3}\n';
  writeFileSync(path.join(dir, 'package-lock.json'), lock);
  mkdirSync(path.join(dir, 'node_modules'));
  writeFileSync(path.join(dir, 'node_modules/.mailgw-bootstrap-stamp'), `${createHash('sha256').update(lock).digest('hex')} node-abi-${process.versions.modules}\n`);
  const bin = path.join(dir, 'bin');
  const state = path.join(dir, 'state');
  mkdirSync(bin);
  mkdirSync(state, { mode: 0o777 });
  chmodSync(state, 0o777);
  if (initial.tls) writeFileSync(path.join(state, 'ssl'), '');
  const tool = (name: string, body: string) => {
    writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  // Output as swaks 20201014 prints it: supported features on stdout, missing ones on stderr.
  tool(
    'swaks',
    [
      '[ "$1" = --support ] || exit 9',
      'echo "=== Basic AUTH supported"',
      `if [ -f "${state}/ssl" ]; then echo "=== TLS supported"; else echo "*** TLS not available: requires Net::SSLeay" >&2; fi`,
    ].join('\n'),
  );
  tool('redis-server', 'echo "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=0"');
  for (const optional of ['nmap', 'chromium', 'rspamd', 'opendkim', 'systemd-analyze']) tool(optional, 'exit 0');
  tool(
    'apt-get',
    [`echo "$*" >> "${state}/apt.log"`, `if [ -f "${state}/apt-fixes" ]; then case " $* " in *" libnet-ssleay-perl "*) : > "${state}/ssl";; esac; fi`, 'exit 0'].join('\n'),
  );
  return {
    dir,
    state,
    aptCalls: () => (existsSync(path.join(state, 'apt.log')) ? readFileSync(path.join(state, 'apt.log'), 'utf8').trim().split('\n') : []),
    run(opts = {}) {
      if (opts.aptFixes ?? true) writeFileSync(path.join(state, 'apt-fixes'), '');
      else rmSync(path.join(state, 'apt-fixes'), { force: true });
      const r = spawnSync(process.execPath, [path.join(dir, 'scripts/bootstrap.mjs'), '--for', 'test'], {
        cwd: dir,
        encoding: 'utf8',
        env: { PATH: `${bin}:${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: dir },
        ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
        timeout: 30_000,
      });
      return { code: r.status, out: r.stdout, err: r.stderr };
    },
  };
}

describe('bootstrap: tools must be complete, not only present', () => {
  it('as root: a swaks without TLS gets its Perl TLS and SASL packages installed', { skip: !isRoot && 'needs root' }, () => {
    const s = scratch({ tls: false });
    const r = s.run();
    assert.equal(r.code, 0, r.out + r.err);
    assert.deepEqual(s.aptCalls(), ['update', `install -y --no-install-recommends ${PKGS}`]);
    assert.match(r.out, /installing swaks libnet-ssleay-perl .* because swaks: TLS not available \(requires Net::SSLeay\)/);
    assert.match(r.out, /ready for test/);
  });

  it('as root: when apt-get leaves swaks without TLS, it stops and says what is still missing', { skip: !isRoot && 'needs root' }, () => {
    const s = scratch({ tls: false });
    const r = s.run({ aptFixes: false });
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.err, /apt-get finished but the tools are still not usable: swaks: TLS not available \(requires Net::SSLeay\)/);
    assert.doesNotMatch(r.out, /ready for test/);
  });

  it('complete tools: nothing is installed (idempotent)', () => {
    const s = scratch({ tls: true });
    const r = s.run();
    assert.equal(r.code, 0, r.out + r.err);
    assert.deepEqual(s.aptCalls(), []);
    assert.match(r.out, /ready for test: node_modules up to date; redis-server and swaks found, with TLS and AUTH support in swaks/);
  });

  it('not root: stops with the exact apt-get command, installs nothing', () => {
    const s = scratch({ tls: false });
    const r = s.run(isRoot ? { uid: 65534 } : {});
    assert.equal(r.code, 1, r.out + r.err);
    assert.deepEqual(s.aptCalls(), []);
    assert.match(r.err, /swaks: TLS not available \(requires Net::SSLeay\)/);
    assert.ok(r.err.includes(`    sudo apt-get install -y --no-install-recommends ${PKGS}\n`), r.err);
  });
});
