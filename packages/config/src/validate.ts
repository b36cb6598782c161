// From parsed file contents to one validated configuration, with every problem reported at
// once. Pure: file reading is passed in, so tests and `mailgw check` share this path.
import path from 'node:path';
import { z } from 'zod';
import { connectorLooseSchema, connectorNoEffectWarnings, connectorRuleIssues, connectorSchema, connectorShape, type ConnectorConfig } from './connector-schema.js';
import { TLS_REPORT_KEYS, gatewaySchema, gatewayShape, mailboxAddress, quarantineMailboxOf, userSchema, type GatewayFileConfig, type UserConfig } from './gateway-schema.js';
import { MILTER_KEYS, RSPAMD_KEYS, contentFilterIssues } from './content-filter-schema.js';
import { ATTACHMENT_FILTER_KEYS } from './attachment-filter-schema.js';
import type { BounceVerificationConfig } from './bounce-verification-schema.js';
import { ADDRESS_REWRITE_ENTRY_KEYS } from './address-rewrite-schema.js';
import { AD_ATTRIBUTE_CONDITIONS, TRANSPORT_RULE_KEYS, exceptKey, transportRuleWarnings } from './transport-rule-schema.js';
import { rangeRelation, type IpRange } from './ip-range.js';
import { insideDomains, isInside, matchDomain } from './domain.js';
import { ANTISPAM_GATEWAY_OBJECT_KEYS, PROVIDER_KEYS } from './antispam-schema.js';
import { fromZod, type ConfigIssue } from './issues.js';
import { DKIM_DOMAIN_KEYS, DKIM_KEYS, DKIM_SELECTOR_KEYS, dkimIssues } from './dkim-schema.js';
import { compileRoutes, type CompiledRoute, type Env, type RouteSecret, type SecretsMode } from './routes.js';
import { SEND_CONNECTOR_KEYS, sendConnectorSchema } from './send-connector-schema.js';
import { compileSendConnector, routeConnectors, type SendConnector } from './send-connectors.js';
import { BUILTIN_PRINCIPALS } from './vocabulary.js';
import { DIRECTORY_KEYS, type DirectoryFileConfig } from './directory-schema.js';
import { RECIPIENT_VERIFICATION_KEYS } from './recipient-verification-schema.js';

/**
 * gateway.yaml, validated and compiled. `S` is what route passwords are: strings (the default:
 * secrets resolved, what start/listen/worker/check use), or RouteSecret when loaded with
 * secrets: 'unresolved' (mailgw queue, which needs hop keys only).
 */
/** gateway.yaml `directory`, with its secrets read: the password (from the environment or its file) and the CA file's PEM. */
export interface DirectoryConfig extends DirectoryFileConfig {
  /** '' when loaded with secrets: 'unresolved'. */
  readonly bindPassword: string;
  /** PEM text of caFile, or null for the system CAs. */
  readonly caPem: string | null;
}

export interface GatewayConfig<S extends RouteSecret = string> extends Omit<GatewayFileConfig, 'fqdn' | 'recipients' | 'users' | 'routes' | 'directory' | 'bounceVerification'> {
  /** The directory (AD/LDAP), if configured. */
  directory: DirectoryConfig | null;
  /** Bounce verification (BATV), with its secret read; absent: off. */
  bounceVerification?: BounceVerificationConfig | undefined;
  /** recipients: { directory: true }: an address of an Authoritative domain is known when the directory holds it (or a local user has it). */
  recipientsFromDirectory: boolean;
  fqdn: string;
  /** Compiled next hops, in file order (first match wins). */
  routes: readonly CompiledRoute<S>[];
  /**
   * The outbound routing table: the send connectors of send-connectors.d/ (file order), then
   * each route as the connector it is shorthand for. @mailgw/policy selectSendConnector chooses.
   */
  sendConnectors: readonly SendConnector<S>[];
  /** Known mailboxes of authoritative domains; null = no recipient lookup. */
  recipients: string[] | null;
  users: UserConfig[];
  defaultDomain: string;
}

export interface LoadedConnector extends ConnectorConfig {
  /** The file it came from, as given to the loader. */
  readonly file: string;
  readonly fqdn: string;
}

export interface MailgwConfig<S extends RouteSecret = string> {
  readonly gatewayFile: string;
  readonly gateway: GatewayConfig<S>;
  readonly connectors: readonly LoadedConnector[];
}

