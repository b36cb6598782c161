// The I/O around the policy's disclaimer tokens: for each sender whose disclaimer has
// %%tokens%%, ask the directory for the attributes they read (one lookup per sender, cached by
// the directory service) and fill them in. Without a directory, a sender the directory does not
// hold, or a directory that does not answer, the tokens become empty, as Exchange leaves them:
// the text around them still goes out, and a token is never shown to a recipient as written.
import type { DirectoryPreset } from '@mailgw/config';
import type { BodyDisclaimer } from '@mailgw/mail';
import { disclaimerTokens, fillDisclaimerTokens, tokenAttributes, tokenValues, type DirectoryLookup } from '@mailgw/policy';

export interface FilledDisclaimers {
  readonly disclaimers: readonly BodyDisclaimer[];
  /** Per sender asked: where the values came from, in words (the log). */
  readonly notes: ReadonlyArray<{ readonly sender: string; readonly source: 'directory' | 'not-found' | 'unavailable' | 'no-directory'; readonly why: string }>;
}

export async function fillDisclaimers(list: readonly BodyDisclaimer[], directory: DirectoryLookup | undefined, preset: DirectoryPreset | null): Promise<FilledDisclaimers> {
  const bySender = new Map<string, Set<string>>();
  let withTokens = false;
  for (const d of list) {
    const known = disclaimerTokens(d.html).known;
    if (known.length === 0) continue;
    withTokens = true;
    // No sender (a bounce without From:): nobody's object; the tokens are filled empty below.
    if (d.sender === undefined) continue;
    const set = bySender.get(d.sender) ?? new Set<string>();
    known.forEach((t) => set.add(t));
    bySender.set(d.sender, set);
  }
  if (!withTokens) return { disclaimers: list, notes: [] };
  const values = new Map<string, Record<string, string>>();
  const notes: Array<FilledDisclaimers['notes'][number]> = [];
  for (const [sender, set] of bySender) {
    const tokens = [...set];
    if (!directory?.entryAttributes || preset === null) {
      notes.push({ sender, source: 'no-directory', why: 'no directory configured: tokens left empty' });
      continue;
    }
    const found = await directory.entryAttributes(sender, tokenAttributes(preset, tokens));
    if (found.kind === 'found') {
      values.set(sender, tokenValues(preset, tokens, found.attributes));
      notes.push({ sender, source: 'directory', why: `filled from ${found.dn}` });
    } else notes.push({ sender, source: found.kind, why: found.kind === 'not-found' ? 'no directory object holds the sender: tokens left empty' : `the directory did not answer (${found.why}): tokens left empty` });
  }
  return {
    disclaimers: list.map((d) => ({ ...d, html: fillDisclaimerTokens(d.html, (d.sender !== undefined && values.get(d.sender)) || {}) })),
    notes,
  };
}
