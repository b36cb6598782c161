// gateway.yaml transportRules: Exchange's Edge Rules agent (New-TransportRule on an Edge
// Transport server), judged at the end of DATA. A rule is conditions (all must hold; a list
// within one condition matches when any entry does), exceptions (any one spares the message)
// and actions, in the cmdlet's parameter names. Rules run in list order (Exchange's -Priority
// 0 first); stopRuleProcessing ends the list for a message that matched. None by default.
import { z } from 'zod';
import type { IpRange } from './ip-range.js';
import { ciEnum, intIn, ipRange, listOf, mailboxAddress, plainDomain, sizeBytes } from './zod-helpers.js';

export type RuleScope = 'InOrganization' | 'NotInOrganization';

/** Exchange's -MessageTypeMatches values (how each is read off a message: @mailgw/policy message-types.ts). */
export const MESSAGE_TYPES = ['OOF', 'AutoForward', 'Encrypted', 'Calendaring', 'PermissionControlled', 'Voicemail', 'Signed', 'ApprovalRequest', 'ReadReceipt'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];
/** The types read from the MIME structure, not the header alone. */
export const PART_MESSAGE_TYPES: ReadonlySet<MessageType> = new Set(['Calendaring', 'PermissionControlled']);

/**
 * Exchange's ADAttribute names (what -SenderADAttributeContainsWords and the disclaimer tokens
 * take); which LDAP attribute each reads under each directory preset is @mailgw/policy's
 * (disclaimer-tokens.ts).
 */
export const AD_ATTRIBUTES = [
  'DisplayName', 'FirstName', 'Initials', 'LastName', 'Office', 'PhoneNumber', 'OtherPhoneNumber', 'Email', 'Street', 'POBox', 'City', 'State', 'ZipCode', 'Country',
  'UserLogonName', 'HomePhoneNumber', 'OtherHomePhoneNumber', 'PagerNumber', 'MobileNumber', 'FaxNumber', 'OtherFaxNumber', 'Notes', 'Title', 'Department', 'Company', 'Manager',
  ...Array.from({ length: 15 }, (_, i) => `CustomAttribute${i + 1}` as const),
] as const;
export type AdAttribute = (typeof AD_ATTRIBUTES)[number];

/** -SenderADAttributeContainsWords "Department:Sales,Marketing": the words looked for in one attribute. */
export interface AdAttributeWords {
  readonly attribute: AdAttribute;
  readonly words: readonly string[];
}
/** -SenderADAttributeMatchesPatterns "Title:^Director": a pattern one attribute is matched against. */
export interface AdAttributePattern {
  readonly attribute: AdAttribute;
  readonly pattern: RegExp;
}

/** The conditions that read attributes of directory objects (Attribute:words / Attribute:pattern), as conditions and, prefixed exceptIf, exceptions. */
export const AD_ATTRIBUTE_CONDITIONS = ['senderADAttributeContainsWords', 'senderADAttributeMatchesPatterns', 'recipientADAttributeContainsWords', 'recipientADAttributeMatchesPatterns'] as const;

/** The conditions of a rule, and of its exceptions (the same keys, exceptIf…). */
export interface RuleConditions {
  readonly from?: readonly string[];
  readonly fromAddressContainsWords?: readonly string[];
  readonly fromAddressMatchesPatterns?: readonly RegExp[];
  readonly fromScope?: RuleScope;
  readonly senderDomainIs?: readonly string[];
  readonly sentTo?: readonly string[];
  readonly sentToScope?: RuleScope;
  readonly recipientDomainIs?: readonly string[];
  readonly anyOfRecipientAddressContainsWords?: readonly string[];
  readonly anyOfRecipientAddressMatchesPatterns?: readonly RegExp[];
  readonly subjectContainsWords?: readonly string[];
  readonly subjectMatchesPatterns?: readonly RegExp[];
  readonly subjectOrBodyContainsWords?: readonly string[];
  readonly subjectOrBodyMatchesPatterns?: readonly RegExp[];
  readonly headerContainsMessageHeader?: string;
  readonly headerContainsWords?: readonly string[];
  readonly headerMatchesMessageHeader?: string;
  readonly headerMatchesPatterns?: readonly RegExp[];
  readonly messageSizeOver?: number;
  readonly senderIpRanges?: readonly IpRange[];
  readonly attachmentNameMatchesPatterns?: readonly RegExp[];
  /** Extensions without the dot, lower case ("exe", "docm"). */
  readonly attachmentExtensionMatchesWords?: readonly string[];
  readonly attachmentSizeOver?: number;
  /** An attached zip archive holds encrypted files (always true when present). */
  readonly attachmentIsPasswordProtected?: boolean;
  readonly messageTypeMatches?: readonly MessageType[];
  /** Groups by name (cn), DN or address: the sender is a member (nested groups included). */
  readonly fromMemberOf?: readonly string[];
  /** The same for a recipient, who may also be the group itself. */
  readonly sentToMemberOf?: readonly string[];
  /** -BetweenMemberOf1 / -BetweenMemberOf2 (together): the sender is in a group of one list and a recipient in (or is) a group of the other, either way. */
  readonly betweenMemberOf1?: readonly string[];
  readonly betweenMemberOf2?: readonly string[];
  /** -ManagerAddresses with -ManagerForEvaluatedUser (together): the manager of the sender (or of a recipient) is the object holding one of these addresses. */
  readonly managerAddresses?: readonly string[];
  readonly managerForEvaluatedUser?: 'Sender' | 'Recipient';
  /** -SenderManagementRelationship: Manager: the sender is the manager of a recipient; DirectReport: a recipient is the sender's manager. */
  readonly senderManagementRelationship?: 'Manager' | 'DirectReport';
  /** An attribute of the sender's directory object contains one of the words (any entry holds: or). */
  readonly senderADAttributeContainsWords?: readonly AdAttributeWords[];
  readonly senderADAttributeMatchesPatterns?: readonly AdAttributePattern[];
  /** The same for a recipient's directory object (any recipient). */
  readonly recipientADAttributeContainsWords?: readonly AdAttributeWords[];
  readonly recipientADAttributeMatchesPatterns?: readonly AdAttributePattern[];
}

