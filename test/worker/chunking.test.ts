// Outbound CHUNKING and BINARYMIME (RFC 3030): a next hop offering CHUNKING gets the stored
// bytes as "BDAT <n> LAST" (no dot-stuffing, bare CR/LF untouched), one without gets DATA; a
// BINARYMIME message goes with BODY=BINARYMIME to a hop offering BINARYMIME and CHUNKING, and
// bounces with 5.6.3 (nothing sent, never converted or corrupted) from one that does not.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { parseDsn } from './helpers/dsn.js';
import { enqueue, eventually, mailbox, message, withoutDeliveryHeaders } from './helpers/gateway.js';
import { rigsPerTest, type Rig } from './helpers/rig.js';
import { startChunkingFarSide, type ChunkingFarSide, type ChunkingFarSideOptions } from './helpers/chunking-far-side.js';

const { farSide, rig, done } = rigsPerTest();
const chunkingSides: ChunkingFarSide[] = [];
afterEach(async () => {
  while (chunkingSides.length) await chunkingSides.pop()!.close();
});
async function chunkingFarSide(o: ChunkingFarSideOptions = {}): Promise<ChunkingFarSide> {
  const f = await startChunkingFarSide(o);
  chunkingSides.push(f);
  return f;
}

/** A body that DATA would have to change: lines starting with '.', a lone '.', bare CR and bare LF. */
const AWKWARD = Buffer.concat([message('dots and bare line ends'), Buffer.from('.leading dot\r\n.\r\n..two dots\r\nbare LF\nbare CR\rend without CRLF', 'latin1')]);
/** Binary octets: NUL, every byte value, no line structure. */
const BINARY = Buffer.concat([Buffer.from('From: <alice@contoso.test>\r\nSubject: binary\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'), Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256))]);

async function sentTo(farPort: number, routesRoot?: (root: string) => unknown[]): Promise<Rig> {
  const r = await rig({ routes: routesRoot ?? ((root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }, { domains: ['*'], to: `smtp://127.0.0.1:${farPort}` }]) });
  await r.start();
  return r;
}

describe('outbound CHUNKING (BDAT)', () => {
  test('a next hop offering CHUNKING gets BDAT <n> LAST and the stored bytes exactly', async () => {
    const far = await chunkingFarSide();
    const r = await sentTo(far.port);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test', 'carol@remote.test'], body: AWKWARD });
    await done(r, id);
    assert.equal(far.messages.length, 1);
    const got = far.messages[0]!;
    assert.equal(got.via, 'BDAT');
    assert.deepEqual(got.chunks, [AWKWARD.length]);
    assert.ok(got.raw.equals(AWKWARD), 'bytes identical: no dot-stuffing, bare CR/LF as stored');
    assert.deepEqual(got.rcptTo, ['bob@remote.test', 'carol@remote.test']);
    assert.ok(!far.commands.includes('DATA'), `no DATA command: ${far.commands.join(' | ')}`);
    assert.ok(far.commands.includes(`BDAT ${AWKWARD.length} LAST`));
    const p = await r.progress(id);
    assert.deepEqual(p!.recipients.map((x) => x.status), ['delivered', 'delivered']);
  });

  test('two messages in a row on one pooled session, both by BDAT', async () => {
    const far = await chunkingFarSide();
    const r = await sentTo(far.port);
    const a = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body: message('first') });
    await done(r, a);
    const b = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body: message('second') });
    await done(r, b);
    assert.deepEqual(far.messages.map((m) => m.via), ['BDAT', 'BDAT']);
    assert.ok(far.messages[1]!.raw.toString().includes('Subject: second'));
    assert.equal(far.commands.filter((c) => c.startsWith('EHLO')).length, 1, 'the session was reused');
  });

  for (const pipelining of [true, false]) {
    test(`a refused recipient${pipelining ? ' (pipelined envelope)' : ' (no PIPELINING)'}: the others go by BDAT, the refusal is that recipient's`, async () => {
      const far = await chunkingFarSide({ pipelining, rcpt: (a) => (a.startsWith('nobody') ? '550 5.1.1 no such user' : null) });
      const r = await sentTo(far.port);
      const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['nobody@remote.test', 'bob@remote.test'], body: message('partly refused') });
      await done(r, id);
      assert.equal(far.messages.length, 1);
      assert.equal(far.messages[0]!.via, 'BDAT');
      assert.deepEqual(far.messages[0]!.rcptTo, ['bob@remote.test']);
      const p = await r.progress(id);
      assert.deepEqual(p!.recipients.map((x) => [x.status, x.reply?.enhanced]), [['failed', '5.1.1'], ['delivered', '2.0.0']]);
    });
  }

  for (const [reply, status] of [['552 5.3.4 message too big', 'failed'], ['451 4.3.0 try later', 'pending']] as const) {
    test(`BDAT LAST answered ${reply.slice(0, 3)}: every recipient gets that reply, as after DATA`, async () => {
      const far = await chunkingFarSide({ last: () => reply });
      const r = await sentTo(far.port);
      const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test', 'carol@remote.test'], body: message('refused at the end') });
      await eventually(async () => {
        const p = await r.progress(id);
        return p && p.recipients.every((x) => x.status === status && x.reply) ? p : null;
      }, `both recipients ${status}`);
      const p = await r.progress(id);
      assert.deepEqual(p!.recipients.map((x) => `${x.reply?.code} ${x.reply?.enhanced}`), [reply.slice(0, 9), reply.slice(0, 9)]);
      assert.ok(far.commands.some((c) => c.startsWith('BDAT')));
    });
  }

  test('every recipient refused: no BDAT at all, each refusal kept', async () => {
    const far = await chunkingFarSide({ rcpt: () => '550 5.1.1 no such user' });
    const r = await sentTo(far.port);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['x@remote.test', 'y@remote.test'], body: message('all refused') });
    await done(r, id);
    assert.equal(far.messages.length, 0);
    assert.ok(!far.commands.some((c) => c.startsWith('BDAT') || c === 'DATA'), far.commands.join(' | '));
    const p = await r.progress(id);
    assert.deepEqual(p!.recipients.map((x) => x.reply?.enhanced), ['5.1.1', '5.1.1']);
  });

  test('a next hop without CHUNKING gets DATA (dot-stuffed on the wire, the same message after)', async () => {
    const far = await chunkingFarSide({ chunking: false });
    const r = await sentTo(far.port);
    const body = Buffer.concat([message('dots over DATA'), Buffer.from('.leading dot\r\n.\r\n..two dots\r\n')]);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body });
    await done(r, id);
    assert.equal(far.messages.length, 1);
    assert.equal(far.messages[0]!.via, 'DATA');
    assert.ok(far.messages[0]!.raw.equals(body), far.messages[0]!.raw.toString());
    assert.ok(!far.commands.some((c) => c.startsWith('BDAT')));
  });
});

