// The file names in an ISO 9660 disk image (.iso, and .img files that are one), as the attachment
// filter judges them: Windows mounts one with a double-click and shows what is in it, so an
// image carried the shortcut and the library of many campaigns past filters that judged the
// .iso by its name. Read from the volume descriptors at sector 16: every tree an operating
// system may show, their names judged together: Joliet's (UCS-2, what Windows shows), the
// primary one with its Rock Ridge NM names (what Linux shows) and, without Joliet, its own
// 8.3 names (what Windows then shows: "INVOICE.PDF" can be "invoice.pdf.lnk" to Rock Ridge).
// Files are stored whole at their extents, so archives inside are opened as a zip's are. UDF
// alone (no ISO 9660 tree) is not read. No I/O; never a throw.
import type { InnerArchives, ZipBudget, ZipFile, ZipOptions, ZipReading } from './zip-directory.js';
import { addInner, BUDGET_SPENT } from './zip-directory.js';

const SECTOR = 2048;
const FIRST_DESCRIPTOR = 16 * SECTOR;
const CD001 = Buffer.from('CD001', 'latin1');
/** Entries read from one image, at most (as for a zip's directory), and directory levels followed. */
const MAX_ENTRIES = 10_000;
const MAX_LEVELS = 16;
/** Directory bytes read from one image, all trees together (10,000 files' records take about 1 MB a tree): a crafted image of directories pointing at large extents stops here. */
const MAX_DIRECTORY_BYTES = 4 * 1024 * 1024;
const DIRECTORY_FLAG = 0x02;

interface Tree {
  readonly blockSize: number;
  readonly rootExtent: number;
  readonly rootLength: number;
  /** Joliet: names are UCS-2 big-endian. */
  readonly joliet: boolean;
}

/** Whether `b` holds an ISO 9660 volume descriptor where one must be. */
export function isIso(b: Buffer): boolean {
  return b.length >= FIRST_DESCRIPTOR + 7 && b.subarray(FIRST_DESCRIPTOR + 1, FIRST_DESCRIPTOR + 6).equals(CD001);
}

/** The trees to read: the primary one and each Joliet one (a supplementary descriptor whose escape says UCS-2: %/@, %/C or %/E). */
function findTrees(b: Buffer): Tree[] | string {
  const trees: Tree[] = [];
  for (let at = FIRST_DESCRIPTOR; at + SECTOR <= b.length && at < FIRST_DESCRIPTOR + 64 * SECTOR; at += SECTOR) {
    if (!b.subarray(at + 1, at + 6).equals(CD001)) break;
    const type = b[at]!;
    if (type === 255) break;
    if (type !== 1 && type !== 2) continue;
    const blockSize = b.readUInt16LE(at + 128);
    if (blockSize !== 512 && blockSize !== 1024 && blockSize !== 2048) return `a logical block size of ${blockSize} bytes`;
    const root = at + 156;
    const tree = { blockSize, rootExtent: b.readUInt32LE(root + 2), rootLength: b.readUInt32LE(root + 10) };
    const escape = b.subarray(at + 88, at + 91).toString('latin1');
    if (type === 2 && (escape === '%/@' || escape === '%/C' || escape === '%/E')) trees.push({ ...tree, joliet: true });
    if (type === 1) trees.push({ ...tree, joliet: false });
  }
  return trees.some((t) => !t.joliet) ? trees : 'no primary volume descriptor (a UDF-only image is not read)';
}

/**
 * A directory record's names, preferred first, without the ";1" version: Joliet's UCS-2 name; in
 * the primary tree its Rock Ridge NM name (Linux's) and, when `raw` (no Joliet tree: Windows
 * shows the primary names), its own. With a Joliet tree and no NM, none: nobody shows it.
 */
function recordNames(b: Buffer, r: number, length: number, joliet: boolean, raw: boolean): string[] {
  const n = b[r + 32]!;
  const name = b.subarray(r + 33, r + 33 + n);
  const clean = (s: string) => s.replace(/;\d+$/, '').replace(/\.$/, '');
  if (joliet) return [clean(Buffer.from(name).swap16().toString('utf16le'))];
  // Rock Ridge: System Use entries after the name (padded to even), "NM" holding the real name.
  let p = r + 33 + n + (n % 2 === 0 ? 1 : 0);
  const end = r + length;
  let nm = '';
  while (p + 4 <= end) {
    const size = b[p + 2]!;
    if (size < 4 || p + size > end) break;
    if (b[p] === 0x4e && b[p + 1] === 0x4d) nm += b.subarray(p + 5, p + size).toString('utf8');
    p += size;
  }
  const own = clean(name.toString('latin1'));
  if (nm === '') return raw ? [own] : [];
  return raw && own !== nm ? [nm, own] : [nm];
}

/**
 * The names in an ISO 9660 image: all of it, or (`partial`) its first bytes, whose directories
 * are read as far as they reach (writers put the directories before the files' data).
 */
