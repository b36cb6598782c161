// The attachment filter spares mailsplit the body lines of leaf parts (leaf-body-skipper.ts).
// What it must never change is what the filter reads: the same parts, names and types, in the
// same places and order, and the same failure. Checked here by reading random, often malformed
// MIME messages both ways, in the same random chunks, and by the cases that would be a bypass
// if the skipper got them wrong (a program inside a message the skipper must not skip).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { gzipSync } from 'node:zlib';
import { scanMimeParts } from '../src/index.js';
import { prng } from '../../../test/security/helpers/fuzz.js';


const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** A zip archive of empty stored files with these names (local headers, central directory, end record), written by hand. */
function storedZip(names: readonly string[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const n of names) {
    const name = Buffer.from(n, 'utf8');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(0x800, 6);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(0x800, 8);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name);
    centrals.push(central, name);
    offset += 30 + name.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(names.length, 8);
  end.writeUInt16LE(names.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

class Gen {
  private n = 0;
  constructor(private readonly r: () => number) {}
  chance(p: number): boolean {
    return this.r() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)]!;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.r() * (hi - lo + 1));
  }
  boundary(): string {
    return this.pick(['b', '----=_Part_', 'NextPart_000_', '=_ab', 'x']) + (this.n++).toString(36) + this.int(0, 999);
  }
  base64Line(): string {
    let s = '';
    for (let i = 0; i < 76; i++) s += B64[this.int(0, 63)];
    return s;
  }

  /** Body lines of a leaf, with the lines a skipper could get wrong mixed in. */
  leafBody(outer: readonly string[]): string[] {
    const lines: string[] = [];
    const count = this.int(0, 40);
    for (let i = 0; i < count; i++) {
      const o = outer.length ? this.pick(outer) : 'zz';
      lines.push(
        this.chance(0.75)
          ? this.base64Line()
          : this.pick([
              '',
              '-- ',
              '--',
              '-',
              '-x',
              '--not a boundary',
              `--${o}x`,
              `--${o}  `,
              `--${o}`,
              `--${o}--`,
              `\r--${o}`,
              '\r',
              'text with a bare \r in it',
              'Content-Type: message/rfc822',
              'Content-Disposition: attachment; filename="inside.exe"',
              ' folded-looking line',
              'a'.repeat(this.int(900, 70_000)),
              `-${'-'.repeat(this.int(0, 3))}${o}`,
            ]),
      );
    }
    return lines;
  }

  header(kind: 'leaf' | 'multipart' | 'message' | 'none', boundary: string): string[] {
    const h: string[] = [];
    const name = this.pick(['invoice.exe', 'photo.png', 'x.eml', 'report.pdf', 'run.bat', '=?utf-8?B?ZXZpbC5leGU=?=']);
    switch (kind) {
      case 'leaf':
        h.push(`Content-Type: ${this.pick(['text/plain; charset=utf-8', 'text/html', 'application/octet-stream', 'application/x-msdownload', 'image/png'])}${this.chance(0.5) ? `; name="${name}"` : ''}`);
        h.push(`Content-Transfer-Encoding: ${this.pick(['base64', '7bit', 'quoted-printable'])}`);
        break;
      case 'multipart':
        h.push(`Content-Type: multipart/${this.pick(['mixed', 'alternative', 'related', 'digest'])};${this.chance(0.5) ? '\r\n\t' : ' '}boundary="${boundary}"`);
        break;
      case 'message':
        h.push(this.pick([`Content-Type: message/rfc822`, 'Content-Type: message/global', 'Content-Type: Message/RFC822; name="fwd.eml"', 'Content-Type : message/rfc822', 'Content-Type: (forwarded) message/rfc822']));
        break;
      case 'none':
        break;
    }
    if (this.chance(0.5)) h.push(`Content-Disposition: ${this.pick(['attachment', 'inline'])}${this.chance(0.6) ? `; filename="${this.pick([name, 'fwd.eml', 'y.exe'])}"` : this.chance(0.3) ? "; filename*=utf-8''ev%69l.exe" : ''}`);
    if (this.chance(0.1)) h.push('X-Note: -- a dash line follows');
    if (this.chance(0.05)) h.push(this.pick(['--looks-like-a-boundary', `--${boundary}`, '\rX-Odd: cr']));
    if (this.chance(0.05)) h.push('Content-Type: message/rfc822');
    return h;
  }

  /** One part (header, empty line, body) as lines; `outer`: the boundaries of the multiparts around it. */
  part(depth: number, outer: readonly string[]): string[] {
    const kind = depth >= 4 ? this.pick(['leaf', 'none'] as const) : this.pick(['leaf', 'leaf', 'multipart', 'message', 'none'] as const);
    const boundary = this.boundary();
    const header = this.header(kind, boundary);
    const body: string[] = [];
    if (kind === 'multipart') {
      if (this.chance(0.5)) body.push('This is a multi-part message in MIME format.');
      const n = this.int(0, 4);
      for (let i = 0; i < n; i++) {
        body.push(`--${boundary}`);
        if (this.chance(0.05)) body.push(`--${boundary}`); // an empty part
        body.push(...this.part(depth + 1, [...outer, boundary]));
      }
      if (this.chance(0.85)) body.push(`--${boundary}--`);
      if (this.chance(0.3)) body.push('epilogue', ...this.leafBody(outer));
    } else if (kind === 'message') {
      const inner = this.message(depth + 1);
      if (this.chance(0.2)) {
        header.push('Content-Transfer-Encoding: base64');
        const b = Buffer.from(inner.join('\r\n') + '\r\n').toString('base64');
        for (let i = 0; i < b.length; i += 76) body.push(b.slice(i, i + 76));
      } else body.push(...inner);
    } else body.push(...this.leafBody(outer));
    return [...header, '', ...body];
  }

  message(depth = 0): string[] {
    const top = ['From: <a@example.net>', 'Subject: test', 'MIME-Version: 1.0'];
    return [...top, ...this.part(depth, [])];
  }
}

