// mailgw explain: what would the gateway answer this client, and why.
import { formatIssue } from '@mailgw/config';
import { readStructuredFile } from '@mailgw/config/load';
import { createDirectoryClient, type DirectoryClient } from '@mailgw/directory';
import { groupLines } from './directory.js';
import { explain, headerSenderAddresses, recipientLookup, sendOnBehalfAnswer, type DirectoryIdentity, type Policy, type RecipientEntry, type Scenario, type SendAsAnswer, type SendOnBehalfAnswer } from '@mailgw/policy';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';

export interface ExplainOptions extends PathOptions, Scenario {
  /** A YAML/JSON file holding a Scenario; the other options, when given, override its keys. */
  scenarioFile?: string | undefined;
  json?: boolean;
}

/** The scenario file's keys, overridden by what was given on the command line. */
function scenarioOf(opts: ExplainOptions): { ok: true; scenario: Scenario } | { ok: false; error: string } {
  const { config: _c, connectors: _d, 'send-connectors': _s, scenarioFile, json: _j, ...cli } = opts;
  let base: Record<string, unknown> = {};
  if (scenarioFile) {
    const read = readStructuredFile(scenarioFile);
    if (!read.ok) return { ok: false, error: read.errors.map(formatIssue).join('\n') };
    const data = read.data;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) return { ok: false, error: `${scenarioFile}: a scenario is a mapping of keys (binding, clientIP, …)` };
    base = data as Record<string, unknown>;
  }
  const given = Object.fromEntries(
    Object.entries(cli).filter(([, v]) => v !== undefined && v !== null && v !== '' && v !== false && !(Array.isArray(v) && v.length === 0)),
  );
  const s = { ...base, ...given } as unknown as Scenario;
  if (typeof s.binding !== 'string' || s.binding === '' || typeof s.clientIP !== 'string' || s.clientIP === '') {
    return { ok: false, error: 'a binding (IP:PORT) and a client IP are required (--binding, --client-ip, or binding/clientIP in the scenario)' };
  }
  return { ok: true, scenario: s };
}

/**
 * The directory's part of a scenario, asked with the service account (never with a password):
 * the account --auth names when no local user has that name, and each recipient that needs a lookup.
 */
export async function askDirectory(policy: Policy, s: Scenario): Promise<Scenario> {
  const d = policy.config.gateway.directory;
  if (!d || s.directory) return s;
  const client = createDirectoryClient(d);
  const recipients: Record<string, RecipientEntry> = {};
  for (const to of s.rcpt ?? []) {
    const a = recipientLookup(policy, to);
    if (a !== null) recipients[a] = await client.recipientEntry(a);
  }
  // A recipient with delivery restrictions judges the sender by its object and groups.
  const sender = Object.values(recipients).some((e) => e.restrictions) && s.mailFrom ? await client.memberships(s.mailFrom.toLowerCase()) : undefined;
  let logon: NonNullable<Scenario['directory']>['logon'];
  if (s.auth && !policy.users.has(s.auth.toLowerCase())) {
    const r = await client.describe(s.auth);
    logon = r.kind !== 'ok' ? { kind: r.kind, why: r.why } : r.disabled ? { kind: 'invalid', why: `account ${r.identity.dn} is disabled (userAccountControl bit 2)` } : { kind: 'ok', identity: r.identity };
  }
  // Send As: asked for a MAIL FROM that is not one of the user's own addresses, as the listener would.
  const id = logon?.kind === 'ok' ? logon.identity : null;
  const from = s.mailFrom?.toLowerCase();
  const sendAs = id?.sids && from && !id.addresses.includes(from) ? await client.sendAs(from, id.sids) : undefined;
  // The header's From and Sender (--header): Send As for each address not the user's own, Send on Behalf for each From address.
  const header = id ? await headerAnswers(policy, client, id, s.data && s.data !== true ? (s.data.headers ?? []) : []) : {};
  await client.close();
  return { ...s, directory: { ...(logon ? { logon } : {}), recipients, ...(sender ? { sender } : {}), ...(sendAs ? { sendAs } : {}), ...header } };
}

