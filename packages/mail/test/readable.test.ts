// readableDomain/readableAddress: U-labels for people, anything doubtful shown as it is; and
// the DSN's human-readable part shows them while its machine part keeps the A-label.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { composeDsn, readableAddress, readableDomain } from '../src/index.js';

describe('readableDomain', () => {
  it('turns A-labels into U-labels', () => {
    assert.equal(readableDomain('xn--bcher-kva.test'), 'bücher.test');
    assert.equal(readableDomain('mail.xn--bcher-kva.xn--p1ai'), 'mail.bücher.рф');
    assert.equal(readableDomain('XN--BCHER-KVA.TEST'), 'bücher.test');
  });
  it('leaves ASCII domains, U-labels and literals as they are (case included)', () => {
    for (const d of ['contoso.test', 'Contoso.TEST', 'bücher.test', '[192.0.2.1]', '[IPv6:2001:db8::1]', '']) assert.equal(readableDomain(d), d);
  });
  it('shows invalid punycode as it is', () => {
    for (const d of ['xn--zz.test', 'xn--.test', 'xn--a-ecp.test', 'ok.xn--zz', 'xn--bcher-kva.xn--zz.test']) assert.equal(readableDomain(d), d, d);
  });
});

describe('readableAddress', () => {
  it('converts the domain only, after the last @', () => {
    assert.equal(readableAddress('alice@xn--bcher-kva.test'), 'alice@bücher.test');
    assert.equal(readableAddress('xn--local@xn--bcher-kva.test'), 'xn--local@bücher.test');
    assert.equal(readableAddress('"a@b"@xn--bcher-kva.test'), '"a@b"@bücher.test');
    assert.equal(readableAddress('jörg@ext.test'), 'jörg@ext.test');
    assert.equal(readableAddress('postmaster'), 'postmaster');
    assert.equal(readableAddress(''), '');
    assert.equal(readableAddress('bob@xn--zz.test'), 'bob@xn--zz.test');
  });
});

describe('DSN addresses', () => {
  it('the human-readable part shows U-labels; Final-Recipient keeps the A-label (rfc822)', () => {
    const dsn = composeDsn({
      reportingMta: 'mx.contoso.test',
      from: 'postmaster@contoso.test',
      to: 'sender@contoso.test',
      messageId: '<dsn@contoso.test>',
      date: new Date('2026-12-02T10:00:00Z'),
      originalQueueId: 'Q1',
      arrivalDate: new Date('2026-12-02T09:00:00Z'),
      recipients: [{ address: 'alice@xn--bcher-kva.test', action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 unknown' }],
      original: null,
      ret: 'HDRS',
    }).toString('utf8');
    const human = dsn.slice(dsn.indexOf('text/plain'), dsn.indexOf('message/delivery-status'));
    const machine = dsn.slice(dsn.indexOf('message/delivery-status'));
    assert.match(human, /\r\nalice@bücher\.test\r\n/);
    assert.doesNotMatch(human, /xn--/);
    assert.match(machine, /Final-Recipient: rfc822;alice@xn--bcher-kva\.test\r\n/);
  });
});

describe('DSN: a UTF-8 local part', () => {
  it('is UTF-8 in the human-readable part and utf-8-addr-xtext (RFC 6533) in Final-Recipient, so the status part stays 7-bit', () => {
    const dsn = composeDsn({
      reportingMta: 'mx.contoso.test',
      from: 'postmaster@contoso.test',
      to: 'sender@contoso.test',
      messageId: '<dsn@contoso.test>',
      date: new Date('2026-12-02T10:00:00Z'),
      originalQueueId: 'Q1',
      arrivalDate: new Date('2026-12-02T09:00:00Z'),
      recipients: [{ address: 'jörg+x@xn--bcher-kva.test', action: 'failed', status: '5.6.7', diagnostic: '550 5.6.7 no SMTPUTF8' }],
      original: null,
      ret: 'HDRS',
    }).toString('utf8');
    const machine = dsn.slice(dsn.indexOf('Content-Type: message/delivery-status'));
    assert.match(dsn.slice(0, dsn.indexOf('Content-Type: message/delivery-status')), /\r\njörg\+x@bücher\.test\r\n/);
    assert.match(machine, /Final-Recipient: utf-8;j\\x\{F6\}rg\\x\{2B\}x@xn--bcher-kva\.test\r\n/);
    assert.ok(!/[^\x00-\x7f]/.test(machine), 'the status part is ASCII');
  });
});

describe('DSN: 8-bit text from a next hop', () => {
  it('stays in the human-readable part; the delivery-status part gets "?" for it and stays 7-bit', () => {
    const dsn = composeDsn({
      reportingMta: 'mx.contoso.test',
      from: 'postmaster@contoso.test',
      to: 'sender@contoso.test',
      messageId: '<dsn8@contoso.test>',
      date: new Date('2026-12-02T10:00:00Z'),
      originalQueueId: 'Q2',
      arrivalDate: new Date('2026-12-02T09:00:00Z'),
      originalEnvelopeId: 'env\xe9',
      recipients: [{ address: 'bob@example.net', action: 'failed', status: '5.0.0', diagnostic: '550 \xe9chec de livraison', orcpt: 'rfc822;b+E9b@example.net' }],
      original: null,
      ret: 'HDRS',
    }).toString('latin1');
    const machine = dsn.slice(dsn.indexOf('Content-Type: message/delivery-status'));
    const status = machine.slice(machine.indexOf('\r\n\r\n') + 4, machine.indexOf('\r\n--'));
    assert.match(status, /^Diagnostic-Code: smtp;550 \?chec de livraison\r$/m);
    assert.match(status, /^Original-Envelope-Id: env\?\r$/m);
    assert.match(status, /^Original-Recipient: rfc822;b\?b@example\.net\r$/m);
    assert.ok(/^[\x00-\x7f]*$/.test(status), status);
  });
});
