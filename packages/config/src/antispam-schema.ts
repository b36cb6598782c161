// The Edge Transport anti-spam settings of gateway.yaml (connection filtering, sender
// filtering, sender authentication, the DNS resolver they share) and the one connector key,
// named after the Exchange cmdlets they mirror: Add-IPBlockListProvider, Add-IPAllowListProvider,
// Add-IPAllowListEntry, Set-IPBlockListConfig, Set-SenderFilterConfig. Kept apart from
// gateway-schema.ts / connector-schema.ts: those spread these shapes in with one line each.
import { z } from 'zod';
import { normaliseDomain, parseDomainPattern, type DomainPattern } from './domain.js';
import { parseIp } from './ip-range.js';
import { ciEnum, durationMs, hostname, intIn, ipRange, listOf, mailboxAddress } from './zod-helpers.js';
import { senderDomain } from './content-filter-schema.js';
import { arcSealSchema } from './dkim-schema.js';

/** An IPv4 address as a DNS list answers (127.0.0.2); canonical text. */
const ipv4Answer = z.string().transform((s, ctx): string => {
  const r = parseIp(s.trim());
  if (!r.ok || r.value.family !== 4) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an IPv4 address like 127.0.0.2` });
    return z.NEVER;
  }
  return r.value.text;
});

/** A DNS server: "IP", "IP:port", "IPv6" or "[IPv6]:port"; written out as node:dns takes it. */
const dnsServer = z.string().transform((s, ctx): string => {
  const t = s.trim();
  let host = t;
  let port = 53;
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(t);
  const withPort = /^([^:]+):(\d{1,5})$/.exec(t);
  if (bracketed) [host, port] = [bracketed[1]!, bracketed[2] !== undefined ? Number(bracketed[2]) : 53];
  else if (withPort) [host, port] = [withPort[1]!, Number(withPort[2])];
  const ip = parseIp(host);
  if (!ip.ok || port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a DNS server address (IP, IP:port or [IPv6]:port)` });
    return z.NEVER;
  }
  return ip.value.family === 6 ? `[${ip.value.text}]:${port}` : `${ip.value.text}:${port}`;
});

