// Routes ("routes:" in gateway.yaml) from text to the next hops the worker delivers to. The one
// place a route target is understood: the schema parses `to` with parseRouteTo (so `mailgw
// check` reports a bad URL at routes[i].to), and buildConfig compiles the parsed routes with
// compileRoutes (maildir paths anchored at gateway.yaml's directory, auth passwords resolved).
// `check`, `start`, `listen`, `worker` and `queue` all get their routes from here; the worker
// only consumes CompiledRoute values and never parses or throws on a route.
import path from 'node:path';
import { matchDomain, type DomainPattern } from './domain.js';
import type { ConfigIssue } from './issues.js';
import type { TlsAuthLevel } from './send-connector-schema.js';

/** `to:` as parsed by the schema: the target's shape, before paths and secrets are resolved. */
export type ParsedRouteTo =
  | { readonly kind: 'maildir'; readonly path: string }
  | {
      readonly kind: 'smtp';
      readonly scheme: 'smtp' | 'smtps' | 'lmtp';
      readonly host: string;
      readonly port: number;
      /** Credentials written in the URL (smtp://user:pass@host). */
      readonly userinfo: { readonly user: string; readonly pass: string } | null;
    }
  | { readonly kind: 'mx' };

const DEFAULT_PORTS = { smtp: 25, smtps: 465, lmtp: 24 } as const;
const TO_FORMS = 'maildir:<path>, smtp://host[:port], smtps://host[:port], lmtp://host[:port] or mx';

