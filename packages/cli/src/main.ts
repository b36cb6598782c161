// The mailgw command line. Subcommands stay thin: they parse arguments and call the packages.
import { parseArgs } from 'node:util';
import { runCheck } from './commands/check.js';
import { runExplain } from './commands/explain.js';
import { runHashPassword } from './commands/hash-password.js';

const USAGE = `Usage: mailgw <command> [options]

Commands:
  check          validate gateway.yaml and connectors.d/, show each connector's rights
  explain        show what the gateway would answer a client at each SMTP stage, and why
  hash-password  read a password on stdin, print a hash for gateway.yaml users
  start          run listeners and delivery workers (embedded redis-server unless REDIS_URL)
  listen         run the listeners only
  worker         run a delivery worker (REDIS_URL or redis.url; start many, on many machines)
  queue          list, show, retry, suspend, resume, remove and export queued mail
  track          search the message tracking log

Common options:
  --config FILE       gateway config (default: gateway.yaml)
  --connectors DIR    connector files (default: connectors.d beside the config)

worker options:
  --concurrency N     messages delivered at once (default: queue.workerConcurrency)

queue:
  mailgw queue list [--json] | show ID [--json] | retry ID|--hop H|--all | suspend HOP | resume HOP
               | remove ID [--with-ndr] | export ID

track options:
  --message-id ID | --sender ADDR | --recipient ADDR | --queue-id ID  [--since 1h|DATE] [--json]

explain options:
  --binding IP:PORT --client-ip IP [--tls] [--auth USER] [--mail-from ADDR] [--rcpt ADDR]... [--size N] [--json]
  --scenario FILE     a YAML/JSON scenario (keys as in test/policy/*.yaml: connections, helo, authFailures,
                      recentMessages, data, …); the options above override it
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const common = { config: { type: 'string', default: 'gateway.yaml' }, connectors: { type: 'string' } } as const;
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
            json: { type: 'boolean' },
          },
        });
        if (!values.scenario && (!values.binding || !values['client-ip'])) {
          process.stderr.write('mailgw explain: --binding IP:PORT and --client-ip IP are required\n');
          return 2;
        }
        return runExplain(
          {
            config: values.config,
            connectors: values.connectors,
            binding: values.binding ?? '',
            clientIP: values['client-ip'] ?? '',
            scenarioFile: values.scenario,
            tls: values.tls ?? false,
            auth: values.auth ?? null,
            mailFrom: values['mail-from'] ?? null,
            rcpt: values.rcpt ?? [],
            ...(values.size ? { size: Number(values.size) } : {}),
            json: values.json ?? false,
          },
          process.stdout,
          process.stderr,
        );
      }
      case 'hash-password':
        return await runHashPassword(process.stdin, process.stdout, process.stderr);
      case 'start':
      case 'listen': {
        const { runServe } = await import('./commands/serve.js');
        const { values } = parseArgs({ args: rest, options: { ...common } });
        return await runServe({ ...values, workers: command === 'start' });
      }
      case 'worker': {
        const { runWorker } = await import('./commands/worker.js');
        const { values } = parseArgs({ args: rest, options: { ...common, concurrency: { type: 'string' } } });
        return await runWorker(values);
      }
      case 'queue': {
        const { runQueue } = await import('./commands/queue.js');
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { ...common, json: { type: 'boolean' }, hop: { type: 'string' }, all: { type: 'boolean' }, 'with-ndr': { type: 'boolean' } },
        });
        return await runQueue(positionals[0], positionals.slice(1), values, { stdout: process.stdout, stderr: process.stderr, env: process.env });
      }
      case 'track': {
        const { runTrack } = await import('./commands/track.js');
        const { values } = parseArgs({
          args: rest,
          options: { ...common, 'message-id': { type: 'string' }, sender: { type: 'string' }, recipient: { type: 'string' }, 'queue-id': { type: 'string' }, since: { type: 'string' }, json: { type: 'boolean' } },
        });
        return await runTrack(values, { stdout: process.stdout, stderr: process.stderr });
      }
      case undefined:
      case 'help':
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
      process.stderr.write(`mailgw ${command}: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

const code = await main(process.argv.slice(2));
if (code !== 0 || !['start', 'listen'].includes(process.argv[2] ?? '')) process.exitCode = code;
