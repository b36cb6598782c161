// Decisions the listener takes from the policy, over real SMTP: the recipient-counting rule
// shared with `mailgw explain` (defect 4), maxLocalHopCount against a mail loop through our
// own servers (defect 5), and the sequencing replies that moved out of the listener.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { explain, type Scenario } from '@mailgw/policy';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf } from './helpers/smtp-client.js';

let redis: TestRedis;
let gw: TestGateway;
let port = 0;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  const common = { bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 };
  gw = await startGateway({
    redisUrl: redis.url,
    connectors: {
      internet: { name: 'Internet', usage: 'Internet', ...common, maxRecipientsPerMessage: 5, maxLocalHopCount: 2 },
      // A second of our own servers, by another name: its Received lines are local hops too.
      edge: { name: 'Edge', usage: 'Internet', fqdn: 'edge.contoso.test', ...common, remoteIPRanges: ['127.0.0.60'], maxLocalHopCount: 0 },
      sub: { name: 'Sub', usage: 'Client', ...common, remoteIPRanges: ['127.0.0.61'], authMechanism: ['Tls', 'BasicAuth'], messageRateLimit: 'unlimited' },
      nodsn: { name: 'No DSN', usage: 'Internet', ...common, remoteIPRanges: ['127.0.0.62'], deliveryStatusNotificationEnabled: false },
    },
  });
});

after(async () => {
  await gw?.close();
  await redis?.stop();
});

const connect = async (localAddress = '127.0.0.1') => {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress });
  await c.ehlo();
  return c;
};

describe('one recipient-counting rule, live and in explain (defect 4)', () => {
  const six = ['a@contoso.test', 'b@contoso.test', 'c@contoso.test', 'a@contoso.test', 'B@Contoso.test', 'd@contoso.test'];

  it('six RCPTs of which two repeat: all 250 over SMTP, as explain says, and each stored once', async () => {
    const scenario: Scenario = { binding: `127.0.0.1:${port}`, clientIP: '127.0.0.1', mailFrom: 's@example.net', rcpt: six };
    const explained = explain(gw.policy, scenario).stages.filter((s) => s.stage === 'rcpt').map((s) => s.reply);
    const c = await connect();
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
    const live: string[] = [];
    for (const [i, to] of six.entries()) live.push((await c.cmd(`RCPT TO:<${to}>${i === 0 ? ' NOTIFY=FAILURE' : i === 3 ? ' NOTIFY=NEVER' : ''}`)).last);
    assert.deepEqual(live, explained);
    assert.deepEqual(live, Array(6).fill('250 2.1.5 Recipient OK'));
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('Subject: repeats\r\n\r\nx\r\n.\r\n');
    const job = (await gw.job(queueIdOf(await c.read())))!;
    assert.equal(job.data.rcptTo.length, 4, JSON.stringify(job.data.rcptTo));
    assert.deepEqual(job.data.rcptTo[0]!.notify, ['FAILURE'], 'the first RCPT of a repeated recipient is the one kept');
    await c.quit();
  });

  it('the sixth different recipient is 452 4.5.3, live and in explain', async () => {
    const seven = ['a@contoso.test', 'b@contoso.test', 'c@contoso.test', 'd@contoso.test', 'e@contoso.test', 'f@contoso.test', 'a@contoso.test'];
    const explained = explain(gw.policy, { binding: `127.0.0.1:${port}`, clientIP: '127.0.0.1', mailFrom: 's@example.net', rcpt: seven }).stages.filter((s) => s.stage === 'rcpt').map((s) => s.reply);
    const c = await connect();
    const t = await c.transaction('s@example.net', seven);
    assert.deepEqual(t.rcpt.map((r) => r.last), explained);
    assert.equal(t.rcpt[5]!.last, '452 4.5.3 Too many recipients');
    assert.equal(t.rcpt[6]!.last, '250 2.1.5 Recipient OK');
    await c.quit();
  });

  it('RSET starts a new count', async () => {
    const c = await connect();
    await c.transaction('s@example.net', ['a@contoso.test', 'b@contoso.test', 'c@contoso.test', 'd@contoso.test', 'e@contoso.test']);
    assert.equal((await c.cmd('RSET')).code, 250);
    const t = await c.transaction('s@example.net', ['f@contoso.test', 'a@contoso.test']);
    assert.ok(t.rcpt.every((r) => r.code === 250));
    await c.quit();
  });
});

