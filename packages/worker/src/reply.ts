// SMTP replies as the worker records them: the basic code, the enhanced status (RFC 3463) and
// the text as the far side (or mailgw itself) wrote it. Local failures are written as SMTP
// replies too, the way Exchange does, so DSNs and logs have one shape.

export interface Reply {
  /** Basic reply code, e.g. 550. */
  readonly code: number;
  /** Enhanced status code, e.g. "5.1.1"; derived from the basic code when the reply has none. */
  readonly status: string;
  /** The whole reply on one line, e.g. "550 5.1.1 <bob@example.com>: user unknown". */
  readonly text: string;
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

/** One line, printable, bounded: replies end up in DSN fields and log lines. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').replace(/\s+/g, ' ').trim().slice(0, 900);
}

/** Parses a server reply ("550-5.1.1 …\n550 5.1.1 …" or "550 5.1.1 …"); null if it has no code. */
export function parseReply(response: string | undefined | null): Reply | null {
  if (!response) return null;
  const text = oneLine(response.replace(/\r?\n[2-5]\d\d[ -]/g, ' '));
  const m = /^([2-5]\d\d)(?:[ -]|$)(.*)$/.exec(text);
  if (!m) return null;
  const code = Number(m[1]);
  const e = ENHANCED.exec(m[2]!.trim());
  // An enhanced code of another class than the basic code is ignored (RFC 3463 §2).
  const status = e && e[1] === m[1]![0] ? `${e[1]}.${e[2]}.${e[3]}` : `${m[1]![0]}.0.0`;
  return { code, status, text };
}

/** A reply written by mailgw itself. */
export function localReply(code: number, status: string, message: string): Reply {
  return { code, status, text: oneLine(`${code} ${status} ${message}`) };
}

export const isPermanent = (r: Reply): boolean => r.code >= 500;
export const isSuccess = (r: Reply): boolean => r.code >= 200 && r.code < 300;
