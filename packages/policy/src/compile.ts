// Compiles a validated configuration once into an immutable policy: ranges parsed, groups
// expanded into rights, grants and denies applied. Also the start-up safety checks that need
// rights (the open-relay refusal), reported as config issues naming file and key.
import {
  BUILTIN_PRINCIPALS,
  AD_ATTRIBUTE_CONDITIONS,
  exceptKey,
  insideDomains,
  isInside,
  rangeSize,
  type AcceptedDomainType,
  type BuiltinPrincipal,
  type ConfigIssue,
  type DomainPattern,
  type IpRange,
  type LoadedConnector,
  type MailgwConfig,
} from '@mailgw/config';
import { antispamWarnings } from './antispam.js';
import { selectSendConnector } from './send-connector.js';
import { recipientVerificationWarnings } from './recipient-verification.js';
import { DISCLAIMER_TOKENS, disclaimerTokens, tokenAttribute } from './disclaimer-tokens.js';
import { compileAddressRewrite, type AddressRewriter } from './address-rewrite.js';
import { directorySchemaMap, type DirectorySchemaMap } from './directory.js';
import { buildAcl, effectiveRights, type EffectiveRights, type PrincipalAcl, type PrincipalKey } from './rights.js';

export interface CompiledUser {
  readonly name: string;
  readonly passwordHash: string;
  /** Lower-cased addresses the user may send as. */
  readonly addresses: ReadonlySet<string>;
  /** Set for a user the directory authenticated: its DN and its groups' DNs (nested ones included). */
  readonly directory?: { readonly dn: string; readonly groups: readonly string[]; readonly maxSendSize?: number; readonly recipientLimits?: number; readonly sids?: readonly string[] };
  /** Its own recipientRateLimit (null: unlimited); absent: throttlingPolicy's. */
  readonly recipientRateLimit?: number | null;
}

export interface CompiledConnector {
  readonly name: string;
  readonly config: LoadedConnector;
  readonly acl: ReadonlyMap<PrincipalKey, PrincipalAcl>;
  /** Principals a session acts as before AUTH. */
  readonly initialPrincipals: readonly PrincipalKey[];
  /** Rights before AUTH, computed once. */
  readonly initialRights: EffectiveRights;
  readonly offersTls: boolean;
  readonly offersBasicAuth: boolean;
  readonly basicAuthRequiresTls: boolean;
  readonly externallySecured: boolean;
  /**
   * Host names of this organisation's own servers (lower case): the gateway's FQDN and every
   * connector's. A Received field "by" one of them is a local hop (maxLocalHopCount).
   */
  readonly ownHosts: ReadonlySet<string>;
  /** The pickup directory's connector (pickupSession): never listens; not trusted with journal reports however secured. */
  readonly pickup?: true;
}

export interface Policy {
  readonly config: MailgwConfig;
  readonly connectors: readonly CompiledConnector[];
  readonly acceptedDomains: ReadonlyArray<{ pattern: DomainPattern; type: AcceptedDomainType }>;
  readonly acceptedPatterns: readonly DomainPattern[];
  /** Authoritative and InternalRelay domains: mail to them stays inside (address rewriting, transport rule scopes). */
  readonly insideDomains: readonly DomainPattern[];
  /** Lower-cased known mailboxes; null = recipient lookup off. */
  readonly recipients: ReadonlySet<string> | null;
  /** recipients: { directory: true }: an address of an Authoritative domain not in `recipients` is looked up in the directory. */
  readonly recipientsFromDirectory: boolean;
  /** The directory's attributes (its preset with the admin's overrides), resolved once; null: no directory. */
  readonly directoryMap: DirectorySchemaMap | null;
  readonly users: ReadonlyMap<string, CompiledUser>;
  readonly relayDeniedIPRanges: readonly IpRange[];
  readonly blockedIPRanges: readonly IpRange[];
  readonly blockedDomains: readonly DomainPattern[];
  /** addressRewriteEntries compiled; null when there are none. */
  readonly addressRewrite: AddressRewriter | null;
}

export type CompileResult = { ok: true; policy: Policy; warnings: ConfigIssue[] } | { ok: false; errors: ConfigIssue[]; warnings: ConfigIssue[] };

const builtin = new Set<string>(BUILTIN_PRINCIPALS);
const isBuiltin = (p: string): p is BuiltinPrincipal => builtin.has(p);

/** A range larger than this lets "anonymous relay" reach far beyond a printers' subnet. */
const OPEN_RELAY_LIMIT = { 4: 256n, 6: 1n << 64n } as const;

export function compileConnector(c: LoadedConnector, ownHosts: ReadonlySet<string> = new Set([c.fqdn.toLowerCase()])): CompiledConnector {
  const acl = buildAcl(c, isBuiltin);
  const auth = new Set(c.authMechanism);
  const externallySecured = auth.has('ExternalAuthoritative');
  const initialPrincipals: PrincipalKey[] = externallySecured ? ['ExternallySecuredServers'] : ['Anonymous'];
  return {
    name: c.name,
    config: c,
    acl,
    initialPrincipals,
    initialRights: effectiveRights(acl, initialPrincipals),
    offersTls: auth.has('Tls'),
    offersBasicAuth: auth.has('BasicAuth'),
    basicAuthRequiresTls: auth.has('BasicAuthRequireTLS'),
    externallySecured,
    ownHosts,
  };
}