export type BuildResult<S extends RouteSecret = string> =
  | { ok: true; config: MailgwConfig<S>; warnings: ConfigIssue[] }
  | { ok: false; errors: ConfigIssue[]; warnings: ConfigIssue[] };

export interface ConfigSources {
  gatewayFile: string;
  gatewayData: unknown;
  connectorFiles: ReadonlyArray<{ file: string; data: unknown }>;
  /** send-connectors.d/*: none is fine (routes, or nothing leaves). */
  sendConnectorFiles?: ReadonlyArray<{ file: string; data: unknown }>;
  /** Reads a file referenced from gateway.yaml (users/recipients); returns its text or an error message. */
  readReferenced: (relPath: string) => { ok: true; text: string; file: string } | { ok: false; error: string; file: string };
  /** Parses YAML text (injected so this module needs no parser choice). */
  parseYaml: (text: string) => unknown;
  /** Host name to use when gateway.yaml has no fqdn. */
  fallbackFqdn: string;
  /** Directory relative paths in gateway.yaml start from (maildir: routes); default: that of gatewayFile. */
  baseDir?: string;
  /** Environment for routes' auth.passEnv (secrets: 'resolve'); default: no variable is set. */
  env?: Env;
  /**
   * 'resolve' (default): every route password is looked up, an unset passEnv is an error.
   * 'unresolved': passwords are left as UnresolvedSecret (for tools that need only hop keys).
   */
  secrets?: SecretsMode;
}

const connectorKeys = Object.keys(connectorShape);
const permissionKeys = ['user', 'group', 'extendedRights', 'deny'];
const gatewayKeys = Object.keys(gatewayShape);

function connectorKnownKeys(path: string): readonly string[] | undefined {
  if (path === '') return connectorKeys;
  if (/^permissions\[\d+\]$/.test(path)) return permissionKeys;
  return undefined;
}

function gatewayKnownKeys(path: string): readonly string[] | undefined {
  if (path === '') return gatewayKeys;
  if (/^acceptedDomains\[\d+\]$/.test(path)) return ['domain', 'type', 'default'];
  if (/^users\[\d+\]$/.test(path)) return ['name', 'passwordHash', 'addresses', 'recipientRateLimit'];
  if (path === 'throttlingPolicy') return ['recipientRateLimit'];
  if (/^routes\[\d+\]$/.test(path)) return ['domains', 'to', 'requireTLS', 'verifyTLS', 'auth'];
  if (/^routes\[\d+\]\.auth$/.test(path)) return ['user', 'pass', 'passEnv'];
  if (path === 'redis') return ['url', 'prefix', 'sentinels', 'name', 'cluster', 'username', 'password', 'passwordEnv', 'passwordFile', 'sentinelPassword', 'sentinelPasswordEnv', 'sentinelPasswordFile', 'tls', 'maxMemory', 'waitForReplicas', 'replicaTimeout', 'durability'];
  if (path === 'http') return ['listen', 'token', 'tokenEnv', 'tokenFile', 'allowWrite'];
  if (path === 'authBackoff') return ['failures', 'window'];
  if (path === 'directory') return DIRECTORY_KEYS;
  if (path === 'recipients') return ['file', 'directory'];
  if (path === 'recipientVerification') return RECIPIENT_VERIFICATION_KEYS;
  if (ANTISPAM_GATEWAY_OBJECT_KEYS[path]) return ANTISPAM_GATEWAY_OBJECT_KEYS[path];
  if (/^ip(Block|Allow)ListProviders\[\d+\]$/.test(path)) return path.startsWith('ipBlock') ? PROVIDER_KEYS : PROVIDER_KEYS.filter((k) => k !== 'rejectionResponse');
  if (path === 'rspamd') return RSPAMD_KEYS;
  if (path === 'attachmentFilter') return ATTACHMENT_FILTER_KEYS;
  if (/^addressRewriteEntries\[\d+\]$/.test(path)) return ADDRESS_REWRITE_ENTRY_KEYS;
  if (/^transportRules\[\d+\]$/.test(path)) return TRANSPORT_RULE_KEYS;
  if (/^milters\[\d+\]$/.test(path)) return MILTER_KEYS;
  if (path === 'tlsReports') return TLS_REPORT_KEYS;
  if (path === 'dkim') return DKIM_KEYS;
  if (/^dkim\.domains\[\d+\]$/.test(path)) return DKIM_DOMAIN_KEYS;
  if (/^dkim\.domains\[\d+\]\.selectors\[\d+\]$/.test(path)) return DKIM_SELECTOR_KEYS;
  return undefined;
}

