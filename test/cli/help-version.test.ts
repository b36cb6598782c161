// mailgw --help / <command> --help / --version, run as the built binary: what an admin types first.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { mailgw as run, root } from './helpers/binary.js';

// stdin closed (hash-password must not wait for it); REDIS_URL unset (start must not start).
const mailgw = (args: string[]) => run(args, '', { ...process.env, REDIS_URL: '' });

/** The commands `mailgw --help` lists, so a command added later without its own help fails here. */
function listedCommands(): string[] {
  const r = mailgw(['--help']);
  assert.equal(r.code, 0, r.err);
  const section = /\nCommands:\n([\s\S]*?)\n\n/.exec(r.out);
  assert.ok(section, r.out);
  return section[1]!.split('\n').map((l) => /^ {2}([a-z-]+) /.exec(l)?.[1]).filter((c): c is string => c !== undefined);
}

describe('mailgw <command> --help', () => {
  const commands = listedCommands();
  it('lists every command', () => {
    assert.deepEqual(commands, ['init', 'check', 'explain', 'hash-password', 'sendmail', 'dkim', 'start', 'listen', 'worker', 'queue', 'quarantine', 'track', 'agent-log', 'ip-block-list', 'reputation', 'verify-recipient', 'recipient-limit', 'tls-report', 'directory']);
  });
  for (const command of commands) {
    for (const flag of ['--help', '-h']) {
      it(`${command} ${flag}: its usage on stdout, exit 0, nothing run`, () => {
        const r = mailgw([command, flag]);
        assert.equal(r.code, 0, r.err);
        assert.equal(r.err, '');
        assert.ok(r.out.startsWith(`Usage: mailgw ${command}`), r.out);
      });
    }
  }
  it('--help wins over the other arguments, even ones that would be refused', () => {
    const r = mailgw(['explain', '--client-ip', '10.0.0.1', '--help']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Usage: mailgw explain --binding IP:PORT --client-ip IP/);
    assert.match(r.out, /--mail-from ADDR/);
    const q = mailgw(['queue', 'retry', '--bogus', '-h']);
    assert.equal(q.code, 0, q.err);
    assert.match(q.out, /mailgw queue retry <queue-id> \| --hop H \| --all/);
  });
  it('mailgw help <command> is the same text', () => {
    assert.equal(mailgw(['help', 'worker']).out, mailgw(['worker', '--help']).out);
    assert.equal(mailgw(['help', 'nope']).code, 2);
  });
  it('an unknown option names the command and points at its --help, exit 2', () => {
    const r = mailgw(['check', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^mailgw check: Unknown option '--bogus'/);
    assert.match(r.err, /mailgw check --help/);
  });
});

describe('mailgw --version', () => {
  const { version } = JSON.parse(readFileSync(path.join(root, 'packages/cli/package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    it(`${flag} prints the version from package.json, exit 0`, () => {
      const r = mailgw([flag]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, `mailgw ${version}\n`);
    });
  }
});
