// The built mailgw binary as the CLI tests run it, and a scratch copy of the shipped config.
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
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

/**
 * Runs `mailgw args…` without blocking this process (a test whose servers run in it: a scripted
 * next hop, a DNS server); exit code 0 or the command's.
 */
export async function mailgwAsync(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [bin, ...args], { env, timeout: 30_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

/** A temporary copy of the shipped gateway.yaml and connectors.d/, to add files to. */
export function shippedCopy(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-cli-'));
  cpSync(path.join(root, 'gateway.yaml'), path.join(dir, 'gateway.yaml'));
  cpSync(path.join(root, 'connectors.d'), path.join(dir, 'connectors.d'), { recursive: true });
  return dir;
}
