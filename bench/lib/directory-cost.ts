// The cost of a directory question, as the listener asks it for a recipient lookup the cache
// does not answer (recipients: { directory: true }, a new address): Debian's OpenLDAP (the test
// harness' slapd, the AD-shaped fixture, StartTLS) on loopback, @mailgw/directory's client,
// half the addresses known and half not (as a dictionary attack mixes them), asked one at a time
// and 20 at a time, with the connections kept (idleTimeout, the default) and with a new
// connection, StartTLS and bind per question (idleTimeout 0, as before 2026-12-06). The figures
// are questions per second, the latency of one, connections the directory saw (counted by a
// loopback proxy in front of it) and slapd's CPU time per question; and, one at a time, AUTH
// logons per second (the account found, its password checked by a bind). `--skip directory` leaves it
// out; without slapd it is skipped with a line saying so.
import { readFileSync } from 'node:fs';
import type { DirectoryConfig } from '@mailgw/config';
import { createDirectoryClient } from '@mailgw/directory';
import { BASE_DN, FIXTURE_PASSWORD, SERVICE_DN, slapdSkip, startSlapd } from '../../test/harness/slapd.js';
import { startTcpProxy } from '../../test/harness/tcp-proxy.js';
import { percentile } from './smtp-client.js';

export interface DirectoryCost {
  readonly mode: 'kept' | 'per-question';
  readonly concurrency: number;
  readonly questions: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** TCP connections the directory accepted for these questions. */
  readonly connections: number;
  /** slapd's CPU (user + system) per question, ms. */
  readonly slapdCpuMs: number;
  /** Answers other than the expected found / not-found (should be 0). */
  readonly wrong: number;
  /** AUTH logons (the account found, its password checked by a bind), one at a time: per second and the median, when measured (concurrency 1). */
  readonly logonsPerSec?: number;
  readonly logonP50Ms?: number;
}

/** slapd's CPU time so far (utime + stime from /proc), ms; null where /proc is not readable. */
function slapdCpu(pid: number): number | null {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

export async function measureDirectoryCost(o: { questions: number; log: (s: string) => void }): Promise<DirectoryCost[] | { skipped: string }> {
  const why = slapdSkip();
  if (why) return { skipped: why };
  const ldap = (await startSlapd())!;
  const out: DirectoryCost[] = [];
  try {
    for (const concurrency of [1, 20]) {
      for (const mode of ['kept', 'per-question'] as const) {
        const proxy = await startTcpProxy(ldap.port);
        const cfg: DirectoryConfig = {
          url: [`ldap://127.0.0.1:${proxy.port}`],
          startTLS: true,
          caPem: ldap.caPem,
          bindDn: SERVICE_DN,
          bindPasswordEnv: 'X',
          bindPassword: FIXTURE_PASSWORD,
          baseDn: BASE_DN,
          preset: 'activeDirectory',
          userFilter: '(objectClass=mailgwTestADUser)',
          addressAttributes: ['proxyAddresses', 'mail'],
          groupMembership: 'memberOf',
          cacheTtl: 300_000,
          negativeCacheTtl: 60_000,
          timeout: 5000,
          idleTimeout: mode === 'kept' ? 60_000 : 0,
          maxGroupDepth: 10,
        };
        const client = createDirectoryClient(cfg);
        // Warm-up (JIT, slapd's caches), not counted.
        for (let i = 0; i < Math.min(200, o.questions); i++) await client.hasAddress(i % 2 ? 'alice@contoso.test' : `nobody${i}@contoso.test`);
        const accepted0 = proxy.accepted;
        const cpu0 = slapdCpu(ldap.pid);
        const times: number[] = [];
        let wrong = 0;
        let next = 0;
        const t0 = process.hrtime.bigint();
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < o.questions) {
              const i = next++;
              const known = i % 2 === 0;
              const s = process.hrtime.bigint();
              const a = await client.hasAddress(known ? 'alice@contoso.test' : `unknown-${i}@contoso.test`);
              times.push(Number(process.hrtime.bigint() - s) / 1e6);
              if (a !== (known ? 'found' : 'not-found')) wrong++;
            }
          }),
        );
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu1 = slapdCpu(ldap.pid);
        const connections = proxy.accepted - accepted0;
        // AUTH: logons one at a time (a right password, as mail clients send).
        let logons: { perSec: number; p50: number } | null = null;
        if (concurrency === 1) {
          const n = Math.min(1000, o.questions);
          const lt: number[] = [];
          const l0 = process.hrtime.bigint();
          for (let i = 0; i < n; i++) {
            const s = process.hrtime.bigint();
            if ((await client.logon(i % 2 ? 'alice' : 'erin', FIXTURE_PASSWORD)).kind !== 'ok') wrong++;
            lt.push(Number(process.hrtime.bigint() - s) / 1e6);
          }
          logons = { perSec: n / (Number(process.hrtime.bigint() - l0) / 1e9), p50: percentile(lt, 50) };
        }
        const r: DirectoryCost = {
          mode,
          concurrency,
          questions: o.questions,
          perSec: o.questions / seconds,
          p50Ms: percentile(times, 50),
          p99Ms: percentile(times, 99),
          connections,
          slapdCpuMs: cpu0 === null || cpu1 === null ? Number.NaN : (cpu1 - cpu0) / o.questions,
          wrong,
          ...(logons ? { logonsPerSec: logons.perSec, logonP50Ms: logons.p50 } : {}),
        };
        out.push(r);
        o.log(`directory ${mode} ×${concurrency}: ${r.perSec.toFixed(0)} questions/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.connections} connections, slapd ${r.slapdCpuMs.toFixed(3)} ms CPU/question, wrong ${wrong}${logons ? `; logons ${logons.perSec.toFixed(0)}/s, p50 ${logons.p50.toFixed(2)} ms` : ''}`);
        await client.close();
        await proxy.close();
      }
    }
  } finally {
    await ldap.close();
  }
  return out;
}