/** Parses a route's `to:`; the error is a message for `routes[i].to`. */
export function parseRouteTo(text: string): { ok: true; value: ParsedRouteTo } | { ok: false; error: string } {
  const to = text.trim();
  if (to === 'mx') return { ok: true, value: { kind: 'mx' } };
  if (to.startsWith('maildir:')) {
    const p = to.slice('maildir:'.length);
    if (p.trim() === '') return { ok: false, error: `"${text}": give a directory after maildir: (relative to gateway.yaml)` };
    return { ok: true, value: { kind: 'maildir', path: p } };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(to)?.[1]?.toLowerCase();
  if (scheme === undefined || !(scheme in DEFAULT_PORTS)) return { ok: false, error: `"${text}" must be ${TO_FORMS}` };
  let url: URL;
  try {
    url = new URL(to);
  } catch {
    return { ok: false, error: `"${text}" is not a valid ${scheme}:// URL; write ${scheme}://host[:port]` };
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) {
    return { ok: false, error: `"${text}": a next hop is ${scheme}://[user:pass@]host[:port], without a path, query or fragment` };
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') return { ok: false, error: `"${text}": no host` };
  const userinfo = url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : null;
  const s = scheme as keyof typeof DEFAULT_PORTS;
  return { ok: true, value: { kind: 'smtp', scheme: s, host, port: url.port ? Number(url.port) : DEFAULT_PORTS[s], userinfo } };
}

/**
 * A password that compile mode 'unresolved' did not look up: only where it would come from.
 * `mailgw queue` compiles so, since it needs hop keys (which never include a password) and
 * must work where the smarthost secrets are not set.
 */
export interface UnresolvedSecret {
  readonly unresolved: true;
  /** "auth.passEnv MY_VAR", "auth.pass" or "the URL". */
  readonly source: string;
}

/** What a compiled route's password can be: a string once resolved (the default everywhere). */
export type RouteSecret = string | UnresolvedSecret;

/** How buildConfig/loadConfig treat route passwords. */
export type SecretsMode = 'resolve' | 'unresolved';

export interface RouteAuth<S extends RouteSecret = string> {
  /** BasicAuth: AUTH after STARTTLS when offered; BasicAuthRequireTLS: only after STARTTLS. */
  readonly mechanism: 'BasicAuth' | 'BasicAuthRequireTLS';
  readonly user: string;
  readonly pass: S;
}

/**
 * What TLS an outbound session must have (a send connector's requireTLS/tlsAuthLevel/tlsDomain;
 * a route's requireTLS/verifyTLS). The one place the worker reads TLS requirements from, so a
 * later policy layer (MTA-STS, DANE) can tighten it per destination.
 */
export interface OutboundTlsPolicy {
  /** Never send in plain text: without TLS (or when the check below fails) the message waits. */
  readonly requireTLS: boolean;
  /** EncryptionOnly: any certificate; CertificateValidation: a trusted chain; DomainValidation: and the name. */
  readonly tlsAuthLevel: TlsAuthLevel;
  /** DomainValidation: the name (or *.domain) the certificate must carry; null: the host name connected to. */
  readonly tlsDomain: string | null;
}

export const OPPORTUNISTIC_TLS: OutboundTlsPolicy = { requireTLS: false, tlsAuthLevel: 'EncryptionOnly', tlsDomain: null };

export interface SmartHost {
  readonly host: string;
  readonly port: number;
}

export interface MaildirTarget {
  readonly kind: 'maildir';
  /** Absolute directory. */
  readonly root: string;
}

export interface SmtpTarget<S extends RouteSecret = string> {
  readonly kind: 'smtp';
  /** Tried in order: the next one when a host cannot be reached or refuses the session. */
  readonly hosts: readonly SmartHost[];
  /** smtps://: TLS from the first byte. */
  readonly secure: boolean;
  readonly lmtp: boolean;
  readonly tls: OutboundTlsPolicy;
  readonly auth: RouteAuth<S> | null;
}

export interface MxTarget {
  readonly kind: 'mx';
  /** null: the worker's MX port (25). */
  readonly port: number | null;
  readonly tls: OutboundTlsPolicy;
}

export type RouteTarget<S extends RouteSecret = string> = MaildirTarget | SmtpTarget<S> | MxTarget;

export interface CompiledRoute<S extends RouteSecret = string> {
  /** Position in gateway.yaml routes. */
  readonly index: number;
  readonly domains: readonly DomainPattern[];
  readonly target: RouteTarget<S>;
  /** describeTarget(target): for logs and hop keys, never with a password. */
  readonly text: string;
}

/** The route fields compileRoutes reads (the schema's output). */
export interface RouteInput {
  readonly domains: readonly DomainPattern[];
  readonly to: ParsedRouteTo;
  readonly requireTLS: boolean;
  readonly verifyTLS: boolean;
  readonly auth?: { readonly user: string; readonly pass?: string | undefined; readonly passEnv?: string | undefined } | undefined;
}

export type Env = Readonly<Record<string, string | undefined>>;

export interface CompileRoutesOptions {
  /** For issues: the file the routes came from (gateway.yaml as shown to the user). */
  readonly file: string;
  /** Relative maildir: paths start here (the directory of gateway.yaml). */
  readonly baseDir: string;
}

export type CompileRoutesResult<S extends RouteSecret> = { ok: true; routes: CompiledRoute<S>[] } | { ok: false; errors: ConfigIssue[] };

/** Compiles routes, resolving every password from `env` (auth.passEnv) or the file; an unset variable is an error. */
export function compileRoutes(routes: readonly RouteInput[], o: CompileRoutesOptions & { secrets: 'resolve'; env: Env }): CompileRoutesResult<string>;
/** Compiles routes for hop keys only: passwords stay UnresolvedSecret, the environment is not read. */
export function compileRoutes(routes: readonly RouteInput[], o: CompileRoutesOptions & { secrets: 'unresolved' }): CompileRoutesResult<RouteSecret>;
export function compileRoutes(routes: readonly RouteInput[], o: CompileRoutesOptions & ({ secrets: 'resolve'; env: Env } | { secrets: 'unresolved' })): CompileRoutesResult<RouteSecret> {
  const errors: ConfigIssue[] = [];
  const out: CompiledRoute<RouteSecret>[] = [];
  routes.forEach((r, index) => {
    const key = `routes[${index}]`;
    const secret = (value: string | undefined, source: string, at: string): RouteSecret | null => {
      if (o.secrets === 'unresolved') return { unresolved: true, source };
      if (value === undefined) {
        errors.push({ file: o.file, path: `${key}.${at}`, message: `the environment variable ${source.replace(/^auth\.passEnv /, '')} is not set (it holds the password for ${r.auth?.user ?? 'AUTH'} at this next hop)` });
        return null;
      }
      return value;
    };
    let target: RouteTarget<RouteSecret>;
    const to = r.to;
    // verifyTLS checked the chain and the host name: DomainValidation against the host's name.
    const tls: OutboundTlsPolicy = { requireTLS: r.requireTLS, tlsAuthLevel: r.verifyTLS ? 'DomainValidation' : 'EncryptionOnly', tlsDomain: null };
    if (to.kind === 'mx') target = { kind: 'mx', port: null, tls };
    else if (to.kind === 'maildir') target = { kind: 'maildir', root: path.resolve(o.baseDir, to.path) };
    else {
      let auth: RouteAuth<RouteSecret> | null = null;
      if (r.auth) {
        const pass =
          r.auth.passEnv !== undefined
            ? secret(o.secrets === 'resolve' ? o.env[r.auth.passEnv] : undefined, `auth.passEnv ${r.auth.passEnv}`, 'auth.passEnv')
            : secret(r.auth.pass ?? '', 'auth.pass', 'auth.pass');
        if (pass === null) return;
        auth = { mechanism: 'BasicAuth', user: r.auth.user, pass };
      } else if (to.userinfo) {
        const pass = secret(to.userinfo.pass, 'the URL', 'to');
        if (pass === null) return;
        auth = { mechanism: 'BasicAuth', user: to.userinfo.user, pass };
      }
      target = {
        kind: 'smtp',
        hosts: [{ host: to.host, port: to.port }],
        secure: to.scheme === 'smtps',
        lmtp: to.scheme === 'lmtp',
        tls,
        auth,
      };
    }
    out.push({ index, domains: r.domains, target, text: describeTarget(target) });
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, routes: out };
}

/** The target as logs and hop keys show it (never with the password). */
export function describeTarget(t: RouteTarget<RouteSecret>): string {
  switch (t.kind) {
    case 'maildir':
      return `maildir:${t.root}`;
    case 'mx':
      return 'mx';
    case 'smtp': {
      const scheme = t.lmtp ? 'lmtp' : t.secure ? 'smtps' : 'smtp';
      const hosts = t.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',');
      return `${scheme}://${t.auth ? `${encodeURIComponent(t.auth.user)}@` : ''}${hosts}`;
    }
  }
}

/** First route (in file order) with a pattern matching the normalised `domain`. */
export function matchRoute<S extends RouteSecret>(routes: readonly CompiledRoute<S>[], domain: string): CompiledRoute<S> | null {
  for (const r of routes) if (matchDomain(domain, r.domains) >= 0) return r;
  return null;
}
