// The filter pipeline at DATA and the header firewall, over real SMTP into Redis: filters see
// the message as received (header, then the body as it streams); their outcomes become the
// answer to DATA as the policy decides (reject 550, tempfail 451, discard 250 with nothing
// stored, a failed filter's failure action); their header edits and body replacement are what
// is stored. The filters here are small real implementations of the MessageFilter contract.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseHeaderFields, type FilterOutcome, type HeaderField, type MessageFilter } from '@mailgw/mail';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf } from './helpers/smtp-client.js';

/** What the probe filter saw of each message, by Subject. */
const seen = new Map<string, { fields: string[]; body: string; chunks: number }>();

/** Answers by the Subject: "reject", "tempfail", "discard", "throw", "hang", "replace", "stamp". */
const probe: MessageFilter = {
  name: 'probe',
  antiSpam: true,
  onFailure: 'tempfail',
  begin() {
    let fields: readonly HeaderField[] = [];
    const body: Buffer[] = [];
    let aborted = false;
    return {
      header(f) {
        fields = f;
      },
      body(chunk) {
        body.push(chunk);
      },
      abort() {
        aborted = true;
      },
      async end(): Promise<FilterOutcome> {
        const subject = fields.find((f) => f.name === 'subject')?.raw.toString('latin1').slice(9).trim() ?? '';
        seen.set(subject, { fields: fields.map((f) => f.name), body: Buffer.concat(body).toString('latin1'), chunks: body.length });
        const base = { filter: 'probe', headers: [] as FilterOutcome['headers'] };
        switch (subject) {
          case 'reject':
            return { ...base, verdict: 'reject', reason: 'test says reject' };
          case 'reject-own':
            return { ...base, verdict: 'reject', reply: { code: 554, enhanced: '5.7.0', text: 'Probe says no' }, reason: 'own reply' };
          case 'tempfail':
            return { ...base, verdict: 'tempfail', reason: 'test says later' };
          case 'discard':
            return { ...base, verdict: 'discard', reason: 'test says drop' };
          case 'quarantine':
            return { ...base, verdict: 'quarantine', reason: 'test says hold' };
          case 'throw':
            throw new Error('probe exploded');
          case 'hang':
            return new Promise<FilterOutcome>((resolve) => {
              const t = setInterval(() => aborted && (clearInterval(t), resolve({ ...base, verdict: 'accept', reason: 'too late' })), 20);
            });
          case 'replace':
            return { ...base, verdict: 'accept', replaceBody: Buffer.from('replaced body\r\n'), reason: 'replaced' };
          default:
            return {
              ...base,
              verdict: 'accept',
              headers: [
                { op: 'add', name: 'Authentication-Results', value: 'mx.contoso.test; spf=pass smtp.mailfrom=example.net', top: true },
                { op: 'add', name: 'X-Spam-Status', value: 'No, score=0.1' },
                { op: 'change', name: 'Subject', index: 1, value: '[probed] stamp' },
                { op: 'remove', name: 'X-Remove-Me' },
              ],
              reason: 'clean',
            };
        }
      },
    };
  },
};

/** Not anti-spam (a signing milter, say): runs even for sessions that bypass anti-spam. */
const signer: MessageFilter = {
  name: 'signer',
  antiSpam: false,
  onFailure: 'accept',
  begin() {
    return {
      header: () => undefined,
      body: () => undefined,
      abort: () => undefined,
      end: async () => ({ filter: 'signer', verdict: 'accept', headers: [{ op: 'add', name: 'X-Signed', value: 'yes' }], reason: 'signed' }),
    };
  },
};

let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  const common = { bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 };
  gw = await startGateway({
    redisUrl: redis.url,
    filters: [probe, signer],
    filterTimeoutMs: 500,
    quarantineMailbox: { local: 'quarantine', domain: 'contoso.test' },
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', ...common },
      // Anonymous sessions here hold Bypass-Anti-Spam (a partner-style connector).
      bypass: { name: 'Bypass', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.50'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] },
      // Anonymous sessions here may keep the organisation headers (an explicit grant).
      orgHeaders: { name: 'Org Headers', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.51'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Accept-Headers-Organization', 'ms-Exch-Accept-Headers-Forest'] }] },
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

