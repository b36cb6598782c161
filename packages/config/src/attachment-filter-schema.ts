// gateway.yaml attachmentFilter: Exchange's Edge attachment filtering
// (Set-AttachmentFilterListConfig, Add-AttachmentFilterEntry). Off unless present; present, it
// blocks by file name and content type with a default list of executable and script types,
// which `entries` replaces. Entries are written as Exchange shows them (Get-AttachmentFilterEntry:
// "FileName:*.exe", "ContentType:application/x-msdownload") or as { type, name }.
import { z } from 'zod';
import { ciEnum, listOf } from './zod-helpers.js';

export type AttachmentFilterEntryType = 'FileName' | 'ContentType';

export interface AttachmentFilterEntry {
  readonly type: AttachmentFilterEntryType;
  /** FileName: a name, `*` and `?` as wildcards, compared without regard to case. ContentType: type/subtype, lower case. */
  readonly name: string;
}

/** Exchange's entry identity: "FileName:*.exe". */
export function attachmentEntryText(e: AttachmentFilterEntry): string {
  return `${e.type}:${e.name}`;
}

/**
 * The entries when `entries` is not given: program, script, shortcut and installer types that
 * run when opened on Windows, and the content types that carry them; the kinds Exchange's
 * default attachment filter entries block.
 */
export const DEFAULT_ATTACHMENT_FILTER_ENTRIES: readonly AttachmentFilterEntry[] = [
  ...['application/x-msdownload', 'message/partial', 'text/scriptlet', 'application/prg', 'application/msaccess', 'text/javascript', 'application/x-javascript', 'application/javascript', 'x-internet-signup', 'application/hta'].map(
    (name) => ({ type: 'ContentType' as const, name }),
  ),
  ...['ade', 'adp', 'app', 'asx', 'bas', 'bat', 'chm', 'cmd', 'com', 'cpl', 'crt', 'csh', 'der', 'exe', 'fxp', 'hlp', 'hta', 'htc', 'inf', 'ins', 'isp', 'its', 'js', 'jse', 'ksh', 'lnk', 'mad', 'maf', 'mag', 'mam', 'maq', 'mar', 'mas', 'mat', 'mau', 'mav', 'maw', 'mda', 'mdb', 'mde', 'mdt', 'mdw', 'mdz', 'msc', 'msh', 'msh1', 'msh2', 'mshxml', 'msh1xml', 'msh2xml', 'msi', 'msp', 'mst', 'ops', 'pcd', 'pif', 'prf', 'prg', 'ps1', 'ps1xml', 'ps2', 'ps2xml', 'psc1', 'psc2', 'reg', 'scf', 'scr', 'sct', 'shb', 'shs', 'tmp', 'url', 'vb', 'vbe', 'vbs', 'vsmacros', 'vss', 'vst', 'vsw', 'ws', 'wsc', 'wsf', 'wsh', 'xnk'].map(
    (ext) => ({ type: 'FileName' as const, name: `*.${ext}` }),
  ),
];

/**
 * The file types of Exchange Online's common attachments filter (its anti-malware policy's
 * default -FileTypes, as Microsoft lists them): today's delivery vehicles beside programs (disk
 * images, Excel add-ins, Java and app packages, macro documents, old archive formats).
 */
export const COMMON_ATTACHMENT_TYPES: readonly string[] = ['ace', 'ani', 'apk', 'app', 'appx', 'arj', 'bat', 'cab', 'cmd', 'com', 'deb', 'dex', 'dll', 'docm', 'elf', 'exe', 'hta', 'img', 'iso', 'jar', 'jnlp', 'kext', 'lha', 'lib', 'library', 'lnk', 'lzh', 'macho', 'msc', 'msi', 'msix', 'msp', 'mst', 'pif', 'ppa', 'ppam', 'reg', 'rev', 'scf', 'scr', 'sct', 'sys', 'uif', 'vb', 'vbe', 'vbs', 'vxd', 'wsc', 'wsf', 'wsh', 'xll', 'xz', 'z'];