describe('outbound BINARYMIME', () => {
  test('to a next hop offering BINARYMIME and CHUNKING: MAIL … BODY=BINARYMIME, BDAT, bytes identical', async () => {
    const far = await chunkingFarSide({ binaryMime: true });
    const r = await sentTo(far.port);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body: BINARY, bodyType: 'BINARYMIME' });
    await done(r, id);
    assert.equal(far.messages.length, 1);
    const got = far.messages[0]!;
    assert.equal(got.via, 'BDAT');
    assert.ok(got.mailParams.includes('BODY=BINARYMIME'), got.mailParams.join(' '));
    assert.ok(!got.mailParams.includes('BODY=8BITMIME'));
    assert.ok(got.raw.equals(BINARY));
  });

  for (const [what, start] of [
    ['CHUNKING but not BINARYMIME', () => chunkingFarSide({ binaryMime: false })],
    ['neither CHUNKING nor BINARYMIME (smtp-server)', () => farSide()],
  ] as const) {
    test(`to a next hop offering ${what}: nothing sent, 554 5.6.3 and a DSN to the sender`, async () => {
      const far = await start();
      const r = await sentTo(far.port);
      const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@remote.test'], body: BINARY, bodyType: 'BINARYMIME' });
      await done(r, id);
      assert.equal(far.messages.length, 0, 'nothing delivered');
      if ('commands' in far) assert.ok(!far.commands.some((c) => /^(MAIL|DATA|BDAT)/.test(c)), far.commands.join(' | '));
      const p = await r.progress(id);
      assert.equal(p!.recipients[0]!.status, 'failed');
      assert.equal(p!.recipients[0]!.reply!.code, 554);
      assert.equal(p!.recipients[0]!.reply!.enhanced, '5.6.3');
      const [dsnFile] = await eventually(async () => {
        const box = await mailbox(r.root, 'alice@contoso.test');
        return box.length > 0 ? box : null;
      }, 'the DSN in the sender mailbox');
      const dsn = await parseDsn(withoutDeliveryHeaders(dsnFile!).rest);
      assert.equal(dsn.recipients[0]!.status, '5.6.3');
      assert.match(dsn.mail.text ?? '', /binary|BINARYMIME/i);
    });
  }
});
