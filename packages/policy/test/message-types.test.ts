// Exchange's message types read off MIME (-MessageTypeMatches): each type from the form its
// MAPI class takes on the wire, the Exchange-only fields counted only from a session trusted to
// send them, and the transport rule condition and exception built on them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MailAddress } from '@mailgw/mail';
import { messageTypes, ruleMatches, type MessageFacts, type TypedPart } from '../src/index.js';
import { policy } from './fixture.js';

const types = (headers: Record<string, string>, parts: TypedPart[] | null = null, trusted = false) =>
  [...messageTypes({ fields: new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]])), parts, organizationHeadersTrusted: trusted })].sort();

const part = (contentType: string, filename: string | null = null, inAttachedMessage = false): TypedPart => ({ contentType, filename, inAttachedMessage });

describe('message types', () => {
  it('an ordinary message is of no type', () => {
    assert.deepEqual(types({ subject: 'Hi', 'content-type': 'text/plain; charset=utf-8' }), []);
    assert.deepEqual(types({}), [], 'no Content-Type at all: text/plain');
    assert.deepEqual(types({ 'content-type': 'multipart/mixed; boundary=x' }, [part('text/plain'), part('application/pdf', 'a.pdf')]), []);
  });

  it('OOF: Auto-Submitted auto-replied (RFC 3834, any case, with parameters), or Exchange\'s pair of fields; auto-generated is not a reply', () => {
    assert.deepEqual(types({ 'auto-submitted': 'auto-replied' }), ['OOF']);
    assert.deepEqual(types({ 'auto-submitted': 'Auto-Replied; owner-email="bob@contoso.test"' }), ['OOF']);
    assert.deepEqual(types({ 'auto-submitted': 'auto-generated' }), []);
    assert.deepEqual(types({ 'auto-submitted': 'no' }), []);
    assert.deepEqual(types({ 'x-auto-response-suppress': 'All', 'x-ms-exchange-inbox-rules-loop': 'bob@contoso.test' }), ['OOF']);
    assert.deepEqual(types({ 'x-auto-response-suppress': 'All' }), [], 'the suppression request alone is any careful sender\'s');
    assert.deepEqual(types({ 'x-auto-response-suppress': 'DR, RN', 'x-ms-exchange-inbox-rules-loop': 'bob@contoso.test' }), []);
  });

  it('AutoForward and ApprovalRequest: Exchange\'s organisation fields, only from a session that may send them', () => {
    assert.deepEqual(types({ 'x-ms-exchange-organization-autoforwarded': 'true' }, null, true), ['AutoForward']);
    assert.deepEqual(types({ 'x-ms-exchange-organization-autoforwarded': 'TRUE ' }, null, true), ['AutoForward']);
    assert.deepEqual(types({ 'x-ms-exchange-organization-autoforwarded': 'false' }, null, true), []);
    assert.deepEqual(types({ 'x-ms-exchange-organization-autoforwarded': 'true' }, null, false), [], 'from the Internet it is a forgery the header firewall removes');
    assert.deepEqual(types({ 'x-ms-exchange-organization-approval-requestor': 'ann@contoso.test' }, null, true), ['ApprovalRequest']);
    assert.deepEqual(types({ 'x-ms-exchange-organization-approval-requestor': 'ann@contoso.test' }, null, false), []);
  });

  it('Signed and Encrypted: the top-level S/MIME and PGP/MIME forms, smime-type deciding for pkcs7-mime', () => {
    assert.deepEqual(types({ 'content-type': 'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=b' }), ['Signed']);
    assert.deepEqual(types({ 'content-type': 'multipart/signed; protocol="application/pgp-signature"; boundary=b' }), ['Signed']);
    assert.deepEqual(types({ 'content-type': 'application/pkcs7-mime; smime-type=signed-data; name=smime.p7m' }), ['Signed']);
    assert.deepEqual(types({ 'content-type': 'application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m' }), ['Encrypted']);
    assert.deepEqual(types({ 'content-type': 'application/x-pkcs7-mime; smime-type="authEnveloped-data"' }), ['Encrypted']);
    assert.deepEqual(types({ 'content-type': 'application/pkcs7-mime; name=smime.p7m' }), ['Encrypted'], 'no smime-type: the usual case, enveloped');
    assert.deepEqual(types({ 'content-type': 'application/pkcs7-mime; smime-type=compressed-data' }), []);
    assert.deepEqual(types({ 'content-type': 'multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b' }), ['Encrypted']);
    assert.deepEqual(types({ 'content-type': 'multipart/mixed; boundary=b' }, [part('multipart/signed')]), [], 'a signed part is not a signed message');
  });

  it('Calendaring: text/calendar as the message or an inline part; an attached .ics file or a forwarded invitation is not', () => {
    assert.deepEqual(types({ 'content-type': 'text/calendar; method=REQUEST' }), ['Calendaring']);
    assert.deepEqual(types({ 'content-type': 'multipart/alternative; boundary=b' }, [part('text/plain'), part('text/html'), part('text/calendar')]), ['Calendaring']);
    assert.deepEqual(types({ 'content-type': 'multipart/mixed; boundary=b' }, [part('text/plain'), part('text/calendar', 'holidays.ics')]), []);
    assert.deepEqual(types({ 'content-type': 'multipart/mixed; boundary=b' }, [part('text/plain'), part('message/rfc822', 'fwd.eml'), part('text/calendar', null, true)]), []);
    assert.deepEqual(types({ 'content-type': 'multipart/alternative; boundary=b' }, null), [], 'parts not read: not found');
  });

  it('PermissionControlled, Voicemail and ReadReceipt: Content-Class values and the report type', () => {
    assert.deepEqual(types({ 'content-class': 'rpmsg.message' }), ['PermissionControlled']);
    assert.deepEqual(types({ 'content-type': 'multipart/mixed; boundary=b' }, [part('text/plain'), part('application/x-microsoft-rpmsg-message', 'message.rpmsg')]), ['PermissionControlled']);
    for (const v of ['voice', 'Voice-CA', 'voice-uc']) assert.deepEqual(types({ 'content-class': v }), ['Voicemail'], v);
    assert.deepEqual(types({ 'content-class': 'fax' }), []);
    assert.deepEqual(types({ 'content-type': 'multipart/report; report-type=disposition-notification; boundary=b' }), ['ReadReceipt']);
    assert.deepEqual(types({ 'content-type': 'multipart/report; report-type="Disposition-Notification"; boundary=b' }), ['ReadReceipt']);
    assert.deepEqual(types({ 'content-type': 'multipart/report; report-type=delivery-status; boundary=b' }), [], 'a DSN is not a read receipt');
  });

  it('a message may be of several types', () => {
    assert.deepEqual(types({ 'content-type': 'multipart/signed; boundary=b', 'auto-submitted': 'auto-replied' }), ['OOF', 'Signed']);
  });
});

