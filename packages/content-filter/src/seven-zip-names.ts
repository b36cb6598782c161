// The file names in a 7z archive, as the attachment filter judges them. A 7z archive starts with
// a 32-byte signature header pointing at its header, at the archive's end: the list of files
// (UTF-16 names, which are directories, which are empty) and the "folders" their data is packed
// in, with each folder's chain of coders. 7-Zip compresses that header with LZMA (an "encoded
// header"; LZMA2 by some other writers), so it is decoded here (lzma.ts), bounded; nothing else
// is unpacked, so archives inside a 7z are named, not opened. A header encrypted with a
// password (7z -mhe) has no readable names: that is said, and the archive counts as
// password-protected; a file packed in a folder with the AES coder is marked encrypted. The
// layout follows 7-Zip's 7zFormat.txt and its reader (7zIn.cpp). No I/O; never a throw.
import { lzma2Decode, lzmaDecode } from './lzma.js';
import type { ZipBudget, ZipFile, ZipReading } from './zip-directory.js';

const SIGNATURE = Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]);
/** What the signature header takes: the signature, the version, a CRC and the next header's place. */
export const SEVEN_ZIP_START_BYTES = 32;
/** Entries read from one archive, at most (as for a zip's directory). */
const MAX_ENTRIES = 10_000;
/**
 * The largest decoded header read (names, times, attributes: some thousands of files; a 948 KB
 * header of 6,000 names decodes in about 8 ms). LZMA decodes several times slower than inflate
 * (30 to 120 MB/s here against about 300), so a header is charged LZMA_COST times its size
 * against the message's budget of inflated bytes: at most 4 MB of headers a message.
 */
const MAX_HEADER_BYTES = 1024 * 1024;
const LZMA_COST = 8;

const ID = {
  END: 0x00,
  HEADER: 0x01,
  ARCHIVE_PROPERTIES: 0x02,
  ADDITIONAL_STREAMS: 0x03,
  MAIN_STREAMS: 0x04,
  FILES: 0x05,
  PACK_INFO: 0x06,
  UNPACK_INFO: 0x07,
  SUBSTREAMS: 0x08,
  SIZE: 0x09,
  CRC: 0x0a,
  FOLDER: 0x0b,
  CODERS_UNPACK_SIZE: 0x0c,
  NUM_UNPACK_STREAM: 0x0d,
  EMPTY_STREAM: 0x0e,
  EMPTY_FILE: 0x0f,
  NAME: 0x11,
  ATTRIBUTES: 0x15,
  ENCODED_HEADER: 0x17,
} as const;

const METHOD = { COPY: '00', LZMA: '030101', LZMA2: '21', AES: '06f10701' } as const;
const METHOD_NAMES: Readonly<Record<string, string>> = {
  '030103': 'BCJ',
  '0303011b': 'BCJ2',
  '030401': 'PPMd',
  '040108': 'Deflate',
  '040109': 'Deflate64',
  '040202': 'BZip2',
  '04f71101': 'Zstandard',
};

/** Whether `b` starts as a 7z archive does. */
export function isSevenZip(b: Buffer): boolean {
  return b.length >= 8 && b.subarray(0, 6).equals(SIGNATURE);
}

class Malformed extends Error {}

