// mailgw tls-report [--date YYYY-MM-DD] [--domain D] [--send]: the TLS-RPT (RFC 8460) aggregate
// reports of one UTC day (default: yesterday, the day the daily run reports), built from the
// session counters the workers keep in Redis. Prints the JSON; --send delivers them now as the
// daily run would (rua of _smtp._tls.<domain>, the directory), without claiming the day.
import path from 'node:path';
import { formatIssue, normaliseDomain } from '@mailgw/config';
import { loadConfig } from '@mailgw/config/load';
import { isUtcDay } from '@mailgw/policy';
import { keySpace, openShardedMailStore } from '@mailgw/queue';
import { cannotReachRedis } from '../redis-messages.js';
import { queueRedisUrl } from '@mailgw/ops';
import { previousUtcDay, systemResolver, TlsReporter, tlsReportSettings, type DnsResolver } from '@mailgw/worker';
import { configPaths, type PathOptions } from '../load-policy.js';

export interface TlsReportOptions extends PathOptions {
  date?: string | undefined;
  domain?: string | undefined;
  send?: boolean | undefined;
}

export interface TlsReportIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /** DNS for the rua lookups and https: hosts (default: the system resolver). */
  readonly resolver?: DnsResolver;
  /** CA certificates trusted besides the system's for https: rua (tests). */
  readonly extraCAs?: readonly string[];
  readonly now?: number;
}

export async function runTlsReport(opts: TlsReportOptions, io: TlsReportIO): Promise<number> {
  const fail = (code: number, why: string) => {
    io.stderr.write(`mailgw tls-report: ${why}\n`);
    return code;
  };
  const day = opts.date ?? previousUtcDay(io.now ?? Date.now());
  if (!isUtcDay(day)) return fail(2, `--date "${opts.date}" is not a day like 2026-12-01`);
  let domain: string | undefined;
  if (opts.domain !== undefined) {
    const d = normaliseDomain(opts.domain);
    if (!d.ok || d.value.startsWith('[')) return fail(2, `--domain "${opts.domain}" is not a domain name`);
    domain = d.value;
  }
  const loaded = loadConfig({ ...configPaths(opts), env: io.env, secrets: 'unresolved' });
  if (!loaded.ok) return fail(1, `the configuration has errors:\n${loaded.errors.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
  const g = loaded.config.gateway;
  const configFile = path.resolve(opts.config ?? 'gateway.yaml');
  const settings = tlsReportSettings(g, configFile);
  if (!settings) return fail(1, 'tlsReports is not set (or not enabled) in gateway.yaml: no sessions are counted, no reports made');
  const url = queueRedisUrl(io.env, g, loaded.dataDir!);
  if (!url) return fail(1, 'no Redis to read from: set REDIS_URL or redis.url in gateway.yaml (or run this where `mailgw start` runs its own)');
  let store;
  try {
    store = await openShardedMailStore({ url, prefix: g.redis.prefix, shards: g.queue.shards, connectTimeoutMs: 5000, connectionName: `mailgw:tls-report:${process.pid}` });
  } catch (e) {
    return fail(1, cannotReachRedis(url, e));
  }
  try {
    const reporter = new TlsReporter({ redis: store.connection, keys: keySpace(g.redis.prefix), resolver: io.resolver ?? systemResolver(), store, settings, fqdn: g.fqdn, name: `mailgw tls-report (pid ${process.pid})`, ...(io.extraCAs ? { extraCAs: io.extraCAs } : {}) });
    const domains = domain ? [domain] : await reporter.domains(day);
    if (!opts.send) {
      const reports = [];
      for (const d of domains) {
        const r = await reporter.report(day, d);
        if (r) reports.push(r.json);
      }
      if (domain && reports.length === 0) return fail(1, `no sessions with ${domain} under MTA-STS or DANE were counted on ${day}`);
      io.stdout.write(`${JSON.stringify(domain ? reports[0] : reports, null, 2)}\n`);
      return 0;
    }
    const results = await reporter.sendDay(day, { force: true, ...(domain ? { domain } : {}) });
    if (results.length === 0) io.stdout.write(`no sessions under MTA-STS or DANE were counted on ${day}: nothing to send\n`);
    let failed = 0;
    for (const r of results) {
      if (r.skipped) {
        io.stdout.write(`${r.domain}: ${r.skipped}\n`);
        continue;
      }
      io.stdout.write(`${r.domain}: report ${r.reportId}\n`);
      for (const d of r.deliveries) {
        if (!d.ok) failed++;
        io.stdout.write(`  ${d.ok ? 'sent' : 'NOT sent'} to ${d.to}: ${d.detail}\n`);
      }
    }
    return failed > 0 ? 1 : 0;
  } finally {
    await store.close();
  }
}
