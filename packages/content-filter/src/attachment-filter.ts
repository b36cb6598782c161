// Exchange's Edge attachment filtering as a message filter: the MIME structure is read as DATA
// streams in (mailsplit's Splitter: part headers only, bodies are not decoded), each part's file
// name and content type go to the policy's matcher, and at the end the policy's verdict for the
// configured action. Messages inside messages are read too: inline ones by the splitter itself,
// attached ones (message/rfc822 with Content-Disposition: attachment) by a splitter of their
// own, to a depth of MAX_DEPTH. A structure that cannot be read (over mailsplit's limits) is the
// filter's failure: tempfail, the message is not let through unread.
import type { AttachmentFilterConfig } from '@mailgw/config';
import type { FilterOutcome, HeaderField, MessageFilter, MessageFilterSession } from '@mailgw/mail';
import { ATTACHMENT_FILTER_NAME, attachmentMatcher, attachmentVerdict, type AttachmentMatch, type SeenPart } from '@mailgw/policy';
import type { Transform } from 'node:stream';
import { Splitter } from '@zone-eu/mailsplit';

/** Messages attached to messages attached to … are read this deep. */
export const MAX_DEPTH = 8;
/** The matches kept for the log: the first few say enough. */
const MAX_MATCHES = 10;

interface SplitterNode {
  readonly type: 'node';
  readonly contentType: string | false;
  readonly filename: string | false;
  readonly encoding: string | false;
  readonly messageNode?: boolean;
}
type SplitterChunk = SplitterNode | { readonly type: 'body' | 'data'; readonly node: SplitterNode; readonly value: Buffer };

/** One MIME reader: a splitter, and a reader of its own for each attached message in it. */
class MimeScan {
  // Typed as the Transform it is: its declarations list only the 'data' event.
  private readonly splitter: Transform = new Splitter({ defaultInlineEmbedded: true }) as unknown as Transform;
  private readonly done: Promise<void>;
  private nested: { node: SplitterNode; scan: MimeScan } | null = null;
  private readonly children: MimeScan[] = [];

  constructor(private readonly onPart: (part: SeenPart) => void, private readonly depth: number) {
    this.splitter.on('data', (c: SplitterChunk) => this.chunk(c));
    this.done = new Promise((resolve, reject) => {
      this.splitter.on('end', () => resolve());
      this.splitter.on('error', reject);
    });
    this.done.catch(() => undefined); // reported by end()
  }

  private chunk(c: SplitterChunk): void {
    if (c.type === 'node') {
      this.closeNested();
      this.onPart({ filename: c.filename === false ? null : c.filename, contentType: c.contentType === false ? null : c.contentType });
      // An attached message the splitter leaves whole (no nested parse): read it with a splitter of its own.
      if (c.contentType === 'message/rfc822' && c.messageNode === false && this.depth < MAX_DEPTH && (!c.encoding || ['7bit', '8bit', 'binary'].includes(c.encoding))) {
        this.nested = { node: c, scan: new MimeScan(this.onPart, this.depth + 1) };
        this.children.push(this.nested.scan);
      }
      return;
    }
    if (c.type === 'body' && this.nested && c.node === this.nested.node) this.nested.scan.write(c.value);
  }

  private closeNested(): void {
    this.nested?.scan.close();
    this.nested = null;
  }

  /** Waits for the splitter to take the chunk (its own back pressure). */
  write(chunk: Buffer): Promise<void> | void {
    if (!this.splitter.write(chunk)) return new Promise((resolve) => this.splitter.once('drain', resolve));
  }

  close(): void {
    this.splitter.end();
  }

  /** Every part read, nested messages included; rejects when the structure could not be read. */
  async end(): Promise<void> {
    this.close();
    await this.done;
    this.closeNested();
    await Promise.all(this.children.map((c) => c.end()));
  }
}

export function attachmentFilter(cfg: AttachmentFilterConfig): MessageFilter {
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
  private readonly scan: MimeScan;

  constructor(private readonly cfg: AttachmentFilterConfig, match: (part: SeenPart) => AttachmentMatch['entry'] | null) {
    this.scan = new MimeScan((part) => {
      this.parts++;
      const entry = match(part);
      if (entry && this.found.length < MAX_MATCHES) this.found.push({ part, entry });
    }, 0);
  }

  header(fields: readonly HeaderField[]): Promise<void> | void {
    return this.scan.write(Buffer.concat([...fields.map((f) => f.raw), Buffer.from('\r\n')]));
  }

  body(chunk: Buffer): Promise<void> | void {
    // Once a part matches, the verdict is settled: the rest need not be read.
    if (this.found.length > 0) return;
    return this.scan.write(chunk);
  }

  abort(): void {
    this.scan.close();
  }

  async end(): Promise<FilterOutcome> {
    try {
      await this.scan.end();
    } catch (e) {
      if (this.found.length === 0) {
        return { filter: ATTACHMENT_FILTER_NAME, verdict: 'error', headers: [], reason: `the MIME structure could not be read (${e instanceof Error ? e.message : String(e)})` };
      }
    }
    const v = attachmentVerdict(this.found, this.cfg);
    return { filter: ATTACHMENT_FILTER_NAME, verdict: v.verdict, reply: v.reply, headers: [], reason: v.verdict === 'accept' ? `${v.reason} (${this.parts} MIME part${this.parts === 1 ? '' : 's'} read)` : v.reason };
  }
}