/** A bounds-checked reader of 7z's header fields. */
class Fields {
  constructor(
    private readonly b: Buffer,
    public p: number,
    private readonly end: number,
  ) {}
  get left(): number {
    return this.end - this.p;
  }
  byte(): number {
    if (this.p >= this.end) throw new Malformed('its header is cut short');
    return this.b[this.p++]!;
  }
  /** 7z's variable-length number: the first byte's leading ones say how many little-endian bytes follow. */
  number(): number {
    const first = this.byte();
    let mask = 0x80;
    let value = 0;
    for (let i = 0; i < 8; i++) {
      if ((first & mask) === 0) {
        value += (first & (mask - 1)) * 2 ** (8 * i);
        if (!Number.isSafeInteger(value)) throw new Malformed('a number in its header is too large');
        return value;
      }
      value += this.byte() * 2 ** (8 * i);
      mask >>>= 1;
    }
    if (!Number.isSafeInteger(value)) throw new Malformed('a number in its header is too large');
    return value;
  }
  bytes(n: number): Buffer {
    if (n > this.left) throw new Malformed('its header is cut short');
    const r = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return r;
  }
  /** A property's data (its size first) skipped. */
  skipData(): void {
    this.bytes(this.number());
  }
  bits(n: number): boolean[] {
    if (Math.ceil(n / 8) > this.left) throw new Malformed('its header is cut short');
    const r: boolean[] = new Array<boolean>(n);
    let byte = 0;
    for (let i = 0; i < n; i++) {
      if (i % 8 === 0) byte = this.byte();
      r[i] = (byte & (0x80 >>> i % 8)) !== 0;
    }
    return r;
  }
  /** An "all defined" byte, else a bit vector. */
  defined(n: number): boolean[] {
    return this.byte() !== 0 ? new Array<boolean>(n).fill(true) : this.bits(n);
  }
  /** CRCs of `n` streams (which are defined, then 4 bytes each); n is checked against what is left before anything is built. */
  digests(n: number): boolean[] {
    const all = this.byte() !== 0;
    if (all && n > this.left / 4) throw new Malformed('its header is cut short');
    const defined = all ? new Array<boolean>(n).fill(true) : this.bits(n);
    this.bytes(4 * defined.filter(Boolean).length);
    return defined;
  }
  /** Skips properties until `id` (7-Zip's WaitId: what it does not know it passes over). */
  waitFor(id: number): void {
    for (;;) {
      const t = this.number();
      if (t === id) return;
      if (t === ID.END) throw new Malformed(`its header lacks a required part (property ${id})`);
      this.skipData();
    }
  }
}

interface Coder {
  readonly method: string;
  readonly properties: Buffer;
}

interface Folder {
  readonly coders: readonly Coder[];
  /** The size of each of its coders' outputs, in order; the folder's result is the one no bind pair takes. */
  readonly unpackSizes: number[];
  readonly boundOutputs: ReadonlySet<number>;
  crcDefined: boolean;
}

interface StreamsInfo {
  packPos: number;
  packSizes: number[];
  folders: Folder[];
  /** Files (streams) per folder. */
  unpackStreams: number[];
}

/** A folder as its description reads, before its sizes (which come after all the folders). */
interface FolderLayout {
  readonly coders: readonly Coder[];
  readonly boundOutputs: ReadonlySet<number>;
  readonly outputs: number;
}

function readFolder(f: Fields): FolderLayout {
  const count = f.number();
  if (count < 1 || count > 64) throw new Malformed(`a folder with ${count} coders`);
  const coders: Coder[] = [];
  let inputs = 0;
  let outputs = 0;
  for (let i = 0; i < count; i++) {
    const flags = f.byte();
    if (flags & 0x80) throw new Malformed('alternative coder methods (not used by any 7z writer)');
    const method = f.bytes(flags & 0x0f).toString('hex');
    let nIn = 1;
    let nOut = 1;
    if (flags & 0x10) {
      nIn = f.number();
      nOut = f.number();
    }
    const properties = flags & 0x20 ? f.bytes(f.number()) : Buffer.alloc(0);
    inputs += nIn;
    outputs += nOut;
    if (inputs > 64 || outputs > 64) throw new Malformed('a folder with too many streams');
    coders.push({ method, properties });
  }
  const boundOutputs = new Set<number>();
  for (let i = 0; i < outputs - 1; i++) {
    f.number();
    boundOutputs.add(f.number());
  }
  const packed = inputs - (outputs - 1);
  if (packed < 1) throw new Malformed('a folder with no packed stream');
  if (packed > 1) for (let i = 0; i < packed; i++) f.number();
  return { coders, boundOutputs, outputs };
}

