// Journal rules as the policy judges them (journalTargets): scope (Global, Internal, External),
// a rule's recipient, one report per journaling mailbox, disabled rules, mail to a journaling
// mailbox and trusted journal reports not journaled; the configuration's errors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, formatIssue } from '@mailgw/config';
import { parse } from 'yaml';
import { authDirectory, connect, explain, journalAddresses, journalReportEnvelope, journalTargets, trustedJournalReport, type Policy } from '../src/index.js';
import { compile, mailAddress, policy as compiled } from './fixture.js';

const CONNECTORS = [
  { name: 'Internet', usage: 'Internet', bindings: ['127.0.0.1:25'] },
  { name: 'Exchange', bindings: ['127.0.0.1:25'], remoteIPRanges: ['127.0.0.30'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
];

function setUp(journalRules: unknown[], extra: Record<string, unknown> = {}): Policy {
  return compiled({ acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: 'fabrikam.test', type: 'InternalRelay' }, { domain: 'partner.test', type: 'ExternalRelay' }], journalRules, ...extra }, CONNECTORS);
}

const judge = (p: Policy, from: string | null, to: string[], isJournalReport = false) => journalTargets(p, { sender: from === null ? null : mailAddress(from), recipients: to.map(mailAddress), isJournalReport });
const where = (p: Policy, from: string | null, to: string[]) => judge(p, from, to).targets.map((t) => `${t.address} ${t.rules.join('+')}`);

