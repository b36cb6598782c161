// The worker's DKIM hook: which copies are signed, that one signature serves every hop of an
// attempt, and that a signing failure sends the copy unsigned with an error line and a count.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { parseDomainPattern, type DomainPattern } from '@mailgw/config';
import { generateDkimKey, type DkimSetup } from '@mailgw/dkim';
import type { Hop } from '@mailgw/queue';
import { OutboundDkim } from '../src/dkim-signing.js';

const accepted: DomainPattern[] = [parseDomainPattern('contoso.test')].map((r) => (r.ok ? r.value : assert.fail()));
const setup = (algorithm: 'rsa' | 'ed25519', keyType: 'rsa' | 'ed25519'): DkimSetup => ({
  keys: new Map([['contoso.test', [{ domain: 'contoso.test', selector: 's1', algorithm, privateKey: generateDkimKey(keyType), file: '/k' }]]]),
  headers: ['From', 'To', 'Subject'],
  oversignHeaders: ['From'],
  canonicalization: 'relaxed/relaxed',
  acceptedDomains: accepted,
});
const hop = (...domains: string[]): Hop => ({ connector: { name: 'routes[0]' } as unknown as Hop['connector'], key: 'smtp://127.0.0.1:25', target: { kind: 'mx' } as Hop['target'], domain: null, recipients: domains.map((d, index) => ({ index, address: `x@${d}`, local: 'x', domain: d })) });
const body = Buffer.from('From: Alice <alice@contoso.test>\r\nTo: x@fabrikam.test\r\nSubject: hi\r\n\r\nhello\r\n');

function logger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) });
  return { log: pino({ level: 'debug' }, stream), lines };
}

test('a copy leaving the organisation is signed once per attempt; internal copies are not', async () => {
  const dkim = new OutboundDkim(setup('ed25519', 'ed25519'));
  const { log } = logger();
  const signFor = dkim.forMessage(body, log);
  assert.equal(await signFor(hop('contoso.test')), null, 'only accepted-domain recipients');
  assert.equal(dkim.counters.signed, 0);
  const a = await signFor(hop('fabrikam.test'));
  const b = await signFor(hop('contoso.test', 'northwind.test'));
  assert.match(a!.toString(), /^DKIM-Signature: .*d=contoso\.test/s);
  assert.equal(a, b, 'the same fields for every hop of the attempt');
  assert.deepEqual(dkim.counters, { signed: 1, failed: 0 });
  assert.equal(await new OutboundDkim(setup('rsa', 'rsa')).forMessage(Buffer.from('From: bob@fabrikam.test\r\n\r\nx\r\n'), log)(hop('fabrikam.test')), null, 'no key for the From: domain');
});

test('a signing failure sends the copy unsigned, logs an error and counts it', async () => {
  const results: string[] = [];
  const dkim = new OutboundDkim(setup('rsa', 'ed25519'), (r) => results.push(r)); // an Ed25519 key cannot sign rsa-sha256
  const { log, lines } = logger();
  assert.equal(await dkim.forMessage(body, log)(hop('fabrikam.test')), null);
  assert.deepEqual(dkim.counters, { signed: 0, failed: 1 });
  assert.deepEqual(results, ['failed'], 'reported to the metrics');
  const e = lines.find((l) => l.dkim === 'failed')!;
  assert.equal(e.level, 50);
  assert.equal(e.domain, 'contoso.test');
  assert.deepEqual(e.selectors, ['s1']);
  assert.match(String(e.msg), /sent unsigned/);
});
