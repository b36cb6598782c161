// Exchange's remote domains as decisions: the most specific domainName applies (exact, then the
// longest *.domain, then *, else Exchange's Default, which allows everything); which message
// types each setting withholds, from recipients outside the organisation only; which of
// mailgw's own DSNs go to senders there; config errors name the key and say what is offered.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MessageType } from '@mailgw/config';
import { type MailAddress } from '@mailgw/mail';
import { dsnWithheld, remoteDomainFor, remoteDomainWithholds, withheldRecipients } from '../src/index.js';
import { compile, policy } from './fixture.js';

const DEFAULT = { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] };
const A = (s: string): MailAddress => ({ local: s.slice(0, s.lastIndexOf('@')), domain: s.slice(s.lastIndexOf('@') + 1) });
const types = (...t: MessageType[]) => new Set<MessageType>(t);

function gateway(remoteDomains: unknown[]) {
  return policy({ acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: 'fabrikam.test', type: 'InternalRelay' }, { domain: 'partner.test', type: 'ExternalRelay' }], remoteDomains }, [DEFAULT]);
}

describe('which remote domain applies', () => {
  const g = gateway([
    { name: 'All', domainName: '*', autoForwardEnabled: false },
    { name: 'Woodgrove', domainName: '*.woodgrove.example', ndrEnabled: false },
    { name: 'Woodgrove EU', domainName: 'eu.woodgrove.example', allowedOOFType: 'None' },
  ]).config.gateway;
  it('an exact name, then the longest wildcard (which covers the domain itself), then *', () => {
    assert.equal(remoteDomainFor('eu.woodgrove.example', g.remoteDomains).name, 'Woodgrove EU');
    assert.equal(remoteDomainFor('US.Woodgrove.Example', g.remoteDomains).name, 'Woodgrove');
    assert.equal(remoteDomainFor('woodgrove.example', g.remoteDomains).name, 'Woodgrove');
    assert.equal(remoteDomainFor('tailspin.example', g.remoteDomains).name, 'All');
  });
  it('without a * entry, Exchange\'s Default: nothing withheld', () => {
    const none = gateway([{ name: 'W', domainName: 'woodgrove.example', autoReplyEnabled: false }]).config.gateway;
    const d = remoteDomainFor('tailspin.example', none.remoteDomains);
    assert.equal(d.name, 'Default');
    assert.equal(remoteDomainWithholds(d, types('OOF', 'AutoForward', 'ReadReceipt')), null);
  });
});

describe('what a remote domain withholds', () => {
  const [strict] = gateway([{ name: 'Strict', domainName: '*', allowedOOFType: 'None', autoForwardEnabled: false, deliveryReportEnabled: false }]).config.gateway.remoteDomains;
  it('each setting its type, and says which', () => {
    assert.match(remoteDomainWithholds(strict!, types('OOF'))!, /automatic reply.*"Strict" \(\*\): allowedOOFType None/);
    assert.match(remoteDomainWithholds(strict!, types('AutoForward'))!, /automatic forward.*autoForwardEnabled false/);
    assert.match(remoteDomainWithholds(strict!, types('ReadReceipt'))!, /read receipt.*deliveryReportEnabled false/);
    assert.equal(remoteDomainWithholds(strict!, types()), null);
    assert.equal(remoteDomainWithholds(strict!, types('Signed', 'Calendaring', 'Encrypted')), null, 'other types are not the remote domain\'s business');
  });
  it('autoReplyEnabled false withholds automatic replies whatever allowedOOFType says; the OOF types other than None let them go', () => {
    const [noReply] = gateway([{ name: 'N', domainName: '*', autoReplyEnabled: false, allowedOOFType: 'InternalLegacy' }]).config.gateway.remoteDomains;
    assert.match(remoteDomainWithholds(noReply!, types('OOF'))!, /autoReplyEnabled false/);
    for (const t of ['External', 'ExternalLegacy', 'InternalLegacy']) {
      const [rd] = gateway([{ name: 'N', domainName: '*', allowedOOFType: t }]).config.gateway.remoteDomains;
      assert.equal(remoteDomainWithholds(rd!, types('OOF')), null, t);
    }
  });
  it('only recipients outside the organisation: Authoritative and InternalRelay domains are inside, an ExternalRelay one is not', () => {
    const p = gateway([{ name: 'Strict', domainName: '*', allowedOOFType: 'None' }]);
    const w = withheldRecipients(['a@contoso.test', 'b@fabrikam.test', 'c@partner.test', 'd@tailspin.example'].map(A), types('OOF'), p.config.gateway.remoteDomains, p.insideDomains);
    assert.deepEqual(w.map((x) => x.recipient.local), ['c', 'd']);
    assert.match(w[1]!.reason, /^d@tailspin\.example: an automatic reply/);
    assert.deepEqual(withheldRecipients([A('d@tailspin.example')], types(), p.config.gateway.remoteDomains, p.insideDomains), []);
  });
});

