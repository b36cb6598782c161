// ESMTP parameters of MAIL FROM and RCPT TO, judged before the address is: each keyword must
// be one this connector advertised in EHLO (RFC 5321 4.1.1.11: otherwise 555 5.5.4), given
// once, with the syntax of its RFC (SIZE RFC 1870, BODY RFC 6152, RET/ENVID/NOTIFY/ORCPT
// RFC 3461 with xtext, AUTH= RFC 4954 section 5, SMTPUTF8 RFC 6531). A path holding UTF-8 is
// accepted only in a transaction whose MAIL carried SMTPUTF8 (RFC 6531 3.7.4.1: 553 5.6.7).
import { decodeXtext, hasNonAscii, isEsmtpKeyword, isXtext, type AddressCommandArgs, type EsmtpParameter } from '@mailgw/mail';
import { accept, reject, type Decision } from './decision.js';
import { REPLIES } from './replies.js';
import { authMechanisms, type Session } from './stages.js';

export type AddressCommand = 'MAIL' | 'RCPT';

export interface ParametersInput {
  readonly command: AddressCommand;
  readonly args: AddressCommandArgs;
  /** RCPT only: the transaction's MAIL carried SMTPUTF8. */
  readonly smtpUtf8?: boolean;
}

export interface ParametersDecision extends Decision {
  /** MAIL: the transaction is an SMTPUTF8 one (the parameter was given and accepted). */
  readonly smtpUtf8: boolean;
}

/** RFC 3461 4.4: ENVID at most 100 characters; 4.2: ORCPT at most 500. */
export const MAX_ENVID = 100;
export const MAX_ORCPT = 500;

type Check = (value: string | null, session: Session) => string | null;

interface ParameterRule {
  /** Why it is not offered on this connector, or null when it is. */
  readonly offered: (session: Session) => string | null;
  /** What is wrong with the value, or null when it is right. */
  readonly check: Check;
}

/** BINARYMIME is advertised (RFC 3030: only with CHUNKING, as a binary message must come by BDAT). */
export function offersBinaryMime(s: Session): boolean {
  return s.connector.config.chunkingEnabled && s.connector.config.binaryMimeEnabled;
}

/** Why a BODY= value is not offered on this connector (unadvertised: 555 5.5.4), or null. */
function bodyValueOffered(value: string, s: Session): string | null {
  const v = value.toUpperCase();
  if (v === '8BITMIME' && !s.connector.config.eightBitMimeEnabled) return 'BODY=8BITMIME but eightBitMimeEnabled is false';
  if (v === 'BINARYMIME' && !offersBinaryMime(s)) return `BODY=BINARYMIME but ${s.connector.config.chunkingEnabled ? 'binaryMimeEnabled' : 'chunkingEnabled'} is false`;
  return null;
}

const dsn = (s: Session) => (s.connector.config.deliveryStatusNotificationEnabled ? null : 'deliveryStatusNotificationEnabled is false');

/** xtext that decodes to a control character (CR LF smuggled as +0D+0A): never legitimate. */
const controls = (v: string) => /[\x00-\x1f\x7f]/.test(decodeXtext(v));

const needsValue = (check: (v: string) => string | null): Check => (v) => (v === null || v === '' ? 'requires a value' : check(v));

const MAIL_RULES: Readonly<Record<string, ParameterRule>> = {
  SIZE: {
    offered: (s) => (s.connector.config.sizeEnabled === 'Disabled' ? 'sizeEnabled is Disabled' : null),
    check: needsValue((v) => (/^\d{1,20}$/.test(v) ? null : 'is not 1 to 20 digits (RFC 1870)')),
  },
  BODY: {
    offered: (s) => (s.connector.config.eightBitMimeEnabled || offersBinaryMime(s) ? null : 'neither 8BITMIME nor BINARYMIME is advertised'),
    check: needsValue((v) => {
      if (!/^(7BIT|8BITMIME|BINARYMIME)$/i.test(v)) return 'is not 7BIT, 8BITMIME (RFC 6152) or BINARYMIME (RFC 3030)';
      return null;
    }),
  },
  RET: {
    offered: dsn,
    check: needsValue((v) => (/^(FULL|HDRS)$/i.test(v) ? null : 'is not FULL or HDRS (RFC 3461 4.3)')),
  },
  ENVID: {
    offered: dsn,
    check: needsValue((v) => (!isXtext(v) ? 'is not xtext (RFC 3461 4)' : controls(v) ? 'decodes to control characters' : decodeXtext(v).length > MAX_ENVID ? `is longer than ${MAX_ENVID} characters (RFC 3461 4.4)` : null)),
  },
  AUTH: {
    offered: (s) => (authMechanisms(s).length > 0 ? null : 'AUTH is not advertised to this session'),
    check: needsValue((v) => (v === '<>' || (isXtext(v) && !controls(v)) ? null : 'is neither <> nor xtext without control characters (RFC 4954 5)')),
  },
  SMTPUTF8: {
    offered: (s) => (s.connector.config.smtpUtf8Enabled ? null : 'smtpUtf8Enabled is false'),
    check: (v) => (v === null ? null : 'takes no value (RFC 6531 3.4)'),
  },
};

