// Send connectors: the one outbound model. Files in send-connectors.d/ and the `routes` of
// gateway.yaml (shorthand: one connector per route) compile into the same SendConnector values;
// the pure choice between them is @mailgw/policy's selectSendConnector, and the worker delivers
// what the chosen connector says.
import type { DomainPattern } from './domain.js';
import type { ConfigIssue } from './issues.js';
import { describeTarget, type CompiledRoute, type Env, type OutboundTlsPolicy, type RouteAuth, type RouteSecret, type RouteTarget } from './routes.js';
import type { SendConnectorFileConfig, SmartHostAuthMechanism } from './send-connector-schema.js';

export interface AddressSpace {
  readonly domain: DomainPattern;
  readonly cost: number;
  /** Only senders in these domains; null = any sender (the null sender included). */
  readonly senderDomains: readonly DomainPattern[] | null;
  /** As shown: "*.contoso.com;5" or "* from fabrikam.com;1". */
  readonly text: string;
}

export type SendConnectorOrigin =
  | { readonly kind: 'file'; readonly file: string }
  /** A route of gateway.yaml: among routes the first match in file order is the only candidate. */
  | { readonly kind: 'route'; readonly file: string; readonly index: number };

export interface SendConnector<S extends RouteSecret = string> {
  /** The file's name key, or "routes[i]" for a route. */
  readonly name: string;
  readonly origin: SendConnectorOrigin;
  readonly enabled: boolean;
  readonly addressSpaces: readonly AddressSpace[];
  readonly target: RouteTarget<S>;
  readonly smartHostAuthMechanism: SmartHostAuthMechanism;
  /** EHLO name; null = the gateway fqdn. */
  readonly fqdn: string | null;
  readonly sourceIPAddress: string | null;
  /** Bytes; null = no limit. */
  readonly maxMessageSize: number | null;
  /** ms; null = the worker's default (10 min). */
  readonly connectionInactivityTimeout: number | null;
  readonly protocolLoggingLevel: 'None' | 'Verbose';
  /** null = queue.maxConnectionsPerDestination. */
  readonly maxConnectionsPerDestination: number | null;
  /** Messages per minute; null = unlimited. */
  readonly messageRateLimit: number | null;
  /** Domain security (mutual TLS) towards the domains of tlsSendDomainSecureList; absent: off. */
  readonly domainSecureEnabled?: boolean;
  /** false: Received fields are removed from what this connector sends (ms-Exch-Send-Headers-Routing not granted); absent: kept. */
  readonly sendHeadersRouting?: boolean;
  /** describeTarget(target): never with a password. */
  readonly text: string;
}

export function addressSpaceText(a: { domain: DomainPattern; cost: number; senderDomains: readonly DomainPattern[] | null }): string {
  return `${a.domain.text}${a.senderDomains ? ` from ${a.senderDomains.map((d) => d.text).join(',')}` : ''};${a.cost}`;
}

/** Each route as the send connector it is shorthand for: its domains at cost 1, any sender. */
export function routeConnectors<S extends RouteSecret>(routes: readonly CompiledRoute<S>[], file = 'gateway.yaml'): SendConnector<S>[] {
  return routes.map((r) => ({
    name: `routes[${r.index}]`,
    origin: { kind: 'route', file, index: r.index },
    enabled: true,
    addressSpaces: r.domains.map((domain) => ({ domain, cost: 1, senderDomains: null, text: addressSpaceText({ domain, cost: 1, senderDomains: null }) })),
    target: r.target,
    smartHostAuthMechanism: r.target.kind === 'smtp' && r.target.auth ? 'BasicAuth' : 'None',
    fqdn: null,
    sourceIPAddress: null,
    maxMessageSize: null,
    connectionInactivityTimeout: null,
    protocolLoggingLevel: 'None',
    maxConnectionsPerDestination: null,
    messageRateLimit: null,
    text: r.text,
  }));
}

export interface CompileSendConnectorOptions {
  readonly file: string;
  readonly secrets: 'resolve' | 'unresolved';
  readonly env: Env;
  /** Reads a passFile (relative to gateway.yaml). */
  readonly readReferenced: (relPath: string) => { ok: true; text: string; file: string } | { ok: false; error: string; file: string };
}

