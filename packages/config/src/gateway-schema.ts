// gateway.yaml: what is true for the whole organisation (accepted domains, mailboxes, users,
// global deny lists, routes, Redis). Every key declared once with its default.
import { z } from 'zod';
import { normaliseDomain, parseDomainPattern, type DomainPattern } from './domain.js';
import { ACCEPTED_DOMAIN_TYPES } from './vocabulary.js';
import { ciEnum, durationMs, hostname, intIn, ipRange, listOf } from './zod-helpers.js';

const domainPattern = z.string().transform((s, ctx): DomainPattern => {
  const r = parseDomainPattern(s);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  }
  return r.value;
});

/** A mailbox address from config, normalised: local part lower-cased, domain as ASCII. */
export const mailboxAddress = z.string().transform((s, ctx) => {
  const t = s.trim();
  const at = t.lastIndexOf('@');
  const local = at > 0 ? t.slice(0, at) : '';
  const d = at > 0 ? normaliseDomain(t.slice(at + 1)) : null;
  if (!d || !d.ok || local === '' || /[\s<>@"]/.test(local)) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a mailbox address like user@contoso.com` });
    return z.NEVER;
  }
  return `${local.toLowerCase()}@${d.value}`;
});

const fileRef = z.strictObject({ file: z.string().min(1).describe('Path relative to gateway.yaml.') });

export const PHC_SCRYPT = /^\$scrypt\$ln=\d+,r=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;

export const userSchema = z.strictObject({
  name: z.string().trim().min(1).max(256).describe('Login name for AUTH PLAIN/LOGIN.'),
  passwordHash: z.string().regex(PHC_SCRYPT, 'must be a hash from `mailgw hash-password` ($scrypt$ln=…,r=…,p=…$salt$hash)'),
  addresses: listOf(mailboxAddress).default([]).describe('Addresses the user may send as (MAIL FROM); also mailboxes for recipient lookup.'),
});
export type UserConfig = z.output<typeof userSchema>;

const acceptedDomain = z.strictObject({
  domain: domainPattern.describe('contoso.com, or *.contoso.com for it and all subdomains.'),
  type: ciEnum(ACCEPTED_DOMAIN_TYPES).default('Authoritative'),
  default: z.boolean().default(false).describe('The domain DSNs come from (postmaster@).'),
});

const ROUTE_TARGET = /^(maildir:.+|smtps?:\/\/[^\s]+|lmtp:\/\/[^\s]+|mx)$/;
const route = z.strictObject({
  domains: listOf(domainPattern).refine((a) => a.length > 0, 'list at least one domain, or "*"'),
  to: z.string().regex(ROUTE_TARGET, 'must be maildir:<path>, smtp://host:port, smtps://host:port, lmtp://host:port or mx'),
  requireTLS: z.boolean().default(false),
});

export const gatewayShape = {
  fqdn: hostname.optional().describe("This gateway's host name (banner, Received, DSNs). Default: the machine's host name."),
  dataDir: z.string().min(1).default('./var').describe('Where mailgw keeps state (self-signed certificates, logs, embedded Redis), relative to gateway.yaml.'),
  logLevel: ciEnum(['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const).default('info').describe('pino log level: fatal, error, warn, info, debug, trace.'),
  acceptedDomains: z.array(acceptedDomain).min(1, 'list at least one accepted domain').describe('Domains this organisation receives mail for.'),
  recipients: z.union([z.array(mailboxAddress), fileRef]).optional().describe('Known mailboxes of Authoritative domains (list, or { file } with one per line). Unknown ones get 550 5.1.1. Leave out to accept any local part.'),
  users: z.union([z.array(userSchema), fileRef]).default([]).describe('Accounts for SMTP AUTH (list, or { file } holding such a list in YAML).'),
  relayDeniedIPRanges: listOf(ipRange).default([]).describe('Clients that may never relay, whatever connector or authentication (Exchange 5.5 "can NEVER route").'),
  blockedIPRanges: listOf(ipRange).default([]).describe('Clients refused at connect (IP Block List).'),
  blockedDomains: listOf(domainPattern).default([]).describe('Recipient domains always refused (5.5 routing "block").'),
  trustedProxies: listOf(ipRange).default([]).describe('Load balancers allowed to send a PROXY v1 header with the real client address.'),
  routes: z.array(route).default([]).describe('Ordered next hops by recipient domain; first match wins.'),
  redis: z
    .strictObject({
      url: z.string().regex(/^rediss?:\/\//, 'must be redis://host:port or rediss://…').optional().describe('Redis for the queue; REDIS_URL overrides. Without either, mailgw start runs its own redis-server.'),
      prefix: z.string().min(1).default('{mailgw}').describe('Key prefix; keep the {hash tag} for Redis Cluster.'),
    })
    .default({ prefix: '{mailgw}' })
    .describe('{ url, prefix }: the Redis that holds the queue (url: redis://…; REDIS_URL overrides; without either mailgw start runs its own redis-server), and the key prefix (default "{mailgw}", a hash tag so Redis Cluster works).'),
  queue: z
    .strictObject({
      transientRetryAttempts: intIn(0, 100).default(6),
      transientRetryInterval: durationMs().default(5 * 60_000),
      messageRetryInterval: durationMs().default(15 * 60_000),
      outboundConnectionFailureRetryInterval: durationMs().default(10 * 60_000),
      delayNotificationTimeout: durationMs().default(4 * 3_600_000),
      messageExpirationTimeout: durationMs().default(2 * 86_400_000),
      maxConnectionsPerDestination: intIn(1, 1000).default(10),
    })
    .default({
      transientRetryAttempts: 6,
      transientRetryInterval: 5 * 60_000,
      messageRetryInterval: 15 * 60_000,
      outboundConnectionFailureRetryInterval: 10 * 60_000,
      delayNotificationTimeout: 4 * 3_600_000,
      messageExpirationTimeout: 2 * 86_400_000,
      maxConnectionsPerDestination: 10,
    })
    .describe('Delivery retry and expiry (Exchange defaults): transientRetryAttempts 6, transientRetryInterval 5m, messageRetryInterval 15m, outboundConnectionFailureRetryInterval 10m, delayNotificationTimeout 4h, messageExpirationTimeout 2d, maxConnectionsPerDestination 10.'),
} as const;

export const gatewaySchema = z.strictObject(gatewayShape);
export type GatewayInput = z.input<typeof gatewaySchema>;
export type GatewayFileConfig = z.output<typeof gatewaySchema>;
