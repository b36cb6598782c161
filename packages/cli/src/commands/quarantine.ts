// mailgw quarantine release: a message held in quarantine (rspamd's SCL quarantine threshold, a
// milter's or a transport rule's quarantine, DMARC's quarantine action) sent on to the recipients
// it was meant for, as Exchange's Release-QuarantineMessage (or Send Again from the quarantine
// mailbox) does. The administrator saves it from the quarantine mailbox (the maildir file, or
// an .eml from the mail client); the envelope comes from the stamps mailgw put on it
// (policy quarantineRelease), and the message goes into the pickup directory in the Replay
// format, so it is sent as the gateway's own mail: transport and journal rules apply, the
// anti-spam filters that held it do not judge it again.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { formatIssue } from '@mailgw/config';
import { loadConfig } from '@mailgw/config/load';
import { LineEndingFilter } from '@mailgw/listener';
import { messageHeader, parseHeaderFields, replayEnvelopeFields } from '@mailgw/mail';
import { quarantineRelease } from '@mailgw/policy';
import { EX, pickupWriteError, writePickupFile } from '../pickup-file.js';
import { QUARANTINE_USAGE } from '../usage.js';

export interface QuarantineOptions {
  readonly config: string;
  readonly connectors?: string | undefined;
  /** Only to these original recipients. */
  readonly to?: readonly string[] | undefined;
  /** The envelope sender, when the message does not say it. */
  readonly from?: string | undefined;
  /** Say what would be sent; write nothing. */
  readonly 'dry-run'?: boolean | undefined;
}

export interface QuarantineIO {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

const CRLF = Buffer.from('\r\n');

/** The message as it is to be sent on: its envelope as Replay fields, the header without the quarantine's stamps. */
export function releasedFile(saved: Buffer, opts: Pick<QuarantineOptions, 'to' | 'from'>): { ok: true; file: Buffer; reason: string; held: string | null } | { ok: false; reason: string } {
  const filter = new LineEndingFilter('normalise');
  const message = Buffer.concat([filter.push(saved), filter.end()]);
  const head = messageHeader(message);
  const fields = parseHeaderFields(head.header);
  const r = quarantineRelease(fields, { ...(opts.to ? { to: opts.to } : {}), ...(opts.from !== undefined ? { from: opts.from } : {}) });
  if (!r.ok) return r;
  const removed = new Set(r.removed);
  // The Replay envelope, and the mark that keeps the filters from holding it in quarantine again.
  const envelope = Buffer.concat([replayEnvelopeFields({ sender: r.sender?.address ?? '', recipients: r.recipients.map((x) => ({ address: x.address })) }), Buffer.from('X-Mailgw-Release: quarantine\r\n')]);
  const header = fields.filter((_, i) => !removed.has(i)).map((f) => f.raw);
  return { ok: true, file: Buffer.concat([envelope, ...header, ...(head.separator ? [CRLF] : []), head.rest]), reason: r.reason, held: r.held };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  return Buffer.concat(chunks);
}

export async function runQuarantine(sub: string | undefined, files: readonly string[], opts: QuarantineOptions, io: QuarantineIO): Promise<number> {
  const usage = (why: string) => {
    io.stderr.write(`mailgw quarantine: ${why}\n\n${QUARANTINE_USAGE}`);
    return EX.USAGE;
  };
  if (sub !== 'release') return usage(sub ? `unknown subcommand "${sub}"` : 'give a subcommand');
  if (files.length === 0) return usage('release takes the saved message files (- for standard input)');
  if (files.filter((f) => f === '-').length > 1) return usage('standard input (-) can be given once');
  const loaded = loadConfig({ configPath: opts.config, ...(opts.connectors ? { connectorsDir: opts.connectors } : {}), env: io.env, secrets: 'unresolved' });
  if (!loaded.ok) {
    io.stderr.write(`mailgw quarantine: ${opts.config} has errors:\n  ${loaded.errors.map(formatIssue).join('\n  ')}\n`);
    return EX.CONFIG;
  }
  const g = loaded.config.gateway;
  if (!g.pickupDirectoryPath) {
    io.stderr.write(`mailgw quarantine: ${opts.config} has no pickupDirectoryPath: a released message is sent through the pickup directory (README "The pickup directory and mailgw sendmail")\n`);
    return EX.CONFIG;
  }
  const dir = path.resolve(loaded.baseDir, g.pickupDirectoryPath);
  let worst: number = EX.OK;
  for (const name of files) {
    const shown = name === '-' ? 'standard input' : name;
    let saved: Buffer;
    try {
      saved = name === '-' ? await readAll(io.stdin) : await readFile(name);
    } catch (e) {
      io.stderr.write(`mailgw quarantine: ${shown}: ${(e as Error).message}\n`);
      worst = Math.max(worst, EX.NOINPUT);
      continue;
    }
    const r = releasedFile(saved, opts);
    if (!r.ok) {
      io.stderr.write(`mailgw quarantine: ${shown}: not released: ${r.reason}\n`);
      worst = Math.max(worst, EX.DATAERR);
      continue;
    }
    if (opts['dry-run']) {
      io.stdout.write(`${shown}: would be ${r.reason}\n${r.held ? `  held: ${r.held}\n` : ''}`);
      continue;
    }
    try {
      const file = await writePickupFile(dir, r.file);
      io.stdout.write(`${shown}: ${r.reason}; in the pickup directory as ${file}\n`);
    } catch (e) {
      const why = pickupWriteError(e, dir);
      io.stderr.write(`mailgw quarantine: ${shown}: ${why.message}\n`);
      worst = Math.max(worst, why.exit);
    }
  }
  return worst;
}
