// mailgw check: validate the config and show what each connector lets each principal do.
import { BUILTIN_PRINCIPALS, formatDuration, formatSize, type RemoteDomain } from '@mailgw/config';
import { bounceVerificationText, DELIVERY_RESTRICTION_KEYS, domainSecureRoute, effectiveRights, groupSourceText, groupPrincipal, userPrincipal, type CompiledConnector, type DirectorySchemaMap, type Policy, type PrincipalKey } from '@mailgw/policy';
import { readdirSync, statSync, type Stats } from 'node:fs';
import { isPickupFileName } from '@mailgw/listener';
import path from 'node:path';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';
import { nextHopsText, routeReport } from './explain-route.js';

/** A remote domain no organisation owns (RFC 2606): where "everything else" leaves. */
export const SAMPLE_REMOTE_DOMAIN = 'example.com';

/** The recipient domains `check` shows routing for: each accepted domain (a wildcard's by a name under it), then a remote one. */
function routingSamples(p: Policy): Array<{ label: string; domain: string }> {
  const accepted = p.acceptedDomains.filter((d) => d.pattern.domain !== '').map((d) => (d.pattern.wildcard ? { label: `${d.pattern.text} (sub.${d.pattern.domain})`, domain: `sub.${d.pattern.domain}` } : { label: d.pattern.domain, domain: d.pattern.domain }));
  return [...accepted, { label: `${SAMPLE_REMOTE_DOMAIN} (a remote domain)`, domain: SAMPLE_REMOTE_DOMAIN }];
}

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
/** Domain security in one line: which partners are received from on which connectors, and sent to through which send connectors. */
function domainSecuritySummary(p: Policy): string {
  const g = p.config.gateway;
  const receiving = p.connectors.filter((c) => c.config.enabled && c.config.domainSecureEnabled).map((c) => `"${c.name}"`);
  if (g.tlsReceiveDomainSecureList.length === 0 && g.tlsSendDomainSecureList.length === 0 && receiving.length === 0) return 'Domain security: off';
  const inbound = g.tlsReceiveDomainSecureList.length ? `receiving from ${g.tlsReceiveDomainSecureList.join(', ')} on ${receiving.join(', ') || 'no connector with domainSecureEnabled'}` : 'receiving from nobody';
  const outbound = g.tlsSendDomainSecureList.map((d) => {
    const r = domainSecureRoute(g, d);
    return r.without ? `${d} (NOT secured: ${r.without})` : `${d} (send connector "${r.connector}")`;
  });
  return `Domain security: ${inbound}; ${outbound.length ? `sending to ${outbound.join(', ')}` : 'sending to nobody'}`;
}

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
  // Directory groups: what a member gets after AUTH (with Authenticated Users; denies to its other groups may remove some).
  const groups = new Set(c.config.permissions.flatMap((x) => (x.group !== undefined ? [x.group] : [])));
  for (const g of groups) show(`group ${g} (member, after AUTH)`, ['AuthenticatedUsers', groupPrincipal(g)]);
  return rows;
}

