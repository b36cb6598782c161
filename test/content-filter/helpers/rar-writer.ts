// RAR archives written by hand for the attachment filter's tests, from the format's description
// (RAR 5: rarlab's "RAR 5.0 archive format"; RAR 1.5-4: the block layout of unrar's headers),
// independently of the reader (packages/content-filter/src/rar-names.ts). Stored files, header
// CRCs left zero (the reader does not check them; unrar would refuse these archives).

export interface RarFile {
  name: string;
  data?: Buffer;
  directory?: boolean;
  /** The file's data is encrypted (RAR 5: a file encryption extra record; RAR 4: flag 0x04). */
  encrypted?: boolean;
  /** RAR 4 only: the name field as given (an ANSI name, a NUL and RAR's compact Unicode form). */
  rawName?: Buffer;
}

/** RAR 5's vint: 7 bits a byte, lowest first, the high bit set on all but the last. */
function vint(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** A RAR 5 block: CRC32 (zero), header size, then the header (type, flags, fields) and its data. */
function block5(fields: Buffer[], data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.concat(fields);
  return Buffer.concat([Buffer.alloc(4), vint(header.length), header, data]);
}

export function rar5(files: RarFile[], o: { encryptedHeaders?: boolean } = {}): Buffer {
  const blocks: Buffer[] = [Buffer.from('Rar!\x1a\x07\x01\x00', 'latin1')];
  // Archive encryption header (type 4): everything after it is encrypted.
  if (o.encryptedHeaders) return Buffer.concat([...blocks, block5([vint(4), vint(0), vint(0), vint(0), Buffer.alloc(16 + 16 + 1, 7)]), Buffer.alloc(64, 0x5a)]);
  blocks.push(block5([vint(1), vint(0), vint(0)])); // main archive header, no archive flags
  for (const f of files) {
    const data = f.data ?? Buffer.from(`contents of ${f.name}`);
    const name = Buffer.from(f.name, 'utf8');
    // An extra record: size, type 1 (file encryption), then some of its fields.
    const extra = f.encrypted ? Buffer.concat([vint(1 + 1 + 34), vint(1), vint(0), vint(0), vint(15), Buffer.alloc(16 + 16, 3)]) : Buffer.alloc(0);
    const headerFlags = 0x2 | (f.encrypted ? 0x1 : 0);
    const fields = [vint(2), vint(headerFlags), ...(f.encrypted ? [vint(extra.length)] : []), vint(data.length), vint(f.directory ? 0x1 : 0), vint(data.length), vint(0x20), vint(0), vint(0), vint(name.length), name, extra];
    blocks.push(block5(fields, data));
  }
  blocks.push(block5([vint(5), vint(0), vint(0)])); // end of archive
  return Buffer.concat(blocks);
}

export function rar4(files: RarFile[], o: { encryptedHeaders?: boolean } = {}): Buffer {
  const main = Buffer.alloc(13);
  main.writeUInt8(0x73, 2);
  main.writeUInt16LE(o.encryptedHeaders ? 0x0080 : 0, 3);
  main.writeUInt16LE(13, 5);
  const blocks: Buffer[] = [Buffer.from('Rar!\x1a\x07\x00', 'latin1'), main];
  for (const f of files) {
    const data = f.data ?? Buffer.from(`contents of ${f.name}`);
    const name = f.rawName ?? Buffer.from(f.name, 'latin1');
    const h = Buffer.alloc(32);
    h.writeUInt8(0x74, 2);
    h.writeUInt16LE(0x8000 | (f.encrypted ? 0x0004 : 0) | (f.rawName ? 0x0200 : 0) | (f.directory ? 0x00e0 : 0), 3);
    h.writeUInt16LE(32 + name.length, 5);
    h.writeUInt32LE(data.length, 7); // PACK_SIZE
    h.writeUInt32LE(data.length, 11); // UNP_SIZE
    h.writeUInt8(2, 15); // HOST_OS: Windows
    h.writeUInt8(29, 24); // UNP_VER
    h.writeUInt8(0x30, 25); // METHOD: store
    h.writeUInt16LE(name.length, 26);
    h.writeUInt32LE(0x20, 28); // ATTR
    blocks.push(h, name, data);
  }
  const end = Buffer.alloc(7);
  end.writeUInt8(0x7b, 2);
  end.writeUInt16LE(0x4000, 3);
  end.writeUInt16LE(7, 5);
  return Buffer.concat([...blocks, end]);
}
