// The words of Exchange's receive-connector model, as mailgw accepts them in config files.

export const EXTENDED_RIGHTS = [
  'ms-Exch-SMTP-Submit',
  'ms-Exch-SMTP-Accept-Any-Recipient',
  'ms-Exch-SMTP-Accept-Any-Sender',
  'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender',
  'ms-Exch-SMTP-Accept-Authentication-Flag',
  'ms-Exch-SMTP-Accept-Exch50',
  'ms-Exch-Bypass-Anti-Spam',
  'ms-Exch-Bypass-Message-Size-Limit',
  'ms-Exch-Accept-Headers-Routing',
  'ms-Exch-Accept-Headers-Organization',
  'ms-Exch-Accept-Headers-Forest',
] as const;
export type ExtendedRight = (typeof EXTENDED_RIGHTS)[number];

const RIGHT_BY_KEY = new Map<string, ExtendedRight>();
for (const r of EXTENDED_RIGHTS) {
  RIGHT_BY_KEY.set(r.toLowerCase(), r);
  RIGHT_BY_KEY.set(r.toLowerCase().replace(/^ms-exch-/, ''), r);
}

/** Accepts `ms-Exch-SMTP-Submit`, `SMTP-Submit`, any case. */
export function canonicalRight(input: string): ExtendedRight | undefined {
  return RIGHT_BY_KEY.get(input.trim().toLowerCase());
}

/**
 * The connector names mailgw gives its own mail in the queue, the logs, the tracking log and the
 * metrics' connector label: the pickup directory's, journal reports, DSNs, TLS reports. A
 * receive connector of the same name could not be told apart from them there.
 */
export const OWN_MAIL_CONNECTORS: Readonly<Record<string, string>> = {
  pickup: 'the pickup directory\'s mail (Pickup)',
  journal: 'journal reports (Journal)',
  dsn: 'delivery status notifications (DSN)',
  tlsrpt: 'SMTP TLS reports (TLSRPT)',
};

/** Built-in security principals a connector can grant rights to. Any other name is a user. */
export const BUILTIN_PRINCIPALS = [
  'Anonymous',
  'AuthenticatedUsers',
  'ExternallySecuredServers',
  'Partners',
  'ExchangeServers',
  'ExchangeLegacyInterop',
] as const;
export type BuiltinPrincipal = (typeof BUILTIN_PRINCIPALS)[number];

const PRINCIPAL_SPELLINGS: Record<string, BuiltinPrincipal> = {
  anonymous: 'Anonymous',
  'anonymous logon': 'Anonymous',
  'nt authority\\anonymous logon': 'Anonymous',
  anonymoususers: 'Anonymous',
  authenticatedusers: 'AuthenticatedUsers',
  'authenticated users': 'AuthenticatedUsers',
  'nt authority\\authenticated users': 'AuthenticatedUsers',
  externallysecuredservers: 'ExternallySecuredServers',
  'externally secured servers': 'ExternallySecuredServers',
  'ms exchange\\externally secured servers': 'ExternallySecuredServers',
  partners: 'Partners',
  'partner servers': 'Partners',
  'ms exchange\\partner servers': 'Partners',
  exchangeservers: 'ExchangeServers',
  'exchange servers': 'ExchangeServers',
  'ms exchange\\hub transport servers': 'ExchangeServers',
  'ms exchange\\edge transport servers': 'ExchangeServers',
  exchangelegacyinterop: 'ExchangeLegacyInterop',
  'exchange legacy interop': 'ExchangeLegacyInterop',
  'exchangelegacyinterop universal security group': 'ExchangeLegacyInterop',
};

export function canonicalPrincipal(input: string): BuiltinPrincipal | undefined {
  return PRINCIPAL_SPELLINGS[input.trim().toLowerCase().replace(/\s+/g, ' ')];
}

export const PERMISSION_GROUPS = [
  'None',
  'AnonymousUsers',
  'ExchangeUsers',
  'ExchangeServers',
  'ExchangeLegacyServers',
  'Partners',
  'Custom',
] as const;
export type PermissionGroup = (typeof PERMISSION_GROUPS)[number];

export const AUTH_MECHANISMS = [
  'None',
  'Tls',
  'BasicAuth',
  'BasicAuthRequireTLS',
  'Integrated',
  'ExchangeServer',
  'ExternalAuthoritative',
] as const;
export type AuthMechanism = (typeof AUTH_MECHANISMS)[number];

export const USAGES = ['Client', 'Internal', 'Internet', 'Partner', 'Custom'] as const;
export type Usage = (typeof USAGES)[number];

export interface UsagePreset {
  permissionGroups: PermissionGroup[];
  authMechanism: AuthMechanism[];
  messageRateLimit?: number;
  messageRateSource?: MessageRateSource;
  domainSecureEnabled?: boolean;
}

/**
 * What New-ReceiveConnector -Usage fills in when the admin leaves the keys out.
 * Integrated (NTLM/Kerberos) is left out of Client: mailgw does not implement it.
 */
export const USAGE_PRESETS: Record<Usage, UsagePreset> = {
  Client: {
    permissionGroups: ['ExchangeUsers'],
    authMechanism: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'],
    messageRateLimit: 5,
    messageRateSource: 'User',
  },
  Internal: { permissionGroups: ['ExchangeServers', 'ExchangeLegacyServers'], authMechanism: ['Tls', 'ExchangeServer'] },
  Internet: { permissionGroups: ['AnonymousUsers'], authMechanism: ['Tls'] },
  Partner: { permissionGroups: ['Partners'], authMechanism: ['Tls'], domainSecureEnabled: true },
  Custom: { permissionGroups: [], authMechanism: ['Tls'] },
};

export const MESSAGE_RATE_SOURCES = ['None', 'IPAddress', 'User', 'All'] as const;
export type MessageRateSource = (typeof MESSAGE_RATE_SOURCES)[number];

export const ACCEPTED_DOMAIN_TYPES = ['Authoritative', 'InternalRelay', 'ExternalRelay'] as const;
export type AcceptedDomainType = (typeof ACCEPTED_DOMAIN_TYPES)[number];
