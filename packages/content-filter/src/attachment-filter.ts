// Exchange's Edge attachment filtering as a message filter: the MIME structure is read as DATA
// streams in (mailsplit's Splitter: part headers only, bodies are not decoded, and the leaf
// parts' bodies are not even handed to it: leaf-body-skipper.ts), each part's file
// name and content type go to the policy's matcher, and at the end the policy's verdict for the
// configured action. Messages inside messages are read too: inline ones by the splitter itself,
// attached ones (message/rfc822 with Content-Disposition: attachment) by a splitter of their
// own, to a depth of MAX_DEPTH. A structure that cannot be read (over mailsplit's limits) is the
// filter's failure: tempfail, the message is not let through unread. Action Strip keeps the
// message's bytes while it streams in and, when a part matched, writes it again (mailsplit's
// Rewriter and Joiner) with each matching part, or the attached message holding one, replaced
// by a text part carrying the adminMessage.
import type { AttachmentFilterConfig } from '@mailgw/config';
import type { FilterOutcome, HeaderField, MessageOnlyFilter, MessageFilterSession } from '@mailgw/mail';
import { ATTACHMENT_FILTER_NAME, attachmentMatcher, attachmentVerdict, type AttachmentMatch, type AttachmentPlace, type SeenPart } from '@mailgw/policy';
import type { Transform } from 'node:stream';
import { Joiner, Rewriter, Splitter } from '@zone-eu/mailsplit';
import { BareCrLines } from './bare-cr-lines.js';
import { archiveNames, archivePartKind, type ArchiveKind } from './archive-names.js';
import { SEVEN_ZIP_START_BYTES } from './seven-zip-names.js';
import { UuencodedFiles } from './uuencoded-files.js';
import { LeafBodySkipper } from './leaf-body-skipper.js';
import type { ZipBudget } from './zip-directory.js';

/** Messages attached to messages attached to … are read this deep. */
const MAX_DEPTH = 8;
/** What is left of leaf bodies is handed to the splitter in writes of at least this much (see MimeScan.write). */
const COALESCE_BYTES = 64 * 1024;
/** An archive up to this size (decoded) is kept whole: the archives inside it can be opened, and a tar, gzip or RAR one read through. */
const ARCHIVE_WHOLE_BYTES = 8 * 1024 * 1024;
/** Of a larger one, this much: of a zip its last bytes, where its directory is (the names of its own files: some thousands fit); of a 7z its last and its first 32 (they say where its header is); of the others (tar, gzip, RAR, ISO, .uue) their first. */
const ARCHIVE_PART_BYTES = 256 * 1024;
/** Archives in archives opened: the attached one and two levels inside it. */
const ARCHIVE_DEPTH = 3;
/** For all the archives of one message: names read, and bytes of nested archives inflated. */
const ARCHIVE_BUDGET: Readonly<ZipBudget> = { files: 20_000, inflated: 32 * 1024 * 1024 };

/**
 * Archive bytes held by this process, all sessions together, and the most kept whole: past it a
 * new archive keeps only its tail, so that many connections sending large zips at once cannot
 * make a listener hold gigabytes (each then holds at most ARCHIVE_PART_BYTES).
 */
const ARCHIVES_HELD_LIMIT = 128 * 1024 * 1024;
let archivesHeld = 0;

/** Bytes of archives this process holds now (every session's; 0 when none is being read). */
export function archiveBytesHeld(): number {
  return archivesHeld;
}

/**
 * An archive's decoded bytes as they arrive: all of them while it is within ARCHIVE_WHOLE_BYTES
 * and the process within ARCHIVES_HELD_LIMIT; from then on, of a zip only the last
 * ARCHIVE_PART_BYTES (where its directory is), of a 7z those and its first SEVEN_ZIP_START_BYTES
 * (which say where its header is), of the kinds read from their start (tar, gzip, RAR, ISO, .uue) only the
 * first. Counted in archivesHeld until released.
 */
