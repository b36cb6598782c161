// Domain security as a decision: which client certificates make a session Partner Servers on a
// connector with domainSecureEnabled, the rights that gives, the sender it may use, and the
// header fields that mark its mail; the configuration's defaults, errors and warnings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect, domainSecureStamps, domainSecurity, explain, formatReply, mail, withTls, type ClientCertificate, type Policy, type Session } from '../src/index.js';
import { compile, policy } from './fixture.js';

const GATEWAY = { acceptedDomains: [{ domain: 'contoso.test' }], tlsReceiveDomainSecureList: ['partner.test', 'Fabrikam.Test.'] };
const p: Policy = policy(GATEWAY, [
  { name: 'Partner', usage: 'Partner', bindings: ['0.0.0.0:25'], remoteIPRanges: ['192.0.2.0/24'], permissions: [{ user: 'Partners', extendedRights: ['ms-Exch-Bypass-Anti-Spam'] }] },
  { name: 'Internet', usage: 'Internet', bindings: ['0.0.0.0:25'] },
]);

function tlsSession(ip: string): Session {
  const r = connect(p, { localAddress: '192.0.2.1', localPort: 25, clientIP: ip });
  assert.ok(r.session);
  return withTls(r.session);
}

const cert = (names: string[], authorized = true, authorizationError: string | null = null): ClientCertificate => ({ names, authorized, authorizationError });

describe('domainSecurity', () => {
  it('a trusted certificate naming a listed domain (compared without case or trailing dot): Partner Servers, with the connector\'s grants to them', () => {
    const r = domainSecurity(p, tlsSession('192.0.2.7'), cert(['mail.fabrikam.test', 'FABRIKAM.test.']))!;
    assert.equal(r.decision.reason.code, 'domain-secured');
    assert.equal(r.session.partnerDomain, 'fabrikam.test');
    assert.deepEqual([...r.session.rights.rights].sort(), ['ms-Exch-Accept-Headers-Routing', 'ms-Exch-Bypass-Anti-Spam', 'ms-Exch-SMTP-Submit']);
    assert.deepEqual(r.session.principals, ['Anonymous', 'Partners']);
  });

  it('anything less leaves the session as it was, saying why', () => {
    const s = tlsSession('192.0.2.7');
    const cases: Array<[ClientCertificate | null, RegExp]> = [
      [null, /gave no certificate/],
      [cert(['partner.test'], false, 'SELF_SIGNED_CERT_IN_CHAIN'), /\(partner\.test\) is not trusted \(SELF_SIGNED_CERT_IN_CHAIN\)/],
      // A host of the domain is not the domain (Exchange asks for the domain name itself).
      [cert(['mx.partner.test']), /names mx\.partner\.test, no domain of tlsReceiveDomainSecureList/],
      [cert([]), /names nothing/],
    ];
    for (const [c, why] of cases) {
      const r = domainSecurity(p, s, c)!;
      assert.equal(r.decision.reason.code, 'not-domain-secured');
      assert.match(r.decision.reason.message, why);
      assert.equal(r.session, s);
    }
  });

  it('a connector without domainSecureEnabled: not asked at all', () => {
    assert.equal(domainSecurity(p, tlsSession('198.51.100.9'), cert(['partner.test'])), null);
  });

  it('the partner sends as its own domain and subdomains; the mail is marked', () => {
    const s = domainSecurity(p, tlsSession('192.0.2.7'), cert(['partner.test']))!.session;
    assert.equal(formatReply(mail(p, s, { sender: 'bob@partner.test' }).reply), '250 2.1.0 Sender OK');
    assert.equal(mail(p, s, { sender: 'bob@eu.partner.test' }).reason.code, 'partner-domain');
    assert.equal(formatReply(mail(p, s, { sender: 'bob@fabrikam.test' }).reply), '550 5.7.1 Anonymous client does not have permissions to send as this sender');
    assert.deepEqual(domainSecureStamps(s).map((e) => (e.op === 'add' ? `${e.name}: ${e.value}` : '')), [
      'X-MS-Exchange-Organization-AuthAs: Partner',
      'X-MS-Exchange-Organization-AuthSource: mail.contoso.test',
      'X-Mailgw-Domain-Secured: partner.test',
    ]);
    assert.deepEqual(domainSecureStamps(tlsSession('192.0.2.7')), []);
  });
});

describe('mailgw explain with a client certificate', () => {
  it('the STARTTLS stage says what the certificate made of the session, and MAIL follows from it', () => {
    const stagesOf = (clientCertificate?: { names: string[]; trusted?: boolean }) =>
      explain(p, { binding: '192.0.2.1:25', clientIP: '192.0.2.7', helo: 'mx.partner.test', tls: true, ...(clientCertificate ? { clientCertificate } : {}), mailFrom: 'bob@partner.test' }).stages.map((x) => `${x.stage} ${x.reasonCode} ${x.reply}`);
    assert.deepEqual(stagesOf({ names: ['partner.test'] }).slice(3), ['starttls tls-start 220 2.0.0 SMTP server ready', 'starttls domain-secured 220 2.0.0 SMTP server ready', 'mail partner-domain 250 2.1.0 Sender OK']);
    assert.deepEqual(stagesOf({ names: ['partner.test'], trusted: false }).slice(4), ['starttls not-domain-secured 220 2.0.0 SMTP server ready', 'mail no-submit 530 5.7.1 Client was not authenticated']);
    assert.deepEqual(stagesOf().slice(4), ['starttls not-domain-secured 220 2.0.0 SMTP server ready', 'mail no-submit 530 5.7.1 Client was not authenticated']);
  });
});

describe('domain security in the configuration', () => {
  it('sending: a partner domain its send connector would carry without domain security is a warning, and so is a domainSecureEnabled connector with no partner', () => {
    const routed = compile({ ...GATEWAY, tlsSendDomainSecureList: ['partner.test'], routes: [{ domains: ['*'], to: 'mx' }] }, [{ name: 'P', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
    assert.match(routed.warnings.map((w) => `${w.path}: ${w.message}`).join('\n'), /tlsSendDomainSecureList\[0\]: mail to partner\.test goes without domain security: send connector "routes\[0\]" has no domainSecureEnabled/);
    const none = compile({ ...GATEWAY, tlsSendDomainSecureList: ['partner.test'] }, [{ name: 'P', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
    assert.match(none.warnings.map((w) => w.message).join('\n'), /mail to partner\.test goes without domain security: no send connector serves it/);
  });

  it('usage Partner turns it on; Tls is needed; no partner domain is a warning', () => {
    const on = compile(GATEWAY, [{ name: 'P', usage: 'Partner', bindings: ['0.0.0.0:25'] }]);
    assert.ok(on.ok);
    assert.equal(on.ok && on.policy.connectors[0]!.config.domainSecureEnabled, true);
    assert.deepEqual(on.warnings, []);
    assert.throws(() => compile(GATEWAY, [{ name: 'P', usage: 'Partner', bindings: ['0.0.0.0:25'], authMechanism: ['None'] }]), /domainSecureEnabled: domainSecureEnabled needs Tls in authMechanism/);
    const empty = compile({ acceptedDomains: [{ domain: 'contoso.test' }] }, [{ name: 'P', usage: 'Partner', bindings: ['0.0.0.0:25'] }]);
    assert.match(empty.warnings.map((w) => w.message).join('\n'), /tlsReceiveDomainSecureList names no partner domain/);
  });
});