function openRelayIssue(c: CompiledConnector): { severity: 'error' | 'warning'; issue: ConfigIssue } | null {
  if (!c.config.enabled || !c.initialRights.rights.has('ms-Exch-SMTP-Accept-Any-Recipient')) return null;
  const total = { 4: 0n, 6: 0n };
  for (const r of c.config.remoteIPRanges) total[r.family] += rangeSize(r);
  const wide = (total[4] > OPEN_RELAY_LIMIT[4] ? ['IPv4'] : []).concat(total[6] > OPEN_RELAY_LIMIT[6] ? ['IPv6'] : []);
  if (wide.length === 0) return null;
  const who = c.externallySecured ? 'every client (ExternalAuthoritative trusts them as Externally Secured Servers)' : 'anonymous clients';
  const source = c.initialRights.grantedBy.get('ms-Exch-SMTP-Accept-Any-Recipient')!.join('; ');
  const ranges = c.config.remoteIPRanges.filter((r) => wide.includes(`IPv${r.family}`)).map((r) => r.text).join(', ');
  const message =
    `connector "${c.name}" lets ${who} relay to any domain (ms-Exch-SMTP-Accept-Any-Recipient from ${source}) ` +
    `from ${ranges}: more than a /24 (IPv4) or /64 (IPv6) is an open relay. ` +
    (c.config.allowOpenRelay
      ? 'Started anyway because allowOpenRelay: true.'
      : 'Limit remoteIPRanges to the hosts that need to relay, or set allowOpenRelay: true if you really mean it.');
  return { severity: c.config.allowOpenRelay ? 'warning' : 'error', issue: { file: c.config.file, path: 'remoteIPRanges', message } };
}

/**
 * Domain security on the sending side: a partner domain whose mail would not go through a send
 * connector with domainSecureEnabled and MX delivery leaves without it (said, not refused: the
 * admin may be moving it), and a domainSecureEnabled connector with no partner domain does nothing.
 */
/** Which send connector carries mail to a partner domain (sender in the default domain), and why it does so without domain security (null: with it). */
export function domainSecureRoute(g: MailgwConfig['gateway'], domain: string): { connector: string | null; without: string | null } {
  const c = selectSendConnector(g.sendConnectors, { recipientDomain: domain, senderDomain: g.defaultDomain }).connector;
  const without = !c ? 'no send connector serves it' : c.target.kind !== 'mx' ? `send connector "${c.name}" uses smart hosts` : !c.domainSecureEnabled ? `send connector "${c.name}" has no domainSecureEnabled` : null;
  return { connector: c?.name ?? null, without };
}

/** Disclaimer tokens Exchange does not fill (they go out as written), and tokens with no directory to fill them (they go out empty). */
function disclaimerTokenWarnings(config: MailgwConfig): ConfigIssue[] {
  const g = config.gateway;
  const out: ConfigIssue[] = [];
  g.transportRules.forEach((r, n) => {
    if (!r.actions.disclaimer) return;
    const path = `transportRules[${n}].applyHtmlDisclaimerText`;
    const { known, unknown } = disclaimerTokens(r.actions.disclaimer.html);
    if (unknown.length > 0) out.push({ file: config.gatewayFile, path, message: `${unknown.join(', ')}: not a token Exchange fills (${DISCLAIMER_TOKENS.slice(0, 6).join(', ')}, … CustomAttribute15): it goes out as written` });
    if (known.length > 0 && !g.directory) out.push({ file: config.gatewayFile, path, message: `${known.map((t) => `%%${t}%%`).join(', ')} ${known.length === 1 ? 'is' : 'are'} filled from the sender's directory object, and there is no directory section: ${known.length === 1 ? 'it goes' : 'they go'} out empty` });
    const unread = g.directory ? known.filter((t) => tokenAttribute(g.directory!.preset, t) === null) : [];
    if (unread.length > 0) out.push({ file: config.gatewayFile, path, message: `${unread.map((t) => `%%${t}%%`).join(', ')}: the ${g.directory!.preset} schema has no attribute for ${unread.length === 1 ? 'it' : 'them'}: ${unread.length === 1 ? 'it goes' : 'they go'} out empty` });
  });
  return out;
}

/** Directory attribute conditions on an attribute the directory preset's schema does not have: they could never match. */
function adAttributeConditionErrors(config: MailgwConfig): ConfigIssue[] {
  const d = config.gateway.directory;
  if (!d) return []; // config validation already said the directory section is missing
  const out: ConfigIssue[] = [];
  config.gateway.transportRules.forEach((r, n) => {
    for (const [prefix, c] of [['', r.conditions], ['exceptIf', r.exceptions]] as const) {
      for (const k of AD_ATTRIBUTE_CONDITIONS) {
        const unread = [...new Set((c[k] ?? []).map((e) => e.attribute).filter((a) => tokenAttribute(d.preset, a) === null))];
        if (unread.length > 0) out.push({ file: config.gatewayFile, path: `transportRules[${n}].${prefix ? exceptKey(k) : k}`, message: `rule "${r.name}": the ${d.preset} schema has no attribute for ${unread.join(', ')}, so this condition could never match` });
      }
    }
  });
  return out;
}

