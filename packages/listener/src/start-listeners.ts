// The listener API: every enabled connector listening on its bindings, handing accepted mail
// to one mail store, until close().
import type { SMTPServerOptions, SMTPServerResolver } from 'smtp-server';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { formatIssue } from '@mailgw/config';
import type { DirectoryLookup, RecipientVerification, IpBlockListSource, Policy, ReputationRecorder } from '@mailgw/policy';
import type { MailStore } from '@mailgw/queue';
import type { Logger } from 'pino';
import { PRE_SESSION_TIMEOUT_MS } from './connection.js';
import { ConnectionLimits, type ConnectionGate } from './connection-limits.js';
import type { IpListLookup, ListenerContext } from './context.js';
import { GatewayServer } from './gateway-server.js';
import { planSockets, type PlannedSocket } from './listen-plan.js';
import type { BackPressureGauge } from './back-pressure-monitor.js';
import { notify, type ListenerObserver } from './observer.js';
import { ProtocolLogs } from './protocol-log.js';
import { createMemoryRateCounter, type RateCounter } from './rate-counter.js';
import type { MailAddress, MessageFilter } from '@mailgw/mail';
import { TLS_BASE_OPTIONS, loadTlsMaterial, type TlsMaterial } from './tls-material.js';
import { PickupDirectory, type PickupScan } from './pickup.js';

export interface ListenerOptions {
  readonly policy: Policy;
  /** Where accepted mail goes (@mailgw/queue). The caller opens and closes it. */
  readonly store: MailStore;
  readonly logger: Logger;
  /** State directory: self-signed certificates (tls/), protocol logs (logs/protocol/). */
  readonly dataDir: string;
  /** Base for relative tlsCertificate/tlsKey paths (the gateway.yaml directory); default cwd. */
  readonly configDir?: string;
  /**
   * messageRateLimit and AUTH-failure counter (gateway.yaml authBackoff); default one in memory
   * (per process), the Redis one shares the counts between listeners.
   */
  readonly rateCounter?: RateCounter;
  /** Reverse DNS for client host names; default none (Received shows the [ip] literal). */
  readonly resolver?: SMTPServerResolver;
  /** Told about connections, messages, refusals and AUTH failures (metrics, tracking log). */
  readonly observer?: ListenerObserver;
  /** Message filters run at DATA (sender authentication, rspamd, milters), in order. */
  readonly filters?: readonly MessageFilter[];
  /**
   * Instead of `filters`: the filters for a policy, asked at start and at each reload (so the
   * transport rules, which live in the policy's configuration, change without a restart).
   */
  readonly filtersFor?: (policy: Policy) => readonly MessageFilter[];
  /** Backstop for a filter that never answers (default 120 s); each filter has its own, shorter, timeouts. */
  readonly filterTimeoutMs?: number;
  /** Quarantined messages go here instead of to their recipients (gateway.yaml quarantineMailbox). */
  readonly quarantineMailbox?: MailAddress | null;
  /** DNS list lookups for connection filtering (IP Block/Allow List Providers); default none. */
  readonly ipLists?: IpListLookup;
  /** The IP Block List (@mailgw/antispam IpBlockListView), judged at RCPT; default none. */
  readonly ipBlockList?: IpBlockListSource;
  /** Sender reputation's counting (@mailgw/antispam SenderReputation); default none. */
  readonly reputation?: ReputationRecorder;
  /**
   * Who counts connections for maxInboundConnection and the per-source limits; default this
   * process (ConnectionLimits). Under the `mailgw start` supervisor: RemoteConnectionLimits.
   */
  readonly connectionLimits?: ConnectionGate;
  /** The directory (@mailgw/directory), when gateway.yaml has one. */
  readonly directory?: DirectoryLookup;
  /** Recipient verification at the next hop (@mailgw/worker's RecipientVerifier), when gateway.yaml has recipientVerification. */
  readonly recipientVerification?: RecipientVerification;
  /** Back pressure (BackPressureMonitor): asked at MAIL FROM; default none (always normal). */
  readonly backPressure?: BackPressureGauge;
  /** Send the files of gateway.yaml's pickupDirectoryPath from this process (default true when it is set). */
  readonly pickup?: boolean;
  /** How often the pickup directory is looked at besides when a file arrives (default 5 s). */
  readonly pickupPollMs?: number;
  /** How long a pickup file may look unfinished before it is judged as it is (default 60 s). */
  readonly pickupSettleMs?: number;
}