/** One validated send-connector file to the model; an unset passEnv or unreadable passFile is an issue. */
export function compileSendConnector(c: SendConnectorFileConfig, o: CompileSendConnectorOptions): { ok: true; connector: SendConnector<RouteSecret> } | { ok: false; errors: ConfigIssue[] } {
  const errors: ConfigIssue[] = [];
  const tls: OutboundTlsPolicy = { requireTLS: c.requireTLS, tlsAuthLevel: c.tlsAuthLevel ?? 'EncryptionOnly', tlsDomain: c.tlsDomain ?? null };
  let auth: RouteAuth<RouteSecret> | null = null;
  const cred = c.authenticationCredential;
  if (cred && (c.smartHostAuthMechanism === 'BasicAuth' || c.smartHostAuthMechanism === 'BasicAuthRequireTLS')) {
    let pass: RouteSecret | null = null;
    if (o.secrets === 'unresolved') pass = { unresolved: true, source: cred.passEnv !== undefined ? `authenticationCredential.passEnv ${cred.passEnv}` : 'authenticationCredential.passFile' };
    else if (cred.passEnv !== undefined) {
      pass = o.env[cred.passEnv] ?? null;
      if (pass === null) errors.push({ file: o.file, path: 'authenticationCredential.passEnv', message: `the environment variable ${cred.passEnv} is not set (it holds the password of ${cred.user} at the smart hosts)` });
    } else if (cred.passFile !== undefined) {
      const r = o.readReferenced(cred.passFile);
      if (!r.ok) errors.push({ file: o.file, path: 'authenticationCredential.passFile', message: r.error });
      else {
        pass = r.text.split(/\r?\n/)[0] ?? '';
        if (pass === '') errors.push({ file: o.file, path: 'authenticationCredential.passFile', message: `${r.file} is empty: its first line is the password` });
      }
    }
    if (pass !== null) auth = { mechanism: c.smartHostAuthMechanism, user: cred.user, pass };
  }
  if (errors.length > 0) return { ok: false, errors };
  const port = c.port;
  const target: RouteTarget<RouteSecret> = c.smartHosts
    ? { kind: 'smtp', hosts: c.smartHosts.map((h) => ({ host: h.host, port: h.port ?? port ?? 25 })), secure: false, lmtp: false, tls, auth }
    : { kind: 'mx', port: port ?? null, tls };
  return {
    ok: true,
    connector: {
      name: c.name,
      origin: { kind: 'file', file: o.file },
      enabled: c.enabled,
      addressSpaces: c.addressSpaces.map((a) => ({ ...a, text: addressSpaceText(a) })),
      target,
      smartHostAuthMechanism: c.smartHostAuthMechanism,
      fqdn: c.fqdn ?? null,
      sourceIPAddress: c.sourceIPAddress ?? null,
      maxMessageSize: c.maxMessageSize,
      connectionInactivityTimeout: c.connectionInactivityTimeout,
      protocolLoggingLevel: c.protocolLoggingLevel,
      maxConnectionsPerDestination: c.maxConnectionsPerDestination ?? null,
      messageRateLimit: c.messageRateLimit,
      domainSecureEnabled: c.domainSecureEnabled,
      sendHeadersRouting: c.sendHeadersRouting,
      text: describeTarget(target),
    },
  };
}

/** How the TLS policy reads for admins ("requireTLS, DomainValidation of *.contoso.com"). */
export function describeTls(t: OutboundTlsPolicy): string {
  if (!t.requireTLS) return t.tlsAuthLevel === 'EncryptionOnly' ? 'opportunistic STARTTLS (plain text when not offered)' : `opportunistic STARTTLS, certificate checked (${t.tlsAuthLevel}${t.tlsDomain ? ` of ${t.tlsDomain}` : ''})`;
  const check = t.tlsAuthLevel === 'EncryptionOnly' ? 'any certificate' : t.tlsAuthLevel === 'CertificateValidation' ? 'a certificate from a trusted CA' : `a trusted certificate for ${t.tlsDomain ?? 'the host name'}`;
  return `requireTLS: STARTTLS with ${check} (${t.tlsAuthLevel}), never plain text`;
}
