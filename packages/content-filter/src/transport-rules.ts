// Exchange's Edge Rules agent as a message filter: it gathers what the rules are judged on (the
// header fields as received, the From: address, the envelope, the size) while DATA streams in,
// and at the end asks the policy (@mailgw/policy transport-rules.ts) what the rules make of it.
// The body is kept only when a rule reads the message's text (subjectOrBody…): its first 1 MB,
// decoded by mailparser (transfer encodings, charsets, HTML as text) at the end. The MIME
// structure is read only when a rule reads the attachments (attachment…), by the attachment
// filter's reader, as DATA streams in, and for the message types read from the parts
// (messageTypeMatches Calendaring, PermissionControlled); the parts' bodies only for
// attachmentSizeOver.
import { simpleParser } from 'mailparser';
import { adAttributesRead, appliesDisclaimer, readsArchives, readsAttachments, readsAttachmentSizes, readsBody, readsPartTypes, type DirectoryPreset, type DomainPattern, type TransportRule } from '@mailgw/config';
import { fieldText, fieldValue, firstAddress, type FilterContext, type FilterOutcome, type HeaderField, type MailAddress, type MessageFilterSession, type MessageOnlyFilter } from '@mailgw/mail';
import { MAX_BODY_TEXT, adAttributesAnswer, evaluateTransportRules, tokenAttributes, type AdAttributesAnswer, type EntryAttributes, type MembershipAnswer, type MessageFacts, type RuleAttachment, type RulesOutcome, type TypedPart } from '@mailgw/policy';
import { MimeScan, type PartNode } from './attachment-filter.js';
import { UuencodedFiles } from './uuencoded-files.js';

/** How much of a message is read for its text: enough for any mail a person writes. */
const BODY_READ_LIMIT = 1024 * 1024;

export const TRANSPORT_RULES_FILTER_NAME = 'transport-rules';
const CRLF = Buffer.from('\r\n');

/** The directory's answers to the group conditions (fromMemberOf, sentToMemberOf, betweenMemberOf…) and the attribute conditions (…ADAttribute…); @mailgw/directory's service. */
export interface GroupDirectory {
  memberships(address: string): Promise<MembershipAnswer>;
  /** The named LDAP attributes of the object holding an address. */
  entryAttributes(address: string, attributes: readonly string[]): Promise<EntryAttributes>;
}

/** Where the rules' directory questions go, and which schema names the attributes. */
export interface RuleDirectory {
  readonly lookup: GroupDirectory;
  readonly preset: DirectoryPreset;
}

/**
 * Rounds of directory questions for one message: each answers what the judging before it asked
 * (a rule that matches once answered may add recipients a later rule asks about). Every round
 * learns at least one address more, so the rounds end by themselves; this only bounds a bug.
 */
const MAX_MEMBERSHIP_ROUNDS = 20;
/** Directory questions at once for one message (a message may have hundreds of recipients; they share the process' directory connection). */
const MEMBERSHIP_LOOKUPS_AT_ONCE = 8;

/**
 * `inside`: the Authoritative and InternalRelay accepted domains (the rules' InOrganization);
 * `directory`: where group and attribute conditions are answered (config validation demands one
 * when a rule has them).
 */
export function transportRulesFilter(rules: readonly TransportRule[], inside: readonly DomainPattern[], directory: RuleDirectory | null = null): MessageOnlyFilter {
  // The attributes the rules read, by Exchange name and as the preset's LDAP attributes: worked out once, here.
  const names = [...new Set(rules.flatMap(adAttributesRead))];
  const adAttributes = { names, ldap: directory ? tokenAttributes(directory.preset, names) : [] };
  const reads: Reads = { body: rules.some(readsBody), attachments: rules.some(readsAttachments), attachmentSizes: rules.some(readsAttachmentSizes), archives: rules.some(readsArchives), partTypes: rules.some(readsPartTypes), adAttributes };
  return {
    name: TRANSPORT_RULES_FILTER_NAME,
    // Your own users' mail is judged too, as Exchange's rules judge every message.
    antiSpam: false,
    onFailure: 'tempfail',
    // A disclaimer changes the message as stored: intake keeps its body for it.
    mayAddDisclaimers: rules.some(appliesDisclaimer),
    begin: (ctx) => new TransportRulesSession(rules, inside, ctx, reads, directory),
  };
}