/** What a reload changed. */
export interface ReloadSummary {
  /** Sockets opened for new bindings ("127.0.0.1:2526"). */
  readonly opened: readonly string[];
  /** Sockets that stopped accepting (their open sessions go on until they end). */
  readonly stopped: readonly string[];
}

export interface ListenerAddress {
  readonly address: string;
  readonly port: number;
  readonly family: string;
  readonly connectors: readonly string[];
}

export interface Listeners {
  addresses(): ListenerAddress[];
  /** Open SMTP connections. */
  connectionCount(): number;
  /**
   * Live reload with a new (validated) policy: sockets for new bindings start listening, sockets
   * no binding needs any more stop accepting, and connections accepted from now on use the new
   * connectors; open sessions keep the policy they began with and are never dropped. All or
   * nothing: when a new socket cannot be opened (or the plan or a certificate is unusable) it
   * throws and the old configuration keeps running.
   */
  reload(policy: Policy): Promise<ReloadSummary>;
  /**
   * Stops accepting, lets transactions in progress finish (at most graceMs, default 10 s),
   * answers everyone else 421 4.3.2 and closes.
   */
  close(opts?: { graceMs?: number }): Promise<void>;
  /** Looks at the pickup directory now (what a new file or the 5-second poll does); null: none configured here. */
  pickupNow(): Promise<PickupScan> | null;
}

/** smtp-server options common to every socket; per-connector behaviour lives in the connection. */
function serverOptions(socket: PlannedSocket, tls: ReadonlyMap<string, TlsMaterial>, resolver: SMTPServerResolver | undefined): SMTPServerOptions {
  const opts: SMTPServerOptions = {
    name: socket.connectors[0]!.config.fqdn,
    logger: false,
    disableReverseLookup: !resolver,
    ...(resolver ? { resolver } : {}),
    // Replies are written whole by mailgw, enhanced codes included.
    hideENHANCEDSTATUSCODES: true,
    hideDSN: false,
    hideREQUIRETLS: true,
    // The policy decides about AUTH, per connector and session.
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['XCLIENT', 'XFORWARD', 'WIZ', 'SHELL', 'KILL'],
    // Addresses are judged by the policy's parser (trailing dots, IDNs, routing tricks); the
    // library still refuses control characters and paths with more than one '@'.
    lenientAddressParsing: true,
    useXClient: false,
    useXForward: false,
    socketTimeout: PRE_SESSION_TIMEOUT_MS,
  };
  if (socket.implicitTLS) {
    // TLS comes before the connector is known: the first connector's certificate, others by SNI.
    const first = tls.get(socket.connectors[0]!.name)!;
    const sni = new Map<string, { key: Buffer; cert: Buffer }>();
    for (const c of socket.connectors) {
      const m = tls.get(c.name);
      if (m) sni.set(c.config.fqdn, { ...TLS_BASE_OPTIONS, key: m.key, cert: m.cert });
    }
    Object.assign(opts, { secure: true, ...TLS_BASE_OPTIONS, key: first.key, cert: first.cert, sniOptions: sni });
  }
  return opts;
}

