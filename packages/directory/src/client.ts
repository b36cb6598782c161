// The directory's I/O shell: LDAP over ldapts, servers tried in order (failover on a
// connection error or timeout), the service account for searches on one connection kept open
// between questions (idleTimeout), the user's own DN and password for AUTH on a connection of
// its own. The rules (filters, escaping, addresses, disabled accounts) are @mailgw/policy's;
// this file only asks and reports.
import type { DirectoryConfig } from '@mailgw/config';
import {
  accountDisabled,
  addressFilter,
  DELIVERY_RESTRICTION_KEYS,
  deliveryRestrictionsOf,
  directorySchemaMap,
  maxReceiveSizeOf,
  maxSendSizeOf,
  recipientLimitsOf,
  dnName,
  delegatesFilter,
  entryAddresses,
  groupOfNamesFilter,
  loginFilter,
  mayBindWith,
  normaliseDn,
  parseDacl,
  parseSid,
  formatSid,
  primaryGroupLookup,
  sendAsDecision,
  type SendAsAnswer,
  recipientLookupAttributes,
  requiresAuthenticatedSender,
  type DirectoryAnswer,
  type RecipientEntry,
  type EntryAttributes,
  type MembershipAnswer,
  type DirectoryIdentity,
  type DirectoryLogon,
  type DirectorySchemaMap,
} from '@mailgw/policy';
import net, { isIP } from 'node:net';
import tls from 'node:tls';
import { BerWriter, Client, Control, EqualityFilter, InvalidCredentialsError, ResultCodeError, type Entry, type SearchOptions, type SearchResult } from 'ldapts';

/** A failure of one server (connection, TLS, timeout, service bind): the next URL is tried. */
class ServerUnavailable extends Error {}

/** The kept connection closed under a question (server restart, its idle limit): asked again on a new one. */
class ConnectionLost extends Error {}

/**
 * A connection to a server other than the first is used for at most this long, then the first
 * is tried again: after a failover, mail goes back to the preferred server once it is back
 * (as a new connection per question did), not only when the fallback fails or idles out.
 */
const FAILBACK_AFTER_MS = 60_000;

/** The service account's connection: bound once, searched by every question while it lives. */
interface Connection {
  readonly url: string;
  /** Its place in `url` (0: the preferred server). */
  readonly index: number;
  readonly opened: number;
  /** A search on this connection; ConnectionLost if it closed before or during it (never a silent reconnect: ldapts would reconnect unbound, and after StartTLS in clear). */
  search(baseDn: string, options: SearchOptions, controls?: Control[]): Promise<SearchResult>;
  alive(): boolean;
  /** true while asked something: its sockets keep the process alive; false when idle: they do not. */
  ref(on: boolean): void;
  /** Closes it; `why` is what the metrics are told (default: done with it). */
  close(why?: 'idle' | 'lost' | 'done'): Promise<void>;
}

/** Each step a lookup took, in words (for `mailgw directory test` and debug logs). */
export type Trace = (line: string) => void;

export interface DirectoryClient {
  /** AUTH: finds the account by login, refuses a disabled one, binds as it with the password, walks its groups. */
  logon(login: string, password: string, trace?: Trace): Promise<DirectoryLogon>;
  /** Is any object holding this address? (not cached here: see cache.ts) */
  hasAddress(address: string, trace?: Trace): Promise<DirectoryAnswer>;
  /** hasAddress with the object's delivery restrictions (AcceptMessagesOnlyFrom…), read in the same search. */
  recipientEntry(address: string, trace?: Trace): Promise<RecipientEntry>;
  /** Whether a user with these SIDs has Send As on the object holding an address (its DACL, read with the service account). */
  sendAs(address: string, sids: readonly string[], trace?: Trace): Promise<SendAsAnswer>;
  /** The named attributes of the object holding this address (a sender's, for disclaimer tokens). */
  entryAttributes(address: string, attributes: readonly string[], trace?: Trace): Promise<EntryAttributes>;
  /** The object holding this address and every group it is in, walked as at AUTH (transport rules' group conditions). */
  memberships(address: string, trace?: Trace): Promise<MembershipAnswer>;
  /** The objects whose Send on Behalf list (sendOnBehalfAttribute) names one of these DNs (a user's and its groups'), with their addresses; at most `limit`. */
  delegatingObjects(dns: readonly string[], limit: number, trace?: Trace): Promise<{ kind: 'found'; objects: Array<{ dn: string; addresses: string[] }>; more: boolean } | { kind: 'unavailable'; why: string }>;
  /** What the directory holds for a login, without a password (the service account's view). */
  describe(login: string, trace?: Trace): Promise<{ kind: 'ok'; identity: DirectoryIdentity; disabled: boolean } | { kind: 'invalid' | 'unavailable'; why: string }>;
  readonly map: DirectorySchemaMap;
  /** Closes the kept connection (a process that ends; it would not hold the process open anyway). */
  close(): Promise<void>;
}

