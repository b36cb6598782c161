// The mailgw command line. Subcommands stay thin: they parse arguments and call the packages.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseSize } from '@mailgw/config';
import { runCheck } from './commands/check.js';
import { runExplain } from './commands/explain.js';
import { runHashPassword } from './commands/hash-password.js';
import { COMMAND_USAGE, USAGE, version, wantsHelp } from './usage.js';

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const common = { config: { type: 'string', default: 'gateway.yaml' }, connectors: { type: 'string' }, 'send-connectors': { type: 'string' } } as const;
  // `mailgw <command> --help` before anything else: it must neither parse nor run the command.
  const commandUsage = command !== undefined && Object.hasOwn(COMMAND_USAGE, command) ? COMMAND_USAGE[command] : undefined;
  // sendmail's -h takes a hop count: there only --help, or -h alone, asks for help.
  if (commandUsage !== undefined && (command === 'sendmail' ? rest.includes('--help') || (rest.length === 1 && rest[0] === '-h') : wantsHelp(rest))) {
    process.stdout.write(commandUsage);
    return 0;
  }
  try {
    switch (command) {
      case 'check': {
        const { values } = parseArgs({ args: rest, options: { ...common, json: { type: 'boolean' } } });
        return runCheck(values, process.stdout, process.stderr);
      }
      case 'explain': {
        const { values } = parseArgs({
          args: rest,
          options: {
            ...common,
            binding: { type: 'string' },
            'client-ip': { type: 'string' },
            tls: { type: 'boolean' },
            auth: { type: 'string' },
            'mail-from': { type: 'string' },
            rcpt: { type: 'string', multiple: true },
            size: { type: 'string' },
            scenario: { type: 'string' },
            route: { type: 'string' },
            'back-pressure': { type: 'string' },
            header: { type: 'string', multiple: true },
            attachment: { type: 'string', multiple: true },
            'message-size': { type: 'string' },
            pickup: { type: 'string' },
            json: { type: 'boolean' },
          },
        });
        if (values.pickup !== undefined) {
          const { runExplainPickup } = await import('./commands/explain-pickup.js');
          return await runExplainPickup({ config: values.config, connectors: values.connectors, 'send-connectors': values['send-connectors'], file: values.pickup, json: values.json ?? false }, process.stdout, process.stderr);
        }
        const pressure = values['back-pressure'];
        if (pressure !== undefined && pressure !== 'normal' && pressure !== 'medium' && pressure !== 'high') {
          process.stderr.write(`mailgw explain: --back-pressure is normal, medium or high, not ${JSON.stringify(pressure)}\n`);
          return 2;
        }
        // The message's size without SIZE= (judged at the end of DATA: the connector's and the recipients' own limits).
        const messageSize = values['message-size'] !== undefined ? parseSize(values['message-size']) : null;
        if (messageSize && !messageSize.ok) {
          process.stderr.write(`mailgw explain: --message-size: ${messageSize.error}\n`);
          return 2;
        }
        if (values.route !== undefined) {
          const { runExplainRoute } = await import('./commands/explain-route.js');
          return runExplainRoute({ config: values.config, connectors: values.connectors, 'send-connectors': values['send-connectors'], route: values.route, mailFrom: values['mail-from'] ?? null, json: values.json ?? false }, process.stdout, process.stderr);
        }
        if (!values.scenario && (!values.binding || !values['client-ip'])) {
          process.stderr.write('mailgw explain: --binding IP:PORT and --client-ip IP are required (or --route rcpt@domain)\n');
          return 2;
        }
        return await runExplain(
          {
            config: values.config,
            connectors: values.connectors,
            'send-connectors': values['send-connectors'],
            binding: values.binding ?? '',
            clientIP: values['client-ip'] ?? '',
            scenarioFile: values.scenario,
            tls: values.tls ?? false,
            auth: values.auth ?? null,
            mailFrom: values['mail-from'] ?? null,
            rcpt: values.rcpt ?? [],
            ...(values.size ? { size: Number(values.size) } : {}),
            ...(pressure ? { backPressure: pressure } : {}),
            // A header field ("From: …"), an attachment or a message size makes the scenario go on to the message, with it.
            ...((values.header?.length ?? 0) + (values.attachment?.length ?? 0) > 0 || messageSize
              ? { data: { ...(values.header?.length ? { headers: values.header } : {}), ...(values.attachment?.length ? { attachments: values.attachment.map(attachmentOption) } : {}), ...(messageSize?.ok ? { messageBytes: messageSize.value } : {}) } }
              : {}),
            json: values.json ?? false,
          },
          process.stdout,
          process.stderr,
        );
      }
      case 'init': {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { domain: { type: 'string' }, hostname: { type: 'string' }, 'data-dir': { type: 'string' }, force: { type: 'boolean' } },
        });
        if (positionals.length > 1) {
          process.stderr.write('mailgw init: give at most one directory\n');
          return 2;
        }
        const { runInit } = await import('./commands/init.js');
        return runInit({ dir: positionals[0], domain: values.domain, hostname: values.hostname, dataDir: values['data-dir'], force: values.force }, process.stdout, process.stderr);
      }
      case 'sendmail': {
        const { runSendmail } = await import('./commands/sendmail.js');
        return await runSendmail(rest, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });
      }
      case 'hash-password':
        return await runHashPassword(process.stdin, process.stdout, process.stderr);
      case 'start': {
        const { values } = parseArgs({ args: rest, options: { ...common } });
        // The supervisor's children run this same command line as node:cluster workers.
        const { supervisedChild } = await import('./supervision.js');
        const child = supervisedChild();
        if (child) {
          const { runServe } = await import('./commands/serve.js');
          const code = await runServe({ ...values, workers: child.role === 'worker', listeners: child.role === 'listener' }, { stderr: process.stderr, env: process.env, supervised: child });
          // The IPC channel would keep this process alive.
          process.exit(code);
        }
        const { runSupervisor } = await import('./commands/supervisor.js');
        return await runSupervisor(values);
      }
      case 'listen': {
        const { runServe } = await import('./commands/serve.js');
        const { values } = parseArgs({ args: rest, options: { ...common } });
        return await runServe({ ...values, workers: false });
      }
      case 'worker': {
        const { runWorker } = await import('./commands/worker.js');
        const { values } = parseArgs({ args: rest, options: { ...common, concurrency: { type: 'string' }, http: { type: 'string' } } });
        return await runWorker(values);
      }
      case 'quarantine': {
        const { runQuarantine } = await import('./commands/quarantine.js');
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { ...common, to: { type: 'string', multiple: true }, from: { type: 'string' }, 'dry-run': { type: 'boolean' } },
        });
        return runQuarantine(positionals[0], positionals.slice(1), values, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });
      }
      case 'queue': {
        const { runQueue } = await import('./commands/queue.js');
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: {
            ...common,
            json: { type: 'boolean' },
            verbose: { type: 'boolean', short: 'v' },
            hop: { type: 'string' },
            all: { type: 'boolean' },
            'with-ndr': { type: 'boolean' },
            sender: { type: 'string' },
            recipient: { type: 'string' },
            status: { type: 'string' },
            'older-than': { type: 'string' },
            subject: { type: 'string' },
            limit: { type: 'string' },
            after: { type: 'string' },
            yes: { type: 'boolean', short: 'y' },
            'reset-state': { type: 'boolean' },
            replay: { type: 'boolean' },
          },
        });
        return await runQueue(positionals[0], positionals.slice(1), values, { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin });
      }
      case 'directory': {
        const { runDirectoryTest } = await import('./commands/directory.js');
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { ...common, user: { type: 'string' }, address: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
        });
        if (positionals[0] !== 'test') {
          process.stderr.write(`mailgw directory: the only subcommand is "test"\n\n${COMMAND_USAGE.directory}`);
          return 2;
        }
        let password: string | undefined;
        if (values['password-stdin']) {
          const chunks: Buffer[] = [];
          for await (const c of process.stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
          password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
        }
        return await runDirectoryTest({ config: values.config, connectors: values.connectors, user: values.user, address: values.address, password }, process.stdout, process.stderr);
      }
      case 'dkim': {
        const { runDkim } = await import('./commands/dkim.js');
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...common, selector: { type: 'string' }, algorithm: { type: 'string' } } });
        return await runDkim(positionals[0], positionals.slice(1), values, { stdout: process.stdout, stderr: process.stderr });
      }
      case 'tls-report': {
        const { runTlsReport } = await import('./commands/tls-report.js');
        const { values } = parseArgs({ args: rest, options: { ...common, date: { type: 'string' }, domain: { type: 'string' }, send: { type: 'boolean' } } });
        return await runTlsReport(values, { stdout: process.stdout, stderr: process.stderr, env: process.env });
      }
      case 'agent-log': {
        const { runAgentLog } = await import('./commands/agent-log.js');
        const { values } = parseArgs({
          args: rest,
          options: { ...common, agent: { type: 'string' }, action: { type: 'string' }, ip: { type: 'string' }, sender: { type: 'string' }, recipient: { type: 'string' }, reason: { type: 'string' }, since: { type: 'string' }, json: { type: 'boolean' }, top: { type: 'string' }, limit: { type: 'string' }, local: { type: 'boolean' }, follow: { type: 'boolean', short: 'f' } },
        });
        // --follow runs until Ctrl-C.
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        return await runAgentLog(values, { stdout: process.stdout, stderr: process.stderr, env: process.env, stop: stop.signal });
      }
      case 'ip-block-list':
      case 'reputation': {
        const { runIpBlockList, runReputation } = await import('./commands/ip-block-list.js');
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...common, for: { type: 'string' }, comment: { type: 'string' }, json: { type: 'boolean' }, reset: { type: 'boolean' } } });
        const io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
        return command === 'reputation' ? await runReputation(positionals, values, io) : await runIpBlockList(positionals[0], positionals.slice(1), values, io);
      }
      case 'recipient-limit': {
        const { runRecipientLimit } = await import('./commands/recipient-limit.js');
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...common, reset: { type: 'boolean' }, json: { type: 'boolean' } } });
        return await runRecipientLimit(positionals, values, { stdout: process.stdout, stderr: process.stderr, env: process.env });
      }
      case 'verify-recipient': {
        const { runVerifyRecipient } = await import('./commands/verify-recipient.js');
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...common, from: { type: 'string' }, cached: { type: 'boolean' }, forget: { type: 'boolean' }, json: { type: 'boolean' } } });
        return await runVerifyRecipient(positionals, values, { stdout: process.stdout, stderr: process.stderr, env: process.env });
      }
      case 'track': {
        const { runTrack } = await import('./commands/track.js');
        const { values } = parseArgs({
          args: rest,
          options: { ...common, 'message-id': { type: 'string' }, sender: { type: 'string' }, recipient: { type: 'string' }, 'queue-id': { type: 'string' }, since: { type: 'string' }, json: { type: 'boolean' }, local: { type: 'boolean' }, summary: { type: 'boolean' }, top: { type: 'string' } },
        });
        return await runTrack(values, { stdout: process.stdout, stderr: process.stderr, env: process.env });
      }
      case '--version':
      case '-V':
      case 'version':
        process.stdout.write(`mailgw ${version()}\n`);
        return 0;
      case 'help': {
        // mailgw help [command]
        const topic = rest[0];
        if (topic !== undefined && !Object.hasOwn(COMMAND_USAGE, topic)) {
          process.stderr.write(`mailgw: unknown command "${topic}"\n\n${USAGE}`);
          return 2;
        }
        process.stdout.write(topic !== undefined ? COMMAND_USAGE[topic]! : USAGE);
        return 0;
      }
      case undefined:
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`mailgw: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`mailgw ${command}: ${(e as Error).message}\n(mailgw ${command} --help shows its options)\n`);
      return 2;
    }
    throw e;
  }
}

// `mailgw check | head`: a reader that goes away ends the output, not with a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

// Linked as /usr/sbin/sendmail (or any "sendmail"), it is `mailgw sendmail`; as mailq and
// newaliases, `sendmail -bp` and `sendmail -bi`, as Postfix's are.
const LINK_NAMES: Readonly<Record<string, readonly string[]>> = { sendmail: ['sendmail'], mailq: ['sendmail', '-bp'], newaliases: ['sendmail', '-bi'] };
const invokedAs = path.basename(process.argv[1] ?? '');
const code = await main([...(Object.hasOwn(LINK_NAMES, invokedAs) ? LINK_NAMES[invokedAs]! : []), ...process.argv.slice(2)]);
if (code !== 0 || !['start', 'listen'].includes(process.argv[2] ?? '')) process.exitCode = code;

/** --attachment "invoice.pdf" or "files.zip: setup.exe, readme.txt" (an archive and the names of the files in it). */
function attachmentOption(v: string): string | { name: string; files: string[] } {
  const colon = v.indexOf(':');
  if (colon < 0) return v.trim();
  return { name: v.slice(0, colon).trim(), files: v.slice(colon + 1).split(',').map((f) => f.trim()).filter(Boolean) };
}
