// mailgw explain --pickup FILE: what the pickup directory would do with a message file, without
// dropping it there: read as the pickup reads it (@mailgw/listener openPickupFile), judged by the
// policy's explainPickup (its envelope or why it would become *.bad, each recipient as RCPT
// judges it, the transport and journal rules on its real header). For a *.bad file, the why.
import { lstatSync } from 'node:fs';
import path from 'node:path';
import { openPickupFile } from '@mailgw/listener';
import { parseHeaderFields } from '@mailgw/mail';
import { explainPickup, pickupEnvelope, type StageResult } from '@mailgw/policy';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';
import { askDirectory } from './explain.js';

export async function runExplainPickup(opts: PathOptions & { file: string; json: boolean }, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const r = loadPolicy(opts);
  if (!r.ok) {
    err.write('mailgw: the configuration is invalid; fix it first (mailgw check):\n');
    printIssues(err, 'Errors:', r.errors);
    return 1;
  }
  const policy = r.policy;
  const g = policy.config.gateway;
  const file = path.resolve(opts.file);
  try {
    lstatSync(file);
  } catch (e) {
    err.write(`mailgw explain: --pickup ${opts.file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}\n`);
    return 2;
  }
  // settleMs 0: judged as it is now (the pickup would give a young multiply-linked file a minute).
  const opened = await openPickupFile(file, { maxHeaderSize: g.pickupDirectoryMaxHeaderSize, maxSendSize: g.maxSendSize, settleMs: 0 });
  let stages: StageResult[];
  let facts = '';
  if (opened.kind !== 'ok') {
    const why = opened.kind === 'bad' ? opened : { code: 'pickup-later', why: 'it is being written' };
    stages = [{ stage: 'pickup', decision: 'reject', reply: 'not sent: the file is renamed *.bad', reason: why.why, reasonCode: why.code }];
  } else {
    const fields = parseHeaderFields(opened.head.header);
    facts = ` (${opened.st.size} bytes, owner uid ${opened.st.uid})`;
    await opened.fh.close();
    // The directory's answers for its recipients, asked as explain asks them (only with a directory).
    const env = pickupEnvelope(policy, fields);
    const scenario = env.ok ? await askDirectory(policy, { binding: '', clientIP: '127.0.0.1', mailFrom: env.sender?.address ?? '', rcpt: env.recipients.map((x) => x.address) }) : null;
    stages = explainPickup(policy, fields, opened.st.size, scenario?.directory);
  }
  if (opts.json) {
    out.write(JSON.stringify({ file, connector: 'Pickup', stages }, null, 2) + '\n');
    return 0;
  }
  out.write(`Pickup file: ${file}${facts}; submitted as connector "Pickup" (any sender and recipient, no anti-spam)\n`);
  for (const s of stages) out.write(`\n${s.stage.toUpperCase()}${s.input ? ` ${s.input}` : ''}\n  ${s.decision.padEnd(7)} ${s.reply}\n  why     ${s.reason} [${s.reasonCode}]\n`);
  return 0;
}