/** What of a message the rules read beyond its header fields and envelope. */
interface Reads {
  readonly body: boolean;
  readonly attachments: boolean;
  readonly attachmentSizes: boolean;
  /** Zip archives are opened (attachmentIsPasswordProtected). */
  readonly archives: boolean;
  readonly partTypes: boolean;
  /** The attributes the directory attribute and manager conditions read: Exchange's names, and the LDAP attributes asked for. */
  readonly adAttributes: { readonly names: readonly string[]; readonly ldap: readonly string[] };
}

/** An attachment being read: base64 is measured by its characters (4 make 3 bytes), anything else by its bytes. */
interface Measured {
  readonly name: string;
  bytes: number;
  /** An archive with encrypted files in it, or whose names are encrypted. */
  passwordProtected?: boolean;
  base64Chars: number;
}

/** Characters of the base64 alphabet in `b` (line breaks, padding and anything else left out). */
function base64Chars(b: Buffer): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47) n++;
  }
  return n;
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
  /** The MIME reader, when a rule reads the attachments. */
  private readonly scan: MimeScan | null = null;
  private readonly attachments: Measured[] = [];
  /** Every part's type, when a rule reads message types from them. */
  private readonly parts: TypedPart[] | null;
  private readonly measuring: boolean;
  private readonly adAttributes: Reads['adAttributes'];
  /**
   * Files uuencoded in the text (outside the MIME structure), when a rule reads the attachments:
   * mail programs show them as attachments, and the attachment filter judges them so. Their size
   * is not measured.
   */
  private readonly inText: UuencodedFiles | null;

  constructor(
    private readonly rules: readonly TransportRule[],
    private readonly inside: readonly DomainPattern[],
    private readonly ctx: FilterContext,
    reads: Reads,
    private readonly directory: RuleDirectory | null,
  ) {
    this.adAttributes = reads.adAttributes;
    this.kept = reads.body ? [] : null;
    this.measuring = reads.attachmentSizes;
    this.parts = reads.partTypes ? [] : null;
    this.inText = reads.attachments ? new UuencodedFiles() : null;
    if (!reads.attachments && !reads.partTypes) return;
    const byNode = new Map<PartNode, Measured>();
    /** Marks the archive that is this part password-protected; one without a file name of its own is named as the reader names it. */
    const passwordProtected = (node: PartNode, name: string): void => {
      let archive = byNode.get(node);
      if (!archive) {
        archive = { name, bytes: 0, base64Chars: 0 };
        this.attachments.push(archive);
        byNode.set(node, archive);
      }
      archive.passwordProtected = true;
    };
    // Leaf bodies are skipped (not even split) unless a size is asked.
    this.scan = new MimeScan(
      (part, place, node) => {
        // A file inside an archive (archives are opened only for attachmentIsPasswordProtected): an encrypted one marks the archive.
        if (part.archive !== undefined) {
          if (part.encrypted) passwordProtected(node, part.archive.split('/')[0]!);
          return;
        }
        this.parts?.push({ contentType: part.contentType, filename: part.filename, inAttachedMessage: place.inAttachedMessage });
        if (part.filename === null) return;
        const m: Measured = { name: part.filename, bytes: 0, base64Chars: 0 };
        this.attachments.push(m);
        byNode.set(node, m);
      },
      0,
      null,
      !reads.attachmentSizes,
      reads.archives,
    );
    // An archive whose very names are encrypted (a RAR made with -hp) is password-protected as a whole.
    this.scan.onArchiveLocked = passwordProtected;
    if (reads.attachmentSizes) {
      this.scan.onBody = (node, value) => {
        const m = byNode.get(node);
        if (!m) return;
        if (node.encoding === 'base64') m.base64Chars += base64Chars(value);
        else m.bytes += value.length;
      };
    }
  }

  private keep(b: Buffer): void {
    if (!this.kept || this.keptBytes >= BODY_READ_LIMIT) return;
    const part = b.length > BODY_READ_LIMIT - this.keptBytes ? b.subarray(0, BODY_READ_LIMIT - this.keptBytes) : b;
    this.kept.push(part);
    this.keptBytes += part.length;
  }

  async header(fields: readonly HeaderField[]): Promise<void> {
    if (this.scan) await this.scan.write(Buffer.concat([...fields.map((f) => f.raw), CRLF]), true);
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

  body(chunk: Buffer): Promise<void> | void {
    this.size += chunk.length;
    this.keep(chunk);
    this.inText?.push(chunk);
    return this.scan?.write(chunk);
  }

  async end(): Promise<FilterOutcome> {
    const bodyText = this.kept ? await messageText(Buffer.concat(this.kept, this.keptBytes)) : null;
    this.kept = null;
    let attachments: RuleAttachment[] | null = null;
    if (this.scan) {
      try {
        await this.scan.end();
      } catch (e) {
        // As the attachment filter: a structure that cannot be read is not let through unjudged.
        return { filter: TRANSPORT_RULES_FILTER_NAME, verdict: 'error', headers: [], reason: `the MIME structure could not be read for the attachment or message type conditions (${e instanceof Error ? e.message : String(e)})` };
      }
      attachments = this.attachments.map((a) => ({ name: a.name, size: this.measuring ? a.bytes + Math.floor((a.base64Chars * 3) / 4) : null, ...(a.passwordProtected ? { passwordProtected: true } : {}) }));
      if (this.inText) {
        this.inText.end();
        for (const name of this.inText.names) attachments.push({ name, size: null });
      }
    }
    const facts: MessageFacts = {
      envelopeSender: this.ctx.sender,
      fromHeader: this.from,
      recipients: this.ctx.recipients,
      clientIP: this.ctx.clientIP,
      internalSession: this.ctx.internalSession === true,
      fields: this.fields,
      size: this.size,
      bodyText,
      attachments,
      parts: this.parts,
      organizationHeadersTrusted: this.ctx.organizationHeadersTrusted === true,
    };
    const judged = await this.judge(facts);
    if ('error' in judged) return { filter: TRANSPORT_RULES_FILTER_NAME, verdict: 'error', headers: [], reason: judged.error };
    const r = judged.outcome;
    return { filter: TRANSPORT_RULES_FILTER_NAME, verdict: r.verdict, reply: r.reply, headers: r.headers, envelope: r.envelope, reason: r.reason, notable: r.matched.length > 0, rules: r.matched, ...(r.scl !== undefined ? { scl: r.scl } : {}), ...(r.events ? { events: r.events } : {}), ...(r.disclaimers ? { disclaimers: r.disclaimers } : {}) };
  }

  /**
   * The rules' outcome, asking the directory what the group and attribute conditions need:
   * judged, the addresses asked about looked up, judged again, until nothing is open. A directory
   * that does not answer is the filter's failure (451: the sender tries again), never a guess.
   */
  private async judge(facts: MessageFacts): Promise<{ outcome: RulesOutcome } | { error: string }> {
    const memberships = new Map<string, Exclude<MembershipAnswer, { kind: 'unavailable' }>>();
    const adAttributes = new Map<string, AdAttributesAnswer>();
    for (let round = 0; ; round++) {
      const outcome = evaluateTransportRules(this.rules, { ...facts, memberships, adAttributes }, this.inside);
      const groups = outcome.unansweredMembership ?? [];
      const attrs = outcome.unansweredAttributes ?? [];
      if (groups.length + attrs.length === 0) return { outcome };
      const open = [...groups, ...attrs];
      if (!this.directory) return { error: `the directory conditions need the directory, and there is none (${open.join(', ')})` };
      if (round === MAX_MEMBERSHIP_ROUNDS) return { error: `the directory conditions still asked about ${open.join(', ')} after ${round} rounds of directory questions` };
      const { lookup, preset } = this.directory;
      const questions = [
        ...groups.map((a) => async (): Promise<string | null> => {
          const r = await lookup.memberships(a);
          if (r.kind === 'unavailable') return `the directory did not answer which groups ${a} is in (${r.why})`;
          memberships.set(a, r);
          return null;
        }),
        ...attrs.map((a) => async (): Promise<string | null> => {
          const r = await lookup.entryAttributes(a, this.adAttributes.ldap);
          if (r.kind === 'unavailable') return `the directory did not answer with the attributes of ${a} (${r.why})`;
          adAttributes.set(a, r.kind === 'found' ? adAttributesAnswer(preset, this.adAttributes.names, r.dn, r.attributes) : { kind: 'not-found' });
          return null;
        }),
      ];
      for (let i = 0; i < questions.length; i += MEMBERSHIP_LOOKUPS_AT_ONCE) {
        const failed = (await Promise.all(questions.slice(i, i + MEMBERSHIP_LOOKUPS_AT_ONCE).map((q) => q()))).find((e) => e !== null);
        if (failed) return { error: failed };
      }
    }
  }

  abort(): void {
    this.fields = new Map();
    this.kept = null;
    this.scan?.discard();
  }
}
