// Disclaimers put into messages: where they go (plain and HTML text, alternatives, the first
// part of a mixed message, never an attachment), how a changed part is written (UTF-8, 7bit or
// base64), and the fallbacks (Wrap, Ignore, Reject) for signed, encrypted and text-less
// messages. Read back with mailparser, as a mail client would read them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { simpleParser, type ParsedMail } from 'mailparser';
import { applyDisclaimer, applyDisclaimers, applyHeaderEdits, disclaimerText, messageHeader, parseHeaderFields, type BodyDisclaimer, type DisclaimerResult } from '../src/index.js';

const FOOTER: BodyDisclaimer = { rule: 'Footer', html: '<p>This e-mail is <b>confidential</b> &amp; for the addressee only.</p>', location: 'Append', fallback: 'Wrap' };
const FOOTER_TEXT = 'This e-mail is confidential & for the addressee only.';
const BANNER: BodyDisclaimer = { rule: 'External', html: '<div style="color:red">CAUTION: this e-mail comes from outside the organisation.</div>', location: 'Prepend', fallback: 'Ignore' };
const BANNER_TEXT = 'CAUTION: this e-mail comes from outside the organisation.';

const crlf = (s: string) => s.replace(/\r?\n/g, '\r\n');

/** The message split as intake holds it: header fields and body. */
function split(message: string | Buffer) {
  const raw = typeof message === 'string' ? Buffer.from(crlf(message), 'latin1') : message;
  const h = messageHeader(raw);
  return { fields: parseHeaderFields(h.header), body: h.rest };
}

/** The message as it would be stored after `r`. */
function stored(message: string | Buffer, r: DisclaimerResult): Buffer {
  const { fields, body } = split(message);
  if (r.kind === 'ignored' || r.kind === 'rejected') return Buffer.concat([...fields.map((f) => f.raw), Buffer.from('\r\n'), body]);
  const edited = applyHeaderEdits(fields, r.headers);
  return Buffer.concat([...edited.top, ...edited.fields, Buffer.from('\r\n'), r.body]);
}

async function apply(message: string | Buffer, d: BodyDisclaimer = FOOTER): Promise<{ r: DisclaimerResult; out: Buffer; mail: ParsedMail }> {
  const { fields, body } = split(message);
  const r = applyDisclaimer(fields, body, d, 'Q1');
  const out = stored(message, r);
  return { r, out, mail: await simpleParser(out) };
}

const HEAD = 'From: <a@contoso.test>\nTo: <b@fabrikam.test>\nSubject: hello\nMessage-ID: <m1@contoso.test>\n';

describe('disclaimerText: the HTML as plain text', () => {
  it('tags dropped, line breaks for <br> and block ends, entities decoded, spaces squeezed', () => {
    assert.equal(disclaimerText('<p>One &amp; <b>two</b></p><p>Three<br/>four&nbsp;&#233;&#x2014;</p><script>x()</script>'), 'One & two\nThree\nfour\u00a0é—');
    assert.equal(disclaimerText('plain   text &unknown; <'), 'plain text &unknown; <');
    // The signature separator keeps its space (RFC 3676 4.3), however the HTML spaced it.
    assert.equal(disclaimerText('<p>--<br>Alice</p>'), '-- \nAlice');
    assert.equal(disclaimerText('<p>Hi</p><p> -- <br>Alice</p>'), 'Hi\n-- \nAlice');
    assert.equal(disclaimerText('<p>a -- b</p>'), 'a -- b');
  });
});

