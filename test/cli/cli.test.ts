// The mailgw binary as an admin runs it (built by pretest): exit codes and what it prints.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { verifyPassword } from '@mailgw/config';
import { bin, mailgw, root, shippedCopy } from './helpers/binary.js';


describe('mailgw check', () => {
  it('passes on the shipped config and shows every connector with its rights', () => {
    const r = mailgw(['check']);
    assert.equal(r.code, 0, r.err);
    for (const name of ['Default', 'Printers Relay', 'Client']) assert.match(r.out, new RegExp(`Connector "${name}"`));
    assert.match(r.out, /Anonymous\s+Submit, AnySender, AuthoritativeSender, HeadersRouting, AnyRecipient\(relay\)/);
    assert.match(r.out, /^Back pressure: on: 452 4\.3\.1 for anonymous senders from 80%, for everyone from 90% of the queue's Redis memory \(its maxmemory; embedded: half the machine's memory\), from 90% and 95% of the disk under \S+, and while Redis cannot write its append-only file$/m);
  });
  it('its output cut short by the reader (mailgw check | head -1): exit 0, no stack trace', async () => {
    const child = spawn(process.execPath, [bin, 'check'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    // The reader is gone before the first line is written (the CLI takes a moment to load): every write fails with EPIPE.
    child.stdout.destroy();
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.equal(err, '');
    assert.equal(code, 0);
  });
  it('--json lists connectors and principals', () => {
    const r = mailgw(['check', '--json']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual((JSON.parse(r.out) as { backPressure: unknown }).backPressure, { enabled: true, mediumPercent: 80, highPercent: 90, checkInterval: 2000, disk: { mediumPercent: 90, highPercent: 95 } });
    const j = JSON.parse(r.out) as { connectors: Array<{ name: string; rights: Array<{ principal: string; rights: string[] }> }> };
    const def = j.connectors.find((c) => c.name === 'Default')!;
    assert.ok(!def.rights.find((x) => x.principal === 'Anonymous')!.rights.includes('ms-Exch-SMTP-Accept-Any-Recipient'));
  });
  it('fails with every error naming file and key, and no stack trace', () => {
    const dir = shippedCopy();
    writeFileSync(path.join(dir, 'connectors.d/40-bad.yaml'), 'name: Bad\nbindings: [0.0.0.0:2525]\nremoteIPRanges: [192.0.2.0/28]\nauthMechanism: [Tls, BasicAuthRequireTLS]\nmaxRecipientz: 5\n');
    writeFileSync(path.join(dir, 'connectors.d/50-open.yaml'), 'name: Open\nbindings: [0.0.0.0:2526]\npermissionGroups: [AnonymousUsers]\npermissions: [{ user: Anonymous, extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient] }]\n');
    const r = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /configuration has \d+ errors?/);
    assert.match(r.err, /connectors\.d\/40-bad\.yaml: maxRecipientz: unknown key/);
    assert.match(r.err, /connectors\.d\/40-bad\.yaml: authMechanism: BasicAuthRequireTLS needs BasicAuth and Tls/);
    assert.match(r.err, /connectors\.d\/40-bad\.yaml: remoteIPRanges\[0\]: .*conflict with the settings on receive connector "Printers Relay"/);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  });
  it('shows the address rewrite entries; a wrong one is refused with file, key and why', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    writeFileSync(file, `${shipped}\naddressRewriteEntries:\n  - { name: Merger, internalAddress: fabrikam.test, externalAddress: northwind.test }\n  - { name: Subdomains, internalAddress: "*.contoso.test", externalAddress: contoso.test, outboundOnly: true, exceptionList: [legal.contoso.test] }\n`);
    const ok = mailgw(['check', '--config', file]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /Address rewriting: "Merger" fabrikam\.test <-> northwind\.test; "Subdomains" \*\.contoso\.test -> contoso\.test \(except legal\.contoso\.test\)\n/);
    assert.match(ok.out, /Transport rules: none\n/);
    writeFileSync(file, `${shipped}\naddressRewriteEntries:\n  - { name: Subdomains, internalAddress: "*.contoso.test", externalAddress: contoso.test }\n`);
    const bad = mailgw(['check', '--config', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /gateway\.yaml: addressRewriteEntries\[0\]\.outboundOnly: internalAddress \*\.contoso\.test maps many domains onto contoso\.test, which cannot be mapped back: set outboundOnly: true/);
  });
  it('shows the pickup directory: where, its mode and owner, who may write to it, what waits; --json too', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const pickup = path.join(dir, 'var', 'pickup');
    const before = mailgw(['check', '--config', file]);
    assert.equal(before.code, 0, before.err);
    assert.match(before.out, new RegExp(`^Pickup directory: ${pickup.replace(/[.]/g, '\\.')} \\(not there yet: mailgw start makes it, mode 0700\\); 100 messages/min, header up to 64KB, 100 recipients$`, 'm'));
    mkdirSync(pickup, { recursive: true, mode: 0o700 });
    chmodSync(pickup, 0o733);
    for (const f of ['a.eml', 'b.eml', 'c.bad', '.d.part']) writeFileSync(path.join(pickup, f), 'x');
    const open = mailgw(['check', '--config', file]);
    assert.match(open.out, /^Pickup directory: \S+ \(mode 0733, owner uid \d+; WRITABLE BY EVERY LOCAL USER: anyone on this machine can send as anyone\); 100 messages\/min, header up to 64KB, 100 recipients; 2 waiting, 1 \*\.bad \(not sent: the log says why\)$/m);
    const j = JSON.parse(mailgw(['check', '--config', file, '--json']).out) as { pickupDirectory: Record<string, unknown> };
    assert.deepEqual({ ...j.pickupDirectory, uid: 0 }, { path: pickup, mode: 0o733, uid: 0, waiting: 2, bad: 1, maxHeaderSize: 65536, maxMessagesPerMinute: 100, maxRecipientsPerMessage: 100 });
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^pickupDirectoryPath: .*$/m, ''));
    assert.match(mailgw(['check', '--config', file]).out, /^Pickup directory: off \(mailgw sendmail has nowhere to hand mail to: set pickupDirectoryPath\)$/m);
  });
  it('says what DSNs carry: system messages and copies to the postmaster', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    assert.match(mailgw(['check', '--config', file]).out, /DSNs: from postmaster@\S+; system messages none; copies to postmaster@\S+ none\n/);
    writeFileSync(file, `${shipped}\nsystemMessages:\n  - { dsnCode: 5.1.1, internal: true, text: "Not in the address book." }\n  - { dsnCode: 5.1.1, internal: false, text: "No such address." }\ngenerateCopyOfDSNFor: [5.1.1, 5.4.4]\nexternalPostmasterAddress: noreply@contoso.test\n`);
    const on = mailgw(['check', '--config', file]);
    assert.equal(on.code, 0, on.err);
    assert.match(on.out, /DSNs: from postmaster@(\S+) \(to senders outside: noreply@contoso\.test\); system messages 5\.1\.1 internal, 5\.1\.1 external; copies to postmaster@\1 for 5\.1\.1, 5\.4\.4\n/);
  });

  it('says what each remote domain withholds, the Default included', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    assert.match(mailgw(['check', '--config', file]).out, /\nRemote domains: Default \*: nothing withheld\n/);
    writeFileSync(file, `${shipped}\nremoteDomains:\n  - { name: Everyone, domainName: "*", autoForwardEnabled: false }\n  - { name: Fabrikam, domainName: "*.fabrikam.example", allowedOOFType: None, deliveryReportEnabled: false, ndrEnabled: false }\n`);
    const on = mailgw(['check', '--config', file]);
    assert.equal(on.code, 0, on.err);
    assert.match(on.out, /\nRemote domains: "Everyone" \*: withholds automatic forwards; "Fabrikam" \*\.fabrikam\.example: withholds automatic replies, read receipts, delay and success DSNs, NDRs\n/);
    writeFileSync(file, `${shipped}\nremoteDomains:\n  - { name: Fabrikam, domainName: fabrikam.example, isInternal: true }\n`);
    const bad = mailgw(['check', '--config', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /gateway\.yaml: remoteDomains\[0\]\.isInternal: isInternal is a Set-RemoteDomain setting mailgw does not offer/);
  });

  it('says which content filters judge messages: the attachment filter (and the archives it opens), rspamd, milters', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    assert.match(mailgw(['check', '--config', file]).out, /\nContent filters: attachment filter off; rspamd off; milters none\n/);
    writeFileSync(file, `${shipped}\nattachmentFilter: { action: Strip, exceptionConnectors: [Client] }\nrspamd: { url: 'http://127.0.0.1:11333', actions: scl }\nmilters: [{ name: opendkim, address: 'inet:127.0.0.1:8891' }, { name: dlp, address: 'inet:127.0.0.1:8892', pickup: true }]\n`);
    const on = mailgw(['check', '--config', file]);
    assert.equal(on.code, 0, on.err);
    assert.match(on.out, /\nContent filters: attachment filter Strip \(\d+ entries; names inside zip, tar, gzip, RAR, 7z, ISO and .uue files too; not on Client\); rspamd http:\/\/127\.0\.0\.1:11333 \(actions: scl; down or slow: tempfail\); milters "opendkim" inet:127\.0\.0\.1:8891 \(down or slow: tempfail\), "dlp" inet:127\.0\.0\.1:8892 \(down or slow: tempfail; also pickup mail\)\n/);
    writeFileSync(file, `${shipped}\nattachmentFilter: { openArchives: false }\n`);
    assert.match(mailgw(['check', '--config', file]).out, /Content filters: attachment filter Reject \(\d+ entries; archives judged by their own names only\);/);
  });

  it('says what bounce verification does; a short or missing secret is an error naming the key', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    assert.match(mailgw(['check', '--config', file]).out, /\nBounce verification: off\n/);
    writeFileSync(path.join(dir, 'batv.key'), 'x'.repeat(40) + '\n', { mode: 0o600 });
    writeFileSync(file, `${shipped}\nbounceVerification: { keyFile: batv.key, maxAgeDays: 5 }\n`);
    const on = mailgw(['check', '--config', file]);
    assert.equal(on.code, 0, on.err);
    assert.match(on.out, /\nBounce verification: on \(untagged bounces refused: 550 5\.7\.1\); senders of the Authoritative domains tagged \(prvs=\) on mail to outside, tags valid 5 days\n/);
    writeFileSync(path.join(dir, 'batv.key'), 'short\n', { mode: 0o600 });
    const short = mailgw(['check', '--config', file]);
    assert.notEqual(short.code, 0);
    assert.match(short.err, /bounceVerification\.keyFile: the secret is 5 characters: use 16 or more/);
  });

  it('says what sender reputation does, and warns when nothing gives it an SCL', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    const off = mailgw(['check', '--config', file]);
    assert.match(off.out, /Sender reputation: off\n/);
    writeFileSync(file, `${shipped}\nsenderReputationConfig: { enabled: true, srlBlockThreshold: 8, senderBlockingPeriod: 12 }\n`);
    const on = mailgw(['check', '--config', file]);
    assert.equal(on.code, 0, on.err);
    assert.match(on.out, /Sender reputation: anonymous sessions rated; SRL 8 or more blocks for 12 h\n/);
    assert.match(on.out + on.err, /senderReputationConfig\.enabled: no content filter gives messages an SCL/);
    writeFileSync(file, `${shipped}\nsenderReputationConfig: { enabled: true, senderBlockingEnabled: false }\n`);
    assert.match(mailgw(['check', '--config', file]).out, /Sender reputation: anonymous sessions rated; no blocking \(rated and logged only\)\n/);
  });
  it('says the journal rules and where refused reports go', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    assert.match(mailgw(['check', '--config', file]).out, /\nJournal rules: none\n/);
    writeFileSync(file, `${shipped}\njournalRules:\n  - { name: All mail, journalEmailAddress: journal@archive.example }\n  - { name: Hold, journalEmailAddress: hold@archive.example, scope: external, recipient: ceo@contoso.test, enabled: false }\njournalingReportNdrTo: journal-ndr@contoso.test\n`);
    const on = mailgw(['check', '--config', file]);
    assert.equal(on.code, 0, on.err);
    assert.match(on.out, /\nJournal rules: "All mail" Global → journal@archive\.example \(via mx:archive\.example\); "Hold" External from or to ceo@contoso\.test → hold@archive\.example \(via mx:archive\.example\) \(disabled\); reports sent from journal-ndr@contoso\.test \(a refused one comes back there\)\n/);
    writeFileSync(file, `${shipped}\njournalRules:\n  - { name: All mail, journalEmailAddress: archive }\n`);
    const bad = mailgw(['check', '--config', file]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /gateway\.yaml: journalRules\[0\]\.journalEmailAddress: "archive" is not a mailbox address/);
  });
  it("says the organisation's limits (maxSendSize, maxReceiveSize, maxRecipientEnvelopeLimit), and names the key of a bad one", () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    assert.match(mailgw(['check', '--config', file]).out, /\nOrganisation limits: none \(maxSendSize, maxReceiveSize and maxRecipientEnvelopeLimit unlimited\): only the connectors' and the directory's own\n/);
    writeFileSync(file, `${shipped}\nmaxSendSize: 10MB\nmaxReceiveSize: 25MB\nmaxRecipientEnvelopeLimit: 500\n`);
    const on = mailgw(['check', '--config', file]);
    assert.equal(on.code, 0, on.err);
    assert.match(on.out, /\nOrganisation limits: maxSendSize 10MB \(552 5\.2\.3 RESOLVER\.RST\.SendSizeLimit\.Org\), maxReceiveSize 25MB per recipient \(552 5\.2\.3 RESOLVER\.RST\.RecipSizeLimit\), maxRecipientEnvelopeLimit 500 \(452 4\.5\.3\); /);
    const j = JSON.parse(mailgw(['check', '--json', '--config', file]).out) as Record<string, unknown>;
    assert.deepEqual([j.maxSendSize, j.maxReceiveSize, j.maxRecipientEnvelopeLimit], [10 * 1024 * 1024, 25 * 1024 * 1024, 500]);
    writeFileSync(file, `${shipped}\nmaxReceiveSize: ten megabytes\n`);
    const bad = mailgw(['check', '--config', file]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /gateway\.yaml: maxReceiveSize: "ten megabytes" is not a size \(write bytes, or e\.g\. 64KB, 36MB, 2GB\), or "unlimited"/);
  });
  it('says where recipients are verified, and warns about a verified domain with no next hop to ask', () => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    const shipped = readFileSync(file, 'utf8');
    assert.match(mailgw(['check', '--config', file]).out, /Recipient verification: off\nThrottling policy: recipientRateLimit unlimited\n/);
    writeFileSync(file, `${shipped}\nrecipientVerification: { domains: [fabrikam.test], timeout: 5s }\nthrottlingPolicy: { recipientRateLimit: 2000 }\n`);
    const on = mailgw(['check', '--config', file]);
    assert.equal(on.code, 0, on.err);
    assert.match(on.out, /Recipient verification: fabrikam\.test at smtp:\/\/127\.0\.0\.1:2626\n {2}probes MAIL FROM:<>, RCPT waits 5s, then 451 4\.4\.3; accepted cached 7d \(asked again after 1d\), refused 1h; 5 probes at once per next hop\n/);
    assert.doesNotMatch(on.out + on.err, /recipientVerification\.domains/);
    assert.match(on.out, /Throttling policy: recipientRateLimit 2000 recipients per authenticated user in 24 hours\n/);
    assert.match(on.out, /\nHeader senders: an authenticated user's From: and Sender: are judged as its MAIL FROM \(550 5\.7\.60 otherwise\)/);
    const j = JSON.parse(mailgw(['check', '--json', '--config', file]).out) as { recipientVerification: { domains: unknown; timeout: number; failureAction: string }; throttlingPolicy: unknown };
    assert.deepEqual(j.recipientVerification.domains, [{ domain: 'fabrikam.test', nextHop: 'smtp://127.0.0.1:2626' }]);
    assert.deepEqual([j.recipientVerification.timeout, j.recipientVerification.failureAction], [5000, 'tempfail']);
    assert.deepEqual(j.throttlingPolicy, { recipientRateLimit: 2000 });
    // contoso.test is delivered to maildir here: nothing to ask.
    writeFileSync(file, `${shipped}\nrecipientVerification: { domains: [fabrikam.test, contoso.test] }\n`);
    const md = mailgw(['check', '--config', file]);
    assert.equal(md.code, 0, md.err);
    assert.match(md.out + md.err, /gateway\.yaml: recipientVerification\.domains\[1\]: mail for contoso\.test is delivered here \(maildir:[^)]*\): there is no next hop to ask, so every recipient of it is answered 451 4\.4\.3/);
    writeFileSync(file, `${shipped}\nrecipientVerification: { domains: [example.org] }\n`);
    const bad = mailgw(['check', '--config', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /gateway\.yaml: recipientVerification\.domains\[0\]: example\.org is not an accepted domain/);
  });
  it('the open-relay refusal is reported by check on its own', () => {
    const dir = shippedCopy();
    writeFileSync(path.join(dir, 'connectors.d/50-open.yaml'), 'name: Open\nbindings: [0.0.0.0:2526]\npermissionGroups: [AnonymousUsers]\npermissions: [{ user: Anonymous, extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient] }]\n');
    const r = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /50-open\.yaml: remoteIPRanges: connector "Open" lets anonymous clients relay/);
  });
  it("reads a connector's certificate files: one that cannot be read is an error, one for another name a warning", () => {
    const dir = shippedCopy();
    writeFileSync(path.join(dir, 'connectors.d/70-tls.yaml'), 'name: Own Cert\nusage: Client\nbindings: [0.0.0.0:2588]\ntlsCertificate: certs/mail.crt\ntlsKey: certs/mail.key\n');
    const missing = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]);
    assert.equal(missing.code, 1, missing.out);
    const file = path.join(dir, 'connectors.d/70-tls.yaml');
    assert.equal(
      missing.err,
      `mailgw: the configuration has 2 errors; nothing was started.\nErrors:\n  ${file}: tlsCertificate: cannot read ${path.join(dir, 'certs/mail.crt')}: no such file\n  ${file}: tlsKey: cannot read ${path.join(dir, 'certs/mail.key')}: no such file\n`,
    );
    mkdirSync(path.join(dir, 'certs'));
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, 'certs/mail.key'), '-out', path.join(dir, 'certs/mail.crt'), '-days', '365', '-subj', '/CN=smtp.elsewhere.test'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const foreign = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]);
    assert.equal(foreign.code, 0, foreign.err);
    assert.match(foreign.out, /\nWarnings:\n  .*connectors\.d\/70-tls\.yaml: tlsCertificate: .*\/certs\/mail\.crt does not name mail\.contoso\.test, the connector's FQDN \(it names CN=smtp\.elsewhere\.test\)/);
  });
  it('refuses an implicit-TLS connector on the port of a plain one, naming both files', () => {
    const dir = shippedCopy();
    writeFileSync(path.join(dir, 'connectors.d/60-smtps.yaml'), 'name: Smtps\nusage: Client\nbindings: [0.0.0.0:2525]\nremoteIPRanges: [198.51.100.0/24]\nimplicitTLS: true\n');
    const r = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.err, /60-smtps\.yaml: bindings: port 2525: connectors "Smtps" \(implicitTLS\) and "Default" \([^)]*10-default\.yaml\), "Printers Relay" \([^)]*\) would share one socket/);
  });
});

