// Client submission over real SMTP: STARTTLS, AUTH only after it (BasicAuthRequireTLS),
// requireTLS, logon-failure limit, send-as checks, messageRateLimit per user (in Redis), and
// the STARTTLS command-injection case. Clients: the raw client, nodemailer and swaks.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRedisRateCounter, ensureSelfSigned, type RateCounter } from '@mailgw/listener';
import { pino } from 'pino';
import SMTPConnection, { type SMTPConnectionSendInfo } from 'nodemailer/lib/smtp-connection';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { PASSWORD, freePort, startGateway, type TestGateway } from './helpers/gateway.js';
import { RawSmtp, queueIdOf } from './helpers/smtp-client.js';

const run = promisify(execFile);
let redis: TestRedis;
let gw: TestGateway;
let rate: RateCounter;
let certDir: string;
const port: Record<string, number> = {};

before(async () => {
  redis = await startRedis();
  for (const k of ['client', 'metered', 'internet', 'submit', 'legacy', 'implicit', 'owncert']) port[k] = await freePort();
  certDir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-cert-'));
  const own = await ensureSelfSigned(certDir, 'own.contoso.test', pino({ level: 'silent' }), 'test');
  rate = createRedisRateCounter({ url: redis.url, prefix: '{mailgw}' });
  gw = await startGateway({
    redisUrl: redis.url,
    rateCounter: rate,
    connectors: {
      client: { name: 'Client', usage: 'Client', bindings: [`0.0.0.0:${port.client}`], requireTLS: true, maxLogonFailures: 2, messageRateLimit: 'unlimited', tarpitInterval: 0 },
      metered: { name: 'Metered', usage: 'Client', bindings: [`0.0.0.0:${port.metered}`], messageRateLimit: 2, tarpitInterval: 0 },
      internet: { name: 'Internet', usage: 'Internet', bindings: [`0.0.0.0:${port.internet}`], tarpitInterval: 0 },
      submit: {
        name: 'Submit only',
        usage: 'Custom',
        bindings: [`0.0.0.0:${port.submit}`],
        permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Submit'] }],
        tarpitInterval: 0,
      },
      owncert: { name: 'Own certificate', usage: 'Internet', bindings: [`0.0.0.0:${port.owncert}`], tlsCertificate: own.certFile, tlsKey: own.keyFile, tarpitInterval: 0 },
      implicit: { name: 'Implicit TLS', usage: 'Client', bindings: [`0.0.0.0:${port.implicit}`], implicitTLS: true, messageRateLimit: 'unlimited', tarpitInterval: 0 },
      legacy: { name: 'Legacy', usage: 'Custom', bindings: [`0.0.0.0:${port.legacy}`], authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['ExchangeUsers'], tarpitInterval: 0 },
    },
  });
});

