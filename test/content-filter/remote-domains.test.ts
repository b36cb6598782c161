// Exchange's remote domains at the gateway end to end: real SMTP from the organisation's mail
// servers into a listener, a real Redis. A remote domain that withholds out-of-office replies,
// read receipts or automatic forwards has its recipients deleted from such a message (the others
// keep it; a message left with nobody is answered 250 and stored for nobody, as Exchange drops
// it without an NDR); recipients inside the organisation and ordinary mail are never touched;
// Exchange's auto-forward mark counts only from a session trusted with organisation fields.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { baseGateway, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

let redis: TestRedis;
let gw: TestGateway;
let serversPort = 0;
let clientPort = 0;

before(async () => {
  redis = await startRedis({ appendonly: false });
  serversPort = await freePort();
  clientPort = await freePort();
  gw = await startGateway({
    redisUrl: redis.url,
    gateway: await baseGateway({
      remoteDomains: [
        { name: 'Default', domainName: '*', autoForwardEnabled: false },
        { name: 'Fabrikam', domainName: '*.fabrikam.example', allowedOOFType: 'None', deliveryReportEnabled: false, autoForwardEnabled: true },
      ],
    }),
    connectors: {
      // The organisation's mail servers: they relay out, and are trusted with X-MS-Exchange-Organization-* fields.
      servers: { name: 'Servers', usage: 'Custom', bindings: [`127.0.0.1:${serversPort}`], remoteIPRanges: ['127.0.0.1'], permissionGroups: ['AnonymousUsers'], tarpitInterval: 0, permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient', 'ms-Exch-Accept-Headers-Organization'] }] },
      // A relay for printers: relays out, not trusted with organisation fields.
      printers: { name: 'Printers', usage: 'Custom', bindings: [`127.0.0.1:${clientPort}`], remoteIPRanges: ['127.0.0.1'], permissionGroups: ['AnonymousUsers'], tarpitInterval: 0, permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] }] },
    },
    filtersFor: (p) => contentFilters(p.config.gateway),
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

async function send(to: string[], headers: string[], port = serversPort, from = 'alice@contoso.test'): Promise<{ end: string; queueId: string; rcpts: string[] | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  try {
    await c.ehlo('mail.contoso.test');
    const t = await c.transaction(from, to, [`From: ${from}`, `To: ${to.join(', ')}`, 'Subject: Re: hello', ...headers, '', 'body', ''].join('\r\n'));
    const end = t.end ?? t.data!;
    assert.match(end.last, /^250 /, end.last);
    const queueId = queueIdOf(end);
    const job = await gw.job(queueId);
    return { end: end.last, queueId, rcpts: job ? job.data.rcptTo.map((r) => r.address) : null };
  } finally {
    await c.quit().catch(() => undefined);
  }
}

/** The filter's info line (a debug line says when it withheld nothing). */
const withheldLog = (queueId: string) => gw.logs.find((l) => l.queueId === queueId && l.filter === 'remote-domains' && Number(l.level) >= 30);

describe('remote domains', () => {
  it('allowedOOFType None: an out-of-office reply is withheld from that domain (subdomains too), not from another domain or from inside', async () => {
    const r = await send(['bob@fabrikam.example', 'ann@sales.fabrikam.example', 'carol@tailspin.example', 'dave@contoso.test'], ['Auto-Submitted: auto-replied']);
    assert.deepEqual(r.rcpts, ['carol@tailspin.example', 'dave@contoso.test']);
    assert.match(String(withheldLog(r.queueId)?.reason), /bob@fabrikam\.example: an automatic reply, and remote domain "Fabrikam" \(\*\.fabrikam\.example\): allowedOOFType None/);
  });

  it("Exchange's own automatic reply is one too; an ordinary message goes to everyone", async () => {
    const oof = await send(['bob@fabrikam.example', 'carol@tailspin.example'], ['X-Auto-Response-Suppress: All', 'X-MS-Exchange-Inbox-Rules-Loop: alice@contoso.test']);
    assert.deepEqual(oof.rcpts, ['carol@tailspin.example']);
    const plain = await send(['bob@fabrikam.example', 'carol@tailspin.example'], []);
    assert.deepEqual(plain.rcpts, ['bob@fabrikam.example', 'carol@tailspin.example']);
    assert.equal(withheldLog(plain.queueId), undefined, 'no info line: nothing withheld');
    assert.ok(gw.logs.some((l) => l.queueId === plain.queueId && l.filter === 'remote-domains' && l.reason === 'no automatic reply, forward or read receipt'));
  });

  it('deliveryReportEnabled false: a read receipt is withheld from that domain only', async () => {
    const r = await send(['bob@fabrikam.example', 'carol@tailspin.example'], ['MIME-Version: 1.0', 'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"']);
    assert.deepEqual(r.rcpts, ['carol@tailspin.example']);
    assert.match(String(withheldLog(r.queueId)?.reason), /a read receipt, and remote domain "Fabrikam"/);
  });

  it('autoForwardEnabled false on the Default: a forward left with nobody is answered 250 and stored for nobody; Fabrikam allows it', async () => {
    const before = await gw.stored();
    const r = await send(['carol@tailspin.example'], ['X-MS-Exchange-Organization-AutoForwarded: true']);
    assert.equal(r.rcpts, null, 'no job');
    assert.deepEqual(await gw.stored(), before);
    assert.ok(gw.logs.some((l) => l.queueId === r.queueId && /deleted every recipient/.test(JSON.stringify(l))), 'the log says why it went nowhere');
    const fabrikam = await send(['bob@fabrikam.example', 'carol@tailspin.example'], ['X-MS-Exchange-Organization-AutoForwarded: true']);
    assert.deepEqual(fabrikam.rcpts, ['bob@fabrikam.example']);
  });

  it('the auto-forward mark from a session not trusted with organisation fields is removed and not counted', async () => {
    const r = await send(['carol@tailspin.example'], ['X-MS-Exchange-Organization-AutoForwarded: true'], clientPort);
    assert.deepEqual(r.rcpts, ['carol@tailspin.example']);
  });
});
