// A raw SMTP client for tests: exact bytes out, whole replies in (multi-line replies joined),
// several client addresses on loopback (localAddress), PROXY v1 and v2, STARTTLS on the same socket.
import net from 'node:net';
import tls from 'node:tls';

/** A reply as the test client read it off the wire (the server's replies are @mailgw/mail's Reply). */
export interface ClientReply {
  readonly code: number;
  /** Text of each line after "ddd-" / "ddd ". */
  readonly lines: string[];
  /** The last line as sent: "550 5.7.1 Unable to relay". */
  readonly last: string;
}

export interface ConnectOptions {
  host: string;
  port: number;
  localAddress?: string;
  /** A PROXY v1 line to send first (without CRLF), e.g. "PROXY TCP4 203.0.113.9 127.0.0.1 4000 25", or a v2 header's bytes (helpers/proxy-v2.ts). */
  proxy?: string | Buffer;
  /** Write these bytes right after connecting, before the greeting (early talker). */
  early?: string;
  /** Wait for the greeting before resolving (default true). */
  greeting?: boolean;
  /** TLS from the first byte (implicitTLS listeners). */
  tls?: boolean;
  /** Keep this side open when the server closes its side (net's allowHalfOpen). */
  allowHalfOpen?: boolean;
}

export class SmtpClosedError extends Error {
  constructor(readonly buffered: string) {
    super(`connection closed${buffered ? ` (unparsed: ${JSON.stringify(buffered)})` : ''}`);
  }
}

export class RawSmtp {
  greeting: ClientReply | null = null;
  private socket: net.Socket;
  private buf = '';
  private replies: ClientReply[] = [];
  private waiters: Array<{ resolve: (r: ClientReply) => void; reject: (e: Error) => void }> = [];
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    let onClose!: () => void;
    this.closed = new Promise((r) => (onClose = r));
    this.attach(socket, onClose);
  }

  static async connect(o: ConnectOptions): Promise<RawSmtp> {
    const where = { host: o.host, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}), ...(o.allowHalfOpen ? { allowHalfOpen: true } : {}) };
    const socket = o.tls ? tls.connect({ ...where, rejectUnauthorized: false }) : net.connect(where);
    await new Promise<void>((resolve, reject) => {
      socket.once(o.tls ? 'secureConnect' : 'connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawSmtp(socket);
    if (o.proxy) socket.write(typeof o.proxy === 'string' ? `${o.proxy}\r\n` : o.proxy);
    if (o.early) socket.write(o.early);
    if (o.greeting !== false) c.greeting = await c.read();
    return c;
  }

  private attach(socket: net.Socket, onClose?: () => void): void {
    socket.on('data', (d: Buffer) => this.onData(d.toString('latin1')));
    socket.on('error', () => undefined);
    if (onClose) {
      socket.on('close', () => {
        this.ended = true;
        for (const w of this.waiters.splice(0)) w.reject(new SmtpClosedError(this.buf));
        onClose();
      });
    }
  }

  private onData(s: string): void {
    this.buf += s;
    let lines: string[] = [];
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i < 0) break;
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      lines.push(line);
      if (line.length < 4 || line[3] !== '-') {
        const reply: ClientReply = { code: Number(line.slice(0, 3)), lines: lines.map((l) => l.slice(4)), last: line };
        lines = [];
        const w = this.waiters.shift();
        if (w) w.resolve(reply);
        else this.replies.push(reply);
      }
    }
    // An unfinished multi-line reply stays in the buffer until its last line arrives.
    if (lines.length) this.buf = lines.map((l) => `${l}\r\n`).join('') + this.buf;
  }

  /** The next reply; rejects with SmtpClosedError when the server closed the connection first. */
  read(): Promise<ClientReply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.reject(new SmtpClosedError(this.buf));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** The client's port: with the gateway's port, it names the connection on the gateway's side. */
  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  write(raw: string | Buffer): void {
    this.socket.write(typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw);
  }

  async cmd(line: string): Promise<ClientReply> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  /** EHLO, returning the keywords (without the greeting line). */
  async ehlo(name = 'client.test'): Promise<ClientReply> {
    return this.cmd(`EHLO ${name}`);
  }

  /** STARTTLS and the handshake; resolves with the 220 reply. */
  async starttls(options: tls.ConnectionOptions = {}): Promise<ClientReply> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) return r;
    await this.upgrade(options);
    return r;
  }

  /** TLS handshake on the current socket (after a 220 to STARTTLS); `options` for a client of another kind (old TLS versions, …). */
  async upgrade(options: tls.ConnectionOptions = {}): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    const secure = tls.connect({ rejectUnauthorized: false, ...options, socket: plain });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  /** The server's certificate (after STARTTLS or on an implicit-TLS connection). */
  peerCertificate(): tls.PeerCertificate | null {
    return this.socket instanceof tls.TLSSocket ? this.socket.getPeerCertificate() : null;
  }

  /** AUTH PLAIN with an initial response. */
  authPlain(user: string, pass: string): Promise<ClientReply> {
    return this.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`);
  }

  /** MAIL, RCPTs, DATA and the message (dot-stuffed here unless raw); returns every reply. */
  async transaction(from: string, to: string[], message?: string | Buffer, opts: { raw?: boolean; mailParams?: string } = {}): Promise<{ mail: ClientReply; rcpt: ClientReply[]; data?: ClientReply; end?: ClientReply }> {
    const mail = await this.cmd(`MAIL FROM:<${from}>${opts.mailParams ? ` ${opts.mailParams}` : ''}`);
    const rcpt: ClientReply[] = [];
    for (const t of to) rcpt.push(await this.cmd(`RCPT TO:<${t}>`));
    if (message === undefined) return { mail, rcpt };
    const data = await this.cmd('DATA');
    if (data.code !== 354) return { mail, rcpt, data };
    this.write(opts.raw ? message : dotStuff(message));
    this.write('.\r\n');
    return { mail, rcpt, data, end: await this.read() };
  }

  async quit(): Promise<void> {
    if (!this.ended) {
      this.write('QUIT\r\n');
      await this.read().catch(() => undefined);
    }
    this.socket.end();
    await this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Dot-stuffing for DATA; the message must end with CRLF. */
export function dotStuff(message: string | Buffer): Buffer {
  const s = typeof message === 'string' ? message : message.toString('latin1');
  return Buffer.from(s.replace(/^\./gm, '..'), 'latin1');
}

/** The queue id from a "250 2.6.0 <id> [InternalId=…] Queued mail for delivery" reply. */
export function queueIdOf(r: ClientReply): string {
  const m = /\[InternalId=([0-9A-Z]+)\]/.exec(r.last);
  if (!m) throw new Error(`no InternalId in ${JSON.stringify(r.last)}`);
  return m[1]!;
}
