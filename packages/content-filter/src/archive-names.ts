// Which parts and files the attachment filter opens as archives, and the reader for each kind:
// zip (zip-directory.ts), tar and gzip (tar-gzip.ts), RAR and 7z (rar-names.ts,
// seven-zip-names.ts: names only), .uue files (uuencoded-files.ts: the files encoded in
// them, as WinRAR and 7-Zip list them) and ISO 9660 disk images (iso-names.ts). Archives
// inside archives are opened by the same rules, whatever the kinds (a zip in a .tar.gz, a .tgz
// in a zip, the names of a RAR in a zip).
import { isoNames } from './iso-names.js';
import { rarNames } from './rar-names.js';
import { sevenZipNames } from './seven-zip-names.js';
import { uuencodedNames } from './uuencoded-files.js';
import { gzipNames, tarNames } from './tar-gzip.js';
import { zipNames, type InnerArchives, type ZipOptions, type ZipReading } from './zip-directory.js';

export type ArchiveKind = 'zip' | 'tar' | 'gzip' | 'rar' | '7z' | 'uue' | 'iso';

const TYPES: ReadonlyMap<string, ArchiveKind> = new Map([
  ['application/zip', 'zip'],
  ['application/x-zip-compressed', 'zip'],
  ['application/x-zip', 'zip'],
  ['application/x-tar', 'tar'],
  ['application/x-gtar', 'tar'],
  ['application/gzip', 'gzip'],
  ['application/x-gzip', 'gzip'],
  ['application/x-compressed-tar', 'gzip'],
  ['application/x-gtar-compressed', 'gzip'],
  ['application/vnd.rar', 'rar'],
  ['application/x-rar-compressed', 'rar'],
  ['application/x-rar', 'rar'],
  ['application/x-7z-compressed', '7z'],
  ['text/x-uuencode', 'uue'],
  ['application/x-uuencode', 'uue'],
  ['application/x-iso9660-image', 'iso'],
  ['application/x-cd-image', 'iso'],
]);

/** The kind of archive a file name says (trailing dots and spaces ignored, as Windows does), or null. */
export function archiveKindByName(name: string | false | null | undefined): ArchiveKind | null {
  if (typeof name !== 'string') return null;
  const bare = name.replace(/[.\s]+$/u, '');
  if (/\.zip$/i.test(bare)) return 'zip';
  if (/\.tar$/i.test(bare)) return 'tar';
  if (/\.(gz|tgz)$/i.test(bare)) return 'gzip';
  if (/\.rar$/i.test(bare)) return 'rar';
  if (/\.7z$/i.test(bare)) return '7z';
  if (/\.(uue|uu|xxe)$/i.test(bare)) return 'uue';
  if (/\.(iso|img)$/i.test(bare)) return 'iso';
  return null;
}

/** The kind of archive a MIME part is, by its content type or else its file name; null: not one the filter opens. */
export function archivePartKind(contentType: string | false | null | undefined, filename: string | false | null | undefined): ArchiveKind | null {
  const byType = typeof contentType === 'string' ? TYPES.get(contentType.toLowerCase()) : undefined;
  return byType ?? archiveKindByName(filename);
}

const inner: InnerArchives = {
  is: (name) => archiveKindByName(name) !== null,
  read: (name, data, o) => archiveNames(archiveKindByName(name)!, data, data.length, name, o),
};

/**
 * The names in an archive of `totalSize` bytes of which `bytes` are a part (all of it when they
 * are equal): of a zip its last bytes (its directory is at its end), of a 7z its first 32 bytes
 * and its last (they point at its header, at its end), of tar, gzip, RAR, .uue and ISO their first
 * (they are read from their start: the files in that part are listed, the rest is said not read).
 */
export function archiveNames(kind: ArchiveKind, bytes: Buffer, totalSize: number, name: string, o: ZipOptions): ZipReading {
  if (kind === 'zip') return zipNames(bytes, totalSize, { ...o, inner });
  if (kind === '7z') return sevenZipNames(bytes, totalSize, o.budget);
  const partial = bytes.length < totalSize;
  let r: ZipReading;
  try {
    if (kind === 'iso') r = isoNames(bytes, { ...o, partial, inner });
    else if (kind === 'rar') r = rarNames(bytes, o.budget);
    else if (kind === 'uue') r = uuencodedNames(bytes, o.budget);
    else r = kind === 'tar' ? tarNames(bytes, o, inner) : gzipNames(bytes, name, { ...o, partial }, inner);
  } catch (e) {
    r = { ok: false, why: `malformed (${e instanceof Error ? e.message : String(e)})` };
  }
  if (!partial) return r;
  const kept = `only its first ${bytes.length} of ${totalSize} bytes were kept (larger than a whole archive is kept)`;
  return r.ok ? { ok: true, files: r.files, unread: [...r.unread, `${kept}: the files after them not read`] } : { ...r, why: `${r.why}; ${kept}` };
}
