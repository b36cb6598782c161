// ARC sealing end to end: mail from the Internet is authenticated by the listener (DKIM, SPF and
// DMARC against the loopback DNS fixture), gets a transport rule's banner (which breaks the
// sender's DKIM signature), and a delivery worker with senderAuthentication.arcSeal hands it to
// the next hop (a far side standing in for Exchange Online) sealed. There the sender's own
// signature fails and DMARC with it, but the ARC chain verifies and carries mailgw's verdicts:
// a next hop that trusts contoso.test as a sealer (mailgw's own policy with arcTrustedSealers
// here) accepts what it would otherwise refuse for the sender's p=reject. Mail nobody
// authenticated on arrival (from the organisation's own servers) leaves unsealed; a reload with
// a key that cannot be read keeps the worker's key, one without arcSeal stops sealing.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { authenticate, dkimSign, type DKIMSignOptions } from 'mailauth';
import { pino } from 'pino';
import { authResults, createAntispam } from '@mailgw/antispam';
import { parseDomainPattern } from '@mailgw/config';
import { contentFilters } from '@mailgw/content-filter';
import { generateDkimKey, recordValue, writeKeyFile } from '@mailgw/dkim';
import { senderAuthenticationOutcome } from '@mailgw/policy';
import { keySpace } from '@mailgw/queue';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { eventually, testGateway } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';

const BANNER = 'CAUTION: this message comes from outside Contoso.';
const senderKey = generateDkimKey('rsa');
const SENDER_PEM = senderKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const sealKey = generateDkimKey('rsa');

/** What the world publishes: the sender's SPF (its own host only), DKIM key and p=reject; mailgw's sealing key. */
const ZONE: Record<string, string[]> = {
  'woodgrove.test': ['v=spf1 ip4:127.0.0.1 -all'],
  'sel._domainkey.woodgrove.test': [recordValue(senderKey, 'rsa')],
  '_dmarc.woodgrove.test': ['v=DMARC1; p=reject'],
  'arc1._domainkey.contoso.test': [recordValue(sealKey, 'rsa')],
};

let redis: TestRedis;
let cache: Redis;
let dns: TestDns;
let gw: TestGateway;
let nextHop: FarSide;
let worker: WorkerHandle;
let workerGateway: ReturnType<typeof testGateway>;
let port = 0;

before(async () => {
  redis = await startRedis();
  cache = new Redis(redis.url);
  dns = await startDnsServer(Object.fromEntries(Object.entries(ZONE).map(([n, txt]) => [n, { TXT: txt }])));
  nextHop = await startFarSide();
  port = await freePort();
  const antispam = createAntispam({
    settings: () => ({
      dns: { servers: [dns.server], timeout: 1000, lookupBudget: 40, minTtl: 0, maxTtl: 3_600_000, negativeTtl: 0, txtTtl: 0, reverseLookup: false },
      senderAuthentication: { enabled: true, spfFailAction: 'stamp', dmarcRejectAction: 'reject', dmarcQuarantineAction: 'stamp', tempErrorAction: 'accept', timeout: 10_000, minBitLength: 1024, bypassedSenderDomains: [], bypassedRecipients: [], arcTrustedSealers: [] },
      internalSMTPServers: [],
    }),
    cache: { store: cache, keys: keySpace('{mailgw}') },
  });
  const common = { bindings: [`127.0.0.1:${port}`], tarpitInterval: 0 };
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({ transportRules: [{ name: 'External banner', fromScope: 'NotInOrganization', applyHtmlDisclaimerLocation: 'Prepend', applyHtmlDisclaimerText: `<p>${BANNER}</p>` }] }),
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', ...common },
      exchange: { name: 'Exchange', ...common, remoteIPRanges: ['127.0.0.2'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
    },
    filtersFor: (p) => [...antispam.filters, ...contentFilters(p.config.gateway)],
  });
  // Everything for contoso.test goes on to the next hop (as to Exchange Online).
  const g = (workerGateway = { ...testGateway({ prefix: '{mailgw}', routes: [{ domains: ['*'], to: `smtp://127.0.0.1:${nextHop.port}` }] as never, senderAuthentication: { arcSeal: { domain: 'contoso.test', selector: 'arc1' } } as never }), fqdn: 'mx.contoso.test' });
  writeKeyFile(path.join(gw.dataDir, 'dkim/contoso.test/arc1.key'), sealKey);
  worker = await startWorkers({ gateway: g, dataDir: gw.dataDir, redisUrl: redis.url, logger: pino({ level: 'silent' }), concurrency: 4, sessionIdleMs: 1000, busyRetryMs: 200 });
});

after(async () => {
  await worker?.close({ timeoutMs: 5000 });
  await gw?.close();
  await nextHop?.close();
  cache?.disconnect();
  await dns?.close();
  await redis?.stop();
});

async function send(localAddress: string, from: string, to: string, message: string): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress });
  try {
    await c.ehlo('client.test');
    const t = await c.transaction(from, [to], message);
    return (t.end ?? t.data)?.last ?? '';
  } finally {
    await c.quit().catch(() => undefined);
  }
}

/** The next hop's own check of what it received from mailgw's address (127.0.0.9: not in the sender's SPF). */
async function atNextHop(raw: Buffer) {
  const resolver = async (name: string, type: string): Promise<string[][]> => {
    const txt = type === 'TXT' ? ZONE[name.replace(/\.$/, '').toLowerCase()] : undefined;
    if (!txt) throw Object.assign(new Error(`${name} ${type}: ENOTFOUND`), { code: 'ENOTFOUND' });
    return txt.map((t) => [t]);
  };
  return authenticate(raw, { ip: '127.0.0.9', helo: 'mx.contoso.test', sender: 'ceo@woodgrove.test', mta: 'next-hop.test', resolver, disableBimi: true } as Parameters<typeof authenticate>[1]);
}

