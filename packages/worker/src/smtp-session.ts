// One outbound SMTP/LMTP session over nodemailer's SMTPConnection, with promises and with every
// outcome turned into per-recipient replies.
import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { ehloOffers, rcptRejections, sendCommand, useChunking, useFastDataStream, type ChunkingPlan, type SmtpError } from './library-overrides.js';
import { outboundTransfer } from '@mailgw/policy';
import { echoText, formatReply, localReply, parseReply, type Reply } from '@mailgw/mail';
import type { RouteAuth } from '@mailgw/config';
import type { TLSSocket } from 'node:tls';
import { daneMismatch, daneNames, peerChain } from './dane.js';
import { certificateProblem, describePolicy, mustUseTls, policyFailedReply, tlsOptions, type SessionTlsPolicy } from './tls-policy.js';
import type { SendSessionLog } from './send-protocol-log.js';

export interface SmtpTimeouts {
  /** TCP connect (default 30 s). */
  connectionMs: number;
  /** Until the 220 greeting (default 30 s). */
  greetingMs: number;
  /** Inactivity during a session, e.g. waiting for the reply to the final dot (default 10 min, RFC 5321 §4.5.3.2.6). */
  socketMs: number;
}

export const DEFAULT_TIMEOUTS: SmtpTimeouts = { connectionMs: 30_000, greetingMs: 30_000, socketMs: 600_000 };

export interface SessionOptions {
  /** IP address to connect to. */
  readonly address: string;
  readonly port: number;
  /** Host name of the next hop (TLS server name, Remote-MTA); the IP for literals. */
  readonly hostName: string;
  readonly secure: boolean;
  readonly lmtp: boolean;
  /** What TLS the session must have (tls-policy.ts). */
  readonly tls: SessionTlsPolicy;
  /** CA certificates trusted besides the system's (PEM). */
  readonly extraCAs?: readonly string[];
  /** Local address to connect from (a send connector's sourceIPAddress). */
  readonly localAddress?: string | null;
  /** Our EHLO name. */
  readonly clientName: string;
  readonly auth: RouteAuth | null;
  readonly timeouts: SmtpTimeouts;
  /** The send protocol log of this session (a Verbose send connector). */
  readonly protocolLog?: SendSessionLog | null;
}

/** A failure while setting up or checking TLS (not a refused or unreachable host). */
function isTlsFailure(err: SmtpError & { originalCode?: string }): boolean {
  if (err.code === 'ETLS' || err.code === 'EREQUIRETLS') return true;
  return /CERT|SELF_SIGNED|TLS|SSL|UNABLE_TO_|ALTNAME|HOSTNAME/i.test(err.originalCode ?? '') || /certificate|altnames|self[- ]signed|\bTLS\b|\bSSL\b/i.test(err.message);
}

export interface SendEnvelope {
  /** '' for the null sender. */
  readonly from: string;
  readonly to: readonly string[];
  readonly size: number;
  readonly use8BitMime: boolean;
  /** The message came in with SMTPUTF8 (RFC 6531): never sent to a next hop without it. */
  readonly smtpUtf8?: boolean;
  /** The message came in with BODY=BINARYMIME (RFC 3030): only BDAT to a hop offering BINARYMIME. */
  readonly binaryMime?: boolean;
  readonly dsn?: { ret?: string | undefined; envid?: string | undefined; notify?: readonly string[] | undefined; orcpt?: string | undefined } | undefined;
}

export interface SendReport {
  /** A reply for every address of the envelope (2xx accepted, 4xx/5xx refused). */
  readonly replies: ReadonlyMap<string, Reply>;
  /** The session failed without a reply (dropped, timed out): the refusals are local 4xx. */
  readonly connectionLost: boolean;
  /** The next hop announced DSN: it carries NOTIFY/ORCPT on, so we send no SUCCESS DSN. */
  readonly dsnSupported: boolean;
}

