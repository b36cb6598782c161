// One send connector per file in send-connectors.d/. Every key is declared here once, with its
// default and what it means; names follow Exchange's Set-SendConnector in lowerCamelCase.
import { z } from 'zod';
import { parseDomainPattern, type DomainPattern } from './domain.js';
import { parseIp } from './ip-range.js';
import { ciEnum, countOrUnlimited, durationMs, envName, hostname, intIn, listOf, sizeBytes } from './zod-helpers.js';

const MB = 1024 * 1024;

export const SMART_HOST_AUTH_MECHANISMS = ['None', 'BasicAuth', 'BasicAuthRequireTLS', 'ExternalAuthoritative'] as const;
export type SmartHostAuthMechanism = (typeof SMART_HOST_AUTH_MECHANISMS)[number];
export const TLS_AUTH_LEVELS = ['EncryptionOnly', 'CertificateValidation', 'DomainValidation'] as const;
export type TlsAuthLevel = (typeof TLS_AUTH_LEVELS)[number];

export interface AddressSpaceConfig {
  readonly domain: DomainPattern;
  /** 1-100; among equally specific matches the lowest cost wins (Exchange). */
  readonly cost: number;
  /** Only for senders (MAIL FROM) in these domains; null = any sender. */
  readonly senderDomains: readonly DomainPattern[] | null;
}

function domainOrIssue(s: string, ctx: z.RefinementCtx): DomainPattern | typeof z.NEVER {
  const r = parseDomainPattern(s);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  }
  return r.value;
}

const domainPattern = z.string().transform((s, ctx) => domainOrIssue(s, ctx));

/** Exchange's text form: "contoso.com", "contoso.com;5", "SMTP:*.contoso.com;5". */
const addressSpaceText = z.string().transform((s, ctx): AddressSpaceConfig => {
  const m = /^\s*(?:smtp:)?([^;]+?)\s*(?:;\s*(\d+)\s*)?$/i.exec(s);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an address space; write domain[;cost], e.g. "*.contoso.com;5"` });
    return z.NEVER;
  }
  const domain = domainOrIssue(m[1]!, ctx);
  const cost = m[2] === undefined ? 1 : Number(m[2]);
  if (cost < 1 || cost > 100) {
    ctx.addIssue({ code: 'custom', message: `"${s}": the cost must be 1-100` });
    return z.NEVER;
  }
  return { domain: domain as DomainPattern, cost, senderDomains: null };
});

const addressSpaceObject = z
  .strictObject({
    address: domainPattern.describe('Recipient domain: contoso.com, *.contoso.com (it and its subdomains) or * (every domain).'),
    cost: intIn(1, 100).default(1).describe('1-100: among equally specific matches the lowest cost wins.'),
    senderDomains: listOf(domainPattern)
      .refine((a) => a.length > 0, 'list at least one sender domain, or leave the key out for any sender')
      .optional()
      .describe('Only mail whose sender (MAIL FROM) is in one of these domains (wildcards as in address) uses this address space: sender-dependent routing.'),
  })
  .transform((o): AddressSpaceConfig => ({ domain: o.address, cost: o.cost, senderDomains: o.senderDomains ?? null }));

/** The text form or the object form, with the issues of the form given (a union would report only "Invalid input"). */
const addressSpace = z.unknown().transform((v, ctx): AddressSpaceConfig => {
  const r = typeof v === 'string' ? addressSpaceText.safeParse(v) : addressSpaceObject.safeParse(v);
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ ...issue, input: v } as Parameters<typeof ctx.addIssue>[0]);
  return z.NEVER;
});

/** host[:port] or [IPv6]:port; the port defaults to the connector's `port`. */
export interface SmartHostConfig {
  readonly host: string;
  readonly port: number | null;
}

const smartHost = z.string().transform((s, ctx): SmartHostConfig => {
  const t = s.trim();
  const m = /^(?:\[([^\]]+)\]|([^:\s[\]]+))(?::(\d{1,5}))?$/.exec(t);
  const port = m?.[3] === undefined ? null : Number(m[3]);
  const host = m ? (m[1] ?? m[2]!) : '';
  const ok = m !== null && (port === null || (port >= 1 && port <= 65535)) && (m[1] !== undefined ? parseIp(host).ok : hostname.safeParse(host).success);
  if (!ok) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a smart host; write host[:port], IPv4[:port] or [IPv6]:port` });
    return z.NEVER;
  }
  return { host: m[1] !== undefined ? host : host.toLowerCase(), port };
});