function relationText(rel: string): string {
  return rel === 'equal' ? 'are equal' : 'partially overlap';
}

/**
 * A connector file that is empty (or comments only), or is a list or a scalar rather than keys:
 * said as such rather than as a list of missing keys, since it is more likely a slip than a
 * connector. `needs` names the keys such a file must have at least.
 */
function notAMapping(file: string, data: unknown, needs: string): ConfigIssue | null {
  if (data === null || data === undefined) return { file, path: '', message: `the file is empty: a connector needs at least ${needs} (or remove the file; *.yaml, *.yml and *.json files are read)` };
  if (typeof data !== 'object' || Array.isArray(data)) return { file, path: '', message: `must be a mapping of keys (name: …), not ${Array.isArray(data) ? 'a list' : `the ${typeof data} ${JSON.stringify(data)}`}` };
  return null;
}

export function buildConfig(src: ConfigSources & { secrets?: 'resolve' }): BuildResult;
export function buildConfig(src: ConfigSources & { secrets: 'unresolved' }): BuildResult<RouteSecret>;
export function buildConfig(src: ConfigSources): BuildResult<RouteSecret>;
export function buildConfig(src: ConfigSources): BuildResult<RouteSecret> {
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];

  // gateway.yaml
  const g = gatewaySchema.safeParse(src.gatewayData ?? {});
  let gateway: GatewayConfig<RouteSecret> | undefined;
  if (!g.success) errors.push(...fromZod(src.gatewayFile, g.error, gatewayKnownKeys));
  else gateway = resolveGateway(src, g.data, errors);
  if (gateway?.redis.durability === 'os-buffered') {
    warnings.push({ file: src.gatewayFile, path: 'redis.durability', message: 'os-buffered: a 250 after DATA survives a crash of mailgw or of Redis, but an OS crash or power loss can lose up to about a second of mail senders were told is accepted (they will not resend it); fsync (the default) or replicas keep it' });
  }

  const rf = gateway?.recipientFilterConfig;
  if (rf && rf.blockedRecipients.length > 0 && !(rf.enabled && rf.blockListEnabled)) {
    // Exchange's semantics, which surprise: the list alone blocks nobody.
    warnings.push({ file: src.gatewayFile, path: `recipientFilterConfig.${rf.enabled ? 'blockListEnabled' : 'enabled'}`, message: `blockedRecipients lists ${rf.blockedRecipients.length} address${rf.blockedRecipients.length === 1 ? '' : 'es'}, but they are not refused until ${rf.enabled ? 'blockListEnabled' : 'enabled and blockListEnabled'} ${rf.enabled ? 'is' : 'are'} true` });
  }

  if (gateway) errors.push(...recipientVerificationIssues(src.gatewayFile, gateway));

  // An entry that brings mail in to an address mailgw then refuses as relay is a slip.
  gateway?.addressRewriteEntries.forEach((e, n) => {
    if (e.outboundOnly || !gateway) return;
    if (matchDomain(e.internalAddress.domain, insideDomains(gateway.acceptedDomains)) >= 0) return;
    warnings.push({ file: src.gatewayFile, path: `addressRewriteEntries[${n}].internalAddress`, message: `mail coming in to ${e.externalAddress.text} is rewritten to ${e.internalAddress.text}, which is not in an Authoritative or InternalRelay accepted domain: it will be refused as relay (550 5.7.1) on connectors without ms-Exch-SMTP-Accept-Any-Recipient; add the domain to acceptedDomains, or set outboundOnly: true` });
  });

  for (const w of transportRuleWarnings(gateway?.transportRules ?? [])) warnings.push({ file: src.gatewayFile, ...w });
  // One quarantine mailbox for every filter (Exchange's is the content filter's, Set-ContentFilterConfig -QuarantineMailbox).
  if (gateway) {
    const top = gateway.quarantineMailbox;
    const rspamd = gateway.rspamd?.quarantineMailbox;
    if (top !== undefined && rspamd !== undefined && top.toLowerCase() !== rspamd.toLowerCase()) {
      errors.push({ file: src.gatewayFile, path: 'rspamd.quarantineMailbox', message: `is ${rspamd}, but quarantineMailbox is ${top}: they are one setting (the gateway has one quarantine mailbox); give it once, as quarantineMailbox` });
    }
    const mailbox = quarantineMailboxOf(gateway);
    // Spam held for review must not be sent out of the organisation to be reviewed.
    if (mailbox && !isInside(mailbox.slice(mailbox.lastIndexOf('@') + 1), insideDomains(gateway.acceptedDomains))) {
      warnings.push({ file: src.gatewayFile, path: gateway.quarantineMailbox !== undefined ? 'quarantineMailbox' : 'rspamd.quarantineMailbox', message: `${mailbox} is not in an Authoritative or InternalRelay accepted domain: quarantined mail (spam, mostly) would leave the organisation to reach it; use a mailbox of your own domains` });
    }
    if (gateway.rspamd?.sclQuarantineEnabled && !mailbox) errors.push({ file: src.gatewayFile, path: 'rspamd.quarantineMailbox', message: 'sclQuarantineEnabled needs quarantineMailbox (where the quarantined messages go)' });
    const none = 'but there is no quarantine mailbox (quarantineMailbox): such mail is delivered to its recipients, stamped X-MS-Exchange-Organization-Quarantine';
    if (!mailbox) {
      gateway.transportRules.forEach((r, n) => {
        if (r.actions.quarantine && r.enabled && r.mode === 'Enforce') warnings.push({ file: src.gatewayFile, path: `transportRules[${n}].quarantine`, message: `rule "${r.name}" quarantines, ${none}` });
      });
      const sa = gateway.senderAuthentication;
      for (const key of ['dmarcRejectAction', 'dmarcQuarantineAction'] as const) {
        if (sa.enabled && sa[key] === 'quarantine') warnings.push({ file: src.gatewayFile, path: `senderAuthentication.${key}`, message: `is quarantine, ${none}` });
      }
    }
  }

  if (gateway?.directory?.preset === 'activeDirectory' && gateway.directory.groupMembership === 'groupOfNames') {
    // AD groups are objectClass group, not groupOfNames: the search would find none.
    warnings.push({ file: src.gatewayFile, path: 'directory.groupMembership', message: 'groupOfNames finds OpenLDAP groups (groupOfNames, groupOfUniqueNames); Active Directory groups are objectClass group and list their members in member, with memberOf on the user: with preset activeDirectory leave groupMembership out (memberOf), or grants to groups match nobody' });
  }

  // Set by hand, but read only by the recipient lookup, which is off: say so rather than ignore it.
  const d = gateway?.directory;
  if (d && gateway && !gateway.recipientsFromDirectory) {
    for (const key of ['requireSenderAuthenticationAttribute', 'maxReceiveSizeAttribute', 'deliveryRestrictionAttributes'] as const) {
      const v = d[key];
      const names = typeof v === 'object' ? Object.values(v).filter((x) => typeof x === 'string') : typeof v === 'string' ? [v] : [];
      if (names.length > 0) warnings.push({ file: src.gatewayFile, path: `directory.${key}`, message: 'is read by the recipient lookup, which is off: set recipients: { directory: true }, or these restrictions apply to nobody' });
    }
  }

  // connectors.d/*
  const connectors: LoadedConnector[] = [];
  if (src.connectorFiles.length === 0) {
    errors.push({ file: src.gatewayFile, path: '', message: 'no connector files found: add at least one to connectors.d/' });
  }
  for (const { file, data } of src.connectorFiles) {
    const notMapping = notAMapping(file, data, 'name and bindings');
    if (notMapping) {
      errors.push(notMapping);
      continue;
    }
    const strict = connectorSchema.safeParse(data);
    if (!strict.success) errors.push(...fromZod(file, strict.error, connectorKnownKeys));
    // With only unknown keys wrong, keep checking the rest so every error is reported at once.
    const r = strict.success ? strict : connectorLooseSchema.safeParse(data);
    if (!r.success) continue;
    for (const i of connectorRuleIssues(r.data)) errors.push({ file, ...i });
    if (r.data.authMechanism.includes('Integrated')) {
      warnings.push({ file, path: 'authMechanism', message: 'Integrated (NTLM/Kerberos) is not implemented by mailgw and offers nothing' });
    }
    const given = typeof data === 'object' && data !== null && (data as Record<string, unknown>).permissionGroups !== undefined;
    for (const w of connectorNoEffectWarnings(r.data, given)) warnings.push({ file, ...w });
    connectors.push({ ...r.data, file, fqdn: r.data.fqdn ?? gateway?.fqdn ?? src.fallbackFqdn });
  }

  errors.push(...crossConnectorIssues(connectors, gateway));

  // send-connectors.d/*: compiled into the routing table ahead of the routes (shorthand).
  const sendConnectors: SendConnector<RouteSecret>[] = [];
  const sendNames = new Map<string, string>();
  for (const { file, data } of src.sendConnectorFiles ?? []) {
    const notMapping = notAMapping(file, data, 'name and addressSpaces');
    if (notMapping) {
      errors.push(notMapping);
      continue;
    }
    const r = sendConnectorSchema.safeParse(data);
    if (!r.success) {
      errors.push(...fromZod(file, r.error, (p) => (p === '' ? SEND_CONNECTOR_KEYS : /^addressSpaces\[\d+\]$/.test(p) ? ['address', 'cost', 'senderDomains'] : p === 'authenticationCredential' ? ['user', 'passEnv', 'passFile'] : undefined)));
      continue;
    }
    const prev = sendNames.get(r.data.name.toLowerCase());
    if (prev !== undefined) errors.push({ file, path: 'name', message: `"${r.data.name}" is already the name of the send connector in ${prev}; names must be unique` });
    sendNames.set(r.data.name.toLowerCase(), file);
    const c = compileSendConnector(r.data, { file, secrets: src.secrets ?? 'resolve', env: src.env ?? {}, readReferenced: src.readReferenced });
    if (!c.ok) errors.push(...c.errors);
    else sendConnectors.push(c.connector);
  }
  if (gateway) gateway = { ...gateway, sendConnectors: [...sendConnectors, ...routeConnectors(gateway.routes, src.gatewayFile)] };
  if (gateway) errors.push(...contentFilterIssues(src.gatewayFile, gateway, connectors.map((c) => c.name)));
  if (gateway?.dkim) errors.push(...dkimIssues(src.gatewayFile, gateway.dkim, gateway.acceptedDomains.map((d) => d.domain)));

  if (errors.length > 0 || !gateway) return { ok: false, errors, warnings };
  return { ok: true, config: { gatewayFile: src.gatewayFile, gateway, connectors }, warnings };
}

