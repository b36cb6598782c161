// A file handed to the pickup directory by mailgw's own commands (sendmail, sendmail -bs,
// quarantine release): whole, on disk, under a name the pickup takes only once it is complete.
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fchmodSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { rename, unlink, open as openFile } from 'node:fs/promises';
import path from 'node:path';

/** sysexits.h */
export const EX = { OK: 0, USAGE: 64, DATAERR: 65, NOINPUT: 66, NOUSER: 67, UNAVAILABLE: 69, SOFTWARE: 70, CANTCREAT: 73, IOERR: 74, TEMPFAIL: 75, NOPERM: 77, CONFIG: 78 } as const;

/** Why a file could not be written into the pickup directory, and sendmail's exit code for it. */
export function pickupWriteError(e: unknown, dir: string): { exit: number; message: string } {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return { exit: EX.CANTCREAT, message: `cannot write into the pickup directory ${dir}: permission denied (run as root or as the user mailgw runs as; README "The pickup directory and mailgw sendmail")` };
  if (code === 'ENOENT') return { exit: EX.CANTCREAT, message: `the pickup directory ${dir} does not exist yet (mailgw start creates it)` };
  return { exit: code === 'ENOSPC' || code === 'EDQUOT' ? EX.TEMPFAIL : EX.IOERR, message: `cannot write into the pickup directory ${dir}: ${(e as Error).message}` };
}

/**
 * Written under a name the pickup does not take (".<id>.part"), flushed to disk, then renamed to
 * "<id>.eml": the gateway never sees half a file. Mode 0644: the gateway's user reads a file
 * root wrote (the directory itself keeps others out).
 */
export async function writePickupFile(dir: string, bytes: Buffer): Promise<string> {
  const id = `${Date.now().toString(36)}-${process.pid}-${randomBytes(6).toString('hex')}`;
  const part = path.join(dir, `.${id}.part`);
  const fd = openSync(part, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
  try {
    fchmodSync(fd, 0o644); // whatever the umask
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    await unlink(part).catch(() => undefined);
    throw e;
  }
  closeSync(fd);
  await rename(part, path.join(dir, `${id}.eml`));
  // The rename itself on disk too.
  const d = await openFile(dir, 'r');
  await d.sync().catch(() => undefined);
  await d.close();
  return `${id}.eml`;
}

