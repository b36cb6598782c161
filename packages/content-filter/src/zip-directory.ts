// The file names in a zip archive, as the attachment filter judges them: read from the central
// directory at the archive's end (what Windows Explorer and 7-Zip list), zip64 included, and,
// when the whole archive is at hand, from the archives inside it (stored or deflated, a few
// levels deep, each inflated to a bounded size: a zip bomb costs a refusal to look, not memory).
// No I/O: bytes in, names out, or the reason they could not be read. Only the directory is
// trusted for names; entries' contents are never unpacked but for a nested archive's.
import { inflateRawSync } from 'node:zlib';

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
/** Names read from one archive, at most (more is an archive built to tire the reader). */
const MAX_ENTRIES = 10_000;

/** A file in an archive: its name as the directory has it, and the archives inside this one it is in (outermost first; empty: in this one). */
export interface ZipFile {
  readonly name: string;
  readonly within: readonly string[];
  /** Its contents are encrypted (a password-protected archive; the names never are). */
  readonly encrypted: boolean;
}

export interface ZipNames {
  /** Every entry, those of the archives inside included. */
  readonly files: readonly ZipFile[];
  /** What could not be read (a nested archive encrypted, too large, malformed), in words; empty: everything was. */
  readonly unread: readonly string[];
}

/** `locked`: the names themselves are encrypted (a RAR made with -hp): the archive is password-protected as a whole. */
export type ZipReading = ({ readonly ok: true } & ZipNames) | { readonly ok: false; readonly why: string; readonly locked?: boolean };

export interface ZipOptions {
  /** Levels of archives inside archives opened (1: only this one's names). */
  readonly depth: number;
  /** The largest a nested archive may be inflated to. */
  readonly maxInflated: number;
  /**
   * What is left to read for the whole message, shared by all its archives and decreased here:
   * names listed, bytes inflated. An archive past it is not read (a message of many archives of
   * many files must not cost a listener seconds).
   */
  readonly budget?: ZipBudget;
  /** Which entries are archives to open and how (archive-names.ts: zip, tar, gzip, RAR, 7z, ISO, .uue); without it, zip entries by this reader. */
  readonly inner?: InnerArchives;
  /** The bytes are the archive's first ones only (a gzip then inflates what they hold). */
  readonly partial?: boolean;
}

/** How archives inside an archive are opened: the caller's dispatcher (archive-names.ts), by the inner file's name. */
export interface InnerArchives {
  /** Whether a file of this name is opened as an archive. */
  is(name: string): boolean;
  read(name: string, data: Buffer, o: ZipOptions): ZipReading;
}

/** What a nested archive may still be inflated to: the bound, within what is left of the message's budget. */
export function inflateRoom(o: ZipOptions): number {
  return o.budget ? Math.min(o.maxInflated, o.budget.inflated) : o.maxInflated;
}

/** Why a nested archive was not opened once the message's budget of bytes is spent. */
export const BUDGET_SPENT = "not opened (the message's archives have been unpacked to their budget)";

/**
 * Adds the reading of an archive found inside another (its own entry is files[at]) to the outer
 * one's: its files under the inner archive's name, what it left unread prefixed so; when it
 * cannot be read, why, and when its very names are encrypted, its entry marked encrypted.
 */
export function addInner(files: ZipFile[], unread: string[], at: number, r: ZipReading): void {
  const name = files[at]!.name;
  if (!r.ok) {
    unread.push(`${name}: ${r.why}`);
    if (r.locked) files[at] = { ...files[at]!, encrypted: true };
    return;
  }
  files.push(...r.files.map((f) => ({ ...f, within: [name, ...f.within] })));
  unread.push(...r.unread.map((u) => `${name}/${u}`));
}

export interface ZipBudget {
  files: number;
  inflated: number;
}

interface Entry {
  readonly name: string;
  readonly flags: number;
  readonly method: number;
  readonly compressedSize: number;
  readonly localOffset: number;
}

/**
 * The names in an archive of `totalSize` bytes of which `bytes` are its last ones (all of it
 * when they are equal: then nested archives can be opened).
 */
export function zipNames(bytes: Buffer, totalSize: number, o: ZipOptions): ZipReading {
  try {
    return readNames(bytes, totalSize, o);
  } catch (e) {
    // A field pointing outside the bytes (the checks above each read should catch them all).
    return { ok: false, why: `malformed (${e instanceof Error ? e.message : String(e)})` };
  }
}

function readNames(bytes: Buffer, totalSize: number, o: ZipOptions): ZipReading {
  const dir = readDirectory(bytes, totalSize);
  if (!dir.ok) return dir;
  if (o.budget) {
    if (dir.entries.length > o.budget.files) return { ok: false, why: `${dir.entries.length} files, past what is left of the message's budget of names (${o.budget.files})` };
    o.budget.files -= dir.entries.length;
  }
  const files: ZipFile[] = [];
  const unread: string[] = [];
  for (const e of dir.entries) {
    files.push({ name: e.name, within: [], encrypted: (e.flags & 0x1) !== 0 });
    const isArchive = o.inner ? o.inner.is(e.name) : /\.zip$/i.test(e.name.replace(/[.\s]+$/u, ''));
    if (!isArchive || o.depth <= 1) continue;
    if (bytes.length !== totalSize) {
      unread.push(`${e.name}: not opened (only the end of the archive was kept)`);
      continue;
    }
    const room = inflateRoom(o);
    if (room <= 0) {
      unread.push(`${e.name}: ${BUDGET_SPENT}`);
      continue;
    }
    const inner = entryData(bytes, e, dir.shift, room);
    if (!inner.ok) {
      unread.push(`${e.name}: ${inner.why}`);
      continue;
    }
    if (o.budget) o.budget.inflated -= inner.data.length;
    const nested = { ...o, depth: o.depth - 1 };
    addInner(files, unread, files.length - 1, o.inner ? o.inner.read(e.name, inner.data, nested) : readNames(inner.data, inner.data.length, nested));
  }
  return { ok: true, files, unread };
}