describe('where a disclaimer goes', () => {
  it('a plain-text message: after a blank line (Append), the part stays 7bit ASCII', async () => {
    const { r, out, mail } = await apply(`${HEAD}Content-Type: text/plain; format=flowed\n\nHi Bob,\nsee you.\n`);
    assert.equal(r.kind, 'inserted');
    assert.ok(out.toString('latin1').endsWith(`Hi Bob,\r\nsee you.\r\n\r\n${FOOTER_TEXT}\r\n`), out.toString('latin1'));
    assert.match(mail.headers.get('content-type') ? String((mail.headers.get('content-type') as { value: string }).value) : '', /text\/plain/);
    assert.equal((mail.headers.get('content-type') as { params: Record<string, string> }).params.format, 'flowed', 'other parameters kept');
    assert.equal((mail.headers.get('content-type') as { params: Record<string, string> }).params.charset, 'utf-8');
    assert.equal(mail.headers.get('content-transfer-encoding'), '7bit');
    assert.equal(mail.subject, 'hello');
  });

  it('a message without Content-Type (RFC 2045: text/plain; us-ascii) gets one, and MIME-Version', async () => {
    const { out, mail } = await apply(`${HEAD}\nJust text.\n`);
    assert.match(out.toString('latin1'), /^MIME-Version: 1\.0\r$/m);
    assert.equal(mail.text?.trim(), `Just text.\n\n${FOOTER_TEXT}`);
  });

  it('Prepend: before the text, after a blank line', async () => {
    const { mail } = await apply(`${HEAD}Content-Type: text/plain\n\nHi.\n`, BANNER);
    assert.equal(mail.text?.trim(), `${BANNER_TEXT}\n\nHi.`);
  });

  it('an HTML message: before </body> (Append), after <body …> (Prepend), as HTML', async () => {
    const html = `${HEAD}Content-Type: text/html; charset=us-ascii\n\n<html><head><title>t</title></head><BODY class="x"><p>Hi</p></BODY></html>\n`;
    const a = await apply(html);
    assert.match(a.out.toString('utf8'), /<p>Hi<\/p>\r\n<div><p>This e-mail is <b>confidential<\/b> &amp; for the addressee only\.<\/p><\/div>\r\n<\/BODY>/);
    const p = await apply(html, BANNER);
    assert.match(p.out.toString('utf8'), /<BODY class="x">\r\n<div><div style="color:red">CAUTION/);
    // An HTML fragment without body or html tags: at the end, or at the start.
    const bare = await apply(`${HEAD}Content-Type: text/html\n\n<p>frag</p>\n`);
    assert.match(bare.out.toString('utf8'), /<p>frag<\/p>\r\n\r\n<div><p>This e-mail/);
  });

  it('multipart/alternative: the plain and the HTML alternative, each decoded and written again as UTF-8', async () => {
    const m = `${HEAD}MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="alt"\n\npreamble\n--alt\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nCaf=E9 au lait =\nce soir.\n--alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n${Buffer.from('<html><body><p>Café ce soir</p></body></html>').toString('base64')}\n--alt--\nepilogue\n`;
    const { r, out, mail } = await apply(m);
    assert.deepEqual(r.kind === 'inserted' && r.parts, 2);
    assert.equal(mail.text?.trim(), `Café au lait ce soir.\n\n${FOOTER_TEXT}`);
    assert.match(String(mail.html), /<p>Café ce soir<\/p>\s*<div><p>This e-mail is <b>confidential<\/b>/);
    const text = out.toString('latin1');
    assert.match(text, /^preamble\r$/m, 'preamble kept');
    assert.match(text, /--alt--\r\nepilogue\r\n$/, 'closing delimiter and epilogue kept');
    assert.equal((text.match(/charset=utf-8/g) ?? []).length, 2);
  });

  it('multipart/mixed: the first part (here an alternative with a related HTML), never the attachments, whose bytes stay', async () => {
    const pdf = Buffer.from('%PDF-1.4 not really a pdf but bytes\n').toString('base64');
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]).toString('base64');
    const m = `${HEAD}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=mix\n\n--mix\nContent-Type: multipart/alternative; boundary=alt\n\n--alt\nContent-Type: text/plain\n\nplain body\n--alt\nContent-Type: multipart/related; boundary=rel\n\n--rel\nContent-Type: text/html\n\n<html><body>html body<img src="cid:i1"></body></html>\n--rel\nContent-Type: image/png\nContent-ID: <i1>\nContent-Transfer-Encoding: base64\n\n${png}\n--rel--\n\n--alt--\n\n--mix\nContent-Type: text/plain; name="notes.txt"\nContent-Disposition: attachment; filename="notes.txt"\n\nnot the body\n--mix\nContent-Type: application/pdf; name="a.pdf"\nContent-Transfer-Encoding: base64\n\n${pdf}\n--mix--\n`;
    const { r, out, mail } = await apply(m);
    assert.equal(r.kind === 'inserted' && r.parts, 2);
    assert.equal(mail.text?.trim(), `plain body\n\n${FOOTER_TEXT}`);
    assert.match(String(mail.html), /html body<img src="[^"]+">\r?\n<div><p>This e-mail/, 'the HTML of the related part (mailparser shows the cid image inline)');
    const names = mail.attachments.map((a) => a.filename ?? a.contentId);
    assert.deepEqual(names.sort(), ['<i1>', 'a.pdf', 'notes.txt'].sort());
    assert.equal(mail.attachments.find((a) => a.filename === 'notes.txt')!.content.toString(), 'not the body', 'a text attachment is not the text');
    assert.ok(out.includes(`${pdf}\r\n--mix--`), 'the attachment bytes as they were');
  });

  it('a disclaimer with non-ASCII text turns a 7bit part into base64 UTF-8; a long HTML line too', async () => {
    const d: BodyDisclaimer = { ...FOOTER, html: 'Vertraulich – nur für den Empfänger.' };
    const { out, mail } = await apply(`${HEAD}Content-Type: text/plain\n\nHallo.\n`, d);
    assert.match(out.toString('latin1'), /Content-Transfer-Encoding: base64/);
    assert.equal(mail.text?.trim(), 'Hallo.\n\nVertraulich – nur für den Empfänger.');
    const long = await apply(`${HEAD}Content-Type: text/html\n\n<p>x</p>\n`, { ...FOOTER, html: `<p>${'word '.repeat(300)}</p>` });
    assert.match(long.out.toString('latin1'), /Content-Transfer-Encoding: base64/, 'a 1,500-character line cannot go as 7bit');
  });

  it('an inline text part with a file name is text; the last of many </body> tags takes the footer, in one pass', async () => {
    const inline = await apply(`${HEAD}Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain; name="body.txt"\nContent-Disposition: inline\n\nnamed text\n--m--\n`);
    assert.equal(inline.r.kind, 'inserted');
    const many = '</body>'.repeat(20_000);
    const { fields, body } = split(`${HEAD}Content-Type: text/html\n\n<html><body>x${many}</html>\n`);
    const r = applyDisclaimer(fields, body, FOOTER);
    assert.equal(r.kind, 'inserted');
    // One line of 140 KB: written again as base64.
    const out = r.kind === 'inserted' ? Buffer.from(r.body.toString('latin1'), 'base64').toString('latin1') : '';
    assert.ok(out.endsWith(`</div>\r\n</body></html>\r\n`), out.slice(-80));
  });

  it('a sender\'s text made to slow a pattern down takes one pass: line breaks without end, "<body" without ">", a Content-Type of unclosed quotes', () => {
    // Each of these took a pattern quadratic time (minutes at these sizes) before.
    const breaks = split(`${HEAD}Content-Type: text/plain\n\n${'\r\n'.repeat(100_000)}x${'\r\n'.repeat(3)}`);
    const a = applyDisclaimer(breaks.fields, breaks.body, FOOTER);
    assert.ok(a.kind === 'inserted' && a.body.toString('latin1').endsWith(`x\r\n\r\n${FOOTER_TEXT}\r\n`));
    const tags = split(`${HEAD}Content-Type: text/html\n\n${'<body'.repeat(50_000)}\n`);
    const b = applyDisclaimer(tags.fields, tags.body, { ...FOOTER, location: 'Prepend' });
    assert.equal(b.kind, 'inserted');
    const quotes = split(`${HEAD}Content-Type: text/plain${'; a="x'.repeat(40_000)}\n\nbody\n`);
    assert.equal(applyDisclaimer(quotes.fields, quotes.body, FOOTER).kind, 'inserted');
  });

  it('disclaimers of two rules, one after the other', () => {
    const { fields, body } = split(`${HEAD}Content-Type: text/plain\n\nHi.\n`);
    const r = applyDisclaimers(fields, body, [BANNER, FOOTER], 'Q1');
    assert.equal(r.rejected, null);
    assert.deepEqual(r.done.map((x) => [x.rule, x.result]), [['External', 'inserted'], ['Footer', 'inserted']]);
    assert.equal(r.body.toString('utf8'), `${BANNER_TEXT}\r\n\r\nHi.\r\n\r\n${FOOTER_TEXT}\r\n`);
  });
});

