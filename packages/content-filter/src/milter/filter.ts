// A milter as a transaction filter: the MTA side of the milter protocol, version 6, as
// Postfix's MILTER_README describes it. One milter session per transaction, opened when the
// gateway has accepted MAIL: option negotiation, then CONNECT, HELO and MAIL (each with
// Postfix's default macros) replayed there, each accepted RCPT as it comes, and at DATA the
// DATA stage, the header fields, EOH, the body in chunks of at most 65,535 bytes as DATA
// streams in, and end of message, where the modification replies are collected. As with
// Postfix, a reject/tempfail at RCPT refuses that recipient only; at CONNECT, HELO or MAIL it
// refuses the MAIL; a discard anywhere drops the message at the end of DATA (250). Steps the
// milter asked to skip (SMFIP_NO*) are not sent, steps it does not answer (SMFIP_NR_*) are
// not waited for, a SKIP ends the body early. Down, slow (connect/command/eom timeouts) or
// broken protocol → "error": the milter's defaultAction applies, at the command it happened
// at. Never an exception.
import type { MilterConfig } from '@mailgw/config';
import { formatAddress, parseEnvelopeAddress, parseReply, type EnvelopeEdit, type FilterContext, type FilterOutcome, type FilterVerdict, type HeaderEdit, type HeaderField, type MailAddress, type MessageFilterSession, type Reply, type StageOutcome, type TransactionContext, type TransactionFilter, type TransactionFilterSession } from '@mailgw/mail';
import { MilterConnection } from './connection.js';
import { C, F, MILTER_CHUNK_SIZE, MILTER_VERSION, MTA_ACTIONS, MTA_PROTOCOL, P, R, connect, cstrings, macros, optneg, packet, type Packet } from './protocol.js';

export function milterFilter(cfg: MilterConfig): TransactionFilter {
  return {
    name: cfg.name,
    antiSpam: cfg.antiSpam,
    onFailure: cfg.defaultAction,
    connectors: cfg.connectors,
    pickup: cfg.pickup,
    transaction: (tx) => new MilterSession(cfg, tx),
  };
}

/** A milter's final word on the message (before end of message, or at it). */
interface Final {
  readonly verdict: FilterVerdict;
  readonly reply?: Reply | undefined;
  readonly reason: string;
}

/** The field's name as the client wrote it, and its value as a milter gets it. */
function fieldParts(f: HeaderField, leadingSpace: boolean): { name: string; value: string } {
  const text = f.raw.toString('latin1').replace(/\r?\n$/, '');
  const colon = text.indexOf(':');
  const name = text.slice(0, colon).trimEnd();
  let value = text.slice(colon + 1).replace(/\r\n/g, '\n');
  if (!leadingSpace) value = value.replace(/^[ \t]+/, '');
  return { name, value };
}

class MilterSession implements TransactionFilterSession, MessageFilterSession {
  private conn: MilterConnection | null = null;
  private chain: Promise<void> = Promise.resolve();
  /** Set once the milter has decided (or failed): nothing more is sent. */
  private final: Final | null = null;
  private protocol = 0;
  /** The actions the milter asked for at negotiation (SMFIF_*), within what mailgw offers. */
  private actions = 0;
  private version = MILTER_VERSION;
  private skipBody = false;
  private aborted = false;

  constructor(private readonly cfg: MilterConfig, private readonly ctx: TransactionContext) {}

  /** MAIL, accepted by the gateway: the connection, option negotiation, CONNECT, HELO and MAIL. */
  async mail(): Promise<StageOutcome> {
    const before = this.final;
    await this.step(() => this.start());
    return this.stageOutcome(before, null);
  }

  /** A recipient the gateway accepted. A refusal here is this recipient's: the milter goes on with the message. */
  async rcpt(recipient: MailAddress): Promise<StageOutcome> {
    const before = this.final;
    let refused: Final | null = null;
    await this.step(async () => {
      const rcpt = formatAddress(recipient);
      const what = `RCPT <${rcpt}>`;
      const p = await this.exchange(what, P.NORCPT, P.NR_RCPT, macros(C.RCPT, { ...this.macroBase, '{rcpt_addr}': rcpt }), packet(C.RCPT, `<${rcpt}>`));
      if (!p) return;
      const f = p.cmd === R.DISCARD ? null : this.refusal(p, what);
      if (f) refused = f;
      else this.answer(p, what);
    });
    return this.stageOutcome(before, refused);
  }

  /** DATA: the message's pass (header, body, end of message) continues this session. */
  data(_ctx: FilterContext): MessageFilterSession {
    void this.step(async () => {
      if (this.version >= 4) await this.stage('data', P.NODATA, P.NR_DATA, macros(C.DATA, this.macroBase), packet(C.DATA));
    });
    return this;
  }

