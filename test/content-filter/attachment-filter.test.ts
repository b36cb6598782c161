// Exchange's Edge attachment filtering over real SMTP into Redis: with the default entries a
// program attached however its name is written (RFC 2231, an encoded word, a trailing dot, a
// path), a part of a blocked content type without a name, and programs inside attached and
// inline messages are refused with 550 5.7.1 and nothing is stored; harmless attachments pass;
// an exception connector's mail is not read; a session holding Bypass-Anti-Spam is still
// filtered. A second gateway with its own entries and SilentDelete: 250, delivered to nobody.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { sendMessage } from './helpers/send-message.js';

const REJECTED = '550 5.7.1 Message rejected due to unacceptable attachments';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

async function gateway(attachmentFilter: Record<string, unknown>): Promise<{ gw: TestGateway; port: number }> {
  const port = await freePort();
  const common = { bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 };
  const connectors = {
    internet: { name: 'Internet', usage: 'Internet', ...common },
    trusted: { name: 'Trusted Apps', usage: 'Custom', ...common, remoteIPRanges: ['127.0.0.70'], permissionGroups: ['AnonymousUsers'] },
    bypass: { name: 'Bypass', usage: 'Custom', ...common, remoteIPRanges: ['127.0.0.71'], permissionGroups: ['AnonymousUsers'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] },
  };
  const g = await baseGateway({ attachmentFilter });
  const filters = contentFilters(compile(g, connectors).config.gateway);
  return { gw: await startGateway({ redisUrl: redis.url, gateway: g, connectors, filters }), port };
}

/** A multipart/mixed message: a text part, then each part given as its header lines and body (a boundary per message, as mail clients make them). */
let boundaries = 0;
function mime(subject: string, parts: Array<{ head: string; body: string }>): string {
  const B = `b0undary-${++boundaries}`;
  return (
    `From: <sender@example.net>\r\nTo: <alice@contoso.test>\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${B}"\r\n\r\n` +
    `--${B}\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n` +
    parts.map((p) => `--${B}\r\n${p.head}\r\n\r\n${p.body}\r\n`).join('') +
    `--${B}--\r\n`
  );
}
const file = (name: string, type = 'application/octet-stream') => ({ head: `Content-Type: ${type}\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64`, body: Buffer.from(`MZ\x90\x00 not really a program: ${name}`).toString('base64') });

const send = sendMessage;