export function isoNames(b: Buffer, o: ZipOptions & { inner?: InnerArchives }): ZipReading {
  if (!isIso(b)) return { ok: false, why: 'not an ISO 9660 image (no volume descriptor at sector 16)' };
  try {
    return read(b, o);
  } catch (e) {
    return { ok: false, why: `malformed (${e instanceof Error ? e.message : String(e)})` };
  }
}

function read(b: Buffer, o: ZipOptions & { inner?: InnerArchives }): ZipReading {
  const trees = findTrees(b);
  if (typeof trees === 'string') return { ok: false, why: trees };
  const raw = !trees.some((t) => t.joliet);
  const files: ZipFile[] = [];
  const unread: string[] = [];
  /** Each file once by its path, whichever trees name it; its extent, to open an archive once. */
  const byPath = new Map<string, { extent: number; length: number }>();
  let scanned = 0;
  for (const tree of trees) {
    // Each directory extent once per tree (one that appears twice, or loops back, is read once).
    const seen = new Set<number>();
    // Breadth first: each directory's extent, its path, its level.
    const queue: Array<{ extent: number; length: number; path: string; level: number }> = [{ extent: tree.rootExtent, length: tree.rootLength, path: '', level: 0 }];
    while (queue.length > 0) {
      const dir = queue.shift()!;
      if (seen.has(dir.extent)) continue;
      seen.add(dir.extent);
      scanned += dir.length;
      if (scanned > MAX_DIRECTORY_BYTES) {
        unread.push(`${dir.path || 'its root directory'}: not read (its directories exceed ${MAX_DIRECTORY_BYTES} bytes)`);
        break;
      }
      const start = dir.extent * tree.blockSize;
      if (start >= b.length || start + dir.length > b.length) {
        unread.push(`${dir.path || 'its root directory'}: ${o.partial ? 'past the part of the image that was kept' : 'lies past its end'}`);
        continue;
      }
      for (let r = start; r < start + dir.length; ) {
        const length = b[r]!;
        if (length === 0) {
          // Records do not cross sectors: the rest of this one is padding.
          r = (Math.floor((r - start) / SECTOR) + 1) * SECTOR + start;
          continue;
        }
        if (length < 34 || r + length > start + dir.length) throw new Error('a directory record runs past its directory');
        const n = b[r + 32]!;
        const isDot = n === 1 && (b[r + 33] === 0 || b[r + 33] === 1);
        if (!isDot) {
          const extent = b.readUInt32LE(r + 2);
          const size = b.readUInt32LE(r + 10);
          const isDirectory = (b[r + 25]! & DIRECTORY_FLAG) !== 0;
          const names = recordNames(b, r, length, tree.joliet, raw || isDirectory);
          const under = (name: string) => (dir.path ? `${dir.path}/${name}` : name);
          if (isDirectory) {
            // Followed once, under its preferred name (the names judged are the files').
            const path = under(names[0]!);
            if (dir.level + 1 < MAX_LEVELS) queue.push({ extent, length: size, path, level: dir.level + 1 });
            else unread.push(`${path}: more than ${MAX_LEVELS} directory levels deep`);
          } else {
            for (const path of names.map(under)) {
              if (byPath.has(path)) continue;
              if (byPath.size >= MAX_ENTRIES) return { ok: true, files, unread: [...unread, `more than ${MAX_ENTRIES} files: the rest not read`] };
              byPath.set(path, { extent, length: size });
              files.push({ name: path, within: [], encrypted: false });
            }
          }
        }
        r += length;
      }
    }
  }
  if (o.budget) {
    if (files.length > o.budget.files) return { ok: false, why: `${files.length} files, past what is left of the message's budget of names (${o.budget.files})` };
    o.budget.files -= files.length;
  }
  openInner(b, trees[0]!.blockSize, [...byPath].map(([name, e]) => ({ name, ...e })), files, unread, o);
  return { ok: true, files, unread };
}

/** Archives stored in the image: opened from their extents (stored whole: nothing to inflate). */
function openInner(b: Buffer, blockSize: number, entries: ReadonlyArray<{ name: string; extent: number; length: number }>, files: ZipFile[], unread: string[], o: ZipOptions & { inner?: InnerArchives; budget?: ZipBudget }): void {
  if (!o.inner || o.depth <= 1) return;
  const opened = new Set<number>();
  entries.forEach((e, i) => {
    // A file two trees name is one file: opened once.
    if (!o.inner!.is(e.name) || opened.has(e.extent)) return;
    opened.add(e.extent);
    const start = e.extent * blockSize;
    if (start + e.length > b.length) {
      unread.push(`${e.name}: not opened (${o.partial ? 'past the part of the image that was kept' : 'lies past the end of the image'})`);
      return;
    }
    if (o.budget && o.budget.inflated <= 0) {
      unread.push(`${e.name}: ${BUDGET_SPENT}`);
      return;
    }
    addInner(files, unread, i, o.inner!.read(e.name, b.subarray(start, start + e.length), { ...o, depth: o.depth - 1 }));
  });
}
