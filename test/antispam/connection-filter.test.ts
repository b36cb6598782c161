// Connection filtering and sender filtering over real SMTP into Redis, with the block lists
// served by the loopback fixture DNS server: a listed client is refused 550 5.7.1 at RCPT
// (Exchange's words, or the provider's rejectionResponse) but still reaches the bypassed
// recipients; the IP Allow List, an allow list provider and Bypass-Anti-Spam override; a
// provider that does not answer is skipped with a log line; the greeting never waits for the
// lookups. Sender filtering refuses at MAIL (554 5.1.0) or stamps under StampStatus.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { cachingResolver, ipListLookup, nodeUpstream } from '@mailgw/antispam';
import { keySpace } from '@mailgw/queue';
import { tempAgentLog } from '../harness/agent-log.js';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

let dns: TestDns;
let redis: TestRedis;
let cache: Redis;
let gw: TestGateway;
let stamping: TestGateway;
let port = 0;
let stampPort = 0;
const LOOKUP_TIMEOUT_MS = 600;

const BLOCKED = 'Recipient not authorized, your IP has been found on a block list';
// The agent log (Exchange's Get-AgentLog), written as mailgw start writes it: through the observer.
const agentLog = tempAgentLog();
const agentEntries = () => agentLog.entries();

before(async () => {
  redis = await startRedis();
  cache = new Redis(redis.url);
  dns = await startDnsServer({
    // 127.0.0.2 (and the allow-listed ones) are on the block list; 127.0.0.3 on the bitmask list only.
    '2.0.0.127.bl.test': { A: ['127.0.0.2'] },
    '4.0.0.127.bl.test': { A: ['127.0.0.2'] },
    '5.0.0.127.bl.test': { A: ['127.0.0.2'] },
    '6.0.0.127.bl.test': { A: ['127.0.0.2'] },
    '50.0.0.127.bl.test': { A: ['127.0.0.2'] },
    '3.0.0.127.bits.test': { A: ['127.0.0.10'] },
    // A bitmask list answer without the masked bit: not listed.
    '7.0.0.127.bits.test': { A: ['127.0.0.1'] },
    '5.0.0.127.allow.test': { A: ['127.0.0.1'] },
    // The IPv6 loopback, nibble-reversed (RFC 5782 section 2.4).
    [`${'1.'}${'0.'.repeat(31)}bl.test`]: { A: ['127.0.0.2'] },
  });
  // The slow list never answers 127.0.0.6.
  dns.silence('6.0.0.127.slow.test');
  const resolver = cachingResolver(nodeUpstream({ servers: [dns.server], timeoutMs: LOOKUP_TIMEOUT_MS }), { store: cache, keys: keySpace('{mailgw}') }, { minTtlMs: 0, maxTtlMs: 3_600_000, negativeTtlMs: 60_000, defaultTtlMs: 300_000 });
  port = await freePort();
  stampPort = await freePort();
  const common = { tarpitInterval: 0 };
  const lists = {
    dns: { servers: [dns.server], timeout: `${LOOKUP_TIMEOUT_MS}ms` },
    ipBlockListProviders: [
      { name: 'Slow List', lookupDomain: 'slow.test', priority: 1 },
      { name: 'Test BL', lookupDomain: 'bl.test', ipAddressesMatch: ['127.0.0.2'], priority: 2 },
      { name: 'Bits', lookupDomain: 'bits.test', bitmaskMatch: '127.0.0.8', rejectionResponse: 'Your IP is listed by Bits, see https://bits.test/lookup', priority: 3 },
    ],
    ipAllowListProviders: [{ name: 'Good Senders', lookupDomain: 'allow.test' }],
    ipAllowList: ['127.0.0.4'],
    ipBlockListConfig: { bypassedRecipients: ['postmaster@contoso.test'] },
  };
  gw = await startGateway({
    redisUrl: redis.url,
    ipLists: ipListLookup(resolver),
    observer: agentLog.log.observer(() => true),
    gateway: await baseGateway({
      ...lists,
      recipients: ['alice@contoso.test', 'postmaster@contoso.test', 'allstaff@contoso.test'],
      blockedIPRanges: ['127.0.0.99'],
      senderFilterConfig: { blockedSenders: ['Spammer@Example.net'], blockedDomains: ['junk.test'], blockedDomainsAndSubdomains: ['spam.test'] },
      recipientFilterConfig: { blockListEnabled: true, blockedRecipients: ['AllStaff@contoso.test'] },
    }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', bindings: [`0.0.0.0:${port}`, `[::]:${port}`], ...common },
      partner: { name: 'Partner', usage: 'Internet', bindings: [`0.0.0.0:${port}`], remoteIPRanges: ['127.0.0.50'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }], ...common },
    },
  });
  stamping = await startGateway({
    redisUrl: redis.url,
    dataDir: gw.dataDir,
    gateway: await baseGateway({ senderFilterConfig: { blockedDomainsAndSubdomains: ['spam.test'], action: 'StampStatus' } }),
    connectors: { internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${stampPort}`], ...common } },
  });
});

after(async () => {
  await gw?.close();
  await agentLog.close();
  await stamping?.close();
  cache?.disconnect();
  await dns?.close();
  await redis?.stop();
});

async function session(from: string, host = '127.0.0.1', p = port): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host, port: p, localAddress: from });
  await c.ehlo('sender.test');
  return c;
}

async function rcpts(from: string, to: string[], host?: string): Promise<string[]> {
  const c = await session(from, host);
  assert.equal((await c.cmd('MAIL FROM:<someone@example.net>')).code, 250);
  const out: string[] = [];
  for (const t of to) out.push((await c.cmd(`RCPT TO:<${t}>`)).last);
  await c.quit();
  return out;
}

describe('IP Block List Providers at RCPT', () => {
  it('a listed client gets 550 5.7.1 for every recipient but the bypassed postmaster, whose message is stored', async () => {
    const before = await gw.stored();
    const c = await session('127.0.0.2');
    assert.equal((await c.cmd('MAIL FROM:<someone@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, `550 5.7.1 ${BLOCKED}`);
    assert.equal((await c.cmd('RCPT TO:<postmaster@contoso.test>')).last, '250 2.1.5 Recipient OK');
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('Subject: please delist me\r\n\r\nhello\r\n.\r\n');
    const r = await c.read();
    assert.equal(r.code, 250, r.last);
    await c.quit();
    const job = (await gw.job(queueIdOf(r)))!;
    assert.deepEqual(job.data.rcptTo.map((x) => `${x.local}@${x.domain}`), ["postmaster@contoso.test"]);
    assert.deepEqual(await gw.stored(), { bodies: before.bodies + 1, jobs: before.jobs + 1 });
    assert.ok(gw.logs.some((l) => l.why !== undefined && String(l.why).includes('"Test BL"')), 'the refusal names the provider');
  });

  it('bitmaskMatch: the provider\'s own rejectionResponse; an answer without the bit is not a listing', async () => {
    assert.deepEqual(await rcpts('127.0.0.3', ['alice@contoso.test']), ['550 5.7.1 Your IP is listed by Bits, see https://bits.test/lookup']);
    assert.deepEqual(await rcpts('127.0.0.7', ['alice@contoso.test']), ['250 2.1.5 Recipient OK']);
  });

  it('an unlisted client is not refused', async () => {
    assert.deepEqual(await rcpts('127.0.0.8', ['alice@contoso.test']), ['250 2.1.5 Recipient OK']);
  });

  it('the IP Allow List and an IP Allow List Provider override the block list', async () => {
    assert.deepEqual(await rcpts('127.0.0.4', ['alice@contoso.test']), ['250 2.1.5 Recipient OK']);
    assert.deepEqual(await rcpts('127.0.0.5', ['alice@contoso.test']), ['250 2.1.5 Recipient OK']);
    // The allow-listed client was never looked up.
    assert.equal(dns.count('4.0.0.127.bl.test'), 0);
  });

  it('sessions holding ms-Exch-Bypass-Anti-Spam are never refused by a block list', async () => {
    assert.deepEqual(await rcpts('127.0.0.50', ['alice@contoso.test']), ['250 2.1.5 Recipient OK']);
  });

  it('a provider that does not answer is skipped with a log line; the next one still decides', async () => {
    // 127.0.0.6: Slow List (priority 1) never answers; Test BL (priority 2) lists it.
    const t0 = Date.now();
    const c = await session('127.0.0.6');
    assert.ok(Date.now() - t0 < LOOKUP_TIMEOUT_MS / 2, `the greeting waited ${Date.now() - t0} ms for the lookups`);
    assert.equal((await c.cmd('MAIL FROM:<someone@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).last, `550 5.7.1 ${BLOCKED}`);
    assert.ok(Date.now() - t0 >= LOOKUP_TIMEOUT_MS - 50, 'RCPT waited for the lookups');
    await c.quit();
    assert.ok(gw.logs.some((l) => l.level === 40 && l.provider === 'Slow List' && l.result === 'timeout'), 'no log line for the skipped provider');
    // Only the slow list for a client no other list has: accepted.
    dns.silence('9.0.0.127.slow.test');
    assert.deepEqual(await rcpts('127.0.0.9', ['alice@contoso.test']), ['250 2.1.5 Recipient OK']);
  });

  it('an IPv6 client is looked up nibble-reversed', async () => {
    assert.deepEqual(await rcpts('::1', ['alice@contoso.test'], '::1'), [`550 5.7.1 ${BLOCKED}`]);
  });
});

describe('sender filtering at MAIL', () => {
  const mail = async (sender: string, p = port) => {
    const c = await session('127.0.0.8', '127.0.0.1', p);
    const r = await c.cmd(`MAIL FROM:<${sender}>`);
    await c.quit();
    return r.last;
  };
  it('blockedSenders, blockedDomains (exactly) and blockedDomainsAndSubdomains: 554 5.1.0 Sender denied', async () => {
    assert.equal(await mail('spammer@example.net'), '554 5.1.0 Sender denied');
    assert.equal(await mail('friend@example.net'), '250 2.1.0 Sender OK');
    assert.equal(await mail('x@junk.test'), '554 5.1.0 Sender denied');
    assert.equal(await mail('x@sub.junk.test'), '250 2.1.0 Sender OK');
    assert.equal(await mail('x@spam.test'), '554 5.1.0 Sender denied');
    assert.equal(await mail('x@deep.sub.SPAM.test'), '554 5.1.0 Sender denied');
    assert.equal(await mail(''), '250 2.1.0 Sender OK');
  });
  it('recipient filtering: a blocked recipient is 550 5.1.1 User unknown (any case), others are taken; Bypass-Anti-Spam sessions reach it', async () => {
    assert.deepEqual(await rcpts('127.0.0.8', ['allstaff@contoso.test', 'ALLSTAFF@Contoso.TEST', 'alice@contoso.test']), ['550 5.1.1 User unknown', '550 5.1.1 User unknown', '250 2.1.5 Recipient OK']);
    const line = gw.logs.find((l) => l.msg === 'policy refused' && l.reason === 'recipient-blocked');
    assert.match(String(line?.why), /allstaff@contoso\.test is in recipientFilterConfig\.blockedRecipients and anonymous session lacks ms-Exch-Bypass-Anti-Spam on connector "Internet"/);
    assert.deepEqual(await rcpts('127.0.0.50', ['allstaff@contoso.test']), ['250 2.1.5 Recipient OK']);
  });
  it('Bypass-Anti-Spam sessions are not sender-filtered', async () => {
    const c = await session('127.0.0.50');
    assert.equal((await c.cmd('MAIL FROM:<spammer@example.net>')).last, '250 2.1.0 Sender OK');
    await c.quit();
  });
  it('StampStatus: accepted, and the stored message carries X-MS-Exchange-Organization-SenderFilterResult', async () => {
    const c = await session('127.0.0.1', '127.0.0.1', stampPort);
    assert.equal((await c.cmd('MAIL FROM:<x@a.spam.test>')).last, '250 2.1.0 Sender OK');
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    // A forged stamp from the client is removed by the header firewall; ours is the only one.
    c.write('X-MS-Exchange-Organization-SenderFilterResult: forged\r\nSubject: stamped\r\n\r\nbody\r\n.\r\n');
    const r = await c.read();
    assert.equal(r.code, 250, r.last);
    // A second transaction on the same connection from a clean sender is not stamped.
    assert.equal((await c.cmd('MAIL FROM:<ok@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('Subject: clean\r\n\r\nbody\r\n.\r\n');
    const clean = await c.read();
    await c.quit();
    const body = (await stamping.body(queueIdOf(r)))!.toString('latin1');
    assert.deepEqual(body.match(/^X-MS-Exchange-Organization-SenderFilterResult: .*$/gim), ['X-MS-Exchange-Organization-SenderFilterResult: BlockedDomain']);
    assert.doesNotMatch((await stamping.body(queueIdOf(clean)))!.toString('latin1'), /SenderFilterResult/);
  });
});

describe('the agent log', () => {
  it('each refusal an anti-spam agent made is a line: agent, event, action, reason, client, sender, recipient and the reply', async () => {
    // blockedIPRanges: refused at connect, before any connector is chosen.
    const refused = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.99' });
    assert.equal(refused.greeting?.last, '554 5.7.1 Access denied, banned sending IP [127.0.0.99]');
    await refused.quit().catch(() => undefined);
    const all = await agentEntries();
    const atConnect = all.find((e) => e.ipAddress === '127.0.0.99')!;
    assert.deepEqual([atConnect.agent, atConnect.event, atConnect.action, atConnect.reason, atConnect.smtpResponse, atConnect.connector], ['Connection Filtering Agent', 'OnConnect', 'RejectConnection', 'blocked-ip', '554 5.7.1 Access denied, banned sending IP [127.0.0.99]', '']);
    const bl = all.find((e) => e.ipAddress === '127.0.0.3' && e.reason === 'ip-block-list-provider');
    assert.ok(bl, `no connection filtering line for 127.0.0.3 in ${JSON.stringify(all.map((e) => [e.ipAddress, e.reason]))}`);
    assert.deepEqual([bl.agent, bl.event, bl.action, bl.p1FromAddress, bl.recipients, bl.smtpResponse, bl.connector, bl.directionality], ['Connection Filtering Agent', 'OnRcptCommand', 'RejectCommand', 'someone@example.net', ['alice@contoso.test'], '550 5.7.1 Your IP is listed by Bits, see https://bits.test/lookup', 'Internet', 'Incoming']);
    assert.match(bl.reasonData, /block list provider "Bits" \(bits\.test\) lists 127\.0\.0\.3/);
    assert.match(bl.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const sf = all.find((e) => e.reason === 'sender-filtered' && e.p1FromAddress === 'spammer@example.net')!;
    assert.deepEqual([sf.agent, sf.event, sf.action, sf.smtpResponse], ['Sender Filter Agent', 'OnMailCommand', 'RejectCommand', '554 5.1.0 Sender denied']);
    const rf = all.find((e) => e.reason === 'recipient-blocked')!;
    assert.deepEqual([rf.agent, rf.recipients, rf.smtpResponse], ['Recipient Filter Agent', ['allstaff@contoso.test'], '550 5.1.1 User unknown']);
    // What no agent refused (the clean clients, the bypassing partner) is not in it.
    assert.ok(!all.some((e) => e.ipAddress === '127.0.0.8' && e.reason.startsWith('ip-')));
    assert.ok(!all.some((e) => e.ipAddress === '127.0.0.50'));
  });
});

