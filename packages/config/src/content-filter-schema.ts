// gateway.yaml's content filters: rspamd (its HTTP protocol, /checkv2) and milters (the
// Sendmail/Postfix milter protocol). Both are off unless configured. Every key once, with its
// default and the Exchange cmdlet parameter or Postfix parameter it mirrors.
import { z } from 'zod';
import type { ConfigIssue } from './issues.js';
import { parseDomainPattern, type DomainPattern } from './domain.js';
import { ciEnum, durationMs, intIn, listOf, mailboxAddress } from './zod-helpers.js';

/** Where a milter listens, as Postfix writes it (smtpd_milters): inet:host:port or unix:/path. */
export type MilterAddress =
  | { readonly kind: 'inet'; readonly host: string; readonly port: number; readonly text: string }
  | { readonly kind: 'unix'; readonly path: string; readonly text: string };

/** Parses `inet:127.0.0.1:8891`, `inet:[::1]:8891`, `inet:localhost:8891` or `unix:/run/opendkim/opendkim.sock`. */
export function parseMilterAddress(s: string): { ok: true; value: MilterAddress } | { ok: false; error: string } {
  const text = s.trim();
  const usage = 'write inet:host:port (e.g. inet:127.0.0.1:8891) or unix:/path/to/socket, as Postfix does';
  if (text.startsWith('unix:')) {
    const p = text.slice(5);
    if (!p.startsWith('/')) return { ok: false, error: `"${s}": the socket path must be absolute; ${usage}` };
    return { ok: true, value: { kind: 'unix', path: p, text } };
  }
  const m = /^inet:(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(text);
  if (!m) return { ok: false, error: `"${s}" is not a milter address; ${usage}` };
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return { ok: false, error: `"${s}": port must be 1-65535` };
  return { ok: true, value: { kind: 'inet', host: m[1] ?? m[2]!, port, text } };
}

const milterAddress = z.string().transform((s, ctx): MilterAddress => {
  const r = parseMilterAddress(s);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  }
  return r.value;
});

const rspamdUrl = z.string().transform((s, ctx): string => {
  let u: URL;
  try {
    u = new URL(s.trim());
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a URL; write http://host:port, e.g. http://127.0.0.1:11333` });
    return z.NEVER;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: `"${s}": rspamd is reached over http:// or https://` });
    return z.NEVER;
  }
  return u.origin;
});

const failureAction = ciEnum(['tempfail', 'accept', 'reject'] as const);

/** A sender domain as -BypassedSenderDomains takes it: contoso.com, or *.contoso.com for its subdomains too. */
/** A bypass list's sender domain: contoso.com, or *.contoso.com with its subdomains; never every domain. */
export const senderDomain = z.string().transform((s, ctx): DomainPattern => {
  const r = parseDomainPattern(s);
  if (!r.ok || r.value.domain === '') {
    ctx.addIssue({ code: 'custom', message: r.ok ? `"${s}": name a domain (contoso.com or *.contoso.com), not every domain` : r.error });
    return z.NEVER;
  }
  return r.value;
});
const connectorNames = listOf(z.string().trim().min(1)).optional();

/** SCL score boundaries: rspamd score at or above boundary n gives SCL n+1 (SCL 0 below the first). */
export const DEFAULT_SCL_SCORES = [0, 2, 4, 5, 6, 8, 10, 12, 15] as const;

export const rspamdSchema = z
  .strictObject({
    url: rspamdUrl.default('http://127.0.0.1:11333').describe("rspamd's normal worker (the /checkv2 endpoint), http://host:port."),
    password: z.string().max(1024).optional().describe('Sent as the Password header (only when the worker requires one).'),
    connectTimeout: durationMs(10, 600_000).default(5000).describe('Connecting to rspamd (as rspamc --connect-timeout).'),
    timeout: durationMs(10, 3_600_000).default(20_000).describe('From the end of DATA to rspamd\'s answer; past it the failure action applies.'),
    onFailure: failureAction.default('tempfail').describe("What rspamd down, slow or answering nonsense means: tempfail (451 4.7.1, the sender retries; Postfix's milter_default_action), accept or reject."),
    actions: ciEnum(['rspamd', 'scl'] as const).default('rspamd').describe("Who decides: rspamd (its action: reject 550 5.7.1, soft reject/greylist 451 4.7.1, add header, rewrite subject) or scl (Exchange's content-filter thresholds below applied to the SCL from rspamd's score; rspamd's action is then only stamped)."),
    sclScores: z
      .array(z.number())
      .length(9, 'give 9 ascending scores: the rspamd score at which SCL 1, 2, … 9 begins')
      .refine((a) => a.every((v, i) => i === 0 || v > a[i - 1]!), 'must be strictly ascending')
      .default([...DEFAULT_SCL_SCORES])
      .describe('rspamd score → SCL: the score at which SCL 1..9 begins (default 0, 2, 4, 5, 6, 8, 10, 12, 15: add header at 6 is SCL 5, Outlook\'s junk threshold; rspamd\'s reject at 15 is SCL 9). Below the first: SCL 0.'),
    stampScl: z.boolean().default(true).describe('Add X-MS-Exchange-Organization-SCL for Exchange servers behind mailgw (they trust it: keep the header firewall on).'),
    spamHeaders: z.boolean().default(true).describe('Add X-Spam-Status, X-Spam-Score, X-Spam-Action (and the headers rspamd\'s milter_headers module asks for).'),
    sclRejectEnabled: z.boolean().default(true).describe('Set-ContentFilterConfig -SCLRejectEnabled (actions: scl).'),
    sclRejectThreshold: intIn(0, 9).default(7).describe('Set-ContentFilterConfig -SCLRejectThreshold: SCL at or above it is refused with the rejectionResponse (Exchange: 7).'),
    sclDeleteEnabled: z.boolean().default(false).describe('Set-ContentFilterConfig -SCLDeleteEnabled (actions: scl).'),
    sclDeleteThreshold: intIn(0, 9).default(9).describe('Set-ContentFilterConfig -SCLDeleteThreshold: SCL at or above it is answered 250 and dropped (Exchange: 9).'),
    sclQuarantineEnabled: z.boolean().default(false).describe('Set-ContentFilterConfig -SCLQuarantineEnabled (actions: scl); needs quarantineMailbox.'),
    sclQuarantineThreshold: intIn(0, 9).default(9).describe('Set-ContentFilterConfig -SCLQuarantineThreshold: SCL at or above it is held for quarantineMailbox (Exchange: 9).'),
    quarantineMailbox: z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'must be a mailbox address').optional().describe('Set-ContentFilterConfig -QuarantineMailbox: the same setting as the top-level quarantineMailbox (which every filter\'s quarantine uses); give one.'),
    rejectionResponse: z.string().min(1).max(240).regex(/^[\x20-\x7e]+$/, 'printable ASCII only').default('Message rejected as spam by Content Filtering.').describe('Set-ContentFilterConfig -RejectionResponse: the text after 550 5.7.1.'),
    connectors: connectorNames.describe('Connector names whose mail rspamd judges; default: every connector (sessions holding ms-Exch-Bypass-Anti-Spam always skip it).'),
    bypassedRecipients: listOf(mailboxAddress).default([]).describe('Set-ContentFilterConfig -BypassedRecipients: a message whose every recipient is one of these is not judged (abuse@ and postmaster@ must get the spam people forward them). With other recipients beside them it is judged as usual.'),
    bypassedSenders: listOf(mailboxAddress).default([]).describe('Set-ContentFilterConfig -BypassedSenders: messages from these envelope senders are not judged (an envelope sender is easily forged: prefer bypassedSenderDomains with SPF/DMARC, or the IP Allow List).'),
    bypassedSenderDomains: listOf(senderDomain).default([]).describe('Set-ContentFilterConfig -BypassedSenderDomains: messages whose envelope sender is in one of these domains (contoso.com, or *.contoso.com with its subdomains) are not judged.'),
  });
