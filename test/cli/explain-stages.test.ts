// mailgw explain with a scenario file (every stage), and check's warnings for keys and rights
// that have no effect, as an admin runs them.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { mailgw, shippedCopy } from './helpers/binary.js';
import { makeTestCa } from '../worker/helpers/test-ca.js';

type Stage = { stage: string; reply: string; reason?: string; reasonCode: string; disconnect?: boolean; tarpitMs?: number };

describe('mailgw explain --scenario', () => {
  it('runs admission, EHLO, MAIL, RCPT, DATA and the message limits from a YAML scenario', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-scn-'));
    const file = path.join(dir, 'loop.yaml');
    writeFileSync(
      file,
      [
        'binding: 127.0.0.1:2525',
        'clientIP: 10.0.0.5',
        'connections: { open: 3, fromClient: 1 }',
        'helo: client.example.net',
        'mailFrom: a@example.net',
        'rcpt: [x@contoso.test]',
        'data: { receivedHeaders: 40 }',
        '',
      ].join('\n'),
    );
    const r = mailgw(['explain', '--scenario', file, '--json']);
    assert.equal(r.code, 0, r.err);
    const stages = (JSON.parse(r.out) as { stages: Stage[] }).stages;
    assert.deepEqual(stages.map((s) => s.stage), ['connect', 'admission', 'helo', 'mail', 'rcpt', 'data', 'message']);
    const message = stages.at(-1)!;
    assert.deepEqual([message.reply, message.reasonCode], ['554 5.4.6 Hop count exceeded - possible mail loop', 'hop-count']);
    assert.equal(message.tarpitMs, 5000, 'the Default connector tarpits the anonymous reject');
  });

  it('command-line options override the scenario file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-scn-'));
    const file = path.join(dir, 's.json');
    writeFileSync(file, JSON.stringify({ binding: '127.0.0.1:2525', clientIP: '10.0.0.5', mailFrom: 'a@example.net', rcpt: ['x@example.org'] }));
    const r = mailgw(['explain', '--scenario', file, '--rcpt', 'y@contoso.test', '--json']);
    assert.equal(r.code, 0, r.err);
    const rcpt = (JSON.parse(r.out) as { stages: Stage[] }).stages.filter((s) => s.stage === 'rcpt');
    assert.deepEqual(rcpt.map((s) => s.reply), ['250 2.1.5 Recipient OK']);
  });

  it('repeated recipients: the same rule as the listener (defect 4)', () => {
    const dir = shippedCopy();
    writeFileSync(path.join(dir, 'connectors.d/10-default.yaml'), 'name: Default\nusage: Internet\nbindings: ["0.0.0.0:2525"]\nmaxRecipientsPerMessage: 5\n');
    const rcpts = ['a', 'b', 'c', 'a', 'b', 'd'].flatMap((x) => ['--rcpt', `${x}@contoso.test`]);
    const r = mailgw(['explain', '--config', path.join(dir, 'gateway.yaml'), '--binding', '127.0.0.1:2525', '--client-ip', '10.0.0.5', '--mail-from', 'a@example.net', ...rcpts, '--json']);
    assert.equal(r.code, 0, r.err);
    const rcpt = (JSON.parse(r.out) as { stages: Stage[] }).stages.filter((s) => s.stage === 'rcpt');
    assert.deepEqual(rcpt.map((s) => s.reply), Array(6).fill('250 2.1.5 Recipient OK'));
  });

  it('--attachment: the attachment filter judges the names, and the files of an archive given as "archive: file, file"', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    writeFileSync(file, `${readFileSync(file, 'utf8')}\nattachmentFilter: {}\n`);
    const run = (...attachments: string[]) => {
      const r = mailgw(['explain', '--config', file, '--binding', '127.0.0.1:2525', '--client-ip', '10.0.0.5', '--mail-from', 'a@example.net', '--rcpt', 'bob@contoso.test', ...attachments.flatMap((a) => ['--attachment', a]), '--json']);
      assert.equal(r.code, 0, r.err);
      return (JSON.parse(r.out) as { stages: Stage[] }).stages.find((s) => s.stage === 'attachments');
    };
    assert.equal(run('report.pdf')?.reply, '250 2.6.0 <message-id> [InternalId=<queue-id>] Queued mail for delivery');
    const refused = run('report.pdf', 'files.tgz: docs/a.txt, tools/run.ps1');
    assert.equal(refused?.reply, '550 5.7.1 Message rejected due to unacceptable attachments');
    assert.match(String(refused?.reason), /run\.ps1.*files\.tgz/);
  });

  it('a scenario file that cannot be read is a usage error', () => {
    const r = mailgw(['explain', '--scenario', '/nonexistent/s.yaml']);
    assert.equal(r.code, 2);
    assert.match(r.err, /s\.yaml: cannot read: ENOENT/);
  });
});