/** The directory part of check: where mailgw looks, what it reads, and what uses it. */
export function directorySummary(policy: Policy): string {
  const d = policy.config.gateway.directory;
  const m = policy.directoryMap;
  if (!d || !m) return 'Directory: none (AUTH from gateway.yaml users only)';
  return [
    `Directory: ${d.preset} at ${d.url.join(', ')}${d.startTLS ? ' (StartTLS)' : ''}, base ${d.baseDn}, as ${d.bindDn}`,
    `  logon by ${m.loginAttributes.join(' or ')} with ${m.userFilter}${m.checksAccountControl ? ', disabled accounts (userAccountControl bit 2) refused' : ''}; local users first`,
    `  addresses from ${m.addressAttributes.join(', ')}; ${groupSourceText(m, d.maxGroupDepth)}`,
    m.maxSendSizeAttribute
      ? `  users' own send size limits read from ${m.maxSendSizeAttribute} (KB): after AUTH a larger message gets 552 5.2.3 RESOLVER.RST.SendSizeLimit.Sender`
      : '  no user send size limits read (maxSendSizeAttribute not set)',
    m.sendAsPermissions
      ? "  Send As from the directory: a user's MAIL FROM of another object's address is allowed where that object's DACL (nTSecurityDescriptor) grants the user or one of its tokenGroups the Send-As right"
      : '  no Send As from the directory (sendAsPermissions off): users send as their own addresses, or as the connector rights allow',
    !policy.config.gateway.headerSenderCheck
      ? "  Send on Behalf not judged (headerSenderCheck off: only MAIL FROM is checked)"
      : m.sendOnBehalfAttribute
        ? `  Send on Behalf from ${m.sendOnBehalfAttribute}: a header From: the user may not send as passes when Sender: is the user's and that object lists the user or one of its groups`
        : '  no Send on Behalf read (sendOnBehalfAttribute not set): a header From: must be an address the user may send as',
    m.recipientLimitsAttribute
      ? `  users' own recipient limits read from ${m.recipientLimitsAttribute}: after AUTH the RCPT past it gets 452 4.5.3 Too many recipients`
      : '  no user recipient limits read (recipientLimitsAttribute not set)',
    `  recipient lookup ${policy.recipientsFromDirectory ? `on (cached ${formatDuration(d.cacheTtl)}, not found ${formatDuration(d.negativeCacheTtl)})` : 'off'}; timeout ${formatDuration(d.timeout)} per server; ${d.idleTimeout > 0 ? `connections kept per process (lookups; password checks), closed after ${formatDuration(d.idleTimeout)} idle` : 'a new connection per question (idleTimeout 0)'}`,
    ...(policy.recipientsFromDirectory
      ? [
          m.requireSenderAuthenticationAttribute
            ? `  recipients with ${m.requireSenderAuthenticationAttribute} TRUE take mail only from authenticated senders (users after AUTH, externally secured connectors): 550 5.7.1 RESOLVER.RST.AuthRequired to others`
            : '  no recipient restricted to authenticated senders (requireSenderAuthenticationAttribute not set)',
          m.maxReceiveSizeAttribute
            ? `  recipients' own size limits read from ${m.maxReceiveSizeAttribute} (KB): a larger declared SIZE= gets 552 5.2.3 RESOLVER.RST.RecipSizeLimit at RCPT, a message larger than every recipient's limit the same at the end of DATA`
            : '  no recipient size limits read (maxReceiveSizeAttribute not set)',
          deliveryRestrictionsLine(m),
        ]
      : []),
  ].join('\n');
}

/** Which delivery restriction lists the recipient lookup reads (deliveryRestrictionAttributes). */
function deliveryRestrictionsLine(m: DirectorySchemaMap): string {
  const read = DELIVERY_RESTRICTION_KEYS.filter((k) => m.deliveryRestrictions[k] !== null).map((k) => `${k} from ${m.deliveryRestrictions[k]}`);
  return read.length > 0
    ? `  delivery restrictions read: ${read.join(', ')}; a sender (MAIL FROM, with its groups) outside them gets 550 5.7.1 RESOLVER.RST.NotAuthorized`
    : '  no delivery restrictions read (deliveryRestrictionAttributes not set)';
}

