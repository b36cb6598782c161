// Exchange's Edge attachment filtering, the decisions: whether a part of a message matches an
// entry (FileName: the name with * and ? wildcards, case ignored; ContentType: type/subtype),
// and what the configured action makes of the matches. Pure: the MIME reading is the content
// filter's (@mailgw/content-filter attachment-filter.ts).
import { attachmentEntryText, type AttachmentFilterConfig, type AttachmentFilterEntry } from '@mailgw/config';
import type { Reply } from '@mailgw/mail';
import { REPLIES } from './replies.js';

/** The name of the attachment filter in logs, `mailgw explain` and the filter plan. */
export const ATTACHMENT_FILTER_NAME = 'attachment-filter';

/** One MIME part as the filter read it. */
export interface SeenPart {
  /** Its file name (Content-Disposition filename or Content-Type name, decoded), if it has one. */
  readonly filename: string | null;
  /** Its content type (type/subtype, lower case), if it has one. */
  readonly contentType: string | null;
  /** A file inside an archive attached: the archive's name ("report.zip", nested ones "a.zip/b.zip"); the file's is `filename`. */
  readonly archive?: string;
  /** A file inside an archive whose contents are encrypted (a password-protected archive). */
  readonly encrypted?: boolean;
  /** A file uuencoded in the message's text (a "begin 644 name" line and encoded lines), which mail programs show as an attachment: no MIME part of its own. */
  readonly inText?: boolean;
}

/** Where a part sits in the message, for Strip: what would have to be removed. */
export interface StripTarget {
  /** The message itself (a message of a blocked type has no part to remove). */
  readonly root: boolean;
  /** A multipart container. */
  readonly container: boolean;
  /** Inside an attached message: that attached message is what is removed. */
  readonly inAttachedMessage: boolean;
}

/** For Strip: the node to remove (its index counted in the outermost message) and what it is. */
export interface AttachmentPlace extends StripTarget {
  readonly index: number;
}

export interface AttachmentMatch {
  readonly part: SeenPart;
  readonly entry: AttachmentFilterEntry;
  readonly place?: AttachmentPlace | undefined;
}

/**
 * The name Windows would act on: the last path segment (a name may carry a path), without the
 * trailing dots and spaces Windows drops ("invoice.exe." opens as invoice.exe).
 */
export function effectiveFileName(name: string): string {
  const base = name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
  return base.replace(/[.\s]+$/u, '');
}

function wildcard(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'isu');
}

/** `*.ext` with an ASCII literal after the star: matched by the name's ending, without a regular expression. */
const SUFFIX_ENTRY = /^\*(\.[\x20-\x29\x2b-\x3e\x40-\x7e]+)$/;

/**
 * The first entry a part matches, or null; the entries compiled once. Most entries are `*.ext`:
 * those are looked up by the name's endings (every ending after a dot) in one map, the others
 * tried as regular expressions, so that an archive of thousands of names costs microseconds a
 * name, not one regular expression per entry. Which entry is reported when several match is
 * the first in the list, as before.
 */