async function send(subject: string, opts: { from?: string; extra?: string; body?: string } = {}): Promise<{ reply: string; id: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: opts.from ?? '127.0.0.1' });
  await c.ehlo('sender.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@example.net>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(`Subject: ${subject}\r\n${opts.extra ?? ''}From: <sender@example.net>\r\n\r\n${opts.body ?? 'line one\r\nline two\r\n'}.\r\n`);
  const r = await c.read();
  await c.quit();
  return { reply: r.last, id: r.code === 250 ? queueIdOf(r) : null };
}

describe('message filters at DATA', () => {
  it('a clean message: the filter saw it as received, and its header edits are what is stored', async () => {
    const r = await send('stamp', { extra: 'X-Remove-Me: please\r\n' });
    assert.match(r.reply, /^250 2\.6\.0 /);
    assert.deepEqual(seen.get('stamp')!.fields, ['subject', 'x-remove-me', 'from']);
    assert.equal(seen.get('stamp')!.body, 'line one\r\nline two\r\n');
    const body = (await gw.body(r.id!))!.toString('latin1');
    const fields = parseHeaderFields(Buffer.from(body.slice(0, body.indexOf('\r\n\r\n') + 2), 'latin1')).map((f) => f.name);
    // Authentication-Results on top, then our Received, then the client's fields as edited.
    assert.deepEqual(fields.slice(0, 2), ['authentication-results', 'received']);
    assert.match(body, /\r\nSubject: \[probed\] stamp\r\n/);
    assert.doesNotMatch(body, /X-Remove-Me/);
    assert.match(body, /\r\nX-Spam-Status: No, score=0\.1\r\n/);
    assert.match(body, /\r\nX-Signed: yes\r\n/);
    assert.ok(body.endsWith('\r\n\r\nline one\r\nline two\r\n'));
    const job = (await gw.job(r.id!))!;
    assert.equal(job.data.size, Buffer.byteLength(body, 'latin1'), 'the job counts the header written at the commit');
  });

  it('reject: 550 5.7.1 in Exchange words (or the filter\'s own 5xx), and nothing stored', async () => {
    const before = await gw.stored();
    assert.equal((await send('reject')).reply, '550 5.7.1 Message rejected as spam by Content Filtering.');
    assert.equal((await send('reject-own')).reply, '554 5.7.0 Probe says no');
    assert.deepEqual(await gw.stored(), before);
    // The log says who sent what and why it was refused.
    const lines = gw.logs.filter((l) => l.msg === 'message rejected').slice(-2);
    assert.deepEqual(
      lines.map((l) => [l.level, l.from, l.rcpts, l.reply]),
      [
        [30, 'sender@example.net', 1, '550 5.7.1 Message rejected as spam by Content Filtering.'],
        [30, 'sender@example.net', 1, '554 5.7.0 Probe says no'],
      ],
    );
    assert.ok(lines.every((l) => typeof l.why === 'string' && l.why.length > 0 && typeof l.reason === 'string'), JSON.stringify(lines));
  });

  it('tempfail, a filter that throws and one that never answers: 451 (failure action tempfail), nothing stored', async () => {
    const before = await gw.stored();
    assert.equal((await send('tempfail')).reply, '451 4.7.1 Message deferred by content filtering, please try again later');
    assert.equal((await send('throw')).reply, '451 4.7.1 Message deferred by content filtering, please try again later');
    assert.equal((await send('hang')).reply, '451 4.7.1 Message deferred by content filtering, please try again later');
    assert.deepEqual(await gw.stored(), before);
  });

  it('discard: the client gets 250, nothing is stored', async () => {
    const before = await gw.stored();
    const r = await send('discard');
    assert.match(r.reply, /^250 2\.6\.0 /);
    assert.deepEqual(await gw.stored(), before);
    assert.ok(gw.logs.some((l) => l.msg === 'message discarded by a filter'));
  });

  it('quarantine: 250, stored for the quarantine mailbox instead of the recipients, which are stamped on it', async () => {
    const r = await send('quarantine');
    assert.match(r.reply, /^250 2\.6\.0 /);
    const job = (await gw.job(r.id!))!;
    assert.deepEqual(job.data.rcptTo.map((x) => x.address), ['quarantine@contoso.test']);
    const body = (await gw.body(r.id!))!.toString('latin1');
    assert.match(body, /\r\nX-MS-Exchange-Organization-Quarantine: true\r\n/);
    assert.match(body, /\r\nX-Mailgw-Quarantine-Recipients: alice@contoso\.test\r\n/);
    assert.ok(gw.logs.some((l) => l.msg === 'message quarantined'));
  });

  it('a replaced body is stored instead of the one received, under the same header', async () => {
    const r = await send('replace', { body: 'x'.repeat(300_000) + '\r\n' });
    const body = (await gw.body(r.id!))!.toString('latin1');
    assert.ok(body.endsWith('\r\n\r\nreplaced body\r\n'), body.slice(-60));
    assert.equal((await gw.job(r.id!))!.data.size, Buffer.byteLength(body, 'latin1'));
  });

  it('a large message streams to the filter in chunks and is stored whole, header apart from the body', async () => {
    const big = ('y'.repeat(998) + '\r\n').repeat(2000);
    const r = await send('stamp-big', { body: big });
    assert.match(r.reply, /^250 /);
    assert.ok(seen.get('stamp-big')!.chunks > 1);
    const body = (await gw.body(r.id!))!.toString('latin1');
    assert.ok(body.endsWith(`\r\n\r\n${big}`));
    assert.match(body, /^Authentication-Results: mx\.contoso\.test; spf=pass/);
  });

  it('Bypass-Anti-Spam: the anti-spam filter does not run; one that is not anti-spam still does', async () => {
    const r = await send('reject', { from: '127.0.0.50', body: 'bypass\r\n' });
    assert.match(r.reply, /^250 /);
    const body = (await gw.body(r.id!))!.toString('latin1');
    assert.match(body, /\r\nX-Signed: yes\r\n/);
    assert.equal(seen.get('reject')!.body.includes('bypass'), false, 'the probe never saw this message');
  });
});