function readStreamsInfo(f: Fields): StreamsInfo {
  const s: StreamsInfo = { packPos: 0, packSizes: [], folders: [], unpackStreams: [] };
  for (;;) {
    const id = f.number();
    if (id === ID.END) return s;
    if (id === ID.PACK_INFO) {
      s.packPos = f.number();
      const n = f.number();
      if (n > f.left) throw new Malformed('its header is cut short');
      f.waitFor(ID.SIZE);
      for (let i = 0; i < n; i++) s.packSizes.push(f.number());
      for (let t = f.number(); t !== ID.END; t = f.number()) {
        if (t === ID.CRC) f.digests(n);
        else f.skipData();
      }
    } else if (id === ID.UNPACK_INFO) {
      f.waitFor(ID.FOLDER);
      const n = f.number();
      if (n > f.left) throw new Malformed('its header is cut short');
      if (f.byte() !== 0) throw new Malformed('its folders are stored elsewhere (an external stream)');
      const layouts: FolderLayout[] = [];
      for (let i = 0; i < n; i++) layouts.push(readFolder(f));
      f.waitFor(ID.CODERS_UNPACK_SIZE);
      s.folders = layouts.map((r) => {
        const unpackSizes: number[] = [];
        for (let i = 0; i < r.outputs; i++) unpackSizes.push(f.number());
        return { coders: r.coders, boundOutputs: r.boundOutputs, crcDefined: false, unpackSizes };
      });
      s.unpackStreams = s.folders.map(() => 1);
      for (let t = f.number(); t !== ID.END; t = f.number()) {
        if (t === ID.CRC) f.digests(n).forEach((d, i) => (s.folders[i]!.crcDefined = d));
        else f.skipData();
      }
    } else if (id === ID.SUBSTREAMS) {
      let t = f.number();
      for (; t !== ID.CRC && t !== ID.SIZE && t !== ID.END; t = f.number()) {
        if (t === ID.NUM_UNPACK_STREAM) s.unpackStreams = s.folders.map(() => f.number());
        else f.skipData();
      }
      if (t === ID.SIZE) {
        for (const n of s.unpackStreams) for (let j = 1; j < n; j++) f.number();
        t = f.number();
      }
      let digests = 0;
      s.unpackStreams.forEach((n, i) => (digests += n === 1 && s.folders[i]!.crcDefined ? 0 : n));
      for (; t !== ID.END; t = f.number()) {
        if (t === ID.CRC) f.digests(digests);
        else f.skipData();
      }
    } else throw new Malformed(`an unknown part in its header (property ${id})`);
  }
}

const isEncrypted = (folder: Folder) => folder.coders.some((c) => c.method === METHOD.AES);

/** What a folder decodes to: the output no bind pair takes. */
function folderSize(folder: Folder): number {
  for (let i = folder.unpackSizes.length - 1; i >= 0; i--) if (!folder.boundOutputs.has(i)) return folder.unpackSizes[i]!;
  throw new Malformed('a folder without a result');
}

const describe = (method: string) => METHOD_NAMES[method] ?? `method ${method}`;

/** Where the archive's bytes at `offset` are in what was kept, or -1 when not there. */
type Locate = (offset: number, length: number) => number;