export function attachmentMatcher(entries: readonly AttachmentFilterEntry[]): (part: SeenPart) => AttachmentFilterEntry | null {
  const fileNames = entries.filter((e) => e.type === 'FileName');
  const order = new Map(fileNames.map((e, i) => [e, i] as const));
  const suffixes = new Map<string, AttachmentFilterEntry>();
  const patterns: Array<{ e: AttachmentFilterEntry; re: RegExp }> = [];
  for (const e of fileNames) {
    const m = SUFFIX_ENTRY.exec(e.name);
    if (m) {
      const key = m[1]!.toLowerCase();
      if (!suffixes.has(key)) suffixes.set(key, e);
    } else patterns.push({ e, re: wildcard(e.name) });
  }
  const byName = (name: string): AttachmentFilterEntry | null => {
    let best: AttachmentFilterEntry | null = null;
    const lower = name.toLowerCase();
    for (let dot = lower.indexOf('.'); dot !== -1; dot = lower.indexOf('.', dot + 1)) {
      const e = suffixes.get(lower.slice(dot));
      if (e && (best === null || order.get(e)! < order.get(best)!)) best = e;
    }
    for (const { e, re } of patterns) {
      if (best !== null && order.get(e)! > order.get(best)!) break;
      if (re.test(name)) return e;
    }
    return best;
  };
  const types = new Map(entries.filter((e) => e.type === 'ContentType').map((e) => [e.name, e] as const));
  return (part) => {
    if (part.contentType) {
      const hit = types.get(part.contentType.toLowerCase());
      if (hit) return hit;
    }
    if (part.filename) {
      // A control character (NUL from %00 in RFC 2231) ends the name for some programs and not
      // for others: both readings are judged.
      const cut = part.filename.search(/[\x00-\x1f]/);
      const candidates = cut >= 0 ? [part.filename, part.filename.slice(0, cut)] : [part.filename];
      for (const name of candidates.map(effectiveFileName)) {
        const hit = byName(name);
        if (hit) return hit;
      }
    }
    return null;
  };
}

export type AttachmentVerdict =
  | { readonly verdict: 'accept' | 'discard'; readonly reason: string }
  /** The reply of a rejection: 550 5.7.1 and the rejectResponse. */
  | { readonly verdict: 'reject'; readonly reply: Reply; readonly reason: string }
  /** Deliver it with these nodes (indexes in the outermost message) replaced by the adminMessage. */
  | { readonly verdict: 'strip'; readonly strip: readonly number[]; readonly reason: string };

function describe(m: AttachmentMatch): string {
  const what = m.part.filename !== null ? `"${m.part.filename}"${m.part.contentType ? ` (${m.part.contentType})` : ''}` : `a part of type ${m.part.contentType ?? 'unknown'}`;
  return `${what}${m.part.archive !== undefined ? ` inside the archive "${m.part.archive}"` : ''}${m.part.inText ? " uuencoded in the message's text" : ''}${m.place?.inAttachedMessage ? ' in an attached message' : ''} matches ${attachmentEntryText(m.entry)}`;
}

/**
 * What the matches mean: nothing (accept), or the configured action. Reject and SilentDelete
 * act on the whole message; Strip removes each matching part (an attached message holding one
 * goes whole), and refuses, as Reject, a message that is itself of a blocked type, whose
 * matching part is a multipart container, or whose match is uuencoded in its text: there is no
 * part to take out.
 */
export function attachmentVerdict(matches: readonly AttachmentMatch[], cfg: Pick<AttachmentFilterConfig, 'action' | 'rejectResponse'>): AttachmentVerdict {
  if (matches.length === 0) return { verdict: 'accept', reason: 'no attachment matches an entry' };
  const shown = matches.slice(0, 3).map(describe).join('; ') + (matches.length > 3 ? `; and ${matches.length - 3} more` : '');
  // Content filtering's 550 5.7.1, with the attachment filter's text (as rspamd's rejectionResponse).
  const reject = (why: string): AttachmentVerdict => ({ verdict: 'reject', reply: { ...REPLIES.contentRejected, text: cfg.rejectResponse }, reason: `${shown}: rejected (${why})` });
  if (cfg.action === 'SilentDelete') return { verdict: 'discard', reason: `${shown}: deleted (action SilentDelete)` };
  if (cfg.action === 'Reject') return reject('action Reject');
  const whole = matches.find((m) => !m.place || m.place.root || m.place.container);
  if (whole) return reject(`action Strip, but ${whole.part.inText ? "a file is uuencoded in the message's text" : whole.place?.root ? 'the message itself is of that kind' : 'a multipart container matches'}: nothing to remove`);
  const strip = [...new Set(matches.map((m) => m.place!.index))].sort((a, b) => a - b);
  return { verdict: 'strip', strip, reason: `${shown}: ${strip.length} part${strip.length === 1 ? '' : 's'} removed (action Strip)` };
}