class ArchiveBytes {
  private chunks: Buffer[] = [];
  private kept = 0;
  private whole = true;
  private released = false;
  /** 'ends': the archive's first bytes, kept apart from its tail. */
  private start: Buffer | null = null;
  total = 0;
  constructor(private readonly keep: 'tail' | 'head' | 'ends') {}
  push(b: Buffer): void {
    if (this.released) return;
    if (this.keep === 'ends' && this.total < SEVEN_ZIP_START_BYTES) {
      const first = b.subarray(0, SEVEN_ZIP_START_BYTES - this.total);
      this.start = this.start ? Buffer.concat([this.start, first]) : Buffer.from(first);
      archivesHeld += first.length;
    }
    this.total += b.length;
    if (!this.whole && this.keep === 'head') return; // its first bytes are kept already
    this.chunks.push(b);
    this.kept += b.length;
    archivesHeld += b.length;
    if (this.whole && this.total <= ARCHIVE_WHOLE_BYTES && archivesHeld <= ARCHIVES_HELD_LIMIT) return;
    this.whole = false;
    if (this.keep === 'head') {
      // Only the first ARCHIVE_PART_BYTES are kept (a copy: the concatenation is let go).
      const all = Buffer.concat(this.chunks, this.kept);
      const head = Buffer.from(all.subarray(0, ARCHIVE_PART_BYTES));
      archivesHeld -= this.kept - head.length;
      this.chunks = [head];
      this.kept = head.length;
      return;
    }
    while (this.chunks.length > 1 && this.kept - this.chunks[0]!.length >= ARCHIVE_PART_BYTES) {
      const dropped = this.chunks.shift()!.length;
      this.kept -= dropped;
      archivesHeld -= dropped;
    }
  }
  /** The archive whole, or its last (zip), first (tar, gzip, RAR, ISO, .uue) or first and last (7z) ARCHIVE_PART_BYTES. */
  bytes(): Buffer {
    const all = Buffer.concat(this.chunks, this.kept);
    if (this.whole || this.keep === 'head') return all;
    const tail = all.subarray(Math.max(0, all.length - ARCHIVE_PART_BYTES));
    return this.keep === 'ends' && this.start ? Buffer.concat([this.start, tail]) : tail;
  }
  release(): void {
    if (this.released) return;
    this.released = true;
    archivesHeld -= this.kept + (this.start?.length ?? 0);
    this.chunks = [];
    this.kept = 0;
    this.start = null;
  }
}

interface SplitterNode {
  readonly type: 'node';
  /** A decoder of the part's transfer encoding (base64, quoted-printable; a pass-through otherwise). */
  getDecoder(): Transform;
  readonly root: boolean;
  readonly multipart: string | false;
  readonly contentType: string | false;
  readonly filename: string | false;
  readonly encoding: string | false;
  readonly messageNode?: boolean;
}
type SplitterChunk = SplitterNode | { readonly type: 'body' | 'data'; readonly node: SplitterNode; readonly value: Buffer };

/** A part as MimeScan's callbacks name it: the same object for its node and for its body's pieces. */
export interface PartNode {
  /** Its Content-Transfer-Encoding (lower case), if it has one. */
  readonly encoding: string | false;
}

/** One MIME reader: a splitter, and a reader of its own for each attached message in it. */
export class MimeScan {
  // Typed as the Transform it is: its declarations list only the 'data' event.
  private readonly splitter: Transform = new Splitter(SPLITTER_OPTIONS) as unknown as Transform;
  /** Lines starting with a bare CR get their LF, so that the reading does not depend on the writes. */
  private readonly lines = new BareCrLines();
  /** Leaves the leaf parts' body lines out of what the splitter reads (null: it reads everything). */
  private readonly skipper: LeafBodySkipper | null;
  /** Given each write as read (Strip keeps them to write the message again from the same bytes). */
  onInput: ((b: Buffer) => void) | null = null;
  /** Given each piece of a part's body (as encoded) with its node, when leaf bodies are read (the transport rules' attachmentSizeOver). */
  onBody: ((node: PartNode, value: Buffer) => void) | null = null;
  /** Given what of an opened archive could not be read (the archive's name, why), when archives are opened. */
  onArchiveUnread: ((archive: string, why: string) => void) | null = null;
  /** Given an archive whose names are encrypted (password-protected as a whole: a RAR made with -hp), with its part. */
  onArchiveLocked: ((node: PartNode, archive: string) => void) | null = null;
  /** The archive being read: its decoder, fed its body. */
  private archive: { node: SplitterNode; input: Transform } | null = null;
  /** Each archive read, once its files have been handed to onPart. */
  private readonly archives: Array<Promise<void>> = [];
  /** The archives' bytes, released when read or when the reading is abandoned (discard). */
  private readonly held: ArchiveBytes[] = [];
  /** What is left of ARCHIVE_BUDGET for this message (a nested reader shares its parent's). */
  archiveBudget: ZipBudget = { ...ARCHIVE_BUDGET };
  /** What the skipper handed on and the splitter has not been given yet. */
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;
  private readonly done: Promise<void>;
  /** The attached message being read; `input` takes its body (a decoder first when it came encoded). */
  private nested: { node: SplitterNode; input: { write(b: Buffer): unknown; end(): void } } | null = null;
  /** Each nested reader, once all of its input has reached it. */
  private readonly children: Array<Promise<MimeScan>> = [];
  private nodes = 0;
  /**
   * The message itself is one leaf part (text/plain, text/html, …): its body has no structure
   * (no boundary applies, and the splitter reads no further node in it), so it need not be read.
   */
  rootLeaf = false;
  /** Set when the splitter gave up: nothing more is written (and no write waits for a drain that will not come). */
  private failed = false;