/** The decoded header an encoded header points at, or why it cannot be had. */
function decodeHeader(b: Buffer, locate: Locate, s: StreamsInfo, budget: ZipBudget | undefined): Buffer | { why: string; locked?: true } {
  const folder = s.folders[0];
  if (!folder || s.folders.length !== 1 || s.packSizes.length < 1) throw new Malformed('an encoded header without its folder');
  if (isEncrypted(folder)) return { why: 'its list of files is encrypted (7z -mhe: a password hides even the names)', locked: true };
  if (folder.coders.length !== 1) return { why: `its list of files is packed with ${folder.coders.map((c) => describe(c.method)).join(' + ')}, which is not read` };
  const coder = folder.coders[0]!;
  const size = folderSize(folder);
  if (size > MAX_HEADER_BYTES) return { why: `its list of files is ${size} bytes, more than the ${MAX_HEADER_BYTES} read` };
  const cost = coder.method === METHOD.COPY ? 0 : size * LZMA_COST;
  if (budget && cost > budget.inflated) return { why: "not read (the message's archives have been unpacked to their budget)" };
  const packSize = s.packSizes[0]!;
  const at = locate(SEVEN_ZIP_START_BYTES + s.packPos, packSize);
  if (at < 0) return { why: 'its list of files is not in the part of it that was kept' };
  const packed = b.subarray(at, at + packSize);
  let decoded: Buffer;
  try {
    if (coder.method === METHOD.COPY) decoded = packed.subarray(0, size);
    else if (coder.method === METHOD.LZMA) decoded = lzmaDecode(packed, coder.properties, size);
    else if (coder.method === METHOD.LZMA2) decoded = lzma2Decode(packed, size);
    else return { why: `its list of files is packed with ${describe(coder.method)}, which is not read` };
  } catch (e) {
    return { why: `its list of files does not decode (${e instanceof Error ? e.message : String(e)})` };
  }
  if (decoded.length !== size) throw new Malformed('its header is cut short');
  if (budget) budget.inflated -= cost;
  return decoded;
}

/** The files of a decoded header (kHeader), with which folder's stream each non-empty one is. */
function readHeader(f: Fields): ZipReading {
  let main: StreamsInfo | null = null;
  let t = f.number();
  if (t === ID.ARCHIVE_PROPERTIES) {
    while (f.number() !== ID.END) f.skipData();
    t = f.number();
  }
  if (t === ID.ADDITIONAL_STREAMS) {
    readStreamsInfo(f);
    t = f.number();
  }
  if (t === ID.MAIN_STREAMS) {
    main = readStreamsInfo(f);
    t = f.number();
  }
  if (t === ID.END) return { ok: true, files: [], unread: [] };
  if (t !== ID.FILES) throw new Malformed(`an unknown part in its header (property ${t})`);
  const count = f.number();
  if (count > MAX_ENTRIES) return { ok: false, why: `${count} files (more than ${MAX_ENTRIES} are not read)` };
  let emptyStream: boolean[] = new Array<boolean>(count).fill(false);
  let emptyFile: boolean[] = [];
  let names: string[] | null = null;
  let attributes: (number | null)[] = [];
  for (let id = f.number(); id !== ID.END; id = f.number()) {
    const raw = f.bytes(f.number());
    const d = new Fields(raw, 0, raw.length);
    if (id === ID.EMPTY_STREAM) emptyStream = d.bits(count);
    else if (id === ID.EMPTY_FILE) emptyFile = d.bits(emptyStream.filter(Boolean).length);
    else if (id === ID.NAME) names = readNames(d, count);
    else if (id === ID.ATTRIBUTES) {
      const defined = d.defined(count);
      if (d.byte() !== 0) continue; // stored elsewhere: directories are told by their empty streams
      attributes = defined.map((isSet) => (isSet ? d.bytes(4).readUInt32LE(0) : null));
    }
  }
  if (count > 0 && !names) return { ok: false, why: 'its header names no files' };
  const files: ZipFile[] = [];
  // Files with data take the folders' streams in order: unpackStreams[i] of them folder i's.
  let folder = 0;
  let inFolder = 0;
  let empty = 0;
  for (let i = 0; i < count; i++) {
    if (emptyStream[i]) {
      const isFile = emptyFile[empty++] === true;
      const attr = attributes[i];
      const isDirectory = attr != null ? (attr & 0x10) !== 0 : !isFile;
      if (!isDirectory) files.push({ name: names![i]!, within: [], encrypted: false });
      continue;
    }
    while (main && folder < main.unpackStreams.length && inFolder >= main.unpackStreams[folder]!) {
      folder++;
      inFolder = 0;
    }
    const f7 = main?.folders[folder];
    inFolder++;
    files.push({ name: names![i]!, within: [], encrypted: f7 ? isEncrypted(f7) : false });
  }
  return { ok: true, files, unread: [] };
}

