// Releasing a quarantined message (mailgw quarantine release): the envelope from the stamps
// quarantineRouting put on it, what is removed before it is sent on, and what is refused (a
// message mailgw did not quarantine, a recipient who was not one of the originals). Also the
// pickup's X-Mailgw-Release mark, which keeps a filter from holding it again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaderFields } from '@mailgw/mail';
import { pickupEnvelope, quarantineRelease, quarantineRouting } from '../src/index.js';
import { policy as compiled } from './fixture.js';

const fields = (text: string) => parseHeaderFields(Buffer.from(text.replace(/\n/g, '\r\n'), 'utf8'));
const names = (text: string, removed: readonly number[]) => fields(text).filter((_, i) => !removed.includes(i)).map((f) => f.name);

describe('quarantineRouting stamps the envelope', () => {
  it('recipients and sender, for a release', () => {
    const r = quarantineRouting({ sender: { local: 'billing', domain: 'example.net' }, recipients: [{ local: 'a', domain: 'contoso.test' }, { local: 'b', domain: 'contoso.test' }] }, { local: 'quarantine', domain: 'contoso.test' }, 'filter rspamd: SCL 9\r\nInjected: x');
    assert.deepEqual(r.recipients, [{ local: 'quarantine', domain: 'contoso.test' }]);
    assert.deepEqual(r.headers, [
      { op: 'add', name: 'X-MS-Exchange-Organization-Quarantine', value: 'true' },
      { op: 'add', name: 'X-Mailgw-Quarantine-Recipients', value: 'a@contoso.test, b@contoso.test' },
      { op: 'add', name: 'X-Mailgw-Quarantine-Sender', value: '<billing@example.net>' },
      // The reason in one printable line (a filter's words cannot add a field).
      { op: 'add', name: 'X-Mailgw-Quarantine-Reason', value: 'filter rspamd: SCL 9??Injected: x' },
    ]);
    const bounce = quarantineRouting({ sender: null, recipients: [{ local: 'a', domain: 'contoso.test' }] }, { local: 'quarantine', domain: 'contoso.test' });
    assert.deepEqual(bounce.headers.at(-1), { op: 'add', name: 'X-Mailgw-Quarantine-Sender', value: '<>' });
  });
});

describe('quarantineRelease', () => {
  // As a maildir delivery leaves it: Return-Path and Delivered-To on top.
  const saved = [
    'Return-Path: <billing@example.net>',
    'Delivered-To: quarantine@contoso.test',
    'Received: from mx.example.net by mail.contoso.test',
    'From: Billing <billing@example.net>',
    'To: a@contoso.test, b@contoso.test',
    'Subject: invoice 42',
    'Delivered-To: someone-earlier@example.net',
    'X-MS-Exchange-Organization-Quarantine: true',
    'X-Mailgw-Quarantine-Recipients: a@contoso.test, b@contoso.test',
    'X-Mailgw-Quarantine-Sender: <billing@example.net>',
    'X-Mailgw-Quarantine-Reason: filter rspamd: SCL 9',
    '',
  ].join('\n');

  it('to the original recipients, from the original sender; the stamps and the delivery fields on top removed', () => {
    const r = quarantineRelease(fields(saved));
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.equal(r.sender?.address, 'billing@example.net');
    assert.deepEqual(r.recipients.map((x) => x.address), ['a@contoso.test', 'b@contoso.test']);
    assert.deepEqual(names(saved, r.removed), ['received', 'from', 'to', 'subject', 'delivered-to'], 'a Delivered-To further down is the message\'s own');
    assert.equal(r.reason, 'released from <billing@example.net> (X-Mailgw-Quarantine-Sender) to a@contoso.test, b@contoso.test');
    assert.equal(r.held, 'filter rspamd: SCL 9');
  });

  it('--to: some of the original recipients only, never anyone else; --from overrides the sender', () => {
    const one = quarantineRelease(fields(saved), { to: ['<B@contoso.test>'] });
    assert.ok(one.ok);
    assert.deepEqual(one.recipients.map((x) => x.address), ['b@contoso.test']);
    assert.match(one.reason, /\(1 of its 2 recipients\)$/);
    assert.deepEqual(quarantineRelease(fields(saved), { to: ['ceo@contoso.test'] }), { ok: false, reason: 'ceo@contoso.test is not one of the message\'s original recipients (a@contoso.test, b@contoso.test): a release goes to them only' });
    const from = quarantineRelease(fields(saved), { from: '' });
    assert.ok(from.ok);
    assert.equal(from.sender, null);
    assert.match(from.reason, /^released from <> \(--from\)/);
  });

  it('a message quarantined before the sender was stamped: the sender from Return-Path; with neither, --from is asked for', () => {
    const old = saved.replace('X-Mailgw-Quarantine-Sender: <billing@example.net>\n', '');
    const r = quarantineRelease(fields(old));
    assert.ok(r.ok);
    assert.equal(r.sender?.address, 'billing@example.net');
    assert.match(r.reason, /\(Return-Path\)/);
    const none = old.replace('Return-Path: <billing@example.net>\n', '');
    assert.deepEqual(quarantineRelease(fields(none)), { ok: false, reason: 'no X-Mailgw-Quarantine-Sender or Return-Path field says who sent it: give the sender (--from)' });
  });

  it('refused: not a quarantined message, two stamps, an unreadable recipient', () => {
    assert.match((quarantineRelease(fields('From: a@example.net\nSubject: x\n')) as { reason: string }).reason, /^no X-Mailgw-Quarantine-Recipients field/);
    assert.match((quarantineRelease(fields(`${saved}X-Mailgw-Quarantine-Recipients: ceo@contoso.test\n`)) as { reason: string }).reason, /^2 X-Mailgw-Quarantine-Recipients fields/);
    assert.match((quarantineRelease(fields(saved.replace('a@contoso.test, b@contoso.test\nX-Mailgw-Quarantine-Sender', 'a b@contoso.test\nX-Mailgw-Quarantine-Sender'))) as { reason: string }).reason, /holds "a b@contoso\.test", which is not an address/);
  });
});

describe('the pickup\'s X-Mailgw-Release mark', () => {
  const p = compiled({ pickupDirectoryPath: '/var/lib/mailgw/pickup' }, [{ name: 'Internet', usage: 'Internet', bindings: ['127.0.0.1:25'] }]);
  it('a leading X-Mailgw-Release: quarantine is a release, removed with the envelope fields; elsewhere it is an ordinary (firewalled) field', () => {
    const e = pickupEnvelope(p, fields('X-Sender: <billing@example.net>\nX-Receiver: <a@contoso.test>\nX-Mailgw-Release: quarantine\nSubject: invoice 42\n'));
    assert.ok(e.ok);
    assert.equal(e.release, true);
    assert.deepEqual(e.removed, [0, 1, 2]);
    assert.match(e.reason, /released from quarantine$/);
    const plain = pickupEnvelope(p, fields('X-Sender: <billing@example.net>\nX-Receiver: <a@contoso.test>\nSubject: x\nX-Mailgw-Release: quarantine\n'));
    assert.ok(plain.ok);
    assert.equal(plain.release, false);
    assert.deepEqual(pickupEnvelope(p, fields('X-Sender: <b@example.net>\nX-Receiver: <a@contoso.test>\nX-Mailgw-Release: spam\n')), { ok: false, code: 'pickup-release', reason: 'X-Mailgw-Release "spam" is not "quarantine"' });
  });
});
