/**
 * A scripted SMTP/LMTP server on loopback: the "far side" of deliveries in tests. Answers each
 * RCPT and each DATA as the test says (250 by default), records every accepted message with
 * its exact bytes, and counts sessions (total, concurrent peak, TLS).
 */
import { SMTPServer, type SMTPServerSession } from 'smtp-server';

export interface Received {
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly raw: Buffer;
  readonly secure: boolean;
  readonly sessionId: string;
  /** DSN parameters seen on MAIL FROM / RCPT TO (when dsn: true). */
  readonly dsn: { ret: string | null; envid: string | null; notify: Array<string[] | null>; orcpt: Array<string | null> };
  readonly user: string | null;
  /** MAIL FROM carried SMTPUTF8. */
  readonly smtpUtf8: boolean;
}

export interface FarSideOptions {
  lmtp?: boolean;
  /** Reply to RCPT TO: null = 250; else an SMTP reply like "550 5.1.1 unknown". */
  rcpt?: (address: string) => string | null;
  /** Reply to MAIL FROM ('' for <>): null = 250. */
  mail?: (address: string) => string | null;
  /** Wait this long before answering each RCPT TO (a slow server behind). */
  rcptDelayMs?: number;
  /** Reply after the final dot: null = 250. For LMTP: called per recipient. */
  data?: (rcpt: string, raw: Buffer) => string | null;
  /** Wait this long before answering the final dot (a slow far side). */
  dataDelayMs?: number;
  starttls?: boolean;
  /** Announce DSN and parse its parameters. */
  dsn?: boolean;
  auth?: { user: string; pass: string };
  size?: number;
  /** Advertise SMTPUTF8 (default true, as smtp-server does). */
  smtpUtf8?: boolean;
  /** Called when the message's data has fully arrived, before the (possibly delayed) reply. */
  onDataReceived?: (r: Received) => void;
  /** The reply after the final dot waits for this (a far side the test lets answer). */
  holdData?: () => Promise<void>;
}

export interface FarSide {
  readonly port: number;
  readonly messages: Received[];
  /** Sessions opened so far. */
  readonly connections: number;
  /** Highest number of simultaneous sessions. */
  readonly maxConcurrent: number;
  /** Every RCPT TO it was sent, with the MAIL FROM before it (answered or not). */
  readonly rcptSeen: ReadonlyArray<{ readonly from: string; readonly to: string }>;
  /** Replace the RCPT script (a far side that recovers). */
  setRcpt(fn: (address: string) => string | null): void;
  setData(fn: (rcpt: string, raw: Buffer) => string | null): void;
  close(): Promise<void>;
}

function smtpError(reply: string): Error & { responseCode: number } {
  const m = /^(\d{3}) (.*)$/s.exec(reply);
  if (!m) throw new Error(`bad scripted reply ${reply}`);
  return Object.assign(new Error(m[2]!), { responseCode: Number(m[1]) });
}

export async function startFarSide(opts: FarSideOptions = {}): Promise<FarSide> {
  const messages: Received[] = [];
  const rcptSeen: Array<{ from: string; to: string }> = [];
  let rcpt = opts.rcpt ?? (() => null);
  let data = opts.data ?? (() => null);
  let connections = 0;
  let current = 0;
  let maxConcurrent = 0;
  const server = new SMTPServer({
    lmtp: opts.lmtp ?? false,
    disableReverseLookup: true,
    hideSTARTTLS: !opts.starttls,
    hideDSN: !opts.dsn,
    hideSMTPUTF8: opts.smtpUtf8 === false,
    authOptional: !opts.auth,
    // hideSTARTTLS alone would still accept a STARTTLS sent blindly.
    disabledCommands: [...(opts.auth ? [] : ['AUTH']), ...(opts.starttls ? [] : ['STARTTLS'])],
    allowInsecureAuth: true,
    ...(opts.size ? { size: opts.size } : {}),
    logger: false,
    onConnect(_session, cb) {
      connections++;
      current++;
      maxConcurrent = Math.max(maxConcurrent, current);
      cb();
    },
    onClose() {
      current--;
    },
    onAuth(auth, _session, cb) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) return cb(null, { user: auth.username });
      cb(smtpError('535 5.7.8 Authentication credentials invalid'));
    },
    onMailFrom(address, _session, cb) {
      const reply = opts.mail?.(address.address) ?? null;
      cb(reply ? smtpError(reply) : undefined);
    },
    onRcptTo(address, session, cb) {
      rcptSeen.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: address.address });
      const reply = rcpt(address.address);
      const answer = () => cb(reply ? smtpError(reply) : undefined);
      if (opts.rcptDelayMs) setTimeout(answer, opts.rcptDelayMs);
      else answer();
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const env = session.envelope as SMTPServerSession['envelope'] & { dsn?: { ret?: string; envid?: string } };
        const rcpts = session.envelope.rcptTo.map((r) => r.address);
        const r: Received = {
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: rcpts,
          raw,
          secure: session.secure,
          sessionId: session.id,
          user: typeof session.user === 'string' ? session.user : null,
          smtpUtf8: (session.envelope as { smtpUtf8?: boolean }).smtpUtf8 === true,
          dsn: {
            ret: env.dsn?.ret ?? null,
            envid: env.dsn?.envid ?? null,
            notify: session.envelope.rcptTo.map((x) => (x as { dsn?: { notify?: string[] } }).dsn?.notify ?? null),
            orcpt: session.envelope.rcptTo.map((x) => (x as { dsn?: { orcpt?: string } }).dsn?.orcpt ?? null),
          },
        };
        opts.onDataReceived?.(r);
        const answer = () => {
          if (opts.lmtp) {
            const replies = rcpts.map((a) => {
              const e = data(a, raw);
              return e ? smtpError(e) : 'OK delivered';
            });
            const accepted = rcpts.filter((_, i) => typeof replies[i] === 'string');
            if (accepted.length) messages.push({ ...r, rcptTo: accepted });
            (cb as unknown as (err: null, replies: Array<string | Error>) => void)(null, replies);
            return;
          }
          const e = data(rcpts[0] ?? '', raw);
          if (e) return cb(smtpError(e));
          messages.push(r);
          cb(null, '2.0.0 queued');
        };
        if (opts.holdData) void opts.holdData().then(answer);
        else if (opts.dataDelayMs) setTimeout(answer, opts.dataDelayMs);
        else answer();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    messages,
    rcptSeen,
    get connections() {
      return connections;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    setRcpt(fn) {
      rcpt = fn;
    },
    setData(fn) {
      data = fn;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
