// The directory's I/O shell: LDAP over ldapts, one short connection per question, servers
// tried in order (failover on a connection error or timeout), the service account for
// searches, the user's own DN and password for AUTH. The rules (filters, escaping, addresses,
// disabled accounts) are @mailgw/policy's; this file only asks and reports.
import type { DirectoryConfig } from '@mailgw/config';
import {
  accountDisabled,
  addressFilter,
  directorySchemaMap,
  dnName,
  entryAddresses,
  groupOfNamesFilter,
  loginFilter,
  mayBindWith,
  normaliseDn,
  primaryGroupLookup,
  requiresAuthenticatedSender,
  type DirectoryAnswer,
  type EntryAttributes,
  type MembershipAnswer,
  type DirectoryIdentity,
  type DirectoryLogon,
  type DirectorySchemaMap,
} from '@mailgw/policy';
import { isIP } from 'node:net';
import { Client, EqualityFilter, InvalidCredentialsError, ResultCodeError, type Entry } from 'ldapts';

/** A failure of one server (connection, TLS, timeout, service bind): the next URL is tried. */
class ServerUnavailable extends Error {}

/** Each step a lookup took, in words (for `mailgw directory test` and debug logs). */
export type Trace = (line: string) => void;

export interface DirectoryClient {
  /** AUTH: finds the account by login, refuses a disabled one, binds as it with the password, walks its groups. */
  logon(login: string, password: string, trace?: Trace): Promise<DirectoryLogon>;
  /** Is any object holding this address? (not cached here: see cache.ts) */
  hasAddress(address: string, trace?: Trace): Promise<DirectoryAnswer>;
  /** The named attributes of the object holding this address (a sender's, for disclaimer tokens). */
  entryAttributes(address: string, attributes: readonly string[], trace?: Trace): Promise<EntryAttributes>;
  /** The object holding this address and every group it is in, walked as at AUTH (transport rules' group conditions). */
  memberships(address: string, trace?: Trace): Promise<MembershipAnswer>;
  /** What the directory holds for a login, without a password (the service account's view). */
  describe(login: string, trace?: Trace): Promise<{ kind: 'ok'; identity: DirectoryIdentity; disabled: boolean } | { kind: 'invalid' | 'unavailable'; why: string }>;
  readonly map: DirectorySchemaMap;
}

const values = (e: Entry, name: string): string[] => {
  const k = Object.keys(e).find((x) => x.toLowerCase() === name.toLowerCase());
  if (!k) return [];
  const v = e[k]!;
  return (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
};

/** The raw bytes of a binary attribute (objectSid), asked for with explicitBufferAttributes. */
const firstBuffer = (e: Entry, name: string): Buffer | undefined => {
  const k = Object.keys(e).find((x) => x.toLowerCase() === name.toLowerCase());
  const v = k === undefined ? undefined : e[k];
  const first = Array.isArray(v) ? v[0] : v;
  return Buffer.isBuffer(first) ? first : typeof first === 'string' ? Buffer.from(first, 'binary') : undefined;
};

const describeError = (e: unknown): string => (e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e));

