// mailgw explain: what would the gateway answer this client, and why.
import { explain, type Scenario } from '@mailgw/policy';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';

export interface ExplainOptions extends PathOptions, Scenario {
  json?: boolean;
}

export function runExplain(opts: ExplainOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  const r = loadPolicy(opts);
  if (!r.ok) {
    err.write('mailgw: the configuration is invalid; fix it first (mailgw check):\n');
    printIssues(err, 'Errors:', r.errors);
    return 1;
  }
  const e = explain(r.policy, opts);
  if (opts.json) {
    out.write(JSON.stringify({ connector: e.connector, rights: e.rights, stages: e.stages.map(({ stage, input, decision, reply, reason }) => ({ stage, input, decision, reply, reason })) }, null, 2) + '\n');
    return 0;
  }
  out.write(e.connector ? `Connector: "${e.connector}" (${e.connectorFile}), matched remote range ${e.matchedRange}\n` : 'Connector: none\n');
  for (const s of e.stages) {
    out.write(`\n${s.stage.toUpperCase()}${s.input ? ` ${s.input}` : ''}\n  ${s.decision.padEnd(7)} ${s.reply}\n  why     ${s.reason}\n`);
  }
  if (e.connector) {
    out.write(`\nSession rights${opts.auth ? ` after AUTH as ${opts.auth}` : ''}:\n`);
    if (e.rights.length === 0) out.write('  (none)\n');
    for (const right of e.rights) out.write(`  ${right.padEnd(48)} from ${e.rightsSources[right]?.join('; ')}\n`);
  }
  return 0;
}
