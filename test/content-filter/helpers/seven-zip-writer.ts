// A 7z archive written by hand for the attachment filter's tests, independently of the reader
// (packages/content-filter/src/seven-zip-names.ts), after 7-Zip's 7zFormat.txt: each file with
// data in a folder of its own (Copy, or AES behind Copy when encrypted), the header plain or
// "encoded" (packed as a stream of its own, as 7-Zip does; here with Copy, AES or a method the
// reader does not decode). The CRCs are real, so 7-Zip itself lists these archives.

export interface SevenZipFile {
  name: string;
  data?: Buffer;
  directory?: boolean;
  encrypted?: boolean;
}

export interface SevenZipOptions {
  /** plain: kHeader as is; copy: an encoded header stored; aes: encrypted (7z -mhe); bzip2: packed with a method the reader does not decode. */
  header?: 'plain' | 'copy' | 'aes' | 'bzip2';
  /** Write directories' attribute (FILE_ATTRIBUTE_DIRECTORY) as a kAttributes property. */
  attributes?: boolean;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** 7z's variable-length number: as many leading ones in the first byte as little-endian bytes follow. */
export function sevenZipNumber(v: number): Buffer {
  for (let extra = 0; extra <= 8; extra++) {
    if (extra === 8 || v < 2 ** (8 * extra + (7 - extra))) {
      const out = Buffer.alloc(1 + extra);
      const high = extra === 8 ? 0 : Math.floor(v / 2 ** (8 * extra));
      out[0] = ((0xff00 >>> extra) & 0xff) | high;
      let low = v;
      for (let i = 0; i < extra; i++) {
        out[1 + i] = low % 256;
        low = Math.floor(low / 256);
      }
      return out;
    }
  }
  throw new Error('unreachable');
}

const num = sevenZipNumber;
const bytes = (...parts: (number | Buffer)[]) => Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : p)));
const bits = (flags: boolean[]) => {
  const out = Buffer.alloc(Math.ceil(flags.length / 8));
  flags.forEach((f, i) => f && (out[i >> 3]! |= 0x80 >> (i & 7)));
  return out;
};

const COPY = bytes(0x01, 0x00);
const AES = bytes(0x24, Buffer.from('06f10701', 'hex'), 0x02, 0x01, 0x00); // id, 2 bytes of properties
const BZIP2 = bytes(0x03, Buffer.from('040202', 'hex'));

/** A folder: Copy alone, or Copy fed by AES (bind pair: Copy's input from AES's output), or one other coder. */
function folder(kind: 'copy' | 'aes' | 'bzip2'): Buffer {
  if (kind === 'copy') return bytes(0x01, COPY);
  if (kind === 'bzip2') return bytes(0x01, BZIP2);
  return bytes(0x02, COPY, AES, num(0), num(1));
}
const outputs = (kind: 'copy' | 'aes' | 'bzip2') => (kind === 'aes' ? 2 : 1);

/** StreamsInfo for streams packed one after another from packPos, one folder each. */
function streamsInfo(packPos: number, streams: { size: number; kind: 'copy' | 'aes' | 'bzip2' }[]): Buffer {
  if (streams.length === 0) return bytes(0x00);
  return bytes(
    0x06, num(packPos), num(streams.length), 0x09, ...streams.map((s) => num(s.size)), 0x00,
    0x07, 0x0b, num(streams.length), 0x00, ...streams.map((s) => folder(s.kind)),
    0x0c, ...streams.flatMap((s) => Array<Buffer>(outputs(s.kind)).fill(num(s.size))), 0x00,
    0x00,
  );
}

export function sevenZip(files: SevenZipFile[], o: SevenZipOptions = {}): Buffer {
  const packed: Buffer[] = [];
  const streams: { size: number; kind: 'copy' | 'aes' }[] = [];
  for (const f of files) {
    if (f.directory) continue;
    const data = f.data ?? Buffer.from(`contents of ${f.name}`);
    if (data.length === 0) continue;
    packed.push(data);
    streams.push({ size: data.length, kind: f.encrypted ? 'aes' : 'copy' });
  }
  const empty = files.map((f) => !!f.directory || (f.data?.length ?? 1) === 0);
  const emptyFiles = files.filter((_, i) => empty[i]).map((f) => !f.directory);
  const names = bytes(0x00, ...files.map((f) => Buffer.from(`${f.name}\0`, 'utf16le')));
  const fileProps: Buffer[] = [];
  if (empty.some(Boolean)) {
    fileProps.push(bytes(0x0e, num(bits(empty).length), bits(empty)));
    fileProps.push(bytes(0x0f, num(bits(emptyFiles).length), bits(emptyFiles)));
  }
  fileProps.push(bytes(0x11, num(names.length), names));
  if (o.attributes) {
    const attrs = bytes(0x01, 0x00, ...files.map((f) => {
      const a = Buffer.alloc(4);
      a.writeUInt32LE(f.directory ? 0x10 : 0x20);
      return a;
    }));
    fileProps.push(bytes(0x15, num(attrs.length), attrs));
  }
  const header = bytes(0x01, 0x04, streamsInfo(0, streams), 0x05, num(files.length), ...fileProps, 0x00, 0x00);
  const dataSize = packed.reduce((s, b) => s + b.length, 0);
  let next = header;
  if (o.header && o.header !== 'plain') {
    // The header itself becomes a packed stream after the files' data; the encoded header points at it.
    const stored = o.header === 'aes' ? Buffer.from(header.map((x) => x ^ 0x5a)) : header;
    packed.push(stored);
    next = bytes(0x17, streamsInfo(dataSize, [{ size: stored.length, kind: o.header }]));
  }
  return sevenZipAround(Buffer.concat(packed), next);
}

/** An archive of the packed streams `body` and the header `next` (plain or encoded) as given: for crafted headers. */
export function sevenZipAround(body: Buffer, next: Buffer): Buffer {
  const start = Buffer.alloc(32);
  Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0x00, 0x04]).copy(start);
  start.writeBigUInt64LE(BigInt(body.length), 12);
  start.writeBigUInt64LE(BigInt(next.length), 20);
  start.writeUInt32LE(crc32(next), 28);
  start.writeUInt32LE(crc32(start.subarray(12, 32)), 8);
  return Buffer.concat([start, body, next]);
}