/** recipientVerification in check: each domain's next hop (as the probes reach it) and the settings. */
export function recipientVerificationSummary(g: Policy['config']['gateway']): string {
  const rv = g.recipientVerification;
  if (!rv) return 'Recipient verification: off';
  const hops = rv.domains.map((d) => {
    const rep = routeReport(g, d.domain, null);
    return `${d.text} at ${rep.connector === null ? 'no next hop (see the warnings)' : rep.hop}`;
  });
  return [
    `Recipient verification: ${hops.join('; ')}`,
    `  probes MAIL FROM:<${rv.probeSender}>, RCPT waits ${formatDuration(rv.timeout)}, then ${rv.failureAction === 'accept' ? 'accepts' : '451 4.4.3'}; accepted cached ${formatDuration(rv.cacheTtl)} (asked again after ${formatDuration(rv.refreshAfter)}), refused ${formatDuration(rv.negativeCacheTtl)}; ${rv.maxProbesPerNextHop} probes at once per next hop`,
  ].join('\n');
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
          sendConnectors: p.config.gateway.sendConnectors.map((c) => ({
            name: c.name,
            file: c.origin.file,
            enabled: c.enabled,
            addressSpaces: c.addressSpaces.map((a) => a.text),
            target: c.text,
            sendHeadersRouting: c.sendHeadersRouting !== false,
          })),
          routing: routingSamples(p).map((d) => routeReport(p.config.gateway, d.domain, p.config.gateway.defaultDomain)),
          directory: p.config.gateway.directory
            ? (({ bindPassword: _secret, caPem: _ca, ...d }) => ({ ...d, ...p.directoryMap, recipientLookup: p.recipientsFromDirectory }))(p.config.gateway.directory)
            : null,
          backPressure: p.config.gateway.backPressure,
          recipientVerification: p.config.gateway.recipientVerification
            ? { ...p.config.gateway.recipientVerification, domains: p.config.gateway.recipientVerification.domains.map((d) => ({ domain: d.text, nextHop: routeReport(p.config.gateway, d.domain, null).hop })) }
            : null,
          throttlingPolicy: p.config.gateway.throttlingPolicy,
          // The organisation's limits in bytes and recipients; null: unlimited.
          maxSendSize: p.config.gateway.maxSendSize,
          maxReceiveSize: p.config.gateway.maxReceiveSize,
          maxRecipientEnvelopeLimit: p.config.gateway.maxRecipientEnvelopeLimit,
          pickupDirectory: pickupDirectoryState(p.config.gateway, r.baseDir),
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
  out.write(`Recipient lookup: ${p.recipientsFromDirectory ? `the directory (and ${p.recipients?.size ?? 0} addresses of local users)` : p.recipients ? `${p.recipients.size} known mailboxes` : 'off (any local part of an Authoritative domain is accepted)'}; users: ${p.users.size}\n`);
  // Keys were read and checked by loadPolicy; this says what signs.
  const bp = g.backPressure;
  out.write(`${recipientVerificationSummary(g)}\n`);
  const own = g.users.filter((u) => u.recipientRateLimit !== undefined).map((u) => `${u.name} ${u.recipientRateLimit ?? 'unlimited'}`);
  out.write(`Throttling policy: recipientRateLimit ${g.throttlingPolicy.recipientRateLimit === null ? 'unlimited' : `${g.throttlingPolicy.recipientRateLimit} recipients per authenticated user in 24 hours`}${own.length ? ` (own limits: ${own.join(', ')})` : ''}\n`);
  out.write(`${organizationLimitsText(g)}\n`);
  out.write(`Header senders: ${g.headerSenderCheck === 'audit' ? "audit: an authenticated user's From: and Sender: are judged as its MAIL FROM and what would be refused is logged (header sender would be refused), nothing refused" : g.headerSenderCheck ? "an authenticated user's From: and Sender: are judged as its MAIL FROM (550 5.7.60 otherwise); anonymous mail's From: is left to sender authentication" : 'not judged (headerSenderCheck off): only MAIL FROM is checked'}\n`);
  out.write(`Back pressure: ${bp.enabled ? `on: 452 4.3.1 for anonymous senders from ${bp.mediumPercent}%, for everyone from ${bp.highPercent}% of the queue's Redis memory (its maxmemory; embedded: ${g.redis.maxMemory === 'auto' ? 'half the machine\'s memory' : g.redis.maxMemory === 'unlimited' ? 'unlimited' : formatSize(g.redis.maxMemory)}), from ${bp.disk.mediumPercent}% and ${bp.disk.highPercent}% of the disk under ${r.dataDir}, and while Redis cannot write its append-only file` : 'off'}\n`);
  out.write(`DKIM signing: ${g.dkim ? `${g.dkim.domains.map((d) => `${d.domain} (${d.selectors.map((x) => `${x.name} ${x.algorithm}`).join(', ')})`).join('; ')}, ${g.dkim.canonicalization}, keys OK` : 'off'}\n`);
  const sa = g.senderAuthentication;
  out.write(`ARC: ${sa.arcTrustedSealers.length ? `trusted sealers ${sa.arcTrustedSealers.map((d) => d.text).join(', ')} (a DMARC fail they vouch for passes)` : 'no trusted sealers'}; ${sa.arcSeal ? `mail authenticated on arrival is sealed as ${sa.arcSeal.domain} (selector ${sa.arcSeal.selector}), key OK` : 'nothing sealed'}\n`);
  out.write(`Address rewriting: ${g.addressRewriteEntries.length === 0 ? 'off' : g.addressRewriteEntries.map((e) => `"${e.name}" ${e.internalAddress.text} ${e.outboundOnly ? '->' : '<->'} ${e.externalAddress.text}${e.exceptionList.length ? ` (except ${e.exceptionList.join(', ')})` : ''}`).join('; ')}\n`);
  const rules = g.transportRules;
  const sr = g.senderReputationConfig;
  const rated = [sr.externalMailEnabled ? 'anonymous' : '', sr.internalMailEnabled ? 'authenticated' : ''].filter(Boolean).join(' and ') || 'no';
  out.write(`Bounce verification: ${bounceVerificationText(g.bounceVerification)}\n`);
  out.write(`${journalRulesText(g)}\n`);
  out.write(`${pickupDirectoryText(pickupDirectoryState(g, r.baseDir))}\n`);
  out.write(`Sender reputation: ${!sr.enabled ? 'off' : `${rated} sessions rated; ${sr.senderBlockingEnabled && sr.senderBlockingPeriod > 0 ? `SRL ${sr.srlBlockThreshold} or more blocks for ${sr.senderBlockingPeriod} h` : 'no blocking (rated and logged only)'}`}\n`);
  out.write(`Transport rules: ${rules.length === 0 ? 'none' : rules.map((r) => `"${r.name}"${r.enabled ? (r.mode === 'Audit' ? ' (Audit)' : '') : ' (disabled)'}`).join(', ')}\n`);
  out.write(`${contentFiltersSummary(g)}\n`);
  const texts = g.systemMessages.map((m) => `${m.dsnCode} ${m.internal ? 'internal' : 'external'}`);
  out.write(`DSNs: from postmaster@${g.defaultDomain}${g.externalPostmasterAddress ? ` (to senders outside: ${g.externalPostmasterAddress})` : ''}; system messages ${texts.length ? texts.join(', ') : 'none'}; copies to postmaster@${g.defaultDomain} ${g.generateCopyOfDSNFor.length ? `for ${g.generateCopyOfDSNFor.join(', ')}` : 'none'}\n`);
  out.write(`Remote domains: ${remoteDomainsSummary(g.remoteDomains)}\n`);
  out.write(`${domainSecuritySummary(p)}\n`);
  out.write(`${directorySummary(p)}\n\n`);
  for (const c of p.connectors) {
    const cfg = c.config;
    out.write(`Connector "${c.name}"${cfg.enabled ? '' : ' (DISABLED)'}  [${cfg.file}]\n`);
    out.write(`  bindings        ${cfg.bindings.map((b) => b.text).join(', ')}${cfg.implicitTLS ? ' (implicit TLS)' : ''}\n`);
    out.write(`  remote ranges   ${cfg.remoteIPRanges.map((x) => x.text).join(', ')}\n`);
    out.write(`  auth            ${cfg.authMechanism.join(', ') || 'None'}${cfg.requireTLS ? '; requireTLS' : ''}${cfg.domainSecureEnabled ? `; domain security for ${g.tlsReceiveDomainSecureList.join(', ') || '(no domain in tlsReceiveDomainSecureList)'}` : ''}\n`);
    out.write(`  groups          ${cfg.permissionGroups.join(', ') || 'none'}\n`);
    out.write(`  limits          size ${formatSize(cfg.maxMessageSize)}, ${cfg.maxRecipientsPerMessage} rcpts, ${cfg.maxInboundConnection ?? 'unlimited'} conns (${cfg.maxInboundConnectionPerSource ?? 'unlimited'}/source), rate ${cfg.messageRateLimit ?? 'unlimited'}/min by ${cfg.messageRateSource}, timeouts ${formatDuration(cfg.connectionTimeout)}/${formatDuration(cfg.connectionInactivityTimeout)} idle\n`);
    out.write(`  rights\n`);
    for (const row of principalRights(c, p)) {
      out.write(`    ${row.principal.padEnd(28)} ${row.rights.map((x) => SHORT[x] ?? x).join(', ') || '(none: MAIL gets 530 5.7.1 until AUTH)'}\n`);
    }
    out.write('\n');
  }
  const sends = g.sendConnectors.filter((c) => c.origin.kind === 'file');
  out.write(`Send connectors: ${sends.length} in send-connectors.d/${g.routes.length > 0 ? `, plus ${g.routes.length} route(s) in ${p.config.gatewayFile} as shorthand` : ''}\n`);
  for (const c of sends) {
    out.write(`  "${c.name}"${c.enabled ? '' : ' (DISABLED)'}  [${c.origin.file}]  ${c.addressSpaces.map((a) => a.text).join(', ')} -> ${nextHopsText(c, '<recipient domain>')}${c.sendHeadersRouting === false ? '; Received fields removed' : ''}\n`);
  }
  out.write(`Outbound routing (sender in ${g.defaultDomain}; mailgw explain --route rcpt@domain for any other):\n`);
  const samples = routingSamples(p);
  const width = Math.max(28, ...samples.map((x) => x.label.length));
  for (const { label, domain } of samples) {
    const rep = routeReport(g, domain, g.defaultDomain);
    out.write(`  ${label.padEnd(width)} ${rep.connector === null ? 'no connector: waits in Unreachable (4.4.4)' : `${rep.connector} -> ${rep.nextHops}`}\n`);
  }
  out.write('\n');
  printIssues(out, 'Warnings:', r.warnings);
  return 0;
}

