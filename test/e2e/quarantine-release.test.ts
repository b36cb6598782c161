// Quarantine and release end to end: a message a transport rule holds in quarantine reaches the
// quarantine mailbox (at a far side standing in for the Exchange behind) stamped with its
// envelope; saved from there as an administrator saves it, `mailgw quarantine release` (the
// built binary) sends it through the pickup directory to its original recipients, from its
// original sender, without the quarantine's stamps, and the rule that held it does not hold it
// again. Real Redis, a real worker, SMTP both ways.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { contentFilters } from '@mailgw/content-filter';
import type { WorkerHandle } from '@mailgw/worker';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { mailgw } from '../cli/helpers/binary.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { eventually, startWorkerTo } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide, type Received } from '../worker/helpers/far-side.js';

let redis: TestRedis;
let gw: TestGateway;
let far: FarSide;
let worker: WorkerHandle;
let dir: string;
let config: string;
let port: number;

const RULES = [{ name: 'Hold invoices', subjectContainsWords: ['invoice'], quarantine: true }];

before(async () => {
  redis = await startRedis();
  far = await startFarSide();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-quarantine-'));
  port = await freePort();
  const connector = { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 };
  const gateway = await baseGateway({ pickupDirectoryPath: path.join(dir, 'pickup'), transportRules: RULES, quarantineMailbox: 'quarantine@contoso.test' });
  // The administrator's copy of the configuration, as the command reads it.
  config = path.join(dir, 'gateway.yaml');
  writeFileSync(config, stringify({ ...gateway, pickupDirectoryPath: './pickup' }));
  mkdirSync(path.join(dir, 'connectors.d'));
  writeFileSync(path.join(dir, 'connectors.d', '10-internet.yaml'), stringify(connector));
  gw = await startGateway({
    redisUrl: redis.url,
    gateway,
    connectors: { internet: connector },
    filtersFor: (p) => contentFilters(p.config.gateway),
    quarantineMailbox: { local: 'quarantine', domain: 'contoso.test' },
  });
  worker = await startWorkerTo(far.port, { dataDir: gw.dataDir, redisUrl: redis.url });
});

