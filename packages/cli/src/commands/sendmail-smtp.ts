// `mailgw sendmail -bs`: SMTP on standard input and output, as Postfix's and Sendmail's
// "stand-alone SMTP server mode" speaks it. PHP mailers use it (Symfony Mailer's and Laravel's
// sendmail transport run `/usr/sbin/sendmail -bs`), so do a few monitoring tools. Each message
// becomes a pickup file in the Replay format, exactly what `mailgw sendmail` without -bs writes;
// the 250 after DATA comes once that file is on disk. MAIL FROM and RCPT TO are judged here as
// the pickup will judge the X-Sender and X-Receiver they become (policy submissionPath), so a
// client hears 555 or 501 at the command rather than finding a *.bad file later.
import { formatReply, replayEnvelopeFields, messageHeader, reply, type Reply, type DsnNotify, decodeXtext } from '@mailgw/mail';
import { pickupSession, REPLIES, submissionPath, type Policy } from '@mailgw/policy';

/** The longest command line read (Postfix's line_length_limit); longer ones get 500 5.5.2. */
const MAX_COMMAND = 2048;

interface Recipient {
  readonly address: string;
  readonly notify: readonly DsnNotify[] | null;
  readonly orcpt: string | null;
}

interface MailTransaction {
  readonly sender: string;
  readonly ret: string | null;
  readonly envid: string | null;
  readonly smtpUtf8: boolean;
  readonly recipients: Recipient[];
}

export interface StdioSmtpOptions {
  readonly policy: Policy;
  /** Writes one pickup file (envelope fields + message); resolves with its name once on disk. */
  readonly deliver: (file: Buffer) => Promise<string>;
  /** Where a failed write is explained (stderr): the client only hears 451. */
  readonly log: (line: string) => void;
}

const line = (r: Reply) => `${formatReply(r)}\r\n`;
const notImplemented = reply(502, '5.5.1', 'Command not implemented');
const lineTooLong = reply(500, '5.5.2', 'Line too long');

/** The EHLO keywords the pickup's session takes (what submissionPath accepts). */
export function submissionExtensions(policy: Policy): string[] {
  const c = pickupSession(policy).connector.config;
  const size = policy.config.gateway.maxSendSize;
  return [
    ...(c.pipeliningEnabled ? ['PIPELINING'] : []),
    ...(c.sizeEnabled === 'Disabled' ? [] : [size !== null && c.sizeEnabled === 'Enabled' ? `SIZE ${size}` : 'SIZE']),
    ...(c.eightBitMimeEnabled ? ['8BITMIME'] : []),
    ...(c.deliveryStatusNotificationEnabled ? ['DSN'] : []),
    ...(c.smtpUtf8Enabled ? ['SMTPUTF8'] : []),
    'ENHANCEDSTATUSCODES',
  ];
}

/**
 * One SMTP conversation over `input`/`output`, to QUIT or the end of input (a transaction left
 * open then is dropped, as a dropped connection's is). Resolves when it is over.
 */