  /** `outer`: for a nested reader, the place of the attached message it reads. */
  /** `openArchives`: archives (zip, tar, gzip, RAR, 7z, ISO, .uue) are read and the files in them handed to onPart (with `archive` set), at the archive's place. */
  constructor(private readonly onPart: (part: SeenPart, place: AttachmentPlace, node: PartNode) => void, private readonly depth: number, private readonly outer: AttachmentPlace | null = null, private readonly skipLeafBodies = true, private readonly openArchives = false) {
    this.skipper = skipLeafBodies ? new LeafBodySkipper(SPLITTER_OPTIONS, openArchives) : null;
    this.splitter.on('data', (c: SplitterChunk) => this.chunk(c));
    this.done = new Promise((resolve, reject) => {
      this.splitter.on('end', () => resolve());
      this.splitter.on('error', (e: Error) => {
        this.failed = true;
        reject(e);
      });
    });
    this.done.catch(() => undefined); // reported by end()
  }

  private chunk(c: SplitterChunk): void {
    if (c.type === 'node') {
      this.closeNested();
      this.closeArchive();
      const place: AttachmentPlace = this.outer ?? { index: this.nodes, root: c.root, container: c.multipart !== false, inAttachedMessage: false };
      const archive = this.openArchives && c.multipart === false ? archivePartKind(c.contentType, c.filename) : null;
      if (c.root && c.multipart === false && !isMessage(c.contentType) && !archive) this.rootLeaf = true;
      this.nodes++;
      this.onPart({ filename: c.filename === false ? null : c.filename, contentType: c.contentType === false ? null : c.contentType }, place, c);
      if (archive) this.readArchive(c, place, archive);
      // An attached message the splitter leaves whole (no nested parse): read it with a splitter
      // of its own, decoded first when it came base64 or quoted-printable (RFC 2046 forbids
      // that for message/rfc822, some clients do it anyway).
      if (isMessage(c.contentType) && c.messageNode !== true && this.depth < MAX_DEPTH) {
        const scan = new MimeScan(this.onPart, this.depth + 1, this.outer ?? { ...place, inAttachedMessage: true }, this.skipLeafBodies, this.openArchives);
        scan.onBody = this.onBody;
        scan.onArchiveUnread = this.onArchiveUnread;
        scan.onArchiveLocked = this.onArchiveLocked;
        scan.archiveBudget = this.archiveBudget;
        if (!c.encoding || ['7bit', '8bit', 'binary'].includes(c.encoding)) {
          this.nested = { node: c, input: { write: (b) => scan.write(b), end: () => scan.close() } };
          this.children.push(Promise.resolve(scan));
        } else {
          const decoder = c.getDecoder();
          decoder.on('data', (b: Buffer) => scan.write(b));
          this.children.push(
            new Promise((resolve) => {
              const done = () => resolve(scan);
              decoder.on('end', done);
              decoder.on('error', done); // what was decoded has been read
            }),
          );
          this.nested = { node: c, input: decoder };
        }
      }
      return;
    }
    if (c.type !== 'body') return;
    this.onBody?.(c.node, c.value);
    if (this.nested && c.node === this.nested.node) this.nested.input.write(c.value);
    if (this.archive && c.node === this.archive.node) this.archive.input.write(c.value);
  }