export interface RuleActions {
  /** SmtpRejectMessage: refuse with this status code (4xx or 5xx) and text (absent: the policy's default words). */
  readonly reject?: { readonly code: number; readonly text?: string | undefined };
  /** Disconnect: end the session at the end of DATA (the policy's 421). */
  readonly disconnect?: true;
  readonly deleteMessage?: boolean;
  readonly quarantine?: boolean;
  readonly prependSubject?: string;
  readonly setHeader?: { readonly name: string; readonly value: string };
  readonly removeHeader?: string;
  readonly setScl?: number;
  readonly redirectMessageTo?: readonly string[];
  readonly addToRecipients?: readonly string[];
  readonly copyTo?: readonly string[];
  readonly blindCopyTo?: readonly string[];
  /** LogEvent: a warning in the process log with this text, for every message the rule matches. */
  readonly logEventText?: string;
  /** ApplyHtmlDisclaimer: text (HTML) added to the message's body, where, and what to do with a message it cannot be added to. */
  readonly disclaimer?: Disclaimer;
}

/** Exchange's ApplyHtmlDisclaimerText / -Location / -FallbackAction. */
export interface Disclaimer {
  /** HTML as given; plain-text parts get it as text (tags dropped, entities decoded). */
  readonly html: string;
  readonly location: 'Append' | 'Prepend';
  /** Wrap: the message goes as an attachment of a new one that has the disclaimer; Ignore: as it is; Reject: refused (550 5.7.1). */
  readonly fallback: 'Wrap' | 'Ignore' | 'Reject';
}

export interface TransportRule {
  readonly name: string;
  readonly comments?: string | undefined;
  readonly enabled: boolean;
  /** Enforce: the actions apply. Audit: the match is logged and nothing else happens (Exchange's -Mode Audit). */
  readonly mode: 'Enforce' | 'Audit';
  /** Where the sender address is read: the From: field (Exchange's default), MAIL FROM, or either. */
  readonly senderAddressLocation: 'Header' | 'Envelope' | 'HeaderOrEnvelope';
  readonly conditions: RuleConditions;
  readonly exceptions: RuleConditions;
  readonly actions: RuleActions;
  readonly stopRuleProcessing: boolean;
}

const words = listOf(z.string().trim().min(1, 'an empty word matches everything').max(256));
/**
 * Whether a pattern repeats, without bound, a group that itself repeats without bound ("(a+)+",
 * "(\\w+\\s?)*"): the shape whose backtracking grows exponentially on text made to fail it.
 * Node has no time limit for a regular expression (.NET, which Exchange uses, has one), and a
 * sender writes the text, so such a pattern may let one message stall a listener: `mailgw check`
 * warns (a warning: "(?:[a-z]+\\.)+" has the shape and is harmless, the separator making each
 * way of matching unique).
 */
