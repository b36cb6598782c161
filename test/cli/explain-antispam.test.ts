// mailgw explain and check with the Edge anti-spam settings, as an admin runs them: the
// connection filter's decision at RCPT from the scenario's DNS list answers, whether sender
// authentication would run, and errors in the new keys naming file and key.
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { mailgw, shippedCopy } from './helpers/binary.js';

type Stage = { stage: string; reply: string; reasonCode: string; reason: string };

const LISTS = ['ipBlockListProviders:', '  - { name: Test BL, lookupDomain: bl.example, ipAddressesMatch: [127.0.0.2] }', 'ipBlockListConfig: { bypassedRecipients: [postmaster@contoso.test] }', ''].join('\n');

describe('mailgw explain with block lists', () => {
  it('shows the block list refusal at RCPT, the bypassed recipient, and that sender authentication would run', () => {
    const dir = shippedCopy();
    appendFileSync(path.join(dir, 'gateway.yaml'), `\n${LISTS}`);
    const scenario = path.join(dir, 's.yaml');
    writeFileSync(scenario, ['binding: 0.0.0.0:2525', 'clientIP: 203.0.113.9', 'mailFrom: a@example.net', 'rcpt: [x@contoso.test, postmaster@contoso.test]', 'ipLists: { Test BL: [127.0.0.2] }', ''].join('\n'));
    const r = mailgw(['explain', '--config', path.join(dir, 'gateway.yaml'), '--scenario', scenario, '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { stages: Stage[]; antiSpam: { applies: boolean; senderAuthentication: { applies: boolean } } };
    const rcpt = j.stages.filter((s) => s.stage === 'rcpt');
    assert.deepEqual(rcpt.map((s) => [s.reply, s.reasonCode]), [
      ['550 5.7.1 Recipient not authorized, your IP has been found on a block list', 'ip-block-list-provider'],
      ['250 2.1.5 Recipient OK', rcpt[1]!.reasonCode],
    ]);
    assert.match(rcpt[1]!.reason, /bypassedRecipients/);
    assert.equal(j.antiSpam.applies, true);
    assert.equal(j.antiSpam.senderAuthentication.applies, true);
    const text = mailgw(['explain', '--config', path.join(dir, 'gateway.yaml'), '--scenario', scenario]);
    assert.match(text.out, /sender authentication runs at DATA/);
    assert.match(text.out, /sender reputation does not count: senderReputationConfig\.enabled is false/);
  });

  it('says whether sender reputation counts the session, and refuses an IP Block List entry at RCPT', () => {
    const dir = shippedCopy();
    appendFileSync(path.join(dir, 'gateway.yaml'), '\nsenderReputationConfig: { enabled: true }\n');
    const scenario = path.join(dir, 's.yaml');
    writeFileSync(scenario, ['binding: 0.0.0.0:2525', 'clientIP: 203.0.113.9', 'mailFrom: a@example.net', 'rcpt: [x@contoso.test]', 'ipBlockList: [{ range: 203.0.113.0/24, kind: machine }]', ''].join('\n'));
    const r = mailgw(['explain', '--config', path.join(dir, 'gateway.yaml'), '--scenario', scenario, '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { stages: Stage[]; antiSpam: { senderReputation: { applies: boolean; reason: string } } };
    assert.deepEqual(j.antiSpam.senderReputation, { applies: true, reason: 'anonymous session from 203.0.113.9: rated' });
    assert.deepEqual(j.stages.filter((s) => s.stage === 'rcpt').map((s) => [s.reply, s.reasonCode]), [['550 5.7.1 Recipient not authorized, your IP has been found on a block list', 'sender-reputation-blocked']]);
  });

  it('check names the file and the key of a wrong anti-spam setting', () => {
    const dir = shippedCopy();
    appendFileSync(path.join(dir, 'gateway.yaml'), '\nipBlockListProviders:\n  - { name: Bad, lookupDomain: "not a domain" }\nsenderAuthentication: { dmarcRejectAction: bounce }\n');
    const r = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /gateway\.yaml: ipBlockListProviders\[0\]\.lookupDomain: "not a domain" is not a valid host name/);
    assert.match(r.err, /gateway\.yaml: senderAuthentication\.dmarcRejectAction: /);
  });
});
