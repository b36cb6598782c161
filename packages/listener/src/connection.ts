// One SMTP connection, served by the connector the policy selects for it. The connection asks
// the policy at every stage and speaks the reply it returns; it only counts (errors, logon
// failures, connections), times (tarpit, timeouts) and moves bytes (DATA → queue).
//
// How one smtp-server instance serves several connectors: each connection gets its own view
// of the server (Object.create(server)) carrying the connection's hooks and its connector's
// TLS certificate, and the per-connector behaviour (FQDN, EHLO keywords, greeting delay,
// timeouts, replies) lives in overrides of this subclass. See library-overrides.ts for the list
// of library members this relies on.
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { PassThrough } from 'node:stream';
import { certificateNames, drained, echoText, formatAddress, formatReply, MAX_REPLY_TEXT, parseAddressCommandArgs, parseEnvelopeAddress, parseReply, rfc5322Date, type EnvelopeAddress, type FilterOutcome, type HeaderEdit, type MailAddress, type MessageFilter } from '@mailgw/mail';
import {
  NEW_TRANSACTION,
  bounceMessage,
  bounceRecipient,
  messageTypes,
  REPLIES,
  authStart,
  recipientLookup,
  recipientToVerify,
  verifiedRecipient,
  recipientRateLimit,
  recipientRateLimitKey,
  RECIPIENT_RATE_WINDOW_MS,
  rewriteRecipient,
  commandParameters,
  connect,
  connectionFilter,
  agentLogWorthy,
  filterAction,
  filterAgent,
  ipBlockListFilter,
  messageObservation,
  refusalAgent,
  dataRefusalAgent,
  refusalObservation,
  ipListQueries,
  senderFilter,
  bdatCommand,
  dataCommand,
  rset,
  helo,
  logonFailure,
  mail,
  mailNeedsSendAs,
  protocolErrors,
  rateLimit,
  rateLimitKey,
  backPressure,
  rcpt,
  reply,
  startTls,
  tarpit,
  withTls,
  domainSecurity,
  domainSecureStamps,
  type AddressCommand,
  type ClientCertificate,
  type AgentLogRecord,
  type CompiledConnector,
  type Decision,
  type IpListAnswer,
  type MembershipAnswer,
  type Reply,
  type Session,
  headerSenders,
  reject,
  sendOnBehalfAnswer,
  sendOnBehalfAttribute,
  type SendAsAnswer,
  type SendOnBehalfAnswer,
  type Transaction,
} from '@mailgw/policy';
import type { Admission } from './connection-limits.js';
import type { SMTPServer, SMTPServerAddress, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { feedDataStream, type DataModeParser } from './fast-data-mode.js';
import { readChunk } from './bdat.js';
import { askIpLists, type ListenerContext } from './context.js';
import { fillDisclaimers } from './disclaimer-tokens.js';
import { ehloLines } from './ehlo.js';
import { originFilter } from './origin-filter.js';
import { acceptedEvent, logFailedAtIntake, logFilterOutcome, takeMessage } from './intake.js';
import { journalReportQueued, planJournal, type JournalPlan } from './journal.js';
import { checkLogon } from './logon.js';
import { TransactionFilters } from './transaction-filters.js';
import { notify } from './observer.js';
import type { ProtocolEvent, ProtocolLog } from './protocol-log.js';
import { ReplyGate } from './reply-gate.js';
import { replyError, replyText, translateLibraryReply } from './replies.js';
import './library-overrides.js';

// Stands in for a space inside a quoted local part while smtp-server parses the line
// (Unicode private use: never in a real address, not in smtp-server's unsafe set).
const SPACE_STAND_IN = '\uE000';

/** Idle limit before a connector is chosen (PROXY header, TLS handshake). */
export const PRE_SESSION_TIMEOUT_MS = 60_000;
const RATE_WINDOW_MS = 60_000;
const FORCE_CLOSE_LINGER_MS = 1000;

type DataCallback = (err?: Error | null, message?: string) => void;
type AuthCallback = (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void;
/** The envelope addresses a refusal was about, for its log line (as Postfix logs from= and to=). */
type RefusalContext = { readonly from?: string; readonly to?: string };

interface BdatTransaction {
  readonly stream: PassThrough & { byteLength: number; sizeExceeded: boolean };
  /** The reply intake decided on (it may decide before BDAT LAST: the rest is still read). */
  outcome: { err: (Error & { responseCode?: number }) | null; message: string | undefined } | null;
  /** Set at BDAT LAST: go on reading commands once the reply is out. */
  resume: (() => void) | null;
}

const endpoint = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** Users warned about recipientRateLimit, and when: one warning per user per 10 minutes in a process (each refusal has its info line). */
const rateWarned = new Map<string, number>();
function shouldWarn(key: string, now = Date.now()): boolean {
  const last = rateWarned.get(key);
  if (last !== undefined && now - last < 600_000) return false;
  if (rateWarned.size >= 10_000) rateWarned.clear();
  rateWarned.set(key, now);
  return true;
}

export class GatewayConnection extends SMTPConnection {
  private readonly ctx: ListenerContext;
  private connector: CompiledConnector | null = null;
  /** The session as the policy saw it at connect (what STARTTLS falls back to). */
  private initial: Session | null = null;
  /** The session now (after TLS and AUTH). */
  private current: Session | null = null;
  private releaseSlot: (() => void) | null = null;
  private readonly gate = new ReplyGate();
  /** The policy's accept reply for the library's next "250 Accepted" / "235". */
  private pendingOk: Reply | null = null;
  private closeAfterReply = false;
  private protocolErrors = 0;
  private logonFailures = 0;
  private accepted = 0;
  private rejected = 0;
  /** Commands the policy refused (MAIL, RCPT, parameters, …): each also has its own log line. */
  private refused = 0;
  /** The sender as the policy parsed it at MAIL; null for the null sender. */
  private sender: MailAddress | null = null;
  /** Bounce verification: why a recipient of this bounce is unverified (the first one's); null: none is. */
  private unverifiedBounce: string | null = null;
  /** MAIL FROM's Send As answer, when the directory was asked: the header's From is often the same address. */
  private mailSendAs: { readonly address: string; readonly answer: SendAsAnswer } | null = null;
  /** SIZE= of this transaction's MAIL (RFC 1870), when declared: RCPT judges recipients' own limits by it. */
  private declaredSize: number | undefined = undefined;
  /** This transaction's MAIL carried SMTPUTF8 (RFC 6531): UTF-8 paths are allowed and the job says so. */
  private smtpUtf8 = false;
  /** A BDAT transaction in progress: the message stream intake reads, and its outcome once known. */
  private bdat: BdatTransaction | null = null;
  /** What the policy counts of this transaction (recipients accepted). */
  private transaction: Transaction = NEW_TRANSACTION;
  private dataActive = false;
  private expired = false;
  private draining = false;
  private lifetime: NodeJS.Timeout | null = null;
  private result = 'closed';
  private readonly started = Date.now();
  private plog: ProtocolLog | null = null;
  private sequence = 0;
  /** The socket corked for this tick's replies (corkReplies), or null. */
  private corked: net.Socket | null = null;
  /** Connection filtering's DNS list answers, looked up from connect on (never rejects). */
  private ipLists: Promise<readonly IpListAnswer[]> | null = null;
  /** Header stamps of this transaction's MAIL (sender filtering's StampStatus). */
  private stamps: HeaderEdit[] = [];
  /** The SASL mechanism of the successful AUTH (the milters' {auth_type}). */
  private authMechanism: string | null = null;
  /** The transaction filters (milters) judging this transaction, begun at MAIL; intake takes them at DATA. */
  private readonly milters: TransactionFilters;

  /** This connection's log: every line carries its session id (the protocol log's too), so one session's lines can be found together. */
  private sessionLogger: Logger | null = null;
  private get logger(): Logger {
    return (this.sessionLogger ??= this.ctx.logger.child({ sessionId: this.id }));
  }

  constructor(server: SMTPServer, socket: net.Socket, options: SMTPConnectionOptions, ctx: ListenerContext) {
    super(server, socket, options);
    this.ctx = ctx;
    this.milters = new TransactionFilters(() => this.ctx.filters, {
      protocol: (data) => this.log('*', data, 'filter'),
      outcome: (o) => this.logFilterOutcome(o),
    });
    ctx.connections.add(this);
  }

  // ------------------------------------------------------------ connect and greeting

  /** Replaces smtp-server's init(): connector first, then the connector's greetingDelay instead of a fixed 100 ms. */
  override init(): void {
    this._server = this.serverView(this._server);
    this._setListeners(() => {
      const go = (chosen: boolean) => {
        if (!chosen) return;
        const delay = this.connector!.config.greetingDelay;
        // A client that talks during the delay gets 421 from the library's early-talker check.
        if (delay > 0) setTimeout(() => this.connectionReady(), delay).unref();
        else this.connectionReady();
      };
      const chosen = this.choose();
      // Under the supervisor the admission is a round trip to it; in one process it is not.
      if (typeof chosen === 'boolean') go(chosen);
      else void chosen.then(go);
    });
  }

  private serverView(server: SMTPServer): SMTPServer {
    const view = Object.create(server) as SMTPServer;
    view.onConnect = (_session, cb) => cb();
    view.onSecure = (_socket, _session, cb) => this.secured(cb);
    view.onAuth = (auth, _session, cb) => void this.authenticate(auth, cb);
    view.onMailFrom = (address, _session, cb) => void this.mailFrom(address, cb);
    view.onRcptTo = (address, _session, cb) => void this.rcptTo(address, cb);
    view.onData = (stream, _session, cb) => void this.receive(stream, cb);
    view.onClose = () => this.closed();
    return view;
  }

  /** Picks the connector and admits the connection; false when it was refused. */
  private choose(): boolean | Promise<boolean> {
    const r = connect(this.ctx.policy, { localAddress: this.localAddress, localPort: this.localPort, clientIP: this.remoteAddress });
    if (!r.session || r.decision.verdict !== 'accept') {
      this.result = `refused:${r.decision.reason.code}`;
      const agent = refusalAgent(r.decision.reason.code);
      if (agent) this.agentAction({ ...agent, action: 'RejectConnection', smtpResponse: formatReply(r.decision.reply), reason: r.decision.reason.code, reasonData: r.decision.reason.message, p1FromAddress: '', recipients: [] });
      this.finalReply(r.decision.reply);
      return false;
    }
    const c = r.session.connector;
    this.connector = c;
    this.initial = this.current = r.session;
    this.name = c.config.fqdn;
    if (c.config.protocolLoggingLevel === 'Verbose') this.plog = this.ctx.protocolLogs.for(c.name);
    this.log('+', '');
    this.log('*', [...r.session.rights.rights].join(' '), 'Set Session Permissions');
    const admission = this.ctx.limits.admit(r.session);
    return admission instanceof Promise ? admission.then((a) => this.admitted(a, c)) : this.admitted(admission, c);
  }

  /** The rest of choose(), once the connection limits have answered. */
  private admitted(admission: Admission, c: CompiledConnector): boolean {
    if (this._closing || this._closed) {
      // The client left while the supervisor was asked.
      if (admission.ok) admission.release();
      return false;
    }
    if (!admission.ok) {
      this.result = 'connection-limit';
      this.log('*', admission.decision.reason.message, 'connection refused');
      this.finalReply(admission.decision.reply);
      return false;
    }
    this.releaseSlot = admission.release;
    this.startIpLists(this.initial!);
    if (this.ctx.draining) {
      this.shutdownNow();
      return false;
    }
    const material = this.ctx.tls.get(c.name);
    if (material) this._server.secureContext = new Map([['*', material.context]]);
    // Domain security: STARTTLS asks for the client's certificate; the session is judged on it
    // afterwards (secured()), a client without one or with an untrusted one is not turned away.
    if (c.config.domainSecureEnabled) this._server.options = { ...this._server.options, requestCert: true, rejectUnauthorized: false };
    this._armTimeout();
    this.lifetime = setTimeout(() => this.lifetimeOver(), c.config.connectionTimeout);
    this.lifetime.unref();
    return true;
  }

  /** Starts connection filtering's DNS list lookups; the greeting does not wait for them (RCPT does). */
  private startIpLists(session: Session): void {
    const queries = ipListQueries(this.ctx.policy, session);
    if (queries.length === 0 || !this.ctx.ipLists) return;
    const started = Date.now();
    this.ipLists = askIpLists(this.ctx.ipLists, queries).then((answers) => {
        for (const a of answers) {
          if (a.result === 'timeout' || a.result === 'error') {
            this.logger.warn({ connector: session.connector.name, client: session.client.text, provider: a.provider, list: a.list, query: a.name, result: a.result, detail: a.detail }, `${a.list} list provider "${a.provider}" skipped: ${a.result === 'timeout' ? 'no answer in time' : a.detail ?? 'lookup failed'}`);
          }
        }
        this.log('*', answers.map((a) => `${a.provider}=${a.result === 'answer' ? (a.addresses ?? []).join('/') : a.result}`).join(' '), `ip lists (${Date.now() - started} ms)`);
        return answers;
      });
  }

  override _sendGreeting(): void {
    const c = this.connector!.config;
    this.emitReply(220, c.banner ? c.banner.replace(/^220[ -]/, '') : `${c.fqdn} mailgw ESMTP service ready at ${rfc5322Date(new Date())}`);
  }

  override _armTimeout(socket: net.Socket = this._socket): void {
    socket.setTimeout(this.connector?.config.connectionInactivityTimeout ?? PRE_SESSION_TIMEOUT_MS, () => this._onTimeout());
  }

  // ------------------------------------------------------------ replies

  /** Everything smtp-server writes comes through here and leaves in Exchange's words. */
  override send(code: number, data?: string | string[] | null, _context?: string | false): void {
    const wire = translateLibraryReply(code, data);
    const ok = this.pendingOk && (data === 'Accepted' || code === 235) ? this.pendingOk : null;
    if (ok) this.pendingOk = null;
    if (data === 'Timeout - closing connection') this.result = 'idle-timeout';
    else if (typeof data === 'string' && data.endsWith('You talk too soon')) this.result = 'early-talker';
    if (wire.lines) this.emitReply(wire.code, [...wire.lines]);
    else {
      const r = ok ?? wire.reply;
      this.emitReply(r.code, replyText(r), !ok && wire.close);
    }
  }

  private speak(r: Reply): void {
    this.emitReply(r.code, replyText(r));
  }

  /** Speaks `r` and closes the connection. */
  private finalReply(r: Reply): void {
    this.closeAfterReply = true;
    this.speak(r);
  }

  private emitReply(code: number, text: string | string[], closeAfter = false): void {
    const s = this.current;
    let close = closeAfter || this.closeAfterReply;
    // maxProtocolErrors: the policy says whether this reply is one and what to say past the limit.
    if (s) {
      const r = protocolErrors(s, reply(code, null, ''), this.protocolErrors);
      this.protocolErrors = r.errors;
      if (r.decision.verdict !== 'accept') {
        this.result = 'too-many-errors';
        code = r.decision.reply.code;
        text = replyText(r.decision.reply);
        close ||= r.decision.disconnect;
      }
    }
    // The tarpit needs the enhanced code too (the gateway's own 4.3.x are not held back): read
    // it before enhancedStatusCodesEnabled may take it off the wire.
    const status = code >= 400 ? (parseReply(`${code} ${Array.isArray(text) ? (text[0] ?? '') : text}`) ?? reply(code, null, '')) : null;
    const c = this.connector?.config;
    if (c && !c.enhancedStatusCodesEnabled && typeof text === 'string') text = text.replace(/^\d\.\d{1,3}\.\d{1,3} /, '');
    // Whatever a reply carries (a filter's words, a library's text), each line leaves printable
    // and within 512 octets: echoed client bytes must never break or start a line.
    text = Array.isArray(text) ? text.map((l) => echoText(l, MAX_REPLY_TEXT)) : echoText(text, MAX_REPLY_TEXT);
    close ||= code === 421;
    this.closeAfterReply = false;
    const write = () => {
      for (const [i, line] of (Array.isArray(text) ? text : [text]).entries()) {
        this.log('>', `${code}${Array.isArray(text) && i < text.length - 1 ? '-' : ' '}${line}`);
      }
      this.corkReplies();
      super.send(code, text, false); // 421 also closes, inside the library
      if (close && code !== 421) this.close();
    };
    const delay = s && status ? tarpit(s, status, close).delayMs : 0;
    if (delay > 0) this.gate.hold(delay, write);
    else this.gate.run(write);
  }

  /**
   * The replies written in one tick leave in one write: a client that pipelines (RFC 2920: MAIL,
   * RCPT..., DATA in one packet, as MTAs do) gets their answers in one segment rather than one
   * each, as Postfix's smtpd answers when it has read all input. The socket is corked at the
   * first reply of a tick and uncorked at its end; no reply waits longer than that. Closing
   * (end()) writes what is corked; STARTTLS flushes its 220 before the handshake takes the socket.
   */
  private corkReplies(): void {
    if (this.corked) return;
    const socket = this._socket;
    socket.cork();
    this.corked = socket;
    process.nextTick(() => this.flushReplies());
  }

  private flushReplies(): void {
    const socket = this.corked;
    this.corked = null;
    if (socket && socket.writableCorked > 0) socket.uncork();
  }

  // ------------------------------------------------------------ commands

  override _createParser(): SMTPStream {
    const parser = super._createParser();
    // DATA found with Buffer#indexOf instead of a byte loop (fast-data-mode.ts), on this parser only.
    (parser as unknown as DataModeParser)._feedDataStream = feedDataStream;
    // The next command after DATA waits for a tarpitted reply too.
    const resume = parser.continue.bind(parser);
    parser.continue = () => this.gate.run(resume);
    return parser;
  }

  /**
   * A quoted local part may hold spaces (RFC 5321 Quoted-string: `<"john doe"@contoso.test>`);
   * smtp-server splits the line at white space first. The spaces inside the quotes are swapped
   * for a private-use character while it parses and put back in the address it returns.
   * (Tabs are not qtext: they stay invalid.)
   */
  override _parseAddressCommand(rawName: string, rawCommand: Buffer | string): ReturnType<SMTPConnection['_parseAddressCommand']> {
    const command = rawCommand.toString();
    const quoted = /<("(?:[^"\\\r\n]|\\.)*")@/.exec(command);
    if (!quoted || !quoted[1]!.includes(' ') || command.includes(SPACE_STAND_IN)) return super._parseAddressCommand(rawName, rawCommand);
    const masked = command.slice(0, quoted.index + 1) + quoted[1]!.replaceAll(' ', SPACE_STAND_IN) + command.slice(quoted.index + 1 + quoted[1]!.length);
    const parsed = super._parseAddressCommand(rawName, masked);
    if (parsed && parsed.address) parsed.address = parsed.address.replaceAll(SPACE_STAND_IN, ' ');
    return parsed;
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    const line = command.toString();
    const name = (line.split(' ')[0] ?? '').toUpperCase();
    if (this.plog) this.log('<', this._redactCredentials(name, line).line);
    // maxProtocolErrors governs; the library's own fixed limit of 10 must not cut in first.
    this._unrecognizedCommands = 0;
    if (name === 'QUIT' && !this._nextHandler) this.result = 'quit';
    if ((this.draining || this.ctx.draining) && this._ready && !this.inTransaction()) {
      this.shutdownNow();
      return;
    }
    super._onCommand(command, callback ? () => this.gate.run(callback) : undefined);
  }

  override _resetSession(): void {
    // RSET (or EHLO, STARTTLS) in the middle of a BDAT transaction: intake sees the stream fail and stores nothing.
    const bdat = this.bdat;
    this.bdat = null;
    bdat?.stream.destroy(new Error('BDAT transaction reset'));
    super._resetSession();
    this.sender = null;
    this.mailSendAs = null;
    this.declaredSize = undefined;
    this.smtpUtf8 = false;
    this.transaction = NEW_TRANSACTION;
    this.unverifiedBounce = null;
    this.pendingOk = null;
    this.stamps = [];
    this.milters.abort();
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    this.hello(command, callback, true);
  }

  override handler_HELO(command: Buffer, callback: () => void): void {
    this.hello(command, callback, false);
  }

  private hello(command: Buffer, callback: () => void, extended: boolean): void {
    const parts = command.toString().trim().split(/\s+/);
    const arg = parts[1] ?? '';
    const decision = helo(this.current!, parts.slice(1));
    if (decision.verdict !== 'accept') this.speak(decision.reply);
    else {
      this.hostNameAppearsAs = arg.toLowerCase();
      this._resetSession();
      if (extended) this.emitReply(250, ehloLines(this.current!, this.remoteAddress, this.secure));
      else this.speak(decision.reply);
    }
    callback();
  }

  override handler_STARTTLS(command: Buffer, callback: () => void): void {
    const args = command.toString().trim().split(/\s+/).length - 1;
    const d = startTls(this.current!, { args, certificateAvailable: this.ctx.tls.has(this.connector!.name) });
    if (d.verdict !== 'accept') {
      this.speak(d.reply);
      return callback();
    }
    this.speak(d.reply);
    // The 220 leaves in plaintext now, before the TLS socket takes over this one.
    this.flushReplies();
    // The library retires the plaintext parser here: commands pipelined behind STARTTLS are dropped.
    this.upgrade(callback);
  }

  /** After the TLS handshake (STARTTLS or implicit): RFC 3207 4.2, forget everything before it, AUTH included. */
  private secured(cb: (err?: Error | null) => void): void {
    this.current = withTls(this.initial!);
    const t = this.tlsInfo();
    this.log('*', t ? `${t.protocol} ${t.cipher}` : '', 'TLS negotiation succeeded');
    const d = domainSecurity(this.ctx.policy, this.current, this.clientCertificate());
    if (d) {
      this.current = d.session;
      this.log('*', d.decision.reason.message, d.decision.reason.code);
      const line = { connector: this.connector?.name, client: this.remoteAddress, why: d.decision.reason.message };
      if (d.session.partnerDomain) this.logger.info({ ...line, partnerDomain: d.session.partnerDomain }, 'domain secured');
      else this.logger.debug(line, 'not domain secured');
    }
    cb();
  }

  /** The certificate the client gave in the TLS handshake (domain security), or null. */
  private clientCertificate(): ClientCertificate | null {
    const socket = this._socket as unknown as tls.TLSSocket;
    if (typeof socket.getPeerCertificate !== 'function') return null;
    const cert = socket.getPeerCertificate();
    if (!cert || Object.keys(cert).length === 0) return null;
    return { authorized: socket.authorized, authorizationError: socket.authorizationError ? String(socket.authorizationError) : null, names: certificateNames(cert) };
  }

  override handler_AUTH(command: Buffer, callback: () => void): void {
    const mechanism = (command.toString().trim().split(/\s+/)[1] ?? '').toUpperCase();
    const d = authStart(this.current!, mechanism);
    if (d.verdict !== 'accept') {
      // Logged and counted as any refused command: "why can't my client log in?" starts here.
      this.noteRefusal(d);
      this.speak(d.reply);
      return callback();
    }
    super.handler_AUTH(command, callback);
  }

  private async authenticate(auth: SMTPServerAuthentication, cb: AuthCallback): Promise<void> {
    const username = auth.username ?? '';
    const client = this.current!.client.text;
    try {
      const r = await checkLogon(this.ctx, this.current!, auth);
      if (r.kind === 'deferred') {
        this.log('*', `${username} ${r.decision.reason.message}`, 'authentication deferred');
        this.logger.warn({ connector: this.connector?.name, client, user: username, why: r.decision.reason.message }, 'directory unavailable: AUTH answered 454');
        return cb(null, { message: replyText(r.decision.reply), responseCode: r.decision.reply.code });
      }
      if (r.kind === 'refused') {
        // A failed attempt: counted here; what to answer is the policy's (maxLogonFailures).
        this.logonFailures++;
        this.log('*', `${username} ${r.why}`, 'authentication failed');
        this.logger.info({ connector: this.connector?.name, client, user: username, why: r.why }, 'authentication failed');
        notify(this.ctx.observer, this.ctx.logger, { type: 'auth-failure', connector: this.connector!.name, clientIP: client, user: username });
        const d = logonFailure(this.current!, this.logonFailures, r.decision);
        if (d.disconnect) this.result = d.reason.code;
        return cb(null, { message: replyText(d.reply), responseCode: d.reply.code });
      }
      this.current = r.session;
      this.authMechanism = auth.method;
      this.pendingOk = r.reply;
      this.log('*', [...r.session.rights.rights].join(' '), 'Set Session Permissions');
      cb(null, { user: r.session.user!.name });
    } catch (e) {
      this.logger.error({ err: e, connector: this.connector?.name, client: this.remoteAddress, user: auth.username }, 'AUTH failed with an internal error');
      cb(null, { message: replyText(REPLIES.authTemporaryFailure), responseCode: REPLIES.authTemporaryFailure.code });
    }
  }

  /** RFC 5321 4.1.1.5: RSET takes no argument (as Postfix: 501; the library would reset anyway). */
  override handler_RSET(command: Buffer, callback: () => void): void {
    const d = rset(this.current!, command.toString());
    if (d.verdict !== 'accept') {
      this.speak(d.reply);
      return callback();
    }
    super.handler_RSET(command, callback);
  }

  /**
   * The library answers QUIT, half-closes and then waits for the client to close its side. We
   * close as soon as the 221 has left, as Postfix's smtpd does (RFC 5321 4.1.1.10: the server
   * may close once it has replied to QUIT). Many clients close without reading the 221 (Postfix's
   * smtp_skip_quit_response is on by default); their reset then meets a closed socket instead of
   * coming back as a read error, with its stack trace and error path, on every connection.
   */
  override handler_QUIT(command: Buffer, callback: () => void): void {
    super.handler_QUIT(command, callback);
    this._socket.destroySoon();
  }

  /**
   * smtp-server knows BODY=7BIT and 8BITMIME only; BINARYMIME (RFC 3030) was judged by the
   * policy already (offered on this connector), so the library checks the rest without it and
   * then records it as envelope.bodyType 'binarymime' as it records the others.
   */
  override _validateMailParams(parsed: Parameters<SMTPConnection['_validateMailParams']>[0]): ReturnType<SMTPConnection['_validateMailParams']> {
    const args = parsed.args as Record<string, string | boolean> | false | undefined;
    if (!args || typeof args.BODY !== 'string' || args.BODY.toUpperCase() !== 'BINARYMIME') return super._validateMailParams(parsed);
    const { BODY: _binary, ...rest } = args;
    return super._validateMailParams({ ...parsed, args: rest } as typeof parsed);
  }

  override handler_MAIL(command: Buffer, callback: () => void): void {
    // Nested MAIL is the library's 503; otherwise the parameters are judged first.
    if (!this.session.envelope.mailFrom && this.parametersRefused('MAIL', command)) return callback();
    super.handler_MAIL(command, callback);
  }

  override handler_RCPT(command: Buffer, callback: () => void): void {
    // RCPT before MAIL is the library's 503; after BDAT the recipients are already with intake.
    if (this.bdat) {
      this.speak(REPLIES.bdatInProgress);
      return callback();
    }
    if (this.session.envelope.mailFrom && this.parametersRefused('RCPT', command)) return callback();
    super.handler_RCPT(command, callback);
  }

  /**
   * The policy's word on a MAIL/RCPT line's ESMTP parameters and on UTF-8 in its path, judged
   * on the raw line (the library decodes xtext and IDNs first). True when it refused and the
   * reply was spoken; a line without a bracketed path is left to the library (501 5.1.7).
   */
  private parametersRefused(command: AddressCommand, line: Buffer): boolean {
    const text = line.toString('utf8');
    const colon = text.indexOf(':');
    const args = colon < 0 ? null : parseAddressCommandArgs(text.slice(colon + 1));
    if (!args) return false;
    const d = commandParameters(this.current!, { command, args, smtpUtf8: this.smtpUtf8 });
    if (d.verdict === 'accept') {
      if (command === 'MAIL') this.smtpUtf8 = d.smtpUtf8;
      return false;
    }
    this.noteRefusal(d);
    this.speak(d.reply);
    return true;
  }

  /** Answers a hook with the policy's reject, closing afterwards when the policy says so. */
  private refuse(d: Decision, cb: (err?: Error | null) => void, about: RefusalContext = {}): void {
    this.noteRefusal(d, about);
    cb(replyError(d.reply));
  }

  /**
   * A policy refusal, before its reply: the protocol log, the log line, the observer, and the
   * close it may ask for. Logged at info, as Postfix logs its rejects: "why was this mail
   * refused?" is the first question asked of a gateway's log.
   */
  private noteRefusal(d: Decision, about: RefusalContext = {}): void {
    if (d.disconnect) {
      this.closeAfterReply = true;
      this.result = d.reason.code;
    }
    this.refused++;
    this.log('*', d.reason.message, d.reason.code);
    this.logger.info({ connector: this.connector?.name, client: this.remoteAddress, ...about, reply: formatReply(d.reply), reason: d.reason.code, why: d.reason.message }, 'policy refused');
    notify(this.ctx.observer, this.ctx.logger, { type: 'refused', connector: this.connector!.name, reason: d.reason.code });
    const agent = refusalAgent(d.reason.code);
    if (agent) this.agentAction({ ...agent, action: 'RejectCommand', smtpResponse: formatReply(d.reply), reason: d.reason.code, reasonData: d.reason.message, p1FromAddress: about.from ?? this.senderText(), recipients: about.to ? [about.to] : [] });
  }

  /** A line of the agent log (Exchange's Get-AgentLog), through the observer. */
  private agentAction(a: Pick<AgentLogRecord, 'agent' | 'event' | 'action' | 'smtpResponse' | 'reason' | 'reasonData' | 'p1FromAddress' | 'recipients'> & { messageId?: string; networkMsgId?: string; p2FromAddresses?: readonly string[] }): void {
    if (!this.ctx.observer) return;
    const record: AgentLogRecord = {
      sessionId: this.id,
      ipAddress: this.remoteAddress,
      messageId: a.messageId ?? '',
      p2FromAddresses: a.p2FromAddresses ?? [],
      networkMsgId: a.networkMsgId ?? '',
      connector: this.connector?.name ?? '',
      directionality: this.current?.user ? 'Originating' : 'Incoming',
      ...a,
    };
    notify(this.ctx.observer, this.ctx.logger, { type: 'agent-action', record });
  }

  private async mailFrom(address: SMTPServerAddress, cb: (err?: Error | null) => void): Promise<void> {
    const s = this.current!;
    const given = address.args && typeof address.args.SIZE === 'string' ? Number(address.args.SIZE) : undefined;
    const size = given !== undefined && Number.isSafeInteger(given) && given >= 0 ? given : undefined;
    let d = mail(this.ctx.policy, s, { sender: address.address, declaredSize: size });
    // A directory user refused another object's address: its Send As right there may allow it.
    let sendAsAsked: { readonly address: string; readonly answer: SendAsAnswer } | null = null;
    const sids = s.user?.directory?.sids;
    if (sids && mailNeedsSendAs(s, d)) {
      const sendAs = await this.askSendAs(address.address, sids);
      d = mail(this.ctx.policy, s, { sender: address.address, declaredSize: size, sendAs });
      // Kept by the address as parsed, as the header's senders are looked up.
      if (d.sender) sendAsAsked = { address: d.sender.address.toLowerCase(), answer: sendAs };
      // Who sent as whom is worth an audit line: the grant comes from the directory, not from gateway.yaml.
      if (d.verdict === 'accept') this.logger.info({ connector: s.connector.name, client: this.remoteAddress, user: s.user!.name, from: address.address, object: sendAs.kind === 'granted' ? sendAs.dn : null, why: d.reason.message }, 'sending as another object (Send As)');
    }
    const about = { from: address.address };
    if (d.verdict !== 'accept') return this.refuse(d, cb, about);
    if (this.ctx.backPressure) {
      const p = backPressure(s, this.ctx.backPressure.current());
      if (p.verdict !== 'accept') return this.refuse(p, cb, about);
    }
    const key = rateLimitKey(s);
    if (key) {
      const r = rateLimit(s, await this.takeRate(key, RATE_WINDOW_MS, 'messageRateLimit counter unavailable'));
      if (r.verdict !== 'accept') return this.refuse(r, cb, about);
    }
    const filtered = senderFilter(this.ctx.policy, s, d.sender);
    if (filtered.decision.verdict !== 'accept') return this.refuse(filtered.decision, cb, about);
    // As the policy parsed it: parts from here to the job.
    const sender = d.sender ? { local: d.sender.local, domain: d.sender.domain } : null;
    const byFilter = await this.milters.begin(s, sender, { ...this.clientFacts(), serverIP: this.localAddress, authMechanism: this.authMechanism, smtpUtf8: this.smtpUtf8 }, () => this._closing || this._closed);
    if (byFilter) return this.refuse(byFilter, cb, about);
    this.stamps = filtered.stamp ? [filtered.stamp] : [];
    if (filtered.stamp) this.log('*', filtered.decision.reason.message, filtered.decision.reason.code);
    this.sender = sender;
    this.mailSendAs = sendAsAsked;
    this.declaredSize = size;
    this.pendingOk = d.reply;
    cb();
  }

  /** Whether a directory user with these SIDs has Send As on the object holding an address. */
  private askSendAs(address: string, sids: readonly string[]): Promise<SendAsAnswer> {
    return this.ctx.directory?.sendAs ? this.ctx.directory.sendAs(address, sids) : Promise.resolve({ kind: 'not-granted', dn: null, why: 'no directory in this process' });
  }

  /**
   * The header's From and Sender of an authenticated user's message (headerSenders), the
   * directory asked what the policy needs (Send As, Send on Behalf): the decision, with an
   * audit line for each grant the directory gave.
   */
  private async judgeHeaderSenders(s: Session, from: readonly string[], sender: string | null, queueId: string): Promise<Decision> {
    const sendAs = new Map<string, SendAsAnswer>(this.mailSendAs ? [[this.mailSendAs.address, this.mailSendAs.answer]] : []);
    const onBehalf = new Map<string, SendOnBehalfAnswer>();
    // Each round asks only what has no answer yet: Send As first, then Send on Behalf.
    for (let round = 0; round < 3; round++) {
      const r = headerSenders(this.ctx.policy, s, { from, sender, sendAs, onBehalf });
      if (r.kind === 'decided') {
        const who = { connector: s.connector.name, client: this.remoteAddress, user: s.user?.name ?? null, queueId };
        for (const grant of r.grants) this.logger.info({ ...who, why: grant }, 'header sender granted by the directory');
        if (r.decision.reason.code === 'header-senders-audit') this.logger.warn({ ...who, why: r.decision.reason.message }, 'header sender would be refused (audit)');
        return r.decision;
      }
      const sids = s.user?.directory?.sids ?? [];
      for (const a of r.sendAs) sendAs.set(a, await this.askSendAs(a, sids));
      const attribute = sendOnBehalfAttribute(this.ctx.policy, s);
      for (const a of r.onBehalf) {
        const entry = attribute && this.ctx.directory?.entryAttributes ? await this.ctx.directory.entryAttributes(a, [attribute]) : ({ kind: 'not-found' } as const);
        onBehalf.set(a, sendOnBehalfAnswer(a, entry, attribute ?? '', s.user!.directory!));
      }
    }
    return reject(REPLIES.directoryUnavailable, 'directory-unavailable', 'the header senders were still undecided after three rounds of directory questions');
  }

  /**
   * The journal reports of this transaction (journal rules, judged on the envelope the client
   * gave, the directory asked about a rule's group); undefined: none; a string: the directory
   * could not say (the message is refused with 451: never taken unjournaled).
   */
  private journalPlan(s: Session): Promise<JournalPlan | string | undefined> {
    return planJournal(this.ctx.policy, s, { sender: this.sender, recipients: this.transaction.recipients }, this.ctx.directory, (why) =>
      this.logger.debug({ connector: s.connector.name, client: this.remoteAddress, why }, 'journal rules'),
    );
  }

  /** Bounce verification at the end of DATA: the decision on an untagged bounce's header, Audit's line when it would have been refused. */
  private bounceJudge(s: Session, why: string): (fields: ReadonlyMap<string, readonly string[]>, queueId: string) => Decision {
    return (fields, queueId) => {
      const d = bounceMessage(this.ctx.policy, why, messageTypes({ fields, parts: null, organizationHeadersTrusted: false }));
      if (d.reason.code === 'bounce-audit') this.logger.warn({ connector: s.connector.name, client: this.remoteAddress, queueId, reason: 'bounce-not-verified', why }, 'bounce would be refused (audit)');
      return d;
    };
  }

  /** The client as the milters see it at MAIL and intake at DATA: its address, name ("[ip]" when unresolved), HELO and TLS. */
  private clientFacts(): { clientIP: string; clientHostname: string; helo: string; tls: { protocol: string; cipher: string } | null } {
    return { clientIP: this.remoteAddress, clientHostname: this.clientHostname || `[${this.remoteAddress}]`, helo: this.hostNameAppearsAs || '', tls: this.tlsInfo() };
  }

  private logFilterOutcome(o: Parameters<typeof logFilterOutcome>[3]): void {
    logFilterOutcome(this.logger, this.ctx.filters, { connector: this.connector?.name, client: this.remoteAddress }, o);
  }

  /** MAIL FROM's directory object and groups (the null sender is not looked up). */
  private async restrictedSender(): Promise<{ address: string | null; answer: MembershipAnswer | null }> {
    if (!this.sender) return { address: null, answer: null };
    const address = `${this.sender.local}@${this.sender.domain}`.toLowerCase();
    const ask = this.ctx.directory?.memberships;
    return { address, answer: ask ? await ask.call(this.ctx.directory, address) : { kind: 'unavailable', why: 'no directory group lookup in this process' } };
  }

  private async rcptTo(address: SMTPServerAddress, cb: (err?: Error | null) => void): Promise<void> {
    // Bounce verification first: the address under a valid tag is the recipient from here on;
    // a bounce to an untagged address of ours is judged with its header at the end of DATA.
    const given = this.ctx.policy.config.gateway.bounceVerification ? parseEnvelopeAddress(address.address) : null;
    const bounce = given?.ok ? bounceRecipient(this.ctx.policy, this.current!, this.sender, given.value, Date.now()) : null;
    const untagged = bounce ? formatAddress(bounce.recipient) : address.address;
    // Address rewriting (inbound): an entry's external address is judged as its internal one.
    const rewrite = rewriteRecipient(this.ctx.policy.addressRewrite, untagged);
    const recipient = rewrite?.recipient ?? untagged;
    if (rewrite) {
      this.log('*', rewrite.reason, 'address rewritten');
      this.logger.debug({ connector: this.current!.connector.name, client: this.remoteAddress, to: rewrite.original, rewrittenTo: rewrite.recipient, entry: rewrite.entry }, 'recipient rewritten');
    }
    // What the client wrote stays the original recipient its DSNs name.
    const orcpt = address.dsn?.orcpt ?? rewrite?.orcpt;
    // recipients: { directory: true }: ask the directory (through the shared cache) first.
    const lookup = recipientLookup(this.ctx.policy, recipient);
    const entry = lookup === null ? undefined : this.ctx.directory ? await this.ctx.directory.recipientEntry(lookup) : ({ answer: 'unavailable', restrictions: null } as const);
    // Delivery restrictions judge the sender by its directory object and groups: asked only for a recipient that has them.
    const restrictions = entry?.restrictions ? { lists: entry.restrictions, sender: await this.restrictedSender() } : undefined;
    const r = rcpt(this.ctx.policy, this.current!, { recipient, transaction: this.transaction, notify: address.dsn?.notify, orcpt, directory: entry?.answer, restrictions, maxReceiveSize: entry?.maxReceiveSize, declaredSize: this.declaredSize });
    // Formatted only for a refusal's log line: an accepted RCPT does not pay for it.
    const about = (): RefusalContext => ({ from: this.senderText(), to: address.address });
    const refuseRecipient = (d: Decision) => {
      // A directory harvest never reaches DATA: sender reputation counts its unknown recipients.
      const seen = this.ctx.reputation ? refusalObservation(this.ctx.policy, this.current!, d, this.hostNameAppearsAs || '') : null;
      if (seen) this.ctx.reputation!.observe(seen);
      return this.refuse(d, cb, about());
    };
    if (r.decision.verdict !== 'accept' || !r.address) return refuseRecipient(r.decision);
    if (!r.duplicate) {
      // The policy accepted it; then, in order and each able to refuse this recipient only:
      // connection filtering, recipient verification at the next hop, the recipient rate limit,
      // the milters. A repeat was judged the first time.
      const a = r.address;
      const refused = (await this.rcptConnectionFilter(a)) ?? (await this.rcptVerification(a)) ?? (await this.rcptRateLimit()) ?? (await this.milters.rcpt(a));
      if (refused) return refuseRecipient(refused);
    }
    this.transaction = r.transaction;
    // An untagged bounce to us: the message is judged by its header at the end of DATA.
    if (bounce?.unverified && this.unverifiedBounce === null) this.unverifiedBounce = bounce.unverified;
    // The transaction holds the recipient records (a repeat is answered again but kept once,
    // with its first NOTIFY/ORCPT): they go into the job as they are.
    this.pendingOk = r.decision.reply;
    cb();
  }

  /** The message filters for this session's mail: the configured ones, after the judging of the host behind an internal relay. */
  private filtersFor(s: Session, onOrigin: (o: { readonly session: Session; readonly helo: string }) => void): { filters?: readonly MessageFilter[] } {
    const origin = originFilter(this.ctx.policy, s, this.ctx.ipLists, this.ctx.ipBlockList, onOrigin);
    const filters = [...(origin ? [origin] : []), ...(this.ctx.filters ?? [])];
    return filters.length > 0 ? { filters } : {};
  }

  /**
   * Connection filtering at RCPT (Exchange judges block lists there, so bypassed recipients still
   * get through): the IP Block List first (from memory), then the DNS lists' answers.
   */
  private async rcptConnectionFilter(a: EnvelopeAddress): Promise<Decision | null> {
    const listed = this.ctx.ipBlockList ? ipBlockListFilter(this.ctx.policy, this.current!, a, this.ctx.ipBlockList.entries(), Date.now()) : null;
    if (listed) {
      if (listed.verdict !== 'accept') return listed;
      this.log('*', listed.reason.message, listed.reason.code);
      return null;
    }
    if (!this.ipLists) return null;
    const f = connectionFilter(this.ctx.policy, this.current!, a, await this.ipLists);
    if (f.verdict !== 'accept') return f;
    if (f.reason.code !== 'not-block-listed') this.log('*', f.reason.message, f.reason.code);
    return null;
  }

  /**
   * recipientVerification: the next hop is asked after every cheaper refusal, so a listed or
   * relay-denied client never makes mailgw probe.
   */
  private async rcptVerification(a: EnvelopeAddress): Promise<Decision | null> {
    const toVerify = this.ctx.recipientVerification ? recipientToVerify(this.ctx.policy, a) : null;
    if (!toVerify) return null;
    const answer = await this.ctx.recipientVerification!.verify(toVerify, this.sender?.domain ?? null);
    const v = verifiedRecipient(this.ctx.policy, a, answer);
    if (v.verdict !== 'accept') return v;
    this.log('*', v.reason.message, v.reason.code);
    return null;
  }

  /** throttlingPolicy.recipientRateLimit: counted once mailgw's own checks accepted the recipient (the milters see only counted ones). */
  private async rcptRateLimit(): Promise<Decision | null> {
    const s = this.current!;
    const throttle = recipientRateLimitKey(this.ctx.policy, s);
    if (!throttle) return null;
    const d = recipientRateLimit(this.ctx.policy, s, await this.takeRate(throttle, RECIPIENT_RATE_WINDOW_MS, 'recipientRateLimit counter unavailable'));
    if (d.verdict === 'accept') return null;
    if (d.reason.code === 'recipient-rate-limit' && shouldWarn(throttle.key)) this.logger.warn({ connector: s.connector.name, client: this.remoteAddress, user: s.user?.name, limit: throttle.limit, why: d.reason.message }, 'user reached recipientRateLimit: its recipients are refused until the oldest of the last 24 hours age out');
    return d;
  }

  /** Counts one under `k` in the shared rate counter: the count before it, or null (logged) when the counter cannot be reached (the policy then refuses for now). */
  private async takeRate(k: { key: string; limit: number }, windowMs: number, unavailable: string): Promise<number | null> {
    try {
      return await this.ctx.rate.take(k.key, k.limit, windowMs);
    } catch (e) {
      this.logger.warn({ err: e, connector: this.current?.connector.name, client: this.remoteAddress }, unavailable);
      return null;
    }
  }

  override handler_DATA(command: Buffer, callback: () => void): void {
    if (this.bdat) {
      this.speak(REPLIES.bdatInProgress);
      return callback();
    }
    const d = this.dataDecision('DATA');
    if (d.verdict !== 'accept') {
      this.speak(d.reply);
      return callback();
    }
    super.handler_DATA(command, callback);
  }

  /** The policy's word on DATA or the first BDAT of a transaction (the queue's state included, logged when it is down). */
  private dataDecision(command: 'DATA' | 'BDAT'): Decision {
    const d = dataCommand(this.current!, { mailAccepted: !!this.session.envelope.mailFrom, transaction: this.transaction, queueAvailable: this.ctx.store.status === 'ready', command, binaryMime: this.session.envelope.bodyType === 'binarymime' });
    if (d.reason.code === 'queue-unavailable') this.log('*', `mail store is ${this.ctx.store.status}`, 'queue unavailable');
    return d;
  }

  /**
   * BDAT <size> [LAST] (RFC 3030), not a library command: the chunk goes into the same intake
   * as DATA (one stream per transaction, the same size, header and hop limits). A chunk is
   * always read before it is answered, also when the transaction is refused (RFC 3030 2).
   */
  handler_BDAT(command: Buffer, callback: () => void): void {
    const parser = this._parser;
    const cmd = bdatCommand(this.current!, command.toString());
    const b = cmd.chunk;
    if (!b || !parser) {
      this.speak(cmd.decision.verdict === 'accept' ? REPLIES.invalidArguments : cmd.decision.reply);
      return callback();
    }
    if (!this.bdat) {
      const d = this.dataDecision('BDAT');
      if (d.verdict !== 'accept') {
        readChunk(parser, b.size, () => undefined, (resume) => {
          this.speak(d.reply);
          resume();
        }, callback);
        return;
      }
      this.startBdat();
    }
    const bdat = this.bdat!;
    const sink = (part: Buffer): void | Promise<void> => {
      if (!bdat.stream.writable) return;
      bdat.stream.byteLength += part.length;
      if (!bdat.stream.write(part)) return drained(bdat.stream);
    };
    readChunk(parser, b.size, sink, (resume) => {
      if (this.bdat !== bdat) return resume(); // reset meanwhile
      if (!b.last) {
        this.speak(REPLIES.chunkReceived(b.size));
        return resume();
      }
      bdat.resume = resume;
      if (bdat.stream.writable) bdat.stream.end();
      this.finishBdat(bdat);
    }, callback);
  }

  /** Opens the transaction's message stream and hands it to intake, as DATA does. */
  private startBdat(): void {
    const stream = Object.assign(new PassThrough(), { byteLength: 0, sizeExceeded: false });
    // Destroyed by RSET or a closed connection, possibly after intake stopped reading: never unhandled.
    stream.on('error', () => undefined);
    const bdat: BdatTransaction = { stream, outcome: null, resume: null };
    this.bdat = bdat;
    void this.receive(stream as unknown as SMTPServerDataStream, (err, message) => {
      bdat.outcome = { err: (err as (Error & { responseCode?: number }) | null | undefined) ?? null, message };
      // Decided before the last chunk (a refusal at the header): the rest is read and dropped.
      if (stream.readableFlowing !== true) stream.resume();
      this.finishBdat(bdat);
    });
  }

  /** Answers BDAT LAST once intake has decided and the last chunk is in. */
  private finishBdat(bdat: BdatTransaction): void {
    if (!bdat.outcome || !bdat.resume || this.bdat !== bdat) return;
    const { err, message } = bdat.outcome;
    const resume = bdat.resume;
    this.bdat = null;
    if (err) this.send(err.responseCode ?? 451, err.message);
    else this.send(250, message ?? 'OK');
    this._resetSession();
    resume();
  }

  // ------------------------------------------------------------ DATA → queue

  private async receive(stream: SMTPServerDataStream, cb: DataCallback): Promise<void> {
    const s = this.current!;
    this.dataActive = true;
    // Intake ends (or aborts) the transaction's filters from here on.
    const { runs: transactionFilters, queueId } = this.milters.take();
    // What the transport rules did, for the message tracking log's AGENTINFO event.
    const agentInfo: string[] = [];
    // The message's spam confidence level (the highest a filter gave), for sender reputation.
    let scl: number | null = null;
    // The filters' outcomes the agent log keeps, written once the client's answer is known.
    const judged: FilterOutcome[] = [];
    // The host before one of internalSMTPServers, when the origin filter found it: the one rated.
    let origin: { readonly session: Session; readonly helo: string } | null = null;
    const journal = await this.journalPlan(s);
    const outcome = await takeMessage(stream, {
      session: s,
      queueId,
      transactionFilters,
      store: this.ctx.store,
      ...this.clientFacts(),
      ehlo: this.openingCommand === 'EHLO',
      sender: this.sender,
      recipients: this.transaction.recipients,
      receiveSizeLimit: this.transaction.receiveSizeLimit,
      sizeLimits: this.transaction.sizeLimits,
      ret: this.session.envelope.dsn?.ret,
      envid: this.session.envelope.dsn?.envid,
      bodyType: this.session.envelope.bodyType,
      smtpUtf8: this.smtpUtf8,
      stamps: [...this.stamps, ...domainSecureStamps(s)],
      ...this.filtersFor(s, (o) => (origin = o)),
      ...(this.ctx.filterTimeoutMs ? { filterTimeoutMs: this.ctx.filterTimeoutMs } : {}),
      quarantineMailbox: this.ctx.quarantineMailbox ?? null,
      onQuarantine: (reason, queueId) => {
        this.log('*', reason, 'quarantine');
        this.logger.info({ connector: s.connector.name, client: this.remoteAddress, queueId, why: reason }, 'message quarantined');
      },
      ...(this.unverifiedBounce !== null ? { judgeBounce: this.bounceJudge(s, this.unverifiedBounce) } : {}),
      ...(s.user && this.ctx.policy.config.gateway.headerSenderCheck
        ? {
            judgeHeaderSenders: (from: readonly string[], sender: string | null, queueId: string) =>
              // The directory answers "unavailable" rather than throwing; should anything throw, the client may try again.
              this.judgeHeaderSenders(s, from, sender, queueId).catch((e: unknown) => reject(REPLIES.directoryUnavailable, 'directory-unavailable', `judging the header senders failed: ${e instanceof Error ? e.message : String(e)}`)),
          }
        : {}),
      ...(typeof journal === 'string' ? { journalUnavailable: journal } : { journal }),
      onJournal: (reports, queueId) => {
        for (const r of reports) {
          this.log('*', `journal report ${r.queueId} to ${r.to} (${r.rules.join(', ')})`, 'journal');
          agentInfo.push(journalReportQueued(this.logger, this.ctx, { connector: s.connector.name, client: this.remoteAddress }, r, queueId, s.connector.config.fqdn));
        }
      },
      fillDisclaimerTokens: (list) => fillDisclaimers(list, this.ctx.directory, this.ctx.policy.config.gateway.directory?.preset ?? null),
      onDisclaimerTokens: (notes, queueId) => {
        for (const n of notes) {
          this.log('*', `disclaimer tokens for ${n.sender}: ${n.why}`, 'disclaimer');
          this.logger[n.source === 'unavailable' ? 'warn' : 'debug']({ connector: s.connector.name, client: this.remoteAddress, queueId, sender: n.sender, source: n.source, why: n.why }, 'disclaimer tokens');
        }
      },
      onDisclaimers: (done, queueId) => {
        for (const d of done) {
          this.log('*', `${d.rule}: disclaimer ${d.result}${d.why ? ` (${d.why})` : ''}`, 'disclaimer');
          this.logger.info({ connector: s.connector.name, client: this.remoteAddress, queueId, rule: d.rule, result: d.result, ...(d.parts ? { parts: d.parts } : {}), ...(d.why ? { why: d.why } : {}) }, 'transport rule disclaimer');
        }
      },
      onEnvelopeChange: (changes, queueId) => {
        this.log('*', changes.join('; '), 'envelope changed');
        this.logger.info({ connector: s.connector.name, client: this.remoteAddress, queueId, changes }, 'envelope changed by a filter');
      },
      onFilterOutcome: (o, queueId) => {
        this.log('*', `${o.filter} ${o.verdict}: ${o.reason}`, 'filter');
        this.logFilterOutcome({ filter: o.filter, verdict: o.verdict, reason: o.reason, queueId, notable: !!o.replaceBody || !!o.notable });
        notify(this.ctx.observer, this.ctx.logger, { type: 'filter-outcome', connector: s.connector.name, filter: o.filter, verdict: o.verdict, ...(o.rules ? { rules: o.rules } : {}) });
        if (o.rules && o.rules.length > 0) agentInfo.push(`${o.filter}: ${o.reason}`);
        // A transport rule's LogEvent (Exchange's Application event log): a warning per line.
        for (const e of o.events ?? []) this.logger.warn({ connector: s.connector.name, client: this.remoteAddress, queueId, rule: e.rule, event: e.text, from: this.senderText(), rcpts: this.transaction.recipients.map(formatAddress) }, 'transport rule event');
        if (o.scl !== undefined) scl = Math.max(scl ?? -1, o.scl);
        if (agentLogWorthy(o)) judged.push(o);
      },
    });
    this.dataActive = false;
    if (outcome.kind !== 'gone' && outcome.kind !== 'store-failed') this.rateSender(origin ?? { session: s, helo: this.hostNameAppearsAs || '' }, scl);
    if (outcome.kind !== 'gone' && judged.length > 0) {
      const answer = formatReply(outcome.kind === 'rejected' ? outcome.decision.reply : outcome.reply);
      const recipients = this.transaction.recipients.map(formatAddress);
      for (const o of judged) {
        this.agentAction({
          agent: filterAgent(o.filter),
          event: 'OnEndOfData',
          action: filterAction(o.verdict),
          smtpResponse: answer,
          reason: o.scl !== undefined ? `scl-${o.scl}` : `filter-${o.verdict}`,
          reasonData: o.reason,
          p1FromAddress: this.senderText(),
          recipients,
          messageId: outcome.kind === 'queued' || outcome.kind === 'discarded' ? outcome.messageId : '',
          p2FromAddresses: outcome.kind === 'store-failed' ? [] : (outcome.headerFrom ?? []),
          networkMsgId: outcome.queueId,
        });
      }
    }
    const log = { connector: s.connector.name, client: this.remoteAddress, user: s.user?.name ?? null };
    switch (outcome.kind) {
      case 'gone':
        return; // smtp-server has nobody left to answer
      case 'queued': {
        this.accepted++;
        this.log('*', `${outcome.queueId} ${outcome.messageId}`, 'message queued');
        const event = acceptedEvent(outcome, { connector: s.connector.name, clientIP: this.remoteAddress, clientHostname: this.clientHostname || `[${this.remoteAddress}]`, authUser: s.user?.name ?? null, fqdn: s.connector.config.fqdn }, agentInfo);
        this.logger.info({ ...log, queueId: outcome.queueId, messageId: outcome.messageId, from: event.sender, rcpts: outcome.recipients.length, size: outcome.size }, 'message queued');
        // Too large for these recipients' limits (their own or the organisation's): failed for them (a DSN), delivered to the rest.
        logFailedAtIntake(this.logger, log, outcome);
        notify(this.ctx.observer, this.ctx.logger, event);
        cb(null, replyText(outcome.reply));
        break;
      }
      case 'discarded':
        // A filter asked for it (milter discard, Exchange's Delete): the client gets its 250.
        this.log('*', outcome.decision.reason.message, outcome.decision.reason.code);
        this.logger.info({ ...log, queueId: outcome.queueId, reason: outcome.decision.reason.code, why: outcome.decision.reason.message, size: outcome.size }, 'message discarded by a filter');
        notify(this.ctx.observer, this.ctx.logger, { type: 'message-rejected', connector: s.connector.name, reason: outcome.decision.reason.code });
        cb(null, replyText(outcome.reply));
        break;
      case 'rejected': {
        this.rejected++;
        this.log('*', outcome.decision.reason.message, outcome.decision.reason.code);
        this.logger.info({ ...log, queueId: outcome.queueId, from: this.senderText(), rcpts: this.transaction.recipients.length, size: outcome.size, reply: formatReply(outcome.decision.reply), reason: outcome.decision.reason.code, why: outcome.decision.reason.message }, 'message rejected');
        notify(this.ctx.observer, this.ctx.logger, { type: 'message-rejected', connector: s.connector.name, reason: outcome.decision.reason.code });
        // An agent's refusal that is not a filter's (those are above): the agent log has it too.
        const agent = dataRefusalAgent(outcome.decision.reason.code);
        if (agent) this.agentAction({ ...agent, action: 'RejectMessage', smtpResponse: formatReply(outcome.decision.reply), reason: outcome.decision.reason.code, reasonData: outcome.decision.reason.message, p1FromAddress: this.senderText(), recipients: this.transaction.recipients.map(formatAddress), networkMsgId: outcome.queueId, p2FromAddresses: outcome.headerFrom ?? [] });
        cb(replyError(outcome.decision.reply));
        break;
      }
      case 'store-failed': {
        this.rejected++;
        const why = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
        this.log('*', why, 'queue unavailable');
        this.logger.warn({ ...log, queueId: outcome.queueId, err: outcome.error }, 'message not stored: answering 451');
        notify(this.ctx.observer, this.ctx.logger, { type: 'message-rejected', connector: s.connector.name, reason: 'queue-unavailable' });
        cb(replyError(outcome.reply));
        break;
      }
    }
    setImmediate(() => this.afterTransaction());
  }

  /** Sender reputation: counts a message (judged or taken) for the client, or behind one of internalSMTPServers for the host before it, when that one is rated. */
  private rateSender(rated: { readonly session: Session; readonly helo: string }, scl: number | null): void {
    const seen = this.ctx.reputation ? messageObservation(this.ctx.policy, rated.session, rated.helo, scl, this.transaction.recipients.length) : null;
    if (seen) this.ctx.reputation!.observe(seen);
  }

  /** The sender as logs show it ('' for the null sender). */
  private senderText(): string {
    return this.sender ? formatAddress(this.sender) : '';
  }

  private tlsInfo(): { protocol: string; cipher: string } | null {
    const t = this.session.tlsOptions;
    return t ? { protocol: t.version, cipher: t.standardName || t.name } : null;
  }

  // ------------------------------------------------------------ ending

  private inTransaction(): boolean {
    return !!this.session.envelope?.mailFrom || !!this.bdat || this.dataActive || this._upgrading || !!this._nextHandler;
  }

  private afterTransaction(): void {
    if (this._closing || this._closed) return;
    if (this.expired) this.lifetimeOver();
    else if ((this.draining || this.ctx.draining) && !this.inTransaction()) this.shutdownNow();
  }

  private lifetimeOver(): void {
    if (this._closing || this._closed) return;
    if (this.dataActive && !this.expired) {
      // Let the message in progress finish first, but within a bounded grace: a client that
      // trickles its DATA one byte at a time resets the inactivity timer forever and must not
      // outlive connectionTimeout by more than one inactivity period. Cut off, it gets no 250
      // and nothing of the message is kept.
      this.expired = true;
      this.lifetime = setTimeout(() => this.lifetimeOver(), this.connector!.config.connectionInactivityTimeout);
      this.lifetime.unref();
      return;
    }
    this.result = 'connection-timeout';
    this.finalReply(REPLIES.connectionTimeout);
  }

  private shutdownNow(): void {
    if (this._closing || this._closed) return;
    this.result = 'shutdown';
    this.finalReply(REPLIES.shuttingDown);
  }

  /** Shutdown: close when idle, else after the transaction in progress. */
  drain(): void {
    this.draining = true;
    if (!this._ready || !this.inTransaction()) this.shutdownNow();
  }

  /** Shutdown grace is over. */
  forceClose(): void {
    if (this._closed) return;
    this.gate.cancel();
    this.shutdownNow();
    setTimeout(() => this._socket.destroy(), FORCE_CLOSE_LINGER_MS).unref();
  }

  private closed(): void {
    if (this.lifetime) clearTimeout(this.lifetime);
    this.bdat?.stream.destroy(new Error('connection closed during BDAT'));
    this.bdat = null;
    this.milters.abort();
    this.gate.cancel();
    this.releaseSlot?.();
    this.releaseSlot = null;
    this.ctx.connections.delete(this);
    this.log('-', '', this.result);
    const t = this.tlsInfo();
    this.logger.info(
      {
        connector: this.connector?.name ?? null,
        client: this.remoteAddress,
        local: endpoint(this.localAddress, this.localPort),
        tls: t ? `${t.protocol} ${t.cipher}` : null,
        user: this.current?.user?.name ?? null,
        messages: this.accepted,
        rejected: this.rejected,
        refused: this.refused,
        result: this.result,
        ms: Date.now() - this.started,
      },
      'smtp connection',
    );
    notify(this.ctx.observer, this.ctx.logger, { type: 'connection', connector: this.connector?.name ?? null, clientIP: this.remoteAddress, result: this.result });
  }

  private log(event: ProtocolEvent, data: string, context = ''): void {
    this.plog?.write({
      sessionId: this.id,
      sequence: this.sequence++,
      local: endpoint(this.localAddress, this.localPort),
      remote: endpoint(this.remoteAddress, this.remotePort),
      event,
      data,
      context,
    });
  }
}