/**
 * recipientVerification.domains: only accepted domains (mail to others is relay, not for this
 * gateway to judge), and not a domain `recipients` already decides (two answers for one address).
 */
function recipientVerificationIssues(file: string, g: GatewayConfig<RouteSecret>): ConfigIssue[] {
  const rv = g.recipientVerification;
  if (!rv) return [];
  const out: ConfigIssue[] = [];
  const accepted = g.acceptedDomains.map((d) => d.domain);
  const seen = new Map<string, number>();
  rv.domains.forEach((d, i) => {
    const path = `recipientVerification.domains[${i}]`;
    const key = `${d.wildcard ? '*.' : ''}${d.domain}`;
    if (seen.has(key)) out.push({ file, path, message: `"${d.text}" is already listed at recipientVerification.domains[${seen.get(key)}]` });
    seen.set(key, i);
    const at = matchDomain(d.domain, accepted);
    if (at < 0) {
      out.push({ file, path, message: `${d.text} is not an accepted domain: only recipients of accepted domains are verified (mail to other domains is relay); add it to acceptedDomains, usually as InternalRelay` });
      return;
    }
    const a = g.acceptedDomains[at]!;
    if (a.type === 'Authoritative' && (g.recipients !== null || g.recipientsFromDirectory)) {
      out.push({ file, path, message: `${d.text} is Authoritative and \`recipients\` already decides its mailboxes (550 5.1.1 for the rest); verify only domains whose mailboxes are on another server (InternalRelay, ExternalRelay), or leave recipients out` });
    }
  });
  return out;
}