describe('mailgw check: routes', () => {
  // Both used to pass check and then crash `mailgw worker` (issue 16, defect 2).
  const withRoute = (route: string) => {
    const dir = shippedCopy();
    const file = path.join(dir, 'gateway.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('    to: smtp://127.0.0.1:2626 ', route));
    return file;
  };
  it('refuses a next hop with a path, naming file and key', () => {
    const r = mailgw(['check', '--config', withRoute('    to: smtp://127.0.0.1:2626/x ')]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.err, /gateway\.yaml: routes\[1\]\.to: "smtp:\/\/127\.0\.0\.1:2626\/x": a next hop is smtp:\/\/\[user:pass@\]host\[:port\], without a path/);
  });
  it('refuses an auth.passEnv naming an unset variable, and says which', () => {
    const file = withRoute('    to: smtp://127.0.0.1:2626\n    auth: { user: gw, passEnv: MAILGW_TEST_UNSET_PASS }\n   ');
    const r = mailgw(['check', '--config', file]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.err, /gateway\.yaml: routes\[1\]\.auth\.passEnv: the environment variable MAILGW_TEST_UNSET_PASS is not set/);
    const set = spawnSync(process.execPath, [bin, 'check', '--config', file], { cwd: root, encoding: 'utf8', env: { ...process.env, MAILGW_TEST_UNSET_PASS: 'x' } });
    assert.equal(set.status, 0, set.stderr);
  });
});

describe('mailgw explain', () => {
  it('prints the decision, the reply and why, per stage', () => {
    const r = mailgw(['explain', '--binding', '127.0.0.1:2525', '--client-ip', '10.0.0.5', '--mail-from', 'a@x.test', '--rcpt', 'b@y.test']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Connector: "Default"/);
    assert.match(r.out, /RCPT <b@y\.test>\n\s+reject\s+550 5\.7\.1 Unable to relay\n\s+why\s+y\.test is not an accepted domain/);
  });
  it('--json gives { connector, rights, stages }', () => {
    const r = mailgw(['explain', '--binding', '0.0.0.0:2525', '--client-ip', '192.0.2.3', '--mail-from', 'scanner@contoso.test', '--rcpt', 'x@example.org', '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { connector: string; rights: string[]; stages: Array<{ stage: string; decision: string; reply: string; reason: string }> };
    assert.equal(j.connector, 'Printers Relay');
    assert.ok(j.rights.includes('ms-Exch-SMTP-Accept-Any-Recipient'));
    assert.deepEqual(j.stages.map((s) => [s.stage, s.reply]), [
      ['connect', '220 2.0.0 SMTP server ready'],
      ['admission', '220 2.0.0 SMTP server ready'],
      ['mail', '250 2.1.0 Sender OK'],
      ['rcpt', '250 2.1.5 Recipient OK'],
    ]);
  });
  it('requires --binding and --client-ip', () => {
    assert.equal(mailgw(['explain', '--client-ip', '10.0.0.1']).code, 2);
  });
  it('--back-pressure LEVEL answers MAIL FROM as a listener under it would; a level it does not know is refused', () => {
    const args = ['explain', '--binding', '127.0.0.1:2525', '--client-ip', '10.0.0.5', '--mail-from', 'a@x.test'];
    const medium = mailgw([...args, '--back-pressure', 'medium']);
    assert.equal(medium.code, 0, medium.err);
    assert.match(medium.out, /MAIL <a@x\.test>\n\s+defer\s+452 4\.3\.1 Insufficient system resources\n\s+why\s+back pressure medium, mail from anonymous senders refused: the scenario gives back pressure medium \[back-pressure-medium\]/);
    // The gateway's own trouble is not tarpitted, although the Default connector tarpits other errors 5 s.
    assert.doesNotMatch(medium.out, /\(tarpit\)/);
    assert.match(mailgw(['explain', '--binding', '127.0.0.1:2525', '--client-ip', '10.0.0.5', '--mail-from', 'a@x.test', '--rcpt', 'b@elsewhere.test']).out, /held 5000 ms \(tarpit\)/);
    assert.match(mailgw([...args, '--back-pressure', 'normal']).out, /MAIL <a@x\.test>\n\s+accept\s+250 2\.1\.0 Sender OK/);
    const bad = mailgw([...args, '--back-pressure', 'low']);
    assert.equal(bad.code, 2);
    assert.equal(bad.err, 'mailgw explain: --back-pressure is normal, medium or high, not "low"\n');
  });
});

describe('mailgw hash-password', () => {
  it('prints a PHC scrypt hash that verifies', async () => {
    const r = mailgw(['hash-password'], 'correct horse\n');
    assert.equal(r.code, 0, r.err);
    const hash = r.out.trim();
    assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$/);
    assert.equal(await verifyPassword('correct horse', hash), true);
    assert.equal(await verifyPassword('wrong', hash), false);
  });
  it('refuses an empty password', () => {
    assert.equal(mailgw(['hash-password'], '').code, 1);
  });
});