  private closeNested(): void {
    this.nested?.input.end();
    this.nested = null;
  }

  /**
   * An archive (zip, tar, gzip, RAR, 7z, ISO, .uue): its body decoded (base64 …) as it comes, kept
   * (ARCHIVE_WHOLE_BYTES, or a zip's tail, a 7z's start and tail, the others' head), and once it ends every file in it
   * handed to onPart at the archive's own place, so that Reject refuses and Strip removes the
   * archive.
   */
  private readArchive(c: SplitterNode, place: AttachmentPlace, kind: ArchiveKind): void {
    const name = c.filename === false ? '(unnamed archive)' : c.filename;
    const kept = new ArchiveBytes(kind === 'zip' ? 'tail' : kind === '7z' ? 'ends' : 'head');
    this.held.push(kept);
    const decoder = c.getDecoder();
    decoder.on('data', (b: Buffer) => kept.push(b));
    this.archives.push(
      new Promise<void>((resolve) => {
        let read = false;
        const done = () => {
          if (read) return; // 'error' and then 'end': read once
          read = true;
          const r = archiveNames(kind, kept.bytes(), kept.total, name, { depth: ARCHIVE_DEPTH, maxInflated: ARCHIVE_WHOLE_BYTES, budget: this.archiveBudget });
          kept.release();
          if (!r.ok) {
            this.onArchiveUnread?.(name, r.why);
            if (r.locked) this.onArchiveLocked?.(c, name);
          } else {
            for (const f of r.files) this.onPart({ filename: f.name, contentType: null, archive: [name, ...f.within].join('/'), ...(f.encrypted ? { encrypted: true } : {}) }, place, c);
            for (const why of r.unread) this.onArchiveUnread?.(name, why);
          }
          resolve();
        };
        decoder.on('end', done);
        decoder.on('error', done); // what was decoded is read
      }),
    );
    this.archive = { node: c, input: decoder };
  }

  private closeArchive(): void {
    this.archive?.input.end();
    this.archive = null;
  }

  /**
   * Hands the chunk on; waits for the splitter to take it (its own back pressure), never past
   * its failure. With leaf bodies skipped, what is left of small writes is gathered into writes
   * of COALESCE_BYTES or more (each write costs the splitter a turn of the event loop; its
   * reading does not depend on where writes end: the fuzzed test checks it); `flush` hands on
   * what is gathered now (the header, so the message's own node is read before its body).
   */
  write(raw: Buffer, flush = false): Promise<void> | void {
    if (this.failed) return;
    const chunk = this.lines.push(raw);
    this.onInput?.(chunk);
    if (!this.skipper) return this.toSplitter(chunk);
    for (const b of this.skipper.push(chunk)) {
      this.gathered.push(b);
      this.gatheredBytes += b.length;
    }
    if (flush || this.gatheredBytes >= COALESCE_BYTES) return this.flushGathered();
  }

  private flushGathered(): Promise<void> | void {
    if (this.gathered.length === 0) return;
    const b = this.gathered.length === 1 ? this.gathered[0]! : Buffer.concat(this.gathered, this.gatheredBytes);
    this.gathered = [];
    this.gatheredBytes = 0;
    return this.toSplitter(b);
  }

  private toSplitter(b: Buffer): Promise<void> | void {
    if (this.splitter.write(b)) return;
    return new Promise((resolve) => {
      const go = () => {
        this.splitter.off('drain', go);
        this.splitter.off('error', go);
        this.splitter.off('close', go);
        resolve();
      };
      this.splitter.on('drain', go);
      this.splitter.on('error', go);
      this.splitter.on('close', go);
    });
  }

  close(): void {
    if (this.failed) return;
    void this.flushGathered();
    this.splitter.end();
  }

  /** The reading is abandoned (the message aborted): the archives' bytes are let go, the nested readers' too. */
  discard(): void {
    this.close();
    for (const h of this.held) h.release();
    void Promise.all(this.children).then((scans) => scans.forEach((c) => c.discard()));
  }

