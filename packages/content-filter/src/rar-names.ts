// The file names in a RAR archive, as the attachment filter judges them. RAR has no directory:
// each file is a block header followed by its (compressed, proprietary) data, so the archive is
// read from its start (whole, or the files in its first bytes when only those were kept). Both
// formats: RAR 5 (signature "Rar!\x1a\x07\x01\x00", blocks of vint fields) and RAR 1.5 to 4
// ("Rar!\x1a\x07\x00", fixed fields, names in the ANSI code page or in RAR's own compact
// Unicode form). Nothing is unpacked: RAR's compression is not open, and a RAR inside is named,
// not opened. An archive whose headers are encrypted (rar -hp) has no readable names: that is
// said, the archive is judged by its own name and counts as password-protected. No I/O; never a
// throw.
import type { ZipFile, ZipReading } from './zip-directory.js';

const SIGNATURE = Buffer.from('Rar!\x1a\x07', 'latin1');
/** Entries read from one archive, at most (as for a zip's directory). */
const MAX_ENTRIES = 10_000;

/** Whether `b` starts as a RAR archive does (either format). */
export function isRar(b: Buffer): boolean {
  return b.length >= 7 && b.subarray(0, 6).equals(SIGNATURE) && (b[6] === 0 || (b[6] === 1 && b[7] === 0));
}

/** The names in a RAR archive in `b` (whole or its first bytes). `budget`: what is left of the message's budget of names (decreased here). */
export function rarNames(b: Buffer, budget?: { files: number }): ZipReading {
  if (!isRar(b)) return { ok: false, why: 'not a RAR archive (no RAR signature at its start; a self-extracting one is not read)' };
  const r = b[6] === 1 ? rar5(b) : rar4(b);
  if (!r.ok) return r;
  if (budget) {
    if (r.files.length > budget.files) return { ok: false, why: `${r.files.length} files, past what is left of the message's budget of names (${budget.files})` };
    budget.files -= r.files.length;
  }
  return r;
}

/** A little-endian base-128 number (RAR 5's vint) at `p`, and where it ends; null when it runs past `end` or past 2^53. */
function vint(b: Buffer, p: number, end: number): { value: number; next: number } | null {
  let value = 0;
  let scale = 1;
  for (let i = p; i < end && i < p + 8; i++) {
    value += (b[i]! & 0x7f) * scale;
    if ((b[i]! & 0x80) === 0) return Number.isSafeInteger(value) ? { value, next: i + 1 } : null;
    scale *= 128;
  }
  return null;
}

const RAR5 = { FILE: 2, CRYPT: 4, END: 5, HAS_EXTRA: 0x1, HAS_DATA: 0x2, DIRECTORY: 0x1, MTIME: 0x2, CRC: 0x4, EXTRA_CRYPT: 0x1 } as const;

function rar5(b: Buffer): ZipReading {
  const files: ZipFile[] = [];
  const cut = (why: string): ZipReading => ({ ok: true, files, unread: [`${why} after ${files.length} files: the rest not read`] });
  let p = 8;
  while (p < b.length) {
    // CRC32 (4), header size (vint), then the header: type, flags, [extra size], [data size], fields, extra area.
    const size = vint(b, p + 4, b.length);
    if (!size || size.value < 2) return cut('a damaged block header');
    const start = size.next;
    const end = start + size.value;
    if (end > b.length) return cut('cut short');
    const type = vint(b, start, end);
    const flags = type && vint(b, type.next, end);
    if (!type || !flags) return cut('a damaged block header');
    let q = flags.next;
    let extra = 0;
    let data = 0;
    if (flags.value & RAR5.HAS_EXTRA) {
      const x = vint(b, q, end);
      if (!x) return cut('a damaged block header');
      extra = x.value;
      q = x.next;
    }
    if (flags.value & RAR5.HAS_DATA) {
      const x = vint(b, q, end);
      if (!x) return cut('a damaged block header');
      data = x.value;
      q = x.next;
    }
    if (type.value === RAR5.CRYPT) return { ok: false, why: 'its headers are encrypted (a password hides the names)', locked: true };
    if (type.value === RAR5.END) break;
    if (type.value === RAR5.FILE) {
      const f = rar5File(b, q, end, extra);
      if (!f) return cut('a damaged file header');
      if (!f.directory) {
        if (files.length >= MAX_ENTRIES) return { ok: true, files, unread: [`more than ${MAX_ENTRIES} files: the rest not read`] };
        files.push({ name: f.name, within: [], encrypted: f.encrypted });
      }
    }
    p = end + data;
  }
  // The last file's data runs past what there is.
  return p > b.length ? cut('cut short') : { ok: true, files, unread: [] };
}

