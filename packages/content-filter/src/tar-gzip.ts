// The file names in tar archives and gzip files, as the attachment filter judges them, beside
// zip-directory.ts's zip reader. A tar archive has no directory: each file is a 512-octet header
// (POSIX ustar, its name split in prefix and name; GNU's long names in an 'L' entry before the
// file; pax extended headers with path=) followed by its data, so it is read from its start
// (whole, or the files in its first bytes when only those were kept). A gzip file holds one compressed file, whose original name
// its header may carry (FNAME, RFC 1952) and otherwise is the gzip's own name without .gz; it
// is inflated (to a bounded size) only when that file is itself an archive (a .tar.gz, a .tgz).
// No I/O: bytes in, names out, or the reason they could not be read; never a throw.
import { constants, gunzipSync } from 'node:zlib';
import { addInner, BUDGET_SPENT, inflateRoom, inflateWithin, type InnerArchives, type ZipFile, type ZipOptions, type ZipReading } from './zip-directory.js';

/** Entries read from one tar archive, at most (as for a zip's directory). */
const MAX_ENTRIES = 10_000;
const BLOCK = 512;

/** A NUL-terminated field, as text (names: UTF-8, as GNU tar writes them in a UTF-8 locale; the extension is ASCII either way). */
function field(h: Buffer, at: number, length: number): string {
  const end = h.indexOf(0, at);
  return h.toString('utf8', at, end < 0 || end > at + length ? at + length : end);
}

/** An octal number field (spaces and NULs around it), or GNU's base-256 form (first octet's high bit set); NaN when it is neither. */
function number(h: Buffer, at: number, length: number): number {
  if (h[at]! & 0x80) {
    let n = h[at]! & 0x7f;
    for (let i = at + 1; i < at + length; i++) n = n * 256 + h[i]!;
    return n;
  }
  let i = at;
  const end = at + length;
  while (i < end && h[i] === 0x20) i++;
  let n = 0;
  for (; i < end; i++) {
    const c = h[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) return NaN;
    n = n * 8 + (c - 0x30);
  }
  // Only spaces and NULs may follow.
  for (; i < end; i++) if (h[i] !== 0 && h[i] !== 0x20) return NaN;
  return n;
}

/** The sum of a header's octets (0: an end-of-archive block) and whether its checksum is right (the sum with the checksum field read as spaces). */
function headerSum(h: Buffer): { zero: boolean; ok: boolean } {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  if (sum === 0) return { zero: true, ok: true };
  let field = 0;
  for (let i = 148; i < 156; i++) field += h[i]!;
  return { zero: false, ok: number(h, 148, 8) === sum - field + 8 * 0x20 };
}

/** A pax extended header's records (`<length> <key>=<value>\n`), the path if one is set. */
function paxPath(data: Buffer): string | null {
  let path: string | null = null;
  let p = 0;
  while (p < data.length) {
    const space = data.indexOf(0x20, p);
    if (space < 0) break;
    const length = Number(data.toString('latin1', p, space));
    if (!Number.isSafeInteger(length) || length <= 0 || p + length > data.length) break;
    const record = data.toString('utf8', space + 1, p + length - 1);
    const eq = record.indexOf('=');
    if (eq > 0 && record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    p += length;
  }
  return path;
}

/** The name in a header: POSIX ustar's prefix and name, or the name alone. */
function entryName(h: Buffer): string {
  const prefix = h.toString('latin1', 257, 262) === 'ustar' ? field(h, 345, 155) : '';
  return prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
}

/** The names in a tar archive in `b` (whole, or its first bytes: then the files in them); archives inside it opened through `inner` while o.depth allows. */
export function tarNames(b: Buffer, o: ZipOptions, inner: InnerArchives): ZipReading {
  const files: ZipFile[] = [];
  const unread: string[] = [];
  let longName: string | null = null;
  let pax: string | null = null;
  let entries = 0;
  let p = 0;
  for (; p + BLOCK <= b.length; ) {
    const h = b.subarray(p, p + BLOCK);
    const sum = headerSum(h);
    if (sum.zero) return { ok: true, files, unread }; // the end-of-archive blocks
    if (!sum.ok) {
      return p === 0 ? { ok: false, why: 'not a tar archive (its first header has no valid checksum)' } : { ok: true, files, unread: [...unread, `damaged after ${files.length} files (a header at octet ${p} has no valid checksum): the rest not read`] };
    }
    const size = number(h, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) return { ok: true, files, unread: [...unread, `damaged after ${files.length} files (a size that is not a number): the rest not read`] };
    const from = p + BLOCK;
    const to = from + size;
    const type = String.fromCharCode(h[156]!);
    if (to > b.length) {
      // Cut in this entry's data: a file's name is in its header all the same.
      if (!'LxgKVM5'.includes(type) && entries < MAX_ENTRIES && (!o.budget || o.budget.files > 0)) {
        if (o.budget) o.budget.files--;
        files.push({ name: pax ?? longName ?? entryName(h), within: [], encrypted: false });
      }
      return { ok: true, files, unread: [...unread, `cut short after ${files.length} files: the rest not read`] };
    }
    const data = b.subarray(from, to);
    p = from + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = field(data, 0, data.length);
      continue;
    }
    if (type === 'x') {
      pax = paxPath(data);
      continue;
    }
    if (type === 'g' || type === 'K' || type === 'V' || type === 'M') continue; // global headers, long link names, volume labels, continuations: not files
    const name = pax ?? longName ?? entryName(h);
    pax = null;
    longName = null;
    if (type === '5') continue; // a directory
    if (++entries > MAX_ENTRIES) return { ok: true, files, unread: [...unread, `more than ${MAX_ENTRIES} files: the rest not read`] };
    if (o.budget) {
      if (o.budget.files <= 0) return { ok: true, files, unread: [...unread, `past the message's budget of names after ${files.length} files: the rest not read`] };
      o.budget.files--;
    }
    files.push({ name, within: [], encrypted: false });
    // Regular files only: a link's data is not the file's.
    if ((type === '0' || type === '\0' || type === '7') && o.depth > 1 && inner.is(name)) addInner(files, unread, files.length - 1, inner.read(name, data, { ...o, depth: o.depth - 1 }));
  }
  // No end blocks: GNU tar always writes them, a hand-made or cut archive may not.
  return p === 0 && b.length < BLOCK ? { ok: false, why: 'not a tar archive (shorter than one header)' } : { ok: true, files, unread };
}