  /**
   * What this stage decided: a recipient's own refusal, a final word the milter gave at this
   * stage, or (once the milter has failed) its failure again, so that its defaultAction
   * applies to every command that follows, as with Postfix.
   */
  private stageOutcome(before: Final | null, refused: Final | null): StageOutcome {
    const f = refused ?? (this.final && (this.final !== before || this.final.verdict === 'error') ? this.final : null);
    const reason = (why: string) => `milter ${this.cfg.address.text}: ${why}`;
    if (!f || f.verdict === 'quarantine') return { filter: this.cfg.name, verdict: 'continue', reason: reason('continue') };
    return { filter: this.cfg.name, verdict: f.verdict, reply: f.reply, reason: reason(f.reason) };
  }

  /** Queues a step; a failure in it becomes the "error" outcome. Returns when it has run. */
  private step(fn: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (this.final || this.aborted) return;
      try {
        await fn();
      } catch (e) {
        this.finish({ verdict: 'error', reason: e instanceof Error ? e.message : String(e) });
      }
    });
    return this.chain;
  }

  private finish(f: Final): void {
    this.final ??= f;
    this.conn?.close(packet(C.QUIT));
  }

  private get macroBase(): Record<string, string> {
    return { j: this.ctx.fqdn, i: this.ctx.queueId };
  }

  private async start(): Promise<void> {
    const ctx = this.ctx;
    this.conn = await MilterConnection.open(this.cfg.address, this.cfg.connectTimeout);
    await this.conn.send(optneg(MILTER_VERSION, MTA_ACTIONS, MTA_PROTOCOL));
    const o = await this.conn.reply(this.cfg.commandTimeout, 'option negotiation');
    if (o.cmd !== R.OPTNEG || o.data.length < 12) throw new Error(`milter ${this.cfg.name} answered option negotiation with "${o.cmd}"`);
    this.version = o.data.readUInt32BE(0);
    this.actions = o.data.readUInt32BE(4) & MTA_ACTIONS;
    this.protocol = o.data.readUInt32BE(8);
    if (this.version < 2 || this.version > MILTER_VERSION) throw new Error(`milter ${this.cfg.name} speaks protocol version ${this.version}; mailgw speaks 2 to ${MILTER_VERSION}`);
    // A milter may ask for more than we offer (SETSYMLIST); as long as it does not use it, it
    // works. Using an action it did not ask for is a protocol failure at end of message.

    const client = `${ctx.clientHostname} [${ctx.clientIP}]`;
    const connectMacros = { ...this.macroBase, _: client, '{daemon_name}': 'mailgw', '{daemon_addr}': ctx.serverIP ?? '', v: 'mailgw', '{client_addr}': ctx.clientIP, '{client_name}': ctx.clientHostname, '{connector}': ctx.connector };
    await this.stage('connect', P.NOCONNECT, P.NR_CONN, macros(C.CONNECT, connectMacros), connect(ctx.clientHostname, ctx.clientIP, 0));
    const bits = ctx.tls ? cipherBits(ctx.tls.cipher) : null;
    const tls: Record<string, string> = ctx.tls ? { '{tls_version}': ctx.tls.protocol, '{cipher}': ctx.tls.cipher, ...(bits ? { '{cipher_bits}': String(bits) } : {}) } : {};
    await this.stage('helo', P.NOHELO, P.NR_HELO, macros(C.HELO, tls), packet(C.HELO, ctx.helo));
    const sender = ctx.sender ? formatAddress(ctx.sender) : '';
    const auth: Record<string, string> = ctx.authUser ? { '{auth_type}': ctx.authMechanism ?? 'PLAIN', '{auth_authen}': ctx.authUser } : {};
    await this.stage('mail', P.NOMAIL, P.NR_MAIL, macros(C.MAIL, { ...this.macroBase, ...auth, '{mail_addr}': sender }), packet(C.MAIL, `<${sender}>`));
  }

  /** One SMTP stage: its macros, its command, and the milter's answer (null: skipped, or not waited for). */
  private async exchange(what: string, skipFlag: number, noReplyFlag: number, macroPacket: Buffer | null, cmd: Buffer): Promise<Packet | null> {
    if (this.final || (this.protocol & skipFlag) !== 0) return null;
    const conn = this.conn!;
    if (macroPacket) await conn.send(macroPacket);
    await conn.send(cmd);
    if ((this.protocol & noReplyFlag) !== 0) return null;
    return this.next(what, this.cfg.commandTimeout);
  }

  /** A stage whose refusal is the whole transaction's. */
  private async stage(what: string, skipFlag: number, noReplyFlag: number, macroPacket: Buffer | null, cmd: Buffer): Promise<void> {
    const p = await this.exchange(what, skipFlag, noReplyFlag, macroPacket, cmd);
    if (p) this.answer(p, what);
  }

  /** The next reply that is not a progress report. */
  private async next(what: string, timeoutMs: number): Promise<Packet> {
    for (;;) {
      const p = await this.conn!.reply(timeoutMs, what);
      if (p.cmd !== R.PROGRESS) return p;
    }
  }

  /** A reply to a stage before end of message. */
  private answer(p: Packet, what: string): void {
    switch (p.cmd) {
      case R.CONTINUE:
        return;
      case R.SKIP:
        if (what === 'body') this.skipBody = true;
        return;
      case R.ACCEPT:
        // Accepted without changes: the milter wants nothing more of this message.
        return this.finish({ verdict: 'accept', reason: `accepted at ${what}` });
      default: {
        const f = this.refusal(p, what);
        if (f) return this.finish(f);
        throw new Error(`milter ${this.cfg.name} sent "${p.cmd}" in reply to ${what}`);
      }
    }
  }

  /** reject / tempfail / discard / replycode, or null for anything else. */
  private refusal(p: Packet, what: string): Final | null {
    switch (p.cmd) {
      case R.REJECT:
        return { verdict: 'reject', reason: `rejected at ${what}` };
      case R.TEMPFAIL:
        return { verdict: 'tempfail', reason: `tempfailed at ${what}` };
      case R.DISCARD:
        return { verdict: 'discard', reason: `discarded at ${what}` };
      case R.REPLYCODE: {
        const text = cstrings(p.data)[0] ?? '';
        const reply = parseReply(text.replace(/\r?\n/g, '\r\n'));
        if (!reply || (reply.code < 400 || reply.code > 599)) throw new Error(`milter ${this.cfg.name} sent an unusable reply code "${text.slice(0, 80)}" at ${what}`);
        return { verdict: reply.code >= 500 ? 'reject' : 'tempfail', reply, reason: `replied "${text.slice(0, 200)}" at ${what}` };
      }
      default:
        return null;
    }
  }

  /** An envelope change is honoured only when the milter asked for it at negotiation. */
  private allowed(flag: number, name: string): void {
    if ((this.actions & flag) === 0) throw new Error(`milter ${this.cfg.name} sent ${name} without asking for it at option negotiation`);
  }

  /** An address a milter sends ("<a@b>" or "a@b", UTF-8 only in an SMTPUTF8 message). */
  private address(text: string, what: string): MailAddress {
    const utf8 = Buffer.from(text, 'latin1').toString('utf8');
    // eslint-disable-next-line no-control-regex
    if (/[^\x00-\x7f]/.test(utf8) && !this.ctx.smtpUtf8) throw new Error(`milter ${this.cfg.name} sent ${what} with the non-ASCII address "${utf8.slice(0, 200)}" for a message without SMTPUTF8`);
    const r = parseEnvelopeAddress(utf8);
    if (!r.ok) throw new Error(`milter ${this.cfg.name} sent ${what} with the unusable address "${utf8.slice(0, 200)}": ${r.reason}`);
    return { local: r.value.local, domain: r.value.domain };
  }

  header(fields: readonly HeaderField[]): Promise<void> {
    return this.step(async () => {
      const conn = this.conn!;
      if ((this.protocol & P.NOHDRS) === 0) {
        const lead = (this.protocol & P.HDR_LEADSPC) !== 0;
        for (const f of fields) {
          const { name, value } = fieldParts(f, lead);
          await conn.send(packet(C.HEADER, name, value));
          if ((this.protocol & P.NR_HDR) === 0) this.answer(await this.next(`header ${name}`, this.cfg.commandTimeout), `header ${name}`);
          if (this.final) return;
        }
      }
      await this.stage('end of header', P.NOEOH, P.NR_EOH, macros(C.EOH, this.macroBase), packet(C.EOH));
    });
  }

  body(chunk: Buffer): Promise<void> {
    return this.step(async () => {
      if (this.skipBody || (this.protocol & P.NOBODY) !== 0) return;
      for (let off = 0; off < chunk.length && !this.skipBody && !this.final; off += MILTER_CHUNK_SIZE) {
        await this.conn!.send(packet(C.BODY, chunk.subarray(off, off + MILTER_CHUNK_SIZE)));
        if ((this.protocol & P.NR_BODY) === 0) this.answer(await this.next('body', this.cfg.commandTimeout), 'body');
      }
    });
  }

  abort(): void {
    this.aborted = true;
    this.conn?.close(Buffer.concat([packet(C.ABORT), packet(C.QUIT)]));
  }

  async end(): Promise<FilterOutcome> {
    const headers: HeaderEdit[] = [];
    const envelope: EnvelopeEdit[] = [];
    const body: Buffer[] = [];
    let quarantine: string | null = null;
    await this.step(async () => {
      const conn = this.conn!;
      await conn.send(macros(C.BODYEOB, this.macroBase));
      await conn.send(packet(C.BODYEOB));
      for (;;) {
        const p = await this.next('end of message', this.cfg.eomTimeout);
        const s = () => cstrings(p.data, 4);
        switch (p.cmd) {
          case R.ADDHEADER: {
            const [name = '', value = ''] = cstrings(p.data);
            headers.push({ op: 'add', name, value });
            break;
          }
          case R.INSHEADER: {
            const [name = '', value = ''] = s();
            // Index 0 or 1 is the top of the header (where a milter puts DKIM-Signature or
            // Authentication-Results): above our Received. A deeper index is appended.
            headers.push({ op: 'add', name, value, ...(p.data.readUInt32BE(0) <= 1 ? { top: true } : {}) });
            break;
          }
          case R.CHGHEADER: {
            const [name = '', value = ''] = s();
            headers.push({ op: 'change', name, index: Math.max(1, p.data.readUInt32BE(0)), value });
            break;
          }
          case R.REPLBODY:
            body.push(Buffer.from(p.data));
            break;
          case R.QUARANTINE:
            quarantine = cstrings(p.data)[0] ?? '';
            break;
          case R.ADDRCPT:
          case R.ADDRCPT_PAR: {
            if (p.cmd === R.ADDRCPT) this.allowed(F.ADDRCPT, 'ADDRCPT');
            else this.allowed(F.ADDRCPT_PAR, 'ADDRCPT_PAR');
            const [address = '', parameters = ''] = cstrings(p.data);
            envelope.push({ op: 'add-recipient', recipient: this.address(address, 'ADDRCPT'), ...(parameters ? { parameters } : {}) });
            break;
          }
          case R.DELRCPT: {
            this.allowed(F.DELRCPT, 'DELRCPT');
            envelope.push({ op: 'delete-recipient', recipient: this.address(cstrings(p.data)[0] ?? '', 'DELRCPT') });
            break;
          }
          case R.CHGFROM: {
            this.allowed(F.CHGFROM, 'CHGFROM');
            const [address = '', parameters = ''] = cstrings(p.data);
            const bare = address.replace(/^<(.*)>$/, '$1');
            envelope.push({ op: 'change-sender', sender: bare === '' ? null : this.address(address, 'CHGFROM'), ...(parameters ? { parameters } : {}) });
            break;
          }
          case R.ACCEPT:
          case R.CONTINUE:
            if (quarantine !== null) this.finish({ verdict: 'quarantine', reason: `quarantined: ${quarantine}` });
            else this.finish({ verdict: 'accept', reason: `accepted at end of message${headers.length ? ` with ${headers.length} header change${headers.length === 1 ? '' : 's'}` : ''}${envelope.length ? `, ${envelope.length} envelope change${envelope.length === 1 ? '' : 's'}` : ''}${body.length ? ', body replaced' : ''}` });
            return;
          default: {
            const f = this.refusal(p, 'end of message');
            if (!f) throw new Error(`milter ${this.cfg.name} sent "${p.cmd}" at end of message`);
            this.finish(f);
            return;
          }
        }
      }
    });
    const f = this.final ?? { verdict: 'error' as const, reason: this.aborted ? 'aborted' : 'no answer' };
    this.conn?.close();
    const kept = f.verdict === 'accept' || f.verdict === 'quarantine';
    return {
      filter: this.cfg.name,
      verdict: f.verdict,
      reply: f.reply,
      headers: kept ? headers : [],
      ...(kept && envelope.length ? { envelope } : {}),
      ...(kept && body.length ? { replaceBody: Buffer.concat(body) } : {}),
      reason: `milter ${this.cfg.address.text}: ${f.reason}`,
    };
  }
}

/** The symmetric key size of a TLS cipher suite by its name (Postfix's {cipher_bits}), or null when the name does not say. */
export function cipherBits(cipher: string): number | null {
  const c = cipher.toUpperCase();
  if (/CHACHA20|AES_?256|CAMELLIA_?256|ARIA_?256/.test(c)) return 256;
  if (/AES_?128|CAMELLIA_?128|ARIA_?128|SM4/.test(c)) return 128;
  if (/3DES|DES-CBC3/.test(c)) return 168;
  return null;
}
