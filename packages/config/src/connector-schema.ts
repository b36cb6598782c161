// One receive connector per file in connectors.d/. Every key is declared here once, with its
// default and what it means; names follow Exchange's Set-ReceiveConnector in lowerCamelCase.
import { z } from 'zod';
import { ALL_IPV4, ALL_IPV6 } from './ip-range.js';
import {
  AUTH_MECHANISMS,
  MESSAGE_RATE_SOURCES,
  OWN_MAIL_CONNECTORS,
  PERMISSION_GROUPS,
  USAGE_PRESETS,
  USAGES,
  canonicalPrincipal,
  canonicalRight,
  type ExtendedRight,
} from './vocabulary.js';
import { antispamConnectorShape } from './antispam-schema.js';
import { binding, ciEnum, countOrUnlimited, durationMs, hostname, intIn, ipRange, listOf, sizeBytes } from './zod-helpers.js';

const MB = 1024 * 1024;

const permissionEntry = z.strictObject({
  /** Who: Anonymous, AuthenticatedUsers, ExternallySecuredServers, Partners, ExchangeServers, or a user name. */
  user: z.string().min(1).transform((s) => canonicalPrincipal(s) ?? s.trim()).optional(),
  /** Or: a directory group, by name (its cn) or DN; members (nested groups too) get it after AUTH. */
  group: z.string().trim().min(1).optional(),
  extendedRights: listOf(
    z.string().transform((s, ctx): ExtendedRight => {
      const r = canonicalRight(s);
      if (!r) {
        ctx.addIssue({ code: 'custom', message: `"${s}" is not an extended right mailgw knows (e.g. ms-Exch-SMTP-Accept-Any-Recipient)` });
        return z.NEVER;
      }
      return r;
    }),
  ).refine((a) => a.length > 0, 'list at least one extended right'),
  /** true: remove these rights from the principal (a deny always wins over a grant). */
  deny: z.boolean().default(false),
}).refine((p) => (p.user === undefined) !== (p.group === undefined), { message: 'give exactly one of user and group', path: ['user'] });

