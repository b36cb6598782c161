// The directory's pure rules: what the presets mean, LDAP filters built with every value
// escaped (RFC 4515), DN escaping and normalising (RFC 4514), addresses read from entries
// (proxyAddresses smtp:/SMTP:), disabled accounts, and the principals a directory user acts as
// (its groups, by DN and by name), how groups are found (memberOf, groupOfNames member lists,
// AD's primary group from objectSid + primaryGroupID, with SIDs parsed and built here). The
// LDAP client that asks these questions is @mailgw/directory.
import { isAddressGroupRef, type DirectoryConfig, type DirectoryPreset, type GroupMembership } from '@mailgw/config';
import type { DirectoryLogon } from './stages.js';
import type { SendAsAnswer } from './send-as.js';

/** The attributes a preset gives, before the admin's overrides. */
export interface DirectorySchemaMap {
  readonly loginAttributes: readonly string[];
  readonly addressAttributes: readonly string[];
  readonly groupAttribute: string;
  readonly userFilter: string;
  /** userAccountControl is read and its bit 2 (ACCOUNTDISABLE) refuses the logon. */
  readonly checksAccountControl: boolean;
  /** memberOf: groupAttribute walked upwards; groupOfNames: searches for groups listing the DN. */
  readonly groupMembership: GroupMembership;
  /**
   * Active Directory: the primary group (usually Domain Users) is not in memberOf; it is the
   * group whose objectSid is the user's domain SID + primaryGroupID. Read and looked up.
   */
  readonly primaryGroup: boolean;
  /**
   * Exchange's RequireSenderAuthenticationEnabled, as the directory stores it
   * (msExchRequireAuthToSendTo on AD): a recipient whose entry has it TRUE takes mail only from
   * authenticated senders. null: not read.
   */
  readonly requireSenderAuthenticationAttribute: string | null;
  /** Exchange's MaxReceiveSize as the directory stores it (delivContLength on AD: KB, 0 for none); null: not read. */
  readonly maxReceiveSizeAttribute: string | null;
  /** Exchange's MaxSendSize as the directory stores it (submissionContLength on AD: KB, 0 for none); null: not read. */
  readonly maxSendSizeAttribute: string | null;
  /** Exchange's RecipientLimits as the directory stores it (msExchRecipLimit on AD; 0 for none); null: not read. */
  readonly recipientLimitsAttribute: string | null;
  /** Exchange's message delivery restrictions: the DN-valued attribute holding each list (null: not read). */
  readonly deliveryRestrictions: Readonly<Record<DeliveryRestrictionKey, string | null>>;
  /** Send As from the objects' DACLs (nTSecurityDescriptor) and the user's tokenGroups: Active Directory only. */
  readonly sendAsPermissions: boolean;
  /** Exchange's GrantSendOnBehalfTo as the directory stores it (publicDelegates on AD: DNs); null: not read. */
  readonly sendOnBehalfAttribute: string | null;
}

/** Exchange's four delivery restriction lists, by their Set-DistributionGroup parameter names. */
export const DELIVERY_RESTRICTION_KEYS = ['acceptMessagesOnlyFrom', 'acceptMessagesOnlyFromDLMembers', 'rejectMessagesFrom', 'rejectMessagesFromDLMembers'] as const;
export type DeliveryRestrictionKey = (typeof DELIVERY_RESTRICTION_KEYS)[number];

