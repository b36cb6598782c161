// A zip archive written by hand for the attachment filter's tests, independently of the reader
// (packages/content-filter/src/zip-directory.ts).
import { deflateRawSync } from 'node:zlib';

export interface FileSpec {
  name: string;
  data?: Buffer;
  deflate?: boolean;
  encrypted?: boolean;
  utf8?: boolean;
}

/** A zip archive (PKWARE APPNOTE 4.3) written by hand: local headers and data, the central directory, the end record; optionally zip64 end records and a stub before it all. */
export function zip(files: FileSpec[], o: { zip64?: boolean; stub?: Buffer } = {}): Buffer {
  const stub = o.stub ?? Buffer.alloc(0);
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0; // offsets as the archive states them: from its own start, the stub not counted
  for (const f of files) {
    const raw = f.data ?? Buffer.from(`contents of ${f.name}`);
    const data = f.deflate ? deflateRawSync(raw) : raw;
    const name = Buffer.from(f.name, f.utf8 ? 'utf8' : 'latin1');
    const flags = (f.encrypted ? 0x1 : 0) | (f.utf8 ? 0x800 : 0);
    const method = f.deflate ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += 30 + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(o.zip64 ? 0xffff : files.length, 8);
  end.writeUInt16LE(o.zip64 ? 0xffff : files.length, 10);
  end.writeUInt32LE(o.zip64 ? 0xffffffff : directory.length, 12);
  end.writeUInt32LE(o.zip64 ? 0xffffffff : offset, 16);
  const tail: Buffer[] = [];
  if (o.zip64) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeBigUInt64LE(BigInt(files.length), 24);
    record.writeBigUInt64LE(BigInt(files.length), 32);
    record.writeBigUInt64LE(BigInt(directory.length), 40);
    record.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(offset + directory.length), 8);
    locator.writeUInt32LE(1, 16);
    tail.push(record, locator);
  }
  return Buffer.concat([stub, ...locals, directory, ...tail, end]);
}