export function createDirectoryClient(cfg: DirectoryConfig): DirectoryClient {
  const map = directorySchemaMap(cfg);
  const tlsOptions = cfg.caPem ? { ca: cfg.caPem } : {};

  /** A connected, TLS-upgraded (startTLS) client to `url`, or ServerUnavailable. */
  async function open(url: string, trace: Trace): Promise<Client> {
    // ldapts' startTLS writes the socket into the options it is given: a fresh object each time.
    // The host name is what the certificate is checked against (Node would check "localhost"
    // for an upgraded socket); SNI only for names, not addresses.
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    const perServer = { ...tlsOptions, host, ...(isIP(host) ? {} : { servername: host }) };
    // ldapts treats ldap:// with any tlsOptions as TLS from the first byte: give them to ldaps:// only.
    const client = new Client({ url, timeout: cfg.timeout, connectTimeout: cfg.timeout, ...(url.startsWith('ldaps://') ? { tlsOptions: perServer } : {}), strictDN: false });
    if (cfg.startTLS) {
      try {
        await client.startTLS({ ...perServer });
        trace(`${url}: StartTLS done`);
      } catch (e) {
        await client.unbind().catch(() => undefined);
        throw new ServerUnavailable(`${url}: StartTLS failed (${describeError(e)})`);
      }
    }
    return client;
  }

  /** Runs `work` with a client bound as the service account, on the first server that answers. */
  async function withService<T>(trace: Trace, work: (c: Client, url: string) => Promise<T>): Promise<T> {
    const failures: string[] = [];
    for (const url of cfg.url) {
      let client: Client | null = null;
      try {
        client = await open(url, trace);
        try {
          await client.bind(cfg.bindDn, cfg.bindPassword);
        } catch (e) {
          // A refused service bind is a configuration problem, not an answer about the user.
          throw new ServerUnavailable(`${url}: bind as ${cfg.bindDn} failed (${describeError(e)})`);
        }
        trace(`${url}: bound as ${cfg.bindDn}`);
        return await work(client, url);
      } catch (e) {
        const why = e instanceof ServerUnavailable ? e.message : `${url}: ${describeError(e)}`;
        // An LDAP result (no such object, invalid credentials of the user) is the server's answer; anything else: next server.
        if (!(e instanceof ServerUnavailable) && e instanceof ResultCodeError) throw e;
        failures.push(why);
        trace(`${why}; trying the next server`);
      } finally {
        await client?.unbind().catch(() => undefined);
      }
    }
    throw new ServerUnavailable(failures.join('; ') || 'no directory URL');
  }

  /** What userGroups reads off an entry: its groupAttribute, and on AD what names its primary group. */
  const groupReading = [...(map.groupMembership === 'memberOf' ? [map.groupAttribute] : []), ...(map.primaryGroup ? ['objectSid', 'primaryGroupID'] : [])];

  async function findUser(c: Client, login: string, trace: Trace): Promise<Entry[]> {
    const filter = loginFilter(map, login);
    const attributes = [...map.addressAttributes, ...groupReading, ...(map.checksAccountControl ? ['userAccountControl'] : [])];
    let entries: Entry[];
    try {
      entries = (await c.search(cfg.baseDn, { scope: 'sub', filter, attributes, sizeLimit: 2, explicitBufferAttributes: ['objectSid'] })).searchEntries;
    } catch (e) {
      // sizeLimitExceeded: more than one account answers to this login (ambiguous: refused).
      if (!(e instanceof ResultCodeError && e.code === 4)) throw e;
      entries = [{ dn: '' }, { dn: '' }];
    }
    trace(`search ${cfg.baseDn} ${filter}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}`);
    return entries;
  }

  /** groupMembership groupOfNames: the DNs of the groups whose member/uniqueMember is `dn`. */
  async function groupsListing(c: Client, dn: string, trace: Trace): Promise<string[]> {
    const filter = groupOfNamesFilter(dn);
    const r = await c.search(cfg.baseDn, { scope: 'sub', filter, attributes: ['1.1'] });
    const found = r.searchEntries.map((e) => e.dn);
    trace(`search ${cfg.baseDn} ${filter}: ${found.length === 0 ? 'no group' : found.join('; ')}`);
    return found;
  }

  /** groupMembership memberOf: the groupAttribute of the entry `dn` (a group's own groups). */
  async function memberOfOf(c: Client, dn: string): Promise<string[]> {
    try {
      const r = await c.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: [map.groupAttribute] });
      return r.searchEntries.flatMap((e) => values(e, map.groupAttribute));
    } catch (e) {
      if (e instanceof ResultCodeError && e.code === 32) return []; // group deleted meanwhile
      throw e;
    }
  }

  /**
   * Active Directory's primary group (not in memberOf): the group whose objectSid is the user's
   * domain SID + primaryGroupID. Missing or bad values and no such group are trace lines, not
   * failures: the logon goes on with the other groups.
   */
  async function primaryGroup(c: Client, user: Entry, trace: Trace): Promise<{ dn: string; via: string } | null> {
    const rid = values(user, 'primaryGroupID')[0];
    const look = primaryGroupLookup(firstBuffer(user, 'objectSid'), rid);
    if (look.kind === 'skip') {
      trace(`primary group of ${user.dn}: not looked up: ${look.why}`);
      return null;
    }
    // The filter goes to ldapts as bytes: its string parser would turn an escaped byte of 0x80 or
    // more into a UTF-8 character (two bytes), and no SID would ever match.
    const r = await c
      .search(cfg.baseDn, { scope: 'sub', filter: new EqualityFilter({ attribute: 'objectSid', value: Buffer.from(look.bytes) }), attributes: ['1.1'], sizeLimit: 2 })
      .catch((e: unknown) => {
        if (e instanceof ResultCodeError && e.code === 4) return { searchEntries: [{ dn: '' }, { dn: '' }] }; // sizeLimitExceeded
        throw e;
      });
    const where = `search ${cfg.baseDn} ${look.filter} (${look.text}, primaryGroupID ${rid})`;
    if (r.searchEntries.length !== 1) {
      trace(`${where}: ${r.searchEntries.length === 0 ? 'no object has this SID; primary group ignored' : 'more than one object has this SID; primary group ignored'}`);
      return null;
    }
    const dn = r.searchEntries[0]!.dn;
    trace(`${where}: ${dn}`);
    return { dn, via: `primary group (primaryGroupID ${rid}, objectSid ${look.text})` };
  }

  /**
   * Every group of `user`, nested ones included, with how each was found: the direct groups
   * (memberOf of the user, or the groupOfNames listing it, plus AD's primary group), then level
   * by level the groups those are in, up to maxGroupDepth levels; a group seen once is not
   * followed again (cycles end).
   */
  async function userGroups(c: Client, user: Entry, trace: Trace): Promise<{ groups: string[]; origins: Record<string, string> }> {
    const via = (who: string) => (map.groupMembership === 'groupOfNames' ? `its member list names ${who} (groupOfNames)` : `${map.groupAttribute} of ${who}`);
    const direct =
      map.groupMembership === 'groupOfNames'
        ? (await groupsListing(c, user.dn, trace)).map((dn) => ({ dn, via: via('the user') }))
        : values(user, map.groupAttribute).map((dn) => ({ dn, via: via('the user') }));
    if (map.primaryGroup) {
      const p = await primaryGroup(c, user, trace);
      if (p) direct.push(p);
    }
    const seen = new Map<string, { dn: string; via: string }>();
    let level = direct;
    for (let depth = 1; level.length > 0; depth++) {
      const current: Array<{ dn: string; via: string }> = [];
      for (const g of level) {
        const key = normaliseDn(g.dn);
        if (seen.has(key)) continue;
        seen.set(key, g);
        current.push(g);
      }
      if (depth >= cfg.maxGroupDepth) {
        if (current.length > 0) trace(`maxGroupDepth ${cfg.maxGroupDepth} reached: the groups of ${current.map((g) => dnName(g.dn)).join(', ')} are not followed`);
        break;
      }
      const next: Array<{ dn: string; via: string }> = [];
      for (const g of current) {
        const parents = map.groupMembership === 'groupOfNames' ? await groupsListing(c, g.dn, trace) : await memberOfOf(c, g.dn);
        for (const dn of parents) {
          if (seen.has(normaliseDn(dn))) {
            trace(`${dnName(dn)} again through ${dnName(g.dn)}: already counted (a cycle or a second path), not followed again`);
            continue;
          }
          next.push({ dn, via: via(dnName(g.dn)) });
        }
      }
      level = next;
    }
    const groups = [...seen.values()];
    trace(`groups (${map.groupMembership === 'groupOfNames' ? 'from groupOfNames member lists' : `nested through ${map.groupAttribute}`}${map.primaryGroup ? ', with the primary group' : ''}): ${groups.map((g) => g.dn).join('; ') || 'none'}`);
    return { groups: groups.map((g) => g.dn), origins: Object.fromEntries(groups.map((g) => [g.dn, g.via])) };
  }

  const noTrace: Trace = () => undefined;

  /**
   * The object holding an address, with the named attributes, and what `more` makes of its entry
   * on the same connection (the groups walk); several: more than one holds it (sizeLimit 1 exceeded).
   */
  async function byAddress<T = undefined>(
    address: string,
    attributes: readonly string[],
    trace: Trace,
    more?: (c: Client, entry: Entry) => Promise<T>,
  ): Promise<((EntryAttributes & { readonly more?: T }) | { readonly kind: 'several' }) & { readonly filter: string }> {
    const filter = addressFilter(map, address);
    try {
      return await withService(trace, async (c) => {
        const r = await c.search(cfg.baseDn, { scope: 'sub', filter, attributes: attributes.length > 0 ? [...attributes] : ['1.1'], sizeLimit: 1, explicitBufferAttributes: ['objectSid'] }).catch((e: unknown) => {
          if (e instanceof ResultCodeError && e.code === 4) return null; // sizeLimitExceeded
          throw e;
        });
        if (r === null) return { kind: 'several', filter } as const;
        const entry = r.searchEntries[0];
        if (!entry) return { kind: 'not-found', filter } as const;
        const attrs = Object.fromEntries(attributes.map((a) => [a, values(entry, a)]));
        if (!more) return { kind: 'found', filter, dn: entry.dn, attributes: attrs } as const;
        trace(`search ${cfg.baseDn} ${filter}: found ${entry.dn}`);
        return { kind: 'found', filter, dn: entry.dn, attributes: attrs, more: await more(c, entry) } as const;
      });
    } catch (e) {
      return { kind: 'unavailable', why: describeError(e), filter };
    }
  }

  async function describe(login: string, trace: Trace = noTrace): ReturnType<DirectoryClient['describe']> {
    try {
      return await withService(trace, async (c) => {
        const entries = await findUser(c, login, trace);
        if (entries.length !== 1) return { kind: 'invalid' as const, why: entries.length === 0 ? `no account matches login "${login}"` : `login "${login}" matches more than one account` };
        const e = entries[0]!;
        const { groups, origins } = await userGroups(c, e, trace);
        const identity: DirectoryIdentity = { login, dn: e.dn, addresses: entryAddresses(map, Object.fromEntries(map.addressAttributes.map((a) => [a, values(e, a)]))), groups, groupOrigins: origins };
        return { kind: 'ok' as const, identity, disabled: map.checksAccountControl && accountDisabled(values(e, 'userAccountControl')[0]) };
      });
    } catch (e) {
      return { kind: 'unavailable', why: e instanceof Error ? e.message : String(e) };
    }
  }

  return {
    map,
    describe,
    async logon(login, password, trace = noTrace) {
      if (!mayBindWith(password)) return { kind: 'invalid', why: 'empty password (an unauthenticated bind is never sent)' };
      if (login === '') return { kind: 'invalid', why: 'empty login' };
      try {
        return await withService(trace, async (c, url) => {
          const entries = await findUser(c, login, trace);
          if (entries.length === 0) return { kind: 'invalid', why: `no account matches login "${login}"` };
          if (entries.length > 1) return { kind: 'invalid', why: `login "${login}" matches more than one account` };
          const e = entries[0]!;
          if (map.checksAccountControl && accountDisabled(values(e, 'userAccountControl')[0])) return { kind: 'invalid', why: `account ${e.dn} is disabled (userAccountControl bit 2)` };
          // The password is checked by the directory itself: a bind as the user, on its own connection.
          const user = await open(url, trace);
          try {
            await user.bind(e.dn, password);
            trace(`${url}: bound as ${e.dn} with the given password`);
          } catch (err) {
            if (err instanceof InvalidCredentialsError) return { kind: 'invalid', why: `wrong password for ${e.dn}` };
            if (err instanceof ResultCodeError) return { kind: 'invalid', why: `bind as ${e.dn} refused (${describeError(err)})` };
            throw new ServerUnavailable(`${url}: bind as ${e.dn} failed (${describeError(err)})`);
          } finally {
            await user.unbind().catch(() => undefined);
          }
          const { groups, origins } = await userGroups(c, e, trace);
          const addresses = entryAddresses(map, Object.fromEntries(map.addressAttributes.map((a) => [a, values(e, a)])));
          return { kind: 'ok', identity: { login, dn: e.dn, addresses, groups, groupOrigins: origins } };
        });
      } catch (e) {
        if (e instanceof ResultCodeError) return { kind: 'unavailable', why: describeError(e) };
        return { kind: 'unavailable', why: e instanceof Error ? e.message : String(e) };
      }
    },
    async entryAttributes(address, attributes, trace = noTrace) {
      const r = await byAddress(address, attributes, trace);
      if (r.kind === 'several' || r.kind === 'not-found') {
        trace(`search ${cfg.baseDn} ${r.filter}: ${r.kind === 'several' ? 'more than one object holds it' : 'nothing'}`);
        return { kind: 'not-found' };
      }
      if (r.kind === 'unavailable') return { kind: 'unavailable', why: r.why };
      trace(`search ${cfg.baseDn} ${r.filter}: found ${r.dn}`);
      return { kind: 'found', dn: r.dn, attributes: r.attributes };
    },
    async memberships(address, trace = noTrace): Promise<MembershipAnswer> {
      const r = await byAddress(address, groupReading, trace, async (c, entry) => (await userGroups(c, entry, trace)).groups);
      if (r.kind === 'unavailable') return { kind: 'unavailable', why: r.why };
      // Two objects holding one address is a directory error: which one's groups would be a guess.
      if (r.kind !== 'found') {
        trace(`search ${cfg.baseDn} ${r.filter}: ${r.kind === 'several' ? 'more than one object holds it' : 'nothing'}`);
        return { kind: 'not-found' };
      }
      return { kind: 'found', dn: r.dn, groups: r.more ?? [] };
    },
    async hasAddress(address, trace = noTrace) {
      const restriction = map.requireSenderAuthenticationAttribute;
      const r = await byAddress(address, restriction ? [restriction] : [], trace);
      if (r.kind === 'unavailable') return 'unavailable';
      if (r.kind === 'not-found') {
        trace(`search ${cfg.baseDn} ${r.filter}: nothing`);
        return 'not-found';
      }
      // Two objects holding one address is a directory error; at least one holds it.
      const restricted = r.kind === 'found' && restriction !== null && requiresAuthenticatedSender(map, r.attributes);
      trace(`search ${cfg.baseDn} ${r.filter}: found${r.kind === 'found' ? ` ${r.dn}` : ''}${restricted ? `, ${restriction} TRUE (authenticated senders only)` : ''}`);
      return restricted ? 'found-auth-required' : 'found';
    },
  };
}
