// The cost per message of the edge's filters, measured as an admin runs them: `mailgw listen`
// and one `mailgw worker` on an embedded-style Redis, the Node load generator at 1 KB, and the
// same gateway with filters off, with sender authentication (SPF/DKIM/DMARC/ARC against a DNS
// server on loopback that serves the bench domain's SPF and DMARC records: no real DNS), with
// rspamd (Debian's, started on loopback, kept off the network), with both, and with the
// attachment filter alone (its default entries; the bench's messages are plain text), with
// sender reputation counting every message, and, at
// 100 KB of multipart mail with a base64 attachment, off, the attachment filter, and transport
// rules on attachments (by name and extension; by size); and a transport rule's disclaimer (a
// footer on every message) at 1 KB and at 100 KB multipart. Each variant
// runs in the same process tree one after the other, so the figures compare.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedisServer } from '@mailgw/queue';
import { startDnsServer } from '../../test/harness/dns-server.js';
import { startRspamd } from '../../test/harness/rspamd.js';
import { cpuMs, freePort, mailgw, startLatencySink, stopChild, waitForPort } from './procs.js';
import { percentile, runLoad } from './smtp-client.js';

export interface FilterCost {
  readonly acceptedPerSec: number;
  readonly p50AcceptMs: number;
  readonly p99AcceptMs: number;
  /** Listener CPU per message (where the filters run), ms. */
  readonly listenerCpuMs: number;
  /** Accepted (250) but never at the sink. */
  readonly lost: number;
  /** Refused by the gateway (should be 0: the bench domain passes SPF and DMARC). */
  readonly rejected: number;
}

export type FilterVariant = 'off' | 'attachment-filter' | 'transport-rules' | 'sender-reputation' | 'sender-auth' | 'rspamd' | 'sender-auth+rspamd' | 'off, 100 KB multipart' | 'attachment-filter, 100 KB multipart' | 'attachment rules, 100 KB multipart' | 'attachment size rule, 100 KB multipart' | 'disclaimer' | 'disclaimer, 100 KB multipart';

/**
 * Transport rules on attachments, which the bench's attachment (a PDF) does not match: by name
 * and extension (the MIME structure read, the parts' bodies skipped), and by size (the bodies
 * counted).
 */
const ATTACHMENT_RULES = `transportRules:
  - { name: Programs, attachmentExtensionMatchesWords: [exe, js, vbs, scr], smtpRejectMessageRejectText: Not accepted }
  - { name: Invoice archives, attachmentNameMatchesPatterns: ['^invoice[_-]?\d+\.(zip|rar)$'], quarantine: true }`;
/** A footer on every message (a transport rule's disclaimer): the body kept, its text part written again. */
const DISCLAIMER_RULE = `transportRules:
  - { name: Footer, applyHtmlDisclaimerText: "<p>Contoso Ltd, 1 Main Street. This message is confidential.</p>" }`;
const ATTACHMENT_SIZE_RULE = `transportRules:
  - { name: Large, attachmentSizeOver: 20MB, setHeaderName: X-Large, setHeaderValue: "yes" }`;

/**
 * Ten rules of the kinds admins write: nine the bench's mail does not match (words and patterns
 * in the Subject and header fields, sender and recipient conditions, a size), one that it does
 * and that tags its Subject and sets a field; so every rule is judged for every message.
 */
const TRANSPORT_RULES = `transportRules:
  - { name: Lottery, subjectContainsWords: [lottery, winner, "free money"], deleteMessage: true }
  - { name: Invoices, subjectMatchesPatterns: ['invoice\\s+\\d+', '^(fw|fwd):\\s*payment'], setScl: 6 }
  - { name: Mailer, headerContainsMessageHeader: X-Mailer, headerContainsWords: [BadMailer, "Mass Sender"], smtpRejectMessageRejectText: Not accepted }
  - { name: Spoofed, headerMatchesMessageHeader: Reply-To, headerMatchesPatterns: ['@(evil|phish)\\.example$'], quarantine: true }
  - { name: CEO, from: [ceo@bench.test, cfo@bench.test], fromScope: NotInOrganization, prependSubject: "[Spoofed?] " }
  - { name: Partners, senderDomainIs: [partner.example, vendor.example], setHeaderName: X-Partner, setHeaderValue: "yes" }
  - { name: Big, messageSizeOver: 20MB, setHeaderName: X-Big, setHeaderValue: "yes" }
  - { name: Legal, sentTo: [legal@example.org], blindCopyTo: [archive@example.org] }
  - { name: Words, anyOfRecipientAddressContainsWords: [noreply, donotreply], deleteMessage: true }
  - { name: External tag, fromScope: NotInOrganization, exceptIfSenderDomainIs: [partner.example], prependSubject: "[External] ", setHeaderName: X-Origin, setHeaderValue: Internet }`;

