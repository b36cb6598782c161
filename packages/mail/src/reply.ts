// SMTP replies, one shape for both directions: what the listener speaks (picked by the policy),
// what a next hop answered the worker, and what mailgw writes for its own local failures
// (the way Exchange does, so DSNs, the queue and logs have one shape).

export interface Reply {
  /** Basic reply code, e.g. 550. */
  readonly code: number;
  /** RFC 3463 enhanced status code ("5.1.1"), or null where none is sent (354, a 220 banner, a peer that gave none). */
  readonly enhanced: string | null;
  /** The text after the codes, on one line. */
  readonly text: string;
}

export function reply(code: number, enhanced: string | null, text: string): Reply {
  return { code, enhanced, text };
}

/** The longest text after "ddd " that keeps a reply line within 512 octets with its CRLF (RFC 5321 §4.5.3.1.5). */
export const MAX_REPLY_TEXT = 512 - 4 - 2;

/**
 * Text that came from outside (a client's parameter, a Message-ID header, a filter's words) as
 * it may stand in a reply line: printable US-ASCII only (replies are ASCII; any other byte,
 * CR and LF among them, becomes "?"), at most `max` characters, a cut marked "...".
 */
export function echoText(s: string, max: number): string {
  const printable = /[^\x20-\x7e]/.test(s) ? s.replace(/[^\x20-\x7e]/g, '?') : s;
  return printable.length <= max ? printable : `${printable.slice(0, Math.max(0, max - 3))}...`;
}

/** "550 5.7.1 Unable to relay" */
export function formatReply(r: Reply): string {
  return r.enhanced ? `${r.code} ${r.enhanced} ${r.text}` : `${r.code} ${r.text}`;
}

/** The enhanced status of a reply; from its class when it has none ("4.0.0" for a bare 451). */
export function replyStatus(r: Reply): string {
  return r.enhanced ?? `${Math.floor(r.code / 100)}.0.0`;
}

export const isPermanent = (r: Reply): boolean => r.code >= 500;
export const isSuccess = (r: Reply): boolean => r.code >= 200 && r.code < 300;

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/** One line, printable, bounded: replies end up in DSN fields, job state and log lines. */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').replace(/\s+/g, ' ').trim().slice(0, 900);
}

/** Parses a server reply ("550-5.1.1 …\n550 5.1.1 …" or "550 5.1.1 …"); null if it has no code. */
export function parseReply(response: string | undefined | null): Reply | null {
  if (!response) return null;
  // Continuation lines repeat the codes: keep their text only.
  const line = oneLine(response.replace(/\r?\n[2-5]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s)?/g, ' '));
  const m = /^([2-5]\d\d)(?:[ -]|$)(.*)$/.exec(line);
  if (!m) return null;
  const code = Number(m[1]);
  const rest = m[2]!.trim();
  const e = ENHANCED.exec(rest);
  // An enhanced code of another class than the basic code is not one (RFC 3463 §2): it stays text.
  if (e && e[1] === m[1]![0]) return { code, enhanced: `${e[1]}.${e[2]}.${e[3]}`, text: rest.slice(e[0].length) };
  return { code, enhanced: null, text: rest };
}

/** A reply written by mailgw itself (a local failure, a suspended hop), in the same shape. */
export function localReply(code: number, enhanced: string, message: string): Reply {
  return { code, enhanced, text: oneLine(message) };
}