after(async () => {
  await gw?.close();
  await rate?.close();
  await redis?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

const connect = (name: string, localAddress = '127.0.0.1') => RawSmtp.connect({ host: '127.0.0.1', port: port[name]!, localAddress });

const message = (from: string, to: string) => `From: <${from}>\r\nTo: <${to}>\r\nSubject: submission\r\nMessage-ID: <sub-${Math.random().toString(36).slice(2)}@client.test>\r\n\r\nHello.\r\n`;

describe('STARTTLS and AUTH', () => {
  it('before STARTTLS: no AUTH offered, AUTH refused with 504 5.7.4, MAIL refused with 451 5.7.3 and the connection closed', async () => {
    const c = await connect('client');
    const ehlo = await c.ehlo();
    assert.ok(ehlo.lines.includes('STARTTLS'), ehlo.lines.join('|'));
    assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')), ehlo.lines.join('|'));
    assert.equal((await c.authPlain('alice', PASSWORD)).last, '504 5.7.4 Unrecognized authentication type');
    assert.equal((await c.cmd('AUTH LOGIN')).last, '504 5.7.4 Unrecognized authentication type');
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '451 5.7.3 STARTTLS is required to send mail');
    await c.closed;
    assert.deepEqual(await gw.stored(), { bodies: 0, jobs: 0 });
    // The refused AUTHs are logged as any refused command, with the policy's why.
    const refusals = gw.logs.filter((l) => l.msg === 'policy refused' && l.reply === '504 5.7.4 Unrecognized authentication type');
    assert.ok(refusals.length >= 2, JSON.stringify(refusals));
    assert.ok(refusals.every((l) => typeof l.why === 'string' && l.why.length > 0 && typeof l.sessionId === 'string'));
  });

  it('after STARTTLS: AUTH PLAIN succeeds with 235, rights switch, own address only, relay allowed, mail queued with TLS and user', async () => {
    const c = await connect('client');
    await c.ehlo();
    assert.equal((await c.starttls()).last, '220 2.0.0 SMTP server ready');
    const ehlo = await c.ehlo();
    assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), ehlo.lines.join('|'));
    assert.ok(!ehlo.lines.includes('STARTTLS'), ehlo.lines.join('|'));
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '530 5.7.1 Client was not authenticated');
    assert.equal((await c.authPlain('alice', PASSWORD)).last, '235 2.7.0 Authentication successful');
    assert.ok(!(await c.ehlo()).lines.some((l) => l.startsWith('AUTH')));
    assert.equal((await c.cmd('MAIL FROM:<bob@contoso.test>')).last, '550 5.7.1 Client does not have permissions to send as this sender');
    const t = await c.transaction('alice@contoso.test', ['friend@example.org', 'bob@fabrikam.test'], message('alice@contoso.test', 'friend@example.org'));
    assert.equal(t.mail.last, '250 2.1.0 Sender OK');
    assert.deepEqual(t.rcpt.map((r) => r.last), ['250 2.1.5 Recipient OK', '250 2.1.5 Recipient OK']);
    assert.match(t.end!.last, /^250 2\.6\.0 <sub-\w+@client\.test> \[InternalId=[0-9A-Z]{26}\] Queued mail for delivery$/);
    const id = queueIdOf(t.end!);
    const job = (await gw.job(id))!;
    assert.equal(job.data.authUser, 'alice');
    assert.equal(job.data.connector, 'Client');
    assert.match(job.data.tls!.protocol, /^TLSv1\.[23]$/);
    assert.deepEqual(job.data.rcptTo.map((r) => r.address), ['friend@example.org', 'bob@fabrikam.test']);
    const body = (await gw.body(id))!.toString('latin1');
    assert.match(body, /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.contoso\.test \(mailgw, connector Client\)\r\n\twith ESMTPSA \(TLSv1\.[23] cipher=\S+\) \(authenticated as alice\)\r\n\tid [0-9A-Z]{26}; /);
    await c.quit();
  });

  it("serves the connector's certificate files, or a self-signed one for its FQDN", async () => {
    const own = await connect('owncert');
    await own.ehlo();
    await own.starttls();
    assert.equal(own.peerCertificate()?.subject.CN, 'own.contoso.test');
    await own.quit();
    const made = await connect('internet');
    await made.ehlo();
    await made.starttls();
    const cert = made.peerCertificate()!;
    assert.equal(cert.subject.CN, 'mx.contoso.test');
    assert.equal(cert.issuer.CN, 'mx.contoso.test', 'self-signed');
    assert.match(cert.subjectaltname ?? '', /DNS:mx\.contoso\.test/);
    await made.quit();
    assert.ok(gw.logs.some((l) => l.level === 40 && /SELF-SIGNED certificate for mx\.contoso\.test/.test(l.msg)), 'the generation is logged as a warning');
  });

  it('implicitTLS: TLS from the first byte, AUTH offered at once, no STARTTLS', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port: port.implicit!, tls: true });
    assert.match(c.greeting!.last, /^220 mx\.contoso\.test /);
    const ehlo = await c.ehlo();
    assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), ehlo.lines.join('|'));
    assert.ok(!ehlo.lines.includes('STARTTLS'), ehlo.lines.join('|'));
    assert.equal((await c.cmd('STARTTLS')).last, '500 5.3.3 Unrecognized command');
    assert.equal((await c.authPlain('alice', PASSWORD)).last, '235 2.7.0 Authentication successful');
    const t = await c.transaction('alice@contoso.test', ['friend@example.org'], message('alice@contoso.test', 'friend@example.org'));
    const job = (await gw.job(queueIdOf(t.end!)))!;
    assert.equal(job.data.connector, 'Implicit TLS');
    assert.ok(job.data.tls);
    await c.quit();
  });

  it('AUTH LOGIN through nodemailer (STARTTLS required) and a message sent', async () => {
    const conn = new SMTPConnection({ host: '127.0.0.1', port: port.client!, localAddress: '127.0.0.20', requireTLS: true, tls: { rejectUnauthorized: false }, name: 'laptop.test' });
    await new Promise<void>((resolve, reject) => conn.connect((err) => (err ? reject(err) : resolve())));
    await new Promise<void>((resolve, reject) => conn.login({ method: 'LOGIN', user: 'alice', pass: PASSWORD }, (err) => (err ? reject(err) : resolve())));
    const info = await new Promise<SMTPConnectionSendInfo>((resolve, reject) =>
      conn.send({ from: 'alice@contoso.test', to: ['carol@example.org'] }, message('alice@contoso.test', 'carol@example.org'), (err, i) => (err || !i ? reject(err) : resolve(i))),
    );
    conn.quit();
    assert.deepEqual(info.accepted, ['carol@example.org']);
    assert.match(info.response, /^250 2\.6\.0 .* Queued mail for delivery$/);
  });

  it('wrong password and unknown user get the same 535; the limit-th failure gets 421 4.7.0 and the close', async () => {
    const c = await connect('client', '127.0.0.22');
    await c.ehlo();
    await c.starttls();
    await c.ehlo();
    assert.equal((await c.authPlain('alice', 'wrong')).last, '535 5.7.3 Authentication unsuccessful');
    assert.equal((await c.authPlain('mallory', 'wrong')).last, '421 4.7.0 Too many errors on this connection, closing transmission channel');
    await c.closed;
    const d = await connect('client', '127.0.0.22');
    await d.ehlo();
    await d.starttls();
    await d.ehlo();
    assert.equal((await d.authPlain('nobody-here', PASSWORD)).last, '535 5.7.3 Authentication unsuccessful');
    await d.quit();
  });

  it('swaks submits with STARTTLS and AUTH PLAIN', async () => {
    const { stdout } = await run('swaks', [
      '--server', `127.0.0.1:${port.client}`, '--local-interface', '127.0.0.21', '--tls',
      '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', PASSWORD,
      '--from', 'alice@contoso.test', '--to', 'dave@example.org', '--helo', 'swaks.test',
    ]);
    assert.match(stdout, /<~ {2}235 2\.7\.0 Authentication successful/);
    assert.match(stdout, /<~ {2}250 2\.6\.0 <\S+> \[InternalId=[0-9A-Z]{26}\] Queued mail for delivery/);
  });
});

