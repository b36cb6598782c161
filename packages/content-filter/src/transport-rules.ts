// Exchange's Edge Rules agent as a message filter: it gathers what the rules are judged on (the
// header fields as received, the From: address, the envelope, the size) while DATA streams in,
// and at the end asks the policy (@mailgw/policy transport-rules.ts) what the rules make of it.
// The body itself is not kept: the rules read the header, the envelope and the size.
import type { DomainPattern, TransportRule } from '@mailgw/config';
import { fieldValue, findAddresses, type FilterContext, type FilterOutcome, type HeaderField, type MailAddress, type MessageFilterSession, type MessageOnlyFilter } from '@mailgw/mail';
import { evaluateTransportRules } from '@mailgw/policy';

export const TRANSPORT_RULES_FILTER_NAME = 'transport-rules';

/** `inside`: the Authoritative and InternalRelay accepted domains (the rules' InOrganization). */
export function transportRulesFilter(rules: readonly TransportRule[], inside: readonly DomainPattern[]): MessageOnlyFilter {
  return {
    name: TRANSPORT_RULES_FILTER_NAME,
    // Your own users' mail is judged too, as Exchange's rules judge every message.
    antiSpam: false,
    onFailure: 'tempfail',
    begin: (ctx) => new TransportRulesSession(rules, inside, ctx),
  };
}

/** A field's value as text: UTF-8 when it is (RFC 6532), else latin1. */
function text(f: HeaderField): string {
  const latin1 = fieldValue(f);
  const utf8 = Buffer.from(latin1, 'latin1').toString('utf8');
  return utf8.includes('\uFFFD') ? latin1 : utf8;
}

class TransportRulesSession implements MessageFilterSession {
  private fields = new Map<string, string[]>();
  private from: MailAddress | null = null;
  private size = 0;

  constructor(
    private readonly rules: readonly TransportRule[],
    private readonly inside: readonly DomainPattern[],
    private readonly ctx: FilterContext,
  ) {}

  header(fields: readonly HeaderField[]): void {
    for (const f of fields) {
      this.size += f.raw.length;
      if (f.name === '') continue;
      const list = this.fields.get(f.name) ?? [];
      list.push(text(f));
      this.fields.set(f.name, list);
    }
    const from = fields.find((f) => f.name === 'from');
    if (from) {
      const raw = from.raw.toString('latin1');
      this.from = findAddresses(raw.slice(raw.indexOf(':') + 1))[0]?.address ?? null;
    }
  }

  body(chunk: Buffer): void {
    this.size += chunk.length;
  }

  async end(): Promise<FilterOutcome> {
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
      },
      this.inside,
    );
    return { filter: TRANSPORT_RULES_FILTER_NAME, verdict: r.verdict, reply: r.reply, headers: r.headers, envelope: r.envelope, reason: r.reason, notable: r.matched.length > 0, rules: r.matched };
  }

  abort(): void {
    this.fields = new Map();
  }
}