/** A sender as Set-SenderFilterConfig -BlockedSenders takes it: a full address, lower-cased. */
const senderAddress = z.string().transform((s, ctx): string => {
  const t = s.trim();
  const at = t.lastIndexOf('@');
  const d = at > 0 ? normaliseDomain(t.slice(at + 1)) : null;
  if (!d || !d.ok || /[\s<>"]/.test(t.slice(0, at))) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a sender address like spammer@example.com` });
    return z.NEVER;
  }
  return `${t.slice(0, at).toLowerCase()}@${d.value}`;
});

/** A recipient address, lower case, its domain normalised (as the policy compares them). */
const recipientAddress = z.string().transform((s, ctx) => {
  const t = s.trim().toLowerCase();
  const at = t.lastIndexOf('@');
  const d = at > 0 ? normaliseDomain(t.slice(at + 1)) : null;
  if (!d || !d.ok || /[\s<>"]/.test(t.slice(0, at))) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a recipient address like postmaster@contoso.com` });
    return z.NEVER;
  }
  return `${t.slice(0, at)}@${d.value}`;
});

/** A plain domain (no wildcard: blockedDomainsAndSubdomains says "and subdomains"). */
const plainDomain = z.string().transform((s, ctx): DomainPattern => {
  const r = parseDomainPattern(s);
  if (!r.ok || r.value.wildcard || r.value.domain === '') {
    ctx.addIssue({ code: 'custom', message: r.ok ? `"${s}": give the domain without "*" (use blockedDomainsAndSubdomains for it and its subdomains)` : r.error });
    return z.NEVER;
  }
  return r.value;
});

/** Words of an SMTP reply an admin writes (a 550 5.7.1's text). */
const replyText = z.string().trim().min(1).max(240).regex(/^[\x20-\x7e]+$/, 'printable ASCII only (it is sent in an SMTP reply)');

const providerCommon = {
  name: z.string().trim().min(1).max(64).describe('Unique name, shown in logs and `mailgw explain` (Exchange -Name).'),
  lookupDomain: hostname.describe('The list\'s DNS zone, e.g. zen.spamhaus.org: the client 192.0.2.1 is looked up as 1.2.0.192.<lookupDomain> (IPv6 clients nibble-reversed).'),
  anyMatch: z.boolean().optional().describe('Any answer counts as listed (Exchange -AnyMatch). Default: true when neither bitmaskMatch nor ipAddressesMatch is given.'),
  bitmaskMatch: ipv4Answer.optional().describe('Listed when an answer\'s last octet has a bit of this mask\'s last octet set, e.g. 127.0.0.2 (Exchange -BitmaskMatch).'),
  ipAddressesMatch: listOf(ipv4Answer).optional().describe('Listed when an answer is one of these addresses, e.g. [127.0.0.2, 127.0.0.4] (Exchange -IPAddressesMatch).'),
  priority: intIn(1, 1000).optional().describe('Order in which the answers are judged, lowest first (Exchange -Priority). Default: the position in the list.'),
  enabled: z.boolean().default(true).describe('A disabled provider is not queried (Exchange -Enabled).'),
};

const blockListProvider = z
  .strictObject({
    ...providerCommon,
    rejectionResponse: replyText.optional().describe('Text of the 550 5.7.1 reply when this list has the client (Exchange -RejectionResponse). Default: "Recipient not authorized, your IP has been found on a block list".'),
  })
  .refine((p) => !(p.anyMatch === true && (p.bitmaskMatch !== undefined || p.ipAddressesMatch !== undefined)), { message: 'anyMatch: true counts every answer; drop bitmaskMatch/ipAddressesMatch or anyMatch', path: ['anyMatch'] });
const allowListProvider = z
  .strictObject(providerCommon)
  .refine((p) => !(p.anyMatch === true && (p.bitmaskMatch !== undefined || p.ipAddressesMatch !== undefined)), { message: 'anyMatch: true counts every answer; drop bitmaskMatch/ipAddressesMatch or anyMatch', path: ['anyMatch'] });
export type IPBlockListProviderConfig = z.output<typeof blockListProvider>;
export type IPAllowListProviderConfig = z.output<typeof allowListProvider>;

const uniqueProviders = <T extends { name: string; priority?: number | undefined }>(list: T[], ctx: z.RefinementCtx): void => {
  const names = new Map<string, number>();
  const prios = new Map<number, number>();
  list.forEach((p, i) => {
    const k = p.name.toLowerCase();
    if (names.has(k)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `"${p.name}" is already the name of entry ${names.get(k)}` });
    names.set(k, i);
    if (p.priority !== undefined) {
      if (prios.has(p.priority)) ctx.addIssue({ code: 'custom', path: [i, 'priority'], message: `priority ${p.priority} is already that of entry ${prios.get(p.priority)}` });
      prios.set(p.priority, i);
    }
  });
};

const DNS_DEFAULTS = { servers: [] as string[], timeout: 5000, lookupBudget: 40, minTtl: 60_000, maxTtl: 86_400_000, negativeTtl: 300_000, txtTtl: 300_000, reverseLookup: true };
const SENDER_FILTER_DEFAULTS = { enabled: true, blockedSenders: [] as string[], blockedDomains: [] as DomainPattern[], blockedDomainsAndSubdomains: [] as DomainPattern[], action: 'Reject' as const, blankSenderBlockingEnabled: false };
const SENDER_REPUTATION_DEFAULTS = { enabled: false, externalMailEnabled: true, internalMailEnabled: false, senderBlockingEnabled: true, senderBlockingPeriod: 24, srlBlockThreshold: 7, openProxyDetectionEnabled: false };
const SENDER_AUTH_DEFAULTS = { enabled: true, spfFailAction: 'stamp' as const, dmarcRejectAction: 'reject' as const, dmarcQuarantineAction: 'stamp' as const, tempErrorAction: 'accept' as const, timeout: 30_000, minBitLength: 1024, bypassedSenderDomains: [], bypassedRecipients: [], arcTrustedSealers: [] };

/** One line each in gatewayShape. */
export const antispamGatewayShape = {
  dns: z
    .strictObject({
      servers: listOf(dnsServer).default([]).describe('DNS servers for block lists and sender authentication (IP, IP:port, [IPv6]:port). Default: the system\'s (/etc/resolv.conf).'),
      timeout: durationMs(100, 60_000).default(DNS_DEFAULTS.timeout).describe('Longest wait for one DNS answer; a list that does not answer in time is skipped, SPF/DKIM/DMARC get temperror.'),
      lookupBudget: intIn(1, 1000).default(DNS_DEFAULTS.lookupBudget).describe('DNS lookups one message may cause (SPF, DKIM, DMARC, ARC together; cached answers count too); past it they fail as temperror.'),
      minTtl: durationMs(0).default(DNS_DEFAULTS.minTtl).describe('Answers are cached in Redis for their TTL, at least this long.'),
      maxTtl: durationMs(0).default(DNS_DEFAULTS.maxTtl).describe('… and at most this long.'),
      negativeTtl: durationMs(0).default(DNS_DEFAULTS.negativeTtl).describe('How long "no such name" / "no such record" is cached (0 = not cached).'),
      txtTtl: durationMs(0).default(DNS_DEFAULTS.txtTtl).describe('Cache time of TXT, MX and PTR answers, whose TTL node:dns does not report (A and AAAA keep their own TTL).'),
      reverseLookup: z.boolean().default(DNS_DEFAULTS.reverseLookup).describe('Look up each client\'s host name (its PTR, kept only when it resolves back to the address) for the Received header and the content filters, as Postfix\'s smtpd_peername_lookup; the greeting waits for it (at most 1.5 s). Loopback clients are never looked up.'),
    })
    .default(DNS_DEFAULTS)
    .describe('{ servers, timeout, lookupBudget, minTtl, maxTtl, negativeTtl, txtTtl, reverseLookup }: the one DNS resolver of the anti-spam agents, with answers cached in Redis.'),
  ipBlockListProviders: z.array(blockListProvider).default([]).superRefine(uniqueProviders).describe('DNS block lists (Exchange Add-IPBlockListProvider): [{ name, lookupDomain, anyMatch | bitmaskMatch | ipAddressesMatch, rejectionResponse, priority, enabled }]. Looked up when a client connects, judged at RCPT: 550 5.7.1.'),
  ipAllowListProviders: z.array(allowListProvider).default([]).superRefine(uniqueProviders).describe('DNS allow lists (Exchange Add-IPAllowListProvider): [{ name, lookupDomain, anyMatch | bitmaskMatch | ipAddressesMatch, priority, enabled }]. A client they list is never refused by a block list.'),
  ipAllowList: listOf(ipRange).default([]).describe('Clients never refused by a block list provider (Exchange Add-IPAllowListEntry -IPRange).'),
  ipBlockListConfig: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Judge the block list providers at all (Exchange Set-IPBlockListProvidersConfig -Enabled).'),
      bypassedRecipients: listOf(recipientAddress).default([]).describe('Recipients a listed client may still reach, e.g. postmaster@contoso.com (Exchange Set-IPBlockListProvidersConfig -BypassedRecipients); also for the IP Block List entries.'),
      machineEntryRejectionResponse: replyText.optional().describe('Text of the 550 5.7.1 reply to a client that sender reputation put on the IP Block List (Exchange Set-IPBlockListConfig -MachineEntryRejectionResponse). Default: "Recipient not authorized, your IP has been found on a block list".'),
      staticEntryRejectionResponse: replyText.optional().describe('Text of the 550 5.7.1 reply to a client an admin put on the IP Block List with `mailgw ip-block-list add` (Exchange -StaticEntryRejectionResponse). Same default.'),
    })
    .default({ enabled: true, bypassedRecipients: [] })
    .describe('{ enabled, bypassedRecipients, machineEntryRejectionResponse, staticEntryRejectionResponse }: how block list hits are applied.'),
  senderReputationConfig: z
    .strictObject({
      enabled: z.boolean().default(false).describe('Rate each sending IP address and block the bad ones (Exchange -Enabled; on by default on an Edge server, off here until you turn it on).'),
      externalMailEnabled: z.boolean().default(true).describe('Rate anonymous sessions (Exchange -ExternalMailEnabled).'),
      internalMailEnabled: z.boolean().default(false).describe('Rate authenticated sessions too (Exchange -InternalMailEnabled). Sessions holding ms-Exch-Bypass-Anti-Spam are never rated.'),
      senderBlockingEnabled: z.boolean().default(true).describe('Put a sender whose SRL reaches srlBlockThreshold on the IP Block List (Exchange -SenderBlockingEnabled). false: rate and log only.'),
      senderBlockingPeriod: intIn(0, 48).default(24).describe('Hours a blocked sender stays on the IP Block List, 0 to 48 (Exchange -SenderBlockingPeriod).'),
      srlBlockThreshold: intIn(0, 9).default(7).describe('The sender reputation level (0 to 9) at which a sender is blocked (Exchange -SrlBlockThreshold).'),
      openProxyDetectionEnabled: z
        .boolean()
        .default(false)
        .refine((v) => v === false, 'mailgw does not test senders for open proxies (it would connect out to every sending address); set it to false or leave it out')
        .describe('Must be false: mailgw does not connect back to senders to test for open proxies (Exchange -OpenProxyDetectionEnabled).'),
    })
    .default(SENDER_REPUTATION_DEFAULTS)
    .describe('{ enabled, externalMailEnabled, internalMailEnabled, senderBlockingEnabled, senderBlockingPeriod, srlBlockThreshold }: Exchange Set-SenderReputationConfig (the Protocol Analysis agent).'),
  senderFilterConfig: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Exchange -Enabled.'),
      blockedSenders: listOf(senderAddress).default([]).describe('Senders (MAIL FROM) refused, e.g. spammer@example.com (Exchange -BlockedSenders).'),
      blockedDomains: listOf(plainDomain).default([]).describe('Sender domains refused, exactly (Exchange -BlockedDomains).'),
      blockedDomainsAndSubdomains: listOf(plainDomain).default([]).describe('Sender domains refused with all their subdomains (Exchange -BlockedDomainsAndSubdomains).'),
      action: ciEnum(['Reject', 'StampStatus'] as const).default('Reject').describe('Reject: 554 5.1.0 Sender denied at MAIL. StampStatus: accept and stamp X-MS-Exchange-Organization-SenderFilterResult (Exchange -Action).'),
      blankSenderBlockingEnabled: z.boolean().default(false).describe('Also refuse the null sender <> (Exchange -BlankSenderBlockingEnabled; off by default: DSNs use it).'),
    })
    .default(SENDER_FILTER_DEFAULTS)
    .describe('{ enabled, blockedSenders, blockedDomains, blockedDomainsAndSubdomains, action, blankSenderBlockingEnabled }: Exchange Set-SenderFilterConfig.'),
  recipientFilterConfig: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Exchange -Enabled.'),
      blockListEnabled: z.boolean().default(false).describe('Refuse the blockedRecipients (Exchange -BlockListEnabled; off by default, as in Exchange).'),
      blockedRecipients: listOf(recipientAddress).default([]).describe('Recipients refused at RCPT with 550 5.1.1 User unknown for sessions without ms-Exch-Bypass-Anti-Spam, e.g. an internal distribution list the Internet must not reach (Exchange -BlockedRecipients).'),
    })
    .default({ enabled: true, blockListEnabled: false, blockedRecipients: [] })
    .describe('{ enabled, blockListEnabled, blockedRecipients }: Exchange Set-RecipientFilterConfig (recipient validation is `recipients`).'),
  senderAuthentication: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Verify SPF, DKIM, DMARC and ARC on connectors with senderAuthenticationEnabled.'),
      spfFailAction: ciEnum(['stamp', 'reject', 'delete'] as const).default('stamp').describe('SPF fail (-all) without a DMARC verdict that decides: stamp (Authentication-Results only, as Exchange\'s Sender ID StampStatus), reject (550 5.7.23) or delete (Sender ID Delete: answered 250, delivered to nobody).'),
      dmarcRejectAction: ciEnum(['reject', 'quarantine', 'stamp', 'delete'] as const).default('reject').describe('DMARC fails and the domain publishes p=reject: reject (550 5.7.1), quarantine, stamp or delete (answered 250, delivered to nobody).'),
      dmarcQuarantineAction: ciEnum(['stamp', 'quarantine', 'reject'] as const).default('stamp').describe('DMARC fails and the domain publishes p=quarantine: stamp (the servers behind decide), quarantine or reject.'),
      tempErrorAction: ciEnum(['accept', 'tempfail'] as const).default('accept').describe('A DNS failure (temperror) where it matters: accept and stamp, or tempfail (451 4.7.5: the sender retries).'),
      timeout: durationMs(1000, 300_000).default(SENDER_AUTH_DEFAULTS.timeout).describe('Longest the checks may take after the end of DATA; then the filter fails and the tempErrorAction applies.'),
      minBitLength: intIn(512, 4096).default(SENDER_AUTH_DEFAULTS.minBitLength).describe('DKIM/ARC keys shorter than this do not verify (policy).'),
      bypassedSenderDomains: listOf(senderDomain).default([]).describe("Set-SenderIdConfig -BypassedSenderDomains: messages whose envelope sender is in one of these domains (contoso.com, or *.contoso.com with its subdomains) are not checked: a partner whose SPF or DMARC is broken. The envelope sender is easily forged: a forger using it skips the checks too."),
      bypassedRecipients: listOf(mailboxAddress).default([]).describe('Set-SenderIdConfig -BypassedRecipients: messages all of whose recipients are in this list are not checked (postmaster@ reachable by anyone; one of them among other recipients spares nothing).'),
      arcTrustedSealers: listOf(senderDomain).default([]).describe("Exchange Online's Set-ArcConfig -ArcTrustedSealers: the ARC sealers (the d= of ARC-Seal: lists.example, or *.example with its subdomains) whose word is taken when DMARC fails. A message failing DMARC whose ARC chain passes, whose newest ARC set was sealed by one of them, and whose ARC-Authentication-Results of that set record dmarc=pass for the same From domain is treated as passing DMARC (a mailing list or forwarder that changed it on the way). None by default."),
      arcSeal: arcSealSchema.optional().describe("{ domain, selector, keyFile }: seal (RFC 8617 ARC) every message mailgw authenticated on arrival as it hands it on over SMTP, with mailgw's Authentication-Results as the ARC-Authentication-Results: the next hop (Exchange Online, Google) can then trust what mailgw verified although mailgw changed the message (a disclaimer, a banner), when it lists domain as a trusted ARC sealer. Off unless present."),
    })
    .default(SENDER_AUTH_DEFAULTS)
    .describe('{ enabled, spfFailAction, dmarcRejectAction, dmarcQuarantineAction, tempErrorAction, timeout, minBitLength, bypassedSenderDomains, bypassedRecipients, arcTrustedSealers, arcSeal }: SPF, DKIM, DMARC and ARC with one Authentication-Results header.'),
} as const;