/** The pickup directory as the file system has it now, and its limits; null: none configured. */
export interface PickupDirectoryState {
  readonly path: string;
  /** null: not there yet (mailgw start makes it, mode 0700). */
  readonly mode: number | null;
  readonly uid: number | null;
  /** *.eml files waiting, *.bad files left for the admin. */
  readonly waiting: number;
  readonly bad: number;
  readonly maxHeaderSize: number;
  readonly maxMessagesPerMinute: number;
  readonly maxRecipientsPerMessage: number;
}

export function pickupDirectoryState(g: Policy['config']['gateway'], baseDir: string): PickupDirectoryState | null {
  if (!g.pickupDirectoryPath) return null;
  const dir = path.resolve(baseDir, g.pickupDirectoryPath);
  let st: Stats | undefined;
  let names: string[] = [];
  try {
    st = statSync(dir, { throwIfNoEntry: false });
    if (st?.isDirectory()) names = readdirSync(dir);
  } catch {
    // Not ours to read (check run as another user): said as not there, counts 0.
  }
  return {
    path: dir,
    mode: st ? st.mode & 0o7777 : null,
    uid: st ? st.uid : null,
    waiting: names.filter(isPickupFileName).length,
    bad: names.filter((n) => /\.bad$/i.test(n)).length,
    maxHeaderSize: g.pickupDirectoryMaxHeaderSize,
    maxMessagesPerMinute: g.pickupDirectoryMaxMessagesPerMinute,
    maxRecipientsPerMessage: g.pickupDirectoryMaxRecipientsPerMessage,
  };
}

