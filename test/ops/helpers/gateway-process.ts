// `mailgw start` (or listen) as a child process on the TypeScript sources, with its pino lines
// parsed as they come, so a test can wait for "configuration reloaded" and friends.
import { spawn, type ChildProcess } from 'node:child_process';
import { cliMain, repoRoot } from '../../worker/helpers/worker-process.js';
import { eventually } from '../../worker/helpers/gateway.js';

export type LogLine = Record<string, unknown> & { msg?: string };

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** Everything printed, for failure messages. */
  output(): string;
  /** Resolves with the first log line (after `from`) that satisfies `test`. */
  waitForLog(test: (l: LogLine) => boolean, what: string, from?: number, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

export async function startGatewayProcess(configPath: string, env: NodeJS.ProcessEnv, command: 'start' | 'listen' = 'start'): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', cliMain, command, '--config', configPath], {
    cwd: repoRoot,
    env: { ...process.env, REDIS_URL: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let text = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    text += d.toString();
    partial += d.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const p: GatewayProcess = {
    child,
    logs,
    output: () => text,
    async waitForLog(test, what, from = 0, timeoutMs = 30_000) {
      return eventually(
        () => {
          if (child.exitCode !== null) throw new Error(`mailgw exited (${child.exitCode}) while waiting for ${what}:\n${text.slice(-3000)}`);
          return logs.slice(from).find(test);
        },
        what,
        timeoutMs,
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n${text.slice(-3000)}`);
      });
    },
    async stop(graceMs = 20_000) {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  await p.waitForLog((l) => l.msg === 'mailgw is running', 'mailgw to start');
  return p;
}
