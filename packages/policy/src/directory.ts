// The directory's pure rules: what the presets mean, LDAP filters built with every value
// escaped (RFC 4515), DN escaping and normalising (RFC 4514), addresses read from entries
// (proxyAddresses smtp:/SMTP:), disabled accounts, and the principals a directory user acts as
// (its groups, by DN and by name). The LDAP client that asks these questions is @mailgw/directory.
import type { DirectoryConfig, DirectoryPreset } from '@mailgw/config';
import type { DirectoryLogon } from './stages.js';

/** The attributes a preset gives, before the admin's overrides. */
export interface DirectorySchemaMap {
  readonly loginAttributes: readonly string[];
  readonly addressAttributes: readonly string[];
  readonly groupAttribute: string;
  readonly userFilter: string;
  /** userAccountControl is read and its bit 2 (ACCOUNTDISABLE) refuses the logon. */
  readonly checksAccountControl: boolean;
}

export const DIRECTORY_PRESET_MAPS: Record<DirectoryPreset, DirectorySchemaMap> = {
  activeDirectory: {
    loginAttributes: ['userPrincipalName', 'sAMAccountName'],
    addressAttributes: ['proxyAddresses', 'mail'],
    groupAttribute: 'memberOf',
    userFilter: '(&(objectClass=user)(!(objectClass=computer)))',
    checksAccountControl: true,
  },
  openLDAP: {
    loginAttributes: ['uid', 'mail'],
    addressAttributes: ['mail', 'mailAlternateAddress'],
    groupAttribute: 'memberOf',
    userFilter: '(objectClass=inetOrgPerson)',
    checksAccountControl: false,
  },
};

/** The preset with the admin's overrides applied. */
export function directorySchemaMap(d: Pick<DirectoryConfig, 'preset' | 'loginAttributes' | 'addressAttributes' | 'groupAttribute' | 'userFilter'>): DirectorySchemaMap {
  const p = DIRECTORY_PRESET_MAPS[d.preset];
  return {
    loginAttributes: d.loginAttributes ?? p.loginAttributes,
    addressAttributes: d.addressAttributes ?? p.addressAttributes,
    groupAttribute: d.groupAttribute ?? p.groupAttribute,
    userFilter: d.userFilter ?? p.userFilter,
    checksAccountControl: p.checksAccountControl,
  };
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

/** The filter that finds any object holding `address` (users, groups, contacts, public folders). */
export function addressFilter(map: DirectorySchemaMap, address: string): string {
  const a = address.toLowerCase();
  const clauses = map.addressAttributes.map((attr) => (attr.toLowerCase() === 'proxyaddresses' ? `(${attr}=smtp:${escapeFilterValue(a)})` : `(${attr}=${escapeFilterValue(a)})`));
  return or(clauses);
}

/**
 * The SMTP addresses of an entry, lower-cased, primary first: proxyAddresses' `SMTP:` entry is
 * the primary, `smtp:` ones are aliases, other types (X400:, SIP:) are ignored; other address
 * attributes hold plain addresses.
 */
export function entryAddresses(map: DirectorySchemaMap, attrs: Readonly<Record<string, readonly string[]>>): string[] {
  const primary: string[] = [];
  const rest: string[] = [];
  const get = (name: string) => Object.entries(attrs).find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1] ?? [];
  for (const attr of map.addressAttributes) {
    for (const v of get(attr)) {
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

/** A user as the directory describes them after a successful bind. */
export interface DirectoryIdentity {
  /** The login as the client gave it. */
  readonly login: string;
  readonly dn: string;
  /** Lower-cased SMTP addresses, primary first. */
  readonly addresses: readonly string[];
  /** DNs of every group the user is in, nested ones included. */
  readonly groups: readonly string[];
}

/** Principal key of a group grant: the group's DN, or its name, normalised. */
export function groupPrincipal(nameOrDn: string): `group:${string}` {
  return nameOrDn.includes('=') ? `group:${normaliseDn(nameOrDn)}` : `group:${nameOrDn.trim().toLowerCase()}`;
}

/** The group principals a directory user acts as: each group by DN and by name. */
export function groupPrincipals(groups: readonly string[]): Array<`group:${string}`> {
  return [...new Set(groups.flatMap((dn) => [groupPrincipal(dn), groupPrincipal(dnName(dn))]))];
}

/** What a recipient lookup answered. */
export type DirectoryAnswer = 'found' | 'not-found' | 'unavailable';

/** What the listener asks the directory (implemented by @mailgw/directory; none configured: no such object). */
export interface DirectoryLookup {
  logon(login: string, password: string): Promise<DirectoryLogon>;
  /** Cached answers never outlive cacheTtl (found) / negativeCacheTtl (not found); an outage is never cached. */
  recipient(address: string): Promise<DirectoryAnswer>;
}
