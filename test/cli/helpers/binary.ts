// The built mailgw binary as the CLI tests run it, and a scratch copy of the shipped config.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const bin = path.join(root, 'packages/cli/bin/mailgw.js');

/** Runs `mailgw args…` to the end; stdin is `input` ('' = closed at once). */
export function mailgw(args: string[], input = '', env: NodeJS.ProcessEnv = process.env): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, input, encoding: 'utf8', timeout: 60_000, env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A temporary copy of the shipped gateway.yaml and connectors.d/, to add files to. */
export function shippedCopy(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-cli-'));
  cpSync(path.join(root, 'gateway.yaml'), path.join(dir, 'gateway.yaml'));
  cpSync(path.join(root, 'connectors.d'), path.join(dir, 'connectors.d'), { recursive: true });
  return dir;
}
