// smtp-server's SMTPServer for one socket, with mailgw's connection class and PROXY v1 trust
// by IP range (gateway trustedProxies) instead of the library's list of single addresses.
import type net from 'node:net';
import { normaliseClientIp, rangeContains } from '@mailgw/config';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { GatewayConnection } from './connection.js';
import type { ListenerContext } from './context.js';
import './library-overrides.js';
import { sessionIds } from './session-id.js';

type HandleProxyCallback = Parameters<SMTPServer['_handleProxy']>[1];

/** One per process: every socket's server draws from it (session-id.ts says why). */
const nextSessionId = sessionIds();

export class GatewayServer extends SMTPServer {
  private ctx: ListenerContext;

  constructor(options: SMTPServerOptions, ctx: ListenerContext) {
    super(options);
    this.ctx = ctx;
  }

  /** Live reload: connections accepted from now on get `ctx`; open ones keep theirs. */
  useContext(ctx: ListenerContext): void {
    this.ctx = ctx;
  }

  override connect(socket: net.Socket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new GatewayConnection(this, socket, socketOptions ?? {}, this.ctx);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data) => this._onClientConnect(data));
    connection.init();
  }

  /**
   * Without a PROXY header to read, the library's _handleProxy only makes a session id (from
   * random bytes, session-id.ts) and hands it on at setImmediate: the same, with ours.
   */
  override _handleProxy(socket: net.Socket, callback: HandleProxyCallback): void {
    if (this._expectsProxyHeader(socket)) return super._handleProxy(socket, callback);
    const options = { id: nextSessionId() };
    setImmediate(() => callback(null, options));
  }

  /** A PROXY v1 header is expected (and required) from trusted proxies only; nobody else may claim an address. */
  override _expectsProxyHeader(socket: net.Socket): boolean {
    const ip = normaliseClientIp(socket.remoteAddress ?? '');
    return !!ip && this.ctx.policy.config.gateway.trustedProxies.some((r) => rangeContains(r, ip));
  }
}
