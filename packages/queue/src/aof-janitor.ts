// The embedded Redis' old append-only files, freed a slice at a time. After each AOF rewrite,
// Redis 7 unlinks the previous base and incr files at once (the incr file reaches
// auto-aof-rewrite-min-size, 512 MB here) and closes them in a background thread; freeing that
// many blocks in one go is a large journal transaction on ext4, and the next fdatasync of the
// live AOF (every 250 waits for one under appendfsync always) waits for it: 150 to 280 ms on a
// 2-core VM (measured with strace: unlink, then fdatasync 155 and 68 ms; see the README). So the
// embedded Redis runs with aof-disable-auto-gc yes: the old files stay as "history" in the
// manifest, this janitor truncates each by stepBytes with a pause between steps (the same
// blocks, freed in small transactions: the fdatasyncs stay near their usual few ms), then lets
// Redis delete the now empty files and drop them from the manifest (CONFIG SET
// aof-disable-auto-gc no, then yes). History files hold nothing Redis needs: a crash at any
// point leaves them to the next run.
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { call, type RedisCallTarget } from './redis-lock.js';

export interface AofJanitorOptions {
  /** The Redis --dir; the AOF is in its appendonlydir. */
  readonly dir: string;
  /** Where to send CONFIG SET (the server's socket or port). */
  readonly target: () => RedisCallTarget;
  /** Bytes freed per step (default 16 MiB). */
  readonly stepBytes?: number;
  /** Pause between steps (default 50 ms). */
  readonly pauseMs?: number;
  /** How often the manifest is read (default 1 s). */
  readonly intervalMs?: number;
  readonly onEvent?: (e: AofJanitorEvent) => void;
}

export type AofJanitorEvent =
  | { readonly kind: 'truncated'; readonly file: string; readonly bytes: number; readonly steps: number }
  | { readonly kind: 'collected'; readonly files: readonly string[] }
  | { readonly kind: 'error'; readonly error: string };

export const AOF_MANIFEST = path.join('appendonlydir', 'appendonly.aof.manifest');

/** The history files a Redis 7 AOF manifest lists (lines `file <name> seq <n> type h`). */
export function historyFiles(manifest: string): string[] {
  const out: string[] = [];
  for (const line of manifest.split('\n')) {
    const m = /^file (\S+) seq \d+ type h\s*$/.exec(line.trim());
    if (m) out.push(m[1]!);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function startAofJanitor(o: AofJanitorOptions): { stop(): Promise<void> } {
  const step = o.stepBytes ?? 16 * 1024 * 1024;
  const pause = o.pauseMs ?? 50;
  const manifestFile = path.join(o.dir, AOF_MANIFEST);
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  /** Files emptied here, not yet dropped by Redis. */
  const emptied = new Set<string>();

  const readHistory = async (): Promise<string[]> => historyFiles(await readFile(manifestFile, 'utf8').catch(() => ''));

  const truncate = async (file: string): Promise<void> => {
    const f = await open(path.join(o.dir, 'appendonlydir', file), 'r+').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    // Already gone: nothing to free, Redis only has to drop it from the manifest.
    if (!f) {
      emptied.add(file);
      return;
    }
    try {
      let size = (await f.stat()).size;
      const bytes = size;
      let steps = 0;
      while (size > 0 && !stopped) {
        size = Math.max(0, size - step);
        await f.truncate(size);
        steps++;
        if (size > 0) await sleep(pause);
      }
      if (size === 0) {
        emptied.add(file);
        if (bytes > 0) o.onEvent?.({ kind: 'truncated', file, bytes, steps });
      }
    } finally {
      await f.close();
    }
  };

  const sweep = async (): Promise<void> => {
    let history = await readHistory();
    if (history.length === 0) return;
    // A rewrite may end while we work: empty every history file before Redis deletes any.
    while (!stopped && history.some((f) => !emptied.has(f))) {
      for (const f of history) if (!emptied.has(f) && !stopped) await truncate(f);
      history = await readHistory();
    }
    if (stopped) return;
    const on = await call(o.target(), 'CONFIG SET aof-disable-auto-gc no');
    const off = await call(o.target(), 'CONFIG SET aof-disable-auto-gc yes');
    if (on?.reply !== '+OK' || off?.reply !== '+OK') throw new Error(`CONFIG SET aof-disable-auto-gc: ${on?.reply ?? 'no answer'} / ${off?.reply ?? 'no answer'}`);
    const left = new Set(await readHistory());
    const collected = history.filter((f) => !left.has(f));
    for (const f of collected) emptied.delete(f);
    if (collected.length > 0) o.onEvent?.({ kind: 'collected', files: collected });
  };

  const tick = () => {
    timer = null;
    running = sweep()
      .catch((e: unknown) => o.onEvent?.({ kind: 'error', error: (e as Error).message }))
      .finally(() => {
        if (!stopped) {
          timer = setTimeout(tick, o.intervalMs ?? 1000);
          timer.unref();
        }
      });
  };
  tick();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
