// The pickup directory's decisions (pickupEnvelope, pickupSession): the envelope from the header
// (Sender before From, Resent-*, To/Cc/Bcc, duplicates once), from X-Sender/X-Receiver (only as
// leading fields), what is removed and added, and every refusal with its reason; the session's
// rights (any sender and recipient, no anti-spam, no size limit, organisation headers not
// trusted); the configuration's errors naming the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaderFields } from '@mailgw/mail';
import { PICKUP_CONNECTOR, backPressure, filterPlan, has, internalSession, pickupEnvelope, pickupSession, submissionPath, trustedJournalReport } from '../src/index.js';
import { compile, policy as compiled } from './fixture.js';

const p = compiled({ pickupDirectoryPath: '/var/lib/mailgw/pickup', pickupDirectoryMaxRecipientsPerMessage: 3 }, [{ name: 'Internet', usage: 'Internet', bindings: ['127.0.0.1:25'] }]);
const fields = (text: string) => parseHeaderFields(Buffer.from(text.replace(/\n/g, '\r\n'), 'utf8'));
const judge = (text: string) => pickupEnvelope(p, fields(text));
const ok = (text: string) => {
  const e = judge(text);
  assert.ok(e.ok, e.ok ? '' : e.reason);
  return e;
};

describe('pickupEnvelope: the header (Exchange Pickup format)', () => {
  it('From and To/Cc/Bcc; Bcc removed; duplicates once, in order; From kept', () => {
    const e = ok('From: "Backup" <backup@contoso.test>\nTo: a@contoso.test, B@Contoso.test\nCc: c@example.net\nBcc: a@contoso.test\nSubject: x\n');
    assert.equal(e.format, 'header');
    assert.equal(e.sender?.address, 'backup@contoso.test');
    assert.deepEqual(e.recipients.map((r) => r.address), ['a@contoso.test', 'B@contoso.test', 'c@example.net']);
    assert.equal(e.addFrom, null);
    assert.match(e.reason, /^envelope from the header: <backup@contoso\.test> to 3 recipients, Bcc removed$/);
  });

  it('more distinct recipients than pickupDirectoryMaxRecipientsPerMessage: refused, saying how many', () => {
    const e = judge('From: a@contoso.test\nTo: 1@contoso.test, 2@contoso.test\nCc: 3@contoso.test\nBcc: 4@contoso.test\n');
    assert.deepEqual(e, { ok: false, code: 'pickup-too-many-recipients', reason: '4 recipients, more than pickupDirectoryMaxRecipientsPerMessage (3)' });
  });

  it('Sender names the sender (From may then hold several); a Sender with two addresses is refused', () => {
    assert.equal(ok('From: a@contoso.test, b@contoso.test\nSender: sec@contoso.test\nTo: x@contoso.test\n').sender?.address, 'sec@contoso.test');
    assert.deepEqual(judge('Sender: a@contoso.test, b@contoso.test\nTo: x@contoso.test\n'), { ok: false, code: 'pickup-sender', reason: 'Sender "a@contoso.test, b@contoso.test" must hold exactly one address, it holds 2' });
    assert.deepEqual(judge('From: a@contoso.test, b@contoso.test\nTo: x@contoso.test\n'), { ok: false, code: 'pickup-from', reason: 'From holds 2 addresses and there is no Sender field to say which one sent the message' });
  });

  it('Resent-* when the message is resent: those fields are the envelope, Resent-Bcc removed, the original To ignored', () => {
    const e = ok('Resent-From: desk@contoso.test\nResent-Bcc: log@contoso.test\nFrom: customer@example.net\nTo: desk@contoso.test\nBcc: old@contoso.test\n');
    assert.equal(e.format, 'resent');
    assert.equal(e.sender?.address, 'desk@contoso.test');
    assert.deepEqual(e.recipients.map((r) => r.address), ['log@contoso.test']);
    assert.deepEqual(e.removed, [1, 4], 'Resent-Bcc and Bcc');
    assert.deepEqual(judge('Resent-To: x@contoso.test\nFrom: a@contoso.test\n'), { ok: false, code: 'pickup-no-sender', reason: 'a resent message (Resent-To/Cc/Bcc) needs a Resent-From or Resent-Sender field' });
  });

  it('refusals: no sender, no recipient, a From without an address', () => {
    assert.deepEqual(judge('To: x@contoso.test\nSubject: s\n'), { ok: false, code: 'pickup-no-sender', reason: 'the file has no From or Sender field: nobody to send it as' });
    assert.deepEqual(judge('From: a@contoso.test\nTo: undisclosed-recipients:;\n'), { ok: false, code: 'pickup-no-recipients', reason: 'no address in To, Cc or Bcc: nobody to send it to' });
    assert.deepEqual(judge('From: Nobody\nTo: x@contoso.test\n'), { ok: false, code: 'pickup-from', reason: 'From "Nobody" holds no address that can be read' });
  });

  it('UTF-8 addresses: SMTPUTF8', () => {
    const e = ok('From: jörg@contoso.test\nTo: x@contoso.test\n');
    assert.equal(e.smtpUtf8, true);
    assert.equal(ok('From: a@contoso.test\nTo: x@contoso.test\n').smtpUtf8, false);
  });
});