describe('sender checks', () => {
  it('an anonymous client without send rights may not use any sender', async () => {
    const c = await connect('submit');
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<someone@example.net>')).last, '550 5.7.1 Anonymous client does not have permissions to send as this sender');
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '550 5.7.1 Anonymous client does not have permissions to send as this sender');
    // The null sender (DSNs) is always allowed.
    assert.equal((await c.cmd('MAIL FROM:<>')).last, '250 2.1.0 Sender OK');
    await c.quit();
  });

  it('a submission without MAIL rights at all gets 530 5.7.1', async () => {
    const c = await connect('metered');
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '530 5.7.1 Client was not authenticated');
    await c.quit();
  });
});

describe('messageRateLimit', () => {
  it('counts per user in a sliding minute and answers 421 4.4.2 and closes beyond it', async () => {
    const c = await connect('metered', '127.0.0.30');
    await c.ehlo();
    await c.starttls();
    await c.ehlo();
    assert.equal((await c.authPlain('alice', PASSWORD)).code, 235);
    for (let i = 0; i < 2; i++) {
      const t = await c.transaction('alice@contoso.test', ['friend@example.org'], message('alice@contoso.test', 'friend@example.org'));
      assert.equal(t.end?.code, 250, t.end?.last);
    }
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '421 4.4.2 Message submission rate for this client has exceeded the configured limit');
    await c.closed;
    // The count is per user, whatever the client address: a new connection is still over the limit.
    const d = await connect('metered', '127.0.0.31');
    await d.ehlo();
    await d.starttls();
    await d.ehlo();
    await d.authPlain('alice', PASSWORD);
    assert.equal((await d.cmd('MAIL FROM:<alice@contoso.test>')).code, 421);
    await d.closed;
  });
});

describe('STARTTLS command injection', () => {
  it('a command pipelined behind STARTTLS in the same packet is not executed', async () => {
    const c = await connect('internet');
    await c.ehlo();
    c.write('STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n');
    assert.equal((await c.read()).last, '220 2.0.0 SMTP server ready');
    await c.upgrade();
    const ehlo = await c.ehlo();
    assert.equal(ehlo.lines[0], 'mx.contoso.test Hello [127.0.0.1]', 'the first reply inside TLS answers our EHLO');
    // Had the injected MAIL run, this would be 503 5.5.2 Sender already specified.
    assert.equal((await c.cmd('MAIL FROM:<real@example.net>')).last, '250 2.1.0 Sender OK');
    await c.quit();
  });

  it('an identity from AUTH before STARTTLS does not survive the handshake (RFC 3207 4.2)', async () => {
    const c = await connect('legacy', '127.0.0.32');
    await c.ehlo();
    assert.equal((await c.authPlain('alice', PASSWORD)).last, '235 2.7.0 Authentication successful');
    assert.equal((await c.starttls()).code, 220);
    const ehlo = await c.ehlo();
    assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), 'AUTH is offered again: the session is anonymous');
    assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, '530 5.7.1 Client was not authenticated');
    assert.equal((await c.cmd('STARTTLS')).last, '500 5.3.3 Unrecognized command');
    await c.quit();
  });
});