/** The central directory's entries, and how far the archive's own offsets are from where its bytes are (data before it: a self-extractor's stub). */
function readDirectory(b: Buffer, totalSize: number): { ok: true; entries: Entry[]; shift: number } | { ok: false; why: string } {
  const base = totalSize - b.length; // the archive offset of b[0]
  let eocd = -1;
  for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 0xffff); i--) {
    if (b.readUInt32LE(i) === EOCD && i + 22 + b.readUInt16LE(i + 20) <= b.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return { ok: false, why: 'no end of central directory record: not a zip archive, or cut short' };
  let count = b.readUInt16LE(eocd + 10);
  let size = b.readUInt32LE(eocd + 12);
  let offset = b.readUInt32LE(eocd + 16);
  let end = eocd; // where the directory ends
  if ((count === 0xffff || size === 0xffffffff || offset === 0xffffffff) && eocd >= 20 && b.readUInt32LE(eocd - 20) === ZIP64_LOCATOR) {
    const at = Number(b.readBigUInt64LE(eocd - 20 + 8)) - base;
    // The zip64 record sits just before the locator; its stated offset may be shifted as the others are.
    const record = at >= 0 && at + 56 <= b.length && b.readUInt32LE(at) === ZIP64_EOCD ? at : eocd - 20 - 56 >= 0 && b.readUInt32LE(eocd - 20 - 56) === ZIP64_EOCD ? eocd - 20 - 56 : -1;
    if (record < 0) return { ok: false, why: 'a zip64 archive whose zip64 end record cannot be found' };
    count = Number(b.readBigUInt64LE(record + 32));
    size = Number(b.readBigUInt64LE(record + 40));
    offset = Number(b.readBigUInt64LE(record + 48));
    end = record;
  }
  if (count > MAX_ENTRIES) return { ok: false, why: `${count} entries (more than ${MAX_ENTRIES} are not read)` };
  const start = end - size;
  if (start < 0) return { ok: false, why: b.length < totalSize ? 'its directory is larger than the part of the archive kept' : 'its directory would start before the archive' };
  const shift = base + start - offset;
  const entries: Entry[] = [];
  let p = start;
  for (let n = 0; n < count; n++) {
    if (p + 46 > end || b.readUInt32LE(p) !== CENTRAL) return { ok: false, why: `central directory entry ${n + 1} of ${count} is not where the directory says` };
    const flags = b.readUInt16LE(p + 8);
    const nameLength = b.readUInt16LE(p + 28);
    const next = p + 46 + nameLength + b.readUInt16LE(p + 30) + b.readUInt16LE(p + 32);
    if (next > end) return { ok: false, why: `central directory entry ${n + 1} runs past the directory` };
    const raw = b.subarray(p + 46, p + 46 + nameLength);
    // Bit 11: the name is UTF-8; otherwise code page 437, read here as latin1 (the extension, what is matched, is ASCII either way).
    entries.push({ name: raw.toString(flags & 0x800 ? 'utf8' : 'latin1'), flags, method: b.readUInt16LE(p + 10), compressedSize: b.readUInt32LE(p + 20), localOffset: b.readUInt32LE(p + 42) });
    p = next;
  }
  return { ok: true, entries, shift };
}

/** An entry's contents (stored or deflated), for a nested archive. */
function entryData(b: Buffer, e: Entry, shift: number, maxInflated: number): { ok: true; data: Buffer } | { ok: false; why: string } {
  if (e.flags & 0x1) return { ok: false, why: 'encrypted: not opened' };
  if (e.compressedSize === 0xffffffff || e.localOffset === 0xffffffff) return { ok: false, why: 'a zip64 entry: not opened' };
  const at = e.localOffset + shift;
  if (at < 0 || at + 30 > b.length || b.readUInt32LE(at) !== LOCAL) return { ok: false, why: 'its local header is not where the directory says' };
  const from = at + 30 + b.readUInt16LE(at + 26) + b.readUInt16LE(at + 28);
  const to = from + e.compressedSize;
  if (to > b.length) return { ok: false, why: 'its data runs past the archive' };
  const data = b.subarray(from, to);
  if (e.method === 0) return { ok: true, data };
  if (e.method !== 8) return { ok: false, why: `compression method ${e.method}: not opened` };
  return inflateWithin((maxOutputLength) => inflateRawSync(data, { maxOutputLength }), maxInflated);
}

/** What `inflate` gives within `room` bytes, or why not: larger (a bomb is named, not opened) or not compressed data. */
export function inflateWithin(inflate: (maxOutputLength: number) => Buffer, room: number): { ok: true; data: Buffer } | { ok: false; why: string } {
  try {
    return { ok: true, data: inflate(room) };
  } catch (err) {
    const tooBig = err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
    return { ok: false, why: tooBig ? `larger than ${room} bytes unpacked: not opened` : `its data does not inflate (${err instanceof Error ? err.message : String(err)})` };
  }
}
