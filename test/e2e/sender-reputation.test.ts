// Sender reputation and the IP Block List in `mailgw start` as an admin runs it (a supervisor
// with listener and worker child processes, its own ops HTTP server), reverse DNS from the
// loopback fixture DNS server: a spam sender is blocked at its 20th message by whichever
// listener process took it and refused by all of them; the block is a warning in the log, a
// metric, an entry `mailgw ip-block-list` lists and lines of the agent log `mailgw agent-log`
// reads; an admin's entry added and removed with the command reaches the running listeners
// without a reload.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDns } from '../harness/dns-server.js';
import { mailgwAsync } from '../cli/helpers/binary.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess } from '../ops/helpers/gateway-process.js';
import { eventually } from '../worker/helpers/gateway.js';

const BLOCKED = '550 5.7.1 Your IP is blocked for bad sender reputation';
let redis: TestRedis;
let dns: TestDns;
let cfg: ConfigDir;
let gw: GatewayProcess;
let port = 0;
let base = '';

before(async () => {
  [redis, dns] = await Promise.all([startRedis(), startDnsServer({})]);
  port = await freePort();
  const httpPort = await freePort();
  base = `http://127.0.0.1:${httpPort}`;
  cfg = makeConfigDir('mailgw-srl-');
  cfg.writeGateway(
    [
      'fqdn: mx.contoso.test',
      'dataDir: ./var',
      ACCEPTED,
      'recipients: [alice@contoso.test, postmaster@contoso.test]',
      'routes:',
      '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }',
      `dns: { servers: ["${dns.server}"], timeout: 1s }`,
      'senderAuthentication: { enabled: false }',
      'senderReputationConfig: { enabled: true }',
      'ipBlockListConfig:',
      '  bypassedRecipients: [postmaster@contoso.test]',
      '  machineEntryRejectionResponse: Your IP is blocked for bad sender reputation',
      'transportRules:',
      '  - { name: Casino spam, subjectContainsWords: [casino], setScl: 9 }',
      `http: { listen: "127.0.0.1:${httpPort}" }`,
      '',
    ].join('\n'),
  );
  cfg.writeConnector('default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port}"]\ntarpitInterval: 0\n`);
  gw = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url });
});

after(async () => {
  const code = await gw?.stop();
  await dns?.close();
  await redis?.stop();
  cfg?.remove();
  assert.equal(code, 0, gw?.output().slice(-2000));
});

const mailgw = (args: string[]) => mailgwAsync([...args, '--config', cfg.gatewayFile], { ...process.env, REDIS_URL: redis.url });

async function rcpt(from: string, to: string): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: from });
  await c.ehlo('bot.example.net');
  assert.equal((await c.cmd('MAIL FROM:<sender@example.net>')).code, 250);
  const r = (await c.cmd(`RCPT TO:<${to}>`)).last;
  await c.quit();
  return r;
}

