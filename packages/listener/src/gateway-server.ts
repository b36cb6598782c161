// smtp-server's SMTPServer for one socket, with mailgw's connection class, and the PROXY header
// (versions 1 and 2) read from balancers trusted by IP range (gateway trustedProxies) instead of
// the library's version 1 reader and its list of single addresses.
import type net from 'node:net';
import { normaliseClientIp, rangeContains } from '@mailgw/config';
import { formatReply } from '@mailgw/mail';
import { REPLIES } from '@mailgw/policy';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { GatewayConnection } from './connection.js';
import type { ListenerContext } from './context.js';
import './library-overrides.js';
import { parseProxyHeader } from './proxy-header.js';
import { sessionIds } from './session-id.js';

/** How long a refused PROXY header's 421 has to leave before the socket is destroyed. */
const PROXY_REFUSAL_LINGER_MS = 1000;

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
   * random bytes, session-id.ts) and hands it on at setImmediate: the same, with ours. With
   * one, mailgw reads it itself (version 1 and 2; the library reads version 1 only).
   */
  override _handleProxy(socket: net.Socket, callback: HandleProxyCallback): void {
    const id = nextSessionId();
    if (!this._expectsProxyHeader(socket)) {
      setImmediate(() => callback(null, { id }));
      return;
    }
    this.readProxyHeader(socket, id, callback);
  }

  /**
   * The PROXY header of a trusted balancer, read before anything else (proxy-header.ts): the
   * client address in it becomes the session's; a LOCAL or UNKNOWN one leaves the balancer's.
   * A header that is not one ends the connection with a 421 and a log line saying why. How
   * long it may take is the library's pre-session timeout, which closes the socket.
   */
  private readProxyHeader(socket: net.Socket, id: string, callback: HandleProxyCallback): void {
    const proxy = socket.remoteAddress ?? '';
    let received: Buffer = Buffer.alloc(0);
    let finished = false;
    const finish = (err: Error | null, options?: { id: string; remoteAddress?: string; remotePort?: number }) => {
      if (finished) return;
      finished = true;
      socket.removeListener('readable', read);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      socket.removeListener('end', onClose);
      if (err) {
        // Late errors (EPIPE while the 421 is flushed) must not reach the process.
        socket.on('error', () => undefined);
        if (socket.writableEnded) setTimeout(() => socket.destroy(), PROXY_REFUSAL_LINGER_MS).unref();
        else socket.destroy();
      }
      callback(err, options);
    };
    const read = () => {
      let chunk: Buffer | null;
      while (!finished && (chunk = socket.read() as Buffer | null) !== null) {
        received = received.length ? Buffer.concat([received, chunk]) : chunk;
        const header = parseProxyHeader(received);
        if (header.kind === 'incomplete') continue;
        if (header.kind === 'invalid') {
          this.ctx.logger.warn({ sessionId: id, proxy, reason: header.reason }, 'PROXY header refused, connection closed');
          socket.end(`${formatReply(REPLIES.proxyHeaderInvalid)}\r\n`);
          finish(new Error(`invalid PROXY header from ${proxy}: ${header.reason}`));
          return;
        }
        const rest = received.subarray(header.length);
        if (rest.length > 0) socket.unshift(rest);
        finish(null, header.source ? { id, remoteAddress: header.source.address, remotePort: header.source.port } : { id });
      }
    };
    const onError = (err: Error) => finish(err);
    const onClose = () => finish(new Error(`connection from ${proxy} ended before its PROXY header`));
    socket.on('readable', read);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('end', onClose);
  }

  /** A PROXY header is expected (and required) from trusted proxies only; nobody else may claim an address. */
  override _expectsProxyHeader(socket: net.Socket): boolean {
    const ip = normaliseClientIp(socket.remoteAddress ?? '');
    return !!ip && this.ctx.policy.config.gateway.trustedProxies.some((r) => rangeContains(r, ip));
  }
}