/** Connecting, TLS or AUTH failed: nothing was sent. */
export class SessionOpenError extends Error {
  override readonly name = 'SessionOpenError';
  constructor(
    readonly reply: Reply,
    options?: { cause?: unknown; tlsFailure?: TlsSessionFailure },
  ) {
    super(formatReply(reply), options);
    this.tlsFailure = options?.tlsFailure ?? null;
  }
  /** The session failed its TLS policy (not a refused or unreachable host): what TLS-RPT counts. */
  readonly tlsFailure: TlsSessionFailure | null;
}

/** Why a session failed its TLS policy, with the addresses TLS-RPT reports. */
export interface TlsSessionFailure {
  readonly detail: string;
  /** The TLS library's error code (CERT_HAS_EXPIRED, …) or nodemailer's (EREQUIRETLS), if any. */
  readonly code: string | null;
  readonly localAddress: string | null;
  readonly remoteAddress: string;
}

function connectionReply(err: SmtpError, where: string): Reply {
  const detail = (err.message || err.code || 'error').replace(/\s+/g, ' ').slice(0, 300);
  return localReply(451, '4.4.2', `Connection to ${where} lost: ${detail}`);
}

export class SmtpSession {
  messages = 0;
  /** A transaction failed: RSET before the next one. */
  dirty = false;
  private broken = false;
  private logClosed = false;
  /** How the transaction being sent goes (useChunking asks at its MAIL FROM). */
  private chunking: ChunkingPlan | null = null;

  private constructor(
    private readonly conn: SMTPConnection,
    readonly remoteName: string,
    readonly remoteAddress: string,
    private readonly log: SendSessionLog | null,
    /** The TLS policy the session was opened under. */
    readonly tls: SessionTlsPolicy,
    /** Our address on this session (TLS-RPT's sending-mta-ip). */
    readonly localAddress: string | null,
    private readonly lmtp: boolean,
  ) {
    // BDAT instead of DATA for the transactions send() plans so (library-overrides.ts).
    useChunking(conn, () => this.chunking);
    // An 'error' event without a listener would crash the process; the send/connect
    // callbacks report the same error.
    conn.on('error', () => {
      this.broken = true;
    });
    conn.on('end', () => {
      this.broken = true;
    });
  }

  /** Whether the session was upgraded to TLS (STARTTLS or smtps). */
  get secure(): boolean {
    return this.conn.secure;
  }

  /**
   * Why this session would fail verified TLS to its host name (no STARTTLS, untrusted chain,
   * wrong name), or null: what MTA-STS `testing` reports while delivering anyway.
   */
  tlsProblem(): string | null {
    if (!this.conn.secure) return 'STARTTLS not used (not offered or failed)';
    // nodemailer keeps the upgraded TLS socket there (no public accessor).
    const socket = (this.conn as unknown as { _socket?: Partial<TLSSocket> })._socket;
    if (!socket || typeof socket.getPeerCertificate !== 'function') return null;
    return certificateProblem(socket as TLSSocket, this.remoteName);
  }

  /** Still connected and in a clean state. */
  get usable(): boolean {
    return !this.broken && !this.conn.destroyed;
  }

