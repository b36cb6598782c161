// mailgw explain --pickup FILE (the built binary): what the pickup directory would do with a
// message file, without dropping it: its envelope, each recipient as RCPT judges it (an unknown
// mailbox failed with a DSN), the transport rules on its real header, the journal rules; for a
// file it would rename *.bad (no sender, a symbolic link), why; --json; a missing file is an error.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { mailgw, shippedCopy } from './helpers/binary.js';

const dir = shippedCopy();
const config = path.join(dir, 'gateway.yaml');
writeFileSync(
  config,
  `${readFileSync(config, 'utf8')}
recipients: [ops@contoso.test, postmaster@contoso.test]
transportRules:
  - { name: No secrets, subjectContainsWords: [secret], smtpRejectMessageRejectText: "No secrets by mail" }
  - { name: Tag, subjectContainsWords: [report], prependSubject: "[Nightly] " }
journalRules:
  - { name: Ops, journalEmailAddress: journal@archive.test, recipient: ops@contoso.test }
`,
);
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  writeFileSync(path.join(dir, name), text);
  return path.join(dir, name);
};

describe('mailgw explain --pickup', () => {
  it('the envelope, each recipient, the rules and journal rules on the real header', () => {
    const f = file('a.eml', 'From: cron@contoso.test\nTo: ops@contoso.test, opps@contoso.test\nBcc: x@example.net\nSubject: daily report\n\nhi\n');
    const r = mailgw(['explain', '--config', config, '--pickup', f]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Pickup file: \S+a\.eml \(\d+ bytes, owner uid \d+\); submitted as connector "Pickup"/);
    assert.match(r.out, /\nPICKUP 4 header field\(s\), \d+ bytes\n  accept  taken: queued, the file deleted \(unless refused below\)\n  why     envelope from the header: <cron@contoso\.test> to 3 recipients, Bcc removed \[pickup-envelope\]\n/);
    assert.match(r.out, /\nRCPT ops@contoso\.test\n  accept  250 2\.1\.5 Recipient OK\n/);
    assert.match(r.out, /\nRCPT opps@contoso\.test\n  reject  550 5\.1\.1 User unknown\n  why     .*the pickup stores it failed from the start \(a DSN to the sender\) when another recipient is taken \[user-unknown\]\n/);
    assert.match(r.out, /\nRCPT x@example\.net\n  accept  250 2\.1\.5 Recipient OK\n/);
    assert.match(r.out, /\nRULES 2 transport rule\(s\) on 4 header field\(s\)\n  accept  .*\n  why     rule "Tag" prepended "\[Nightly\] " to the Subject/);
    assert.match(r.out, /\nJOURNAL 2 recipient\(s\)\n  accept  .*\n  why     .*Ops.* \[journaled\]\n/);
  });
  it('refused by a rule; every recipient unknown; no sender; a symbolic link: why it would become *.bad', () => {
    const secret = mailgw(['explain', '--config', config, '--pickup', file('s.eml', 'From: a@contoso.test\nTo: ops@contoso.test\nSubject: the secret plan\n\nx\n')]);
    assert.match(secret.out, /\nRULES .*\n  reject  550 5\.7\.1 No secrets by mail\n/);
    const nobody = mailgw(['explain', '--config', config, '--pickup', file('n.eml', 'From: a@contoso.test\nTo: nobody@contoso.test\n\nx\n')]);
    assert.match(nobody.out, /\nPICKUP\n  reject  not sent: the file is renamed \*\.bad\n  why     every recipient was refused \(1\) \[user-unknown\]\n$/);
    const noFrom = mailgw(['explain', '--config', config, '--pickup', file('b.eml', 'To: ops@contoso.test\n\nhi\n')]);
    assert.match(noFrom.out, /\n  reject  not sent: the file is renamed \*\.bad\n  why     the file has no From or Sender field: nobody to send it as \[pickup-no-sender\]\n$/);
    symlinkSync(path.join(dir, 'a.eml'), path.join(dir, 'l.eml'));
    const j = JSON.parse(mailgw(['explain', '--config', config, '--pickup', path.join(dir, 'l.eml'), '--json']).out) as { connector: string; stages: Array<{ stage: string; decision: string; reasonCode: string }> };
    assert.equal(j.connector, 'Pickup');
    assert.deepEqual(j.stages.map((s) => [s.stage, s.decision, s.reasonCode]), [['pickup', 'reject', 'pickup-symlink']]);
  });
  it('a file that is not there is an error', () => {
    const r = mailgw(['explain', '--config', config, '--pickup', path.join(dir, 'missing.eml')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /^mailgw explain: --pickup \S+missing\.eml: no such file\n$/);
  });
});