/** Remote domains that name a domain inside the organisation: recipients there are never in a remote domain, so the entry never applies. */
function remoteDomainWarnings(config: MailgwConfig): ConfigIssue[] {
  const g = config.gateway;
  const inside = insideDomains(g.acceptedDomains);
  return g.remoteDomains.flatMap((r, i) => {
    const d = r.domainName;
    // A wildcard entry is dead only when its subdomains are inside too (an accepted *.domain).
    if (d.domain === '' || !isInside(d.domain, inside) || (d.wildcard && !isInside(`any.${d.domain}`, inside))) return [];
    return [{ file: config.gatewayFile, path: `remoteDomains[${i}].domainName`, message: `${d.text} is inside the organisation (an Authoritative or InternalRelay accepted domain): remote domains apply to recipients outside it, so "${r.name}" never applies` }];
  });
}

function domainSecureSendWarnings(config: MailgwConfig): ConfigIssue[] {
  const g = config.gateway;
  const out: ConfigIssue[] = [];
  g.tlsSendDomainSecureList.forEach((domain, i) => {
    const why = domainSecureRoute(g, domain).without;
    if (why) out.push({ file: config.gatewayFile, path: `tlsSendDomainSecureList[${i}]`, message: `mail to ${domain} goes without domain security: ${why} (domain security needs a send connector with domainSecureEnabled and MX delivery)` });
  });
  if (g.tlsSendDomainSecureList.length === 0) {
    for (const c of g.sendConnectors) {
      if (c.enabled && c.domainSecureEnabled) out.push({ file: c.origin.file, path: 'domainSecureEnabled', message: `send connector "${c.name}" has domainSecureEnabled, but tlsSendDomainSecureList names no partner domain: it changes nothing` });
    }
  }
  return out;
}

export function compilePolicy(config: MailgwConfig): CompileResult {
  const g = config.gateway;
  const ownHosts: ReadonlySet<string> = new Set([g.fqdn, ...config.connectors.map((c) => c.fqdn)].map((h) => h.toLowerCase()));
  const connectors = config.connectors.map((c) => compileConnector(c, ownHosts));
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  for (const c of connectors) {
    const r = openRelayIssue(c);
    if (r) (r.severity === 'error' ? errors : warnings).push(r.issue);
    if (c.config.enabled && c.offersBasicAuth && !c.basicAuthRequiresTls && !c.config.implicitTLS) {
      warnings.push({ file: c.config.file, path: 'authMechanism', message: `connector "${c.name}" accepts passwords over plaintext; add BasicAuthRequireTLS` });
    }
  }
  warnings.push(...domainSecureSendWarnings(config));
  for (const c of connectors) {
    if (c.config.enabled && c.config.domainSecureEnabled && g.tlsReceiveDomainSecureList.length === 0) {
      warnings.push({ file: c.config.file, path: 'domainSecureEnabled', message: `connector "${c.name}" has domainSecureEnabled, but the gateway's tlsReceiveDomainSecureList names no partner domain: no session on it is ever domain secured` });
    }
  }
  warnings.push(...antispamWarnings({ config, connectors }));
  warnings.push(...recipientVerificationWarnings(config));
  warnings.push(...disclaimerTokenWarnings(config));
  errors.push(...adAttributeConditionErrors(config));
  warnings.push(...remoteDomainWarnings(config));
  if (!config.connectors.some((c) => c.enabled)) warnings.push({ file: config.gatewayFile, path: '', message: 'no connector is enabled: mailgw will not listen anywhere' });
  if (errors.length) return { ok: false, errors, warnings };

  const users = new Map<string, CompiledUser>();
  for (const u of g.users) users.set(u.name.toLowerCase(), { name: u.name, passwordHash: u.passwordHash, addresses: new Set(u.addresses.map((a) => a.toLowerCase())), ...(u.recipientRateLimit !== undefined ? { recipientRateLimit: u.recipientRateLimit } : {}) });

  const policy: Policy = {
    config,
    connectors,
    acceptedDomains: g.acceptedDomains.map((d) => ({ pattern: d.domain, type: d.type })),
    acceptedPatterns: g.acceptedDomains.map((d) => d.domain),
    insideDomains: insideDomains(g.acceptedDomains),
    recipients: g.recipients ? new Set(g.recipients.map((r) => r.toLowerCase())) : null,
    recipientsFromDirectory: g.recipientsFromDirectory,
    directoryMap: g.directory ? directorySchemaMap(g.directory) : null,
    users,
    relayDeniedIPRanges: g.relayDeniedIPRanges,
    blockedIPRanges: g.blockedIPRanges,
    blockedDomains: g.blockedDomains,
    addressRewrite: compileAddressRewrite(g.addressRewriteEntries),
  };
  return { ok: true, policy, warnings };
}
