// ESMTP parameters of MAIL/RCPT and the SMTPUTF8 rule, judged by the pure policy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAddressCommandArgs } from '@mailgw/mail';
import { commandParameters, connect, formatReply, type AddressCommand, type Session } from '../src/index.js';
import { policy } from './fixture.js';

const p = policy({}, [
  { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] },
  { name: 'Bare', bindings: ['0.0.0.0:26'], remoteIPRanges: ['0.0.0.0/0'], permissionGroups: ['AnonymousUsers'], smtpUtf8Enabled: false, sizeEnabled: 'Disabled', eightBitMimeEnabled: false, dsnEnabled: false, chunkingEnabled: false },
  { name: 'NoBinary', bindings: ['0.0.0.0:27'], remoteIPRanges: ['0.0.0.0/0'], permissionGroups: ['AnonymousUsers'], binaryMimeEnabled: false },
  { name: 'BinaryOnly', bindings: ['0.0.0.0:28'], remoteIPRanges: ['0.0.0.0/0'], permissionGroups: ['AnonymousUsers'], eightBitMimeEnabled: false },
]);

function session(port: number): Session {
  const r = connect(p, { localAddress: '127.0.0.1', localPort: port, clientIP: '192.0.2.1' });
  assert.ok(r.session);
  return r.session;
}

const full = session(25);
const bare = session(26);
const noBinary = session(27);
const binaryOnly = session(28);

function judge(s: Session, command: AddressCommand, argument: string, smtpUtf8 = false): string {
  const args = parseAddressCommandArgs(argument);
  assert.ok(args, argument);
  return formatReply(commandParameters(s, { command, args, smtpUtf8 }).reply).slice(0, 9);
}

describe('parseAddressCommandArgs', () => {
  it('splits path and parameters, honouring quotes', () => {
    assert.deepEqual(parseAddressCommandArgs('<"a b>c"@x.test> SIZE=10 smtputf8'), { path: '"a b>c"@x.test', params: [{ keyword: 'SIZE', value: '10' }, { keyword: 'SMTPUTF8', value: null }] });
    assert.deepEqual(parseAddressCommandArgs(' <>'), { path: '', params: [] });
    assert.equal(parseAddressCommandArgs('a@b.test'), null);
    assert.equal(parseAddressCommandArgs('<a@b.test>SIZE=1'), null);
  });
});

describe('commandParameters', () => {
  const cases: Array<[Session, AddressCommand, string, string, boolean?]> = [
    [full, 'MAIL', '<a@b.test>', '250 2.1.0'],
    [full, 'MAIL', '<a@b.test> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef SMTPUTF8', '250 2.1.0'],
    [full, 'MAIL', '<a@b.test> FOO=bar', '555 5.5.4'],
    [full, 'MAIL', '<a@b.test> NOTIFY=NEVER', '555 5.5.4'],
    [full, 'MAIL', '<a@b.test> SIZE=12x', '501 5.5.4'],
    [full, 'MAIL', '<a@b.test> SIZE=123456789012345678901', '501 5.5.4'],
    [full, 'MAIL', '<a@b.test> SIZE', '501 5.5.4'],
    [full, 'MAIL', '<a@b.test> SIZE=1 SIZE=1', '501 5.5.4'],
    [full, 'MAIL', '<a@b.test> BODY=BINARYMIME', '250 2.1.0'],
    [full, 'MAIL', '<a@b.test> BODY=binarymime', '250 2.1.0'],
    [full, 'MAIL', '<a@b.test> BODY=BASE64', '501 5.5.4'],
    [noBinary, 'MAIL', '<a@b.test> BODY=BINARYMIME', '555 5.5.4'],
    [noBinary, 'MAIL', '<a@b.test> BODY=8BITMIME', '250 2.1.0'],
    [binaryOnly, 'MAIL', '<a@b.test> BODY=BINARYMIME', '250 2.1.0'],
    [binaryOnly, 'MAIL', '<a@b.test> BODY=8BITMIME', '555 5.5.4'],
    [full, 'MAIL', '<a@b.test> RET=ALL', '501 5.5.4'],
    [full, 'MAIL', '<a@b.test> ENVID=a+2b', '501 5.5.4'],
    [full, 'MAIL', '<a@b.test> ENVID=a+0D+0Ab', '501 5.5.4'],
    [full, 'MAIL', `<a@b.test> ENVID=${'x'.repeat(101)}`, '501 5.5.4'],
    [full, 'MAIL', '<a@b.test> SMTPUTF8=yes', '501 5.5.4'],
    [full, 'MAIL', '<a@b.test> AUTH=<>', '555 5.5.4'], // AUTH not advertised to an anonymous Internet session
    [full, 'MAIL', '<jörg@b.test>', '553 5.6.7'],
    [full, 'MAIL', '<jörg@b.test> SMTPUTF8', '250 2.1.0'],
    [full, 'MAIL', '<a@b.test> <c@d.test>', '501 5.5.4'],
    [full, 'RCPT', '<u@exämple.test>', '553 5.6.7'],
    [full, 'RCPT', '<u@exämple.test>', '250 2.1.5', true],
    [full, 'RCPT', '<u@x.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+40x.test', '250 2.1.5'],
    [full, 'RCPT', '<u@x.test> NOTIFY=NEVER,SUCCESS', '501 5.5.4'],
    [full, 'RCPT', '<u@x.test> NOTIFY=SOMETIMES', '501 5.5.4'],
    [full, 'RCPT', '<u@x.test> ORCPT=u@x.test', '501 5.5.4'],
    [full, 'RCPT', '<u@x.test> ORCPT=rfc822;u=x', '501 5.5.4'],
    [full, 'RCPT', '<u@x.test> ORCPT=utf-8;j\\x{F6}rg@x.test', '250 2.1.5'],
    [full, 'RCPT', '<u@x.test> SIZE=10', '555 5.5.4'],
    [full, 'RCPT', '<u@x.test> SMTPUTF8', '555 5.5.4'],
    [bare, 'MAIL', '<a@b.test> SIZE=10', '555 5.5.4'],
    [bare, 'MAIL', '<a@b.test> BODY=7BIT', '555 5.5.4'],
    [bare, 'MAIL', '<a@b.test> BODY=BINARYMIME', '555 5.5.4'],
    [bare, 'MAIL', '<a@b.test> RET=FULL', '555 5.5.4'],
    [bare, 'MAIL', '<a@b.test> SMTPUTF8', '555 5.5.4'],
    [bare, 'MAIL', '<jörg@b.test>', '553 5.6.7'],
    [bare, 'RCPT', '<u@x.test> NOTIFY=NEVER', '555 5.5.4'],
  ];
  for (const [s, command, argument, want, utf8] of cases) {
    it(`${s.connector.name}: ${command} ${argument}${utf8 ? ' (after MAIL … SMTPUTF8)' : ''} → ${want}`, () => {
      assert.equal(judge(s, command, argument, utf8), want);
    });
  }

  it('MAIL … SMTPUTF8 marks the transaction', () => {
    const args = parseAddressCommandArgs('<a@b.test> SMTPUTF8')!;
    assert.equal(commandParameters(full, { command: 'MAIL', args }).smtpUtf8, true);
    assert.equal(commandParameters(full, { command: 'MAIL', args: parseAddressCommandArgs('<a@b.test>')! }).smtpUtf8, false);
  });
});
