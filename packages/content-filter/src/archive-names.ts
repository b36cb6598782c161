// Which parts and files the attachment filter opens as archives, and the reader for each kind:
// zip (zip-directory.ts), tar and gzip (tar-gzip.ts), RAR (rar-names.ts: names only). Archives
// inside archives are opened by the same rules, whatever the kinds (a zip in a .tar.gz, a .tgz
// in a zip, the names of a RAR in a zip).
import { rarNames } from './rar-names.js';
import { gzipNames, tarNames, type InnerArchives } from './tar-gzip.js';
import { zipNames, type ZipOptions, type ZipReading } from './zip-directory.js';

export type ArchiveKind = 'zip' | 'tar' | 'gzip' | 'rar';

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
]);

/** The kind of archive a file name says (trailing dots and spaces ignored, as Windows does), or null. */
export function archiveKindByName(name: string | false | null | undefined): ArchiveKind | null {
  if (typeof name !== 'string') return null;
  const bare = name.replace(/[.\s]+$/u, '');
  if (/\.zip$/i.test(bare)) return 'zip';
  if (/\.tar$/i.test(bare)) return 'tar';
  if (/\.(gz|tgz)$/i.test(bare)) return 'gzip';
  if (/\.rar$/i.test(bare)) return 'rar';
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
 * The names in an archive of `totalSize` bytes of which `bytes` are its last ones (all of it when
 * they are equal). A zip's directory is at its end; tar, gzip and RAR are read from their
 * start, so of those only one held whole is read.
 */
export function archiveNames(kind: ArchiveKind, bytes: Buffer, totalSize: number, name: string, o: ZipOptions): ZipReading {
  if (kind === 'zip') return zipNames(bytes, totalSize, { ...o, inner });
  if (bytes.length !== totalSize) return { ok: false, why: `a ${kind} archive of ${totalSize} bytes: read from its start, and only its end was kept (larger than a whole archive is kept)` };
  try {
    if (kind === 'rar') return rarNames(bytes, o.budget);
    return kind === 'tar' ? tarNames(bytes, o, inner) : gzipNames(bytes, name, o, inner);
  } catch (e) {
    return { ok: false, why: `malformed (${e instanceof Error ? e.message : String(e)})` };
  }
}
