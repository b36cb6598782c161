// gateway.yaml `directory:`: Active Directory or another LDAP server for SMTP AUTH, Send As
// addresses, group grants and recipient lookup. Declared once here with defaults; the LDAP
// client is @mailgw/directory, the pure rules (presets, filters, addresses) @mailgw/policy.
import { z } from 'zod';
import { ciEnum, durationMs, envName, intIn, listOf } from './zod-helpers.js';

export const DIRECTORY_PRESETS = ['activeDirectory', 'openLDAP'] as const;
export type DirectoryPreset = (typeof DIRECTORY_PRESETS)[number];
/** How a user's groups are found: the memberOf attribute (AD; OpenLDAP's memberof overlay), or groupOfNames member lists. */
export const GROUP_MEMBERSHIPS = ['memberOf', 'groupOfNames'] as const;
export type GroupMembership = (typeof GROUP_MEMBERSHIPS)[number];

const ldapUrl = z.string().transform((s, ctx) => {
  const t = s.trim();
  const m = /^(ldaps?):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?\/?$/.exec(t);
  if (!m || (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535))) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an LDAP URL like ldaps://dc1.contoso.com or ldap://dc1.contoso.com:389` });
    return z.NEVER;
  }
  return t.replace(/\/$/, '');
});

const ATTRIBUTE_NAME = /^[A-Za-z][A-Za-z0-9-]*$/;
const attributeName = z.string().regex(ATTRIBUTE_NAME, 'must be an LDAP attribute name such as mail or proxyAddresses');

/** An attribute name, or false: read none (a preset's default switched off). */
const attributeOrNone = z.custom<string | false>((v) => v === false || (typeof v === 'string' && ATTRIBUTE_NAME.test(v)), 'must be an LDAP attribute name (letters, digits and hyphens, starting with a letter), or false (read no attribute)');

