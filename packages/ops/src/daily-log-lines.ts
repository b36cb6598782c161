// The lines of a log kept as one file per UTC day (the tracking log, the agent log), from the
// day of `since` on, oldest file first. A directory that does not exist yet has no lines.
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** `pattern` matches a file name and captures its day as yyyymmdd. */
export async function* dailyLogLines(dir: string, pattern: RegExp, since: Date | null): AsyncGenerator<string> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  // Whole days before `since` are skipped unread.
  const sinceDay = since ? since.toISOString().slice(0, 10).replace(/-/g, '') : '';
  const files = names.filter((n) => (pattern.exec(n)?.[1] ?? '') >= sinceDay && pattern.test(n)).sort();
  for (const f of files) yield* createInterface({ input: createReadStream(path.join(dir, f), 'utf8'), crlfDelay: Infinity });
}