describe("mailgw's own DSNs", () => {
  const g = gateway([{ name: 'Quiet', domainName: 'quiet.example', ndrEnabled: false }, { name: 'No reports', domainName: 'noreports.example', deliveryReportEnabled: false }]).config.gateway;
  const withheld = dsnWithheld(g);
  it('ndrEnabled false: no failure DSN to a sender there; delay and success ones still go', () => {
    assert.match(withheld('quiet.example', 'failed')!, /remote domain "Quiet" \(quiet\.example\): ndrEnabled false/);
    assert.equal(withheld('quiet.example', 'delayed'), null);
    assert.equal(withheld('quiet.example', 'success'), null);
  });
  it('deliveryReportEnabled false: no delay or success DSN; failures still go', () => {
    assert.match(withheld('noreports.example', 'delayed')!, /deliveryReportEnabled false/);
    assert.match(withheld('noreports.example', 'success')!, /deliveryReportEnabled false/);
    assert.equal(withheld('noreports.example', 'failed'), null);
  });
  it('senders inside the organisation and other domains always get theirs', () => {
    const all = dsnWithheld(gateway([{ name: 'Everyone', domainName: '*', ndrEnabled: false }]).config.gateway);
    assert.equal(all('contoso.test', 'failed'), null);
    assert.match(all('tailspin.example', 'failed')!, /ndrEnabled false/);
    assert.equal(withheld('tailspin.example', 'failed'), null);
  });
});

describe('remoteDomains config errors', () => {
  const err = (remoteDomains: unknown[]) => {
    try {
      compile({ remoteDomains }, [DEFAULT]);
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };
  it('name the key and what is wrong', () => {
    assert.match(err([{ name: 'X', domainName: 'x..example' }]), /remoteDomains\[0\]\.domainName.*"x\.\.example" is not a valid domain/s);
    assert.match(err([{ name: 'X', domainName: '*', allowedOOFType: 'Internal' }]), /remoteDomains\[0\]\.allowedOOFType.*"Internal" is not one of: External, ExternalLegacy, InternalLegacy, None/s);
    assert.match(err([{ name: 'X', domainName: '*', isInternal: true }]), /remoteDomains\[0\]\.isInternal.*a Set-RemoteDomain setting mailgw does not offer: .*InternalRelay accepted domain/s);
    assert.match(err([{ name: 'X', domainName: '*', tnefEnabled: false }]), /remoteDomains\[0\]\.tnefEnabled.*does not offer/s);
    assert.match(err([{ name: 'X', domainName: '*', autoreplyenabled: false }]), /remoteDomains\[0\]\.autoreplyenabled.*unknown key; a remote domain has name, domainName/s);
    assert.match(err([{ name: 'A', domainName: 'x.example' }, { name: 'B', domainName: 'X.example.' }]), /remoteDomains\[1\]\.domainName.*X\.example\. is the domainName of remoteDomains\[0\] as well/s);
    assert.match(err([{ name: 'A', domainName: 'x.example' }, { name: 'a', domainName: 'y.example' }]), /remoteDomains\[1\]\.name.*"a" is the name of remoteDomains\[0\] as well/s);
    assert.match(err([{ domainName: 'x.example' }]), /remoteDomains\[0\]\.name/);
  });
});

describe('explain and remote domains', () => {
  it('a remote-domains stage after DATA: which recipients are withheld and why, by the scenario\'s header fields', async () => {
    const { explain } = await import('../src/index.js');
    const p = policy({ acceptedDomains: [{ domain: 'contoso.test', default: true }], remoteDomains: [{ name: 'Fabrikam', domainName: 'fabrikam.example', allowedOOFType: 'None' }] }, [{ name: 'Relay', usage: 'Custom', bindings: ['0.0.0.0:25'], remoteIPRanges: ['127.0.0.1'], permissionGroups: ['AnonymousUsers'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] }] }]);
    const run = (headers: string[], rcpt = ['bob@fabrikam.example', 'carol@tailspin.example']) => explain(p, { binding: '127.0.0.1:25', clientIP: '127.0.0.1', mailFrom: 'alice@contoso.test', rcpt, data: { headers } }).stages.find((x) => x.stage === 'remote-domains');
    const oof = run(['Auto-Submitted: auto-replied']);
    assert.equal(oof?.reasonCode, 'remote-domains-withheld');
    assert.match(oof!.reason, /^withheld from bob@fabrikam\.example: an automatic reply, and remote domain "Fabrikam" \(fabrikam\.example\): allowedOOFType None$/);
    assert.equal(oof!.input, 'OOF to 2 recipient(s)');
    assert.match(run(['Auto-Submitted: auto-replied'], ['bob@fabrikam.example'])!.reason, /no recipient left: answered 250, delivered to nobody/);
    assert.equal(run(['Subject: hi'])?.reasonCode, 'remote-domains-allow');
    const none = policy({ acceptedDomains: [{ domain: 'contoso.test', default: true }] }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
    assert.equal(explain(none, { binding: '127.0.0.1:25', clientIP: '127.0.0.1', mailFrom: 'x@remote.test', rcpt: ['alice@contoso.test'], data: { headers: ['Auto-Submitted: auto-replied'] } }).stages.some((x) => x.stage === 'remote-domains'), false, 'no stage when no remote domain withholds anything');
  });
});

