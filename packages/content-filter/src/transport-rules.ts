// Exchange's Edge Rules agent as a message filter: it gathers what the rules are judged on (the
// header fields as received, the From: address, the envelope, the size) while DATA streams in,
// and at the end asks the policy (@mailgw/policy transport-rules.ts) what the rules make of it.
// The body is kept only when a rule reads the message's text (subjectOrBody…): its first 1 MB,
// decoded by mailparser (transfer encodings, charsets, HTML as text) at the end.
import { simpleParser } from 'mailparser';
import { readsBody, type DomainPattern, type TransportRule } from '@mailgw/config';
import { fieldText, fieldValue, firstAddress, type FilterContext, type FilterOutcome, type HeaderField, type MailAddress, type MessageFilterSession, type MessageOnlyFilter } from '@mailgw/mail';
import { MAX_BODY_TEXT, evaluateTransportRules } from '@mailgw/policy';

/** How much of a message is read for its text: enough for any mail a person writes. */
const BODY_READ_LIMIT = 1024 * 1024;

export const TRANSPORT_RULES_FILTER_NAME = 'transport-rules';
const CRLF = Buffer.from('\r\n');

/** `inside`: the Authoritative and InternalRelay accepted domains (the rules' InOrganization). */
export function transportRulesFilter(rules: readonly TransportRule[], inside: readonly DomainPattern[]): MessageOnlyFilter {
  const body = rules.some(readsBody);
  return {
    name: TRANSPORT_RULES_FILTER_NAME,
    // Your own users' mail is judged too, as Exchange's rules judge every message.
    antiSpam: false,
    onFailure: 'tempfail',
    begin: (ctx) => new TransportRulesSession(rules, inside, ctx, body),
  };
}

/** The text of a message (its first bytes): the text part, or the HTML part as text; '' when there is none or it cannot be read. */
async function messageText(raw: Buffer): Promise<string> {
  try {
    const parsed = await simpleParser(raw, { skipImageLinks: true, skipTextLinks: true, maxHtmlLengthToParse: BODY_READ_LIMIT });
    return (parsed.text ?? '').slice(0, MAX_BODY_TEXT);
  } catch {
    return '';
  }
}

class TransportRulesSession implements MessageFilterSession {
  private fields = new Map<string, string[]>();
  private from: MailAddress | null = null;
  private size = 0;
  /** The message as received, up to BODY_READ_LIMIT, when a rule reads its text. */
  private kept: Buffer[] | null;
  private keptBytes = 0;

  constructor(
    private readonly rules: readonly TransportRule[],
    private readonly inside: readonly DomainPattern[],
    private readonly ctx: FilterContext,
    readsBody: boolean,
  ) {
    this.kept = readsBody ? [] : null;
  }

  private keep(b: Buffer): void {
    if (!this.kept || this.keptBytes >= BODY_READ_LIMIT) return;
    const part = b.length > BODY_READ_LIMIT - this.keptBytes ? b.subarray(0, BODY_READ_LIMIT - this.keptBytes) : b;
    this.kept.push(part);
    this.keptBytes += part.length;
  }

  header(fields: readonly HeaderField[]): void {
    for (const f of fields) {
      this.keep(f.raw);
      this.size += f.raw.length;
      if (f.name === '') continue;
      const list = this.fields.get(f.name) ?? [];
      list.push(fieldText(f));
      this.fields.set(f.name, list);
    }
    this.keep(CRLF);
    const from = fields.find((f) => f.name === 'from');
    if (from) this.from = firstAddress(fieldValue(from));
  }

  body(chunk: Buffer): void {
    this.size += chunk.length;
    this.keep(chunk);
  }

  async end(): Promise<FilterOutcome> {
    const bodyText = this.kept ? await messageText(Buffer.concat(this.kept, this.keptBytes)) : null;
    this.kept = null;
    const r = evaluateTransportRules(
      this.rules,
      {
        envelopeSender: this.ctx.sender,
        fromHeader: this.from,
        recipients: this.ctx.recipients,
        clientIP: this.ctx.clientIP,
        internalSession: this.ctx.internalSession === true,
        fields: this.fields,
        size: this.size,
        bodyText,
      },
      this.inside,
    );
    return { filter: TRANSPORT_RULES_FILTER_NAME, verdict: r.verdict, reply: r.reply, headers: r.headers, envelope: r.envelope, reason: r.reason, notable: r.matched.length > 0, rules: r.matched, ...(r.scl !== undefined ? { scl: r.scl } : {}) };
  }

  abort(): void {
    this.fields = new Map();
    this.kept = null;
  }
}
