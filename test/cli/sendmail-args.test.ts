// mailgw sendmail's command line and input, as the programs that run /usr/sbin/sendmail write
// them (cron, PHP's mail(), mail(1), logwatch): options with attached or separate values, the
// ones ignored and the ones refused; a lone dot with and without -i; recipients qualified with
// the default domain, -t reading To/Cc/Bcc or the Resent- fields. Pure (no files, no gateway).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { envelopeRecipients, messageFromInput, parseSendmailArgs, sendmailConfigPath, type SendmailArgs } from '../../packages/cli/src/commands/sendmail.js';

const args = (argv: string[]): SendmailArgs => {
  const r = parseSendmailArgs(argv);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.args;
};

describe('parseSendmailArgs', () => {
  it("cron's, PHP's and mail(1)'s command lines", () => {
    const none = { mode: 'send', notify: null, ret: null, envid: null };
    assert.deepEqual(args(['-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'root']), { sender: null, fullName: 'CronDaemon', extract: false, ignoreDots: true, config: null, recipients: ['root'], ...none });
    assert.deepEqual(args(['-t', '-i']), { sender: null, fullName: null, extract: true, ignoreDots: true, config: null, recipients: [], ...none });
    assert.deepEqual(args(['-oi', '-oem', '--', 'a@x.test', '-b@x.test']).recipients, ['a@x.test', '-b@x.test']);
    assert.equal(args(['-f', 'alerts@contoso.test', 'x']).sender, 'alerts@contoso.test');
    assert.equal(args(['-falerts@contoso.test', 'x']).sender, 'alerts@contoso.test');
    assert.equal(args(['-r', '<a@b.test>', 'x']).sender, 'a@b.test');
    assert.equal(args(['-f', '', 'x']).sender, '', 'the null sender');
    assert.equal(args(['-f<>', 'x']).sender, '');
    assert.equal(args(['-C', '/etc/x.yaml', 'x']).config, '/etc/x.yaml');
    assert.equal(args(['--config=/etc/y.yaml', 'x']).config, '/etc/y.yaml');
    assert.deepEqual(args(['-L', 'tag', '-h', '17', '-odi', '-v', 'x']).recipients, ['x'], 'values of ignored options are not recipients');
    // The DSN options (Postfix's -N, -R, -V), attached or separate.
    const dsn = args(['-N', 'success,Failure', '-Rhdrs', '-V', 'batch-7+1', 'x']);
    assert.deepEqual([dsn.notify, dsn.ret, dsn.envid, dsn.recipients], ['SUCCESS,FAILURE', 'HDRS', 'batch-7+1', ['x']]);
    assert.equal(args(['-Nnever', 'x']).notify, 'NEVER');
  });
  it("the modes: -bm sends (the default), -bs speaks SMTP, -bp lists the queue (mailq), -bi and -I are newaliases, -q flushes", () => {
    assert.equal(args(['-bm', 'x']).mode, 'send');
    assert.equal(args(['x']).mode, 'send');
    assert.equal(args(['-bs']).mode, 'smtp');
    assert.equal(args(['-bs', '-C', '/etc/x.yaml']).config, '/etc/x.yaml');
    assert.equal(args(['-bp']).mode, 'list');
    assert.equal(args(['-bi']).mode, 'aliases');
    assert.equal(args(['-I']).mode, 'aliases');
    assert.equal(args(['-q']).mode, 'flush');
    // Symfony's and Laravel's sendmail transports: "-bs" and "-bs -i" (-i changes nothing over SMTP).
    assert.equal(args(['-bs', '-i']).mode, 'smtp');
  });
  it('refuses what it does not do, and options without their value', () => {
    assert.deepEqual(parseSendmailArgs(['-bd']), { ok: false, error: '-bd is not supported: mailgw sendmail sends a message (-bm), speaks SMTP on standard input (-bs), lists the queue (-bp) or does nothing for -bi; mailgw start runs the daemon' });
    assert.match((parseSendmailArgs(['-bv', 'x']) as { error: string }).error, /^-bv is not supported: .*mailgw verify-recipient/);
    assert.match((parseSendmailArgs(['-q1h']) as { error: string }).error, /^-q1h is not supported: there is no queue daemon to start/);
    assert.deepEqual(parseSendmailArgs(['-bs', 'root']), { ok: false, error: '-bs takes no recipients' });
    assert.deepEqual(parseSendmailArgs(['-bi', 'x']), { ok: false, error: '-bi/-I takes no recipients' });
    assert.deepEqual(parseSendmailArgs(['-Z']), { ok: false, error: 'unknown option -Z' });
    assert.deepEqual(parseSendmailArgs(['x', '-f']), { ok: false, error: "-f needs the sender's address" });
    assert.deepEqual(parseSendmailArgs(['--config']), { ok: false, error: '--config needs a file' });
    assert.deepEqual(parseSendmailArgs(['-N', 'never,success', 'x']), { ok: false, error: '-N needs never, or success, failure and delay separated by commas, not "never,success"' });
    assert.deepEqual(parseSendmailArgs(['-R', 'all', 'x']), { ok: false, error: '-R needs full or hdrs, not "all"' });
    assert.deepEqual(parseSendmailArgs(['-V', 'a b', 'x']), { ok: false, error: '-V needs an envelope id of at most 100 printable ASCII characters' });
  });
});

describe('messageFromInput', () => {
  const text = (s: string, i: boolean) => messageFromInput(Buffer.from(s), i).toString();
  it('a line of a single dot ends the message unless -i', () => {
    assert.equal(text('Subject: a\n\none\n.\ntwo\n', false), 'Subject: a\n\none\n');
    assert.equal(text('Subject: a\r\n\r\none\r\n.\r\ntwo\r\n', false), 'Subject: a\r\n\r\none\r\n');
    assert.equal(text('Subject: a\n\none\n.', false), 'Subject: a\n\none\n');
    assert.equal(text('Subject: a\n\none\n.\ntwo\n', true), 'Subject: a\n\none\n.\ntwo\n');
    assert.equal(text('Subject: a\n\n..two\n.x\n', false), 'Subject: a\n\n..two\n.x\n', 'only a line of a single dot');
  });
});

describe('envelopeRecipients', () => {
  const header = (s: string) => Buffer.from(s.replace(/\n/g, '\r\n'));
  it('bare names get the default domain; commas split; duplicates once', () => {
    assert.deepEqual(envelopeRecipients(args(['root', 'ops@example.net,root']), Buffer.alloc(0), 'contoso.test'), { ok: true, recipients: ['root@contoso.test', 'ops@example.net'] });
  });
  it('-t adds To, Cc and Bcc (bare names too) to the command line; a resent message uses the Resent- fields', () => {
    const h = header('To: "Ops" <ops@example.net>, root\nCc: www-data (the shop)\nBcc: archive@contoso.test\nSubject: x\n');
    assert.deepEqual(envelopeRecipients(args(['-t', 'extra@example.net']), h, 'contoso.test'), { ok: true, recipients: ['extra@example.net', 'ops@example.net', 'root@contoso.test', 'www-data@contoso.test', 'archive@contoso.test'] });
    const quoted = header('To: "Doe, John" <john@example.net>, root, undisclosed-recipients:;\n');
    assert.deepEqual(envelopeRecipients(args(['-t']), quoted, 'contoso.test'), { ok: true, recipients: ['john@example.net', 'root@contoso.test'] }, 'a comma inside quotes splits nothing; a group is no name');
    const r = header('Resent-To: tier2@contoso.test\nTo: first@contoso.test\n');
    assert.deepEqual(envelopeRecipients(args(['-t']), r, 'contoso.test'), { ok: true, recipients: ['tier2@contoso.test'] });
  });
  it('no recipients, or one that is not an address: the error says which', () => {
    assert.deepEqual(envelopeRecipients(args([]), Buffer.alloc(0), 'contoso.test'), { ok: false, error: 'no recipients (give them as arguments, or -t to read To, Cc and Bcc)' });
    assert.deepEqual(envelopeRecipients(args(['-t']), header('Subject: x\n'), 'contoso.test'), { ok: false, error: 'no recipients: none on the command line and none in To, Cc or Bcc' });
    const bad = envelopeRecipients(args(['a@b@']), Buffer.alloc(0), 'contoso.test');
    assert.equal(bad.ok, false);
    assert.match(!bad.ok ? bad.error : '', /^recipient "a@b@" is not an address: /);
  });
});

describe('sendmailConfigPath', () => {
  it('-C, then MAILGW_CONFIG, then /etc/mailgw/gateway.yaml when there, then ./gateway.yaml', () => {
    assert.equal(sendmailConfigPath(args(['-C', 'a.yaml', 'x']), { MAILGW_CONFIG: 'b.yaml' }), 'a.yaml');
    assert.equal(sendmailConfigPath(args(['x']), { MAILGW_CONFIG: 'b.yaml' }), 'b.yaml');
    assert.equal(sendmailConfigPath(args(['x']), {}), existsSync('/etc/mailgw/gateway.yaml') ? '/etc/mailgw/gateway.yaml' : 'gateway.yaml');
  });
});