describe('fallbacks', () => {
  const signed = `${HEAD}MIME-Version: 1.0\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=sig\n\n--sig\nContent-Type: text/plain\n\nsigned text\n--sig\nContent-Type: application/pkcs7-signature; name=smime.p7s\nContent-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\n--sig--\n`;

  it('Wrap: a signed message goes whole as message/rfc822 under the disclaimer, its signature untouched', async () => {
    const { r, mail, out } = await apply(signed);
    assert.equal(r.kind, 'wrapped');
    assert.match(r.kind === 'wrapped' ? r.why : '', /signed or encrypted \(multipart\/signed\)/);
    assert.equal(mail.text?.trim(), FOOTER_TEXT);
    assert.match(String(mail.html), /confidential/);
    assert.equal(mail.subject, 'hello', 'the addressing fields stay on the new message');
    const attached = mail.attachments.find((a) => a.contentType === 'message/rfc822');
    assert.ok(attached, 'the original attached');
    assert.ok(attached.content.toString('latin1').includes('signed text\r\n--sig\r\nContent-Type: application/pkcs7-signature'), 'the signed structure byte for byte');
    assert.equal((out.toString('latin1').match(/^Content-Type:/gm) ?? []).length >= 4, true);
    assert.equal((out.toString('latin1').split('\r\n\r\n')[0]!.match(/^MIME-Version:/gim) ?? []).length, 1, 'one MIME-Version in the new header');
  });

  it('Ignore leaves it, Reject says why', () => {
    const { fields, body } = split(signed);
    assert.deepEqual(applyDisclaimer(fields, body, { ...FOOTER, fallback: 'Ignore' }).kind, 'ignored');
    const r = applyDisclaimer(fields, body, { ...FOOTER, fallback: 'Reject' });
    assert.equal(r.kind, 'rejected');
    const list = applyDisclaimers(fields, body, [BANNER, { ...FOOTER, fallback: 'Reject' }]);
    assert.deepEqual(list.rejected, { rule: 'Footer', why: 'the message is signed or encrypted (multipart/signed)' });
  });

  const cannot: Array<[string, string, RegExp]> = [
    ['S/MIME encrypted', `${HEAD}Content-Type: application/pkcs7-mime; smime-type=enveloped-data\nContent-Transfer-Encoding: base64\n\nMIAG\n`, /signed or encrypted/],
    ['PGP/MIME', `${HEAD}Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b\n\n--b\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--b--\n`, /signed or encrypted/],
    ['only an attachment', `${HEAD}Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERg==\n`, /no text part \(the message is application\/pdf\)/],
    ['a text attachment first', `${HEAD}Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nx\n--m--\n`, /no text part \(its first part is text\/plain, an attachment\)/],
    ['an unknown charset', `${HEAD}Content-Type: text/plain; charset=x-klingon\n\nx\n`, /character set this cannot read \(x-klingon\)/],
    ['an unknown transfer encoding', `${HEAD}Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nx\n`, /transfer encoding this cannot read/],
    ['a multipart without its closing boundary', `${HEAD}Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\n\nx\n`, /no closing boundary/],
    ['a multipart without a boundary', `${HEAD}Content-Type: multipart/mixed\n\nx\n`, /no boundary/],
  ];
  for (const [what, m, why] of cannot) {
    it(`${what}: the fallback, saying why`, async () => {
      const { fields, body } = split(m);
      const r = applyDisclaimer(fields, body, { ...FOOTER, fallback: 'Ignore' });
      assert.equal(r.kind, 'ignored');
      assert.match(r.kind === 'ignored' ? r.why : '', why);
      const w = await apply(m);
      assert.equal(w.r.kind, 'wrapped');
      assert.ok(w.mail.attachments.some((a) => a.contentType === 'message/rfc822'));
    });
  }
});