const values = (e: Entry, name: string): string[] => {
  const k = Object.keys(e).find((x) => x.toLowerCase() === name.toLowerCase());
  if (!k) return [];
  const v = e[k]!;
  return (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
};

/** Every value of a binary attribute (tokenGroups), asked for with explicitBufferAttributes. */
const allBuffers = (e: Entry, name: string): Buffer[] => {
  const k = Object.keys(e).find((x) => x.toLowerCase() === name.toLowerCase());
  const v = k === undefined ? [] : e[k]!;
  return (Array.isArray(v) ? v : [v]).flatMap((x) => (Buffer.isBuffer(x) ? [x] : typeof x === 'string' ? [Buffer.from(x, 'binary')] : []));
};

/**
 * LDAP_SERVER_SD_FLAGS_OID (MS-ADTS 3.1.1.3.4.1.11): nTSecurityDescriptor with the DACL only
 * (flags 4), which a service account may read; without it AD asks for the SACL too, which needs
 * a privilege, and returns nothing.
 */
class DaclOnlyControl extends Control {
  constructor() {
    super('1.2.840.113556.1.4.801', { critical: false });
  }
  protected override writeControl(writer: BerWriter): void {
    // controlValue: an OCTET STRING holding SEQUENCE { INTEGER flags }.
    const value = new BerWriter();
    value.startSequence();
    value.writeInt(4);
    value.endSequence();
    writer.writeBuffer(value.buffer, 0x04);
  }
}

/** The raw bytes of a binary attribute (objectSid), asked for with explicitBufferAttributes. */
const firstBuffer = (e: Entry, name: string): Buffer | undefined => {
  const k = Object.keys(e).find((x) => x.toLowerCase() === name.toLowerCase());
  const v = k === undefined ? undefined : e[k];
  const first = Array.isArray(v) ? v[0] : v;
  return Buffer.isBuffer(first) ? first : typeof first === 'string' ? Buffer.from(first, 'binary') : undefined;
};

const describeError = (e: unknown): string => (e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e));

/** What happened to the service account's connections (metrics count them). */
export type ConnectionEvent =
  | { readonly type: 'connected'; readonly server: string }
  | { readonly type: 'server-failed'; readonly server: string; readonly why: string }
  /** A connection ended: idle (idleTimeout), lost (the server or the network closed it, or it stopped answering), or closed by mailgw (a question done with idleTimeout 0, shutdown). */
  | { readonly type: 'closed'; readonly server: string; readonly why: 'idle' | 'lost' | 'done' };

export interface DirectoryClientOptions {
  /** How long a connection to a server other than the first is used before the first is tried again (tests shorten it). */
  readonly failbackAfterMs?: number;
  readonly onConnection?: (e: ConnectionEvent) => void;
}

