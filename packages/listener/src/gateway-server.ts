// smtp-server's SMTPServer for one socket, with mailgw's connection class and PROXY v1 trust
// by IP range (gateway trustedProxies) instead of the library's list of single addresses.
import type net from 'node:net';
import { normaliseClientIp, rangeContains } from '@mailgw/config';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { GatewayConnection } from './connection.js';
import type { ListenerContext } from './context.js';
import './library-overrides.js';

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

  /** A PROXY v1 header is expected (and required) from trusted proxies only; nobody else may claim an address. */
  override _expectsProxyHeader(socket: net.Socket): boolean {
    const ip = normaliseClientIp(socket.remoteAddress ?? '');
    return !!ip && this.ctx.policy.config.gateway.trustedProxies.some((r) => rangeContains(r, ip));
  }
}