describe('maxLocalHopCount (defect 5)', () => {
  const by = (host: string) => `Received: from relay.test ([192.0.2.1])\r\n\tby ${host} (mailgw, connector Internet)\r\n\twith ESMTP id Q; Mon, 1 Jan 2024 00:00:00 +0000\r\n`;

  it('a message looping through our own servers is refused once it has passed them more than maxLocalHopCount times', async () => {
    // Submit, take the stored message (with our Received on top) and submit it again, as a
    // loop between two of our servers would.
    let message = 'Subject: loop\r\n\r\nbody\r\n';
    const replies: string[] = [];
    for (let pass = 0; pass < 4; pass++) {
      const c = await connect();
      const t = await c.transaction('s@example.net', ['alice@contoso.test'], message);
      await c.quit();
      replies.push(t.end!.last.replace(/^250 2\.6\.0 .*/, '250 2.6.0'));
      if (t.end!.code !== 250) break;
      message = (await gw.body(queueIdOf(t.end!)))!.toString('latin1');
    }
    assert.deepEqual(replies, ['250 2.6.0', '250 2.6.0', '250 2.6.0', '554 5.4.6 Hop count exceeded - possible mail loop']);
  });

  it('counts Received lines by the gateway FQDN or any connector FQDN; foreign ones only count for maxHopCount', async () => {
    const c = await connect();
    const foreign = await c.transaction('s@example.net', ['alice@contoso.test'], `${by('mx.fabrikam.test').repeat(5)}Subject: x\r\n\r\nx\r\n`);
    assert.equal(foreign.end?.code, 250);
    const two = await c.transaction('s@example.net', ['alice@contoso.test'], `${by('mx.contoso.test')}${by('EDGE.contoso.test.')}Subject: x\r\n\r\nx\r\n`);
    assert.equal(two.end?.code, 250);
    const three = await c.transaction('s@example.net', ['alice@contoso.test'], `${by('mx.contoso.test')}${by('edge.contoso.test')}${by('mx.contoso.test')}Subject: x\r\n\r\nx\r\n`);
    assert.equal(three.end?.last, '554 5.4.6 Hop count exceeded - possible mail loop');
    await c.quit();
  });

  it('0 = never refused for local hops', async () => {
    const c = await connect('127.0.0.60');
    const t = await c.transaction('s@example.net', ['alice@contoso.test'], `${by('mx.contoso.test').repeat(20)}Subject: x\r\n\r\nx\r\n`);
    assert.equal(t.end?.code, 250);
    await c.quit();
  });
});

describe('sequencing replies come from the policy', () => {
  it('DATA before MAIL / before RCPT', async () => {
    const c = await connect();
    assert.equal((await c.cmd('DATA')).last, '503 5.5.2 Need mail command');
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
    assert.equal((await c.cmd('DATA')).last, '503 5.5.2 Need rcpt command');
    await c.quit();
  });

  it('STARTTLS with an argument, AUTH twice', async () => {
    const c = await connect('127.0.0.61');
    assert.equal((await c.cmd('STARTTLS now')).last, '501 5.5.4 Invalid arguments');
    assert.equal((await c.authPlain('alice', PASSWORD)).last, '235 2.7.0 Authentication successful');
    assert.equal((await c.authPlain('alice', PASSWORD)).last, '503 5.5.2 Already authenticated');
    await c.quit();
  });
});

describe('deliveryStatusNotificationEnabled (defect 6)', () => {
  it("Exchange's name turns DSN off in EHLO", async () => {
    const off = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.62' });
    assert.ok(!(await off.ehlo()).lines.includes('DSN'));
    await off.quit();
    const on = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
    assert.ok((await on.ehlo()).lines.includes('DSN'));
    await on.quit();
  });
});