/** Lists an entry of the form "Preset:<name>" stands for. */
export const ATTACHMENT_FILTER_PRESETS: ReadonlyMap<string, readonly AttachmentFilterEntry[]> = new Map([
  ['EdgeDefault', DEFAULT_ATTACHMENT_FILTER_ENTRIES],
  ['CommonAttachments', COMMON_ATTACHMENT_TYPES.map((ext) => ({ type: 'FileName' as const, name: `*.${ext}` }))],
]);

const ENTRY_USAGE = `write "FileName:*.exe" or "ContentType:application/x-msdownload" (as Get-AttachmentFilterEntry shows them), { type: FileName, name: "*.exe" }, or a list by name: ${[...ATTACHMENT_FILTER_PRESETS.keys()].map((k) => `"Preset:${k}"`).join(', ')}`;

function entry(type: string, name: string, ctx: z.RefinementCtx): AttachmentFilterEntry | null {
  const t = type.trim().toLowerCase() === 'filename' ? 'FileName' : type.trim().toLowerCase() === 'contenttype' ? 'ContentType' : null;
  const n = name.trim();
  if (!t) {
    ctx.addIssue({ code: 'custom', message: `type "${type}" is not FileName or ContentType; ${ENTRY_USAGE}` });
    return null;
  }
  if (n === '' || n.length > 255) {
    ctx.addIssue({ code: 'custom', message: `the ${t} entry needs a name of 1 to 255 characters; ${ENTRY_USAGE}` });
    return null;
  }
  if (t === 'FileName' && /[/\\\x00-\x1f]/.test(n)) {
    ctx.addIssue({ code: 'custom', message: `"${n}" is not a file name (no path, no control characters); * and ? are wildcards, e.g. *.exe` });
    return null;
  }
  if (t === 'ContentType' && !/^[a-z0-9!#$&^_.+-]+(\/[a-z0-9!#$&^_.+-]+)?$/i.test(n)) {
    ctx.addIssue({ code: 'custom', message: `"${n}" is not a content type (type/subtype, e.g. application/x-msdownload)` });
    return null;
  }
  return { type: t, name: t === 'ContentType' ? n.toLowerCase() : n };
}

/** One entry, or the entries of a preset ("Preset:CommonAttachments"). */
const entrySchema = z.union([z.string(), z.strictObject({ type: z.string(), name: z.string() })]).transform((v, ctx): readonly AttachmentFilterEntry[] => {
  if (typeof v !== 'string') {
    const e = entry(v.type, v.name, ctx);
    return e ? [e] : z.NEVER;
  }
  const colon = v.indexOf(':');
  if (colon < 0) {
    ctx.addIssue({ code: 'custom', message: `"${v}" names no type; ${ENTRY_USAGE}` });
    return z.NEVER;
  }
  if (v.slice(0, colon).trim().toLowerCase() === 'preset') {
    const name = v.slice(colon + 1).trim().toLowerCase();
    const preset = [...ATTACHMENT_FILTER_PRESETS].find(([k]) => k.toLowerCase() === name);
    if (!preset) {
      ctx.addIssue({ code: 'custom', message: `"${v}": there is no such list; the lists are ${[...ATTACHMENT_FILTER_PRESETS.keys()].map((k) => `Preset:${k}`).join(' and ')}` });
      return z.NEVER;
    }
    return preset[1];
  }
  const e = entry(v.slice(0, colon), v.slice(colon + 1), ctx);
  return e ? [e] : z.NEVER;
});

/** The entries once, in the order first given (a preset and an entry of it may both be listed). */
function flatEntries(lists: ReadonlyArray<readonly AttachmentFilterEntry[]>): AttachmentFilterEntry[] {
  const seen = new Set<string>();
  const out: AttachmentFilterEntry[] = [];
  for (const e of lists.flat()) {
    const key = `${e.type}:${e.name.toLowerCase()}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(e);
    }
  }
  return out;
}

const ATTACHMENT_FILTER_ACTIONS = ['Reject', 'Strip', 'SilentDelete'] as const;

const attachmentFilterObject = z.strictObject({
  action: ciEnum(ATTACHMENT_FILTER_ACTIONS)
    .default('Reject')
    .describe('Set-AttachmentFilterListConfig -Action: Reject (default: the message is refused with 550 5.7.1 and the rejectResponse), Strip (delivered with each matching attachment replaced by a text file holding the adminMessage; Exchange\'s default) or SilentDelete (answered 250, delivered to nobody).'),
  adminMessage: z
    .string()
    .min(1)
    .max(1000)
    .regex(/^[^\x00-\x08\x0b-\x1f\x7f]+$/u, 'no control characters')
    .default('This attachment was removed.')
    .describe('Set-AttachmentFilterListConfig -AdminMessage: the text of the file that replaces a stripped attachment (action Strip).'),
  rejectResponse: z
    .string()
    .min(1)
    .max(240)
    .regex(/^[\x20-\x7e]+$/, 'printable ASCII only')
    .default('Message rejected due to unacceptable attachments')
    .describe('Set-AttachmentFilterListConfig -RejectResponse: the text after 550 5.7.1.'),
  exceptionConnectors: listOf(z.string().trim().min(1)).default([]).describe('Set-AttachmentFilterListConfig -ExceptionConnectors: connectors (by name) whose mail is not filtered, e.g. the Client connector of your own users.'),
  openArchives: z
    .boolean()
    .default(true)
    .describe(
      "Zip, tar, gzip, RAR and 7z archives, ISO 9660 disk images and uuencoded files (by name *.zip, *.tar, *.gz, *.tgz, *.rar, *.7z, *.iso, *.img, *.uue or content type application/zip, application/x-zip-compressed, application/x-tar, application/gzip, application/vnd.rar, application/x-7z-compressed, application/x-iso9660-image, text/x-uuencode, …) are opened and the names of the files in them judged by the FileName entries, as attachments' are, archives inside archives three levels deep (mailgw; Exchange's Edge does not look inside archives). The archive is what Reject refuses and Strip removes. An archive that cannot be read is judged by its own name only, and the filter's reason says so. false: archives are judged by their own name and type only.",
    ),
  entries: listOf(entrySchema)
    .optional()
    .describe('Add-AttachmentFilterEntry: what is blocked, as "FileName:*.exe" (a name; * and ? wildcards; case ignored) or "ContentType:application/x-msdownload", or a whole list: "Preset:EdgeDefault" (Exchange Edge\'s default entries: program, script, shortcut and installer types, the default) or "Preset:CommonAttachments" (the file types of Exchange Online\'s common attachments filter: also disk images (iso, img), Excel add-ins (xll), Java and app packages, macro documents (docm), old archive formats). Replaces the default list.'),
});
type AttachmentFilterFileConfig = z.output<typeof attachmentFilterObject>;

/** The attachment filter as the gateway uses it: the entries resolved to the default list when not given. */
export interface AttachmentFilterConfig {
  readonly action: 'Reject' | 'Strip' | 'SilentDelete';
  readonly rejectResponse: string;
  readonly adminMessage: string;
  readonly exceptionConnectors: readonly string[];
  readonly entries: readonly AttachmentFilterEntry[];
  /** Zip archives are opened and the names in them judged. */
  readonly openArchives: boolean;
}

function resolve(f: AttachmentFilterFileConfig): AttachmentFilterConfig {
  return { action: f.action, rejectResponse: f.rejectResponse, adminMessage: f.adminMessage, exceptionConnectors: f.exceptionConnectors, entries: f.entries ? flatEntries(f.entries) : DEFAULT_ATTACHMENT_FILTER_ENTRIES, openArchives: f.openArchives };
}

export const attachmentFilterSchema = attachmentFilterObject.transform(resolve);

export const ATTACHMENT_FILTER_KEYS = Object.keys(attachmentFilterObject.shape);