describe('attachment filter, default entries, action Reject', () => {
  let gw: TestGateway;
  let port: number;
  before(async () => {
    ({ gw, port } = await gateway({ exceptionConnectors: ['Trusted Apps'] }));
  });
  after(() => gw?.close());

  it('harmless attachments pass and are stored as sent', async () => {
    const r = await send(port, mime('report', [file('report.pdf', 'application/pdf'), file('photo.JPG', 'image/jpeg'), file('notes.txt.zip', 'application/zip')]));
    assert.match(r.reply, /^250 2\.6\.0 /);
    assert.ok(await gw.body(r.id!));
  });

  it('a program is refused with 550 5.7.1 however its name is written; nothing is stored', async () => {
    const before = await gw.stored();
    const names: Array<[string, { head: string; body: string }]> = [
      ['plain', file('setup.exe')],
      ['upper case', file('INVOICE.EXE')],
      ['RFC 2231', { head: "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.exe", body: 'AAAA' }],
      ['encoded word in the type\'s name', { head: 'Content-Type: application/octet-stream; name="=?UTF-8?B?ZmFjdHVyZS5zY3I=?="', body: 'AAAA' }],
      ['trailing dot and space', file('invoice.pdf.exe. ')],
      ['RFC 2231 continuations', { head: "Content-Type: application/octet-stream\r\nContent-Disposition: attachment;\r\n filename*0*=utf-8''ev;\r\n filename*1*=il%2E;\r\n filename*2=\"exe\"", body: 'AAAA' }],
      ['a NUL in the name', { head: "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''evil.exe%00.pdf", body: 'AAAA' }],
      ['a path', file('C:\\Users\\me\\run.bat')],
      ['a script', file('update.vbs', 'text/plain')],
    ];
    for (const [what, part] of names) assert.equal((await send(port, mime(what, [part]))).reply, REJECTED, what);
    assert.deepEqual(await gw.stored(), before);
    const line = gw.logs.find((l) => l.msg === 'message rejected' && String(l.why).includes('résumé.exe'));
    assert.match(String(line?.why), /filter attachment-filter: "résumé\.exe" \(application\/octet-stream\) matches FileName:\*\.exe: rejected \(action Reject\)/);
    assert.equal(line?.reason, 'content-rejected');
  });

  it('a part of a blocked content type is refused without a file name', async () => {
    assert.equal((await send(port, mime('typed', [{ head: 'Content-Type: application/x-msdownload\r\nContent-Transfer-Encoding: base64', body: 'TVo=' }]))).reply, REJECTED);
  });

  it('a program inside an attached message, and inside an inline one, is found', async () => {
    const inner = mime('inner', [file('payload.exe')]);
    const attached = { head: 'Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename="forwarded.eml"', body: inner };
    assert.equal((await send(port, mime('attached message', [attached]))).reply, REJECTED);
    const inline = { head: 'Content-Type: message/rfc822', body: inner };
    assert.equal((await send(port, mime('inline message', [inline]))).reply, REJECTED);
    const twice = { head: 'Content-Type: message/rfc822\r\nContent-Disposition: attachment', body: mime('middle', [attached]) };
    assert.equal((await send(port, mime('two levels', [twice]))).reply, REJECTED);
    // message/global (RFC 6532: an internationalised message), which the splitter leaves whole.
    const global = { head: 'Content-Type: message/global\r\nContent-Disposition: attachment; filename="forwarded.u8msg"', body: inner };
    assert.equal((await send(port, mime('global message', [global]))).reply, REJECTED);
    // Encoded, as RFC 2046 forbids for message/rfc822 and some clients do anyway.
    const encoded = { head: 'Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: base64', body: Buffer.from(inner).toString('base64').replace(/(.{76})/g, '$1\r\n') };
    assert.equal((await send(port, mime('encoded attached message', [encoded]))).reply, REJECTED);
    const harmless = { ...encoded, body: Buffer.from(mime('inner', [file('a.pdf', 'application/pdf')])).toString('base64').replace(/(.{76})/g, '$1\r\n') };
    assert.match((await send(port, mime('encoded harmless message', [harmless]))).reply, /^250 /);
  });

  it('a one-part message has no parts in its body: MIME-looking text there is text, as for every MIME reader', async () => {
    const fake = `From: <a@example.net>\r\nSubject: one part\r\nContent-Type: text/plain\r\n\r\n--b\r\nContent-Type: application/x-msdownload\r\nContent-Disposition: attachment; filename="evil.exe"\r\n\r\nTVo=\r\n--b--\r\n`;
    const r = await send(port, fake);
    assert.match(r.reply, /^250 /);
    assert.ok((await gw.body(r.id!))!.toString('latin1').includes('filename="evil.exe"'), 'stored as sent');
  });

  it('a program after megabytes of other parts is found (the structure is read as DATA streams in)', async () => {
    const big = { head: 'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="big.pdf"\r\nContent-Transfer-Encoding: base64', body: Buffer.alloc(3 * 1024 * 1024, 7).toString('base64').replace(/(.{76})/g, '$1\r\n') };
    assert.equal((await send(port, mime('big', [big, file('late.cmd')]))).reply, REJECTED);
  });

  it('malformed MIME is read as far as it goes: an unclosed multipart, a boundary never seen, junk octets pass', async () => {
    const unclosed = `From: <a@example.net>\r\nSubject: unclosed\r\nContent-Type: multipart/mixed; boundary="nope"\r\n\r\n--nope\r\nContent-Type: text/plain\r\n\r\nno end\r\n`;
    const never = `From: <a@example.net>\r\nSubject: never\r\nContent-Type: multipart/mixed; boundary="missing"\r\n\r\njust text\r\n`;
    const junk = `From: <a@example.net>\r\nSubject: junk\r\nContent-Type: ;;;==\r\nContent-Disposition: attachment; filename*=utf-8''%ZZ%\r\n\r\n\x01\x02\xff\r\n`;
    for (const m of [unclosed, never, junk]) assert.match((await send(port, m)).reply, /^250 /, m.slice(0, 60));
    // ... and a program in an unclosed multipart is still found.
    assert.equal((await send(port, mime('unclosed with a program', [file('x.exe')]).replace(/--b0undary-\d+--\r\n$/, ''))).reply, REJECTED);
  });

  it('a structure past the reader\'s limits (over 1,000 parts) is its failure: 451, nothing stored, the log says why', async () => {
    const before = await gw.stored();
    const many = Array.from({ length: 1001 }, (_, i) => ({ head: 'Content-Type: text/plain', body: `part ${i}` }));
    assert.equal((await send(port, mime('too many parts', many))).reply, '451 4.7.1 Message deferred by content filtering, please try again later');
    assert.deepEqual(await gw.stored(), before);
    assert.ok(gw.logs.some((l) => l.msg === 'filter failed' && l.level === 40 && l.failureAction === 'tempfail' && l.filter === 'attachment-filter' && /the MIME structure could not be read/.test(String(l.reason))));
  });

  it('an exception connector\'s mail is not read; Bypass-Anti-Spam does not skip the filter', async () => {
    const r = await send(port, mime('from the app server', [file('tool.exe')]), '127.0.0.70');
    assert.match(r.reply, /^250 /);
    assert.equal((await send(port, mime('bypass', [file('tool.exe')]), '127.0.0.71')).reply, REJECTED);
  });
});