export function nestedRepetition(source: string): boolean {
  const stack: boolean[] = [];
  let inner = false; // the current group so far holds an unbounded repetition
  let lastGroupInner = false; // the group that just closed held one
  let afterGroup = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    const unboundedHere = c === '*' || c === '+' || (c === '{' && /^\{\d*,\}/.test(source.slice(i)));
    if (unboundedHere) {
      if (afterGroup && lastGroupInner) return true;
      inner = true;
      afterGroup = false;
      continue;
    }
    afterGroup = false;
    if (c === '\\') {
      i++;
    } else if (c === '[') {
      for (i++; i < source.length && source[i] !== ']'; i++) if (source[i] === '\\') i++;
    } else if (c === '(') {
      stack.push(inner);
      inner = false;
    } else if (c === ')') {
      lastGroupInner = inner;
      inner = (stack.pop() ?? false) || inner;
      afterGroup = true;
    }
  }
  return false;
}

/** Exchange's patterns are .NET regular expressions matched without regard to case; these are JavaScript ones. */
const pattern = z.string().transform((s, ctx): RegExp => {
  if (s.length === 0 || s.length > 512) {
    ctx.addIssue({ code: 'custom', message: 'a pattern is 1 to 512 characters' });
    return z.NEVER;
  }
  try {
    return new RegExp(s, 'iu');
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a regular expression: ${(e as Error).message}` });
    return z.NEVER;
  }
});
/** A file name extension as admins write it (".exe", "EXE"): lower case, without the dot. */
const extension = z.string().transform((s, ctx): string => {
  const t = s.trim().replace(/^\./, '').toLowerCase();
  if (!/^[^\s./\\]{1,32}$/u.test(t)) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a file name extension like exe or docm` });
    return z.NEVER;
  }
  return t;
});
const headerName = z.string().trim().regex(/^[\x21-\x39\x3b-\x7e]{1,128}$/, 'must be a header field name (printable ASCII, no colon), e.g. X-Mailer');
const scope = ciEnum(['InOrganization', 'NotInOrganization'] as const);
const addresses = listOf(mailboxAddress).refine((a) => a.length > 0, 'list at least one address');
/** Whether a group condition names its group by e-mail address (not by name or DN, which hold no @ / hold an =). */
export const isAddressGroupRef = (ref: string): boolean => ref.includes('@') && !ref.includes('=');
/** A directory group as Exchange's -FromMemberOf takes it: its name (cn), its DN, or its e-mail address. */
const groupRef = z
  .string()
  .trim()
  .min(1, 'a group is its name, its DN or its address')
  .max(1024)
  .refine((s) => !/[\0\r\n]/.test(s), 'one line, no NUL')
  .transform((s) => (isAddressGroupRef(s) ? s.toLowerCase() : s));
const groups = listOf(groupRef).refine((a) => a.length > 0, 'list at least one group');

const AD_ATTRIBUTE_BY_LOWER = new Map<string, AdAttribute>(AD_ATTRIBUTES.map((a) => [a.toLowerCase(), a]));
/** "Attribute:rest" as Exchange writes these conditions: the attribute (any case) and what follows the first colon. */
function adAttributeEntry(s: string, ctx: z.RefinementCtx, example: string): { attribute: AdAttribute; rest: string } | null {
  const colon = s.indexOf(':');
  const name = colon < 0 ? '' : s.slice(0, colon).trim();
  const attribute = AD_ATTRIBUTE_BY_LOWER.get(name.toLowerCase());
  if (colon < 0 || !attribute) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not Attribute:${example}${colon < 0 ? '' : `: ${name === '' ? 'no attribute before the colon' : `${name} is not one of Exchange's attribute names`}`} (${AD_ATTRIBUTES.slice(0, 26).join(', ')}, CustomAttribute1 to CustomAttribute15)` });
    return null;
  }
  return { attribute, rest: s.slice(colon + 1) };
}
/** "Department:Sales,Marketing": words and phrases separated by commas, as Exchange splits them. */
const adAttributeWords = listOf(
  z.string().transform((s, ctx): AdAttributeWords => {
    const e = adAttributeEntry(s, ctx, 'word,phrase with spaces,…');
    if (!e) return z.NEVER;
    const words = e.rest.split(',').map((w) => w.trim());
    if (words.some((w) => w === '' || w.length > 256)) {
      ctx.addIssue({ code: 'custom', message: `"${s}": each word or phrase after the colon is 1 to 256 characters, separated by commas (an empty one would match everything)` });
      return z.NEVER;
    }
    return { attribute: e.attribute, words };
  }),
).refine((a) => a.length > 0, 'list at least one Attribute:words entry');
/** "Title:^(Director|VP)\b": one regular expression per entry (a pattern may hold commas: {1,3}). */
const adAttributePatterns = listOf(
  z.string().transform((s, ctx): AdAttributePattern => {
    const e = adAttributeEntry(s, ctx, 'regular expression');
    if (!e) return z.NEVER;
    const parsed = pattern.safeParse(e.rest);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: `"${s}": ${parsed.error.issues[0]!.message}` });
      return z.NEVER;
    }
    return { attribute: e.attribute, pattern: parsed.data };
  }),
).refine((a) => a.length > 0, 'list at least one Attribute:pattern entry');