export const DIRECTORY_PRESET_MAPS: Record<DirectoryPreset, DirectorySchemaMap> = {
  activeDirectory: {
    loginAttributes: ['userPrincipalName', 'sAMAccountName'],
    addressAttributes: ['proxyAddresses', 'mail'],
    groupAttribute: 'memberOf',
    userFilter: '(&(objectClass=user)(!(objectClass=computer)))',
    checksAccountControl: true,
    groupMembership: 'memberOf',
    primaryGroup: true,
    requireSenderAuthenticationAttribute: 'msExchRequireAuthToSendTo',
    maxReceiveSizeAttribute: 'delivContLength',
    maxSendSizeAttribute: 'submissionContLength',
    recipientLimitsAttribute: 'msExchRecipLimit',
    deliveryRestrictions: { acceptMessagesOnlyFrom: 'authOrig', acceptMessagesOnlyFromDLMembers: 'dLMemSubmitPerms', rejectMessagesFrom: 'unauthOrig', rejectMessagesFromDLMembers: 'dLMemRejectPerms' },
    sendAsPermissions: true,
    sendOnBehalfAttribute: 'publicDelegates',
  },
  openLDAP: {
    loginAttributes: ['uid', 'mail'],
    addressAttributes: ['mail', 'mailAlternateAddress'],
    groupAttribute: 'memberOf',
    userFilter: '(objectClass=inetOrgPerson)',
    checksAccountControl: false,
    groupMembership: 'memberOf',
    primaryGroup: false,
    requireSenderAuthenticationAttribute: null,
    maxReceiveSizeAttribute: null,
    maxSendSizeAttribute: null,
    recipientLimitsAttribute: null,
    deliveryRestrictions: { acceptMessagesOnlyFrom: null, acceptMessagesOnlyFromDLMembers: null, rejectMessagesFrom: null, rejectMessagesFromDLMembers: null },
    sendAsPermissions: false,
    sendOnBehalfAttribute: null,
  },
};

/** The preset with the admin's overrides applied. */
export function directorySchemaMap(
  d: Pick<DirectoryConfig, 'preset' | 'loginAttributes' | 'addressAttributes' | 'groupAttribute' | 'userFilter'> & Partial<Pick<DirectoryConfig, 'groupMembership' | 'requireSenderAuthenticationAttribute' | 'maxReceiveSizeAttribute' | 'maxSendSizeAttribute' | 'recipientLimitsAttribute' | 'sendOnBehalfAttribute' | 'deliveryRestrictionAttributes' | 'sendAsPermissions'>>,
): DirectorySchemaMap {
  const p = DIRECTORY_PRESET_MAPS[d.preset];
  // An attribute the admin named, false (read none), or the preset's.
  const attribute = (k: 'requireSenderAuthenticationAttribute' | 'maxReceiveSizeAttribute' | 'maxSendSizeAttribute' | 'recipientLimitsAttribute' | 'sendOnBehalfAttribute'): string | null => {
    const v = d[k];
    return v === false ? null : (v ?? p[k]);
  };
  const r = d.deliveryRestrictionAttributes;
  const deliveryRestrictions = Object.fromEntries(
    DELIVERY_RESTRICTION_KEYS.map((k) => {
      const v = r?.[k];
      return [k, v === false ? null : (v ?? p.deliveryRestrictions[k])];
    }),
  ) as Record<DeliveryRestrictionKey, string | null>;
  return {
    loginAttributes: d.loginAttributes ?? p.loginAttributes,
    addressAttributes: d.addressAttributes ?? p.addressAttributes,
    groupAttribute: d.groupAttribute ?? p.groupAttribute,
    userFilter: d.userFilter ?? p.userFilter,
    checksAccountControl: p.checksAccountControl,
    groupMembership: d.groupMembership ?? p.groupMembership,
    primaryGroup: p.primaryGroup,
    requireSenderAuthenticationAttribute: attribute('requireSenderAuthenticationAttribute'),
    maxReceiveSizeAttribute: attribute('maxReceiveSizeAttribute'),
    maxSendSizeAttribute: attribute('maxSendSizeAttribute'),
    recipientLimitsAttribute: attribute('recipientLimitsAttribute'),
    deliveryRestrictions,
    sendAsPermissions: d.sendAsPermissions ?? p.sendAsPermissions,
    sendOnBehalfAttribute: attribute('sendOnBehalfAttribute'),
  };
}