/** The message in chunks cut at the given sizes (the rest in one). */
function chunked(message: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const c of cuts) {
    if (at >= message.length) break;
    out.push(message.subarray(at, at + c));
    at += c;
  }
  if (at < message.length) out.push(message.subarray(at));
  return out;
}

/**
 * Reads the chunks both ways: the same parts must come out, the message's own in the same order
 * (an attached message's parts come from a reader of its own, and an archive's files once it is
 * read, whenever that is: compared as a set), and the same failure.
 */
async function bothWays(chunks: readonly Buffer[], openArchives = false) {
  const [skipping, whole] = await Promise.all([scanMimeParts(chunks, true, openArchives), scanMimeParts(chunks, false, openArchives)]);
  // An archive's files come when its body has been read, whenever that is: compared as a set too.
  const own = (r: typeof whole) => r.parts.filter((p) => !p.place.inAttachedMessage && p.part.archive === undefined);
  const all = (r: typeof whole) => r.parts.map((p) => JSON.stringify(p)).sort();
  assert.deepEqual(own(skipping), own(whole));
  assert.deepEqual(all(skipping), all(whole));
  assert.equal(skipping.error, whole.error);
  return skipping;
}

describe('the attachment filter with leaf bodies skipped reads what it reads without', () => {
  it('random, often malformed MIME messages in random chunks: the same parts, places and failures', async () => {
    let skipped = 0;
    let runs = 0;
    await fc.assert(
      // Writes of any size, and many small ones (the splitter carries line endings across writes).
      fc.asyncProperty(fc.integer(), fc.boolean(), fc.oneof(fc.array(fc.integer({ min: 1, max: 4096 }), { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 48 }), { maxLength: 600 })), async (seed, lfOnly, cuts) => {
        const lines = new Gen(prng(seed).next).message();
        const message = Buffer.from(lines.join(lfOnly ? '\n' : '\r\n') + (lfOnly ? '\n' : '\r\n'), 'latin1');
        const r = await bothWays(chunked(message, cuts));
        skipped += r.skippedBytes;
        runs++;
      }),
      {
        numRuns: Number(process.env.MAILGW_FUZZ_RUNS ?? 2000),
        // Cases that found differences while the skipper was written (each from the splitter
        // carrying a line ending, or a bare CR, across a write boundary).
        examples: [
          [-2032793477, false, []],
          [-2147479438, false, [537]],
          [-1549320328, true, []],
          [-940900574, false, []],
          [-894131994, true, [950]],
          [-1232674595, false, [764]],
          [-68491056, false, [291]],
        ],
      },
    );
    // The property holds trivially for a skipper that skips nothing: it must skip.
    assert.ok(skipped > runs * 500, `${skipped} bytes skipped in ${runs} messages`);
  });

  it('with archives opened: random parts around a zip, a gzip and a .uue attachment, random writes: the same parts, the archives\' files included', async () => {
    let files = 0;
    let gzipped = 0;
    let uuencoded = 0;
    const gz = gzipSync('MZ').toString('base64');
    await fc.assert(
      fc.asyncProperty(fc.integer(), fc.array(fc.integer({ min: 1, max: 4096 }), { maxLength: 40 }), fc.array(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }), async (seed, cuts, names) => {
        const g = new Gen(prng(seed).next);
        const archive = storedZip(names.map((n) => `${n}.exe`)).toString('base64').replace(/.{76}/g, '$&\r\n');
        const lines = [
          'From: <a@example.net>', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="zz"', '',
          '--zz', ...g.part(1, ['zz']),
          '--zz', 'Content-Type: application/zip; name="files.zip"', 'Content-Transfer-Encoding: base64', '', archive,
          '--zz', ...g.part(1, ['zz']),
          '--zz', 'Content-Type: application/gzip; name="tool.exe.gz"', 'Content-Transfer-Encoding: base64', '', gz,
          '--zz', ...g.part(1, ['zz']),
          // A .uue in 7bit: its begin line and one line of uuencode ("MZ!").
          '--zz', 'Content-Type: text/x-uuencode; name="mail.uue"', '', 'begin 644 run.exe', '#35HA', '`', 'end',
          '--zz--', '',
        ];
        const r = await bothWays(chunked(Buffer.from(lines.join('\r\n'), 'latin1'), cuts), true);
        files += r.parts.filter((p) => p.part.archive === 'files.zip').length;
        gzipped += r.parts.filter((p) => p.part.archive === 'tool.exe.gz' && p.part.filename === 'tool.exe').length;
        uuencoded += r.parts.filter((p) => p.part.archive === 'mail.uue' && p.part.filename === 'run.exe').length;
      }),
      { numRuns: Number(process.env.MAILGW_FUZZ_RUNS ?? 300) },
    );
    // It holds trivially if no archive is ever read: they must be.
    assert.ok(files > 0, 'no file of an archive was read');
    assert.ok(gzipped > 0, 'no gzip was read');
    assert.ok(uuencoded > 0, 'no .uue was read');
  });

  it('the reading does not depend on the writes the message came in (bare-CR lines get their LF)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer(), fc.boolean(), fc.array(fc.integer({ min: 1, max: 48 }), { maxLength: 600 }), fc.array(fc.integer({ min: 1, max: 4096 }), { maxLength: 40 }), async (seed, lfOnly, small, large) => {
        const lines = new Gen(prng(seed).next).message();
        const message = Buffer.from(lines.join(lfOnly ? '\n' : '\r\n') + (lfOnly ? '\n' : '\r\n'), 'latin1');
        const [a, b, whole] = await Promise.all([scanMimeParts(chunked(message, small)), scanMimeParts(chunked(message, large)), scanMimeParts([message])]);
        const all = (r: typeof a) => r.parts.map((p) => JSON.stringify(p)).sort();
        assert.deepEqual(all(a), all(whole));
        assert.deepEqual(all(b), all(whole));
        assert.equal(a.error, whole.error);
        assert.equal(b.error, whole.error);
      }),
      { numRuns: Number(process.env.MAILGW_FUZZ_RUNS ?? 1000) },
    );
  });

  it('a delimiter line that starts with a bare CR is a delimiter whatever the writes (it could hide a part)', async () => {
    const head = 'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nxx\n--c\n\r';
    const rest = '\n\r--b\nContent-Type: application/x-msdownload; name="evil.exe"\n\nTVqQ\n--b--\n';
    for (const writes of [[head + rest], [head, rest], [head.slice(0, -1), '\r' + rest]]) {
      for (const skip of [true, false]) {
        const r = await scanMimeParts(writes.map((w) => Buffer.from(w, 'latin1')), skip);
        assert.ok(r.parts.some((p) => p.part.filename === 'evil.exe'), `${JSON.stringify(writes.map((w) => w.length))} skip ${skip}: ${JSON.stringify(r.parts.map((p) => p.part.filename))}`);
      }
    }
  });

  it('a usual message with a 100 KB attachment: the base64 is skipped, the parts are the same', async () => {
    const b64 = Buffer.alloc(100_000, 7).toString('base64').replace(/.{76}/g, '$&\r\n');
    const message = Buffer.from(
      'From: <a@example.net>\r\nSubject: report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n' +
        '--outer\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n--alt\r\nContent-Type: text/plain\r\n\r\nHello\r\n\r\n-- \r\nJohn\r\n--alt\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--alt--\r\n\r\n' +
        `--outer\r\nContent-Type: application/pdf; name="report.pdf"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="report.pdf"\r\n\r\n${b64}\r\n--outer--\r\n`,
    );
    const r = await bothWays(chunked(message, [1000, 65_536, 65_536]));
    assert.deepEqual(
      r.parts.map((p) => [p.part.contentType, p.part.filename]),
      [['multipart/mixed', null], ['multipart/alternative', null], ['text/plain', null], ['text/html', null], ['application/pdf', 'report.pdf']],
    );
    assert.ok(r.skippedBytes > 0.95 * 135_000, `${r.skippedBytes} bytes skipped`);
  });

  it('a program inside an attached or inline message is found: message bodies are never skipped', async () => {
    const inner = 'Subject: inner\r\nContent-Type: multipart/mixed; boundary="in"\r\n\r\n--in\r\nContent-Type: application/x-msdownload; name="evil.exe"\r\n\r\nTVqQ\r\n--in--\r\n';
    for (const [label, partHeader, body] of [
      ['inline message/rfc822', 'Content-Type: message/rfc822', inner],
      ['attached message/rfc822', 'Content-Type: message/rfc822\r\nContent-Disposition: attachment', inner],
      ['base64 message/rfc822', 'Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64', Buffer.from(inner).toString('base64').replace(/.{76}/g, '$&\r\n') + '\r\n'],
      ['no type, named .eml', 'Content-Disposition: attachment; filename="fwd.eml"', inner],
      ['a dash line in the part header', 'X-A: 1\r\n--confuse\r\nContent-Type: message/rfc822', inner],
      ['a delimiter-looking line first', '--confuse\r\nContent-Type: message/rfc822', inner],
    ] as const) {
      const message = Buffer.from(`From: <a@example.net>\r\nContent-Type: multipart/mixed; boundary="out"\r\n\r\n--out\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--out\r\n${partHeader}\r\n\r\n${body}--out--\r\n`);
      for (const cuts of [[], [1], [7, 3, 11, 2, 5, 1, 1, 1, 13]]) {
        const r = await bothWays(chunked(message, cuts));
        const names = r.parts.map((p) => p.part.filename);
        if (label !== 'a dash line in the part header' && label !== 'a delimiter-looking line first') assert.ok(names.includes('evil.exe'), `${label}: ${JSON.stringify(names)}`);
      }
    }
  });
});