describe('journal rules (journalTargets)', () => {
  const p = setUp([
    { name: 'All', journalEmailAddress: 'all@archive.test' },
    { name: 'Inside', journalEmailAddress: 'inside@archive.test', scope: 'internal' },
    { name: 'Outside', journalEmailAddress: 'outside@archive.test', scope: 'External' },
    { name: 'Also all', journalEmailAddress: 'ALL@archive.test' },
    { name: 'CEO', journalEmailAddress: 'hold@archive.test', recipient: 'CEO@contoso.test' },
    { name: 'Off', journalEmailAddress: 'off@archive.test', enabled: false },
  ]);

  it('scope: Internal when the sender and every recipient are in Authoritative or InternalRelay domains; External otherwise (the null sender too); Global always', () => {
    assert.deepEqual(where(p, 'alice@contoso.test', ['bob@contoso.test', 'eve@fabrikam.test']), ['all@archive.test All+Also all', 'inside@archive.test Inside']);
    assert.deepEqual(where(p, 'alice@contoso.test', ['bob@contoso.test', 'x@partner.test']), ['all@archive.test All+Also all', 'outside@archive.test Outside'], 'ExternalRelay is outside');
    assert.deepEqual(where(p, 'someone@example.org', ['bob@contoso.test']), ['all@archive.test All+Also all', 'outside@archive.test Outside']);
    assert.deepEqual(where(p, null, ['bob@contoso.test']), ['all@archive.test All+Also all', 'outside@archive.test Outside'], 'a bounce');
  });

  it("a rule's recipient: only mail from or to it (any case); a disabled rule never", () => {
    assert.deepEqual(where(p, 'someone@example.org', ['ceo@contoso.test']).at(-1), 'hold@archive.test CEO');
    assert.deepEqual(where(p, 'ceo@contoso.test', ['someone@example.org']).at(-1), 'hold@archive.test CEO');
    assert.ok(!where(p, 'someone@example.org', ['bob@contoso.test']).some((t) => t.startsWith('hold@')));
    assert.ok(!JSON.stringify(judge(p, 'a@contoso.test', ['b@contoso.test'])).includes('off@archive.test'));
    assert.match(judge(p, 'someone@example.org', ['bob@contoso.test']).reason, /not: "Inside" \(Internal: the message is external\), "CEO" \(only mail from or to ceo@contoso\.test\)/);
  });

  it('not journaled: mail only to journaling mailboxes (they are left out of the judgement), a journal report, no enabled rule', () => {
    assert.deepEqual(judge(p, 'alice@contoso.test', ['all@archive.test', 'Hold@Archive.test']).targets, []);
    assert.equal(judge(p, 'alice@contoso.test', ['all@archive.test']).reason, 'every recipient is a journaling mailbox');
    assert.deepEqual(where(p, 'alice@contoso.test', ['all@archive.test', 'bob@contoso.test']), ['all@archive.test All+Also all', 'inside@archive.test Inside'], 'the archive address does not make it external');
    assert.deepEqual(judge(p, 'alice@contoso.test', ['bob@contoso.test'], true).targets, []);
    assert.deepEqual(judge(setUp([]), 'a@contoso.test', ['b@contoso.test']), { targets: [], reason: 'no enabled journal rules' });
    assert.deepEqual([...journalAddresses(setUp([{ name: 'A', journalEmailAddress: 'a@archive.test' }], { journalingReportNdrTo: 'Ndr@Contoso.test' }))], ['a@archive.test', 'ndr@contoso.test']);
  });

  it('X-MS-Journal-Report is trusted only from the organisation\'s servers (externally secured, or Accept-Headers-Organization): from the Internet it cannot escape journaling', () => {
    const internet = connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: '192.0.2.1' }).session!;
    const exchange = connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: '127.0.0.30' }).session!;
    assert.equal(trustedJournalReport(internet, true), false);
    assert.equal(trustedJournalReport(exchange, true), true);
    assert.equal(trustedJournalReport(exchange, false), false);
  });

  it('explain shows the journal stage after the message: which mailboxes, by which rules, or why none', () => {
    const stage = (from: string, rcpt: string[], headers: string[] = [], clientIP = '192.0.2.1') => explain(p, { binding: '127.0.0.1:25', clientIP, mailFrom: from, rcpt, data: { headers } }).stages.find((x) => x.stage === 'journal');
    const out = stage('someone@example.org', ['ceo@contoso.test']);
    assert.equal(out?.reasonCode, 'journaled');
    assert.equal(out?.reason, 'journaled: "All", "Also all" → all@archive.test; "Outside" → outside@archive.test; "CEO" → hold@archive.test; not: "Inside" (Internal: the message is external)');
    assert.equal(stage('someone@example.org', ['bob@contoso.test'], ['X-MS-Journal-Report:'])?.reasonCode, 'journaled', 'forged from the Internet');
    assert.equal(stage('alice@contoso.test', ['bob@contoso.test'], ['X-MS-Journal-Report:'], '127.0.0.30')?.reason, 'the message is a journal report (X-MS-Journal-Report): not journaled again');
    assert.equal(explain(setUp([]), { binding: '127.0.0.1:25', clientIP: '192.0.2.1', mailFrom: 'a@example.org', rcpt: ['bob@contoso.test'], data: true }).stages.some((x) => x.stage === 'journal'), false, 'no rules: no stage');
  });

  it("with a directory, a rule's recipient may be a group: the directory is asked about the group and the parties, then its members' mail is journaled", () => {
    const r = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }], directory: { url: ['ldap://127.0.0.1:1'], bindDn: 'cn=svc', bindPasswordEnv: 'LDAP_PW', baseDn: 'dc=contoso,dc=test', preset: 'activeDirectory' }, journalRules: [{ name: 'Sales', journalEmailAddress: 'hold@archive.test', recipient: 'sales@contoso.test' }] }, CONNECTORS, { LDAP_PW: 'secret' });
    assert.ok(r.ok);
    const dp = r.policy;
    const SALES = 'CN=Sales,OU=Groups,DC=contoso,DC=test';
    const ask = journalTargets(dp, { sender: mailAddress('someone@example.org'), recipients: [mailAddress('carol@contoso.test')] });
    assert.deepEqual(ask.targets, []);
    assert.deepEqual(ask.unansweredMembership, ['sales@contoso.test', 'someone@example.org', 'carol@contoso.test']);
    const memberships = new Map([
      ['sales@contoso.test', { kind: 'found' as const, dn: SALES, groups: [] }],
      ['someone@example.org', { kind: 'not-found' as const }],
      ['carol@contoso.test', { kind: 'found' as const, dn: 'CN=Carol,OU=People,DC=contoso,DC=test', groups: ['cn=sales,ou=groups,dc=contoso,dc=test'] }],
      ['alice@contoso.test', { kind: 'found' as const, dn: 'CN=Alice,OU=People,DC=contoso,DC=test', groups: ['CN=Helpdesk,OU=Groups,DC=contoso,DC=test'] }],
    ]);
    const member = journalTargets(dp, { sender: mailAddress('someone@example.org'), recipients: [mailAddress('carol@contoso.test')], memberships });
    assert.deepEqual(member.targets, [{ address: 'hold@archive.test', rules: ['Sales'] }]);
    assert.equal(member.unansweredMembership, undefined);
    assert.match(member.reason, /\(carol@contoso\.test is in sales@contoso\.test\)/);
    const other = journalTargets(dp, { sender: mailAddress('someone@example.org'), recipients: [mailAddress('alice@contoso.test')], memberships });
    assert.deepEqual(other.targets, []);
    assert.match(other.reason, /"Sales" \(only mail from or to sales@contoso\.test or its members\)/);
    // Without a directory the recipient is an address only: nothing asked.
    const plain = setUp([{ name: 'Sales', journalEmailAddress: 'hold@archive.test', recipient: 'sales@contoso.test' }]);
    assert.equal(journalTargets(plain, { sender: mailAddress('someone@example.org'), recipients: [mailAddress('carol@contoso.test')] }).unansweredMembership, undefined);
  });

  it("the reports' envelope: from journalingReportNdrTo (else the null sender with NOTIFY=NEVER), RET=HDRS; To/Cc/Bcc lines only for a logged-on user who may not send as anyone", () => {
    const internet = connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: '192.0.2.1' }).session!;
    const exchange = connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: '127.0.0.30' }).session!;
    const user = authDirectory(internet, { kind: 'ok', identity: { login: 'alice', dn: 'cn=Alice,dc=contoso,dc=test', addresses: ['alice@contoso.test'], groups: [] } }).session;
    const e = journalReportEnvelope(p, internet);
    assert.deepEqual({ ...e, skip: [...e.skip] }, { from: 'postmaster@contoso.test', sender: null, notify: ['NEVER'], ret: 'HDRS', addressingTrusted: false, skip: ['all@archive.test', 'inside@archive.test', 'outside@archive.test', 'hold@archive.test', 'off@archive.test'] });
    assert.equal(journalReportEnvelope(p, user).addressingTrusted, true);
    assert.equal(journalReportEnvelope(p, exchange).addressingTrusted, false, 'a server may send as anyone');
    const withNdr = setUp([{ name: 'A', journalEmailAddress: 'a@archive.test' }], { journalingReportNdrTo: 'Journal-NDR@contoso.test' });
    const n = journalReportEnvelope(withNdr, connect(withNdr, { localAddress: '127.0.0.1', localPort: 25, clientIP: '192.0.2.1' }).session!);
    assert.deepEqual([n.sender, n.notify], [{ local: 'journal-ndr', domain: 'contoso.test' }, null]);
  });

  it('configuration: errors name the rule and key', () => {
    const errors = (journalRules: unknown, extra: Record<string, unknown> = {}) => {
      const r = buildConfig({
        gatewayFile: 'gateway.yaml',
        gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }], journalRules, ...extra },
        connectorFiles: [{ file: 'connectors.d/default.yaml', data: CONNECTORS[0] }],
        readReferenced: (f) => ({ ok: false, error: 'none', file: f }),
        parseYaml: parse,
        fallbackFqdn: 'host.test',
      });
      return r.ok ? '' : r.errors.map(formatIssue).join('\n');
    };
    assert.match(errors([{ name: 'A', journalEmailAddress: 'archive' }]), /gateway\.yaml: journalRules\[0\]\.journalEmailAddress: "archive" is not a mailbox address like user@contoso\.com/);
    assert.match(errors([{ name: 'A', journalEmailAddress: 'a@archive.test', scope: 'Everyone' }]), /journalRules\[0\]\.scope: "Everyone" is not one of: Global, Internal, External/);
    assert.match(errors([{ name: 'A', journalEmailAddress: 'a@archive.test' }, { name: 'a', journalEmailAddress: 'b@archive.test' }]), /journalRules\[1\]\.name: "a" is already the name of journalRules\[0\]/);
    assert.match(errors([{ journalEmailAddress: 'a@archive.test' }]), /journalRules\[0\]\.name/);
    assert.match(errors([{ name: 'A', journalEmailAddress: 'a@archive.test', recipients: ['x@contoso.test'] }]), /journalRules\[0\].*recipients/);
    assert.match(errors([], { journalingReportNdrTo: 'nobody' }), /gateway\.yaml: journalingReportNdrTo: "nobody" is not a mailbox address/);
    assert.equal(errors([{ name: 'A', journalEmailAddress: 'a@archive.test', scope: 'external', recipient: 'ceo@contoso.test', enabled: false }]), '');
  });
});
