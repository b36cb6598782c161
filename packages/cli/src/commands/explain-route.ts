// mailgw explain --route rcpt@domain [--mail-from addr]: which send connector a recipient leaves
// through, its next hops and TLS policy, and why; and the routing summary `mailgw check` prints.
import { describeTls, type GatewayConfig, type RouteSecret, type SendConnector } from '@mailgw/config';
import { parseEnvelopeAddress, selectSendConnector, type ConnectorChoice } from '@mailgw/policy';
import { hopKey } from '@mailgw/queue';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';

export interface ExplainRouteOptions extends PathOptions {
  readonly route: string;
  readonly mailFrom?: string | null | undefined;
  readonly json?: boolean | undefined;
}

/** Where a connector's mail goes, as one line. */
export function nextHopsText(c: SendConnector<RouteSecret>, domain: string): string {
  const t = c.target;
  switch (t.kind) {
    case 'maildir':
      return `local mailboxes in ${t.root}`;
    case 'mx':
      return `the MX hosts of ${domain} (port ${t.port ?? 25})`;
    case 'smtp': {
      const scheme = t.lmtp ? 'LMTP' : t.secure ? 'SMTP over TLS (smtps)' : 'SMTP';
      const hosts = t.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`);
      return `${scheme} to ${hosts.length > 1 ? `smart hosts ${hosts.join(', ')} (tried in this order)` : `${hosts[0]}`}`;
    }
  }
}

function tlsText(c: SendConnector<RouteSecret>): string {
  const t = c.target;
  if (t.kind === 'maildir') return 'none (local delivery)';
  if (t.kind === 'smtp' && t.secure) return `TLS from the first byte (${t.tls.tlsAuthLevel})`;
  const extra = t.kind === 'smtp' && t.auth?.mechanism === 'BasicAuthRequireTLS' && !t.tls.requireTLS ? '; STARTTLS required before AUTH (BasicAuthRequireTLS)' : '';
  // MTA-STS is per recipient domain and looked up at delivery (worker, mta-sts.ts): named here, applied there.
  const sts = t.kind === 'mx' ? "; plus DANE (DNSSEC-signed TLSA records of each MX host, where the MX and address records are signed too) and the recipient domain's MTA-STS policy, looked up at delivery (enforce: only the MX hosts it lists, with verified TLS to their names)" : '';
  return describeTls(t.tls) + extra + sts;
}

function authText(c: SendConnector<RouteSecret>): string {
  const t = c.target;
  if (t.kind === 'smtp' && t.auth) return `${t.auth.mechanism} as ${t.auth.user}`;
  return c.smartHostAuthMechanism === 'ExternalAuthoritative' ? 'ExternalAuthoritative (no AUTH: the path is secured outside mailgw)' : 'None';
}

/** One domain's routing, as JSON and as text lines. */
export function routeReport(g: GatewayConfig<RouteSecret>, recipientDomain: string, senderDomain: string | null) {
  const choice: ConnectorChoice<RouteSecret> = selectSendConnector(g.sendConnectors, { recipientDomain, senderDomain });
  const c = choice.connector;
  return {
    recipientDomain,
    senderDomain,
    connector: c ? c.name : null,
    file: c ? c.origin.file : null,
    addressSpace: choice.addressSpace?.text ?? null,
    reason: choice.reason,
    reasonCode: choice.reasonCode,
    hop: c ? hopKey(c.target, recipientDomain, c) : 'Unreachable',
    nextHops: c ? nextHopsText(c, recipientDomain) : 'none: the recipient waits in the Unreachable queue (451 4.4.4) until it expires',
    tls: c ? tlsText(c) : null,
    auth: c ? authText(c) : null,
    fqdn: c ? (c.fqdn ?? g.fqdn) : null,
    sourceIPAddress: c?.sourceIPAddress ?? null,
    maxMessageSize: c?.maxMessageSize ?? null,
  };
}

export function runExplainRoute(opts: ExplainRouteOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  const rcpt = parseEnvelopeAddress(opts.route);
  if (!rcpt.ok || rcpt.value.domain === '') {
    err.write(`mailgw explain: --route needs a recipient address like user@fabrikam.com ("${opts.route}" is not one)\n`);
    return 2;
  }
  let senderDomain: string | null = null;
  if (opts.mailFrom) {
    const s = parseEnvelopeAddress(opts.mailFrom);
    if (!s.ok) {
      err.write(`mailgw explain: --mail-from "${opts.mailFrom}" is not an address\n`);
      return 2;
    }
    senderDomain = s.value.domain || null;
  }
  const r = loadPolicy(opts);
  if (!r.ok) {
    err.write('mailgw: the configuration is invalid; fix it first (mailgw check):\n');
    printIssues(err, 'Errors:', r.errors);
    return 1;
  }
  const rep = routeReport(r.policy.config.gateway, rcpt.value.domain, senderDomain);
  if (opts.json) {
    out.write(JSON.stringify(rep, null, 2) + '\n');
    return 0;
  }
  out.write(`ROUTE ${opts.route}${opts.mailFrom ? ` from ${opts.mailFrom}` : ' (no --mail-from: as for the null sender, so address spaces limited to sender domains do not apply)'}\n`);
  out.write(`  connector  ${rep.connector === null ? 'none' : `${rep.connector} (${rep.file})`}\n`);
  out.write(`  why        ${rep.reason}\n`);
  out.write(`  next hops  ${rep.nextHops}\n`);
  if (rep.connector !== null) {
    out.write(`  queue      ${rep.hop}\n`);
    out.write(`  TLS        ${rep.tls}\n`);
    out.write(`  auth       ${rep.auth}\n`);
    out.write(`  EHLO       ${rep.fqdn}${rep.sourceIPAddress ? `, from ${rep.sourceIPAddress}` : ''}\n`);
    if (rep.maxMessageSize !== null) out.write(`  size limit ${rep.maxMessageSize} bytes\n`);
  }
  return 0;
}