/** How the groups are found, in words (mailgw check, traces). */
export function groupSourceText(map: DirectorySchemaMap, maxGroupDepth: number): string {
  const how =
    map.groupMembership === 'groupOfNames'
      ? 'groupOfNames/groupOfUniqueNames entries listing the user in member/uniqueMember'
      : `${map.groupAttribute}`;
  return `groups from ${how}${map.primaryGroup ? ' and the primary group (primaryGroupID + objectSid)' : ''} (nested, ${maxGroupDepth} levels)`;
}

/**
 * RFC 4515 3: a value inside a filter. `*`, `(`, `)`, `\` and NUL become \2a \28 \29 \5c \00, so
 * a login or address can never add a wildcard or a clause. Other characters go as UTF-8.
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * RFC 4514 2.4: a value inside a DN's RDN (`cn=<value>`). `,+"\<>;=` and NUL are escaped, and a
 * leading space or `#` and a trailing space.
 */
export function escapeDnValue(value: string): string {
  let out = value.replace(/[,+"\\<>;=\0]/g, (c) => (c === '\0' ? '\\00' : `\\${c}`));
  if (out.startsWith(' ') || out.startsWith('#')) out = `\\${out}`;
  if (out.endsWith(' ') && out.length > 1) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/** Splits a DN into RDNs at commas that are not escaped. */
function splitDn(dn: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i]!;
    if (c === '\\' && i + 1 < dn.length) {
      cur += c + dn[++i]!;
    } else if (c === ',' || c === ';') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts.map((p) => p.trim());
}

function unescapeDnValue(v: string): string {
  return v.replace(/\\([0-9a-fA-F]{2}|.)/g, (_m, e: string) => (e.length === 2 ? String.fromCharCode(parseInt(e, 16)) : e));
}

/** A DN for comparison: RDNs trimmed, attribute names and values lower-cased (directories compare DNs case-insensitively). */
export function normaliseDn(dn: string): string {
  return splitDn(dn)
    .map((rdn) => {
      const eq = rdn.indexOf('=');
      return eq < 0 ? rdn.toLowerCase() : `${rdn.slice(0, eq).trim().toLowerCase()}=${rdn.slice(eq + 1).trim().toLowerCase()}`;
    })
    .join(',');
}

/** The name of an entry: the value of its first RDN, unescaped ("CN=Relay Users,OU=…" → "Relay Users"). */
export function dnName(dn: string): string {
  const first = splitDn(dn)[0] ?? '';
  const eq = first.indexOf('=');
  return unescapeDnValue(eq < 0 ? first : first.slice(eq + 1).trim());
}

const or = (clauses: string[]) => (clauses.length === 1 ? clauses[0]! : `(|${clauses.join('')})`);

/**
 * The filter that finds the account a login names: the user filter AND any login attribute
 * equal to the login. `DOMAIN\name` (the NT logon form) also matches the name alone.
 */
export function loginFilter(map: DirectorySchemaMap, login: string): string {
  const values = [login];
  const nt = /^[^\\]+\\(.+)$/.exec(login);
  if (nt) values.push(nt[1]!);
  const clauses = map.loginAttributes.flatMap((a) => values.map((v) => `(${a}=${escapeFilterValue(v)})`));
  return `(&${map.userFilter}${or(clauses)})`;
}

/**
 * groupMembership groupOfNames: the filter that finds the groups listing `dn` (a user's or a
 * group's) as a member. The DN goes in as a filter value, RFC 4515-escaped: a DN may hold
 * `*`, `(`, `)` and `\` (an escaped comma) that must not become filter syntax.
 */
export function groupOfNamesFilter(dn: string): string {
  const v = escapeFilterValue(dn);
  return `(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))(|(member=${v})(uniqueMember=${v})))`;
}

/** The filter that finds the objects whose Send on Behalf list (`attribute`) names one of these DNs (a user's, its groups'), each RFC 4515-escaped. */
export function delegatesFilter(attribute: string, dns: readonly string[]): string {
  return or(dns.map((dn) => `(${attribute}=${escapeFilterValue(dn)})`));
}

/** The filter that finds any object holding `address` (users, groups, contacts, public folders). */
export function addressFilter(map: DirectorySchemaMap, address: string): string {
  const a = address.toLowerCase();
  const clauses = map.addressAttributes.map((attr) => (attr.toLowerCase() === 'proxyaddresses' ? `(${attr}=smtp:${escapeFilterValue(a)})` : `(${attr}=${escapeFilterValue(a)})`));
  return or(clauses);
}

/** An attribute's values, found by name in any case (LDAP attribute names are case-insensitive, RFC 4512 2.5); [] when absent. */
export function attributeValues(attrs: Readonly<Record<string, readonly string[]>>, name: string): readonly string[] {
  const lower = name.toLowerCase();
  return Object.entries(attrs).find(([k]) => k.toLowerCase() === lower)?.[1] ?? [];
}

/**
 * The SMTP addresses of an entry, lower-cased, primary first: proxyAddresses' `SMTP:` entry is
 * the primary, `smtp:` ones are aliases, other types (X400:, SIP:) are ignored; other address
 * attributes hold plain addresses.
 */
export function entryAddresses(map: DirectorySchemaMap, attrs: Readonly<Record<string, readonly string[]>>): string[] {
  const primary: string[] = [];
  const rest: string[] = [];
  for (const attr of map.addressAttributes) {
    for (const v of attributeValues(attrs, attr)) {
      if (attr.toLowerCase() === 'proxyaddresses') {
        const m = /^(smtp):(.+@.+)$/i.exec(v.trim());
        if (!m) continue;
        (m[1] === 'SMTP' ? primary : rest).push(m[2]!.toLowerCase());
      } else if (/^[^@\s]+@[^@\s]+$/.test(v.trim())) rest.push(v.trim().toLowerCase());
    }
  }
  return [...new Set([...primary, ...rest])];
}

/** Active Directory userAccountControl with bit 2 (ACCOUNTDISABLE) set. */
export function accountDisabled(userAccountControl: string | undefined): boolean {
  if (userAccountControl === undefined) return false;
  const n = Number(userAccountControl);
  return Number.isInteger(n) && (n & 2) === 2;
}

/**
 * RFC 4513 5.1.2: a simple bind with a DN and an empty password is an unauthenticated bind that
 * many servers answer "success". mailgw never sends one for a user: an empty password fails.
 */
export function mayBindWith(password: string): boolean {
  return password.length > 0;
}

/**
 * A Windows security identifier (MS-DTYP 2.4.2): revision 1, a 48-bit identifier authority
 * (5 = NT Authority) and up to 15 32-bit sub-authorities; a domain account's SID is the
 * domain's SID followed by its relative ID (RID).
 */
export interface Sid {
  readonly revision: number;
  readonly authority: number;
  readonly subAuthorities: readonly number[];
}

/**
 * The binary form AD stores in objectSid (MS-DTYP 2.4.2.2): revision (1 byte), sub-authority
 * count (1 byte), authority (6 bytes, big-endian), then each sub-authority as 4 bytes
 * LITTLE-endian. Anything else (short, wrong revision, more than 15 sub-authorities, a length
 * that does not match the count) is not a SID: null, with the reason.
 */
export function parseSid(bytes: Uint8Array): { sid: Sid } | { sid: null; why: string } {
  if (bytes.length < 8) return { sid: null, why: `${bytes.length} bytes, a SID has at least 8` };
  const revision = bytes[0]!;
  const count = bytes[1]!;
  if (revision !== 1) return { sid: null, why: `revision ${revision}, only revision 1 exists` };
  if (count > 15) return { sid: null, why: `${count} sub-authorities, at most 15` };
  if (bytes.length !== 8 + 4 * count) return { sid: null, why: `${bytes.length} bytes for ${count} sub-authorities (expected ${8 + 4 * count})` };
  let authority = 0;
  for (let i = 2; i < 8; i++) authority = authority * 256 + bytes[i]!;
  const subAuthorities: number[] = [];
  for (let i = 0; i < count; i++) {
    const o = 8 + 4 * i;
    subAuthorities.push((bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24)) >>> 0);
  }
  return { sid: { revision, authority, subAuthorities } };
}

/** The binary form of a SID (what an objectSid filter compares with). */
export function sidBytes(sid: Sid): Uint8Array {
  const out = new Uint8Array(8 + 4 * sid.subAuthorities.length);
  out[0] = sid.revision;
  out[1] = sid.subAuthorities.length;
  for (let i = 7, a = sid.authority; i >= 2; i--, a = Math.floor(a / 256)) out[i] = a % 256;
  sid.subAuthorities.forEach((s, i) => {
    for (let b = 0; b < 4; b++) out[8 + 4 * i + b] = (s >>> (8 * b)) & 0xff;
  });
  return out;
}

/** The string form S-1-5-21-…-513 (MS-DTYP 2.4.2.1: an authority of 2^32 or more in hex). */
export function formatSid(sid: Sid): string {
  const authority = sid.authority >= 2 ** 32 ? `0x${sid.authority.toString(16).toUpperCase().padStart(12, '0')}` : String(sid.authority);
  return ['S', sid.revision, authority, ...sid.subAuthorities].join('-');
}

/** S-1-5-21-…: the string form parsed (for configuration and tests); null when it is not one. */
export function parseSidString(text: string): Sid | null {
  const m = /^S-1-(0x[0-9A-Fa-f]{12}|\d{1,15})((?:-\d{1,10}){0,15})$/i.exec(text.trim());
  if (!m) return null;
  const authority = m[1]!.toLowerCase().startsWith('0x') ? parseInt(m[1]!.slice(2), 16) : Number(m[1]);
  if (authority >= 2 ** 48) return null;
  const subAuthorities = m[2]!.split('-').slice(1).map(Number);
  if (subAuthorities.some((n) => n > 0xffffffff)) return null;
  return { revision: 1, authority, subAuthorities };
}

/** RFC 4515 3: every byte of a binary value as \xx (an objectSid assertion). */
export function escapeFilterBytes(bytes: Uint8Array): string {
  return [...bytes].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
}

/**
 * Active Directory's primary group: AD leaves it (usually Domain Users, RID 513) out of
 * memberOf; the user's primaryGroupID is its RID, and the group's objectSid is the user's
 * domain SID (the user's SID without its own RID) followed by that RID. Either the SID and the
 * filter to search for, or why there is nothing to search for (no objectSid, a SID that does
 * not parse, a primaryGroupID that is not a RID): the logon goes on without a primary group.
 */
export function primaryGroupLookup(
  objectSid: Uint8Array | undefined,
  primaryGroupID: string | undefined,
): { kind: 'search'; sid: Sid; text: string; bytes: Uint8Array; filter: string } | { kind: 'skip'; why: string } {
  if (primaryGroupID === undefined) return { kind: 'skip', why: 'the entry has no primaryGroupID' };
  const rid = /^\d{1,10}$/.test(primaryGroupID.trim()) ? Number(primaryGroupID.trim()) : NaN;
  if (!Number.isInteger(rid) || rid <= 0 || rid > 0xffffffff) return { kind: 'skip', why: `primaryGroupID "${primaryGroupID}" is not a relative ID` };
  if (objectSid === undefined) return { kind: 'skip', why: `the entry has primaryGroupID ${rid} but no objectSid to take the domain SID from` };
  const p = parseSid(objectSid);
  if (p.sid === null) return { kind: 'skip', why: `its objectSid is not a SID (${p.why})` };
  if (p.sid.subAuthorities.length < 2) return { kind: 'skip', why: `objectSid ${formatSid(p.sid)} is not a domain account's SID (no domain part before the RID)` };
  const sid: Sid = { ...p.sid, subAuthorities: [...p.sid.subAuthorities.slice(0, -1), rid] };
  const bytes = sidBytes(sid);
  return { kind: 'search', sid, text: formatSid(sid), bytes, filter: `(objectSid=${escapeFilterBytes(bytes)})` };
}

/** A user as the directory describes them after a successful bind. */
export interface DirectoryIdentity {
  /** The login as the client gave it. */
  readonly login: string;
  readonly dn: string;
  /** Lower-cased SMTP addresses, primary first. */
  readonly addresses: readonly string[];
  /** DNs of every group the user is in, nested ones included. */
  readonly groups: readonly string[];
  /** The largest message it may send, in bytes (Exchange's MaxSendSize); absent: no limit of its own. */
  readonly maxSendSize?: number;
  /** The most recipients it may give one message (Exchange's RecipientLimits); absent: no limit of its own. */
  readonly recipientLimits?: number;
  /** Its SID and its groups' (tokenGroups), for Send As; absent: not read (sendAsPermissions off). */
  readonly sids?: readonly string[];
  /** For each of `groups` (by DN as listed there): how it was found, in words (directory test, explain). */
  readonly groupOrigins?: Readonly<Record<string, string>>;
}

/** Principal key of a group grant: the group's DN, or its name, normalised. */
export function groupPrincipal(nameOrDn: string): `group:${string}` {
  return nameOrDn.includes('=') ? `group:${normaliseDn(nameOrDn)}` : `group:${nameOrDn.trim().toLowerCase()}`;
}

/** The group principals a directory user acts as: each group by DN and by name. */
export function groupPrincipals(groups: readonly string[]): Array<`group:${string}`> {
  return [...new Set(groups.flatMap((dn) => [groupPrincipal(dn), groupPrincipal(dnName(dn))]))];
}

/**
 * What a recipient lookup answered. found-auth-required: found, and its entry takes mail only
 * from authenticated senders (requireSenderAuthenticationAttribute TRUE).
 */
export type DirectoryAnswer = 'found' | 'found-auth-required' | 'not-found' | 'unavailable';

/** Whether an entry holding the address asks for authenticated senders (an LDAP Boolean, RFC 4517 3.3.3: TRUE or FALSE). */
export function requiresAuthenticatedSender(map: DirectorySchemaMap, attrs: Readonly<Record<string, readonly string[]>>): boolean {
  const name = map.requireSenderAuthenticationAttribute;
  return name !== null && attributeValues(attrs, name).some((v) => v.trim().toUpperCase() === 'TRUE');
}

/**
 * A recipient's message delivery restrictions (Exchange's AcceptMessagesOnlyFrom,
 * AcceptMessagesOnlyFromDLMembers, RejectMessagesFrom, RejectMessagesFromDLMembers), as the DNs
 * its entry lists.
 */
export type DeliveryRestrictions = Readonly<Record<DeliveryRestrictionKey, readonly string[]>>;

/** A recipient lookup's answer with the entry's delivery restrictions (null: none listed, or none read). */
export interface RecipientEntry {
  readonly answer: DirectoryAnswer;
  readonly restrictions: DeliveryRestrictions | null;
  /** The largest message it takes, in bytes (Exchange's MaxReceiveSize); absent or null: no limit of its own. */
  readonly maxReceiveSize?: number | null;
}

/**
 * The largest message an entry takes, in bytes, from maxReceiveSizeAttribute (KB, as AD's
 * delivContLength): null when not read, absent, 0 (Exchange's "unlimited") or not a whole number.
 */
export function maxReceiveSizeOf(map: DirectorySchemaMap, attrs: Readonly<Record<string, readonly string[]>>): number | null {
  return kilobyteLimit(map.maxReceiveSizeAttribute, attrs);
}

/** The largest message a user may send, in bytes, from maxSendSizeAttribute (KB, as AD's submissionContLength); null as for maxReceiveSizeOf. */
export function maxSendSizeOf(map: DirectorySchemaMap, attrs: Readonly<Record<string, readonly string[]>>): number | null {
  return kilobyteLimit(map.maxSendSizeAttribute, attrs);
}

/** The most recipients a user may give one message, from recipientLimitsAttribute (msExchRecipLimit); null as for maxReceiveSizeOf. */
export function recipientLimitsOf(map: DirectorySchemaMap, attrs: Readonly<Record<string, readonly string[]>>): number | null {
  return positiveInteger(map.recipientLimitsAttribute, attrs);
}

/** A size limit in KB as Exchange stores them in AD (0: none of its own), in bytes; null when none. */
function kilobyteLimit(name: string | null, attrs: Readonly<Record<string, readonly string[]>>): number | null {
  const kb = positiveInteger(name, attrs);
  return kb === null ? null : kb * 1024;
}

/** A whole number above 0 in the named attribute (its first value); null when not read, absent, 0 or not a number. */
function positiveInteger(name: string | null, attrs: Readonly<Record<string, readonly string[]>>): number | null {
  if (name === null) return null;
  const v = attributeValues(attrs, name)[0]?.trim();
  if (v === undefined || !/^\d{1,10}$/.test(v)) return null;
  const n = Number(v);
  return n > 0 ? n : null;
}

/** The delivery restrictions an entry lists, read with the map's attributes; null when every list is empty. */
export function deliveryRestrictionsOf(map: DirectorySchemaMap, attrs: Readonly<Record<string, readonly string[]>>): DeliveryRestrictions | null {
  const lists = Object.fromEntries(
    DELIVERY_RESTRICTION_KEYS.map((k) => {
      const name = map.deliveryRestrictions[k];
      return [k, name === null ? [] : attributeValues(attrs, name).map((v) => v.trim()).filter((v) => v !== '')];
    }),
  ) as Record<DeliveryRestrictionKey, string[]>;
  return DELIVERY_RESTRICTION_KEYS.some((k) => lists[k].length > 0) ? lists : null;
}

/** The attributes a recipient lookup reads besides the addresses: authenticated senders only, the size limit, the restriction lists. */
export function recipientLookupAttributes(map: DirectorySchemaMap): string[] {
  return [...(map.requireSenderAuthenticationAttribute ? [map.requireSenderAuthenticationAttribute] : []), ...(map.maxReceiveSizeAttribute ? [map.maxReceiveSizeAttribute] : []), ...DELIVERY_RESTRICTION_KEYS.flatMap((k) => map.deliveryRestrictions[k] ?? [])];
}

/**
 * Exchange's delivery restriction check for one recipient and the sender (MAIL FROM's directory
 * object with its nested groups; null: the null sender, or no directory object holds the
 * address). A reject list wins over an accept list (a sender in both is refused); with any
 * accept list set, a sender must be in one: listed itself, or a member of a listed group.
 */
export function deliveryRestrictionVerdict(
  r: DeliveryRestrictions,
  sender: { readonly address: string | null; readonly object: { readonly dn: string; readonly groups: readonly string[] } | null },
): { readonly allowed: boolean; readonly why: string } {
  const who = sender.address === null ? 'the null sender' : sender.object ? `${sender.address} (${sender.object.dn})` : `${sender.address} (no directory object)`;
  const dn = sender.object ? normaliseDn(sender.object.dn) : null;
  const groups = new Map((sender.object?.groups ?? []).map((g) => [normaliseDn(g), g]));
  const listed = (list: readonly string[]) => (dn === null ? undefined : list.find((x) => normaliseDn(x) === dn));
  const memberOf = (list: readonly string[]) => list.find((x) => groups.has(normaliseDn(x)));
  const rejected = listed(r.rejectMessagesFrom);
  if (rejected !== undefined) return { allowed: false, why: `${who} is in its RejectMessagesFrom` };
  const rejectedGroup = memberOf(r.rejectMessagesFromDLMembers);
  if (rejectedGroup !== undefined) return { allowed: false, why: `${who} is a member of ${dnName(rejectedGroup)}, in its RejectMessagesFromDLMembers` };
  if (r.acceptMessagesOnlyFrom.length === 0 && r.acceptMessagesOnlyFromDLMembers.length === 0) return { allowed: true, why: `${who} is in none of its reject lists` };
  if (listed(r.acceptMessagesOnlyFrom) !== undefined) return { allowed: true, why: `${who} is in its AcceptMessagesOnlyFrom` };
  const group = memberOf(r.acceptMessagesOnlyFromDLMembers);
  if (group !== undefined) return { allowed: true, why: `${who} is a member of ${dnName(group)}, in its AcceptMessagesOnlyFromDLMembers` };
  const lists = [...(r.acceptMessagesOnlyFrom.length > 0 ? [`AcceptMessagesOnlyFrom (${r.acceptMessagesOnlyFrom.length})`] : []), ...(r.acceptMessagesOnlyFromDLMembers.length > 0 ? [`AcceptMessagesOnlyFromDLMembers (${r.acceptMessagesOnlyFromDLMembers.map(dnName).join(', ')})`] : [])];
  return { allowed: false, why: `${who} is not in its ${lists.join(' nor its ')}` };
}

/** An object's attributes by address: found (values by attribute name as asked), none, or no server answered. */
export type EntryAttributes =
  | { readonly kind: 'found'; readonly dn: string; readonly attributes: Readonly<Record<string, readonly string[]>> }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'unavailable'; readonly why: string };