export async function measureFilterCost(o: { messages: number; sessions: number; from: string; to: string; log: (s: string) => void }): Promise<Partial<Record<FilterVariant, FilterCost>>> {
  const domain = o.from.slice(o.from.indexOf('@') + 1);
  const dns = await startDnsServer({
    [domain]: { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] },
    [`_dmarc.${domain}`]: { TXT: ['v=DMARC1; p=reject'] },
  });
  const rspamd = await startRspamd();
  if (!rspamd) o.log('filters: rspamd is not installed (apt-get install rspamd): its rows are skipped');
  const out: Partial<Record<FilterVariant, FilterCost>> = {};
  try {
    const variants: FilterVariant[] = [...(rspamd ? (['off', 'attachment-filter', 'transport-rules', 'sender-reputation', 'sender-auth', 'rspamd', 'sender-auth+rspamd'] as const) : (['off', 'attachment-filter', 'transport-rules', 'sender-reputation', 'sender-auth'] as const)), 'off, 100 KB multipart', 'attachment-filter, 100 KB multipart', 'attachment rules, 100 KB multipart', 'attachment size rule, 100 KB multipart', 'disclaimer', 'disclaimer, 100 KB multipart'];
    for (const v of variants) {
      const auth = v.includes('sender-auth');
      const withRspamd = v.includes('rspamd');
      const extra = [
        auth ? `senderAuthentication: { enabled: true }\ndns: { servers: ["${dns.server}"], timeout: 2s }` : 'senderAuthentication: { enabled: false }',
        withRspamd ? `rspamd: { url: "${rspamd!.url}" }` : '',
        v.startsWith('attachment-filter') ? 'attachmentFilter: {}' : '',
        v === 'transport-rules' ? TRANSPORT_RULES : '',
        v.startsWith('attachment rules') ? ATTACHMENT_RULES : '',
        v.startsWith('attachment size rule') ? ATTACHMENT_SIZE_RULE : '',
        v.startsWith('disclaimer') ? DISCLAIMER_RULE : '',
        // Every message counted into the sender's profile (one MULTI the reply does not wait for); blocking
        // off, so the load generator is rated and never refused. Reverse DNS from the fixture.
        v === 'sender-reputation' ? `senderReputationConfig: { enabled: true, senderBlockingEnabled: false }\ndns: { servers: ["${dns.server}"], timeout: 2s }` : '',
      ].join('\n');
      out[v] = await oneVariant(o, extra, v.endsWith('100 KB multipart') ? { size: 102_400, multipart: true } : { size: 1024, multipart: false });
      const r = out[v]!;
      o.log(`filters ${v}: accepted ${r.acceptedPerSec.toFixed(0)}/s, p50/p99 acceptance ${r.p50AcceptMs.toFixed(1)}/${r.p99AcceptMs.toFixed(1)} ms, listener CPU ${r.listenerCpuMs.toFixed(2)} ms/message, rejected ${r.rejected}, lost ${r.lost}`);
    }
  } finally {
    await rspamd?.stop();
    await dns.close();
  }
  return out;
}

async function oneVariant(o: { messages: number; sessions: number; from: string; to: string }, gatewayExtra: string, body: { size: number; multipart: boolean }): Promise<FilterCost> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-bench-filters-'));
  const redis = await startRedisServer({ dataDir: path.join(dir, 'redis'), unixSocket: path.join(dir, 'redis.sock') });
  const sink = await startLatencySink();
  const port = await freePort();
  mkdirSync(path.join(dir, 'connectors.d'));
  const configPath = path.join(dir, 'gateway.yaml');
  const to = o.to.slice(o.to.indexOf('@') + 1);
  writeFileSync(
    configPath,
    ['fqdn: bench.mailgw.test', `dataDir: ${path.join(dir, 'var')}`, 'logLevel: warn', 'acceptedDomains:', `  - { domain: ${to}, type: InternalRelay, default: true }`, 'routes:', `  - { domains: ["*"], to: "smtp://127.0.0.1:${sink.port}" }`, 'queue: { maxConnectionsPerDestination: 100 }', gatewayExtra, ''].join('\n'),
  );
  writeFileSync(
    path.join(dir, 'connectors.d/bench.yaml'),
    ['name: Bench', 'usage: Internet', `bindings: ["127.0.0.1:${port}"]`, 'maxInboundConnection: unlimited', 'maxInboundConnectionPerSource: unlimited', 'maxInboundConnectionPercentagePerSource: 100', 'tarpitInterval: 0', ''].join('\n'),
  );
  const env = { REDIS_URL: redis.socketUrl ?? redis.url };
  const listener = mailgw(['listen', '--config', configPath], env);
  const worker = mailgw(['worker', '--config', configPath], env);
  try {
    await waitForPort(port);
    // Warm-up (JIT, scripts, the DNS cache), then the timed run.
    const warm = await runLoad({ host: '127.0.0.1', port, from: o.from, to: o.to, messages: Math.min(300, o.messages), sessions: o.sessions, ...body });
    await sink.waitFor(warm.ok, 120_000);
    const before = sink.count();
    const cpu0 = cpuMs(listener.pid);
    const load = await runLoad({ host: '127.0.0.1', port, from: o.from, to: o.to, messages: o.messages, sessions: o.sessions, ...body });
    const cpu1 = cpuMs(listener.pid);
    await sink.waitFor(before + load.ok, 120_000);
    return {
      acceptedPerSec: load.ok / load.seconds,
      p50AcceptMs: percentile(load.latencies, 50),
      p99AcceptMs: percentile(load.latencies, 99),
      listenerCpuMs: (cpu1 - cpu0) / Math.max(1, load.ok),
      lost: before + load.ok - sink.count(),
      rejected: load.failed,
    };
  } finally {
    await Promise.all([stopChild(listener), stopChild(worker)]);
    await sink.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