/** A RAR 5 file header's fields from `q` (after the common ones): its name, whether a directory, whether its data is encrypted (an extra record of type 1). */
function rar5File(b: Buffer, q: number, end: number, extraSize: number): { name: string; directory: boolean; encrypted: boolean } | null {
  const fileFlags = vint(b, q, end);
  if (!fileFlags) return null;
  const unpacked = vint(b, fileFlags.next, end);
  const attributes = unpacked && vint(b, unpacked.next, end);
  if (!attributes) return null;
  let p = attributes.next + (fileFlags.value & RAR5.MTIME ? 4 : 0) + (fileFlags.value & RAR5.CRC ? 4 : 0);
  const compression = vint(b, p, end);
  const os = compression && vint(b, compression.next, end);
  const nameLength = os && vint(b, os.next, end);
  if (!nameLength || nameLength.next + nameLength.value > end) return null;
  p = nameLength.next;
  const name = b.toString('utf8', p, p + nameLength.value);
  let encrypted = false;
  // The extra area: the header's last extraSize octets, records of (size, type, data).
  for (let x = end - extraSize; x >= p + nameLength.value && x < end; ) {
    const size = vint(b, x, end);
    const kind = size && vint(b, size.next, end);
    if (!size || !kind || size.value === 0) break;
    if (kind.value === RAR5.EXTRA_CRYPT) encrypted = true;
    x = size.next + size.value;
  }
  return { name, directory: (fileFlags.value & RAR5.DIRECTORY) !== 0, encrypted };
}

const RAR4 = { MAIN: 0x73, FILE: 0x74, END: 0x7b, ADD_SIZE: 0x8000, HEADERS_ENCRYPTED: 0x0080, ENCRYPTED: 0x0004, LARGE: 0x0100, UNICODE: 0x0200, DIRECTORY_MASK: 0x00e0 } as const;

function rar4(b: Buffer): ZipReading {
  const files: ZipFile[] = [];
  const cut = (why: string): ZipReading => ({ ok: true, files, unread: [`${why} after ${files.length} files: the rest not read`] });
  let p = 7;
  while (p + 7 <= b.length) {
    // HEAD_CRC (2), HEAD_TYPE (1), HEAD_FLAGS (2), HEAD_SIZE (2), [ADD_SIZE (4)].
    const type = b[p + 2]!;
    const flags = b.readUInt16LE(p + 3);
    const size = b.readUInt16LE(p + 5);
    if (size < 7 || p + size > b.length) return cut(p + size > b.length ? 'cut short' : 'a damaged block header');
    let add = flags & RAR4.ADD_SIZE && size >= 11 ? b.readUInt32LE(p + 7) : 0;
    if (type === RAR4.MAIN && flags & RAR4.HEADERS_ENCRYPTED) return { ok: false, why: 'its headers are encrypted (a password hides the names)', locked: true };
    if (type === RAR4.END) break;
    if (type === RAR4.FILE) {
      if (size < 32) return cut('a damaged file header');
      const nameSize = b.readUInt16LE(p + 26);
      const large = (flags & RAR4.LARGE) !== 0;
      const at = p + 32 + (large ? 8 : 0);
      if (large) add += b.readUInt32LE(p + 32) * 2 ** 32;
      if (at + nameSize > p + size) return cut('a damaged file header');
      const raw = b.subarray(at, at + nameSize);
      if ((flags & RAR4.DIRECTORY_MASK) !== RAR4.DIRECTORY_MASK) {
        if (files.length >= MAX_ENTRIES) return { ok: true, files, unread: [`more than ${MAX_ENTRIES} files: the rest not read`] };
        files.push({ name: flags & RAR4.UNICODE ? rar4UnicodeName(raw) : raw.toString('latin1'), within: [], encrypted: (flags & RAR4.ENCRYPTED) !== 0 });
      }
    }
    p += size + add;
  }
  return p > b.length ? cut('cut short') : { ok: true, files, unread: [] };
}

/**
 * A RAR 1.5-4 Unicode name: the ANSI name, a NUL, then the Unicode one in RAR's compact form (a
 * high byte, then two-bit opcodes: a low byte alone, a low byte with the high byte, a whole
 * UTF-16 unit, or a run taken from the ANSI name with a correction). Without the NUL the whole
 * field is UTF-8 (RAR 3.x writes that when every character fits).
 */
export function rar4UnicodeName(raw: Buffer): string {
  const nul = raw.indexOf(0);
  if (nul < 0) return raw.toString('utf8');
  const name = raw.subarray(0, nul);
  const enc = raw.subarray(nul + 1);
  const out: number[] = [];
  let e = 0;
  const high = e < enc.length ? enc[e++]! : 0;
  let flags = 0;
  let bits = 0;
  while (e < enc.length && out.length < 1024) {
    if (bits === 0) {
      flags = enc[e++]!;
      bits = 8;
    }
    const op = flags >> 6;
    if (op === 0) {
      if (e >= enc.length) break;
      out.push(enc[e++]!);
    } else if (op === 1) {
      if (e >= enc.length) break;
      out.push(enc[e++]! + (high << 8));
    } else if (op === 2) {
      if (e + 1 >= enc.length) break;
      out.push(enc[e]! + (enc[e + 1]! << 8));
      e += 2;
    } else {
      if (e >= enc.length) break;
      let length = enc[e++]!;
      if (length & 0x80) {
        if (e >= enc.length) break;
        const correction = enc[e++]!;
        for (length = (length & 0x7f) + 2; length > 0; length--) out.push(((name[out.length] ?? 0) + correction) & 0xff | (high << 8));
      } else for (length += 2; length > 0; length--) out.push(name[out.length] ?? 0);
    }
    flags = (flags << 2) & 0xff;
    bits -= 2;
  }
  return String.fromCharCode(...out.slice(0, out.indexOf(0) < 0 ? out.length : out.indexOf(0)));
}