/** RFC 6533 utf-8-addr-xtext / utf-8-addr-unitext: xtext chars, \x{HEX}, or UTF-8. */
const UTF8_ADDR = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]|\\x\{[0-9A-F]{2,6}\}|\+[0-9A-F]{2}|[^\x00-\x7f])+$/;

const RCPT_RULES: Readonly<Record<string, ParameterRule>> = {
  NOTIFY: {
    offered: dsn,
    check: needsValue((v) => {
      const items = v.toUpperCase().split(',');
      if (items.some((i) => !['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'].includes(i))) return 'is not NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1)';
      if (items.includes('NEVER') && items.length > 1) return 'combines NEVER with other values (RFC 3461 4.1)';
      if (new Set(items).size !== items.length) return 'repeats a value';
      return null;
    }),
  },
  ORCPT: {
    offered: dsn,
    check: needsValue((v) => {
      if (v.length > MAX_ORCPT) return `is longer than ${MAX_ORCPT} characters (RFC 3461 4.2)`;
      const m = /^([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+);(.+)$/.exec(v);
      if (!m) return 'is not addr-type;xtext (RFC 3461 4.2)';
      const ok = m[1]!.toLowerCase() === 'utf-8' ? UTF8_ADDR.test(m[2]!) && !controls(m[2]!) : isXtext(m[2]!) && !controls(m[2]!);
      return ok ? null : `holds an address that is not ${m[1]!.toLowerCase() === 'utf-8' ? 'utf-8-addr-xtext (RFC 6533)' : 'xtext (RFC 3461 4)'}`;
    }),
  },
};

function name(p: EsmtpParameter): string {
  return p.value === null ? p.keyword : `${p.keyword}=${p.value}`;
}

/** The parameters of one MAIL or RCPT command, and the UTF-8 rule for its path. */
export function commandParameters(session: Session, input: ParametersInput): ParametersDecision {
  const c = session.connector;
  const rules = input.command === 'MAIL' ? MAIL_RULES : RCPT_RULES;
  const seen = new Set<string>();
  let smtpUtf8 = input.command === 'RCPT' ? !!input.smtpUtf8 : false;
  const out = (d: Decision): ParametersDecision => ({ ...d, smtpUtf8 });

  for (const p of input.args.params) {
    if (!isEsmtpKeyword(p.keyword)) return out(reject(REPLIES.invalidArguments, 'bad-parameter', `${input.command} parameter "${name(p)}" is not an esmtp-keyword[=value] (RFC 5321 4.1.2)`));
    const rule = rules[p.keyword];
    const off = rule ? rule.offered(session) : `${p.keyword} is not a ${input.command} parameter mailgw supports`;
    if (!rule || off !== null) return out(reject(REPLIES.unsupportedParameter(p.keyword), 'unsupported-parameter', `${input.command} parameter ${p.keyword} not advertised on connector "${c.name}": ${off}`));
    if (seen.has(p.keyword)) return out(reject(REPLIES.invalidArguments, 'duplicate-parameter', `${input.command} parameter ${p.keyword} given twice (RFC 3461 4, RFC 5321 4.1.2)`));
    seen.add(p.keyword);
    // esmtp-value (RFC 5321 4.1.2): printable ASCII but "=", or UTF-8 under SMTPUTF8 (RFC 6531 3.3).
    if (p.value !== null && /[\x00-\x20\x7f]/.test(p.value)) return out(reject(REPLIES.invalidArguments, 'bad-parameter', `${input.command} parameter ${p.keyword} value holds control characters or spaces`));
    const wrong = rule.check(p.value, session);
    if (wrong !== null) return out(reject(REPLIES.invalidArguments, 'bad-parameter', `${input.command} parameter ${name(p)} ${wrong}`));
    // A body type whose extension this connector does not advertise: as an unadvertised parameter (RFC 5321 4.1.1.11).
    const unoffered = p.keyword === 'BODY' && p.value !== null ? bodyValueOffered(p.value, session) : null;
    if (unoffered !== null) return out(reject(REPLIES.unsupportedParameter(name(p)), 'unsupported-parameter', `${input.command} parameter ${name(p)} not advertised on connector "${c.name}": ${unoffered}`));
    if (p.keyword === 'SMTPUTF8') smtpUtf8 = true;
  }

  // The listener decodes the line as UTF-8: a byte sequence that is not UTF-8 became U+FFFD.
  if (input.args.path.includes('\uFFFD')) return out(reject(REPLIES.invalidAddress, 'invalid-utf8', `${input.command} path holds bytes that are not UTF-8 (RFC 6531 3.3)`));
  if (hasNonAscii(input.args.path)) {
    if (!c.config.smtpUtf8Enabled) return out(reject(REPLIES.utf8AddressNotSupported, 'utf8-not-enabled', `${input.command} path <${input.args.path}> holds UTF-8 and connector "${c.name}" has smtpUtf8Enabled false`));
    if (!smtpUtf8) return out(reject(REPLIES.utf8AddressNeedsSmtpUtf8, 'utf8-without-smtputf8', `${input.command} path <${input.args.path}> holds UTF-8 but the transaction's MAIL did not give SMTPUTF8 (RFC 6531 3.7.4.1)`));
  }
  return out(accept(input.command === 'MAIL' ? REPLIES.senderOk : REPLIES.recipientOk, 'parameters-ok', `${input.command} parameters ${input.args.params.map(name).join(' ') || '(none)'} accepted`));
}
