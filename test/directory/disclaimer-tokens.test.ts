// Disclaimer tokens end to end (Exchange fills %%DisplayName%% and its kin from the sender's
// directory object): real SMTP into a listener with the transport rules as its content filter, a
// real slapd holding the senders, a real Redis; what was stored is read back with mailparser.
// One rule gives each sender their own signature; a value from the directory is text, never
// markup; a sender the directory does not hold, or a directory that does not answer, leaves the
// tokens empty and the message still goes (the log says why); a sender's values are reused
// from the cache while the directory is down.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { createDirectoryService, type DirectoryService } from '@mailgw/directory';
import { simpleParser } from 'mailparser';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { BASE_DN, adDirectory, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';

const skip = slapdSkip();
const SIGNATURE = '<p>-- <br>%%DisplayName%%, %%Title%%<br>%%Department%%, %%Company%%<br>Tel. %%PhoneNumber%% | Manager: %%Manager%% | [%%CustomAttribute1%%] %%Nickname%%</p>';

let ldap: TestSlapd;
let redis: TestRedis;
let gw: TestGateway;
let dir: DirectoryService;
let port = 0;

before(async () => {
  if (skip) return;
  ldap = (await startSlapd())!;
  redis = await startRedis({ appendonly: false });
  port = await freePort();
  const gateway = await baseGateway({
    directory: adDirectory(ldap),
    transportRules: [{ name: 'Signature', fromScope: 'InOrganization', sentToScope: 'NotInOrganization', applyHtmlDisclaimerText: SIGNATURE }],
  });
  // The Exchange servers behind mailgw relay their users' mail out through it.
  const connectors = {
    exchange: { name: 'Exchange', bindings: [`127.0.0.1:${port}`], remoteIPRanges: ['127.0.0.1'], tarpitInterval: 0, authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
  };
  dir = createDirectoryService({ config: compile(gateway, connectors).config.gateway.directory!, redisUrl: redis.url });
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors, directory: dir, filtersFor: (p) => contentFilters(p.config.gateway), filterTimeoutMs: 5000 });
});

after(async () => {
  await gw?.close();
  await dir?.close();
  await ldap?.close();
  await redis?.stop();
});

async function send(from: string): Promise<{ end: string; queueId: string; text: string; html: string }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  try {
    await c.ehlo('exchange.contoso.test');
    const message = [`From: ${from}`, 'To: partner@fabrikam.example', 'Subject: Hello', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Hi,', '--b1', 'Content-Type: text/html; charset=utf-8', '', '<html><body><p>Hi,</p></body></html>', '--b1--', ''].join('\r\n');
    const t = await c.transaction(from, ['partner@fabrikam.example'], message);
    const end = t.end ?? t.data!;
    assert.match(end.last, /^250 2\.6\.0 /, `${from}: ${end.last}`);
    const queueId = queueIdOf(end);
    const mail = await simpleParser((await gw.body(queueId))!);
    return { end: end.last, queueId, text: String(mail.text ?? '').replace(/\r\n/g, '\n'), html: String(mail.html) };
  } finally {
    await c.quit().catch(() => undefined);
  }
}

const tokenLog = (queueId: string) => gw.logs.filter((l) => l.msg === 'disclaimer tokens' && l.queueId === queueId).map((l) => [l.level, l.sender, l.source, l.why]);

describe('disclaimer tokens from the directory', { skip }, () => {
  it("one rule, each sender's own signature: the values from their directory object, as text in the HTML and the plain part", async () => {
    const r = await send('alice@contoso.test');
    assert.match(r.html, /<p>-- <br>Alice Smith, Head of &quot;R&amp;D&quot; &lt;Labs&gt;<br>Research, Contoso Ltd<br>Tel\. \+1 555 0100 \| Manager: Bob Jones \| \[\] %%Nickname%%<\/p>/);
    assert.ok(!r.html.includes('<Labs>'), 'a directory value adds no markup');
    assert.match(r.text, /Hi,\n\n-- \nAlice Smith, Head of "R&D" <Labs>\nResearch, Contoso Ltd\nTel\. \+1 555 0100 \| Manager: Bob Jones \| \[\] %%Nickname%%/);
    assert.deepEqual(tokenLog(r.queueId), [[20, 'alice@contoso.test', 'directory', `filled from cn=Alice Smith,ou=People,${BASE_DN}`]]);
  });

  it('a sender no directory object holds: the tokens are empty, the rest of the signature goes', async () => {
    const r = await send('nobody@contoso.test');
    assert.match(r.html, /<p>-- <br>, <br>, <br>Tel\.  \| Manager:  \| \[\] %%Nickname%%<\/p>/);
    assert.deepEqual(tokenLog(r.queueId), [[20, 'nobody@contoso.test', 'not-found', 'no directory object holds the sender: tokens left empty']]);
  });

  it('the directory down: a sender asked before keeps their values (cached), another gets empty tokens and a warning; the mail goes', async () => {
    await ldap.stop();
    try {
      const cached = await send('alice@contoso.test');
      assert.match(cached.html, /Alice Smith, Head of &quot;R&amp;D&quot;/);
      const r = await send('erin@contoso.test');
      assert.match(r.html, /<p>-- <br>, <br>, <br>Tel\./);
      const [line] = tokenLog(r.queueId);
      assert.equal(line?.[0], 40, 'logged as a warning');
      assert.equal(line?.[2], 'unavailable');
      assert.match(String(line?.[3]), /^the directory did not answer \(.*\): tokens left empty$/);
    } finally {
      await ldap.start();
    }
  });
});