  static async open(o: SessionOptions): Promise<SmtpSession> {
    const where = `${o.hostName}[${o.address}]:${o.port}`;
    // SNI: under DANE the TLSA base domain (RFC 7672 §8.1: the provider's name for an MX host that is its alias).
    const servername = isIP(o.hostName) ? undefined : (o.tls.dane?.base ?? o.hostName);
    const requireTLS = mustUseTls(o.tls);
    const conn = new SMTPConnection({
      host: o.address,
      port: o.port,
      secure: o.secure,
      lmtp: o.lmtp,
      name: o.clientName,
      requireTLS,
      // Opportunistic STARTTLS: upgrade when offered, go on in plaintext if the upgrade fails.
      opportunisticTLS: !requireTLS,
      ...(servername ? { servername } : {}),
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      tls: { ...tlsOptions(o.tls, o.hostName, o.extraCAs ?? []), ...(servername ? { servername } : {}) },
      connectionTimeout: o.timeouts.connectionMs,
      greetingTimeout: o.timeouts.greetingMs,
      socketTimeout: o.timeouts.socketMs,
      socketCloseTimeout: 2000,
      ...(o.protocolLog ? { transactionLog: true, logger: o.protocolLog.nodemailerLogger() as unknown as SMTPConnection.Options['logger'] } : { logger: false }),
      allowInternalNetworkInterfaces: true,
    });
    // Outbound DATA without nodemailer's per-byte loop, on this connection only.
    useFastDataStream(conn);
    const log = o.protocolLog ?? null;
    const localOf = () => (conn as unknown as { _socket?: { localAddress?: string } })._socket?.localAddress ?? o.localAddress ?? null;
    const tlsFailure = (detail: string, code: string | null, localAddress = localOf()): TlsSessionFailure => ({ detail, code, localAddress, remoteAddress: o.address });
    log?.write('+', '', `${o.hostName}; TLS policy: ${describePolicy(o.tls) || 'opportunistic'}`);
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        conn.once('error', onError);
        conn.connect((err) => {
          conn.off('error', onError);
          if (err) reject(err);
          else resolve();
        });
      });
    } catch (e) {
      const local = localOf();
      conn.close();
      const err = e as SmtpError & { originalCode?: string };
      log?.write('-', '', `session failed: ${err.message}`);
      const reply = parseReply(err.response);
      if (isTlsFailure(err)) {
        // Required TLS that could not be had: 4.7.5, the message waits; it never goes in plain text.
        if (requireTLS) throw new SessionOpenError(policyFailedReply(o.tls, where, err.message), { cause: e, tlsFailure: tlsFailure(err.message, err.originalCode ?? err.code ?? null, local) });
        throw new SessionOpenError(localReply(451, '4.7.0', `TLS with ${where} failed: ${err.message}`), { cause: e });
      }
      // Whatever the greeting said (even 554), another MX host or a later try may do better.
      throw new SessionOpenError(reply && reply.code >= 400 ? localReply(451, '4.4.1', `${where} refused the session: ${formatReply(reply)}`) : localReply(451, '4.4.1', `Could not connect to ${where}: ${err.message}`), { cause: e });
    }
    if (o.tls.dane) {
      // DANE: the TLSA records judge the certificate, before anything but EHLO is sent.
      const socket = (conn as unknown as { _socket?: Partial<TLSSocket> })._socket;
      const problem = !conn.secure || !socket || typeof socket.getPeerCertificate !== 'function' ? 'no TLS session' : daneMismatch(o.tls.dane.records, peerChain((socket as TLSSocket).getPeerCertificate(true)), daneNames(o.tls.dane.base, o.hostName));
      if (problem) {
        const failure = tlsFailure(`DANE: ${problem}`, null);
        conn.close();
        log?.write('-', '', `DANE: ${problem}`);
        throw new SessionOpenError(policyFailedReply(o.tls, where, `DANE: ${problem}`), { tlsFailure: failure });
      }
    }
    if (o.auth) {
      try {
        await new Promise<void>((resolve, reject) => {
          if (o.auth!.mechanism === 'BasicAuthRequireTLS' && !conn.secure) reject(new Error('BasicAuthRequireTLS: the session is not encrypted'));
          else conn.login({ user: o.auth!.user, pass: o.auth!.pass }, (err) => (err ? reject(err) : resolve()));
        });
      } catch (e) {
        conn.close();
        log?.write('-', '', `authentication failed: ${(e as Error).message}`);
        // A refused login is our configuration's fault, never the sender's: retry, do not bounce.
        throw new SessionOpenError(localReply(451, '4.7.0', `Authentication at ${where} failed: ${(e as Error).message}`), { cause: e });
      }
    }
    log?.write('*', conn.secure ? 'TLS established' : 'TLS not used', '');
    return new SmtpSession(conn, o.hostName, o.address, log, o.tls, localOf(), o.lmtp);
  }

  /** Sends one transaction; never rejects: every failure is a reply per recipient. */
  /** `body` in parts (header fields to prepend, then the message) is streamed, not joined. */
  async send(env: SendEnvelope, body: Buffer | readonly Buffer[]): Promise<SendReport> {
    this.messages++;
    const replies = new Map<string, Reply>();
    const where = `${this.remoteName}[${this.remoteAddress}]`;
    const plan = outboundTransfer({
      body: env.binaryMime ? 'BINARYMIME' : env.use8BitMime ? '8BITMIME' : '7BIT',
      smtpUtf8: env.smtpUtf8 === true,
      lmtp: this.lmtp,
      offered: ehloOffers(this.conn),
      where,
    });
    if (!plan.send) {
      // RFC 6531 3.2, RFC 3030 3: no downgrade, no conversion. Nothing was sent, the session stays clean for other mail.
      this.log?.write('*', '', `not sent: ${plan.reason}`);
      for (const a of env.to) replies.set(a, plan.reply);
      return { replies, connectionLost: false, dsnSupported: false };
    }
    this.chunking = plan.command === 'BDAT' ? { binaryMime: plan.body === 'BINARYMIME' } : null;
    const dsn = env.dsn && {
      ...(env.dsn.ret ? { ret: env.dsn.ret } : {}),
      ...(env.dsn.envid ? { envid: env.dsn.envid } : {}),
      ...(env.dsn.notify ? { notify: [...env.dsn.notify] } : {}),
      ...(env.dsn.orcpt ? { orcpt: env.dsn.orcpt } : {}),
    };
    const result = await new Promise<{ err: SmtpError | null; info: SMTPConnection.SentMessageInfo | null }>((resolve) => {
      this.conn.send(
        { from: env.from, to: [...env.to], size: env.size, use8BitMime: env.use8BitMime, ...(dsn && Object.keys(dsn).length ? { dsn } : {}) },
        Buffer.isBuffer(body) ? body : Readable.from(body, { objectMode: false }),
        (err, info) => resolve({ err: (err as SmtpError | null) ?? null, info: info ?? null }),
      );
    });
    const refusals = (list: readonly SmtpError[]) => {
      for (const r of list) {
        if (r.recipient && !replies.has(r.recipient)) replies.set(r.recipient, parseReply(r.response) ?? localReply(451, '4.0.0', `${where}: ${r.message}`));
      }
    };
    if (!result.err && result.info) {
      const info = result.info;
      refusals((info.rejectedErrors ?? []) as SmtpError[]);
      // For LMTP info.response is the last recipient's reply, which may be a refusal.
      const last = parseReply(info.response);
      if (!this.lmtp && !(last && last.code < 300)) {
        // nodemailer read success from the first digit alone ("2500 …"): a reply that is not
        // one is no proof of delivery. Waiting (a copy too many at worst) loses nothing.
        this.broken = true;
        const malformed = localReply(451, '4.5.0', `${where} answered the message with a malformed reply: ${echoText(info.response ?? '', 200)}`);
        for (const a of env.to) if (!replies.has(a)) replies.set(a, malformed);
        return { replies, connectionLost: false, dsnSupported: false };
      }
      const ok = last && last.code < 300 ? last : localReply(250, '2.0.0', 'OK');
      for (const a of info.accepted) if (!replies.has(String(a))) replies.set(String(a), ok);
      // LMTP or odd servers: anything neither accepted nor explained is not delivered.
      for (const a of env.to) if (!replies.has(a)) replies.set(a, localReply(451, '4.0.0', `${where} gave no reply for this recipient`));
      const ehlo = (info as { ehlo?: string[] }).ehlo ?? [];
      return { replies, connectionLost: false, dsnSupported: ehlo.some((l) => /^DSN\b/i.test(l)) };
    }
    const err: SmtpError = result.err ?? new Error('no result');
    this.broken ||= !err.responseCode; // a reply leaves the session usable (after RSET)
    this.dirty = true;
    refusals(err.rejectedErrors ?? []);
    refusals(rcptRejections(this.conn));
    let reply: Reply;
    let connectionLost = false;
    if (err.code === 'EMESSAGE' && !err.responseCode && /size/i.test(err.message)) {
      reply = localReply(552, '5.3.4', `Message size exceeds the limit of ${where}`);
    } else if (err.responseCode) {
      reply = parseReply(err.response) ?? localReply(err.responseCode, `${String(err.responseCode)[0]}.0.0`, err.message);
    } else {
      reply = connectionReply(err, where);
      connectionLost = true;
    }
    for (const a of env.to) if (!replies.has(a)) replies.set(a, reply);
    return { replies, connectionLost, dsnSupported: false };
  }

  /** The MAIL FROM (with its SMTPUTF8) of the probe transaction open on this session, if any. */
  private probeMail: string | null = null;

  /**
   * A recipient probe (recipientVerification): RCPT TO in a transaction of probes, MAIL FROM sent
   * first when none is open with this sender; never DATA. A session serves several probes in
   * turn (the caller closes it with QUIT when done). `rcpt` is null when MAIL FROM was refused;
   * `notSent` says why nothing could be asked (a UTF-8 address to a next hop without SMTPUTF8).
   * Rejects when the connection fails.
   */
  async probe(from: string, to: string): Promise<{ mail: Reply; rcpt: Reply | null; notSent?: string }> {
    const where = `${this.remoteName}[${this.remoteAddress}]`;
    const utf8 = /[^\x00-\x7f]/.test(from + to);
    if (utf8 && !ehloOffers(this.conn).has('SMTPUTF8')) return { mail: localReply(250, '2.0.0', 'not sent'), rcpt: null, notSent: `${where} does not offer SMTPUTF8 and the address is not ASCII` };
    const malformed = (line: string) => localReply(451, '4.5.0', `${where} answered with a malformed reply: ${echoText(line, 200)}`);
    const mailLine = `MAIL FROM:<${from}>${utf8 ? ' SMTPUTF8' : ''}`;
    let mail = localReply(250, '2.1.0', 'transaction open');
    if (this.probeMail !== mailLine) {
      if (this.probeMail !== null && !(await this.reset())) throw new Error('the session could not be reset');
      this.probeMail = null;
      this.dirty = true;
      const answer = await sendCommand(this.conn, mailLine);
      mail = parseReply(answer) ?? malformed(answer);
      if (mail.code >= 300) return { mail, rcpt: null };
      this.probeMail = mailLine;
    }
    const answer = await sendCommand(this.conn, `RCPT TO:<${to}>`);
    return { mail, rcpt: parseReply(answer) ?? malformed(answer) };
  }

  /** RSET after a failed transaction; false (and closed) when the session is not usable. */
  async reset(): Promise<boolean> {
    if (!this.usable) return false;
    // nodemailer drops a pending RSET's callback when the connection dies meanwhile (it only
    // emits 'error'/'end'): without these the delivery, done already, would wait forever.
    const ok = await new Promise<boolean>((resolve) => {
      const gone = () => done(false);
      const done = (result: boolean) => {
        this.conn.off('error', gone);
        this.conn.off('end', gone);
        resolve(result);
      };
      this.conn.once('error', gone);
      this.conn.once('end', gone);
      this.conn.reset((err) => done(!err));
    });
    if (!ok) this.close();
    else this.dirty = false;
    return ok;
  }

  /** QUIT and close. */
  close(): void {
    if (this.log && !this.logClosed) this.log.write('-', '', 'closed');
    this.logClosed = true;
    this.broken = true;
    if (this.conn.destroyed) return;
    try {
      this.conn.quit();
    } catch {
      this.conn.close();
    }
  }
}