const conditionShape = {
  from: addresses.optional().describe('-From: the sender is one of these addresses.'),
  fromAddressContainsWords: words.optional().describe("-FromAddressContainsWords: the sender's address contains one of these (case ignored)."),
  fromAddressMatchesPatterns: listOf(pattern).optional().describe("-FromAddressMatchesPatterns: the sender's address matches one of these regular expressions (case ignored)."),
  fromScope: scope.optional().describe('-FromScope: InOrganization (an authenticated user or one of your servers: the session holds ms-Exch-Bypass-Anti-Spam, and the sender is in an Authoritative or InternalRelay domain) or NotInOrganization.'),
  senderDomainIs: listOf(plainDomain).optional().describe("-SenderDomainIs: the sender's domain is one of these or a subdomain."),
  sentTo: addresses.optional().describe('-SentTo: a recipient is one of these addresses.'),
  sentToScope: scope.optional().describe('-SentToScope: a recipient is InOrganization (an Authoritative or InternalRelay domain) or NotInOrganization.'),
  recipientDomainIs: listOf(plainDomain).optional().describe("-RecipientDomainIs: a recipient's domain is one of these or a subdomain."),
  anyOfRecipientAddressContainsWords: words.optional().describe("-AnyOfRecipientAddressContainsWords: a recipient's address contains one of these."),
  anyOfRecipientAddressMatchesPatterns: listOf(pattern).optional().describe("-AnyOfRecipientAddressMatchesPatterns: a recipient's address matches one of these."),
  subjectContainsWords: words.optional().describe('-SubjectContainsWords: the Subject (encoded words decoded) contains one of these words or phrases (whole words, case ignored).'),
  subjectMatchesPatterns: listOf(pattern).optional().describe('-SubjectMatchesPatterns: the Subject matches one of these regular expressions.'),
  subjectOrBodyContainsWords: words.optional().describe("-SubjectOrBodyContainsWords: the Subject or the message's text (its text or HTML part, decoded; the first 128 KB of text of the first 1 MB of the message) contains one of these words or phrases."),
  subjectOrBodyMatchesPatterns: listOf(pattern).optional().describe('-SubjectOrBodyMatchesPatterns: the Subject or that text matches one of these regular expressions.'),
  headerContainsMessageHeader: headerName.optional().describe('-HeaderContainsMessageHeader: the field headerContainsWords looks in.'),
  headerContainsWords: words.optional().describe('-HeaderContainsWords: a field named headerContainsMessageHeader contains one of these words or phrases.'),
  headerMatchesMessageHeader: headerName.optional().describe('-HeaderMatchesMessageHeader: the field headerMatchesPatterns looks in.'),
  headerMatchesPatterns: listOf(pattern).optional().describe('-HeaderMatchesPatterns: a field named headerMatchesMessageHeader matches one of these.'),
  messageSizeOver: sizeBytes(0, 64 * 1024 ** 3).optional().describe('-MessageSizeOver: the message is larger than this (e.g. 10MB).'),
  senderIpRanges: listOf(ipRange).optional().describe('-SenderIpRanges: the client address is in one of these ranges.'),
  attachmentNameMatchesPatterns: listOf(pattern).optional().describe('-AttachmentNameMatchesPatterns: the file name of an attachment (a part with a file name, in attached messages too; as Windows reads it, trailing dots and spaces dropped) matches one of these regular expressions.'),
  attachmentExtensionMatchesWords: listOf(extension).optional().describe('-AttachmentExtensionMatchesWords: the extension of an attachment\'s file name is one of these (exe, docm; case ignored, without the dot).'),
  attachmentSizeOver: sizeBytes(0, 64 * 1024 ** 3).optional().describe('-AttachmentSizeOver: an attachment is larger than this once decoded (e.g. 10MB).'),
  attachmentIsPasswordProtected: z
    .boolean()
    .refine((v) => v, 'must be true, or left out: false is no condition (Exchange\'s $false), and a rule whose only condition it were would match every message')
    .optional()
    .describe('-AttachmentIsPasswordProtected: true: an attached zip archive (or one inside it) holds encrypted files, whose contents no filter can inspect. Zip only: Office documents, PDF, 7z and rar are not recognised.'),
  messageTypeMatches: listOf(ciEnum(MESSAGE_TYPES))
    .refine((a) => a.length > 0, 'list at least one message type')
    .optional()
    .describe(`-MessageTypeMatches: the message is of this type (or one of these; Exchange takes one): ${MESSAGE_TYPES.join(', ')}. Read from the MIME form each takes (see "Message types" in the README).`),
  fromMemberOf: groups.optional().describe('-FromMemberOf: the sender is a member of one of these directory groups, nested groups included (a group by its name, DN or address; needs the directory section).'),
  sentToMemberOf: groups.optional().describe('-SentToMemberOf: a recipient is a member of one of these directory groups, nested groups included, or is the group itself (a gateway does not expand groups: mail to the group reaches its members).'),
  betweenMemberOf1: groups.optional().describe('-BetweenMemberOf1: with betweenMemberOf2, mail between the two sets of groups, either way: the sender is a member of a group of one (nested groups included) and a recipient is a member of a group of the other, or is that group (an ethical wall: two rules are not needed for the two directions).'),
  betweenMemberOf2: groups.optional().describe('-BetweenMemberOf2: the other side of betweenMemberOf1.'),
  managerAddresses: addresses.optional().describe("-ManagerAddresses: with managerForEvaluatedUser, the manager (the directory's manager attribute) of the sender or of a recipient is the object holding one of these addresses."),
  managerForEvaluatedUser: ciEnum(['Sender', 'Recipient'] as const).optional().describe('-ManagerForEvaluatedUser: whose manager managerAddresses names: Sender, or Recipient (any recipient).'),
  senderManagementRelationship: ciEnum(['Manager', 'DirectReport'] as const).optional().describe("-SenderManagementRelationship: Manager: the sender is the manager of a recipient (the recipient's manager attribute names the sender); DirectReport: a recipient is the sender's manager."),
  senderADAttributeContainsWords: adAttributeWords.optional().describe('-SenderADAttributeContainsWords: an attribute of the sender\'s directory object contains one of these words or phrases, written "Attribute:word,phrase with spaces" with Exchange\'s attribute names (Department, Title, City, Company, CustomAttribute1, …; whole words, case ignored); several entries: any one (or). Needs the directory section.'),
  senderADAttributeMatchesPatterns: adAttributePatterns.optional().describe('-SenderADAttributeMatchesPatterns: an attribute of the sender\'s directory object matches a regular expression, written "Attribute:pattern" (one pattern per entry; several entries: any one).'),
  recipientADAttributeContainsWords: adAttributeWords.optional().describe("-RecipientADAttributeContainsWords: as senderADAttributeContainsWords, for a recipient's directory object (any recipient)."),
  recipientADAttributeMatchesPatterns: adAttributePatterns.optional().describe("-RecipientADAttributeMatchesPatterns: as senderADAttributeMatchesPatterns, for a recipient's directory object (any recipient)."),
} as const;