describe('explain: remote domains after a refusal', () => {
  it('a message the transport rules or the attachment filter refused has no remote-domains stage (nothing was accepted to withhold from)', async () => {
    const { explain } = await import('../src/index.js');
    const relay = [{ name: 'Relay', usage: 'Custom', bindings: ['0.0.0.0:25'], remoteIPRanges: ['127.0.0.1'], permissionGroups: ['AnonymousUsers'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] }] }];
    const base = { acceptedDomains: [{ domain: 'contoso.test', default: true }], remoteDomains: [{ name: 'Fabrikam', domainName: 'fabrikam.example', allowedOOFType: 'None' }] };
    const stagesOf = (p: ReturnType<typeof policy>, attachments: string[]) => explain(p, { binding: '127.0.0.1:25', clientIP: '127.0.0.1', mailFrom: 'alice@contoso.test', rcpt: ['bob@fabrikam.example'], data: { headers: ['Auto-Submitted: auto-replied'], attachments } }).stages.map((x) => `${x.stage} ${x.decision}`);
    const rules = policy({ ...base, transportRules: [{ name: 'No exe', attachmentExtensionMatchesWords: ['exe'], smtpRejectMessageRejectText: 'No programs' }] }, relay);
    assert.deepEqual(stagesOf(rules, ['setup.exe']).slice(-2), ['message accept', 'rules reject']);
    assert.deepEqual(stagesOf(rules, ['notes.txt']).slice(-2), ['rules accept', 'remote-domains accept']);
    const filtered = policy({ ...base, attachmentFilter: {} }, relay);
    assert.deepEqual(stagesOf(filtered, ['setup.exe']).slice(-2), ['message accept', 'attachments reject']);
    assert.deepEqual(stagesOf(filtered, ['notes.txt']).slice(-2), ['attachments accept', 'remote-domains accept']);
  });
});

describe('remoteDomains warnings', () => {
  it('an entry naming a domain inside the organisation never applies: mailgw check says so', () => {
    const r = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: '*.fabrikam.test', type: 'InternalRelay' }, { domain: 'partner.test', type: 'ExternalRelay' }, { domain: 'woodgrove.test' }], remoteDomains: [{ name: 'Us', domainName: 'contoso.test', ndrEnabled: false }, { name: 'Sister', domainName: '*.fabrikam.test' }, { name: 'Partner', domainName: 'partner.test' }, { name: 'All', domainName: '*' }, { name: 'Woodgrove subdomains', domainName: '*.woodgrove.test' }] }, [DEFAULT]);
    assert.ok(r.ok);
    const w = r.warnings.filter((x) => x.path.startsWith('remoteDomains'));
    // woodgrove.test itself is inside, its subdomains are not: *.woodgrove.test still applies to them.
    assert.deepEqual(w.map((x) => x.path), ['remoteDomains[0].domainName', 'remoteDomains[1].domainName']);
    assert.match(w[0]!.message, /contoso\.test is inside the organisation \(an Authoritative or InternalRelay accepted domain\): remote domains apply to recipients outside it, so "Us" never applies$/);
  });
});