describe('header firewall', () => {
  const forged = [
    'X-MS-Exchange-Organization-AuthAs: Internal\r\n',
    'X-MS-Exchange-Organization-SCL: -1\r\n',
    'x-ms-exchange-forest-RulesExecuted: yes\r\n',
    'Authentication-Results: mx.contoso.test; dkim=pass header.d=contoso.test\r\n',
    'Authentication-Results: mx.example.net; spf=pass\r\n',
    // mailgw's own stamps, forged: "domain secured", and recipients for a release from quarantine.
    'X-Mailgw-Domain-Secured: partner.test\r\n',
    'X-Mailgw-Quarantine-Recipients: ceo@contoso.test\r\n',
  ].join('');

  it('an anonymous Internet client loses every X-MS-Exchange-Organization/Forest header and A-R claiming our authserv-id', async () => {
    const r = await send('firewall', { extra: forged });
    const body = (await gw.body(r.id!))!.toString('latin1');
    assert.doesNotMatch(body, /X-MS-Exchange-Organization-/i);
    assert.doesNotMatch(body, /x-ms-exchange-forest-/i);
    assert.doesNotMatch(body, /X-Mailgw-/i);
    assert.doesNotMatch(body, /Authentication-Results: mx\.contoso\.test; dkim=pass/);
    // Another ADMD's results stay (RFC 8601 §5 is about our own authserv-id).
    assert.match(body, /Authentication-Results: mx\.example\.net; spf=pass/);
    // The filters still saw what the client sent.
    assert.ok(seen.get('firewall')!.fields.includes('x-ms-exchange-organization-authas'));
  });

  it('with ms-Exch-Accept-Headers-Organization/-Forest granted, they are kept', async () => {
    const r = await send('firewall-kept', { from: '127.0.0.51', extra: forged });
    const body = (await gw.body(r.id!))!.toString('latin1');
    assert.match(body, /X-MS-Exchange-Organization-AuthAs: Internal/);
    assert.match(body, /x-ms-exchange-forest-RulesExecuted: yes/);
    assert.match(body, /X-Mailgw-Domain-Secured: partner\.test/);
    assert.match(body, /Authentication-Results: mx\.contoso\.test; dkim=pass/);
  });
});
