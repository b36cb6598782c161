// mailgw sendmail (and mailgw run as "sendmail"): the sendmail command line programs on Linux
// expect (cron, logwatch, smartd, PHP's mail(), `mail`), as Postfix's sendmail(1) gives it.
// The message goes into the pickup directory (gateway.yaml pickupDirectoryPath) as a file in
// Exchange's Replay format: X-Sender and X-Receiver fields with the envelope, then the message.
// The gateway sends it from there, running or not yet: like Postfix's maildrop, a message
// handed over is on disk before the command exits 0. Exit codes are sendmail's (sysexits.h).
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '@mailgw/config/load';
import { formatIssue, type MailgwConfig, type RouteSecret } from '@mailgw/config';
import { findAddresses, fieldValue, formatField, messageHeader, parseEnvelopeAddress, parseHeaderFields, replayEnvelopeFields } from '@mailgw/mail';
import { LineEndingFilter } from '@mailgw/listener';
import { QueueAdmin, queueRedisUrl } from '@mailgw/ops';
import { compilePolicy } from '@mailgw/policy';
import { cannotReachRedis } from '../redis-messages.js';
import { mailqText } from './mailq.js';
import { runStdioSmtp } from './sendmail-smtp.js';
import { EX, pickupWriteError, writePickupFile } from '../pickup-file.js';

export { EX } from '../pickup-file.js';

/**
 * What the command line asks for: send a message (the default, -bm), speak SMTP on standard
 * input (-bs), list the queue (-bp, as mailq), rebuild the aliases database (-bi/-I, as
 * newaliases: there is none), or try every queued message now (-q, as postqueue -f).
 */
export type SendmailMode = 'send' | 'smtp' | 'list' | 'aliases' | 'flush';

export interface SendmailArgs {
  readonly mode: SendmailMode;
  /** -f / -r: the envelope sender; '' the null sender; null: <login>@<default domain>. */
  readonly sender: string | null;
  /** -F: the full name for a From field sendmail adds. */
  readonly fullName: string | null;
  /** -t: recipients from To, Cc and Bcc (added to those on the command line, as Postfix). */
  readonly extract: boolean;
  /** -i / -oi: a line of a single dot does not end the message. */
  readonly ignoreDots: boolean;
  /** -C / --config: gateway.yaml. */
  readonly config: string | null;
  readonly recipients: readonly string[];
  /** -N: DSN NOTIFY for every recipient (RFC 3461), upper case; null: the default. */
  readonly notify: string | null;
  /** -R: RET (FULL or HDRS); -V: ENVID (as given; written as xtext). */
  readonly ret: string | null;
  readonly envid: string | null;
}

export type ParsedSendmailArgs = { ok: true; args: SendmailArgs } | { ok: false; error: string };

/** Options sendmail programs pass that change nothing here (delivery mode, error mode, verbosity, body type, queue ids). */
const IGNORED_FLAGS = new Set(['-v', '-m', '-n', '-U', '-Am', '-Ac', '-odi', '-odb', '-odq', '-oem', '-oee', '-oep', '-oeq', '-oew', '-om', '-oo']);
/** Ignored options that take a value (attached or next): -B body type, -L syslog tag, -O option=value, -X log file, -h hop count. */
const IGNORED_WITH_VALUE = new Set(['-B', '-L', '-O', '-X', '-h']);

/** The mode options (Postfix's sendmail: -I is -bi; mailq is -bp, newaliases -I). */
const MODES: Readonly<Record<string, SendmailMode>> = { '-bm': 'send', '-bs': 'smtp', '-bp': 'list', '-bi': 'aliases', '-I': 'aliases', '-q': 'flush' };