export const connectorShape = {
  name: z.string().trim().min(1, 'must not be empty').max(64).describe('Unique name, shown in logs and Received headers.'),
  comment: z.string().optional().describe('Free text for admins.'),
  enabled: z.boolean().default(true).describe('A disabled connector is ignored everywhere.'),
  usage: ciEnum(USAGES).default('Custom').describe('Preset (Client, Internal, Internet, Partner, Custom) that fills permissionGroups and authMechanism when they are left out.'),
  bindings: listOf(binding).refine((a) => a.length > 0, 'list at least one IP:port').describe('Local IP:port pairs to listen on (IPv4 and [IPv6]); 0.0.0.0 / [::] for all addresses.'),
  remoteIPRanges: listOf(ipRange).refine((a) => a.length > 0, 'list at least one range, or leave the key out for all addresses').default([ALL_IPV4, ALL_IPV6]).describe('Client addresses this connector serves: address, CIDR, lo-hi, a.b.c.d(mask) or "a.b.c.d, MASK=m". Default: all IPv4 and IPv6.'),
  fqdn: hostname.optional().describe('Name in the banner, EHLO reply, Received header and self-signed certificate. Default: gateway fqdn.'),
  banner: z.string().regex(/^220[ -]\S/, 'must be a 220 reply, e.g. "220 mail.contoso.com ESMTP"').optional().describe('Custom greeting. Default: "220 <fqdn> mailgw ESMTP service ready at <date>".'),
  authMechanism: listOf(ciEnum(AUTH_MECHANISMS)).optional().describe('None | Tls | BasicAuth | BasicAuthRequireTLS | ExternalAuthoritative (Integrated and ExchangeServer are accepted but offer nothing). Default from usage.'),
  permissionGroups: listOf(ciEnum(PERMISSION_GROUPS)).optional().describe('AnonymousUsers, ExchangeUsers, ExchangeServers, ExchangeLegacyServers, Partners, Custom, None. Default from usage. Partners gives its rights to domain-secured sessions (domainSecureEnabled); ExchangeLegacyServers is accepted but gives no session any right (check warns).'),
  permissions: z.array(permissionEntry).default([]).describe('Explicit grants and denies of extended rights (Add-ADPermission): { user | group, extendedRights, deny }; group: a directory group by name or DN.'),
  maxMessageSize: sizeBytes(64 * 1024, 2048 * MB).default(36 * MB).describe('Largest message accepted; advertised as EHLO SIZE. 64KB-2GB, default 36MB.'),
  maxRecipientsPerMessage: intIn(1, 512000).default(200).describe('RCPTs per message before 452 4.5.3.'),
  maxInboundConnection: countOrUnlimited(1, 2147483647).default(5000).describe('Concurrent connections to this connector, or "unlimited".'),
  maxInboundConnectionPerSource: countOrUnlimited(1, 10000).default(20).describe('Concurrent connections from one client IP, or "unlimited".'),
  maxInboundConnectionPercentagePerSource: intIn(1, 100).default(2).describe('Per-source share of maxInboundConnection, in percent; the smaller of the two limits applies.'),
  connectionTimeout: durationMs(1000).default(10 * 60_000).describe('Longest a connection may stay open (e.g. 10m, 00:10:00).'),
  connectionInactivityTimeout: durationMs(1000).default(5 * 60_000).describe('Longest idle time between commands; must be less than connectionTimeout.'),
  maxHopCount: intIn(1, 500).default(30).describe('Received headers allowed before 554 5.4.6 (Exchange 2016+ documentation value).'),
  maxLocalHopCount: intIn(0, 50).default(8).describe('Received headers added by this organisation (by the gateway fqdn or any connector fqdn) allowed before 554 5.4.6; 0 = no limit.'),
  maxHeaderSize: sizeBytes(1, 2048 * MB).default(256 * 1024).describe('Largest header section before 552 5.3.4.'),
  maxProtocolErrors: countOrUnlimited(0, 1000).default(5).describe('Protocol errors before 421 4.7.0 and disconnect.'),
  maxLogonFailures: intIn(0, 100).default(3).describe('Failed AUTH attempts before 421 4.7.0 and disconnect; 0 = no limit.'),
  tarpitInterval: durationMs(0, 600_000).default(5000).describe('Delay added to error replies for unauthenticated clients; not to replies about the gateway\'s own trouble (4.3.x such as back pressure, 4.4.3 directory down).'),
  requireTLS: z.boolean().default(false).describe('MAIL before STARTTLS gets 451 5.7.3 and the connection closes. Needs Tls.'),
  requireEHLODomain: z.boolean().default(false).describe('HELO/EHLO must carry a domain or address literal.'),
  protocolLoggingLevel: ciEnum(['None', 'Verbose'] as const).default('None').describe('Verbose writes an SMTP protocol log (CSV) for this connector.'),
  sizeEnabled: ciEnum(['Enabled', 'Disabled', 'EnabledWithoutValue'] as const).default('Enabled').describe('How SIZE is advertised.'),
  eightBitMimeEnabled: z.boolean().default(true).describe('Advertise 8BITMIME.'),
  pipeliningEnabled: z.boolean().default(true).describe('Advertise PIPELINING.'),
  chunkingEnabled: z.boolean().default(true).describe('Advertise CHUNKING and accept BDAT (RFC 3030; Exchange\'s ChunkingEnabled). Default true.'),
  binaryMimeEnabled: z.boolean().default(true).describe('Advertise BINARYMIME and accept MAIL … BODY=BINARYMIME (RFC 3030; Exchange\'s BinaryMimeEnabled). Offered only where chunkingEnabled is true too: a binary message must come by BDAT (DATA after BODY=BINARYMIME gets 503 5.5.1), and its octets are stored as they are (bare CR/LF rules do not apply). Such a message leaves only to next hops offering BINARYMIME and CHUNKING; others bounce it with 554 5.6.3. Default true.'),
  smtpUtf8Enabled: z.boolean().default(true).describe('Advertise SMTPUTF8 (RFC 6531) and accept UTF-8 addresses from clients that give MAIL FROM the SMTPUTF8 parameter (Exchange\'s SmtpUtf8Enabled). Default true.'),
  deliveryStatusNotificationEnabled: z.boolean().optional().describe('Advertise DSN and keep NOTIFY/RET/ENVID/ORCPT (Exchange\'s DeliveryStatusNotificationEnabled). Default true.'),
  dsnEnabled: z.boolean().optional().describe('Short alias of deliveryStatusNotificationEnabled; giving both with different values is an error.'),
  enhancedStatusCodesEnabled: z.boolean().default(true).describe('Advertise ENHANCEDSTATUSCODES.'),
  bareLinefeedRejectionEnabled: z.boolean().default(true).describe('Reject DATA with bare CR or LF (554 5.6.0); false normalises them to CRLF instead.'),
  messageRateLimit: countOrUnlimited(1, 1_000_000).optional().describe('Messages per minute per source, or "unlimited". Default unlimited (5 for usage Client).'),
  messageRateSource: ciEnum(MESSAGE_RATE_SOURCES).optional().describe('What messageRateLimit counts by: None, IPAddress, User, All. Default IPAddress (User for usage Client).'),
  tlsCertificate: z.string().min(1).optional().describe('PEM certificate file (relative to the gateway config). Without it, a self-signed one is made in dataDir.'),
  tlsKey: z.string().min(1).optional().describe('PEM private key file for tlsCertificate.'),
  implicitTLS: z.boolean().default(false).describe('TLS from the first byte (465-style submissions).'),
  domainSecureEnabled: z.boolean().optional().describe("Domain security (Exchange's DomainSecureEnabled, mutual TLS): STARTTLS asks the client for a certificate; a trusted one naming a domain of the gateway's tlsReceiveDomainSecureList makes the session Partner Servers (permission group Partners) and its mail domain secured. Needs Tls. Default true for usage Partner, false otherwise."),
  greetingDelay: durationMs(0, 60_000).default(0).describe('Pause before the banner; clients that talk first are dropped (postscreen-style). 0 = none, as Exchange.'),
  ...antispamConnectorShape,
  allowOpenRelay: z.boolean().default(false).describe('Acknowledge that anonymous clients may relay from a large range; without it mailgw refuses to start such a connector.'),
} as const;