const GZIP_FLAGS = { FHCRC: 0x02, FEXTRA: 0x04, FNAME: 0x08, FCOMMENT: 0x10 } as const;

/** The name of the file a gzip file holds, by its own name: `a.tar.gz` and `a.tgz` hold `a.tar`, `a.txt.gz` holds `a.txt`. */
export function gunzippedName(name: string): string {
  const bare = name.replace(/[.\s]+$/u, '');
  if (/\.tgz$/i.test(bare)) return `${bare.slice(0, -4)}.tar`;
  if (/\.gz$/i.test(bare)) return bare.slice(0, -3);
  return `${bare}.unzipped`;
}

/**
 * The file in a gzip file held whole in `b` (named `name`): its original name from the header,
 * else gunzippedName; opened (inflated within o.maxInflated and the message's budget) when it is
 * an archive itself and o.depth allows.
 */
export function gzipNames(b: Buffer, name: string, o: ZipOptions, inner: InnerArchives): ZipReading {
  if (b.length < 18 || b[0] !== 0x1f || b[1] !== 0x8b) return { ok: false, why: 'not gzip data' };
  if (b[2] !== 8) return { ok: false, why: `gzip compression method ${b[2]}: not read` };
  const flags = b[3]!;
  let p = 10;
  if (flags & GZIP_FLAGS.FEXTRA) p += 2 + b.readUInt16LE(p);
  let original: string | null = null;
  if (flags & GZIP_FLAGS.FNAME) {
    const end = b.indexOf(0, p);
    if (end < 0) return { ok: false, why: 'its header is cut short' };
    // ISO 8859-1 (RFC 1952), the name without its directory.
    original = b.toString('latin1', p, end).replace(/^.*[/\\]/, '') || null;
  }
  const file = original ?? gunzippedName(name);
  if (o.budget) {
    if (o.budget.files <= 0) return { ok: false, why: `past what is left of the message's budget of names (0)` };
    o.budget.files--;
  }
  const files: ZipFile[] = [{ name: file, within: [], encrypted: false }];
  const unread: string[] = [];
  if (o.depth <= 1 || !inner.is(file)) return { ok: true, files, unread };
  const room = inflateRoom(o);
  if (room <= 0) return { ok: true, files, unread: [`${file}: ${BUDGET_SPENT}`] };
  // Of a gzip cut short (its first bytes kept), what they inflate to.
  const data = inflateWithin((maxOutputLength) => gunzipSync(b, { maxOutputLength, ...(o.partial ? { finishFlush: constants.Z_SYNC_FLUSH } : {}) }), room);
  if (!data.ok) return { ok: true, files, unread: [`${file}: ${data.why}`] };
  if (o.budget) o.budget.inflated -= data.data.length;
  addInner(files, unread, 0, inner.read(file, data.data, { ...o, depth: o.depth - 1, partial: false }));
  return { ok: true, files, unread };
}