/** The command line as Postfix's and Sendmail's sendmail read it (the common subset). */
export function parseSendmailArgs(argv: readonly string[]): ParsedSendmailArgs {
  let sender: string | null = null;
  let fullName: string | null = null;
  let extract = false;
  let ignoreDots = false;
  let config: string | null = null;
  let notify: string | null = null;
  let ret: string | null = null;
  let envid: string | null = null;
  let mode: SendmailMode = 'send';
  const recipients: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (flag: string): string | null => (a.length > flag.length ? a.slice(flag.length) : (argv[++i] ?? null));
    if (a === '--') {
      recipients.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      recipients.push(a);
      continue;
    }
    if (a === '--config') {
      config = argv[++i] ?? null;
      if (config === null) return { ok: false, error: '--config needs a file' };
    } else if (a.startsWith('--config=')) config = a.slice('--config='.length);
    else if (a === '-t') extract = true;
    else if (a === '-i' || a === '-oi') ignoreDots = true;
    else if (a.startsWith('-f') || a.startsWith('-r')) {
      const v = value(a.slice(0, 2));
      if (v === null) return { ok: false, error: `${a.slice(0, 2)} needs the sender's address` };
      sender = v.replace(/^<(.*)>$/, '$1');
    } else if (a.startsWith('-F')) {
      const v = value('-F');
      if (v === null) return { ok: false, error: '-F needs a full name' };
      fullName = v;
    } else if (a.startsWith('-N')) {
      // Postfix's and Sendmail's -N: never, or success, failure and delay separated by commas.
      const v = value('-N');
      const items = (v ?? '').toUpperCase().split(',').map((x) => x.trim());
      if (v === null || items.some((x) => !['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'].includes(x)) || (items.includes('NEVER') && items.length > 1)) return { ok: false, error: `-N needs never, or success, failure and delay separated by commas${v === null ? '' : `, not "${v}"`}` };
      notify = items.join(',');
    } else if (a.startsWith('-R')) {
      const v = value('-R');
      if (v === null || !/^(full|hdrs)$/i.test(v)) return { ok: false, error: `-R needs full or hdrs${v === null ? '' : `, not "${v}"`}` };
      ret = v.toUpperCase();
    } else if (a.startsWith('-V')) {
      const v = value('-V');
      // eslint-disable-next-line no-control-regex
      if (v === null || v === '' || v.length > 100 || /[\x00-\x20\x7f-\uffff]/.test(v)) return { ok: false, error: '-V needs an envelope id of at most 100 printable ASCII characters' };
      envid = v;
    } else if (a.startsWith('-C')) {
      const v = value('-C');
      if (v === null) return { ok: false, error: '-C needs a configuration file' };
      config = v;
    } else if (IGNORED_FLAGS.has(a) || (/^-o[A-Za-z]/.test(a) && a.length === 3)) continue;
    else if (IGNORED_WITH_VALUE.has(a.slice(0, 2))) {
      if (a.length === 2) i++;
    } else if (MODES[a] !== undefined) mode = MODES[a]!;
    else if (a.startsWith('-b')) {
      return { ok: false, error: `${a} is not supported: mailgw sendmail sends a message (-bm), speaks SMTP on standard input (-bs), lists the queue (-bp) or does nothing for -bi; ${a === '-bd' ? 'mailgw start runs the daemon' : a === '-bv' ? 'mailgw verify-recipient and mailgw explain say what happens to an address' : 'mailgw --help lists the rest'}` };
    } else if (a.startsWith('-q')) {
      return { ok: false, error: `${a} is not supported: there is no queue daemon to start (the delivery workers retry by themselves); -q alone tries every queued message now` };
    } else return { ok: false, error: `unknown option ${a}` };
  }
  if (mode !== 'send' && recipients.length > 0) return { ok: false, error: `${Object.keys(MODES).filter((k) => MODES[k] === mode).join('/')} takes no recipients` };
  return { ok: true, args: { mode, sender, fullName, extract, ignoreDots, config, recipients, notify, ret, envid } };
}

/** The message from standard input: up to a line of a single dot unless -i, line ends as written (the pickup normalises them). */
export function messageFromInput(input: Buffer, ignoreDots: boolean): Buffer {
  if (ignoreDots) return input;
  // A line "." ends it; ".." at the start of a line is not unstuffed (sendmail -i semantics aside, as Postfix).
  const m = /(^|\n)\.\r?\n|(^|\n)\.$/.exec(input.toString('latin1'));
  return m ? input.subarray(0, m.index + (m[1] ?? m[2] ?? '').length) : input;
}

/**
 * Recipients written as sendmail users write them: an address, or a bare user name, which is
 * qualified with the default accepted domain ("root" → root@contoso.com), as Postfix appends
 * @myorigin. With -t, those in To, Cc and Bcc (the Resent- ones for a resent message) too.
 */