/** The object holding an address and every group it is in (nested, and on AD its primary group): transport rules' fromMemberOf / sentToMemberOf. */
export type MembershipAnswer =
  | { readonly kind: 'found'; readonly dn: string; readonly groups: readonly string[] }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'unavailable'; readonly why: string };

/** What is known of the addresses a rule's group conditions asked about (lower-case address → answer). */
export type KnownMemberships = ReadonlyMap<string, Exclude<MembershipAnswer, { kind: 'unavailable' }>>;

/**
 * Whether `subject` (the object holding an address) is in the group `ref`, by DN, name (cn) or
 * address (the DN of the object holding it, `refAnswer`); `self`: the group itself counts.
 */
export function inGroup(subject: { readonly dn: string; readonly groups: readonly string[] }, ref: string, refAnswer: Exclude<MembershipAnswer, { kind: 'unavailable' }> | undefined, self: boolean): boolean {
  const candidates = self ? [subject.dn, ...subject.groups] : subject.groups;
  if (isAddressGroupRef(ref)) {
    if (refAnswer?.kind !== 'found') return false;
    const dn = normaliseDn(refAnswer.dn);
    return candidates.some((g) => normaliseDn(g) === dn);
  }
  if (ref.includes('=')) {
    const dn = normaliseDn(ref);
    return candidates.some((g) => normaliseDn(g) === dn);
  }
  const name = ref.trim().toLowerCase();
  return candidates.some((g) => dnName(g).toLowerCase() === name);
}

/** What the listener asks the directory (implemented by @mailgw/directory; none configured: no such object). */
export interface DirectoryLookup {
  logon(login: string, password: string): Promise<DirectoryLogon>;
  /**
   * Whether an object holds the address, with its delivery restrictions. Cached answers never
   * outlive cacheTtl (found) / negativeCacheTtl (not found); an outage is never cached.
   */
  recipientEntry(address: string): Promise<RecipientEntry>;
  /** The named attributes of the object holding an address (disclaimer tokens); absent: tokens are filled empty. */
  entryAttributes?(address: string, attributes: readonly string[]): Promise<EntryAttributes>;
  /** The object holding an address and its groups (transport rules' group conditions). */
  memberships?(address: string): Promise<MembershipAnswer>;
  /** Whether a user with these SIDs has Send As on the object holding an address (its DACL); absent: never granted. */
  sendAs?(address: string, sids: readonly string[]): Promise<SendAsAnswer>;
}
