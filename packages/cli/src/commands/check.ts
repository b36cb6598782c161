// mailgw check: validate the config and show what each connector lets each principal do.
import { BUILTIN_PRINCIPALS, formatDuration, formatSize } from '@mailgw/config';
import { effectiveRights, userPrincipal, type CompiledConnector, type Policy, type PrincipalKey } from '@mailgw/policy';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';

const SHORT: Record<string, string> = {
  'ms-Exch-SMTP-Submit': 'Submit',
  'ms-Exch-SMTP-Accept-Any-Recipient': 'AnyRecipient(relay)',
  'ms-Exch-SMTP-Accept-Any-Sender': 'AnySender',
  'ms-Exch-SMTP-Accept-Authoritative-Domain-Sender': 'AuthoritativeSender',
  'ms-Exch-SMTP-Accept-Authentication-Flag': 'AuthFlag',
  'ms-Exch-SMTP-Accept-Exch50': 'Exch50',
  'ms-Exch-Bypass-Anti-Spam': 'BypassAntiSpam',
  'ms-Exch-Bypass-Message-Size-Limit': 'BypassSizeLimit',
  'ms-Exch-Accept-Headers-Routing': 'HeadersRouting',
  'ms-Exch-Accept-Headers-Organization': 'HeadersOrganization',
  'ms-Exch-Accept-Headers-Forest': 'HeadersForest',
};

/** Principals worth showing for a connector: built-ins with any rights, and named users. */
export function principalRights(c: CompiledConnector, policy: Policy): Array<{ principal: string; rights: string[] }> {
  const rows: Array<{ principal: string; rights: string[] }> = [];
  const show = (label: string, principals: PrincipalKey[]) => {
    const r = effectiveRights(c.acl, principals);
    if (r.rights.size > 0 || label === 'Anonymous') rows.push({ principal: label, rights: [...r.rights] });
  };
  show(c.externallySecured ? 'ExternallySecuredServers (every client)' : 'Anonymous', c.initialPrincipals.slice());
  for (const p of BUILTIN_PRINCIPALS) if (p !== 'Anonymous' && !c.initialPrincipals.includes(p)) show(p, [p]);
  for (const key of c.acl.keys()) {
    if (!key.startsWith('user:')) continue;
    const u = policy.users.get(key.slice(5));
    if (u) show(`user ${u.name} (after AUTH)`, ['AuthenticatedUsers', userPrincipal(u.name)]);
  }
  return rows;
}

export function runCheck(opts: PathOptions & { json?: boolean }, out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  const r = loadPolicy(opts);
  if (!r.ok) {
    err.write(`mailgw: the configuration has ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}; nothing was started.\n`);
    printIssues(err, 'Errors:', r.errors);
    printIssues(err, 'Warnings:', r.warnings);
    return 1;
  }
  const p = r.policy;
  if (opts.json) {
    out.write(
      JSON.stringify(
        {
          ok: true,
          connectors: p.connectors.map((c) => ({
            name: c.name,
            file: c.config.file,
            enabled: c.config.enabled,
            bindings: c.config.bindings.map((b) => b.text),
            remoteIPRanges: c.config.remoteIPRanges.map((x) => x.text),
            authMechanism: c.config.authMechanism,
            permissionGroups: c.config.permissionGroups,
            rights: principalRights(c, p),
          })),
          warnings: r.warnings,
        },
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  const g = p.config.gateway;
  out.write(`Configuration OK: ${p.config.gatewayFile}, ${p.connectors.length} connector(s), fqdn ${g.fqdn}\n`);
  out.write(`Accepted domains: ${p.acceptedDomains.map((d) => `${d.pattern.text} (${d.type})`).join(', ')}; default ${g.defaultDomain}\n`);
  out.write(`Recipient lookup: ${p.recipients ? `${p.recipients.size} known mailboxes` : 'off (any local part of an Authoritative domain is accepted)'}; users: ${p.users.size}\n`);
  // Keys were read and checked by loadPolicy; this says what signs.
  out.write(`DKIM signing: ${g.dkim ? `${g.dkim.domains.map((d) => `${d.domain} (${d.selectors.map((x) => `${x.name} ${x.algorithm}`).join(', ')})`).join('; ')}, ${g.dkim.canonicalization}, keys OK` : 'off'}\n\n`);
  for (const c of p.connectors) {
    const cfg = c.config;
    out.write(`Connector "${c.name}"${cfg.enabled ? '' : ' (DISABLED)'}  [${cfg.file}]\n`);
    out.write(`  bindings        ${cfg.bindings.map((b) => b.text).join(', ')}${cfg.implicitTLS ? ' (implicit TLS)' : ''}\n`);
    out.write(`  remote ranges   ${cfg.remoteIPRanges.map((x) => x.text).join(', ')}\n`);
    out.write(`  auth            ${cfg.authMechanism.join(', ') || 'None'}${cfg.requireTLS ? '; requireTLS' : ''}\n`);
    out.write(`  groups          ${cfg.permissionGroups.join(', ') || 'none'}\n`);
    out.write(`  limits          size ${formatSize(cfg.maxMessageSize)}, ${cfg.maxRecipientsPerMessage} rcpts, ${cfg.maxInboundConnection ?? 'unlimited'} conns (${cfg.maxInboundConnectionPerSource ?? 'unlimited'}/source), rate ${cfg.messageRateLimit ?? 'unlimited'}/min by ${cfg.messageRateSource}, timeouts ${formatDuration(cfg.connectionTimeout)}/${formatDuration(cfg.connectionInactivityTimeout)} idle\n`);
    out.write(`  rights\n`);
    for (const row of principalRights(c, p)) {
      out.write(`    ${row.principal.padEnd(28)} ${row.rights.map((x) => SHORT[x] ?? x).join(', ') || '(none: MAIL gets 530 5.7.1 until AUTH)'}\n`);
    }
    out.write('\n');
  }
  printIssues(out, 'Warnings:', r.warnings);
  return 0;
}
