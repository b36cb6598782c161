/**
 * Test harness: a real rspamd (Debian's package) per call, on free loopback ports with its own
 * temporary directory: the normal worker (HTTP /checkv2) and the proxy worker in milter mode.
 * The configuration is Debian's own (/etc/rspamd) with every path variable pointed at the temp
 * dir and a local.d that keeps it off the network and away from Redis: DNS to a dead loopback
 * port with a short timeout, hyperscan off (no minutes-long regexp compile at start), and the
 * modules that look things up (RBLs, SURBL, SPF/DKIM/DMARC/ARC, fuzzy, neural, greylisting,
 * reputation, …) disabled. What stays is rspamd's local rule set, which is what the tests
 * judge with (GTUBE, MIME and header rules).
 *
 *   const rspamd = await startRspamd();   // null when rspamd is not installed
 *   after(() => rspamd?.stop());
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findExecutable, findFreePort } from '@mailgw/queue';

export interface TestRspamd {
  /** http://127.0.0.1:<port> of the normal worker. */
  readonly url: string;
  /** inet:127.0.0.1:<port> of the proxy worker in milter mode. */
  readonly milter: string;
  readonly dir: string;
  stop(): Promise<void>;
}

/** The rspamd binary, or null. */
export function findRspamd(): string | null {
  return findExecutable('rspamd');
}

/** Why the rspamd tests are skipped, or false when rspamd is there. */
export function rspamdSkip(): string | false {
  return findRspamd() ? false : 'rspamd is not installed and the bootstrap could not install it (as root: apt-get install -y --no-install-recommends rspamd)';
}

const DISABLED = [
  'rbl', 'surbl', 'asn', 'emails', 'phishing', 'spf', 'dkim', 'dmarc', 'arc', 'dkim_signing', 'fuzzy_check', 'mx_check', 'neural', 'greylist', 'ratelimit',
  'reputation', 'history_redis', 'url_redirector', 'once_received', 'replies', 'p0f', 'dcc', 'antivirus', 'external_services', 'clickhouse', 'elastic',
  'metadata_exporter', 'bimi', 'rspamd_update', 'maillist', 'spamassassin', 'multimap', 'whitelist', 'external_relay', 'aws_s3', 'metric_exporter', 'trie', 'spamtrap',
];


async function pong(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(500) });
    return r.ok && (await r.text()).trim() === 'pong';
  } catch {
    return false;
  }
}

export async function startRspamd(opts: { extraLocal?: Record<string, string> } = {}): Promise<TestRspamd | null> {
  const bin = findRspamd();
  if (!bin) return null;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-rspamd-'));
  const local = path.join(dir, 'local.d');
  mkdirSync(local);
  const [normal, proxy] = [await findFreePort('127.0.0.1'), await findFreePort('127.0.0.1')];
  writeFileSync(
    path.join(dir, 'rspamd.conf'),
    `.include "$CONFDIR/common.conf"
options {
  pidfile = "$RUNDIR/rspamd.pid";
  .include "$CONFDIR/options.inc"
  .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}
logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "error"; }
worker "normal" {
  bind_socket = "127.0.0.1:${normal}";
  .include "$CONFDIR/worker-normal.inc"
  count = 1;
}
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:${proxy}";
  milter = yes;
  timeout = 20s;
  count = 1;
  max_retries = 5;
  upstream "local" { default = yes; hosts = "127.0.0.1:${normal}"; }
  reject_message = "Spam message rejected";
}
`,
  );
  writeFileSync(path.join(local, 'options.inc'), 'dns { nameserver = ["127.0.0.1:9"]; timeout = 0.1s; retransmits = 1; }\ndisable_hyperscan = true;\n');
  for (const m of DISABLED) writeFileSync(path.join(local, `${m}.conf`), 'enabled = false;\n');
  // What /checkv2 returns in milter.add_headers: the symbols (X-Spamd-Result), as a mailbox would show them.
  writeFileSync(path.join(local, 'milter_headers.conf'), 'use = ["x-spamd-result"];\nskip_local = false;\nskip_authenticated = false;\n');
  // Two test rules. MAILGW_TEST_ENVELOPE lists (score 0) the envelope rspamd was given, so a
  // test can see it in X-Spamd-Result. MAILGW_TEST_SCORE: a Subject containing "score=N" scores N, so a test can reach each of rspamd's
  // actions (greylist 4, add header 6, rewrite subject 8, reject 15) with a real scan.
  writeFileSync(
    path.join(dir, 'rspamd.local.lua'),
    `rspamd_config:register_symbol({ name = 'MAILGW_TEST_SCORE', score = 1.0, callback = function(task)
  local s = task:get_header('Subject')
  local n = s and s:match('score=(%d+)')
  if n then return true, tonumber(n) end
  return false
end })
rspamd_config:register_symbol({ name = 'MAILGW_TEST_ENVELOPE', score = 0.0, callback = function(task)
  local opts = {}
  for _, r in ipairs(task:get_recipients('smtp') or {}) do table.insert(opts, 'rcpt=' .. r.addr) end
  local from = task:get_from('smtp')
  if from and from[1] then table.insert(opts, 'from=' .. from[1].addr) end
  table.insert(opts, 'ip=' .. tostring(task:get_from_ip()))
  table.insert(opts, 'helo=' .. tostring(task:get_helo()))
  table.insert(opts, 'qid=' .. tostring(task:get_queue_id()))
  return true, 1.0, opts
end })
`,
  );
  writeFileSync(path.join(local, 'actions.conf'), 'rewrite_subject = 8;\n');
  for (const [f, text] of Object.entries(opts.extraLocal ?? {})) writeFileSync(path.join(local, f), text);
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0 ? ['-u', 'root', '-g', 'root'] : [];
  const vars = ['LOCAL_CONFDIR', 'DBDIR', 'RUNDIR', 'LOGDIR'].flatMap((v) => ['--var', `${v}=${dir}`]);
  const child: ChildProcess = spawn(bin, ['-f', ...asRoot, '-c', path.join(dir, 'rspamd.conf'), ...vars], { stdio: ['ignore', 'ignore', 'pipe'], detached: false });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  const url = `http://127.0.0.1:${normal}`;
  const t0 = Date.now();
  while (!(await pong(url))) {
    if (exited || Date.now() - t0 > 60_000) {
      child.kill('SIGKILL');
      let log = '';
      try {
        log = readFileSync(path.join(dir, 'rspamd.log'), 'utf8').slice(-2000);
      } catch {
        // none
      }
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`rspamd did not start (${exited ? 'it exited' : 'no pong within 60 s'}): ${stderr.slice(-1000)}${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    milter: `inet:127.0.0.1:${proxy}`,
    dir,
    async stop() {
      if (!exited) {
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