type ParsedConnector = z.output<z.ZodObject<typeof connectorShape>>;

/** Fills what New-ReceiveConnector -Usage presets when the admin left the keys out; resolves aliases. */
function withPreset(parsed: ParsedConnector) {
  const { dsnEnabled, deliveryStatusNotificationEnabled, ...c } = parsed;
  const preset = USAGE_PRESETS[c.usage];
  return {
    ...c,
    deliveryStatusNotificationEnabled: deliveryStatusNotificationEnabled ?? dsnEnabled ?? true,
    authMechanism: c.authMechanism ?? [...preset.authMechanism],
    permissionGroups: c.permissionGroups ?? [...preset.permissionGroups],
    messageRateLimit: c.messageRateLimit !== undefined ? c.messageRateLimit : (preset.messageRateLimit ?? null),
    messageRateSource: c.messageRateSource ?? preset.messageRateSource ?? 'IPAddress',
    domainSecureEnabled: c.domainSecureEnabled ?? preset.domainSecureEnabled ?? false,
  };
}

/** An Exchange name and mailgw's short alias for it must not disagree. */
function aliasesAgree(c: ParsedConnector, ctx: z.RefinementCtx): void {
  if (c.deliveryStatusNotificationEnabled !== undefined && c.dsnEnabled !== undefined && c.deliveryStatusNotificationEnabled !== c.dsnEnabled) {
    ctx.addIssue({
      code: 'custom',
      path: ['dsnEnabled'],
      message: `deliveryStatusNotificationEnabled: ${c.deliveryStatusNotificationEnabled} and dsnEnabled: ${c.dsnEnabled} disagree; dsnEnabled is an alias of deliveryStatusNotificationEnabled: keep one`,
    });
  }
}

export const connectorSchema = z.strictObject(connectorShape).superRefine(aliasesAgree).transform(withPreset);
/** The same without the unknown-key check: lets the other rules still be reported when a file has a typo. */
export const connectorLooseSchema = z.object(connectorShape).superRefine(aliasesAgree).transform(withPreset);

export type ConnectorInput = z.input<typeof connectorSchema>;
export type ConnectorConfig = z.output<typeof connectorSchema>;

