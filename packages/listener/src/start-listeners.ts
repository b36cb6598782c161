// The listener API: every enabled connector listening on its bindings, handing accepted mail
// to one mail store, until close().
import type { SMTPServerOptions, SMTPServerResolver } from 'smtp-server';
import path from 'node:path';
import type { Policy } from '@mailgw/policy';
import type { MailStore } from '@mailgw/queue';
import type { Logger } from 'pino';
import { PRE_SESSION_TIMEOUT_MS } from './connection.js';
import { ConnectionLimits } from './connection-limits.js';
import type { ListenerContext } from './context.js';
import { GatewayServer } from './gateway-server.js';
import { planSockets, type PlannedSocket } from './listen-plan.js';
import { ProtocolLogs } from './protocol-log.js';
import { createMemoryRateCounter, type RateCounter } from './rate-counter.js';
import { TLS_BASE_OPTIONS, loadTlsMaterial, type TlsMaterial } from './tls-material.js';

export interface ListenerOptions {
  readonly policy: Policy;
  /** Where accepted mail goes (@mailgw/queue). The caller opens and closes it. */
  readonly store: MailStore;
  readonly logger: Logger;
  /** State directory: self-signed certificates (tls/), protocol logs (logs/protocol/). */
  readonly dataDir: string;
  /** Base for relative tlsCertificate/tlsKey paths (the gateway.yaml directory); default cwd. */
  readonly configDir?: string;
  /** messageRateLimit counter; default one in memory (per process). */
  readonly rateCounter?: RateCounter;
  /** Reverse DNS for client host names; default none (Received shows the [ip] literal). */
  readonly resolver?: SMTPServerResolver;
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
   * Stops accepting, lets transactions in progress finish (at most graceMs, default 10 s),
   * answers everyone else 421 4.3.2 and closes.
   */
  close(opts?: { graceMs?: number }): Promise<void>;
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

/** Waits for `p`, at most `ms`, without leaving a timer behind. */
async function atMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export async function startListeners(opts: ListenerOptions): Promise<Listeners> {
  const { policy, logger } = opts;
  const plan = planSockets(policy.connectors);
  if (!plan.ok) throw new Error(`cannot listen:\n  ${plan.errors.join('\n  ')}`);
  const tls = await loadTlsMaterial(policy.connectors, { configDir: opts.configDir ?? process.cwd(), dataDir: opts.dataDir, logger });
  const ownRate = !opts.rateCounter;
  const ctx: ListenerContext = {
    policy,
    store: opts.store,
    rate: opts.rateCounter ?? createMemoryRateCounter(),
    logger,
    tls,
    limits: new ConnectionLimits(),
    protocolLogs: new ProtocolLogs(path.join(opts.dataDir, 'logs', 'protocol')),
    connections: new Set(),
    draining: false,
  };

  const servers: Array<{ server: GatewayServer; socket: PlannedSocket }> = [];
  const closeServers = () => Promise.all(servers.map(({ server }) => new Promise<void>((r) => server.server.close(() => r()))));
  for (const socket of plan.sockets) {
    const server = new GatewayServer(serverOptions(socket, tls, opts.resolver), ctx);
    server.on('error', (err: Error) => logger.warn({ err, address: socket.host, port: socket.port }, 'smtp listener error'));
    try {
      await listen(server, socket);
    } catch (e) {
      await closeServers();
      const names = socket.connectors.map((c) => `"${c.name}"`).join(', ');
      throw new Error(`cannot listen on ${socket.host.includes(':') ? `[${socket.host}]` : socket.host}:${socket.port} for connector ${names}: ${(e as Error).message}`);
    }
    servers.push({ server, socket });
    logger.info(
      { address: socket.host, port: socket.port, ipv6Only: socket.ipv6Only || undefined, implicitTLS: socket.implicitTLS || undefined, bindings: socket.bindings, connectors: socket.connectors.map((c) => c.name) },
      `listening on ${socket.host.includes(':') ? `[${socket.host}]` : socket.host}:${socket.port}`,
    );
  }
  if (servers.length === 0) logger.warn('no enabled connector: not listening anywhere');

  let closing: Promise<void> | null = null;
  return {
    addresses() {
      return servers.map(({ server, socket }) => {
        const a = server.server.address();
        const info = a && typeof a === 'object' ? a : { address: socket.host, port: socket.port, family: '' };
        return { address: info.address, port: info.port, family: info.family, connectors: socket.connectors.map((c) => c.name) };
      });
    },
    connectionCount: () => ctx.connections.size,
    close(closeOpts = {}) {
      closing ??= (async () => {
        const graceMs = closeOpts.graceMs ?? 10_000;
        ctx.draining = true;
        const stopped = closeServers();
        for (const { server } of servers) for (const s of server._pendingSockets.values()) s.destroy();
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