/** The pickup directory, as `check` says it: where, who may drop files there, what waits. */
export function pickupDirectoryText(s: PickupDirectoryState | null): string {
  if (!s) return 'Pickup directory: off (mailgw sendmail has nowhere to hand mail to: set pickupDirectoryPath)';
  const limits = `${s.maxMessagesPerMinute} messages/min, header up to ${formatSize(s.maxHeaderSize)}, ${s.maxRecipientsPerMessage} recipients`;
  if (s.mode === null) return `Pickup directory: ${s.path} (not there yet: mailgw start makes it, mode 0700); ${limits}`;
  const open = s.mode & 0o002 ? '; WRITABLE BY EVERY LOCAL USER: anyone on this machine can send as anyone' : s.mode & 0o020 ? '; writable by its group: its members can send as anyone' : '';
  return `Pickup directory: ${s.path} (mode ${s.mode.toString(8).padStart(4, '0')}, owner uid ${s.uid}${open}); ${limits}; ${s.waiting} waiting${s.bad > 0 ? `, ${s.bad} *.bad (not sent: the log says why)` : ''}`;
}

/** gateway.yaml's journalRules and journalingReportNdrTo, as `check` says them. */
export function journalRulesText(g: Policy['config']['gateway']): string {
  if (g.journalRules.length === 0) return 'Journal rules: none';
  // Where each journaling mailbox's reports go: a mailbox with no next hop is a compliance gap.
  const via = (address: string) => {
    const rep = routeReport(g, address.slice(address.lastIndexOf('@') + 1), g.defaultDomain);
    return rep.connector === null ? 'NO NEXT HOP: the reports would wait in the Unreachable queue' : `via ${rep.hop}`;
  };
  const rules = g.journalRules.map((r) => `"${r.name}" ${r.scope}${r.recipient ? ` from or to ${r.recipient}` : ''} → ${r.journalEmailAddress} (${via(r.journalEmailAddress)})${r.enabled ? '' : ' (disabled)'}`);
  return `Journal rules: ${rules.join('; ')}; reports sent ${g.journalingReportNdrTo ? `from ${g.journalingReportNdrTo} (a refused one comes back there)` : 'with the null sender (a refused one is only logged: set journalingReportNdrTo)'}`;
}