export function createDirectoryClient(cfg: DirectoryConfig, options: DirectoryClientOptions = {}): DirectoryClient {
  const failbackAfterMs = options.failbackAfterMs ?? FAILBACK_AFTER_MS;
  const tell = options.onConnection ?? (() => undefined);
  const map = directorySchemaMap(cfg);
  const tlsOptions = cfg.caPem ? { ca: cfg.caPem } : {};

  /**
   * A connected, TLS-upgraded (startTLS) client to `url`, or ServerUnavailable; `sockets` gets
   * every socket ldapts makes for it (the TCP one, then the TLS one over it), so that a kept
   * connection can tell it closed and keep the process alive only while it is asked something.
   */
  async function open(url: string, trace: Trace, sockets: net.Socket[] = [], onSocket: (s: net.Socket) => void = () => undefined): Promise<Client> {
    // ldapts' startTLS writes the socket into the options it is given: a fresh object each time.
    // The host name is what the certificate is checked against (Node would check "localhost"
    // for an upgraded socket); SNI only for names, not addresses.
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    const perServer = { ...tlsOptions, host, ...(isIP(host) ? {} : { servername: host }) };
    const made = <S extends net.Socket>(socket: S): S => {
      // Questions share the kept connection and each is one small write waited for: never held
      // back by Nagle behind an earlier one the server has not acknowledged yet.
      socket.setNoDelay(true);
      sockets.push(socket);
      onSocket(socket);
      return socket;
    };
    // ldapts treats ldap:// with any tlsOptions as TLS from the first byte: give them to ldaps:// only.
    const client = new Client({
      url,
      timeout: cfg.timeout,
      connectTimeout: cfg.timeout,
      ...(url.startsWith('ldaps://') ? { tlsOptions: perServer } : {}),
      strictDN: false,
      createConnection: ((...a: Parameters<typeof net.connect>) => made(net.connect(...a))) as typeof net.connect,
      createSecureConnection: ((...a: Parameters<typeof tls.connect>) => made(tls.connect(...a))) as typeof tls.connect,
    });
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

  /**
   * What every kept connection needs around ldapts' client: whether it is still open, its
   * sockets holding the process open only while it is used, and operations that fail with
   * ConnectionLost when it closed before or under them (ldapts would reconnect on its own:
   * unbound, and after StartTLS in clear: a search would run anonymously, a bind send a password
   * in clear).
   */
  function watch(client: Client, url: string, sockets: readonly net.Socket[], closed: (as: 'idle' | 'lost' | 'done') => void) {
    let closedWhy: string | null = null;
    let lose: (e: Error) => void = () => undefined;
    const lost = new Promise<never>((_, reject) => (lose = reject));
    lost.catch(() => undefined);
    const gone = (why: string, as: 'idle' | 'lost' | 'done') => {
      if (closedWhy !== null) return;
      closedWhy = why;
      closed(as);
      lose(new ConnectionLost(`${url}: the connection closed (${why})`));
    };
    const track = (s: net.Socket) => s.once('close', () => gone('closed by the server or the network', 'lost'));
    for (const s of sockets) track(s);
    return {
      /** Watches a socket ldapts made after this (its first connection, when nothing was sent before). */
      track,
      // Not connected yet (nothing sent on it so far) counts as open: the first operation connects.
      alive: () => closedWhy === null && sockets.every((s) => !s.destroyed),
      ref(on: boolean) {
        for (const s of sockets) {
          if (on) s.ref();
          else s.unref();
        }
      },
      async guard<T>(op: () => Promise<T>): Promise<T> {
        if (closedWhy !== null) throw new ConnectionLost(`${url}: the connection closed (${closedWhy})`);
        return Promise.race([op(), lost]);
      },
      async close(why: 'idle' | 'lost' | 'done' = 'done') {
        gone(why === 'idle' ? 'idle for idleTimeout' : why === 'lost' ? 'it failed a question' : 'closed by mailgw', why);
        await client.unbind().catch(() => undefined);
      },
    };
  }

  /** A new connection to cfg.url[index], bound as the service account, or ServerUnavailable. */
  async function connect(index: number, trace: Trace): Promise<Connection> {
    const url = cfg.url[index]!;
    const sockets: net.Socket[] = [];
    const client = await open(url, trace, sockets);
    try {
      await client.bind(cfg.bindDn, cfg.bindPassword);
    } catch (e) {
      await client.unbind().catch(() => undefined);
      // A refused service bind is a configuration problem, not an answer about the user.
      throw new ServerUnavailable(`${url}: bind as ${cfg.bindDn} failed (${describeError(e)})`);
    }
    trace(`${url}: bound as ${cfg.bindDn}`);
    tell({ type: 'connected', server: url });
    const w = watch(client, url, sockets, (why) => tell({ type: 'closed', server: url, why }));
    return { url, index, opened: Date.now(), alive: w.alive, ref: w.ref, close: w.close, search: (baseDn, options, controls) => w.guard(() => client.search(baseDn, options, controls)) };
  }

  /**
   * A connection AUTH checks passwords on, kept per server like the service account's: each
   * check is a bind as the user, one at a time (RFC 4511 4.2.1: nothing else may be in flight
   * during a bind); nothing is ever searched on it, so whom it is bound as does not matter.
   */
  interface PasswordConnection {
    alive(): boolean;
    ref(on: boolean): void;
    close(why?: 'idle' | 'lost' | 'done'): Promise<void>;
    /** Binds as `dn` with `password`: resolves when the directory accepts it; ldapts' errors otherwise, ConnectionLost if it closed. */
    check(dn: string, password: string): Promise<void>;
  }

  async function passwordConnection(url: string, trace: Trace): Promise<PasswordConnection> {
    const sockets: net.Socket[] = [];
    let w: ReturnType<typeof watch> | null = null;
    // Without StartTLS nothing is sent before the first check: its socket is watched when made.
    const client = await open(url, trace, sockets, (socket) => w?.track(socket));
    w = watch(client, url, sockets, () => undefined);
    let tail: Promise<unknown> = Promise.resolve();
    const watched = w;
    return {
      alive: watched.alive,
      ref: watched.ref,
      close: watched.close,
      check(dn, password) {
        const run = tail.then(() => watched.guard(() => client.bind(dn, password)));
        tail = run.catch(() => undefined);
        return run;
      },
    };
  }

  /**
   * A kept connection (idleTimeout > 0), shared by concurrent questions (LDAP answers each
   * message by its id): while used, its sockets hold the process open; idle they do not, and
   * after idleTimeout it is closed. `current`/`forget`: whether it is still the one its slot
   * holds, and take it out of the slot.
   */
  interface Kept<C extends { ref(on: boolean): void; close(why?: 'idle' | 'lost' | 'done'): Promise<void> }> {
    readonly c: C;
    busy: number;
    idle: NodeJS.Timeout | null;
    /** Why it was dropped (closed when its last user is done). */
    why?: 'lost' | 'done';
    readonly current: () => boolean;
    readonly forget: () => void;
  }
  type AnyKept = Kept<{ ref(on: boolean): void; close(why?: 'idle' | 'lost' | 'done'): Promise<void> }>;
  /** The service account's connection. */
  let kept: Kept<Connection> | null = null;
  /** One connect at a time to the first server for the kept connection: a burst of questions after a loss opens one, not one each. */
  let connecting: Promise<Connection> | null = null;
  const keepService = (c: Connection): Kept<Connection> => {
    const k: Kept<Connection> = { c, busy: 0, idle: null, current: () => kept === k, forget: () => void (kept === k && (kept = null)) };
    kept = k;
    return k;
  };

  function acquire(k: AnyKept): void {
    k.busy++;
    if (k.idle) clearTimeout(k.idle);
    k.idle = null;
    k.c.ref(true);
  }

  function release(k: AnyKept): void {
    k.busy--;
    if (k.busy > 0) return;
    // Dropped while in use: the last user out closes it.
    if (!k.current()) {
      void k.c.close(k.why);
      return;
    }
    k.c.ref(false);
    k.idle = setTimeout(() => {
      if (k.current() && k.busy === 0) {
        k.forget();
        void k.c.close('idle');
      }
    }, cfg.idleTimeout);
    k.idle.unref();
  }

  /** Gives up a kept connection: it failed (`lost`), or a fallback's time is up (`done`). */
  function drop(k: AnyKept, why: 'lost' | 'done' = 'lost'): void {
    k.forget();
    if (k.idle) clearTimeout(k.idle);
    k.idle = null;
    k.why = why;
    if (k.busy === 0) void k.c.close(why);
  }

  /** The kept password connections, one per server (the server that found the account checks its password). */
  const checkers = new Map<string, Kept<PasswordConnection>>();

  async function checker(url: string, trace: Trace): Promise<Kept<PasswordConnection>> {
    const held = checkers.get(url);
    if (held?.c.alive()) return held;
    if (held) drop(held);
    const c = await passwordConnection(url, trace);
    // Another check may have opened one meanwhile: keep the first, close this one.
    const other = checkers.get(url);
    if (other?.c.alive()) {
      void c.close();
      return other;
    }
    const k: Kept<PasswordConnection> = { c, busy: 0, idle: null, current: () => checkers.get(url) === k, forget: () => void (checkers.get(url) === k && checkers.delete(url)) };
    checkers.set(url, k);
    return k;
  }

  /**
   * Checks a user's password by a bind as its DN on `url`: resolves when the directory takes it;
   * the directory's refusal (an LDAP result) or a failure otherwise. On a kept connection that
   * closed under the check, checked once more on a new one.
   */
  async function checkPassword(url: string, dn: string, password: string, trace: Trace): Promise<void> {
    if (cfg.idleTimeout === 0) {
      const p = await passwordConnection(url, trace);
      try {
        return await p.check(dn, password);
      } finally {
        await p.close();
      }
    }
    for (let attempt = 0; ; attempt++) {
      const k = await checker(url, trace);
      acquire(k);
      try {
        return await k.c.check(dn, password);
      } catch (e) {
        if (e instanceof ResultCodeError || attempt > 0) throw e;
        drop(k);
        trace(`${e instanceof ConnectionLost ? e.message : `${url}: ${describeError(e)}`}; checking the password again on a new connection`);
      } finally {
        release(k);
      }
    }
  }

  /** The kept connection if it is alive and, on a fallback server, younger than failbackAfterMs. */
  function reusable(): Kept<Connection> | null {
    const k = kept;
    if (!k) return null;
    if (k.c.alive() && (k.c.index === 0 || Date.now() - k.c.opened < failbackAfterMs)) return k;
    drop(k, k.c.alive() ? 'done' : 'lost');
    return null;
  }

  /** A new bound connection to the first server from `from` on that answers; each failure goes to `failures` and the trace. */
  async function walk(from: number, trace: Trace, failures: string[]): Promise<Connection> {
    for (let i = from; i < cfg.url.length; i++) {
      try {
        return await connect(i, trace);
      } catch (e) {
        const why = e instanceof ServerUnavailable ? e.message : `${cfg.url[i]}: ${describeError(e)}`;
        failures.push(why);
        tell({ type: 'server-failed', server: cfg.url[i]!, why });
        trace(`${why}; trying the next server`);
      }
    }
    throw new ServerUnavailable(failures.join('; ') || 'no directory URL');
  }

  /** walk(), shared by concurrent questions when the connection is to be kept (the first one's trace says what happened). */
  async function connectFrom(from: number, trace: Trace, failures: string[]): Promise<Connection> {
    if (cfg.idleTimeout === 0 || from > 0) return walk(from, trace, failures);
    if (!connecting) {
      const opening = walk(0, trace, []).then((c) => {
        if (kept) drop(kept);
        keepService(c);
        return c;
      });
      connecting = opening;
      void opening.catch(() => undefined).finally(() => {
        if (connecting === opening) connecting = null;
      });
    } else trace('waiting for the connection another question is opening');
    try {
      return await connecting;
    } catch (e) {
      failures.push(e instanceof Error ? e.message : String(e));
      throw e;
    }
  }

  /**
   * Runs `work` as the service account: on the kept connection when there is one (asked again
   * on a new one if it closed under the question), else on a new connection to the first server
   * that answers (failover: a server that cannot connect, bind or answer gives way to the next).
   */
  async function withService<T>(trace: Trace, work: (c: Connection) => Promise<T>): Promise<T> {
    const failures: string[] = [];
    const held = cfg.idleTimeout > 0 ? reusable() : null;
    if (held) {
      acquire(held);
      try {
        trace(`${held.c.url}: the open connection (bound as ${cfg.bindDn})`);
        return await work(held.c);
      } catch (e) {
        // An LDAP result (no such object, invalid credentials of the user) is the server's answer.
        if (e instanceof ResultCodeError) throw e;
        drop(held);
        trace(`${e instanceof ConnectionLost ? e.message : `${held.c.url}: ${describeError(e)}`}; opening a new connection`);
      } finally {
        release(held);
      }
    }
    for (let from = 0; from < cfg.url.length; ) {
      let c: Connection;
      try {
        c = await connectFrom(from, trace, failures);
      } catch {
        break;
      }
      // From the first server, connectFrom made it the kept one; a fallback one is kept when nothing else is.
      if (cfg.idleTimeout > 0 && kept === null) keepService(c);
      const k = kept?.c === c ? kept : null;
      if (k) acquire(k);
      let failed = false;
      try {
        return await work(c);
      } catch (e) {
        if (e instanceof ResultCodeError) throw e;
        failed = true;
        if (k) drop(k);
        const why = e instanceof ServerUnavailable || e instanceof ConnectionLost ? e.message : `${c.url}: ${describeError(e)}`;
        failures.push(why);
        tell({ type: 'server-failed', server: c.url, why });
        trace(`${why}; trying the next server`);
        from = c.index + 1;
      } finally {
        if (k) release(k);
        else await c.close(failed ? 'lost' : 'done');
      }
    }
    throw new ServerUnavailable(failures.join('; ') || 'no directory URL');
  }

  /** What userGroups reads off an entry: its groupAttribute, and on AD what names its primary group. */
  const groupReading = [...(map.groupMembership === 'memberOf' ? [map.groupAttribute] : []), ...(map.primaryGroup ? ['objectSid', 'primaryGroupID'] : [])];
  // What a recipient lookup reads besides the address: fixed by the configuration.
  const lookupAttributes = recipientLookupAttributes(map);

  /** The user's MaxSendSize and RecipientLimits, where the directory gives them (a key only for a limit). */
  function sendLimit(e: Entry): { maxSendSize?: number; recipientLimits?: number } {
    const attrs = Object.fromEntries([map.maxSendSizeAttribute, map.recipientLimitsAttribute].filter((n): n is string => n !== null).map((n) => [n, values(e, n)]));
    const size = maxSendSizeOf(map, attrs);
    const recipients = recipientLimitsOf(map, attrs);
    return { ...(size !== null ? { maxSendSize: size } : {}), ...(recipients !== null ? { recipientLimits: recipients } : {}) };
  }

  async function findUser(c: Connection, login: string, trace: Trace): Promise<Entry[]> {
    const filter = loginFilter(map, login);
    const attributes = [...map.addressAttributes, ...groupReading, ...(map.checksAccountControl ? ['userAccountControl'] : []), ...(map.maxSendSizeAttribute ? [map.maxSendSizeAttribute] : []), ...(map.recipientLimitsAttribute ? [map.recipientLimitsAttribute] : [])];
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
  async function groupsListing(c: Connection, dn: string, trace: Trace): Promise<string[]> {
    const filter = groupOfNamesFilter(dn);
    const r = await c.search(cfg.baseDn, { scope: 'sub', filter, attributes: ['1.1'] });
    const found = r.searchEntries.map((e) => e.dn);
    trace(`search ${cfg.baseDn} ${filter}: ${found.length === 0 ? 'no group' : found.join('; ')}`);
    return found;
  }

  /** groupMembership memberOf: the groupAttribute of the entry `dn` (a group's own groups). */
  async function memberOfOf(c: Connection, dn: string): Promise<string[]> {
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
  async function primaryGroup(c: Connection, user: Entry, trace: Trace): Promise<{ dn: string; via: string } | null> {
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
   * The SIDs Send As is judged by (sendAsPermissions): the user's objectSid, every security
   * group it is in as AD computes them (tokenGroups, nested and primary groups included; read
   * with a base search, the only way AD returns it), and Everyone and Authenticated Users, which
   * a logged-on user always is. Unreadable: none, so no Send As (the logon still works).
   */
  async function userSids(c: Connection, dn: string, trace: Trace): Promise<string[] | undefined> {
    try {
      const r = await c.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: ['objectSid', 'tokenGroups'], explicitBufferAttributes: ['objectSid', 'tokenGroups'] });
      const e = r.searchEntries[0];
      const own = e ? firstBuffer(e, 'objectSid') : undefined;
      const parsed = [...(own ? [own] : []), ...(e ? allBuffers(e, 'tokenGroups') : [])].map((b) => parseSid(b));
      const sids = parsed.flatMap((p) => (p.sid ? [formatSid(p.sid)] : []));
      if (!own) {
        trace(`${dn}: no objectSid: no Send As`);
        return undefined;
      }
      trace(`${dn}: objectSid ${sids[0]}, tokenGroups ${sids.length - 1}`);
      return [...sids, 'S-1-1-0', 'S-1-5-11'];
    } catch (err) {
      if (err instanceof ConnectionLost || err instanceof ServerUnavailable) throw err;
      trace(`${dn}: tokenGroups could not be read (${describeError(err)}): no Send As`);
      return undefined;
    }
  }

  /**
   * Every group of `user`, nested ones included, with how each was found: the direct groups
   * (memberOf of the user, or the groupOfNames listing it, plus AD's primary group), then level
   * by level the groups those are in, up to maxGroupDepth levels; a group seen once is not
   * followed again (cycles end).
   */
  async function userGroups(c: Connection, user: Entry, trace: Trace): Promise<{ groups: string[]; origins: Record<string, string> }> {
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
  /**
   * The object holding an address: its `attributes` as text, and what `more` makes of the entry
   * (read on the same connection). `binary`: attributes also asked for, as bytes (for `more`);
   * `controls` go with the search.
   */
  async function byAddress<T = undefined>(
    address: string,
    attributes: readonly string[],
    trace: Trace,
    more?: (c: Connection, entry: Entry) => Promise<T>,
    raw: { readonly binary?: readonly string[]; readonly controls?: Control[] } = {},
  ): Promise<((EntryAttributes & { readonly more?: T }) | { readonly kind: 'several' }) & { readonly filter: string }> {
    const filter = addressFilter(map, address);
    const asked = [...attributes, ...(raw.binary ?? [])];
    try {
      return await withService(trace, async (c) => {
        const r = await c.search(cfg.baseDn, { scope: 'sub', filter, attributes: asked.length > 0 ? asked : ['1.1'], sizeLimit: 1, explicitBufferAttributes: ['objectSid', ...(raw.binary ?? [])] }, raw.controls).catch((e: unknown) => {
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

  async function recipientEntry(address: string, trace: Trace = noTrace): Promise<RecipientEntry> {
    const r = await byAddress(address, lookupAttributes, trace);
    if (r.kind === 'unavailable') return { answer: 'unavailable', restrictions: null };
    if (r.kind === 'not-found') {
      trace(`search ${cfg.baseDn} ${r.filter}: nothing`);
      return { answer: 'not-found', restrictions: null };
    }
    // Two objects holding one address is a directory error; at least one holds it, whose
    // restrictions would be a guess.
    const restricted = r.kind === 'found' && requiresAuthenticatedSender(map, r.attributes);
    const restrictions = r.kind === 'found' ? deliveryRestrictionsOf(map, r.attributes) : null;
    const maxReceiveSize = r.kind === 'found' ? maxReceiveSizeOf(map, r.attributes) : null;
    const lists = restrictions ? DELIVERY_RESTRICTION_KEYS.filter((k) => restrictions[k].length > 0).map((k) => `${map.deliveryRestrictions[k]} (${k}): ${restrictions[k].join('; ')}`) : [];
    trace(`search ${cfg.baseDn} ${r.filter}: found${r.kind === 'found' ? ` ${r.dn}` : ''}${restricted ? `, ${map.requireSenderAuthenticationAttribute} TRUE (authenticated senders only)` : ''}${maxReceiveSize !== null ? `, ${map.maxReceiveSizeAttribute} ${maxReceiveSize / 1024} KB (largest message it takes)` : ''}${lists.length > 0 ? `, delivery restrictions ${lists.join(', ')}` : ''}`);
    return { answer: restricted ? 'found-auth-required' : 'found', restrictions, ...(maxReceiveSize !== null ? { maxReceiveSize } : {}) };
  }

  async function describe(login: string, trace: Trace = noTrace): ReturnType<DirectoryClient['describe']> {
    try {
      return await withService(trace, async (c) => {
        const entries = await findUser(c, login, trace);
        if (entries.length !== 1) return { kind: 'invalid' as const, why: entries.length === 0 ? `no account matches login "${login}"` : `login "${login}" matches more than one account` };
        const e = entries[0]!;
        const { groups, origins } = await userGroups(c, e, trace);
        const sids = map.sendAsPermissions ? await userSids(c, e.dn, trace) : undefined;
        const identity: DirectoryIdentity = { login, dn: e.dn, addresses: entryAddresses(map, Object.fromEntries(map.addressAttributes.map((a) => [a, values(e, a)]))), groups, groupOrigins: origins, ...sendLimit(e), ...(sids ? { sids } : {}) };
        return { kind: 'ok' as const, identity, disabled: map.checksAccountControl && accountDisabled(values(e, 'userAccountControl')[0]) };
      });
    } catch (e) {
      return { kind: 'unavailable', why: e instanceof Error ? e.message : String(e) };
    }
  }

  return {
    map,
    describe,
    async close() {
      const all: AnyKept[] = [...(kept ? [kept] : []), ...checkers.values()];
      kept = null;
      checkers.clear();
      for (const k of all) {
        if (k.idle) clearTimeout(k.idle);
        await k.c.close('done');
      }
    },
    async logon(login, password, trace = noTrace) {
      if (!mayBindWith(password)) return { kind: 'invalid', why: 'empty password (an unauthenticated bind is never sent)' };
      if (login === '') return { kind: 'invalid', why: 'empty login' };
      try {
        return await withService(trace, async (c) => {
          const url = c.url;
          const entries = await findUser(c, login, trace);
          if (entries.length === 0) return { kind: 'invalid', why: `no account matches login "${login}"` };
          if (entries.length > 1) return { kind: 'invalid', why: `login "${login}" matches more than one account` };
          const e = entries[0]!;
          if (map.checksAccountControl && accountDisabled(values(e, 'userAccountControl')[0])) return { kind: 'invalid', why: `account ${e.dn} is disabled (userAccountControl bit 2)` };
          // The password is checked by the directory itself: a bind as the user, on a connection of its own.
          try {
            await checkPassword(url, e.dn, password, trace);
            trace(`${url}: bound as ${e.dn} with the given password`);
          } catch (err) {
            if (err instanceof InvalidCredentialsError) return { kind: 'invalid', why: `wrong password for ${e.dn}` };
            if (err instanceof ResultCodeError) return { kind: 'invalid', why: `bind as ${e.dn} refused (${describeError(err)})` };
            throw new ServerUnavailable(`${url}: bind as ${e.dn} failed (${err instanceof ServerUnavailable ? err.message : describeError(err)})`);
          }
          const { groups, origins } = await userGroups(c, e, trace);
          const addresses = entryAddresses(map, Object.fromEntries(map.addressAttributes.map((a) => [a, values(e, a)])));
          const sids = map.sendAsPermissions ? await userSids(c, e.dn, trace) : undefined;
          return { kind: 'ok', identity: { login, dn: e.dn, addresses, groups, groupOrigins: origins, ...sendLimit(e), ...(sids ? { sids } : {}) } };
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
    async delegatingObjects(dns, limit, trace = noTrace) {
      const attribute = map.sendOnBehalfAttribute;
      if (attribute === null || dns.length === 0) return { kind: 'found', objects: [], more: false };
      const filter = delegatesFilter(attribute, dns);
      try {
        return await withService(trace, async (c) => {
          // One more than asked for tells whether there are more; a size limit past it is "more" too.
          const r = await c.search(cfg.baseDn, { scope: 'sub', filter, attributes: [...map.addressAttributes], sizeLimit: limit + 1 }).catch((e: unknown) => {
            if (e instanceof ResultCodeError && e.code === 4) return null;
            throw e;
          });
          const entries = r?.searchEntries ?? [];
          trace(`search ${cfg.baseDn} ${filter}: ${r === null ? `more than ${limit}` : `${entries.length} found`}`);
          const objects = entries.slice(0, limit).map((e) => ({ dn: e.dn, addresses: entryAddresses(map, Object.fromEntries(map.addressAttributes.map((a) => [a, values(e, a)]))) }));
          return { kind: 'found' as const, objects, more: r === null || entries.length > limit };
        });
      } catch (e) {
        return { kind: 'unavailable' as const, why: describeError(e) };
      }
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
      return (await recipientEntry(address, trace)).answer;
    },
    recipientEntry,
    async sendAs(address, sids, trace = noTrace): Promise<SendAsAnswer> {
      const r = await byAddress(address.toLowerCase(), [], trace, async (_c, e) => firstBuffer(e, 'nTSecurityDescriptor'), { binary: ['nTSecurityDescriptor'], controls: [new DaclOnlyControl()] });
      if (r.kind === 'unavailable') return { kind: 'unavailable', why: r.why };
      if (r.kind !== 'found') return { kind: 'not-granted', dn: null, why: r.kind === 'several' ? `more than one directory object holds ${address}` : `no directory object holds ${address}` };
      if (!r.more) return { kind: 'not-granted', dn: r.dn, why: 'its nTSecurityDescriptor could not be read with the service account' };
      const dacl = parseDacl(r.more);
      if ('error' in dacl) return { kind: 'not-granted', dn: r.dn, why: `its nTSecurityDescriptor does not parse: ${dacl.error}` };
      const v = sendAsDecision(dacl.aces, sids);
      trace(`${r.dn}: ${dacl.aces.length} ACEs: ${v.why}`);
      return { kind: v.granted ? 'granted' : 'not-granted', dn: r.dn, why: v.why };
    },
  };
}
