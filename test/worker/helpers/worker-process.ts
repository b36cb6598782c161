/** `mailgw worker` as a child process (run from the TypeScript sources), with its config on disk. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const cliMain = path.join(repoRoot, 'packages/cli/src/main.ts');

/** Writes gateway.yaml (from `yaml`) and a minimal connectors.d into `dir`; returns the gateway.yaml path. */
export function writeConfig(dir: string, yaml: string): string {
  mkdirSync(path.join(dir, 'connectors.d'), { recursive: true });
  writeFileSync(path.join(dir, 'connectors.d', '10-default.yaml'), 'name: Default\nusage: Internet\nbindings: [127.0.0.1:2525]\n');
  const file = path.join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  return file;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  /** Every pino line printed so far, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  readonly stderr: () => string;
  /** Resolves once the worker logged that it started. */
  readonly ready: Promise<void>;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
}

export function spawnWorker(configPath: string, env: NodeJS.ProcessEnv, args: string[] = []): WorkerProcess {
  const child = spawn(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', cliMain, 'worker', '--config', configPath, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let err = '';
  let out = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        logs.push(j);
        if (j.msg === 'delivery worker started') onReady();
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  void exited.then(() => onReady());
  return { child, logs, stderr: () => err, ready, exited };
}
