// Exchange's Edge attachment filtering, the decisions: whether a part of a message matches an
// entry (FileName: the name with * and ? wildcards, case ignored; ContentType: type/subtype),
// and what the configured action makes of the matches. Pure: the MIME reading is the content
// filter's (@mailgw/content-filter attachment-filter.ts).
import { attachmentEntryText, type AttachmentFilterConfig, type AttachmentFilterEntry } from '@mailgw/config';
import { localReply, type Reply } from '@mailgw/mail';

/** The name of the attachment filter in logs, `mailgw explain` and the filter plan. */
export const ATTACHMENT_FILTER_NAME = 'attachment-filter';

/** One MIME part as the filter read it. */
export interface SeenPart {
  /** Its file name (Content-Disposition filename or Content-Type name, decoded), if it has one. */
  readonly filename: string | null;
  /** Its content type (type/subtype, lower case), if it has one. */
  readonly contentType: string | null;
}

export interface AttachmentMatch {
  readonly part: SeenPart;
  readonly entry: AttachmentFilterEntry;
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

/** The first entry a part matches, or null; the entries compiled once. */
export function attachmentMatcher(entries: readonly AttachmentFilterEntry[]): (part: SeenPart) => AttachmentFilterEntry | null {
  const names = entries.filter((e) => e.type === 'FileName').map((e) => ({ e, re: wildcard(e.name) }));
  const types = new Map(entries.filter((e) => e.type === 'ContentType').map((e) => [e.name, e] as const));
  return (part) => {
    if (part.contentType) {
      const hit = types.get(part.contentType.toLowerCase());
      if (hit) return hit;
    }
    if (part.filename) {
      const name = effectiveFileName(part.filename);
      for (const { e, re } of names) if (re.test(name)) return e;
    }
    return null;
  };
}

export interface AttachmentVerdict {
  readonly verdict: 'accept' | 'reject' | 'discard';
  /** The reply of a rejection: 550 5.7.1 and the rejectResponse. */
  readonly reply?: Reply | undefined;
  readonly reason: string;
}

function describe(m: AttachmentMatch): string {
  const what = m.part.filename !== null ? `"${m.part.filename}"${m.part.contentType ? ` (${m.part.contentType})` : ''}` : `a ${m.part.contentType ?? 'part'} part`;
  return `${what} matches ${attachmentEntryText(m.entry)}`;
}

/** What the matches mean: nothing (accept), or the configured action for the whole message. */
export function attachmentVerdict(matches: readonly AttachmentMatch[], cfg: Pick<AttachmentFilterConfig, 'action' | 'rejectResponse'>): AttachmentVerdict {
  if (matches.length === 0) return { verdict: 'accept', reason: 'no attachment matches an entry' };
  const shown = matches.slice(0, 3).map(describe).join('; ') + (matches.length > 3 ? `; and ${matches.length - 3} more` : '');
  if (cfg.action === 'SilentDelete') return { verdict: 'discard', reason: `${shown}: deleted (action SilentDelete)` };
  return { verdict: 'reject', reply: localReply(550, '5.7.1', cfg.rejectResponse), reason: `${shown}: rejected (action Reject)` };
}