type ConditionKey = keyof typeof conditionShape;
export const CONDITION_KEYS = Object.keys(conditionShape) as ConditionKey[];
/** A condition's exception key: fromMemberOf → exceptIfFromMemberOf. */
export const exceptKey = (k: string): string => `exceptIf${k[0]!.toUpperCase()}${k.slice(1)}`;

const exceptionShape = Object.fromEntries(CONDITION_KEYS.map((k) => [exceptKey(k), conditionShape[k].describe(`-${exceptKey(k)[0]!.toUpperCase()}${exceptKey(k).slice(1)}: as ${k}, an exception.`)])) as {
  [K in ConditionKey as `exceptIf${Capitalize<K>}`]: (typeof conditionShape)[K];
};

const actionShape = {
  smtpRejectMessageRejectStatusCode: intIn(400, 599).optional().describe('-SmtpRejectMessageRejectStatusCode: refuse the message at the end of DATA with this code (default 550; 4xx asks the sender to try again).'),
  smtpRejectMessageRejectText: z.string().trim().min(1).max(240).regex(/^[\x20-\x7e]+$/, 'printable ASCII only').optional().describe('-SmtpRejectMessageRejectText: the text of that refusal (default "Delivery not authorized, message refused").'),
  deleteMessage: z.boolean().optional().describe('-DeleteMessage: answer 250 and deliver to nobody.'),
  quarantine: z.boolean().optional().describe('-Quarantine: deliver to the quarantine mailbox (quarantineMailbox) instead of the recipients.'),
  prependSubject: z.string().min(1).max(256).regex(/^[^\r\n]+$/, 'one line').optional().describe('-PrependSubject: put this in front of the Subject ("[External] ").'),
  setHeaderName: headerName.optional().describe('-SetHeaderName: the field setHeaderValue sets (replaced if present).'),
  setHeaderValue: z.string().max(998).regex(/^[^\r\n]*$/, 'one line').optional().describe('-SetHeaderValue: its value.'),
  removeHeader: headerName.optional().describe('-RemoveHeader: remove every field of this name.'),
  setScl: intIn(-1, 9).optional().describe('-SetSCL: stamp this spam confidence level (X-MS-Exchange-Organization-SCL).'),
  redirectMessageTo: addresses.optional().describe('-RedirectMessageTo: deliver to these addresses instead of the recipients.'),
  addToRecipients: addresses.optional().describe('-AddToRecipients: add these recipients (and to the To: field).'),
  copyTo: addresses.optional().describe('-CopyTo: add these recipients (and to the Cc: field).'),
  blindCopyTo: addresses.optional().describe('-BlindCopyTo: add these recipients, in the envelope only.'),
  disconnect: z.boolean().optional().describe('-Disconnect: end the session instead of answering the message: 421 4.7.1 and the connection closed (Exchange closes it without a word); nothing is stored and the sender tries again later, no NDR.'),
  logEventText: z.string().trim().min(1).max(512).regex(/^[^\r\n]+$/, 'one line').optional().describe('-LogEventText: write this to the log (a warning, "transport rule event", with the rule and the message) for every message the rule matches (Exchange writes it to the Application event log).'),
  applyHtmlDisclaimerText: z.string().trim().min(1).max(5000).regex(/^[^\0]*$/, 'no NUL characters').optional().describe('-ApplyHtmlDisclaimerText: text added to the message body (HTML allowed: an HTML part gets it as given, a plain-text part as text); at most 5,000 characters, as Exchange.'),
  applyHtmlDisclaimerLocation: ciEnum(['Append', 'Prepend'] as const).optional().describe('-ApplyHtmlDisclaimerLocation: Append (default: after the text, e.g. a legal footer) or Prepend (before it, e.g. a warning about external senders).'),
  applyHtmlDisclaimerFallbackAction: ciEnum(['Wrap', 'Ignore', 'Reject'] as const).optional().describe('-ApplyHtmlDisclaimerFallbackAction: for a message the text cannot be added to (signed or encrypted, no text part): Wrap (default: the message goes as an attachment of a new message that has the text), Ignore (it goes as it is), Reject (refused with 550 5.7.1).'),
  stopRuleProcessing: z.boolean().default(false).describe('-StopRuleProcessing: no later rule is judged for a message this rule matched.'),
} as const;