const credential = z
  .strictObject({
    user: z.string().min(1).max(256).describe('User name for AUTH at the smart hosts.'),
    passEnv: envName.optional().describe('Name of the environment variable holding the password.'),
    passFile: z.string().min(1).optional().describe('File holding the password (first line), relative to gateway.yaml; keep it mode 0600.'),
  })
  .refine((a) => (a.passEnv === undefined) !== (a.passFile === undefined), 'give exactly one of passEnv or passFile (a password is never written in a connector file)');

const tlsDomain = z.string().transform((s, ctx) => {
  const wildcard = s.trim().startsWith('*.');
  const h = hostname.safeParse(wildcard ? s.trim().slice(2) : s);
  if (!h.success) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a domain (contoso.com or *.contoso.com)` });
    return z.NEVER;
  }
  return wildcard ? `*.${h.data}` : h.data;
});

const sourceIp = z.string().transform((s, ctx) => {
  const r = parseIp(s.trim());
  if (!r.ok || r.value.value === 0n || !/^[0-9a-f.:]+$/i.test(s.trim())) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a local IP address to send from (e.g. 192.0.2.10 or 2001:db8::10)` });
    return z.NEVER;
  }
  return r.value.text;
});

export const sendConnectorShape = {
  name: z.string().trim().min(1, 'must not be empty').max(64).describe('Unique name, shown in logs, `mailgw queue` and the send protocol log (Set-SendConnector -Name).'),
  comment: z.string().optional().describe('Free text for admins (-Comment).'),
  enabled: z.boolean().default(true).describe('A disabled send connector is never chosen (-Enabled).'),
  addressSpaces: listOf(addressSpace)
    .refine((a) => a.length > 0, 'list at least one address space, e.g. "*" for every domain')
    .describe('Recipient domains this connector serves (-AddressSpaces): "contoso.com", "*.contoso.com;5" (domain;cost) or { address, cost, senderDomains }. The most specific match wins, then a sender-restricted one, then the lowest cost.'),
  smartHosts: listOf(smartHost)
    .refine((a) => a.length > 0, 'list at least one smart host, or leave the key out and use dnsRoutingEnabled')
    .optional()
    .describe('Hosts to relay through (-SmartHosts), host[:port], tried in order: the next one when a host cannot be reached or refuses the session.'),
  dnsRoutingEnabled: z.boolean().optional().describe('Deliver to the MX hosts of each recipient domain (-DNSRoutingEnabled). Default: true without smartHosts.'),
  port: intIn(1, 65535).optional().describe('Port of the smart hosts (those without their own :port) and of the MX hosts (-Port). Default 25.'),
  smartHostAuthMechanism: ciEnum(SMART_HOST_AUTH_MECHANISMS).default('None').describe('None, BasicAuth (AUTH PLAIN/LOGIN, after STARTTLS when offered), BasicAuthRequireTLS (AUTH only after STARTTLS; a host without it gets nothing), ExternalAuthoritative (no AUTH: the path is secured outside mailgw, e.g. IPsec) (-SmartHostAuthMechanism).'),
  authenticationCredential: credential.optional().describe('{ user, passEnv | passFile } for BasicAuth and BasicAuthRequireTLS (-AuthenticationCredential).'),
  requireTLS: z.boolean().default(false).describe('Nothing is sent without TLS; a host without STARTTLS, or whose certificate fails tlsAuthLevel, gets nothing and the message waits (4.7.5) (-RequireTLS).'),
  tlsAuthLevel: ciEnum(TLS_AUTH_LEVELS).optional().describe('With requireTLS: EncryptionOnly (any certificate), CertificateValidation (a chain to a trusted CA), DomainValidation (that, and a name matching tlsDomain) (-TlsAuthLevel).'),
  tlsDomain: tlsDomain.optional().describe('Name the certificate must carry with DomainValidation: contoso.com or *.contoso.com (-TlsDomain). Required for smart hosts; for MX delivery the default is the MX host name.'),
  fqdn: hostname.optional().describe('Name sent in EHLO (-Fqdn). Default: gateway fqdn.'),
  sourceIPAddress: sourceIp.optional().describe('Local IP address outgoing connections are made from (-SourceIPAddress). Default: chosen by the operating system.'),
  maxMessageSize: z
    .union([z.literal('unlimited').transform(() => null), sizeBytes(1, 2048 * MB)])
    .default(35 * MB)
    .describe('Larger messages are not sent through this connector: they fail with 552 5.3.4 and a DSN (-MaxMessageSize). Default 35MB; "unlimited".'),
  connectionInactivityTimeout: durationMs(1000, 86_400_000).default(10 * 60_000).describe('An outgoing session idle this long waiting for the far side is dropped and retried (-ConnectionInactivityTimeOut). Default 10m.'),
  protocolLoggingLevel: ciEnum(['None', 'Verbose'] as const).default('None').describe('Verbose writes every outgoing SMTP command and reply to the send protocol log, <dataDir>/logs/smtp-send/ (-ProtocolLoggingLevel).'),
  maxConnectionsPerDestination: intIn(1, 1000).optional().describe('Simultaneous connections to one next hop of this connector, across all workers (mailgw; no Set-SendConnector parameter). Default: queue.maxConnectionsPerDestination.'),
  messageRateLimit: countOrUnlimited(1, 1_000_000).default(null).describe('Messages per minute this connector sends, across all workers; more wait in the queue untried (mailgw; no Set-SendConnector parameter). Default "unlimited".'),
  sendHeadersRouting: z
    .boolean()
    .default(true)
    .describe(
      "Received fields go out as they are (Exchange: the connector grants ms-Exch-Send-Headers-Routing to Anonymous Logon). false: every Received field is removed from mail this connector sends, so the Internet does not see your internal hosts, clients' addresses and the way the mail came (Exchange: that right removed). Before DKIM signing; local mailboxes keep them.",
    ),
  domainSecureEnabled: z.boolean().default(false).describe("Domain security (-DomainSecureEnabled, mutual TLS): mail to a domain of the gateway's tlsSendDomainSecureList goes only over TLS, to a server whose trusted certificate names that domain, with the gateway's domainSecureCertificate presented; else it waits (4.7.5). MX delivery only (dnsRoutingEnabled)."),
} as const;

