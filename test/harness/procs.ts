// Processes as the kernel sees them (Linux /proc), to assert what runs, not what we were told.
import { readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';

/** Live (not zombie) redis-server processes whose working directory is `dir`, by pid. */
export function redisServersIn(dir: string): number[] {
  const want = realpathSync(dir);
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/comm`, 'utf8').startsWith('redis-server')) continue;
      if (readlinkSync(`/proc/${name}/cwd`) !== want) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      pids.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to look at
    }
  }
  return pids.sort((a, b) => a - b);
}

/** The process exists and is not a zombie. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

export async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<number> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}