/** What the directory says of the header's senders for this user (asked whether or not the policy will need each answer). */
async function headerAnswers(policy: Policy, client: DirectoryClient, id: DirectoryIdentity, headers: readonly string[]): Promise<{ headerSendAs?: Record<string, SendAsAnswer>; sendOnBehalf?: Record<string, SendOnBehalfAnswer> }> {
  // As the policy reads them (headerSenderAddresses), lower-cased as its questions are.
  const addresses = (name: string) => headerSenderAddresses(headers.filter((h) => h.slice(0, h.indexOf(':')).trim().toLowerCase() === name).map((h) => h.slice(h.indexOf(':') + 1))).map((a) => a.toLowerCase());
  const from = addresses('from');
  const sender = addresses('sender');
  const others = [...new Set([...from, ...sender])].filter((a) => !id.addresses.includes(a));
  const headerSendAs: Record<string, SendAsAnswer> = {};
  if (id.sids) for (const a of others) headerSendAs[a] = await client.sendAs(a, id.sids);
  const sendOnBehalf: Record<string, SendOnBehalfAnswer> = {};
  const attribute = policy.directoryMap?.sendOnBehalfAttribute ?? null;
  if (attribute && sender.length > 0) for (const a of others.filter((x) => from.includes(x))) sendOnBehalf[a] = sendOnBehalfAnswer(a, await client.entryAttributes(a, [attribute]), attribute, id);
  return { headerSendAs, sendOnBehalf };
}

export async function runExplain(opts: ExplainOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const sc = scenarioOf(opts);
  if (!sc.ok) {
    err.write(`mailgw explain: ${sc.error}\n`);
    return 2;
  }
  const r = loadPolicy(opts);
  if (!r.ok) {
    err.write('mailgw: the configuration is invalid; fix it first (mailgw check):\n');
    printIssues(err, 'Errors:', r.errors);
    return 1;
  }
  const scenario = await askDirectory(r.policy, sc.scenario);
  const e = explain(r.policy, scenario);
  if (opts.json) {
    const stages = e.stages.map(({ stage, input, decision, reply, reason, reasonCode, disconnect, tarpitMs }) => ({ stage, input, decision, reply, reason, reasonCode, disconnect, tarpitMs }));
    out.write(JSON.stringify({ connector: e.connector, rights: e.rights, stages, antiSpam: e.antiSpam, filters: e.filters, ...(e.firewalled ? { firewalled: e.firewalled } : {}) }, null, 2) + '\n');
    return 0;
  }
  out.write(e.connector ? `Connector: "${e.connector}" (${e.connectorFile}), matched remote range ${e.matchedRange}\n` : 'Connector: none\n');
  for (const s of e.stages) {
    const extra = [s.disconnect ? 'then disconnects' : '', s.tarpitMs ? `held ${s.tarpitMs} ms (tarpit)` : ''].filter((x) => x !== '').join('; ');
    out.write(`\n${s.stage.toUpperCase()}${s.input ? ` ${s.input}` : ''}\n  ${s.decision.padEnd(7)} ${s.reply}\n  why     ${s.reason} [${s.reasonCode}]\n${extra ? `  then    ${extra}\n` : ''}`);
  }
  if (e.antiSpam) {
    out.write(`\nANTI-SPAM\n  ${e.antiSpam.applies ? 'applies' : 'bypassed'} ${e.antiSpam.reason}\n  sender authentication ${e.antiSpam.senderAuthentication.applies ? 'runs at DATA' : 'does not run'}: ${e.antiSpam.senderAuthentication.reason}\n  sender reputation ${e.antiSpam.senderReputation.applies ? 'counts each message' : 'does not count'}: ${e.antiSpam.senderReputation.reason}\n`);
  }
  if (e.firewalled && e.firewalled.length > 0) {
    out.write('\nHEADER FIREWALL\n');
    for (const f of e.firewalled) out.write(`  removes ${f.reason}\n`);
  }
  if (e.connector) {
    const logon = scenario.directory?.logon;
    if (logon?.kind === 'ok') out.write(`\nDirectory: ${scenario.auth} is ${logon.identity.dn}\n  addresses ${logon.identity.addresses.join(', ') || '(none)'}\n${groupLines(logon.identity, '  ')}`);
    else if (logon) out.write(`\nDirectory: ${logon.kind === 'unavailable' ? 'could not be asked' : 'refuses the logon'}: ${logon.why}\n`);
    out.write(`\nSession rights${sc.scenario.auth ? ` after AUTH as ${sc.scenario.auth}` : ''}:\n`);
    if (e.rights.length === 0) out.write('  (none)\n');
    for (const right of e.rights) out.write(`  ${right.padEnd(48)} from ${e.rightsSources[right]?.join('; ')}\n`);
    out.write('\nContent filters at the end of DATA:\n');
    if (e.filters.length === 0) out.write('  (none configured: gateway.yaml has no rspamd and no milters)\n');
    for (const f of e.filters) out.write(`  ${f.name.padEnd(16)} ${f.runs ? 'runs   ' : 'skipped'} ${f.reason.message}\n`);
  }
  return 0;
}