describe('pickupEnvelope: X-Sender / X-Receiver (Exchange Replay format)', () => {
  it('leading fields are the envelope; they are removed; From added when the message has none', () => {
    const e = ok('X-Sender: <cron@contoso.test> BODY=8BITMIME\nX-Receiver: <root@contoso.test> NOTIFY=NEVER\nX-Receiver: ops@example.net\nX-EndOfInjectedXHeader: x\nTo: someone@else.test\nBcc: never@contoso.test\n');
    assert.equal(e.format, 'replay');
    assert.equal(e.sender?.address, 'cron@contoso.test');
    assert.deepEqual(e.recipients.map((r) => r.address), ['root@contoso.test', 'ops@example.net'], 'To and Bcc are text now');
    assert.deepEqual(e.removed, [0, 1, 2, 3, 5]);
    assert.equal(e.addFrom, '<cron@contoso.test>');
  });

  it('X-Sender: <> is the null sender (no From added for it)', () => {
    const e = ok('X-Sender: <>\nX-Receiver: <postmaster@contoso.test>\n');
    assert.equal(e.sender, null);
    assert.equal(e.addFrom, null);
  });

  it('an X-Sender that is not at the top is an ordinary field (some mailers write one)', () => {
    const e = ok('From: a@contoso.test\nX-Sender: other@example.net\nTo: x@contoso.test\n');
    assert.equal(e.format, 'header');
    assert.equal(e.sender?.address, 'a@contoso.test');
    assert.deepEqual(e.removed, []);
  });

  it('refusals: two X-Senders, none, an unreadable one, no X-Receiver, an X-Receiver <>', () => {
    assert.deepEqual(judge('X-Sender: <a@contoso.test>\nX-Sender: <b@contoso.test>\nX-Receiver: <x@contoso.test>\n'), { ok: false, code: 'pickup-x-sender', reason: 'the file starts with X- envelope fields but has 2 X-Sender fields (exactly one is needed)' });
    assert.deepEqual(judge('X-Receiver: <x@contoso.test>\nFrom: a@contoso.test\n'), { ok: false, code: 'pickup-x-sender', reason: 'the file starts with X- envelope fields but has 0 X-Sender fields (exactly one is needed)' });
    assert.equal((judge('X-Sender: nobody\nX-Receiver: <x@contoso.test>\n') as { code: string }).code, 'pickup-x-sender');
    assert.deepEqual(judge('X-Sender: <a@contoso.test>\nFrom: a@contoso.test\n'), { ok: false, code: 'pickup-no-recipients', reason: 'the file starts with X-Sender but has no X-Receiver field: nobody to send it to' });
    assert.deepEqual(judge('X-Sender: <a@contoso.test>\nX-Receiver: <>\n'), { ok: false, code: 'pickup-x-receiver', reason: 'X-Receiver "<>" is not an address' });
  });
});