describe('random messages', () => {
  const word = fc.stringMatching(/^[A-Za-z0-9éüß]{1,12}$/);
  const text = fc.array(fc.array(word, { minLength: 1, maxLength: 8 }).map((w) => w.join(' ')), { minLength: 1, maxLength: 6 }).map((l) => l.join('\n'));
  const encodings = ['7bit', '8bit', 'base64', 'quoted-printable'] as const;
  const charsets = ['utf-8', 'iso-8859-15', 'windows-1252'] as const;
  function encode(s: string, charset: string, cte: string): string {
    // é, ü and ß are the same octets in both single-byte charsets.
    const bytes = charset === 'utf-8' ? Buffer.from(s, 'utf8') : Buffer.from(s, 'latin1');
    if (cte === 'base64') return bytes.toString('base64').replace(/(.{76})/g, '$1\n');
    if (cte === 'quoted-printable') return [...bytes].map((b) => (b >= 0x21 && b <= 0x7e && b !== 0x3d ? String.fromCharCode(b) : b === 0x0a ? '\n' : `=${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
    return bytes.toString('latin1');
  }

  it('the text of every alternative reads as before with the disclaimer after it; attachments unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(text, text, fc.constantFrom(...charsets), fc.constantFrom(...encodings), fc.constantFrom(...encodings), fc.boolean(), async (plain, html, charset, cteA, cteB, withAttachment) => {
        const alt = `Content-Type: multipart/alternative; boundary="a1"\n\n--a1\nContent-Type: text/plain; charset=${charset}\nContent-Transfer-Encoding: ${cteA}\n\n${encode(plain, charset, cteA)}\n--a1\nContent-Type: text/html; charset=${charset}\nContent-Transfer-Encoding: ${cteB}\n\n${encode(`<html><body>${html}</body></html>`, charset, cteB)}\n--a1--\n`;
        const m = withAttachment ? `${HEAD}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="m1"\n\n--m1\n${alt}\n--m1\nContent-Type: application/octet-stream; name=x.bin\nContent-Transfer-Encoding: base64\n\nAAECAwQF\n--m1--\n` : `${HEAD}MIME-Version: 1.0\n${alt}`;
        const raw = Buffer.from(crlf(m), 'latin1');
        const { r, mail } = await apply(raw);
        assert.equal(r.kind, 'inserted');
        assert.equal(mail.text?.replace(/\r\n/g, '\n').trim(), `${plain.trim()}\n\n${FOOTER_TEXT}`);
        assert.ok(String(mail.html).replace(/\r\n/g, '\n').includes(`${html}\n<div><p>This e-mail`), String(mail.html));
        assert.deepEqual(mail.attachments.map((a) => a.content.toString('hex')), withAttachment ? ['000102030405'] : []);
      }),
      { numRuns: 150 },
    );
  });
});

describe('whatever the message', () => {
  // Messages made of MIME-ish pieces in random order: headers with and without boundaries,
  // delimiters that close, do not close or belong to another boundary, encodings and charsets
  // real and not, bare bytes. applyDisclaimer runs on what senders send: it must answer, never throw.
  const piece = fc.oneof(
    fc.constantFrom(
      'Content-Type: multipart/mixed; boundary=b\r\n',
      'Content-Type: multipart/alternative; boundary="b"\r\n',
      'Content-Type: multipart/related; boundary=c\r\n',
      'Content-Type: multipart/signed; boundary=b\r\n',
      'Content-Type: text/plain; charset=utf-8\r\n',
      'Content-Type: text/html; charset=x-unknown\r\n',
      'Content-Type: text/plain; name=a.txt\r\n',
      'Content-Type: message/rfc822\r\n',
      'Content-Type: ;;;==\r\n',
      'Content-Transfer-Encoding: base64\r\n',
      'Content-Transfer-Encoding: quoted-printable\r\n',
      'Content-Transfer-Encoding: x-weird\r\n',
      'Content-Disposition: attachment\r\n',
      '\r\n',
      '--b\r\n',
      '--b--\r\n',
      '--c\r\n',
      '--c--\r\n',
      '--bb\r\n',
      '<html><body>x</body></html>\r\n',
      '=E9=\r\n',
      'aGVsbG8=\r\n',
      '</body></BODY><body>\r\n',
    ),
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a).toString('latin1')),
  );
  it('answers for random MIME-ish messages (inserted, wrapped, ignored or rejected), never throws', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), fc.constantFrom<BodyDisclaimer['fallback']>('Wrap', 'Ignore', 'Reject'), fc.constantFrom<BodyDisclaimer['location']>('Append', 'Prepend'), (pieces, fallback, location) => {
        const raw = Buffer.from(`From: <a@b.test>\r\n${pieces.join('')}`, 'latin1');
        const { fields, body } = split(raw);
        const r = applyDisclaimer(fields, body, { ...FOOTER, fallback, location }, 'Q');
        assert.ok(['inserted', 'wrapped', 'ignored', 'rejected'].includes(r.kind));
        if (r.kind === 'inserted' || r.kind === 'wrapped') assert.ok(Buffer.isBuffer(r.body));
      }),
      { numRuns: 1500 },
    );
  });
});