function resolveGateway(src: ConfigSources, g: GatewayFileConfig, errors: ConfigIssue[]): GatewayConfig<RouteSecret> | undefined {
  const file = src.gatewayFile;
  const before = errors.length;

  // Accepted domains: no duplicates, no catch-all, exactly one default.
  const seen = new Map<string, number>();
  g.acceptedDomains.forEach((d, i) => {
    const key = `${d.domain.wildcard ? '*.' : ''}${d.domain.domain}`;
    if (d.domain.domain === '') errors.push({ file, path: `acceptedDomains[${i}].domain`, message: '"*" would accept mail for every domain (an open relay); list your domains' });
    else if (seen.has(key)) errors.push({ file, path: `acceptedDomains[${i}].domain`, message: `"${d.domain.text}" is already listed at acceptedDomains[${seen.get(key)}]` });
    seen.set(key, i);
  });
  const defaults = g.acceptedDomains.filter((d) => d.default);
  let defaultDomain: string | undefined;
  if (defaults.length > 1) errors.push({ file, path: 'acceptedDomains', message: 'more than one domain has default: true' });
  else if (defaults.length === 1) defaultDomain = defaults[0]!.domain.domain;
  else if (g.acceptedDomains.length === 1) defaultDomain = g.acceptedDomains[0]!.domain.domain;
  else errors.push({ file, path: 'acceptedDomains', message: 'mark one domain with default: true (DSNs are sent from postmaster@ it)' });

  // Users, inline or from a YAML file.
  let users: UserConfig[] = [];
  if (Array.isArray(g.users)) users = g.users;
  else {
    const ref = src.readReferenced(g.users.file);
    if (!ref.ok) errors.push({ file, path: 'users.file', message: ref.error });
    else {
      let data: unknown;
      try {
        data = src.parseYaml(ref.text);
      } catch (e) {
        errors.push({ file: ref.file, path: '', message: `not valid YAML: ${(e as Error).message}` });
      }
      const r = z.array(userSchema).safeParse(data ?? []);
      if (!r.success) errors.push(...fromZod(ref.file, r.error, (p) => (/^\[\d+\]$/.test(p) ? ['name', 'passwordHash', 'addresses', 'recipientRateLimit'] : undefined)));
      else users = r.data;
    }
  }
  const names = new Map<string, number>();
  users.forEach((u, i) => {
    const k = u.name.toLowerCase();
    if (names.has(k)) errors.push({ file, path: `users[${i}].name`, message: `user "${u.name}" is defined twice` });
    names.set(k, i);
  });

  // Secrets kept out of gateway.yaml (an environment variable `<key>Env` or the first line of a
  // file `<key>File`): the directory's bind password and the dashboard's token where secrets
  // resolve (the processes that use them); the Redis passwords in every secrets mode (the
  // commands that compile 'unresolved' look at the queue too), but only an error where secrets
  // must resolve (`mailgw track --local` on a machine without them needs no Redis).
  const strict = src.secrets !== 'unresolved';
  const secret = (key: string, from: { env?: string | undefined; file?: string | undefined }, what: string, required: boolean): string | null => {
    if (from.env !== undefined) {
      const v = (src.env ?? {})[from.env];
      if (v !== undefined && v !== '') return v;
      if (required) errors.push({ file, path: `${key}Env`, message: `environment variable ${from.env} is not set (it must hold ${what})` });
    } else if (from.file !== undefined) {
      const ref = src.readReferenced(from.file);
      const first = ref.ok ? (ref.text.split(/\r?\n/)[0] ?? '') : '';
      if (first !== '') return first;
      if (required) errors.push({ file, path: `${key}File`, message: ref.ok ? `${ref.file} is empty: its first line must be ${what}` : ref.error });
    }
    return null;
  };
  // The directory, with its password and CA read.
  let directory: DirectoryConfig | null = null;
  if (g.directory) {
    const d = g.directory;
    const bindPassword = strict ? (secret('directory.bindPassword', { env: d.bindPasswordEnv, file: d.bindPasswordFile }, `the password of ${d.bindDn}`, true) ?? '') : '';
    let caPem: string | null = null;
    if (d.caFile !== undefined) {
      const ref = src.readReferenced(d.caFile);
      if (!ref.ok) errors.push({ file, path: 'directory.caFile', message: ref.error });
      else if (!/-----BEGIN CERTIFICATE-----/.test(ref.text)) errors.push({ file, path: 'directory.caFile', message: `${ref.file} holds no PEM certificate` });
      else caPem = ref.text;
    }
    directory = { ...d, bindPassword, caPem };
  }

  // Bounce verification, with its secret read (16 characters at least: it signs every tag).
  let bounceVerification: BounceVerificationConfig | undefined;
  if (g.bounceVerification) {
    const b = g.bounceVerification;
    const key = strict ? secret('bounceVerification.key', { env: b.keyEnv, file: b.keyFile }, 'the secret the tags are signed with', true) : 'unresolved-secret-for-check';
    if (key !== null && key.length < 16) errors.push({ file, path: b.keyEnv !== undefined ? 'bounceVerification.keyEnv' : 'bounceVerification.keyFile', message: `the secret is ${key.length} characters: use 16 or more (for example: openssl rand -hex 32)` });
    const rotating = b.previousKeyEnv !== undefined || b.previousKeyFile !== undefined;
    const previousKey = rotating && strict ? secret('bounceVerification.previousKey', { env: b.previousKeyEnv, file: b.previousKeyFile }, 'the secret before the current one', true) : null;
    bounceVerification = { mode: b.mode, maxAgeDays: b.maxAgeDays, bypassedRecipients: b.bypassedRecipients.map((a) => a.toLowerCase()), key: key ?? '', ...(previousKey ? { previousKey } : {}) };
  }

  let redis = g.redis;
  const redisPassword = secret('redis.password', { env: g.redis.passwordEnv, file: g.redis.passwordFile }, 'the Redis password', strict);
  if (redisPassword !== null) redis = { ...redis, password: redisPassword };
  const sentinelPassword = secret('redis.sentinelPassword', { env: g.redis.sentinelPasswordEnv, file: g.redis.sentinelPasswordFile }, "the Sentinels' password", strict);
  if (sentinelPassword !== null) redis = { ...redis, sentinelPassword };
  let http = g.http;
  if (strict && http) {
    const token = secret('http.token', { env: http.tokenEnv, file: http.tokenFile }, "the dashboard's token", true);
    const key = http.tokenEnv !== undefined ? 'http.tokenEnv' : 'http.tokenFile';
    if (token !== null && (token.length < 16 || token.length > 256)) errors.push({ file, path: key, message: `the token it holds has ${token.length} characters: use 16 to 256 (openssl rand -hex 24)` });
    else if (token !== null) http = { ...http, token };
  }

  // Group conditions of transport rules are answered by the directory: without one they never could be.
  g.transportRules.forEach((r, n) => {
    for (const [prefix, c] of [['', r.conditions], ['exceptIf', r.exceptions]] as const) {
      for (const k of ['fromMemberOf', 'sentToMemberOf', 'betweenMemberOf1'] as const) {
        if (c[k] === undefined || g.directory) continue;
        const key = prefix ? exceptKey(k) : k;
        errors.push({ file, path: `transportRules[${n}].${key}`, message: `rule "${r.name}": ${key} asks the directory who is in ${c[k]!.join(', ')}, and there is no directory section` });
      }
      for (const k of AD_ATTRIBUTE_CONDITIONS) {
        if (c[k] === undefined || g.directory) continue;
        const key = prefix ? exceptKey(k) : k;
        errors.push({ file, path: `transportRules[${n}].${key}`, message: `rule "${r.name}": ${key} reads ${[...new Set(c[k]!.map((e) => e.attribute))].join(', ')} of directory objects, and there is no directory section` });
      }
      for (const k of ['managerAddresses', 'senderManagementRelationship'] as const) {
        if (c[k] === undefined || g.directory) continue;
        const key = prefix ? exceptKey(k) : k;
        errors.push({ file, path: `transportRules[${n}].${key}`, message: `rule "${r.name}": ${key} reads who manages whom from the directory, and there is no directory section` });
      }
    }
  });

  // Recipients, inline, one per line in a file, or from the directory.
  let recipients: string[] | null = null;
  const recipientsFromDirectory = !!g.recipients && !Array.isArray(g.recipients) && 'directory' in g.recipients;
  if (recipientsFromDirectory && !g.directory) errors.push({ file, path: 'recipients.directory', message: 'recipients: { directory: true } needs the directory section (where to look the addresses up)' });
  if (recipientsFromDirectory) recipients = [];
  else if (Array.isArray(g.recipients)) recipients = g.recipients;
  else if (g.recipients && 'file' in g.recipients) {
    const ref = src.readReferenced(g.recipients.file);
    if (!ref.ok) errors.push({ file, path: 'recipients.file', message: ref.error });
    else {
      recipients = [];
      ref.text.split(/\r?\n/).forEach((line, n) => {
        const t = line.replace(/#.*/, '').trim();
        if (t === '') return;
        const r = mailboxAddress.safeParse(t);
        if (r.success) recipients!.push(r.data);
        else errors.push({ file: ref.file, path: `line ${n + 1}`, message: r.error.issues[0]!.message });
      });
    }
  }
  if (recipients) for (const u of users) recipients.push(...u.addresses);

  // Routes: the same compilation for every command; only the secrets mode differs.
  const routeOpts = { file, baseDir: src.baseDir ?? path.dirname(path.resolve(file)) };
  const compiled = src.secrets === 'unresolved' ? compileRoutes(g.routes, { ...routeOpts, secrets: 'unresolved' }) : compileRoutes(g.routes, { ...routeOpts, secrets: 'resolve', env: src.env ?? {} });
  if (!compiled.ok) errors.push(...compiled.errors);

  if (errors.length > before || defaultDomain === undefined || !compiled.ok) return undefined;
  return { ...g, redis, http, fqdn: g.fqdn ?? src.fallbackFqdn, recipients, recipientsFromDirectory, directory, bounceVerification, users, defaultDomain, routes: compiled.routes, sendConnectors: routeConnectors(compiled.routes, file) };
}

function crossConnectorIssues(connectors: readonly LoadedConnector[], gateway: GatewayConfig<RouteSecret> | undefined): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const byName = new Map<string, LoadedConnector>();
  for (const c of connectors) {
    const prev = byName.get(c.name.toLowerCase());
    if (prev) out.push({ file: c.file, path: 'name', message: `"${c.name}" is already the name of the connector in ${prev.file}; names must be unique` });
    else byName.set(c.name.toLowerCase(), c);
  }

  // Exchange: connectors on an identical binding need a unique binding + remote range combination;
  // their ranges may overlap only when one contains the other.
  const enabled = connectors.filter((c) => c.enabled);
  for (let i = 0; i < enabled.length; i++) {
    for (let j = i + 1; j < enabled.length; j++) {
      const a = enabled[i]!;
      const b = enabled[j]!;
      const shared = b.bindings.filter((bb) => a.bindings.some((ab) => ab.address === bb.address && ab.port === bb.port));
      if (shared.length === 0) continue;
      const conflicts: Array<{ ra: IpRange; rb: IpRange; jIdx: number; rel: string }> = [];
      b.remoteIPRanges.forEach((rb, jIdx) => {
        for (const ra of a.remoteIPRanges) {
          const rel = rangeRelation(ra, rb);
          if (rel === 'equal' || rel === 'partial') conflicts.push({ ra, rb, jIdx, rel });
        }
      });
      for (const c of conflicts) {
        out.push({
          file: b.file,
          path: `remoteIPRanges[${c.jIdx}]`,
          message:
            `The values that you specified for the bindings and remoteIPRanges conflict with the settings on receive connector "${a.name}" (${a.file}). ` +
            `A receive connector must have a unique combination of local IP address & port bindings and remote IP address ranges: ` +
            `on ${shared[0]!.text}, "${c.rb.text}" and "${c.ra.text}" ${relationText(c.rel)}; one range must contain the other. Change at least one of these values.`,
        });
      }
    }
  }

  // Grants to users must name a user that exists.
  const builtins = new Set<string>(BUILTIN_PRINCIPALS);
  const userNames = new Set((gateway?.users ?? []).map((u) => u.name.toLowerCase()));
  for (const c of connectors) {
    c.permissions.forEach((p, i) => {
      if (p.user === undefined) {
        if (gateway && !gateway.directory) out.push({ file: c.file, path: `permissions[${i}].group`, message: `a grant to group "${p.group}" needs the directory section in gateway.yaml (groups come from the directory)` });
        return;
      }
      if (!builtins.has(p.user) && gateway && !userNames.has(p.user.toLowerCase())) {
        out.push({
          file: c.file,
          path: `permissions[${i}].user`,
          message: `"${p.user}" is neither a built-in principal (${BUILTIN_PRINCIPALS.join(', ')}) nor a user in gateway users`,
        });
      }
    });
  }
  return out;
}
