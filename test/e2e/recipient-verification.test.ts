// Recipient verification in `mailgw start` as an admin runs it (a supervisor with listener and
// worker child processes, its ops HTTP server), in front of a scripted server behind on loopback
// that holds fabrikam.test's mailboxes: an unknown recipient is refused at RCPT by whichever
// listener process takes the session (the answer shared in Redis), a known one is accepted and
// its message delivered by the worker; the metric, the agent log and `mailgw verify-recipient`
// show it; a reload that drops recipientVerification stops the probes without a restart.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { mailgwAsync } from '../cli/helpers/binary.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess } from '../ops/helpers/gateway-process.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { eventually } from '../worker/helpers/gateway.js';

let redis: TestRedis;
let far: FarSide;
let cfg: ConfigDir;
let gw: GatewayProcess;
let port = 0;
let base = '';

before(async () => {
  [redis, far] = await Promise.all([startRedis(), startFarSide({ rcpt: (a) => (a.startsWith('nobody') ? '550 5.1.1 <' + a + '>: Recipient address rejected: User unknown in virtual mailbox table' : null) })]);
  port = await freePort();
  const httpPort = await freePort();
  base = `http://127.0.0.1:${httpPort}`;
  cfg = makeConfigDir('mailgw-verify-e2e-');
  cfg.writeGateway(
    [
      'fqdn: mx.contoso.test',
      'dataDir: ./var',
      ACCEPTED,
      'routes:',
      `  - { domains: [fabrikam.test], to: "smtp://127.0.0.1:${far.port}" }`,
      'senderAuthentication: { enabled: false }',
      'recipientVerification: { domains: [fabrikam.test] }',
      `http: { listen: "127.0.0.1:${httpPort}" }`,
      '',
    ].join('\n'),
  );
  cfg.writeConnector('default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port}"]\ntarpitInterval: 0\n`);
  gw = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url });
});

after(async () => {
  const code = await gw?.stop();
  await far?.close();
  await redis?.stop();
  cfg?.remove();
  assert.equal(code, 0, gw?.output().slice(-2000));
});

const mailgw = (args: string[]) => mailgwAsync([...args, '--config', cfg.gatewayFile], { ...process.env, REDIS_URL: redis.url });

async function rcpt(to: string): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  await c.ehlo('client.example.net');
  assert.equal((await c.cmd('MAIL FROM:<sender@example.net>')).code, 250);
  const r = (await c.cmd(`RCPT TO:<${to}>`)).last;
  await c.quit();
  return r;
}

describe('recipient verification in mailgw start', () => {
  it('refuses what the server behind refuses in every listener process, and delivers the rest', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo('client.example.net');
    const t = await c.transaction('sender@example.net', ['alice@fabrikam.test', 'nobody@fabrikam.test'], 'From: sender@example.net\r\nSubject: hello\r\n\r\nhello\r\n');
    assert.deepEqual(t.rcpt.map((r) => r.last), ['250 2.1.5 Recipient OK', '550 5.1.1 User unknown']);
    assert.equal(t.end?.code, 250, t.end?.last);
    await c.quit();
    // The worker delivers to the server behind: alice only.
    const delivered = await eventually(() => far.messages.find((m) => m.mailFrom === 'sender@example.net'), 'the delivery', 15_000);
    assert.deepEqual(delivered.rcptTo, ['alice@fabrikam.test']);
    // Sessions land on either listener process: every one answers from the shared answers, no new probe.
    const probes = far.rcptSeen.filter((r) => r.from === '').length;
    assert.equal(probes, 2);
    for (let i = 0; i < 6; i++) assert.equal(await rcpt('nobody@fabrikam.test'), '550 5.1.1 User unknown');
    assert.equal(far.rcptSeen.filter((r) => r.from === '').length, probes, 'answered from Redis by every listener process');
    await eventually(async () => /^mailgw_recipient_verification_total\{result="refused",source="cache"[^}]*\} 6$/m.test(await (await fetch(`${base}/metrics`)).text()), 'the metric (six cached refusals over the listener processes)', 5000);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^mailgw_smtp_refusals_total\{connector="Default",reason="unknown-at-next-hop"[^}]*\} 7$/m);
    // The agent log: the Recipient Filter Agent refused each.
    const log = await mailgw(['agent-log', '--reason', 'unknown-at-next-hop', '--json']);
    const lines = JSON.parse(log.out) as Array<{ agent: string; action: string; smtpResponse: string; recipients: string[]; reasonData: string }>;
    assert.equal(lines.length, 7, log.err);
    assert.deepEqual([lines[0]!.agent, lines[0]!.action, lines[0]!.smtpResponse, lines[0]!.recipients], ['Recipient Filter Agent', 'RejectCommand', '550 5.1.1 User unknown', ['nobody@fabrikam.test']]);
    assert.match(lines[0]!.reasonData, new RegExp(`smtp://127\\.0\\.0\\.1:${far.port} refused RCPT TO:<nobody@fabrikam\\.test> .*User unknown in virtual mailbox table`));
    // The command reads what the listeners keep.
    const cached = await mailgw(['verify-recipient', 'nobody@fabrikam.test', '--cached']);
    assert.match(cached.out, /^<nobody@fabrikam\.test>: refused by smtp:\/\/127\.0\.0\.1:\d+ at \S+: 550 5\.1\.1 .*\n {2}RCPT would be answered 550 5\.1\.1 User unknown from the cache\n$/);
    // The mailbox is created behind: forgotten here, the next RCPT asks again.
    far.setRcpt(() => null);
    assert.equal((await mailgw(['verify-recipient', 'nobody@fabrikam.test', '--forget'])).code, 0);
    assert.equal(await rcpt('nobody@fabrikam.test'), '250 2.1.5 Recipient OK');
  });

  it('a reload without recipientVerification stops the probes, without a restart', async () => {
    const file = cfg.gatewayFile;
    writeFileSync(file, readFileSync(file, 'utf8').replace('recipientVerification: { domains: [fabrikam.test] }\n', ''));
    await gw.waitForLog((l) => l.msg === 'configuration reloaded', 'the reload', 0, 15_000);
    const before = far.rcptSeen.length;
    far.setRcpt((a) => (a.startsWith('ghost') ? '550 5.1.1 unknown' : null));
    for (let i = 0; i < 4; i++) assert.equal(await rcpt('ghost@fabrikam.test'), '250 2.1.5 Recipient OK');
    assert.equal(far.rcptSeen.length, before, 'nobody was asked');
  });
});