describe('mailgw check: accepted but without effect (defect 5)', () => {
  it('warns, naming file and key, and still passes', () => {
    const dir = shippedCopy();
    writeFileSync(
      path.join(dir, 'connectors.d/40-legacy.yaml'),
      'name: Legacy\nbindings: [0.0.0.0:2600]\nremoteIPRanges: [192.0.2.64/28]\npermissionGroups: [ExchangeLegacyServers, Partners]\npermissions: [{ user: Anonymous, extendedRights: [ms-Exch-SMTP-Accept-Exch50, ms-Exch-SMTP-Accept-Authentication-Flag] }]\n',
    );
    const r = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Warnings:/);
    assert.match(r.out, /40-legacy\.yaml: permissionGroups\[0\]: permission group ExchangeLegacyServers has no effect in mailgw/);
    assert.match(r.out, /40-legacy\.yaml: permissionGroups\[1\]: permission group Partners has no effect on a connector without domainSecureEnabled/);
    assert.match(r.out, /40-legacy\.yaml: permissions\[0\]\.extendedRights\[0\]: ms-Exch-SMTP-Accept-Exch50 has no effect in mailgw/);
    assert.match(r.out, /40-legacy\.yaml: permissions\[0\]\.extendedRights\[1\]: ms-Exch-SMTP-Accept-Authentication-Flag has no effect in mailgw/);
  });
});

describe('mailgw check: domain security', () => {
  it('shows it on the connector, and an unreadable domainSecureCAFile is an error naming gateway.yaml and the key', async () => {
    const dir = shippedCopy();
    writeFileSync(path.join(dir, 'connectors.d/30-fabrikam.yaml'), 'name: Fabrikam\nusage: Partner\nbindings: [0.0.0.0:25]\nremoteIPRanges: [203.0.113.0/28]\n');
    const gateway = path.join(dir, 'gateway.yaml');
    const base = readFileSync(gateway, 'utf8');
    writeFileSync(gateway, `${base}\ntlsReceiveDomainSecureList: [fabrikam.example]\ndomainSecureCAFile: tls/partners.pem\n`);
    const bad = mailgw(['check', '--config', gateway]);
    assert.equal(bad.code, 1, bad.out + bad.err);
    assert.match(bad.out + bad.err, /gateway\.yaml: domainSecureCAFile: .*tls\/partners\.pem cannot be read: ENOENT/);
    mkdirSync(path.join(dir, 'tls'));
    writeFileSync(path.join(dir, 'tls/partners.pem'), 'not a certificate\n');
    const notPem = mailgw(['check', '--config', gateway]);
    assert.match(notPem.err, /gateway\.yaml: domainSecureCAFile: .*partners\.pem holds no PEM certificate/);
    const ca = await makeTestCa();
    writeFileSync(path.join(dir, 'tls/partners.pem'), ca.cert);
    await ca.close();
    const good = mailgw(['check', '--config', gateway]);
    assert.equal(good.code, 0, good.out + good.err);
    assert.match(good.out, /Connector "Fabrikam"[^]*?auth +Tls; domain security for fabrikam\.example/);
    assert.match(good.out, /^Domain security: receiving from fabrikam\.example on "Fabrikam"; sending to nobody$/m);
    // Sending to the partner needs the certificate mailgw presents.
    writeFileSync(gateway, `${readFileSync(gateway, 'utf8')}tlsSendDomainSecureList: [fabrikam.example]\n`);
    const noCert = mailgw(['check', '--config', gateway]);
    assert.equal(noCert.code, 1);
    assert.match(noCert.err, /gateway\.yaml: domainSecureCertificate: tlsSendDomainSecureList lists partner domains: give domainSecureCertificate and domainSecureKey/);
  });
});