after(async () => {
  await worker?.close({ timeoutMs: 5000 });
  await gw?.close();
  await far?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const withSubject = (subject: string) => (m: Received) => m.raw.toString('utf8').includes(`\r\nSubject: ${subject}\r\n`);

async function send(subject: string, from: string, to: string[], extra = ''): Promise<void> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  try {
    await c.ehlo();
    const t = await c.transaction(from, to, `From: Billing <${from}>\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\n${extra}\r\nPlease pay.\r\n`);
    assert.equal(t.end?.code, 250, t.end?.last);
  } finally {
    await c.quit();
  }
}

describe('quarantine release', () => {
  it('held for the quarantine mailbox with its envelope stamped; released to the original recipients, not held again', async () => {
    await send('invoice 42', 'billing@example.net', ['alice@contoso.test', 'bob@contoso.test']);
    const held = await eventually(() => far.messages.find(withSubject('invoice 42')), 'the quarantined message at the quarantine mailbox');
    assert.deepEqual(held.rcptTo, ['quarantine@contoso.test']);
    const text = held.raw.toString('utf8');
    assert.match(text, /\r\nX-Mailgw-Quarantine-Recipients: alice@contoso\.test, bob@contoso\.test\r\n/);
    assert.match(text, /\r\nX-Mailgw-Quarantine-Sender: <billing@example\.net>\r\n/);
    assert.match(text, /\r\nX-Mailgw-Quarantine-Reason: filter transport-rules: .*Hold invoices/);

    // Saved from the mailbox as an administrator saves it (with the Return-Path its delivery added).
    const saved = path.join(dir, 'invoice-42.eml');
    writeFileSync(saved, Buffer.concat([Buffer.from('Return-Path: <billing@example.net>\r\n'), held.raw]));
    const dry = mailgw(['quarantine', 'release', '--config', config, '--dry-run', saved]);
    assert.equal(dry.code, 0, dry.err);
    assert.equal(dry.out, `${saved}: would be released from <billing@example.net> (X-Mailgw-Quarantine-Sender) to alice@contoso.test, bob@contoso.test\n  held: filter transport-rules: rule "Hold invoices" quarantined it\n`);
    assert.deepEqual(readdirSync(path.join(dir, 'pickup')), [], 'a dry run writes nothing');

    const r = mailgw(['quarantine', 'release', '--config', config, saved]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^\S+invoice-42\.eml: released from <billing@example\.net> \(X-Mailgw-Quarantine-Sender\) to alice@contoso\.test, bob@contoso\.test; in the pickup directory as \S+\.eml\n$/);
    await gw.listeners.pickupNow();
    const released = await eventually(() => far.messages.find((m) => withSubject('invoice 42')(m) && !m.rcptTo.includes('quarantine@contoso.test')), 'the released message at its recipients');
    assert.equal(released.mailFrom, 'billing@example.net');
    await eventually(() => far.messages.filter((m) => withSubject('invoice 42')(m) && !m.rcptTo.includes('quarantine@contoso.test')).flatMap((m) => m.rcptTo).length === 2, 'both recipients');
    assert.deepEqual(far.messages.filter((m) => withSubject('invoice 42')(m) && !m.rcptTo.includes('quarantine@contoso.test')).flatMap((m) => m.rcptTo).sort(), ['alice@contoso.test', 'bob@contoso.test']);
    const out = released.raw.toString('utf8');
    assert.doesNotMatch(out, /X-Mailgw-|X-MS-Exchange-Organization-Quarantine|^Return-Path:/im);
    assert.match(out, /\r\nFrom: Billing <billing@example\.net>\r\n/);
    assert.match(out, /\r\n\r\nPlease pay\.\r\n$/);
    assert.ok(gw.logs.some((l) => l.msg === 'released from quarantine: not held again'), 'the log says the rule was not applied again');
    // The rule still holds a new message.
    assert.equal(far.messages.filter((m) => m.rcptTo.includes('quarantine@contoso.test')).length, 1);
  });

  it('--to releases to one original recipient only; a forged quarantine stamp from the sender never reaches the mailbox', async () => {
    // The sender tries to choose who gets its message when it is released.
    await send('invoice 43', 'billing@example.net', ['alice@contoso.test', 'bob@contoso.test'], 'X-Mailgw-Quarantine-Recipients: mallory@example.org\r\n');
    const held = await eventually(() => far.messages.find(withSubject('invoice 43')), 'the quarantined message');
    assert.equal((held.raw.toString('utf8').match(/X-Mailgw-Quarantine-Recipients:/g) ?? []).length, 1, 'only mailgw\'s stamp');
    const saved = path.join(dir, 'invoice-43.eml');
    writeFileSync(saved, held.raw);
    const other = mailgw(['quarantine', 'release', '--config', config, '--to', 'mallory@example.org', saved]);
    assert.equal(other.code, 65);
    assert.match(other.err, /not released: mallory@example\.org is not one of the message's original recipients \(alice@contoso\.test, bob@contoso\.test\)/);
    const r = mailgw(['quarantine', 'release', '--config', config, '--to', 'bob@contoso.test', saved]);
    assert.equal(r.code, 0, r.err);
    await gw.listeners.pickupNow();
    const released = await eventually(() => far.messages.find((m) => withSubject('invoice 43')(m) && m.rcptTo.includes('bob@contoso.test')), 'bob\'s copy');
    assert.deepEqual(released.rcptTo, ['bob@contoso.test']);
  });

  it('what it cannot release, it says, with an exit code; nothing is written', () => {
    const plain = path.join(dir, 'plain.eml');
    writeFileSync(plain, 'From: a@example.net\r\nSubject: hello\r\n\r\nhi\r\n');
    const r = mailgw(['quarantine', 'release', '--config', config, plain, path.join(dir, 'missing.eml')]);
    assert.equal(r.code, 66, 'the worst of the files: one that cannot be read');
    assert.match(r.err, /plain\.eml: not released: no X-Mailgw-Quarantine-Recipients field: not a message mailgw put in quarantine/);
    assert.match(r.err, /missing\.eml: ENOENT/);
    const none = mailgw(['quarantine', 'release', '--config', config]);
    assert.equal(none.code, 64);
    assert.match(none.err, /release takes the saved message files/);
    const sub = mailgw(['quarantine', 'list', '--config', config]);
    assert.equal(sub.code, 64);
    assert.match(sub.err, /unknown subcommand "list"/);
    assert.deepEqual(readdirSync(path.join(dir, 'pickup')), []);
  });

  it('from standard input (-)', async () => {
    await send('invoice 44', 'billing@example.net', ['alice@contoso.test']);
    const held = await eventually(() => far.messages.find(withSubject('invoice 44')), 'the quarantined message');
    const r = mailgw(['quarantine', 'release', '--config', config, '-'], held.raw.toString('latin1'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^standard input: released from <billing@example\.net>/);
    await gw.listeners.pickupNow();
    await eventually(() => far.messages.find((m) => withSubject('invoice 44')(m) && m.rcptTo.includes('alice@contoso.test')), 'alice\'s copy');
  });
});