function listen(server: GatewayServer, s: PlannedSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.server.once('error', onError);
    server.listen({ host: s.host, port: s.port, ipv6Only: s.ipv6Only }, () => {
      server.server.off('error', onError);
      resolve();
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const socketText = (s: PlannedSocket) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`;

/** A socket's identity across reloads; an implicit-TLS socket whose certificates change is a new socket. */
function socketKey(s: PlannedSocket, tls: ReadonlyMap<string, TlsMaterial>): string {
  const certs = s.implicitTLS ? createHash('sha256').update(s.connectors.map((c) => `${c.config.fqdn}\0${tls.get(c.name)?.cert.toString('base64') ?? ''}`).join('\0')).digest('hex') : '';
  return `${s.host}|${s.port}|${s.ipv6Only}|${s.implicitTLS}|${certs}`;
}

/** Waits for `p`, at most `ms`, without leaving a timer behind. */
async function atMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export async function startListeners(opts: ListenerOptions): Promise<Listeners> {
  const { policy, logger } = opts;
  const plan = planSockets(policy.connectors);
  if (!plan.ok) throw new Error(`cannot listen:\n  ${plan.errors.map(formatIssue).join('\n  ')}`);
  const tls = await loadTlsMaterial(policy.connectors, { configDir: opts.configDir ?? process.cwd(), dataDir: opts.dataDir, logger, domainSecureCAFile: policy.config.gateway.domainSecureCAFile });
  const ownRate = !opts.rateCounter;
  let ctx: ListenerContext = {
    policy,
    store: opts.store,
    rate: opts.rateCounter ?? createMemoryRateCounter(),
    logger,
    tls,
    limits: opts.connectionLimits ?? new ConnectionLimits(),
    protocolLogs: new ProtocolLogs(path.join(opts.dataDir, 'logs', 'protocol'), (connector, err) => {
      logger.error({ connector, err: err.message, code: (err as NodeJS.ErrnoException).code }, 'protocol log write failed: protocol logging is degraded (lines are dropped, mail flow goes on; tried again each minute)');
      notify(opts.observer, logger, { type: 'log-write-failed', log: 'protocol', connector, error: err.message });
    }),
    connections: new Set(),
    draining: false,
    ...(opts.observer ? { observer: opts.observer } : {}),
    ...(opts.filtersFor ? { filters: opts.filtersFor(policy) } : opts.filters ? { filters: opts.filters } : {}),
    ...(opts.filterTimeoutMs ? { filterTimeoutMs: opts.filterTimeoutMs } : {}),
    ...(opts.quarantineMailbox ? { quarantineMailbox: opts.quarantineMailbox } : {}),
    ...(opts.ipLists ? { ipLists: opts.ipLists } : {}),
    ...(opts.ipBlockList ? { ipBlockList: opts.ipBlockList } : {}),
    ...(opts.reputation ? { reputation: opts.reputation } : {}),
    ...(opts.directory ? { directory: opts.directory } : {}),
    ...(opts.recipientVerification ? { recipientVerification: opts.recipientVerification } : {}),
    ...(opts.backPressure ? { backPressure: opts.backPressure } : {}),
  };

  type Entry = { server: GatewayServer; socket: PlannedSocket };
  /** Listening sockets by socketKey. */
  const servers = new Map<string, Entry>();
  /** Sockets a reload stopped, until their last session ends. */
  const retired = new Set<Promise<void>>();
  const stopAccepting = (e: Entry): Promise<void> => new Promise<void>((r) => e.server.server.close(() => r()));
  const open = async (socket: PlannedSocket, c: ListenerContext): Promise<Entry> => {
    const server = new GatewayServer(serverOptions(socket, c.tls, opts.resolver), c);
    const reported = new WeakSet<Error>();
    server.on('error', (err: Error & { remoteAddress?: string; code?: string }) => {
      // A failed STARTTLS handshake arrives twice (the TLS socket's 'error' and '_tlsError'
      // carry the same error object): one line is enough.
      if (reported.has(err)) return;
      reported.add(err);
      // smtp-server reports every connection's socket errors here too: a client's reset, a
      // TLS handshake that is not TLS, a reply written after the client left. On port 25 that
      // is the internet's daily noise, not trouble of the listener: info, one line, no stack.
      if (err.remoteAddress) logger.info({ client: err.remoteAddress, code: err.code, reason: clientErrorReason(err), address: socket.host, port: socket.port }, 'client connection error');
      else logger.warn({ err, address: socket.host, port: socket.port }, 'smtp listener error');
    });
    try {
      await listen(server, socket);
    } catch (e) {
      const names = socket.connectors.map((x) => `"${x.name}"`).join(', ');
      const hint = bindFailureHint((e as NodeJS.ErrnoException).code, socket.port);
      throw new Error(`cannot listen on ${socketText(socket)} for connector ${names}: ${(e as Error).message}${hint ? `: ${hint}` : ''}`);
    }
    logger.info(
      { address: socket.host, port: socket.port, ipv6Only: socket.ipv6Only || undefined, implicitTLS: socket.implicitTLS || undefined, bindings: socket.bindings, connectors: socket.connectors.map((x) => x.name) },
      `listening on ${socketText(socket)}`,
    );
    return { server, socket };
  };
  for (const socket of plan.sockets) {
    try {
      servers.set(socketKey(socket, tls), await open(socket, ctx));
    } catch (e) {
      await Promise.all([...servers.values()].map(stopAccepting));
      throw e;
    }
  }
  if (servers.size === 0) logger.warn('no enabled connector: not listening anywhere');

  // The pickup directory follows the configuration: a reload may start, move or stop it.
  let pickup: PickupDirectory | null = null;
  const pickupDir = (p: Policy): string | null => {
    const dir = p.config.gateway.pickupDirectoryPath;
    return opts.pickup === false || !dir ? null : path.resolve(opts.configDir ?? process.cwd(), dir);
  };
  const followPickup = async (p: Policy): Promise<void> => {
    const dir = pickupDir(p);
    if (pickup && pickup.dir === dir) return;
    await pickup?.close();
    pickup = null;
    if (!dir) return;
    pickup = new PickupDirectory({ context: () => ctx, dir, ...(opts.pickupPollMs ? { pollMs: opts.pickupPollMs } : {}), ...(opts.pickupSettleMs !== undefined ? { settleMs: opts.pickupSettleMs } : {}) });
    await pickup.start();
  };
  await followPickup(policy);

  let closing: Promise<void> | null = null;
  let reloading: Promise<unknown> = Promise.resolve();
  const reload = async (next: Policy): Promise<ReloadSummary> => {
    if (closing) throw new Error('the listeners are shutting down');
    const nextPlan = planSockets(next.connectors);
    if (!nextPlan.ok) throw new Error(`cannot listen:\n  ${nextPlan.errors.map(formatIssue).join('\n  ')}`);
    const nextTls = await loadTlsMaterial(next.connectors, { configDir: opts.configDir ?? process.cwd(), dataDir: opts.dataDir, logger, domainSecureCAFile: next.config.gateway.domainSecureCAFile });
    // Shares connections, limits, rate counter and logs with the old context; only the policy, certificates and the filters it asks for are new.
    const nextCtx: ListenerContext = { ...ctx, policy: next, tls: nextTls, ...(opts.filtersFor ? { filters: opts.filtersFor(next) } : {}) };
    const wanted = new Map(nextPlan.sockets.map((s) => [socketKey(s, nextTls), s] as const));
    const removed = [...servers].filter(([k]) => !wanted.has(k));
    const added = [...wanted].filter(([k]) => !servers.has(k));
    // Stop first: a new wildcard socket may need the port of a specific one it replaces.
    for (const [, e] of removed) {
      const p = stopAccepting(e);
      retired.add(p);
      void p.then(() => retired.delete(p));
    }
    const opened: Array<[string, Entry]> = [];
    try {
      for (const [k, s] of added) opened.push([k, await open(s, nextCtx)]);
    } catch (e) {
      // All or nothing: give the new sockets up and listen again where we stopped.
      for (const [, x] of opened) x.server.server.close();
      for (const [k, old] of removed) {
        try {
          servers.set(k, await open(old.socket, ctx));
        } catch (again) {
          servers.delete(k);
          logger.error({ err: again }, `reload rollback: could not listen again on ${socketText(old.socket)}`);
        }
      }
      throw e;
    }
    for (const [k, e] of removed) {
      servers.delete(k);
      logger.info({ address: e.socket.host, port: e.socket.port }, `stopped listening on ${socketText(e.socket)}; its open sessions go on`);
    }
    for (const [k, x] of opened) servers.set(k, x);
    for (const [k, s] of wanted) {
      const e = servers.get(k)!;
      e.server.useContext(nextCtx);
      servers.set(k, { server: e.server, socket: s });
    }
    ctx = nextCtx;
    await followPickup(next);
    return { opened: added.map(([, s]) => socketText(s)), stopped: removed.map(([, e]) => socketText(e.socket)) };
  };
  return {
    reload(next) {
      // One reload at a time, in order.
      const run = reloading.then(() => reload(next));
      reloading = run.catch(() => undefined);
      return run;
    },
    addresses() {
      return [...servers.values()].map(({ server, socket }) => {
        const a = server.server.address();
        const info = a && typeof a === 'object' ? a : { address: socket.host, port: socket.port, family: '' };
        return { address: info.address, port: info.port, family: info.family, connectors: socket.connectors.map((c) => c.name) };
      });
    },
    connectionCount: () => ctx.connections.size,
    pickupNow: () => pickup?.trigger() ?? null,
    close(closeOpts = {}) {
      closing ??= (async () => {
        const graceMs = closeOpts.graceMs ?? 10_000;
        await reloading;
        await pickup?.close();
        ctx.draining = true;
        const stopped = Promise.all([...[...servers.values()].map(stopAccepting), ...retired]);
        for (const { server } of servers.values()) for (const s of server._pendingSockets.values()) s.destroy();
        for (const c of [...ctx.connections]) c.drain();
        const deadline = Date.now() + graceMs;
        while (ctx.connections.size > 0 && Date.now() < deadline) await sleep(25);
        if (ctx.connections.size > 0) {
          logger.warn({ connections: ctx.connections.size }, 'shutdown grace over: closing connections still in a transaction');
          for (const c of [...ctx.connections]) c.forceClose();
        }
        await atMost(stopped, 3000);
        await ctx.protocolLogs.close();
        if (ownRate) await ctx.rate.close();
      })();
      return closing;
    },
  };
}

/** What an admin can do about a binding the system refused, by its error code ('' when nothing useful can be said). */
export function bindFailureHint(code: string | undefined, port: number): string {
  switch (code) {
    case 'EADDRINUSE':
      return `another program listens there already (Postfix, sendmail, another mailgw?); \`ss -ltnp 'sport = :${port}'\` shows which`;
    case 'EACCES':
      return port < 1024
        ? 'ports below 1024 need root or the CAP_NET_BIND_SERVICE capability (the systemd unit grants it: README "Running it as a service")'
        : 'the system refused this process the port';
    case 'EADDRNOTAVAIL':
      return "no interface of this machine has that address (`ip -br addr` lists them): correct the connector's bindings";
    default:
      return '';
  }
}

/** TLS failures as an admin asks about them ("why can't the scanner send?"), by OpenSSL's code. */
const TLS_FAILURES: Readonly<Record<string, string>> = {
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'TLS handshake failed: the client offers only TLS versions older than 1.2, the oldest mailgw accepts',
  ERR_SSL_NO_SHARED_CIPHER: 'TLS handshake failed: no cipher that both sides support',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS handshake failed: what the client sent is not TLS',
  ERR_SSL_HTTP_REQUEST: 'TLS handshake failed: the client sent an HTTP request',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'TLS handshake failed: the client does not trust this certificate',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'TLS handshake failed: the client does not trust this certificate',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'TLS handshake failed: the client does not know the CA of this certificate',
};

/** A client's connection error in one line of words: OpenSSL's "…:SSL routines:fn:reason:file:line:" cut to its reason. */
export function clientErrorReason(err: Error & { code?: string }): string {
  const known = err.code ? TLS_FAILURES[err.code] : undefined;
  if (known) return known;
  const first = err.message.trim().split('\n')[0] ?? '';
  const ssl = /SSL routines:[^:]*:([^:]+)/.exec(first);
  return ssl ? `TLS handshake failed: ${ssl[1]}` : first;
}