export const directoryShape = {
  url: listOf(ldapUrl).refine((a) => a.length > 0, 'list at least one ldaps:// or ldap:// URL').describe('Directory servers, tried in this order (failover to the next on a connection error or timeout): ldaps://host[:port], or ldap://host[:port] (with startTLS: true for TLS).'),
  startTLS: z.boolean().default(false).describe('ldap:// URLs: upgrade with StartTLS before binding (refuse to go on without it).'),
  caFile: z.string().min(1).optional().describe('PEM file of the CA(s) that signed the directory servers\' certificates (relative to gateway.yaml). Default: the system CAs.'),
  bindDn: z.string().trim().min(1).describe('The service account mailgw searches with, e.g. CN=svc-mailgw,OU=Service Accounts,DC=contoso,DC=com.'),
  bindPasswordEnv: envName.optional().describe("Environment variable holding the service account's password."),
  bindPasswordFile: z.string().min(1).optional().describe('File holding that password (first line; relative to gateway.yaml); instead of bindPasswordEnv.'),
  baseDn: z.string().trim().min(1).describe('Where users, groups and mail-enabled objects are searched (subtree), e.g. DC=contoso,DC=com.'),
  preset: ciEnum(DIRECTORY_PRESETS).describe("activeDirectory or openLDAP: which attributes mean login, address and group (each overridable below). activeDirectory also adds each user's primary group (usually Domain Users: the group whose objectSid is the user's domain SID + primaryGroupID), which memberOf leaves out."),
  loginAttributes: listOf(attributeName).optional().describe('Attributes an AUTH login name is matched against. activeDirectory: userPrincipalName, sAMAccountName (DOMAIN\\name matches sAMAccountName); openLDAP: uid, mail.'),
  addressAttributes: listOf(attributeName).optional().describe('Attributes holding e-mail addresses (Send As, recipient lookup). activeDirectory: proxyAddresses (smtp:/SMTP: entries), mail; openLDAP: mail, mailAlternateAddress.'),
  groupMembership: ciEnum(GROUP_MEMBERSHIPS)
    .default('memberOf')
    .describe(
      'How groups are found. memberOf: read groupAttribute of the user, then of each group (Active Directory; OpenLDAP with the memberof overlay). groupOfNames: search under baseDn for groupOfNames/groupOfUniqueNames entries whose member/uniqueMember is the user, then the groups listing those groups (OpenLDAP without the memberof overlay). Never guessed: a user with no memberOf may simply be in no group.',
    ),
  groupAttribute: attributeName.optional().describe('With groupMembership memberOf: attribute of users and groups naming the groups they are members of (walked for nested groups). Default memberOf.'),
  requireSenderAuthenticationAttribute: attributeOrNone
    .optional()
    .describe(
      "Boolean attribute that, TRUE on a recipient's entry, lets only authenticated senders mail it (Exchange's RequireSenderAuthenticationEnabled, 'Require that all senders are authenticated'): anonymous sessions get 550 5.7.1 RESOLVER.RST.AuthRequired at RCPT. activeDirectory: msExchRequireAuthToSendTo; openLDAP: none. false: not read.",
    ),
  maxReceiveSizeAttribute: attributeOrNone
    .optional()
    .describe(
      "Integer attribute holding a recipient's largest message in KB (Exchange's Set-Mailbox -MaxReceiveSize, as AD stores it; 0 or absent: no limit of its own). A declared SIZE= over it gets 552 5.2.3 RESOLVER.RST.RecipSizeLimit at RCPT; a message over the limit of every recipient, at the end of DATA. activeDirectory: delivContLength; openLDAP: none. false: not read.",
    ),
  maxSendSizeAttribute: attributeOrNone
    .optional()
    .describe(
      "Integer attribute holding the largest message a user may send, in KB (Exchange's Set-Mailbox -MaxSendSize, as AD stores it; 0 or absent: no limit of its own). After AUTH as that directory user, a declared SIZE= over it gets 552 5.2.3 RESOLVER.RST.SendSizeLimit.Sender at MAIL, a larger message the same at the end of DATA. activeDirectory: submissionContLength; openLDAP: none. false: not read.",
    ),
  recipientLimitsAttribute: attributeOrNone
    .optional()
    .describe(
      "Integer attribute holding the most recipients a user may give one message (Exchange's Set-Mailbox -RecipientLimits, as AD stores it; 0 or absent: no limit of its own). After AUTH as that directory user, the RCPT past it gets 452 4.5.3 Too many recipients, as past the connector's maxRecipientsPerMessage. activeDirectory: msExchRecipLimit; openLDAP: none. false: not read.",
    ),
  sendAsPermissions: z
    .boolean()
    .optional()
    .describe(
      "Exchange's Send As (Add-ADPermission -ExtendedRights Send-As): after AUTH, a directory user may use as MAIL FROM an address of another object (a shared mailbox, a group) whose DACL grants it, or a group it is in (tokenGroups), the Send-As right; a deny wins. Read with the service account (nTSecurityDescriptor, DACL only). activeDirectory: true; openLDAP: false (it has no such ACLs).",
    ),
  sendOnBehalfAttribute: attributeOrNone
    .optional()
    .describe(
      "DN-valued attribute of an object listing the users and groups that may send on its behalf (Exchange's Set-Mailbox -GrantSendOnBehalfTo, as AD stores it). With headerSenderCheck, a directory user's message whose header From: it may not send as passes when its Sender: is the user's own and the From object lists the user or a group it is in. activeDirectory: publicDelegates; openLDAP: none. false: not read.",
    ),
  // false is every list switched off (a preprocess, not a union: a union's error names no key).
  deliveryRestrictionAttributes: z
    .preprocess(
      (v) => (v === false ? { acceptMessagesOnlyFrom: false, acceptMessagesOnlyFromDLMembers: false, rejectMessagesFrom: false, rejectMessagesFromDLMembers: false } : v),
      z.strictObject({
        acceptMessagesOnlyFrom: attributeOrNone.optional().describe('DN-valued attribute listing the only senders (users, contacts) a recipient takes mail from. activeDirectory: authOrig.'),
        acceptMessagesOnlyFromDLMembers: attributeOrNone.optional().describe('DN-valued attribute listing groups whose members (nested) may mail the recipient. activeDirectory: dLMemSubmitPerms.'),
        rejectMessagesFrom: attributeOrNone.optional().describe('DN-valued attribute listing senders the recipient refuses. activeDirectory: unauthOrig.'),
        rejectMessagesFromDLMembers: attributeOrNone.optional().describe('DN-valued attribute listing groups whose members the recipient refuses. activeDirectory: dLMemRejectPerms.'),
      }, { error: (iss) => (iss.code === 'invalid_type' ? 'must be false (read no restriction) or a map of acceptMessagesOnlyFrom, acceptMessagesOnlyFromDLMembers, rejectMessagesFrom, rejectMessagesFromDLMembers to attribute names' : undefined) }),
    )
    .optional()
    .describe(
      "Exchange's message delivery restrictions (Set-Mailbox / Set-DistributionGroup -AcceptMessagesOnlyFrom, -AcceptMessagesOnlyFromDLMembers, -RejectMessagesFrom, -RejectMessagesFromDLMembers) as the directory stores them: which DN-valued attribute of a recipient's entry holds each list. The sender (MAIL FROM, looked up in the directory with its nested groups) must not be listed in a reject list and, when an accept list is set, must be in one: 550 5.7.1 RESOLVER.RST.NotAuthorized at RCPT otherwise. activeDirectory: authOrig, dLMemSubmitPerms, unauthOrig, dLMemRejectPerms; openLDAP: none. A key set to false, or the whole setting false: not read.",
    ),
  userFilter: z.string().trim().regex(/^\(.*\)$/, 'must be an LDAP filter in parentheses, e.g. (objectClass=user)').optional().describe('Filter a user must match to log on. activeDirectory: (&(objectClass=user)(!(objectClass=computer))); openLDAP: (objectClass=inetOrgPerson).'),
  cacheTtl: durationMs(0, 86_400_000).default(5 * 60_000).describe('How long a recipient lookup that found the address is reused (in Redis, shared by all listeners). AUTH is never cached.'),
  negativeCacheTtl: durationMs(0, 86_400_000).default(60_000).describe('How long "no such address" is reused; at most cacheTtl.'),
  timeout: durationMs(100, 120_000).default(5000).describe('Per server: connect and per-operation timeout before the next URL is tried.'),
  idleTimeout: durationMs(0, 3_600_000)
    .default(60_000)
    .describe(
      "How long a directory connection stays open with no question: the service account's (one per process, bound once, shared by every lookup; Postfix's LDAP tables keep theirs the same way) and the one AUTH checks passwords on. 0: a new connection, TLS and bind for every question and every password check. Keep it below the directory's own idle limit (Active Directory's MaxConnIdleTime: 900s) and any firewall's.",
    ),
  maxGroupDepth: intIn(1, 50).default(10).describe('Levels of nested groups followed (1: only the groups the user is directly in, and with activeDirectory its primary group).'),
} as const;

export const directorySchema = z
  .strictObject(directoryShape)
  .refine((d) => (d.bindPasswordEnv === undefined) !== (d.bindPasswordFile === undefined), { message: 'give exactly one of bindPasswordEnv and bindPasswordFile', path: ['bindPasswordEnv'] })
  .refine((d) => d.negativeCacheTtl <= d.cacheTtl, { message: 'must not be longer than cacheTtl', path: ['negativeCacheTtl'] })
  .refine((d) => !d.startTLS || d.url.every((u) => u.startsWith('ldap://')), { message: 'startTLS applies to ldap:// URLs; ldaps:// is TLS from the start', path: ['startTLS'] });

export type DirectoryFileConfig = z.output<typeof directorySchema>;
export const DIRECTORY_KEYS = Object.keys(directoryShape);
