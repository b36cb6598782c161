// Exchange's disclaimer tokens: %%DisplayName%%, %%Title%%, %%PhoneNumber%% … in a transport
// rule's ApplyHtmlDisclaimerText are filled from the sender's directory object, so one rule gives
// every sender a signature of their own. The token names are Exchange's (its ADAttribute list);
// which LDAP attribute each one reads depends on the directory preset. Pure: the listener asks
// the directory for the attributes and hands the values here.
import { AD_ATTRIBUTES, type AdAttribute, type DirectoryPreset } from '@mailgw/config';
import { dnName } from './directory.js';

/**
 * Each token and the attribute it reads: [activeDirectory, openLDAP] (null: that schema has no
 * such attribute; the token is filled empty). Manager is a DN: its name (the first RDN's value)
 * is shown.
 */
const TOKENS: Readonly<Record<AdAttribute, readonly [string, string | null]>> = {
  DisplayName: ['displayName', 'displayName'],
  FirstName: ['givenName', 'givenName'],
  Initials: ['initials', 'initials'],
  LastName: ['sn', 'sn'],
  Office: ['physicalDeliveryOfficeName', 'physicalDeliveryOfficeName'],
  PhoneNumber: ['telephoneNumber', 'telephoneNumber'],
  OtherPhoneNumber: ['otherTelephone', null],
  Email: ['mail', 'mail'],
  Street: ['streetAddress', 'street'],
  POBox: ['postOfficeBox', 'postOfficeBox'],
  City: ['l', 'l'],
  State: ['st', 'st'],
  ZipCode: ['postalCode', 'postalCode'],
  Country: ['co', 'co'],
  UserLogonName: ['userPrincipalName', 'uid'],
  HomePhoneNumber: ['homePhone', 'homePhone'],
  OtherHomePhoneNumber: ['otherHomePhone', null],
  PagerNumber: ['pager', 'pager'],
  MobileNumber: ['mobile', 'mobile'],
  FaxNumber: ['facsimileTelephoneNumber', 'facsimileTelephoneNumber'],
  OtherFaxNumber: ['otherFacsimileTelephoneNumber', null],
  Notes: ['info', 'description'],
  Title: ['title', 'title'],
  Department: ['department', 'departmentNumber'],
  Company: ['company', 'o'],
  Manager: ['manager', 'manager'],
  ...(Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`CustomAttribute${i + 1}`, [`extensionAttribute${i + 1}`, null] as const])) as Record<`CustomAttribute${number}`, readonly [string, null]>),
};

/**
 * The values of Exchange-named attributes (AD_ATTRIBUTES: what the directory attribute
 * conditions of transport rules read) from an entry's LDAP attributes under a preset: each value
 * on its own (a multi-valued attribute gives several), Manager as its name (the first RDN's
 * value, as the disclaimer token shows it); an attribute the schema or the entry lacks: none.
 */
export function adAttributeValues(preset: DirectoryPreset, names: readonly string[], attrs: Readonly<Record<string, readonly string[]>>): Record<string, string[]> {
  const lower = new Map(Object.entries(attrs).map(([k, v]) => [k.toLowerCase(), v]));
  const out: Record<string, string[]> = {};
  for (const n of names) {
    const a = tokenAttribute(preset, n);
    const v = a ? [...(lower.get(a.toLowerCase()) ?? [])] : [];
    out[n] = n === 'Manager' ? v.map((dn) => dnName(dn)) : v;
  }
  return out;
}

/** A directory object as the transport rules' attribute and manager conditions see it: the values by Exchange name, its DN and its manager's DN. */
export function adAttributesAnswer(preset: DirectoryPreset, names: readonly string[], dn: string, attrs: Readonly<Record<string, readonly string[]>>): { kind: 'found'; values: Record<string, string[]>; dn: string; managerDn: string | null } {
  const manager = tokenAttribute(preset, 'Manager')!.toLowerCase();
  const raw = Object.entries(attrs).find(([k]) => k.toLowerCase() === manager)?.[1][0] ?? null;
  return { kind: 'found', values: adAttributeValues(preset, names, attrs), dn, managerDn: raw };
}

/** The token names Exchange fills: its ADAttribute names, the same the transport rules' attribute conditions take. */
export const DISCLAIMER_TOKENS: readonly string[] = AD_ATTRIBUTES;
const BY_LOWER = new Map(DISCLAIMER_TOKENS.map((t) => [t.toLowerCase(), t]));

const TOKEN = /%%([A-Za-z0-9]+)%%/g;

/** The tokens a disclaimer uses, split into those Exchange fills (canonical names) and the rest (as written). */
export function disclaimerTokens(html: string): { known: string[]; unknown: string[] } {
  const known = new Set<string>();
  const unknown = new Set<string>();
  for (const m of html.matchAll(TOKEN)) {
    const name = BY_LOWER.get(m[1]!.toLowerCase());
    if (name) known.add(name);
    else unknown.add(m[0]);
  }
  return { known: [...known], unknown: [...unknown] };
}

/** The LDAP attribute a token reads under a preset, or null when that schema has none. */
export function tokenAttribute(preset: DirectoryPreset, token: string): string | null {
  const t = TOKENS[token as AdAttribute] as (typeof TOKENS)[AdAttribute] | undefined;
  return t ? (preset === 'activeDirectory' ? t[0] : t[1]) : null;
}

/** The attributes to read for these tokens. */
export function tokenAttributes(preset: DirectoryPreset, tokens: readonly string[]): string[] {
  return [...new Set(tokens.map((t) => tokenAttribute(preset, t)).filter((a): a is string => a !== null))];
}

/** Each token's text from the entry's attributes (any attribute-name case; several values joined by ", "). */
export function tokenValues(preset: DirectoryPreset, tokens: readonly string[], attrs: Readonly<Record<string, readonly string[]>>): Record<string, string> {
  const lower = new Map(Object.entries(attrs).map(([k, v]) => [k.toLowerCase(), v]));
  const out: Record<string, string> = {};
  for (const t of tokens) {
    const a = tokenAttribute(preset, t);
    const v = a ? (lower.get(a.toLowerCase()) ?? []) : [];
    out[t] = (t === 'Manager' ? v.map((dn) => dnName(dn)) : v).join(', ');
  }
  return out;
}

/** Text as HTML: a value from the directory must not add markup to the disclaimer. */
function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * The disclaimer's HTML with its known tokens replaced by `values` (HTML-escaped; a token without
 * a value becomes empty, as in Exchange). Tokens Exchange does not fill stay as written.
 */
export function fillDisclaimerTokens(html: string, values: Readonly<Record<string, string>>): string {
  return html.replace(TOKEN, (whole, name: string) => {
    const t = BY_LOWER.get(name.toLowerCase());
    return t === undefined ? whole : escapeHtml(values[t] ?? '');
  });
}