export function envelopeRecipients(args: SendmailArgs, header: Buffer, defaultDomain: string): { ok: true; recipients: string[] } | { ok: false; error: string } {
  const words: string[] = [...args.recipients.flatMap((r) => r.split(',').map((x) => x.trim()).filter((x) => x !== ''))];
  if (args.extract) {
    const fields = parseHeaderFields(header);
    const resent = fields.some((f) => /^resent-(to|cc|bcc)$/.test(f.name));
    for (const f of fields) {
      if (!(resent ? /^resent-(to|cc|bcc)$/ : /^(to|cc|bcc)$/).test(f.name)) continue;
      const value = fieldValue(f);
      words.push(...findAddresses(value).map((a) => Buffer.from(a.text, 'latin1').toString('utf8')));
      // Bare user names ("To: root", as cron writes it), which are no addresses to the reader.
      words.push(...listItems(value).map((x) => x.replace(/\([^)]*\)/g, '').trim()).filter((x) => /^[^\s<>@,;:"()]+$/.test(x)));
    }
  }
  const out: string[] = [];
  for (const w of words) {
    const qualified = w.includes('@') ? w.replace(/^<(.*)>$/, '$1') : `${w}@${defaultDomain}`;
    const p = parseEnvelopeAddress(qualified);
    if (!p.ok) return { ok: false, error: `recipient "${w}" is not an address: ${p.reason}` };
    if (!out.includes(p.value.address)) out.push(p.value.address);
  }
  if (out.length === 0) return { ok: false, error: args.extract ? 'no recipients: none on the command line and none in To, Cc or Bcc' : 'no recipients (give them as arguments, or -t to read To, Cc and Bcc)' };
  return { ok: true, recipients: out };
}

/** The items of an address list: split at commas outside quotes, angle brackets and comments. */
function listItems(value: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let quoted = false;
  let angle = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\') i++;
    else if (quoted) quoted = c !== '"';
    else if (c === '"') quoted = true;
    else if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (depth === 0 && c === '<') angle = true;
    else if (depth === 0 && c === '>') angle = false;
    else if (depth === 0 && !angle && c === ',') {
      items.push(value.slice(start, i));
      start = i + 1;
    }
  }
  items.push(value.slice(start));
  return items;
}

/** The login name of this process (what Postfix puts before @myorigin without -f). */
function loginName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.LOGNAME ?? process.env.USER ?? 'nobody';
  }
}

/** Where gateway.yaml is: -C/--config, MAILGW_CONFIG, /etc/mailgw/gateway.yaml when it exists, else ./gateway.yaml. */
export function sendmailConfigPath(args: SendmailArgs, env: NodeJS.ProcessEnv): string {
  if (args.config) return args.config;
  if (env.MAILGW_CONFIG) return env.MAILGW_CONFIG;
  return existsSync('/etc/mailgw/gateway.yaml') ? '/etc/mailgw/gateway.yaml' : 'gateway.yaml';
}