/** Rules within one connector that Exchange enforces (the Set-ReceiveConnector validation). */
export function connectorRuleIssues(c: ConnectorConfig): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  const auth = new Set(c.authMechanism);
  if (auth.has('None') && auth.size > 1) out.push({ path: 'authMechanism', message: 'None cannot be combined with other mechanisms' });
  if (auth.has('BasicAuthRequireTLS') && !(auth.has('BasicAuth') && auth.has('Tls'))) {
    out.push({ path: 'authMechanism', message: 'BasicAuthRequireTLS needs BasicAuth and Tls as well' });
  }
  if (c.domainSecureEnabled && !auth.has('Tls')) out.push({ path: 'domainSecureEnabled', message: 'domainSecureEnabled needs Tls in authMechanism: the client certificate comes with STARTTLS' });
  if (c.domainSecureEnabled && c.implicitTLS) out.push({ path: 'domainSecureEnabled', message: 'domainSecureEnabled works with STARTTLS (port 25 between servers), not with implicitTLS' });
  if (auth.has('ExternalAuthoritative')) {
    const others = [...auth].filter((m) => m !== 'ExternalAuthoritative' && m !== 'Tls');
    if (others.length) out.push({ path: 'authMechanism', message: `ExternalAuthoritative can only be combined with Tls (remove ${others.join(', ')})` });
    if (!c.permissionGroups.includes('ExchangeServers')) {
      out.push({ path: 'permissionGroups', message: 'ExternalAuthoritative needs the ExchangeServers permission group' });
    }
  }
  const groups = new Set(c.permissionGroups);
  if (groups.has('None') && groups.size > 1) out.push({ path: 'permissionGroups', message: 'None cannot be combined with other groups' });
  if (c.requireTLS && !auth.has('Tls')) out.push({ path: 'requireTLS', message: 'requireTLS needs Tls in authMechanism' });
  if (c.connectionInactivityTimeout >= c.connectionTimeout) {
    out.push({ path: 'connectionInactivityTimeout', message: 'must be less than connectionTimeout' });
  }
  if ((c.tlsCertificate === undefined) !== (c.tlsKey === undefined)) {
    out.push({ path: c.tlsCertificate === undefined ? 'tlsCertificate' : 'tlsKey', message: 'tlsCertificate and tlsKey go together' });
  }
  const seen = new Set<string>();
  c.bindings.forEach((b, i) => {
    const k = `${b.address}:${b.port}`;
    if (seen.has(k)) out.push({ path: `bindings[${i}]`, message: `${b.text} is listed twice` });
    seen.add(k);
  });
  return out;
}

/**
 * Groups, principals and rights mailgw accepts (they are Exchange's words) but that cannot
 * change what any session may do: reported by `mailgw check` and at start as warnings, never
 * silently. `permissionGroupsGiven`: the file lists permissionGroups (else they came from usage).
 */
export function connectorNoEffectWarnings(c: ConnectorConfig, permissionGroupsGiven: boolean): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  const own = OWN_MAIL_CONNECTORS[c.name.trim().toLowerCase()];
  if (own) out.push({ path: 'name', message: `"${c.name}" is the name mailgw gives ${own} in the queue, the logs, the tracking log and the metrics: this connector's mail could not be told apart from it there; rename the connector` });
  const groupPath = (i: number) => (permissionGroupsGiven ? `permissionGroups[${i}]` : 'usage');
  const fromUsage = permissionGroupsGiven ? '' : ` (from usage ${c.usage})`;
  c.permissionGroups.forEach((g, i) => {
    if (g === 'Partners' && !c.domainSecureEnabled) {
      out.push({
        path: groupPath(i),
        message: `permission group Partners${fromUsage} has no effect on a connector without domainSecureEnabled: its rights go to Partner Servers, which a session becomes only by domain security (a client certificate for a domain of tlsReceiveDomainSecureList)`,
      });
    } else if (g === 'ExchangeLegacyServers') {
      out.push({
        path: groupPath(i),
        message: `permission group ExchangeLegacyServers${fromUsage} has no effect in mailgw: Exchange gives its rights to ExchangeLegacyInterop (Exchange 2003 servers authenticating as such), which no mailgw session can become.`,
      });
    }
  });
  c.permissions.forEach((p, i) => {
    if ((p.user === 'Partners' && !c.domainSecureEnabled) || p.user === 'ExchangeLegacyInterop') {
      out.push({ path: `permissions[${i}].user`, message: `${p.user} has no effect ${p.user === 'Partners' ? 'on a connector without domainSecureEnabled: no session on it acts as Partner Servers' : 'in mailgw: no session ever acts as ExchangeLegacyInterop'}, so this ${p.deny ? 'deny' : 'grant'} changes nothing.` });
    }
    p.extendedRights.forEach((r, j) => {
      if (p.deny) return; // denying a right that does nothing is harmless
      if (r === 'ms-Exch-SMTP-Accept-Authentication-Flag') {
        out.push({ path: `permissions[${i}].extendedRights[${j}]`, message: 'ms-Exch-SMTP-Accept-Authentication-Flag has no effect in mailgw: it lets Exchange honour AUTH= on MAIL and treat the message as authenticated inside the organisation, which mailgw does not do.' });
      } else if (r === 'ms-Exch-SMTP-Accept-Exch50') {
        out.push({ path: `permissions[${i}].extendedRights[${j}]`, message: 'ms-Exch-SMTP-Accept-Exch50 has no effect in mailgw: it permits the XEXCH50 command (Exchange 2003 message properties), which mailgw does not offer.' });
      }
    });
  });
  return out;
}