const ruleObject = z.strictObject({
  name: z.string().trim().min(1).max(64).describe('-Name: how logs and `mailgw check` call the rule; unique.'),
  comments: z.string().max(1024).optional().describe('-Comments: free text.'),
  enabled: z.boolean().default(true).describe('-Enabled: false keeps the rule but never judges it (Disable-TransportRule).'),
  mode: ciEnum(['Enforce', 'Audit'] as const).default('Enforce').describe('-Mode: Enforce (the actions apply) or Audit (a match is logged, nothing else happens).'),
  senderAddressLocation: ciEnum(['Header', 'Envelope', 'HeaderOrEnvelope'] as const).default('Header').describe('-SenderAddressLocation: where the sender conditions read the sender: the From: field (default), MAIL FROM, or either.'),
  ...conditionShape,
  ...exceptionShape,
  ...actionShape,
});
type RuleFile = z.output<typeof ruleObject>;

export const TRANSPORT_RULE_KEYS = Object.keys(ruleObject.shape);

/** Whether a rule reads the message's text (subjectOrBody…, as a condition or an exception): only then is the body decoded. */
export function readsBody(r: TransportRule): boolean {
  const c = (x: RuleConditions) => x.subjectOrBodyContainsWords !== undefined || x.subjectOrBodyMatchesPatterns !== undefined;
  return r.enabled && (c(r.conditions) || c(r.exceptions));
}

/** Whether a rule reads the message's attachments (attachment…, as a condition or an exception): only then is its MIME structure read. */
export function readsAttachments(r: TransportRule): boolean {
  const c = (x: RuleConditions) => x.attachmentNameMatchesPatterns !== undefined || x.attachmentExtensionMatchesWords !== undefined || x.attachmentSizeOver !== undefined || x.attachmentIsPasswordProtected === true;
  return r.enabled && (c(r.conditions) || c(r.exceptions));
}

/** Whether a rule looks inside zip archives (attachmentIsPasswordProtected, as a condition or an exception): only then are they read. */
export function readsArchives(r: TransportRule): boolean {
  return r.enabled && (r.conditions.attachmentIsPasswordProtected === true || r.exceptions.attachmentIsPasswordProtected === true);
}

