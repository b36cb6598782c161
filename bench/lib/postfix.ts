// Postfix 3.x as the side-by-side peer of the benchmark: a private relay instance in a temporary
// config directory (`postfix -c DIR`), on loopback only, relaying everything to the bench's
// sink. Nothing under /etc/postfix is touched (Postfix only reads its meta files there).
// Needs root (the master runs as root, its daemons as `postfix`) and Debian's postfix package.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, processTree, waitForPort, which } from './procs.js';

export interface PostfixRelay {
  port: number;
  version: string;
  /** The master's pid (its daemons are its children). */
  masterPid: number;
  /** Undelivered messages left in the queue (active, incoming, deferred, maildrop). */
  queued(): number;
  stop(): Promise<void>;
}

export function postfixVersion(): string | null {
  if (!which('postfix') || !which('postconf')) return null;
  const r = spawnSync(which('postconf')!, ['-d', '-h', 'mail_version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Debian's stock services, with chroot off (the queue lives outside any chroot), smtpd on a
 * loopback port, and postlogd so that the log goes to a file in the temp dir (no syslog). */
function masterCf(port: number): string {
  const rows = [
    [`127.0.0.1:${port}`, 'inet', 'n', '-', 'n', '-', '-', 'smtpd'],
    ['pickup', 'unix', 'n', '-', 'n', '60', '1', 'pickup'],
    ['cleanup', 'unix', 'n', '-', 'n', '-', '0', 'cleanup'],
    ['qmgr', 'unix', 'n', '-', 'n', '300', '1', 'qmgr'],
    ['tlsmgr', 'unix', '-', '-', 'n', '1000?', '1', 'tlsmgr'],
    ['rewrite', 'unix', '-', '-', 'n', '-', '-', 'trivial-rewrite'],
    ['bounce', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['defer', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['trace', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['verify', 'unix', '-', '-', 'n', '-', '1', 'verify'],
    ['flush', 'unix', 'n', '-', 'n', '1000?', '0', 'flush'],
    ['proxymap', 'unix', '-', '-', 'n', '-', '-', 'proxymap'],
    ['proxywrite', 'unix', '-', '-', 'n', '-', '1', 'proxymap'],
    ['smtp', 'unix', '-', '-', 'n', '-', '-', 'smtp'],
    ['relay', 'unix', '-', '-', 'n', '-', '-', 'smtp'],
    ['showq', 'unix', 'n', '-', 'n', '-', '-', 'showq'],
    ['error', 'unix', '-', '-', 'n', '-', '-', 'error'],
    ['retry', 'unix', '-', '-', 'n', '-', '-', 'error'],
    ['discard', 'unix', '-', '-', 'n', '-', '-', 'discard'],
    ['local', 'unix', '-', 'n', 'n', '-', '-', 'local'],
    ['virtual', 'unix', '-', 'n', 'n', '-', '-', 'virtual'],
    ['lmtp', 'unix', '-', '-', 'n', '-', '-', 'lmtp'],
    ['anvil', 'unix', '-', '-', 'n', '-', '1', 'anvil'],
    ['scache', 'unix', '-', '-', 'n', '-', '1', 'scache'],
    ['postlog', 'unix-dgram', 'n', '-', 'n', '-', '1', 'postlogd'],
  ];
  return rows.map((r) => r.join('  ')).join('\n') + '\n';
}

/** Starts a plain Postfix relay on 127.0.0.1 that sends everything to [127.0.0.1]:sinkPort. */
export async function startPostfixRelay(sinkPort: number): Promise<PostfixRelay> {
  const version = postfixVersion();
  if (!version) throw new Error('postfix is not installed');
  if (process.getuid?.() !== 0) throw new Error('the Postfix peer needs root (its master runs as root)');
  const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-bench-postfix-'));
  // The daemons (user postfix) must reach the queue and the log below it.
  chmodSync(dir, 0o755);
  const conf = path.join(dir, 'etc');
  const queue = path.join(dir, 'queue');
  const data = path.join(dir, 'data');
  for (const d of [conf, queue, data]) mkdirSync(d, { mode: 0o755 });
  // The master's lock file and the daemons' caches live in data_directory, owned by mail_owner.
  const own = spawnSync('chown', ['postfix:', data]);
  if (own.status !== 0) throw new Error(`chown postfix: ${data} failed`);
  const port = await freePort();
  writeFileSync(
    path.join(conf, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      `maillog_file = ${path.join(dir, 'maillog')}`,
      `maillog_file_prefixes = /var, /dev/stdout, ${dir}`,
      'myhostname = postfix.bench.test',
      'mydomain = bench.test',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mydestination =',
      'local_recipient_maps =',
      'alias_maps =',
      'alias_database =',
      'local_transport = error:local delivery is disabled',
      'mynetworks = 127.0.0.0/8',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      `relayhost = [127.0.0.1]:${sinkPort}`,
      'smtp_dns_support_level = disabled',
      'smtpd_tls_security_level = none',
      'smtp_tls_security_level = none',
      'biff = no',
      // default_destination_concurrency_limit = 20 (its default), everything else Postfix's defaults.
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(conf, 'master.cf'), masterCf(port));
  const postfix = which('postfix')!;
  const run = (args: string[]) => {
    const r = spawnSync(postfix, ['-c', conf, ...args], { encoding: 'utf8' });
    if (r.status !== 0) {
      let log = '';
      try {
        log = readFileSync(path.join(dir, 'maillog'), 'utf8').split('\n').slice(-8).join('\n');
      } catch {}
      throw new Error(`postfix -c ${conf} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}\n${log}`);
    }
  };
  const pidFile = path.join(queue, 'pid/master.pid');
  let masterPid = 0;
  const cleanup = () => {
    // A bench that dies must not leave a Postfix behind.
    if (masterPid) {
      try {
        process.kill(masterPid, 'SIGTERM');
      } catch {}
    }
  };
  try {
    run(['check']); // creates the queue directories with their owners
    run(['start']);
    const deadline = Date.now() + 20_000;
    while (!existsSync(pidFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    masterPid = Number(readFileSync(pidFile, 'utf8').trim());
    process.once('exit', cleanup);
    await waitForPort(port);
  } catch (e) {
    cleanup();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const queueDirs = ['maildrop', 'incoming', 'active', 'deferred'].map((d) => path.join(queue, d));
  const countFiles = (d: string): number => {
    const r = spawnSync('find', [d, '-type', 'f'], { encoding: 'utf8' });
    return r.stdout.split('\n').filter(Boolean).length;
  };
  return {
    port,
    version,
    masterPid,
    queued: () => queueDirs.reduce((a, d) => a + countFiles(d), 0),
    async stop() {
      // Clean stop: the master takes its daemons down on SIGTERM (what `postfix stop` does).
      const pids = processTree(masterPid);
      try {
        process.kill(masterPid, 'SIGTERM');
      } catch {}
      const deadline = Date.now() + 15_000;
      const alive = () => pids.filter((p) => {
        try {
          return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
        } catch {
          return false;
        }
      });
      while (alive().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const left = alive();
      for (const p of left) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {}
      }
      process.removeListener('exit', cleanup);
      if (left.length) process.stderr.write(`bench: Postfix did not stop within 15 s; killed ${left.length} process(es)\n`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