/** `count` UTF-16LE names, each ended by a 0 (after a byte saying they are here, not elsewhere). */
function readNames(d: Fields, count: number): string[] {
  if (d.byte() !== 0) throw new Malformed('its names are stored elsewhere (an external stream)');
  const raw = d.bytes(d.left - (d.left % 2));
  const names: string[] = [];
  let start = 0;
  for (let p = 0; p + 1 < raw.length && names.length < count; p += 2) {
    if (raw[p] === 0 && raw[p + 1] === 0) {
      names.push(raw.toString('utf16le', start, p));
      start = p + 2;
    }
  }
  if (names.length !== count) throw new Malformed(`its header has ${names.length} names for ${count} files`);
  return names;
}

/**
 * The names in a 7z archive of `totalSize` bytes. `b` is all of it, or (when shorter) its
 * SEVEN_ZIP_START_BYTES first bytes followed by its last ones: its header is at its end.
 * `budget`: what is left of the message's budget of names and inflated bytes (decreased here).
 */
export function sevenZipNames(b: Buffer, totalSize: number, budget?: ZipBudget): ZipReading {
  if (!isSevenZip(b)) return { ok: false, why: 'not a 7z archive (no 7z signature at its start; a self-extracting one is not read)' };
  try {
    return read(b, totalSize, budget);
  } catch (e) {
    return { ok: false, why: e instanceof Malformed ? `malformed (${e.message})` : `malformed (${e instanceof Error ? e.message : String(e)})` };
  }
}

function read(b: Buffer, totalSize: number, budget: ZipBudget | undefined): ZipReading {
  if (b.length < SEVEN_ZIP_START_BYTES) throw new Malformed('cut short');
  if (b[6] !== 0) return { ok: false, why: `7z format version ${b[6]}.${b[7]}, which is not read` };
  const offset = Number(b.readBigUInt64LE(12));
  const size = Number(b.readBigUInt64LE(20));
  const tailStart = totalSize - (b.length - SEVEN_ZIP_START_BYTES);
  const locate: Locate = (at, length) => {
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(length) || at + length > totalSize) throw new Malformed('a part of it lies past its end');
    if (b.length === totalSize) return at;
    return at >= tailStart ? at - tailStart + SEVEN_ZIP_START_BYTES : -1;
  };
  if (size === 0) return { ok: true, files: [], unread: [] }; // an empty archive
  const at = locate(SEVEN_ZIP_START_BYTES + offset, size);
  if (at < 0) return { ok: false, why: 'its list of files is not in the part of it that was kept' };
  let header = b.subarray(at, at + size);
  // 7-Zip encodes the header once; other writers could nest it, a few times at most.
  for (let round = 0; round < 4; round++) {
    const f = new Fields(header, 0, header.length);
    const id = f.number();
    if (id === ID.HEADER) {
      const r = readHeader(f);
      if (r.ok && budget) {
        if (r.files.length > budget.files) return { ok: false, why: `${r.files.length} files, past what is left of the message's budget of names (${budget.files})` };
        budget.files -= r.files.length;
      }
      return r;
    }
    if (id !== ID.ENCODED_HEADER) throw new Malformed(`its header starts with an unknown part (property ${id})`);
    const decoded = decodeHeader(b, locate, readStreamsInfo(f), budget);
    if (!Buffer.isBuffer(decoded)) return { ok: false, ...decoded };
    header = decoded;
  }
  throw new Malformed('its header is encoded too many times');
}