describe('sender reputation in mailgw start', () => {
  it('twenty spam messages block the sender in every listener process; log, metric and the list show it', async () => {
    for (let i = 0; i < 20; i++) {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.81' });
      await c.ehlo('bot.example.net');
      const t = await c.transaction('sender@example.net', ['alice@contoso.test'], `From: sender@example.net\r\nSubject: casino night ${i}\r\n\r\nwin\r\n`);
      assert.equal(t.end?.code, 250, t.end?.last);
      await c.quit();
    }
    await gw.waitForLog((l) => l.msg === 'sender blocked by sender reputation' && l.subject === '127.0.0.81', 'the block in the log', 0, 10_000);
    // Connections land on either listener process: the one that blocked knows at once, the
    // others at their next look at the list (each second): then every connection is refused.
    await eventually(async () => {
      for (let i = 0; i < 6; i++) if ((await rcpt('127.0.0.81', 'alice@contoso.test')) !== BLOCKED) return false;
      return true;
    }, 'six refusals in a row', 5000);
    assert.equal(await rcpt('127.0.0.81', 'postmaster@contoso.test'), '250 2.1.5 Recipient OK');
    const list = await mailgw(['ip-block-list']);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /^127\.0\.0\.81 +sender reputation +\S+ +\S+ +SRL 9: spam \+8/m);
    await eventually(async () => /^mailgw_sender_reputation_blocks_total\{srl="9"[^}]*\} 1$/m.test(await (await fetch(`${base}/metrics`)).text()), 'the metric', 5000);
    const rep = await mailgw(['reputation', '127.0.0.81']);
    assert.match(rep.out, /not rated yet: 0 of 20 messages/, 'the profile starts afresh after the block');
    assert.match(rep.out, /On the IP Block List: 127\.0\.0\.81 \(sender reputation\)/);
    // The agent log (Exchange's Get-AgentLog) of this machine: the Edge rule's SCL for each of the
    // twenty messages, the block, and the refusals after it; summarised as the Exchange scripts do.
    const scl = await mailgw(['agent-log', '--reason', 'scl-9', '--top', 'ips']);
    assert.equal(scl.out, '20  127.0.0.81\n', scl.err);
    const [ruleLine] = JSON.parse((await mailgw(['agent-log', '--reason', 'scl-9', '--json', '--limit', '1'])).out) as Array<{ agent: string; action: string; p1FromAddress: string; p2FromAddresses: string[]; messageId: string; networkMsgId: string; smtpResponse: string }>;
    assert.deepEqual([ruleLine!.agent, ruleLine!.action, ruleLine!.p1FromAddress, ruleLine!.p2FromAddresses], ['Edge Rule Agent', 'AcceptMessage', 'sender@example.net', ['sender@example.net']]);
    assert.match(ruleLine!.smtpResponse, new RegExp(`^250 2\\.6\\.0 .*\\[InternalId=${ruleLine!.networkMsgId}\\] Queued mail for delivery$`));
    const blockLine = await mailgw(['agent-log', '--agent', 'protocol analysis']);
    assert.match(blockLine.out + blockLine.err, /^\S+Z {2}127\.0\.0\.81 {2}Protocol Analysis Agent {2}BlockSender {2}sender-reputation {2}<>\n {4}SRL 9: spam \+8 .*on the IP Block List until 20/);
    const refusals = await mailgw(['agent-log', '--agent', 'connection', '--ip', '127.0.0.0/24', '--json']);
    const lines = JSON.parse(refusals.out) as Array<{ ipAddress: string; action: string; reason: string; smtpResponse: string; recipients: string[] }>;
    assert.ok(lines.length >= 6, refusals.out);
    for (const l of lines) assert.deepEqual([l.ipAddress, l.action, l.reason, l.smtpResponse, l.recipients], ['127.0.0.81', 'RejectCommand', 'sender-reputation-blocked', BLOCKED, ['alice@contoso.test']]);
  });

  it('an admin\'s entry and its removal reach the running listeners without a reload', async () => {
    assert.equal(await rcpt('127.0.0.82', 'alice@contoso.test'), '250 2.1.5 Recipient OK');
    const add = await mailgw(['ip-block-list', 'add', '127.0.0.82', '--for', '1h', '--comment', 'e2e']);
    assert.equal(add.code, 0, add.err);
    const allSay = (want: string) => async () => {
      for (let i = 0; i < 6; i++) if ((await rcpt('127.0.0.82', 'alice@contoso.test')) !== want) return false;
      return true;
    };
    await eventually(allSay('550 5.7.1 Recipient not authorized, your IP has been found on a block list'), 'the admin entry to apply in every listener', 5000);
    assert.equal((await mailgw(['ip-block-list', 'remove', '127.0.0.82'])).code, 0);
    await eventually(allSay('250 2.1.5 Recipient OK'), 'the removal to apply in every listener', 5000);
  });
});