export interface SendmailIO {
  readonly stdin: NodeJS.ReadableStream;
  /** -bs replies, -bp's listing. */
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

export async function runSendmail(argv: readonly string[], io: SendmailIO): Promise<number> {
  const { stdin, stderr: err, env } = io;
  const fail = (code: number, msg: string) => {
    err.write(`mailgw sendmail: ${msg}\n`);
    return code;
  };
  const parsed = parseSendmailArgs(argv);
  if (!parsed.ok) return fail(EX.USAGE, `${parsed.error}\nUsage: mailgw sendmail [-t] [-i] [-f sender] [-F "Full Name"] [-C gateway.yaml] [recipient …] < message\n       mailgw sendmail -bs | -bp | -bi | -q [-C gateway.yaml]`);
  const args = parsed.args;
  // newaliases: Postfix rebuilds /etc/aliases.db; mailgw reads no aliases file (root's mail is
  // sent on by a transport rule), so there is nothing to rebuild and package scripts that run it
  // must not fail. Said once, on stderr.
  if (args.mode === 'aliases') {
    err.write('mailgw sendmail: mailgw keeps no aliases database, nothing to rebuild; send root\'s mail on with a transport rule (README "Where root\'s mail goes")\n');
    return EX.OK;
  }
  const configPath = sendmailConfigPath(args, env);
  // Route passwords are not needed here (cron's environment has none of their variables).
  const loaded = loadConfig({ configPath, env, secrets: 'unresolved' });
  if (!loaded.ok) return fail(EX.CONFIG, `${configPath} has errors:\n  ${loaded.errors.map(formatIssue).join('\n  ')}`);
  const g = loaded.config.gateway;
  // The queue's modes need Redis, not the pickup directory.
  if (args.mode === 'list' || args.mode === 'flush') return runQueueMode(args.mode, loaded, io);
  if (!g.pickupDirectoryPath) return fail(EX.CONFIG, `${configPath} has no pickupDirectoryPath: set one (README "The pickup directory and mailgw sendmail") so that mailgw sends what this command hands over`);
  const dir = path.resolve(loaded.baseDir, g.pickupDirectoryPath);
  if (args.mode === 'smtp') {
    // The policy never reads a route's secret (the workers do): the unresolved ones can stay.
    const compiled = compilePolicy(loaded.config as MailgwConfig<RouteSecret> as MailgwConfig);
    if (!compiled.ok) return fail(EX.CONFIG, `${configPath} has errors:\n  ${compiled.errors.map(formatIssue).join('\n  ')}`);
    await runStdioSmtp(stdin, io.stdout, {
      policy: compiled.policy,
      deliver: (file) => writePickupFile(dir, file),
      log: (line) => err.write(`mailgw sendmail: ${line}\n`),
    });
    return EX.OK;
  }

  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stdin) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(String(c));
    size += b.length;
    if (g.maxSendSize !== null && size > g.maxSendSize) return fail(EX.DATAERR, `the message is larger than the organisation's maxSendSize (${g.maxSendSize} bytes)`);
    chunks.push(b);
  }
  let message = messageFromInput(Buffer.concat(chunks), args.ignoreDots);
  const head = messageHeader(new LineEndingFilter('normalise').push(message));
  const recipients = envelopeRecipients(args, head.header, g.defaultDomain);
  if (!recipients.ok) return fail(EX.USAGE, recipients.error);
  const senderText = args.sender ?? `${loginName()}@${g.defaultDomain}`;
  const sender = senderText === '' ? null : parseEnvelopeAddress(senderText.includes('@') ? senderText : `${senderText}@${g.defaultDomain}`);
  if (sender && !sender.ok) return fail(EX.USAGE, `sender "${senderText}" is not an address: ${sender.reason}`);
  const senderAddress = sender ? sender.value.address : '';
  // A message without From gets one here when -F names the sender; otherwise the pickup adds From: <sender>.
  const hasFrom = parseHeaderFields(head.header).some((f) => f.name === 'from');
  if (!hasFrom && args.fullName !== null && senderAddress !== '') {
    const name = args.fullName.replace(/["\\]/g, '\\$&');
    message = Buffer.concat([formatField('From', `"${name}" <${senderAddress}>`), message]);
  }
  // The DSN options as MAIL FROM and RCPT TO would carry them (the pickup judges them as SMTP does).
  const notify = args.notify ? args.notify.split(',') : null;
  const envelope = replayEnvelopeFields({ sender: senderAddress, ret: args.ret, envid: args.envid, recipients: recipients.recipients.map((address) => ({ address, notify })) });
  try {
    await writePickupFile(dir, Buffer.concat([envelope, message]));
  } catch (e) {
    const why = pickupWriteError(e, dir);
    return fail(why.exit, why.message);
  }
  return EX.OK;
}

/**
 * -bp (mailq): the queue in Postfix's format; -q: every queued message tried now (as postqueue
 * -f). Both need the queue's Redis, as `mailgw queue` does; when it cannot be reached, mailq
 * says what Postfix's says ("mail system is down") and exits 69, which monitoring reads as such.
 */
async function runQueueMode(mode: 'list' | 'flush', loaded: Extract<ReturnType<typeof loadConfig>, { ok: true }>, io: SendmailIO): Promise<number> {
  const name = mode === 'list' ? 'mailq' : 'sendmail -q';
  const down = (why: string) => {
    io.stderr.write(`${name}: fatal: Queue report unavailable - mail system is down (${why})\n`);
    return EX.UNAVAILABLE;
  };
  const gateway = loaded.config.gateway;
  const url = queueRedisUrl(io.env, gateway, loaded.dataDir!);
  if (!url) return down('no Redis to look at: set REDIS_URL or redis.url in gateway.yaml, or run this where mailgw start runs its own');
  let admin: QueueAdmin;
  try {
    admin = await QueueAdmin.open({ redisUrl: url, gateway, dataDir: loaded.dataDir! });
  } catch (e) {
    return down(cannotReachRedis(url, e));
  }
  try {
    if (mode === 'flush') {
      await admin.retry({ all: true });
      return EX.OK;
    }
    const r = await admin.select({}, { now: Date.now() });
    await new Promise<void>((resolve, reject) => io.stdout.write(mailqText(r.rows), (e) => (e ? reject(e) : resolve())));
    return EX.OK;
  } catch (e) {
    return down((e as Error).message);
  } finally {
    await admin.close();
  }
}