export const sendConnectorSchema = z.strictObject(sendConnectorShape).superRefine((c, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  const smart = c.smartHosts !== undefined;
  if (smart && c.dnsRoutingEnabled === true) issue('dnsRoutingEnabled', 'give either smartHosts or dnsRoutingEnabled: true, not both');
  if (!smart && c.dnsRoutingEnabled === false) issue('smartHosts', 'dnsRoutingEnabled is false: list the smart hosts to relay through');
  const basic = c.smartHostAuthMechanism === 'BasicAuth' || c.smartHostAuthMechanism === 'BasicAuthRequireTLS';
  if (basic && !smart) issue('smartHostAuthMechanism', `${c.smartHostAuthMechanism} authenticates at smart hosts: list smartHosts (MX hosts are never sent credentials)`);
  if (basic && !c.authenticationCredential) issue('authenticationCredential', `${c.smartHostAuthMechanism} needs authenticationCredential: { user, passEnv } or { user, passFile }`);
  if (!basic && c.authenticationCredential) issue('authenticationCredential', `smartHostAuthMechanism is ${c.smartHostAuthMechanism}: no credentials are sent; set BasicAuth or remove this key`);
  if (c.tlsAuthLevel && !c.requireTLS) issue('tlsAuthLevel', 'tlsAuthLevel applies only with requireTLS: true (as Exchange: otherwise a failed check would fall back to plain text)');
  if (c.tlsDomain && c.tlsAuthLevel !== 'DomainValidation') issue('tlsDomain', 'tlsDomain is checked only with tlsAuthLevel: DomainValidation');
  if (c.tlsAuthLevel === 'DomainValidation' && smart && !c.tlsDomain) issue('tlsDomain', 'DomainValidation to smart hosts needs tlsDomain: the name their certificate must carry');
  if (c.domainSecureEnabled && smart) issue('domainSecureEnabled', "domainSecureEnabled works with MX delivery (dnsRoutingEnabled): a smart host serves many domains and its certificate names none of them");
});

export type SendConnectorFileConfig = z.output<typeof sendConnectorSchema>;
export const SEND_CONNECTOR_KEYS = Object.keys(sendConnectorShape);
