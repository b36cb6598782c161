// An ISO 9660 image written by hand for the attachment filter's tests, independently of the
// reader (packages/content-filter/src/iso-names.ts), after ECMA-119: the primary volume
// descriptor at sector 16, optionally a Joliet supplementary one (UCS-2 names), the terminator,
// then one sector per directory of each tree and the files' data. The primary tree's names are
// upper-cased 8.3 unless Rock Ridge NM entries carry the real ones. 7-Zip lists these images.

const SECTOR = 2048;

export interface IsoFile {
  /** A path with "/" between directories. */
  path: string;
  data?: Buffer;
}

export interface IsoOptions {
  /** A Joliet tree (what Windows shows); default true. */
  joliet?: boolean;
  /** Rock Ridge NM entries in the primary tree (what Linux shows). */
  rockRidge?: boolean;
}

const both16 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(v, 0);
  b.writeUInt16BE(v, 2);
  return b;
};
const both32 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v, 0);
  b.writeUInt32BE(v, 4);
  return b;
};

function record(name: Buffer, extent: number, size: number, directory: boolean, systemUse = Buffer.alloc(0)): Buffer {
  const pad = name.length % 2 === 0 ? 1 : 0;
  const r = Buffer.alloc(33 + name.length + pad + systemUse.length);
  r[0] = r.length;
  both32(extent).copy(r, 2);
  both32(size).copy(r, 10);
  r[25] = directory ? 0x02 : 0;
  both16(1).copy(r, 28);
  r[32] = name.length;
  name.copy(r, 33);
  systemUse.copy(r, 33 + name.length + pad);
  return r;
}

interface Dir {
  name: string;
  dirs: Map<string, Dir>;
  files: Array<{ name: string; data: Buffer }>;
  extent?: number;
  jolietExtent?: number;
}

export function iso(files: IsoFile[], o: IsoOptions = {}): Buffer {
  const joliet = o.joliet ?? true;
  const root: Dir = { name: '', dirs: new Map(), files: [] };
  for (const f of files) {
    const parts = f.path.split('/');
    let d = root;
    for (const p of parts.slice(0, -1)) {
      if (!d.dirs.has(p)) d.dirs.set(p, { name: p, dirs: new Map(), files: [] });
      d = d.dirs.get(p)!;
    }
    d.files.push({ name: parts.at(-1)!, data: f.data ?? Buffer.from(`contents of ${f.path}`) });
  }
  const all: Dir[] = [];
  const walk = (d: Dir) => {
    all.push(d);
    for (const c of d.dirs.values()) walk(c);
  };
  walk(root);
  // Sectors: 16 PVD, 17 SVD (Joliet), then the terminator, the directories, the data.
  let next = joliet ? 19 : 18;
  for (const d of all) d.extent = next++;
  if (joliet) for (const d of all) d.jolietExtent = next++;
  const data: Array<{ at: number; bytes: Buffer }> = [];
  const fileExtent = new Map<Buffer, number>();
  for (const d of all) {
    for (const f of d.files) {
      fileExtent.set(f.data, next);
      data.push({ at: next, bytes: f.data });
      next += Math.max(1, Math.ceil(f.data.length / SECTOR));
    }
  }
  const image = Buffer.alloc(next * SECTOR);
  const primaryName = (n: string) => Buffer.from(o.rockRidge ? `${n.toUpperCase().replace(/[^A-Z0-9_.]/g, '_').slice(0, 12)};1` : `${n};1`, 'latin1');
  const jolietName = (n: string) => Buffer.from(n, 'utf16le').swap16();
  const nm = (n: string) => {
    const name = Buffer.from(n, 'utf8');
    return Buffer.concat([Buffer.from([0x4e, 0x4d, 5 + name.length, 1, 0]), name]);
  };
  const writeDir = (d: Dir, parent: Dir, jol: boolean) => {
    const self = jol ? d.jolietExtent! : d.extent!;
    const up = jol ? parent.jolietExtent! : parent.extent!;
    const recs = [record(Buffer.from([0]), self, SECTOR, true), record(Buffer.from([1]), up, SECTOR, true)];
    for (const c of d.dirs.values()) recs.push(record(jol ? jolietName(c.name) : primaryName(c.name).subarray(0, -2), jol ? c.jolietExtent! : c.extent!, SECTOR, true, !jol && o.rockRidge ? nm(c.name) : undefined));
    for (const f of d.files) recs.push(record(jol ? jolietName(f.name) : primaryName(f.name), fileExtent.get(f.data)!, f.data.length, false, !jol && o.rockRidge ? nm(f.name) : undefined));
    Buffer.concat(recs).copy(image, self * SECTOR);
  };
  const parents = new Map<Dir, Dir>([[root, root]]);
  for (const d of all) for (const c of d.dirs.values()) parents.set(c, d);
  for (const d of all) {
    writeDir(d, parents.get(d)!, false);
    if (joliet) writeDir(d, parents.get(d)!, true);
  }
  for (const { at, bytes } of data) bytes.copy(image, at * SECTOR);
  const descriptor = (sector: number, type: number, rootExtent: number, escape?: string) => {
    const at = sector * SECTOR;
    image[at] = type;
    image.write('CD001', at + 1, 'latin1');
    image[at + 6] = 1;
    if (type === 255) return;
    image.write('MAILGW TEST'.padEnd(32), at + 40, 'latin1');
    both32(next).copy(image, at + 80);
    if (escape) image.write(escape, at + 88, 'latin1');
    both16(1).copy(image, at + 120);
    both16(1).copy(image, at + 124);
    both16(SECTOR).copy(image, at + 128);
    record(Buffer.from([0]), rootExtent, SECTOR, true).copy(image, at + 156);
    image[at + 881] = 1;
  };
  descriptor(16, 1, root.extent!);
  if (joliet) descriptor(17, 2, root.jolietExtent!, '%/E');
  descriptor(joliet ? 18 : 17, 255, 0);
  return image;
}
