// The shipped systemd units (packaging/systemd): `systemd-analyze verify` accepts them with no
// warning at all (an unknown or misspelt key is only a warning there, so any output fails), in
// a scratch root that holds what verify looks for (systemd's own units, /bin/kill and the
// /opt/mailgw/bin/mailgw launcher); and they say what the README promises: the mailgw user,
// port 25 by CAP_NET_BIND_SERVICE only, SIGHUP for reload, a stop timeout above the drain, the
// hardening.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SHUTDOWN_GRACE_MS } from '../../packages/cli/src/commands/serve.js';
import { gatewaySchema } from '@mailgw/config';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const unitsDir = path.join(repo, 'packaging', 'systemd');
const ANALYZE = '/usr/bin/systemd-analyze';
const SYSTEM_UNITS = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(path.join(d, 'multi-user.target')));
const skip = !existsSync(ANALYZE) ? `${ANALYZE} is not installed (Debian package systemd; npm test's bootstrap installs it as root)` : !SYSTEM_UNITS ? "systemd's own units (multi-user.target) are not installed" : false;

/** Key → values of a unit file ([Section] names dropped; keys may repeat). */
function directives(file: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}
const one = (d: Map<string, string[]>, key: string) => {
  const v = d.get(key);
  assert.ok(v && v.length === 1, `${key}= appears once (${JSON.stringify(v)})`);
  return v[0]!;
};
const seconds = (v: string) => {
  const m = /^(\d+)(s|min)?$/.exec(v);
  assert.ok(m, `a duration: ${v}`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
};

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** A scratch root for `systemd-analyze verify --root`, with the units installed in it. */
function scratchRoot(): string {
  const root = mkdtempSync(path.join(tmpdir(), 'mailgw-systemd-'));
  roots.push(root);
  cpSync(SYSTEM_UNITS!, path.join(root, 'usr/lib/systemd/system'), { recursive: true, dereference: false, verbatimSymlinks: true });
  mkdirSync(path.join(root, 'bin'));
  cpSync(existsSync('/usr/bin/kill') ? '/usr/bin/kill' : '/bin/kill', path.join(root, 'bin/kill'));
  mkdirSync(path.join(root, 'opt/mailgw/bin'), { recursive: true });
  writeFileSync(path.join(root, 'opt/mailgw/bin/mailgw'), '#!/bin/sh\n');
  chmodSync(path.join(root, 'opt/mailgw/bin/mailgw'), 0o755);
  mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
  for (const u of ['mailgw.service', 'mailgw-worker.service']) cpSync(path.join(unitsDir, u), path.join(root, 'etc/systemd/system', u));
  return root;
}

describe('systemd units', () => {
  it('systemd-analyze verify passes on both units, without a single warning', { skip }, () => {
    const root = scratchRoot();
    const r = spawnSync(ANALYZE, ['verify', `--root=${root}`, '--man=no', '/etc/systemd/system/mailgw.service', '/etc/systemd/system/mailgw-worker.service'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(`${r.stdout}${r.stderr}`, '', 'verify printed warnings');
  });

  it('a misspelt key is caught (the check above is not blind)', { skip }, () => {
    const root = scratchRoot();
    const file = path.join(root, 'etc/systemd/system/mailgw.service');
    writeFileSync(file, readFileSync(file, 'utf8').replace('ProtectSystem=strict', 'ProtectSytem=strict'));
    const r = spawnSync(ANALYZE, ['verify', `--root=${root}`, '--man=no', '/etc/systemd/system/mailgw.service'], { encoding: 'utf8', timeout: 60_000 });
    assert.match(r.stderr, /Unknown key 'ProtectSytem'/);
  });

  it('mailgw.service: runs mailgw start as mailgw, binds 25/587 by CAP_NET_BIND_SERVICE only, reloads by SIGHUP, stops after the drain, hardened', () => {
    const d = directives(path.join(unitsDir, 'mailgw.service'));
    assert.equal(one(d, 'User'), 'mailgw');
    assert.equal(one(d, 'ExecStart'), '/opt/mailgw/bin/mailgw start --config /etc/mailgw/gateway.yaml');
    assert.equal(one(d, 'AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
    assert.equal(one(d, 'CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE');
    // The live reload of mailgw start and mailgw worker is SIGHUP (packages/ops/src/config-watch.ts).
    assert.equal(one(d, 'ExecReload'), '/bin/kill -HUP $MAINPID');
    // SIGTERM to the supervisor only: it drains the listeners, then the workers, then its Redis.
    assert.equal(one(d, 'KillMode'), 'mixed');
    const drain = gatewaySchema.shape.queue.parse(undefined).drainTimeout;
    assert.ok(seconds(one(d, 'TimeoutStopSec')) * 1000 > SHUTDOWN_GRACE_MS + drain + 15_000, 'TimeoutStopSec above the listener grace + drainTimeout + Redis stop');
    assert.equal(one(d, 'Restart'), 'on-failure');
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ReadWritePaths', '/var/lib/mailgw'], ['StateDirectory', 'mailgw'], ['PrivateTmp', 'yes'], ['ProtectHome', 'yes'], ['PrivateDevices', 'yes']] as const) {
      assert.equal(one(d, k), v, k);
    }
  });

  it('mailgw-worker.service: runs mailgw worker as mailgw with no capabilities, stops after the drain', () => {
    const d = directives(path.join(unitsDir, 'mailgw-worker.service'));
    assert.equal(one(d, 'User'), 'mailgw');
    assert.equal(one(d, 'ExecStart'), '/opt/mailgw/bin/mailgw worker --config /etc/mailgw/gateway.yaml');
    assert.equal(one(d, 'CapabilityBoundingSet'), '');
    assert.equal(one(d, 'ExecReload'), '/bin/kill -HUP $MAINPID');
    const drain = gatewaySchema.shape.queue.parse(undefined).drainTimeout;
    assert.ok(seconds(one(d, 'TimeoutStopSec')) * 1000 > drain + 5_000);
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ReadWritePaths', '/var/lib/mailgw'], ['PrivateTmp', 'yes'], ['ProtectHome', 'yes'], ['Restart', 'on-failure']] as const) {
      assert.equal(one(d, k), v, k);
    }
  });
});