/** Whether a rule reads the MIME structure for a message type (Calendaring, PermissionControlled), as a condition or an exception. */
export function readsPartTypes(r: TransportRule): boolean {
  const c = (x: RuleConditions) => (x.messageTypeMatches ?? []).some((t) => PART_MESSAGE_TYPES.has(t));
  return r.enabled && (c(r.conditions) || c(r.exceptions));
}

/** Whether a rule asks the directory about group membership (fromMemberOf, sentToMemberOf, betweenMemberOf1/2, as a condition or an exception). */
export function readsMembership(r: TransportRule): boolean {
  const c = (x: RuleConditions) => x.fromMemberOf !== undefined || x.sentToMemberOf !== undefined || x.betweenMemberOf1 !== undefined;
  return c(r.conditions) || c(r.exceptions);
}

/** The Exchange attribute names a rule's directory attribute and manager conditions read (as conditions or exceptions). */
export function adAttributesRead(r: TransportRule): AdAttribute[] {
  const out = new Set<AdAttribute>();
  for (const c of [r.conditions, r.exceptions]) {
    for (const k of AD_ATTRIBUTE_CONDITIONS) for (const e of c[k] ?? []) out.add(e.attribute);
    // The manager conditions compare the manager attribute (a DN) with the objects' DNs.
    if (c.managerAddresses !== undefined || c.senderManagementRelationship !== undefined) out.add('Manager');
  }
  return [...out];
}

/** Whether a rule may add a disclaimer: only then is the whole message kept at the end of DATA to be changed. */
export function appliesDisclaimer(r: TransportRule): boolean {
  return r.enabled && r.mode === 'Enforce' && r.actions.disclaimer !== undefined;
}

/** Whether a rule needs the attachments' sizes (attachmentSizeOver): only then are the parts' bodies read, not skipped. */
export function readsAttachmentSizes(r: TransportRule): boolean {
  return r.enabled && (r.conditions.attachmentSizeOver !== undefined || r.exceptions.attachmentSizeOver !== undefined);
}

/** Warnings for the rules' patterns that repeat a repeating group (nestedRepetition), with their keys. */
export function transportRuleWarnings(rules: readonly TransportRule[]): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  rules.forEach((r, n) => {
    for (const [prefix, c] of [['', r.conditions], ['exceptIf', r.exceptions]] as const) {
      for (const k of ['fromAddressMatchesPatterns', 'anyOfRecipientAddressMatchesPatterns', 'subjectMatchesPatterns', 'subjectOrBodyMatchesPatterns', 'headerMatchesPatterns', 'attachmentNameMatchesPatterns'] as const) {
        (c[k] ?? []).forEach((p, i) => {
          if (!nestedRepetition(p.source)) return;
          out.push({ path: `transportRules[${n}].${prefix ? exceptKey(k) : k}[${i}]`, message: `"${p.source}" repeats a group that itself repeats without bound: unless what separates the repetitions makes each way of matching unique, text a sender makes to fail it can keep a listener busy for minutes (regular expressions have no time limit in Node); (a+)+ is a+` });
        });
      }
    }
  });
  return out;
}

function pick(r: Record<string, unknown>, key: (k: ConditionKey) => string): RuleConditions {
  const out: Record<string, unknown> = {};
  for (const k of CONDITION_KEYS) if (r[key(k)] !== undefined) out[k] = r[key(k)];
  return out as RuleConditions;
}