export type DnsConfig = z.output<typeof antispamGatewayShape.dns>;
export type SenderFilterConfig = z.output<typeof antispamGatewayShape.senderFilterConfig>;
export type RecipientFilterConfig = z.output<typeof antispamGatewayShape.recipientFilterConfig>;
export type SenderAuthenticationConfig = z.output<typeof antispamGatewayShape.senderAuthentication>;
export type IPBlockListConfig = z.output<typeof antispamGatewayShape.ipBlockListConfig>;
export type SenderReputationConfig = z.output<typeof antispamGatewayShape.senderReputationConfig>;

/** One line in connectorShape. */
export const antispamConnectorShape = {
  senderAuthenticationEnabled: z.boolean().optional().describe('Verify SPF, DKIM, DMARC and ARC for mail on this connector. Default true for usage Internet, false otherwise; sessions holding ms-Exch-Bypass-Anti-Spam are never checked.'),
  senderReputationEnabled: z.boolean().optional().describe('Rate the senders of this connector (gateway senderReputationConfig). Default true for usage Internet, false otherwise (a printers\' relay or an internal one is not the Internet); sessions holding ms-Exch-Bypass-Anti-Spam are never rated.'),
} as const;

export const ANTISPAM_GATEWAY_OBJECT_KEYS: Record<string, readonly string[]> = {
  dns: Object.keys(antispamGatewayShape.dns.unwrap().shape),
  ipBlockListConfig: Object.keys(antispamGatewayShape.ipBlockListConfig.unwrap().shape),
  senderFilterConfig: Object.keys(antispamGatewayShape.senderFilterConfig.unwrap().shape),
  recipientFilterConfig: Object.keys(antispamGatewayShape.recipientFilterConfig.unwrap().shape),
  senderAuthentication: Object.keys(antispamGatewayShape.senderAuthentication.unwrap().shape),
  senderReputationConfig: Object.keys(antispamGatewayShape.senderReputationConfig.unwrap().shape),
};
export const PROVIDER_KEYS = [...Object.keys(providerCommon), 'rejectionResponse'];