  /** Bytes of leaf part bodies the splitter was spared. */
  get skippedBytes(): number {
    return this.skipper?.emptied ?? 0;
  }

  /** Every part read, nested messages included; rejects when the structure could not be read. */
  async end(): Promise<void> {
    this.close();
    try {
      await this.done;
    } catch (e) {
      // The structure could not be read: nothing more comes; every archive's bytes are let go.
      this.closeNested();
      this.closeArchive();
      this.discard();
      throw e;
    }
    this.closeNested();
    this.closeArchive();
    await Promise.all(this.children.map(async (c) => (await c).end()));
    await Promise.all(this.archives);
  }
}

/**
 * The parts a message is read to have, as the filter reads them (every place and name, in
 * order); `skipLeafBodies` false reads every line. For the test that holds the two equal.
 */
export async function scanMimeParts(chunks: readonly Buffer[], skipLeafBodies = true, openArchives = false): Promise<{ parts: Array<{ part: SeenPart; place: AttachmentPlace }>; skippedBytes: number; error: string | null }> {
  const parts: Array<{ part: SeenPart; place: AttachmentPlace }> = [];
  const scan = new MimeScan((part, place) => parts.push({ part, place }), 0, null, skipLeafBodies, openArchives);
  for (const c of chunks) await scan.write(c);
  try {
    await scan.end();
    return { parts, skippedBytes: scan.skippedBytes, error: null };
  } catch (e) {
    return { parts, skippedBytes: scan.skippedBytes, error: e instanceof Error ? e.message : String(e) };
  }
}

/** A message in a part: message/rfc822, or message/global (RFC 6532), which the splitter leaves whole. */
function isMessage(contentType: string | false): boolean {
  return contentType === 'message/rfc822' || contentType === 'message/global';
}

/** The same options in both passes, so the n-th node of the second is the n-th of the first. */
const SPLITTER_OPTIONS = { defaultInlineEmbedded: true };

interface RewriteNode {
  setContentType(type: string): void;
  setCharset(charset: string): void;
  setFilename(name: string | false): void;
  readonly filename: string | false;
}

/**
 * The message again with the parts at `indexes` replaced by a text part saying `text`; the bytes
 * after the header. `writes`: the message in the writes the first pass read it in: mailsplit
 * does not always read the same structure whatever the writes (a line starting with a bare CR
 * before a delimiter), and the n-th node here must be the n-th node there.
 */
async function stripParts(writes: readonly Buffer[], indexes: ReadonlySet<number>, text: string): Promise<Buffer> {
  let n = 0;
  const splitter = new Splitter(SPLITTER_OPTIONS) as unknown as Transform;
  const rewriter = new Rewriter(() => indexes.has(n++)) as unknown as Transform;
  const joiner = new Joiner() as unknown as Transform;
  rewriter.on('node', (d: { node: RewriteNode; decoder: Transform; encoder: Transform }) => {
    d.decoder.resume(); // the original is not kept
    const name = d.node.filename;
    d.node.setContentType('text/plain');
    d.node.setCharset('utf-8');
    d.node.setFilename(name ? `${name}.txt` : false);
    d.encoder.end(Buffer.from(`${text}\r\n`));
  });
  const out: Buffer[] = [];
  joiner.on('data', (b: Buffer) => out.push(b));
  const finished = new Promise<void>((resolve, reject) => {
    joiner.on('end', resolve);
    for (const s of [splitter, rewriter, joiner]) s.on('error', reject);
  });
  splitter.pipe(rewriter).pipe(joiner);
  // One write: given the message in the writes DATA brought it in, mailsplit's pipeline at times
  // never ended (seen with the body's last 4 octets in a write of their own, as smtp-server hands
  // them on, and with writes of 1 or 7 octets), and the message waited for the filter's timeout.
  splitter.end(writes.length === 1 ? writes[0] : Buffer.concat(writes));
  await finished;
  const all = Buffer.concat(out);
  const end = all.indexOf('\r\n\r\n');
  return end === -1 ? Buffer.alloc(0) : all.subarray(end + 4);
}

