// Route targets ("to:" in gateway.yaml) parsed once at start-up.
import path from 'node:path';
import type { GatewayConfig } from '@mailgw/config';

export type RouteConfig = GatewayConfig['routes'][number];

export interface SmtpAuth {
  readonly user: string;
  readonly pass: string;
}

export type Target =
  | { readonly kind: 'maildir'; readonly root: string }
  | {
      readonly kind: 'smtp';
      readonly host: string;
      readonly port: number;
      /** smtps://: TLS from the first byte. */
      readonly secure: boolean;
      readonly lmtp: boolean;
      readonly requireTLS: boolean;
      readonly verifyTLS: boolean;
      readonly auth: SmtpAuth | null;
    }
  | { readonly kind: 'mx'; readonly verifyTLS: boolean };

export class TargetError extends Error {
  override readonly name = 'TargetError';
}

const DEFAULT_PORTS: Record<string, number> = { smtp: 25, smtps: 465, lmtp: 24 };

/**
 * Parses a route's target. `baseDir` anchors relative maildir paths (the directory of
 * gateway.yaml); `env` supplies auth.passEnv. Throws TargetError on anything unusable.
 */
export function parseTarget(route: RouteConfig, baseDir: string, env: NodeJS.ProcessEnv = process.env): Target {
  const to = route.to.trim();
  if (to === 'mx') return { kind: 'mx', verifyTLS: route.verifyTLS };
  if (to.startsWith('maildir:')) {
    const p = to.slice('maildir:'.length);
    if (p === '') throw new TargetError(`"${to}": give a directory after maildir:`);
    return { kind: 'maildir', root: path.resolve(baseDir, p) };
  }
  let url: URL;
  try {
    url = new URL(to);
  } catch {
    throw new TargetError(`"${to}" is not a valid smtp://, smtps:// or lmtp:// URL`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!(scheme in DEFAULT_PORTS)) throw new TargetError(`"${to}": unknown scheme ${scheme}`);
  if ((url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) {
    throw new TargetError(`"${to}": only scheme://[user:pass@]host[:port] is allowed`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new TargetError(`"${to}": no host`);
  let auth: SmtpAuth | null = null;
  if (url.username) auth = { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) };
  if (route.auth) {
    const pass = route.auth.passEnv !== undefined ? env[route.auth.passEnv] : route.auth.pass;
    if (pass === undefined) throw new TargetError(`"${to}": environment variable ${route.auth.passEnv} (auth.passEnv) is not set`);
    auth = { user: route.auth.user, pass };
  }
  return {
    kind: 'smtp',
    host,
    port: url.port ? Number(url.port) : DEFAULT_PORTS[scheme]!,
    secure: scheme === 'smtps',
    lmtp: scheme === 'lmtp',
    requireTLS: route.requireTLS,
    verifyTLS: route.verifyTLS,
    auth,
  };
}

/** The target as logs and hop keys show it (never with the password). */
export function describeTarget(t: Target): string {
  switch (t.kind) {
    case 'maildir':
      return `maildir:${t.root}`;
    case 'mx':
      return 'mx';
    case 'smtp': {
      const scheme = t.lmtp ? 'lmtp' : t.secure ? 'smtps' : 'smtp';
      const host = t.host.includes(':') ? `[${t.host}]` : t.host;
      return `${scheme}://${t.auth ? `${encodeURIComponent(t.auth.user)}@` : ''}${host}:${t.port}`;
    }
  }
}
