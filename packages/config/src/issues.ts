// Config problems as an admin should read them: file, key path, what is wrong.
import type { z } from 'zod';

export interface ConfigIssue {
  readonly file: string;
  /** Key path inside the file, e.g. "permissions[0].extendedRights[1]"; '' for the whole file. */
  readonly path: string;
  readonly message: string;
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}

export function formatIssue(i: ConfigIssue): string {
  return i.path ? `${i.file}: ${i.path}: ${i.message}` : `${i.file}: ${i.message}`;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** "did you mean …?" for a misspelt key. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 4)) ? best : undefined;
}

type Issue = z.ZodError['issues'][number];

/**
 * A union none of whose options took the value ("users: a list, or { file }") says only "Invalid
 * input". When every option but one failed on the value's very type, that one is what the admin
 * meant: its own issues, at their full paths, say what is wrong.
 */
function unwrapUnions(issues: readonly Issue[]): Issue[] {
  const out: Issue[] = [];
  for (const issue of issues) {
    const branches = issue.code === 'invalid_union' ? (issue as { errors?: Issue[][] }).errors : undefined;
    const meant = branches?.filter((b) => !b.every((i) => i.code === 'invalid_type' && i.path.length === 0));
    if (meant && meant.length === 1) out.push(...unwrapUnions(meant[0]!.map((i) => ({ ...i, path: [...issue.path, ...i.path] }) as Issue)));
    else out.push(issue);
  }
  return out;
}

/** Turns zod issues into ConfigIssues, with key suggestions for typos. */
export function fromZod(file: string, error: z.ZodError, knownKeysAt: (path: string) => readonly string[] | undefined): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of unwrapUnions(error.issues)) {
    const path = formatPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const known = knownKeysAt(path);
        const hint = known ? suggest(key, known) : undefined;
        out.push({ file, path: path ? `${path}.${key}` : key, message: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}` });
      }
      continue;
    }
    let message = issue.message;
    if (issue.code === 'invalid_type' && /received undefined/.test(message)) message = 'is required';
    else if (issue.code === 'invalid_type') message = message.replace(/^Invalid input: /, '');
    out.push({ file, path, message });
  }
  return out;
}