describe('the messageTypeMatches condition', () => {
  const A = (s: string): MailAddress => ({ local: s.slice(0, s.lastIndexOf('@')), domain: s.slice(s.lastIndexOf('@') + 1) });
  const setup = (rule: Record<string, unknown>) => {
    const p = policy({ acceptedDomains: [{ domain: 'contoso.test', default: true }], transportRules: [{ name: 'r', prependSubject: '[x] ', ...rule }] }, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }]);
    return (headers: Record<string, string>, more: Partial<MessageFacts> = {}) =>
      ruleMatches(p.config.gateway.transportRules[0]!, {
        envelopeSender: A('x@remote.test'),
        fromHeader: A('x@remote.test'),
        recipients: [A('alice@contoso.test')],
        clientIP: '192.0.2.1',
        internalSession: false,
        fields: new Map(Object.entries(headers).map(([k, v]) => [k, [v]])),
        size: 100,
        ...more,
      }, p.insideDomains);
  };

  it('holds for a message of the type (or one of the listed ones); case-blind names', () => {
    const m = setup({ messageTypeMatches: 'calendaring' });
    assert.equal(m({ 'content-type': 'text/calendar; method=REQUEST' }), true);
    assert.equal(m({ 'content-type': 'text/plain' }), false);
    const two = setup({ messageTypeMatches: ['Signed', 'Encrypted'] });
    assert.equal(two({ 'content-type': 'application/pkcs7-mime; smime-type=enveloped-data' }), true);
    assert.equal(two({ 'content-type': 'text/plain' }), false);
  });

  it('as an exception it spares the type (a footer for everything but meeting requests and signed mail)', () => {
    const m = setup({ exceptIfMessageTypeMatches: ['Calendaring', 'Signed'] });
    assert.equal(m({ 'content-type': 'text/plain' }), true);
    assert.equal(m({ 'content-type': 'multipart/signed; boundary=b' }), false);
    assert.equal(m({ 'content-type': 'multipart/alternative; boundary=b' }, { parts: [{ contentType: 'text/calendar', filename: null, inAttachedMessage: false }] }), false);
  });

  it('AutoForward counts only when the facts say the session may send organisation fields', () => {
    const m = setup({ messageTypeMatches: 'AutoForward' });
    assert.equal(m({ 'x-ms-exchange-organization-autoforwarded': 'true' }, { organizationHeadersTrusted: true }), true);
    assert.equal(m({ 'x-ms-exchange-organization-autoforwarded': 'true' }), false);
  });

  it('config errors name the key and the values', () => {
    assert.throws(() => setup({ messageTypeMatches: 'Meeting' }), /messageTypeMatches.*"Meeting" is not one of: OOF, AutoForward, Encrypted, Calendaring, PermissionControlled, Voicemail, Signed, ApprovalRequest, ReadReceipt/s);
    assert.throws(() => setup({ exceptIfMessageTypeMatches: [] }), /exceptIfMessageTypeMatches.*list at least one message type/s);
  });
});