function toRule(r: RuleFile, ctx: z.RefinementCtx): TransportRule {
  const raw = r as unknown as Record<string, unknown>;
  const conditions = pick(raw, (k) => k);
  const exceptions = pick(raw, exceptKey);
  // A field name without its words, or words without a field: half a condition.
  for (const [prefix, c] of [['', conditions], ['exceptIf', exceptions]] as const) {
    const k = (s: string) => (prefix ? exceptKey(s) : s);
    if ((c.headerContainsMessageHeader === undefined) !== (c.headerContainsWords === undefined)) ctx.addIssue({ code: 'custom', path: [k(c.headerContainsWords ? 'headerContainsMessageHeader' : 'headerContainsWords')], message: `${k('headerContainsMessageHeader')} and ${k('headerContainsWords')} go together: the field, and the words to look for in it` });
    if ((c.headerMatchesMessageHeader === undefined) !== (c.headerMatchesPatterns === undefined)) ctx.addIssue({ code: 'custom', path: [k(c.headerMatchesPatterns ? 'headerMatchesMessageHeader' : 'headerMatchesPatterns')], message: `${k('headerMatchesMessageHeader')} and ${k('headerMatchesPatterns')} go together: the field, and the patterns to match it against` });
    if ((c.managerAddresses === undefined) !== (c.managerForEvaluatedUser === undefined)) ctx.addIssue({ code: 'custom', path: [k(c.managerAddresses ? 'managerForEvaluatedUser' : 'managerAddresses')], message: `${k('managerAddresses')} and ${k('managerForEvaluatedUser')} go together: the managers, and whose manager (Sender or Recipient)` });
    if ((c.betweenMemberOf1 === undefined) !== (c.betweenMemberOf2 === undefined)) ctx.addIssue({ code: 'custom', path: [k(c.betweenMemberOf1 ? 'betweenMemberOf2' : 'betweenMemberOf1')], message: `${k('betweenMemberOf1')} and ${k('betweenMemberOf2')} go together: mail between the groups of one and the groups of the other` });
  }
  const actions: Record<string, unknown> = {};
  if (r.smtpRejectMessageRejectStatusCode !== undefined || r.smtpRejectMessageRejectText !== undefined) {
    actions.reject = { code: r.smtpRejectMessageRejectStatusCode ?? 550, ...(r.smtpRejectMessageRejectText !== undefined ? { text: r.smtpRejectMessageRejectText } : {}) };
  }
  if (r.disconnect) {
    if (actions.reject) ctx.addIssue({ code: 'custom', path: ['disconnect'], message: 'disconnect ends the session with its own 421: it does not go with smtpRejectMessage…' });
    else actions.disconnect = true;
  }
  if (r.logEventText !== undefined) actions.logEventText = r.logEventText;
  if (r.deleteMessage) actions.deleteMessage = true;
  if (r.quarantine) actions.quarantine = true;
  if (r.prependSubject !== undefined) actions.prependSubject = r.prependSubject;
  if ((r.setHeaderName === undefined) !== (r.setHeaderValue === undefined)) ctx.addIssue({ code: 'custom', path: [r.setHeaderName === undefined ? 'setHeaderName' : 'setHeaderValue'], message: 'setHeaderName and setHeaderValue go together' });
  else if (r.setHeaderName !== undefined) actions.setHeader = { name: r.setHeaderName, value: r.setHeaderValue! };
  if (r.removeHeader !== undefined) actions.removeHeader = r.removeHeader;
  if (r.setScl !== undefined) actions.setScl = r.setScl;
  if (r.applyHtmlDisclaimerText !== undefined) {
    actions.disclaimer = { html: r.applyHtmlDisclaimerText, location: r.applyHtmlDisclaimerLocation ?? 'Append', fallback: r.applyHtmlDisclaimerFallbackAction ?? 'Wrap' } satisfies Disclaimer;
  } else {
    for (const k of ['applyHtmlDisclaimerLocation', 'applyHtmlDisclaimerFallbackAction'] as const) if (r[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `${k} says how to apply applyHtmlDisclaimerText, which this rule does not have` });
  }
  for (const k of ['redirectMessageTo', 'addToRecipients', 'copyTo', 'blindCopyTo'] as const) if (r[k] !== undefined) actions[k] = r[k];
  const ends = ['reject', 'disconnect', 'deleteMessage', 'quarantine', 'redirectMessageTo'].filter((k) => actions[k] !== undefined);
  if (ends.length > 1) ctx.addIssue({ code: 'custom', path: [], message: `a rule can do one of rejecting, deleteMessage, quarantine and redirectMessageTo, not ${ends.map((k) => (k === 'reject' ? 'rejecting (smtpRejectMessage…)' : k)).join(' and ')}` });
  if (Object.keys(actions).length === 0 && !r.stopRuleProcessing) {
    ctx.addIssue({ code: 'custom', path: [], message: `rule "${r.name}" has no action: give one of smtpRejectMessageRejectText, disconnect, deleteMessage, quarantine, prependSubject, setHeaderName/setHeaderValue, removeHeader, setScl, redirectMessageTo, addToRecipients, copyTo, blindCopyTo, applyHtmlDisclaimerText, logEventText, stopRuleProcessing` });
  }
  return {
    name: r.name,
    comments: r.comments,
    enabled: r.enabled,
    mode: r.mode,
    senderAddressLocation: r.senderAddressLocation,
    conditions,
    exceptions,
    actions: actions as RuleActions,
    stopRuleProcessing: r.stopRuleProcessing,
  };
}

export const transportRulesSchema = listOf(ruleObject.transform(toRule)).superRefine((rules, ctx) => {
  const seen = new Map<string, number>();
  rules.forEach((r, n) => {
    const k = r.name.toLowerCase();
    const s = seen.get(k);
    if (s !== undefined) ctx.addIssue({ code: 'custom', path: [n, 'name'], message: `"${r.name}" is the name of rule ${s + 1} as well: names must differ` });
    else seen.set(k, n);
  });
});