export function attachmentFilter(cfg: AttachmentFilterConfig): MessageOnlyFilter {
  const matches = attachmentMatcher(cfg.entries);
  return {
    name: ATTACHMENT_FILTER_NAME,
    antiSpam: false,
    onFailure: 'tempfail',
    exceptConnectors: cfg.exceptionConnectors,
    begin: () => new AttachmentFilterSession(cfg, matches),
  };
}

class AttachmentFilterSession implements MessageFilterSession {
  private readonly found: AttachmentMatch[] = [];
  private parts = 0;
  /** What of the opened archives could not be read, for the reason. */
  private readonly unread: string[] = [];
  private readonly scan: MimeScan;
  /** Files uuencoded in the text (outside the MIME structure: the body's raw lines). */
  private readonly inText = new UuencodedFiles();
  /** Strip: the message as it came, to write it again without the matching parts. */
  private readonly kept: Buffer[] | null;

  constructor(private readonly cfg: AttachmentFilterConfig, private readonly match: (part: SeenPart) => AttachmentMatch['entry'] | null) {
    this.kept = cfg.action === 'Strip' ? [] : null;
    this.scan = new MimeScan(
      (part, place) => {
        if (part.archive === undefined) this.parts++;
        const entry = match(part);
        if (entry) this.found.push({ part, entry, place });
      },
      0,
      null,
      true,
      cfg.openArchives,
    );
    this.scan.onArchiveUnread = (archive, why) => this.unread.push(`"${archive}": ${why}`);
    const kept = this.kept;
    if (kept) this.scan.onInput = (b) => kept.push(b);
  }

  async header(fields: readonly HeaderField[]): Promise<void> {
    const head = Buffer.concat([...fields.map((f) => f.raw), Buffer.from('\r\n')]);
    await this.scan.write(head, true);
    // The splitter hands its nodes on asynchronously: let the message's own node arrive before
    // the body, so a one-part message's body is not read (rootLeaf).
    if (!this.scan.rootLeaf) await new Promise((resolve) => setImmediate(resolve));
  }

  body(chunk: Buffer): Promise<void> | void {
    this.inText.push(chunk);
    // A one-part message has no more parts to read (and nothing to strip: its part is the message).
    if (this.scan.rootLeaf) return;
    if (this.kept) return this.scan.write(chunk);
    // Refused or deleted whole once a part matches: the rest need not be read.
    if (this.found.length > 0) return;
    return this.scan.write(chunk);
  }

  abort(): void {
    this.scan.discard();
    this.kept?.splice(0);
  }

  async end(): Promise<FilterOutcome> {
    const outcome = (o: Omit<FilterOutcome, 'filter' | 'headers'>): FilterOutcome => ({ filter: ATTACHMENT_FILTER_NAME, headers: [], ...o });
    try {
      await this.scan.end();
    } catch (e) {
      if (this.found.length === 0 || this.kept) {
        return outcome({ verdict: 'error', reason: `the MIME structure could not be read (${e instanceof Error ? e.message : String(e)})` });
      }
    }
    this.inText.end();
    for (const name of this.inText.names) {
      const part: SeenPart = { filename: name, contentType: null, inText: true };
      const entry = this.match(part);
      if (entry) this.found.push({ part, entry });
    }
    const v = attachmentVerdict(this.found, this.cfg);
    if (v.verdict === 'strip') {
      try {
        const body = await stripParts(this.kept!.splice(0), new Set(v.strip), this.cfg.adminMessage);
        return outcome({ verdict: 'accept', replaceBody: body, reason: v.reason });
      } catch (e) {
        return outcome({ verdict: 'error', reason: `the matching parts could not be removed (${e instanceof Error ? e.message : String(e)})` });
      }
    }
    if (v.verdict === 'reject') return outcome({ verdict: 'reject', reply: v.reply, reason: v.reason });
    const unread = this.unread.length > 0 ? `; not read in archives (judged by their own names): ${this.unread.slice(0, 3).join('; ')}${this.unread.length > 3 ? `; and ${this.unread.length - 3} more` : ''}` : '';
    return outcome({ verdict: v.verdict, reason: v.verdict === 'accept' ? `${v.reason} (${this.parts} MIME part${this.parts === 1 ? '' : 's'} read${unread})` : v.reason });
  }
}