describe('ARC sealing through the whole pipeline', () => {
  it('mail mailgw authenticated and changed is sealed: the next hop finds the sender\'s DKIM broken but an ARC chain that passes with mailgw\'s verdicts, and accepts it when it trusts contoso.test', async () => {
    const message = ['From: CEO <ceo@woodgrove.test>', 'To: alice@contoso.test', 'Subject: quarterly figures', 'Date: Wed, 02 Dec 2026 08:00:00 +0000', 'Message-ID: <arc-e2e-1@woodgrove.test>', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', '<p>The figures are attached.</p>', ''].join('\r\n');
    const signed = await dkimSign(message, { signTime: new Date(), signatureData: [{ signingDomain: 'woodgrove.test', selector: 'sel', privateKey: SENDER_PEM, algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed' }] } as unknown as DKIMSignOptions);
    assert.deepEqual(signed.errors, []);
    assert.match(await send('127.0.0.1', 'ceo@woodgrove.test', 'alice@contoso.test', signed.signatures + message), /^250 /);
    const got = await eventually(() => nextHop.messages.find((m) => m.raw.includes('arc-e2e-1@woodgrove.test')), 'the sealed copy at the next hop');
    const raw = got.raw.toString('latin1');
    assert.match(raw, /^ARC-Seal: i=1; a=rsa-sha256; t=\d+; cv=none; d=contoso\.test; s=arc1;/);
    assert.match(raw, /\r\nARC-Authentication-Results: i=1; mx\.contoso\.test;[^]*dkim=pass[^]*dmarc=pass/);
    assert.ok(raw.includes(BANNER), 'the banner went in after the sender signed');
    assert.equal(worker.arc?.sealed, 1);

    const r = await atNextHop(got.raw);
    // mailauth calls a body hash that does not match "neutral"; anything but a pass will do here.
    assert.deepEqual(r.dkim.results?.map((d) => [d.signingDomain, d.status.result === 'pass']), [['woodgrove.test', false]], 'the banner broke the sender\'s signature');
    assert.equal(r.dmarc && r.dmarc.status.result, 'fail');
    assert.equal(r.arc && r.arc.status.result, 'pass');
    // The next hop's decision, by mailgw's own policy: refused for p=reject, unless it trusts the sealer.
    const facts = authResults(r);
    assert.deepEqual(facts.arc, { result: 'pass', instance: 1, sealer: 'contoso.test', sealerDmarc: { result: 'pass', from: 'woodgrove.test' } });
    const cfg = { spfFailAction: 'stamp', dmarcRejectAction: 'reject', dmarcQuarantineAction: 'stamp', tempErrorAction: 'accept' } as const;
    assert.equal(senderAuthenticationOutcome({ ...cfg, arcTrustedSealers: [] }, facts).reply?.code, 550);
    const trusted = parseDomainPattern('contoso.test');
    assert.ok(trusted.ok);
    assert.equal(senderAuthenticationOutcome({ ...cfg, arcTrustedSealers: [trusted.value] }, facts).verdict, 'accept');
  });

  it('mail nobody authenticated on arrival (the connector of the Exchange servers) leaves unsealed', async () => {
    const message = ['From: bob@contoso.test', 'To: carol@woodgrove.test', 'Subject: lunch', 'Message-ID: <arc-e2e-2@contoso.test>', '', 'Noon?', ''].join('\r\n');
    assert.match(await send('127.0.0.2', 'bob@contoso.test', 'carol@woodgrove.test', message), /^250 /);
    const got = await eventually(() => nextHop.messages.find((m) => m.raw.includes('arc-e2e-2@contoso.test')), 'the internal message at the next hop');
    assert.doesNotMatch(got.raw.toString('latin1'), /^ARC-/m);
    assert.equal(worker.arc?.sealed, 1);
    assert.equal(worker.arc?.failed, 0);
  });

  it('a reload whose key cannot be read keeps sealing with the key the worker has; one without arcSeal stops sealing', async () => {
    const sealedBy = async (n: number): Promise<string | null> => {
      const id = `<arc-e2e-reload-${n}@woodgrove.test>`;
      const message = ['From: news@woodgrove.test', 'To: alice@contoso.test', `Subject: reload ${n}`, `Message-ID: ${id}`, '', 'News.', ''].join('\r\n');
      assert.match(await send('127.0.0.1', 'news@woodgrove.test', 'alice@contoso.test', message), /^250 /);
      const got = await eventually(() => nextHop.messages.find((m) => m.raw.includes(id)), `copy ${n} at the next hop`);
      return /^ARC-Seal: [^\r]*\bs=([a-z0-9]+)/m.exec(got.raw.toString('latin1'))?.[1] ?? null;
    };
    const sa = workerGateway.senderAuthentication;
    worker.reload({ ...workerGateway, senderAuthentication: { ...sa, arcSeal: { domain: 'contoso.test', selector: 'missing' } } });
    assert.equal(await sealedBy(1), 'arc1', 'the broken key is refused, the old one seals on');
    const { arcSeal: _off, ...without } = sa;
    worker.reload({ ...workerGateway, senderAuthentication: without });
    assert.equal(await sealedBy(2), null);
    assert.equal(worker.arc, null);
    worker.reload(workerGateway);
  });
});