describe('submissionPath: sendmail -bs commands, judged as the X-Sender / X-Receiver they become', () => {
  const small = compiled({ maxSendSize: '10KB' }, [{ name: 'Default', bindings: ['0.0.0.0:25'] }]);
  const reply = (r: ReturnType<typeof submissionPath>) => (r.ok ? 'ok' : `${r.decision.reply.code} ${r.decision.reply.enhanced} ${r.decision.reply.text}`);
  it('a sender and its DSN parameters; <> the null sender; a bare name gets the default accepted domain', () => {
    const m = submissionPath(small, 'MAIL', '<cron@contoso.test> RET=HDRS ENVID=batch+2B7 SIZE=100 BODY=8BITMIME');
    assert.ok(m.ok);
    assert.equal(m.address?.address, 'cron@contoso.test');
    assert.deepEqual([m.params.get('RET'), m.params.get('ENVID'), m.smtpUtf8], ['HDRS', 'batch+2B7', false]);
    const n = submissionPath(small, 'MAIL', '<>');
    assert.ok(n.ok);
    assert.equal(n.address, null);
    const r = submissionPath(small, 'RCPT', '<root> NOTIFY=FAILURE,DELAY');
    assert.ok(r.ok);
    assert.equal(r.address?.address, 'root@contoso.test');
    assert.equal(r.params.get('NOTIFY'), 'FAILURE,DELAY');
  });
  it('SMTPUTF8: a UTF-8 address needs the parameter at MAIL, as over SMTP', () => {
    assert.equal(reply(submissionPath(small, 'MAIL', '<jörg@contoso.test>')), '553 5.6.7 Non-ASCII addresses require the SMTPUTF8 parameter');
    const m = submissionPath(small, 'MAIL', '<jörg@contoso.test> SMTPUTF8');
    assert.ok(m.ok && m.smtpUtf8);
    assert.equal(reply(submissionPath(small, 'RCPT', '<dana@bücher.test>', true)), 'ok');
  });
  it('refusals with the replies SMTP gives', () => {
    assert.equal(reply(submissionPath(small, 'MAIL', 'cron@contoso.test')), '501 5.1.7 Invalid address');
    assert.equal(reply(submissionPath(small, 'RCPT', '<>')), '501 5.1.7 Invalid address');
    assert.equal(reply(submissionPath(small, 'RCPT', '<a b@contoso.test>')), '501 5.1.7 Invalid address');
    assert.equal(reply(submissionPath(small, 'MAIL', '<a@contoso.test> BODY=BINARYMIME')), '503 5.5.1 BODY=BINARYMIME requires BDAT, not DATA');
    assert.equal(reply(submissionPath(small, 'MAIL', '<a@contoso.test> FOO=1')), '555 5.5.4 Unsupported option: FOO');
    assert.equal(reply(submissionPath(small, 'MAIL', '<a@contoso.test> RET=ALL')), '501 5.5.4 Invalid arguments');
    assert.equal(reply(submissionPath(small, 'MAIL', '<a@contoso.test> AUTH=<>')), '555 5.5.4 Unsupported option: AUTH');
    assert.equal(reply(submissionPath(small, 'RCPT', '<a@contoso.test> NOTIFY=NEVER,SUCCESS')), '501 5.5.4 Invalid arguments');
    assert.equal(reply(submissionPath(small, 'MAIL', '<a@contoso.test> SIZE=10241')), '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.equal(reply(submissionPath(small, 'MAIL', '<a@contoso.test> SIZE=10240')), 'ok');
  });
});

describe('pickupSession: submitted as the gateway itself', () => {
  const s = pickupSession(p);
  it('the Pickup connector, the same session object for one policy', () => {
    assert.equal(s.connector.name, PICKUP_CONNECTOR);
    assert.equal(pickupSession(p), s);
    assert.equal(s.connector.config.fqdn, 'mail.contoso.test');
    assert.equal(s.connector.config.bareLinefeedRejectionEnabled, false, 'LF line ends normalised, never refused');
  });
  it('any sender and recipient, no anti-spam, no size limit; organisation headers and journal reports not trusted', () => {
    for (const r of ['ms-Exch-SMTP-Accept-Any-Sender', 'ms-Exch-SMTP-Accept-Any-Recipient', 'ms-Exch-Bypass-Anti-Spam', 'ms-Exch-Bypass-Message-Size-Limit'] as const) assert.ok(has(s, r), r);
    assert.ok(!has(s, 'ms-Exch-Accept-Headers-Organization'));
    assert.equal(trustedJournalReport(s, true), false, 'a forged X-MS-Journal-Report does not escape journaling');
    assert.equal(internalSession(s), true);
    assert.deepEqual(filterPlan(s, [{ name: 'rspamd', antiSpam: true }, { name: 'signer', antiSpam: false }]).map((x) => x.runs), [false, true]);
  });
  it('back pressure: exempt at medium, waits at high', () => {
    assert.equal(backPressure(s, { level: 'medium', reason: 'memory 85%' } as never).verdict, 'accept');
    assert.notEqual(backPressure(s, { level: 'high', reason: 'memory 95%' } as never).verdict, 'accept');
  });
});

describe('pickupDirectory* keys', () => {
  it('defaults are Exchange\'s; out-of-range values are errors naming the key', () => {
    const g = compiled({}, [{ name: 'Internet', usage: 'Internet', bindings: ['127.0.0.1:25'] }]).config.gateway;
    assert.equal(g.pickupDirectoryPath, undefined);
    assert.deepEqual([g.pickupDirectoryMaxHeaderSize, g.pickupDirectoryMaxMessagesPerMinute, g.pickupDirectoryMaxRecipientsPerMessage], [65536, 100, 100]);
    const errors = (extra: Record<string, unknown>) => {
      try {
        compile(extra, [{ name: 'Internet', usage: 'Internet', bindings: ['127.0.0.1:25'] }]);
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    assert.match(errors({ pickupDirectoryMaxMessagesPerMinute: 0 }), /gateway\.yaml: pickupDirectoryMaxMessagesPerMinute: must be at least 1/);
    assert.match(errors({ pickupDirectoryMaxRecipientsPerMessage: 10001 }), /pickupDirectoryMaxRecipientsPerMessage: must be at most 10000/);
    assert.match(errors({ pickupDirectoryMaxHeaderSize: '1KB' }), /pickupDirectoryMaxHeaderSize: /);
    assert.match(errors({ pickupDirectoryPath: '' }), /pickupDirectoryPath: /);
  });
});