/** gateway.yaml's maxSendSize, maxReceiveSize and maxRecipientEnvelopeLimit (Exchange's Set-TransportConfig), as `check` says them. */
export function organizationLimitsText(g: Policy['config']['gateway']): string {
  if (g.maxSendSize === null && g.maxReceiveSize === null && g.maxRecipientEnvelopeLimit === null) {
    return 'Organisation limits: none (maxSendSize, maxReceiveSize and maxRecipientEnvelopeLimit unlimited): only the connectors\' and the directory\'s own';
  }
  const size = (v: number | null) => (v === null ? 'unlimited' : formatSize(v));
  return `Organisation limits: maxSendSize ${size(g.maxSendSize)} (552 5.2.3 RESOLVER.RST.SendSizeLimit.Org), maxReceiveSize ${size(g.maxReceiveSize)} per recipient (552 5.2.3 RESOLVER.RST.RecipSizeLimit), maxRecipientEnvelopeLimit ${g.maxRecipientEnvelopeLimit ?? 'unlimited'} (452 4.5.3); a directory user's own MaxSendSize and RecipientLimits override them, a recipient's own MaxReceiveSize for authenticated senders; sessions with ms-Exch-Bypass-Message-Size-Limit are exempt`;
}

/** Each remote domain and what it withholds (Exchange's Get-RemoteDomain, the settings that act here). */
function remoteDomainsSummary(list: readonly RemoteDomain[]): string {
  const withholds = (r: RemoteDomain) =>
    [r.allowedOOFType === 'None' || !r.autoReplyEnabled ? 'automatic replies' : '', !r.autoForwardEnabled ? 'automatic forwards' : '', !r.deliveryReportEnabled ? 'read receipts, delay and success DSNs' : '', !r.ndrEnabled ? 'NDRs' : ''].filter(Boolean);
  const described = list.map((r) => `"${r.name}" ${r.domainName.text}: ${withholds(r).length ? `withholds ${withholds(r).join(', ')}` : 'nothing withheld'}`);
  if (!list.some((r) => r.domainName.domain === '' && r.domainName.wildcard)) described.push('Default *: nothing withheld');
  return described.join('; ');
}

/** The message filters at the end of DATA after the transport rules, in the order they run: the attachment filter, rspamd, the milters. */
function contentFiltersSummary(g: Policy['config']['gateway']): string {
  const af = g.attachmentFilter;
  const attachments = af
    ? `${af.action} (${af.entries.length} entries; ${af.openArchives ? 'names inside zip, tar, gzip, RAR, 7z, ISO and .uue files too' : 'archives judged by their own names only'}${af.exceptionConnectors.length ? `; not on ${af.exceptionConnectors.join(', ')}` : ''})`
    : 'off';
  const rspamd = g.rspamd ? `${g.rspamd.url} (actions: ${g.rspamd.actions}; down or slow: ${g.rspamd.onFailure})` : 'off';
  const milters = g.milters.length ? g.milters.map((m) => `"${m.name}" ${m.address.text} (down or slow: ${m.defaultAction}${m.pickup ? '; also pickup mail' : ''})`).join(', ') : 'none';
  return `Content filters: attachment filter ${attachments}; rspamd ${rspamd}; milters ${milters}`;
}
