// Permission groups expand to extended rights for principals (Exchange's table), explicit
// permissions add or remove rights, and a deny always wins.
import { groupPrincipal } from './directory.js';
import type { BuiltinPrincipal, ExtendedRight, LoadedConnector, PermissionGroup } from '@mailgw/config';

type Grant = { principal: BuiltinPrincipal; rights: readonly ExtendedRight[]; deny?: boolean };

const EXTERNALLY_SECURED_RIGHTS: readonly ExtendedRight[] = [
  'ms-Exch-SMTP-Submit',
  'ms-Exch-SMTP-Accept-Any-Recipient',
  'ms-Exch-SMTP-Accept-Any-Sender',
  'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender',
  'ms-Exch-SMTP-Accept-Authentication-Flag',
  'ms-Exch-SMTP-Accept-Exch50',
  'ms-Exch-Bypass-Anti-Spam',
  'ms-Exch-Bypass-Message-Size-Limit',
  'ms-Exch-Accept-Headers-Routing',
];

export const GROUP_GRANTS: Record<PermissionGroup, readonly Grant[]> = {
  None: [],
  Custom: [],
  AnonymousUsers: [
    {
      principal: 'Anonymous',
      rights: ['ms-Exch-SMTP-Submit', 'ms-Exch-SMTP-Accept-Any-Sender', 'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender', 'ms-Exch-Accept-Headers-Routing'],
    },
  ],
  ExchangeUsers: [
    {
      principal: 'AuthenticatedUsers',
      rights: ['ms-Exch-SMTP-Submit', 'ms-Exch-SMTP-Accept-Any-Recipient', 'ms-Exch-Bypass-Anti-Spam', 'ms-Exch-Accept-Headers-Routing'],
    },
  ],
  ExchangeServers: [
    { principal: 'ExchangeServers', rights: [...EXTERNALLY_SECURED_RIGHTS, 'ms-Exch-Accept-Headers-Organization', 'ms-Exch-Accept-Headers-Forest'] },
    { principal: 'ExternallySecuredServers', rights: EXTERNALLY_SECURED_RIGHTS },
  ],
  ExchangeLegacyServers: [
    { principal: 'ExchangeLegacyInterop', rights: EXTERNALLY_SECURED_RIGHTS },
    { principal: 'ExchangeLegacyInterop', rights: ['ms-Exch-Accept-Headers-Organization', 'ms-Exch-Accept-Headers-Forest'], deny: true },
  ],
  Partners: [{ principal: 'Partners', rights: ['ms-Exch-SMTP-Submit', 'ms-Exch-Accept-Headers-Routing'] }],
};

/** Grants and denies of one principal on one connector, each right with where it came from. */
export interface PrincipalAcl {
  readonly grants: ReadonlyMap<ExtendedRight, readonly string[]>;
  readonly denies: ReadonlyMap<ExtendedRight, readonly string[]>;
}

/** Principal key: a built-in name, "user:<lower-case name>", or "group:<lower-case name or normalised DN>" (directory groups). */
export type PrincipalKey = BuiltinPrincipal | `user:${string}` | `group:${string}`;

export function userPrincipal(name: string): PrincipalKey {
  return `user:${name.toLowerCase()}`;
}

/** Builds the connector's ACL: group expansions first, then explicit permissions. */
export function buildAcl(c: LoadedConnector, isBuiltin: (p: string) => p is BuiltinPrincipal): Map<PrincipalKey, PrincipalAcl> {
  const acl = new Map<PrincipalKey, { grants: Map<ExtendedRight, string[]>; denies: Map<ExtendedRight, string[]> }>();
  const entry = (p: PrincipalKey) => {
    let e = acl.get(p);
    if (!e) acl.set(p, (e = { grants: new Map(), denies: new Map() }));
    return e;
  };
  const add = (m: Map<ExtendedRight, string[]>, r: ExtendedRight, source: string) => {
    const list = m.get(r) ?? [];
    if (!list.includes(source)) list.push(source);
    m.set(r, list);
  };
  for (const group of c.permissionGroups) {
    for (const g of GROUP_GRANTS[group]) {
      const e = entry(g.principal);
      for (const r of g.rights) add(g.deny ? e.denies : e.grants, r, `permission group ${group}`);
    }
  }
  c.permissions.forEach((p, i) => {
    const key: PrincipalKey = p.user === undefined ? groupPrincipal(p.group ?? '') : isBuiltin(p.user) ? p.user : userPrincipal(p.user);
    const e = entry(key);
    const to = p.user === undefined ? `group ${p.group ?? ''}` : p.user;
    for (const r of p.extendedRights) add(p.deny ? e.denies : e.grants, r, `permissions[${i}] (${p.deny ? 'deny' : 'grant'} to ${to})`);
  });
  return acl;
}

export interface EffectiveRights {
  readonly rights: ReadonlySet<ExtendedRight>;
  /** Why each held right is held. */
  readonly grantedBy: ReadonlyMap<ExtendedRight, readonly string[]>;
  /** Rights some principal was granted but a deny removed, with the deny's source. */
  readonly deniedBy: ReadonlyMap<ExtendedRight, readonly string[]>;
}

/** Rights of a session acting as all of `principals` at once: union of grants minus any deny. */
export function effectiveRights(acl: ReadonlyMap<PrincipalKey, PrincipalAcl>, principals: readonly PrincipalKey[]): EffectiveRights {
  const grantedBy = new Map<ExtendedRight, string[]>();
  const deniedBy = new Map<ExtendedRight, string[]>();
  for (const p of principals) {
    const e = acl.get(p);
    if (!e) continue;
    for (const [r, src] of e.grants) grantedBy.set(r, [...(grantedBy.get(r) ?? []), ...src.map((s) => `${s} → ${p}`)]);
    for (const [r, src] of e.denies) deniedBy.set(r, [...(deniedBy.get(r) ?? []), ...src.map((s) => `${s} → ${p}`)]);
  }
  for (const r of deniedBy.keys()) grantedBy.delete(r);
  return { rights: new Set(grantedBy.keys()), grantedBy, deniedBy };
}