describe('attachment filter, own entries, action SilentDelete', () => {
  let gw: TestGateway;
  let port: number;
  before(async () => {
    ({ gw, port } = await gateway({ action: 'SilentDelete', entries: ['FileName:*.docm', { type: 'ContentType', name: 'Application/Zip' }, 'FileName:report-??.xls'] }));
  });
  after(() => gw?.close());

  it('a match is answered 250 and delivered to nobody; the log says which entry', async () => {
    const before = await gw.stored();
    for (const [what, part] of [['macro', file('budget.docm')], ['zip', file('archive.bin', 'application/zip')], ['wildcard ?', file('REPORT-07.xls')]] as const) {
      assert.match((await send(port, mime(what, [part]))).reply, /^250 2\.6\.0 /, what);
    }
    assert.deepEqual(await gw.stored(), before);
    const line = gw.logs.find((l) => l.msg === 'message discarded by a filter' && String(l.why).includes('budget.docm'));
    assert.match(String(line?.why), /matches FileName:\*\.docm: deleted \(action SilentDelete\)/);
  });

  it('the own entries replace the default list: a program passes, a near miss of the pattern too', async () => {
    assert.match((await send(port, mime('exe', [file('setup.exe')]))).reply, /^250 /);
    assert.match((await send(port, mime('near miss', [file('report-123.xls')]))).reply, /^250 /);
  });
});

describe('attachment filter, action Strip', () => {
  let gw: TestGateway;
  let port: number;
  before(async () => {
    ({ gw, port } = await gateway({ action: 'Strip', adminMessage: 'Removed by the gateway: ask the helpdesk.' }));
  });
  after(() => gw?.close());

  const stored = async (id: string) => (await gw.body(id))!.toString('latin1');

  it('delivers the message with each matching attachment replaced by a text file holding the adminMessage', async () => {
    const pdf = file('report.pdf', 'application/pdf');
    const r = await send(port, mime('strip', [pdf, file('Setup.exe'), file('run.bat')]));
    assert.match(r.reply, /^250 2\.6\.0 /);
    const text = await stored(r.id!);
    assert.ok(text.includes(`filename="report.pdf"`) && text.includes(pdf.body), 'the harmless attachment is untouched');
    assert.ok(!text.includes(file('Setup.exe').body), 'the program is gone');
    const replaced = text.match(/Content-Type: text\/plain; charset=utf-8[^]*?\r\n\r\n([^]*?)\r\n--/g) ?? [];
    assert.equal(replaced.length, 2, text);
    for (const name of ['setup.exe.txt', 'run.bat.txt']) assert.match(text, new RegExp(`Content-Disposition: attachment; filename=${name.replace(/\./g, '\\.')}`));
    // Base64 parts stay base64: the text file decodes to the adminMessage.
    assert.ok(text.includes(Buffer.from('Removed by the gateway: ask the helpdesk.\r\n').toString('base64')), text);
    assert.match(text, /^Content-Type: multipart\/mixed; boundary="b0undary-\d+"\r\n/m, 'the header is the one that came');
    assert.equal((await gw.job(r.id!))!.data.size, Buffer.byteLength(text, 'latin1'));
    const line = gw.logs.find((l) => l.msg === 'filter outcome' && String(l.reason).includes('Setup.exe'));
    assert.match(String(line?.reason), /2 parts removed \(action Strip\)/);
    assert.equal(line?.level, 30, 'a stripped attachment is logged at info');
    assert.equal(line?.queueId, r.id);
  });

  it('an attached message holding a program goes whole; the rest of the message stays', async () => {
    const attached = { head: 'Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename="forwarded.eml"', body: mime('inner', [file('payload.exe')]) };
    const r = await send(port, mime('forwarded', [attached, file('ok.pdf', 'application/pdf')]));
    assert.match(r.reply, /^250 /);
    const text = await stored(r.id!);
    assert.ok(!text.includes('payload.exe'), 'nothing of the attached message is left');
    assert.match(text, /filename=forwarded\.eml\.txt/);
    assert.match(text, /Removed by the gateway: ask the helpdesk\./);
    assert.ok(text.includes('filename="ok.pdf"'));
  });

  it('a message that is itself of a blocked type has nothing to remove: refused as with Reject', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo('sender.test');
    await c.cmd('MAIL FROM:<sender@example.net>');
    await c.cmd('RCPT TO:<alice@contoso.test>');
    await c.cmd('DATA');
    c.write('From: <sender@example.net>\r\nSubject: bare\r\nContent-Type: application/x-msdownload\r\nContent-Transfer-Encoding: base64\r\n\r\nTVo=\r\n.\r\n');
    assert.equal((await c.read()).last, REJECTED);
    await c.quit();
  });

  it('a message without a match is stored byte for byte as sent', async () => {
    const message = mime('clean', [file('report.pdf', 'application/pdf')]);
    const r = await send(port, message);
    assert.ok((await stored(r.id!)).endsWith(message.slice(message.indexOf('\r\n\r\n') + 4)));
  });
});