export type RspamdConfig = z.output<typeof rspamdSchema>;

export const milterSchema = z.strictObject({
  name: z.string().trim().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ".", "_" and "-" only').describe('Its name in logs and `mailgw explain` ("opendkim").'),
  address: milterAddress.describe('inet:host:port or unix:/path, as Postfix\'s smtpd_milters.'),
  connectTimeout: durationMs(10, 600_000).default(30_000).describe("Postfix milter_connect_timeout (30s)."),
  commandTimeout: durationMs(10, 600_000).default(30_000).describe('Postfix milter_command_timeout (30s): each reply but the end-of-message one.'),
  eomTimeout: durationMs(10, 3_600_000).default(300_000).describe('Postfix milter_content_timeout (300s): the reply to end of message (progress replies restart it).'),
  defaultAction: failureAction.default('tempfail').describe("Postfix milter_default_action: when the milter is down, slow or breaks the protocol: tempfail (451 4.7.1), accept or reject."),
  antiSpam: z.boolean().default(true).describe('Skipped for sessions holding ms-Exch-Bypass-Anti-Spam. Set false for a milter that must see every message (OpenDKIM signing authenticated submission).'),
  connectors: connectorNames.describe('Connector names whose mail this milter sees; default: every connector.'),
  pickup: z.boolean().default(false).describe("Postfix's non_smtpd_milters: it also judges the pickup directory's messages (`mailgw sendmail`, cron's mail), seen as a connection from 127.0.0.1 named and greeting as the gateway's fqdn, then MAIL, each RCPT and the message; antiSpam and connectors do not apply to them. Default false (as Postfix's smtpd_milters, which do not see them)."),
});
export type MilterConfig = z.output<typeof milterSchema>;

export const milterListSchema = z.array(milterSchema).default([]);

/** Cross-checks the schema cannot do: connector names exist (filters' scopes, the attachment filter's exceptions), milter names are unique. */
export function contentFilterIssues(file: string, g: { rspamd?: RspamdConfig | undefined; milters: readonly MilterConfig[]; attachmentFilter?: { readonly exceptionConnectors: readonly string[] } | undefined }, connectors: readonly string[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const known = new Set(connectors.map((c) => c.toLowerCase()));
  const checkNames = (path: string, names: readonly string[] | undefined) =>
    names?.forEach((n, i) => {
      if (!known.has(n.toLowerCase())) out.push({ file, path: `${path}[${i}]`, message: `no connector is named "${n}" (connectors: ${connectors.join(', ') || 'none'})` });
    });
  if (g.rspamd) checkNames('rspamd.connectors', g.rspamd.connectors);
  checkNames('attachmentFilter.exceptionConnectors', g.attachmentFilter?.exceptionConnectors);
  const seen = new Map<string, number>();
  g.milters.forEach((m, i) => {
    const k = m.name.toLowerCase();
    if (k === 'rspamd' || k === 'attachment-filter') out.push({ file, path: `milters[${i}].name`, message: `"${m.name}" is the name of mailgw's ${k === 'rspamd' ? 'rspamd filter' : 'attachment filter'}; name the milter otherwise` });
    if (seen.has(k)) out.push({ file, path: `milters[${i}].name`, message: `"${m.name}" is already the name of milters[${seen.get(k)}]` });
    seen.set(k, i);
    checkNames(`milters[${i}].connectors`, m.connectors);
  });
  return out;
}

export const RSPAMD_KEYS = Object.keys(rspamdSchema.shape);
export const MILTER_KEYS = Object.keys(milterSchema.shape);