export async function runStdioSmtp(input: NodeJS.ReadableStream, output: NodeJS.WritableStream, opts: StdioSmtpOptions): Promise<void> {
  const { policy } = opts;
  const g = policy.config.gateway;
  const maxSize = g.maxSendSize;
  const maxRecipients = g.pickupDirectoryMaxRecipientsPerMessage;
  const maxHeader = g.pickupDirectoryMaxHeaderSize;
  const write = (text: string) => new Promise<void>((resolve) => (output.write(text) ? resolve() : output.once('drain', () => resolve())));
  const say = (r: Reply) => write(line(r));

  let tx: MailTransaction | null = null;
  /** In DATA: the message so far (CRLF line ends, dots unstuffed), or null once over the size limit. */
  let data: Buffer[] | null = null;
  let inData = false;
  let dataSize = 0;
  let done = false;

  async function command(text: string): Promise<void> {
    const m = /^([A-Za-z]+)(?:[ \t]+(.*))?$/.exec(text);
    const verb = m?.[1]?.toUpperCase() ?? '';
    const arg = m?.[2] ?? '';
    switch (verb) {
      case 'EHLO':
      case 'HELO': {
        if (arg.trim() === '') return say(REPLIES.ehloDomainRequired);
        tx = null;
        if (verb === 'HELO') return say(reply(250, null, g.fqdn));
        const lines = [`${g.fqdn} Hello ${arg.trim().split(/\s+/)[0]}`, ...submissionExtensions(policy)];
        return write(lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
      }
      case 'MAIL': {
        if (tx) return say(REPLIES.senderAlreadySpecified);
        const from = /^FROM:(.*)$/i.exec(arg);
        if (!from) return say(REPLIES.invalidArguments);
        const judged = submissionPath(policy, 'MAIL', from[1]!);
        if (!judged.ok) return say(judged.decision.reply);
        const envid = judged.params.get('ENVID');
        tx = { sender: judged.address?.address ?? '', ret: judged.params.get('RET')?.toUpperCase() ?? null, envid: envid === undefined ? null : decodeXtext(envid), smtpUtf8: judged.smtpUtf8, recipients: [] };
        return say(REPLIES.senderOk);
      }
      case 'RCPT': {
        if (!tx) return say(REPLIES.needMail);
        const to = /^TO:(.*)$/i.exec(arg);
        if (!to) return say(REPLIES.invalidArguments);
        const judged = submissionPath(policy, 'RCPT', to[1]!, tx.smtpUtf8);
        if (!judged.ok) return say(judged.decision.reply);
        const address = judged.address!.address;
        if (!tx.recipients.some((r) => r.address.toLowerCase() === address.toLowerCase())) {
          if (tx.recipients.length >= maxRecipients) return say(REPLIES.tooManyRecipients);
          const notify = judged.params.get('NOTIFY');
          const orcpt = judged.params.get('ORCPT');
          tx.recipients.push({ address, notify: notify ? (notify.toUpperCase().split(',') as DsnNotify[]) : null, orcpt: orcpt ? decodeXtext(orcpt) : null });
        }
        return say(REPLIES.recipientOk);
      }
      case 'DATA':
        if (arg !== '') return say(REPLIES.invalidArguments);
        if (!tx) return say(REPLIES.needMail);
        if (tx.recipients.length === 0) return say(REPLIES.needRcpt);
        inData = true;
        data = [];
        dataSize = 0;
        return say(REPLIES.startMailInput);
      case 'RSET':
        tx = null;
        return say(reply(250, '2.0.0', 'OK'));
      case 'NOOP':
        return say(reply(250, '2.0.0', 'OK'));
      case 'QUIT':
        done = true;
        return say(REPLIES.closing);
      case 'VRFY':
        return say(reply(252, '2.0.0', 'Cannot VRFY user, but will accept message and attempt delivery'));
      case 'HELP':
        return say(reply(214, '2.0.0', 'Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY (mailgw sendmail -bs: each message goes into the pickup directory)'));
      case 'STARTTLS':
      case 'AUTH':
      case 'BDAT':
      case 'EXPN':
      case 'ETRN':
      case 'TURN':
        return say(notImplemented);
      default:
        return say(REPLIES.unrecognizedCommand);
    }
  }

  async function endOfData(): Promise<void> {
    const t = tx!;
    const parts = data;
    inData = false;
    data = null;
    tx = null;
    if (parts === null) return say(REPLIES.messageTooBig);
    const message = Buffer.concat(parts);
    if (messageHeader(message).header.length > maxHeader) return say(REPLIES.headerTooBig);
    const envelope = replayEnvelopeFields({ sender: t.sender, ret: t.ret, envid: t.envid, recipients: t.recipients });
    try {
      const name = await opts.deliver(Buffer.concat([envelope, message]));
      return say(reply(250, '2.0.0', `Ok: queued as ${name} in the pickup directory`));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      opts.log(`cannot write into the pickup directory: ${(e as Error).message}`);
      return say(code === 'ENOSPC' || code === 'EDQUOT' ? REPLIES.insufficientResources : REPLIES.queueUnavailable);
    }
  }

  /**
   * A piece of input: a whole line (its end removed) or, for a DATA line longer than PIECE, a
   * part of one. `continued`: the piece goes on a line whose start came before (no dot rules);
   * `ended`: the line ends here.
   */
  async function lineIn(raw: Buffer, continued: boolean, ended: boolean): Promise<void> {
    if (inData) {
      if (!continued && ended && raw.length === 1 && raw[0] === 0x2e) return endOfData();
      const content = !continued && raw[0] === 0x2e ? raw.subarray(1) : raw; // dot-unstuffing (RFC 5321 4.5.2)
      dataSize += content.length + (ended ? 2 : 0);
      if (data !== null && maxSize !== null && dataSize > maxSize) data = null; // read on to the dot, then 552
      data?.push(content, ...(ended ? [CRLF] : []));
      return;
    }
    if (continued || raw.length > MAX_COMMAND) return say(lineTooLong);
    return command(raw.toString('utf8'));
  }

  await say(reply(220, null, `${g.fqdn} ESMTP mailgw (sendmail -bs: mail goes into the pickup directory)`));
  let pending: Buffer = Buffer.alloc(0);
  /** The line being read started in an earlier piece (a DATA line longer than PIECE, or an overlong command). */
  let continued = false;
  for await (const chunk of input) {
    let buf = Buffer.concat([pending, Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk))]);
    let nl: number;
    while (!done && (nl = buf.indexOf(0x0a)) >= 0) {
      const end = nl > 0 && buf[nl - 1] === 0x0d ? nl - 1 : nl;
      await lineIn(buf.subarray(0, end), continued, true);
      continued = false;
      buf = buf.subarray(nl + 1);
    }
    if (done) break;
    // A line without its end yet, grown long: DATA takes it in pieces (a CR kept back, it may
    // start the line end); a command that long is skipped to its end and answered 500 then.
    if (buf.length > PIECE) {
      const keep = buf[buf.length - 1] === 0x0d ? 1 : 0;
      if (inData) await lineIn(buf.subarray(0, buf.length - keep), continued, false);
      continued = true;
      buf = buf.subarray(buf.length - keep);
    }
    pending = buf;
  }
}

/** How much of a line without its end is held before DATA takes it in pieces. */
const PIECE = 64 * 1024;
const CRLF = Buffer.from('\r\n');
