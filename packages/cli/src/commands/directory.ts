// mailgw directory test: bind to the directory as mailgw would, show what mailgw sees for a
// user (DN, addresses, groups, rights per connector) or an address, and say in words what failed.
import { createDirectoryClient } from '@mailgw/directory';
import { adAttributesRead, exceptKey, isAddressGroupRef, readsMembership } from '@mailgw/config';
import { adAttributeEntriesHold, adAttributeValues, attributeValues, DELIVERY_RESTRICTION_KEYS, tokenAttribute, disclaimerTokens, dnName, inGroup, tokenAttributes, tokenValues, effectiveRights, groupPrincipals, groupSourceText, loginFilter, addressFilter, userPrincipal, type DirectoryIdentity, type Policy, type PrincipalKey } from '@mailgw/policy';
import { loadPolicy, printIssues, type PathOptions } from '../load-policy.js';

export interface DirectoryTestOptions extends PathOptions {
  user?: string | undefined;
  address?: string | undefined;
  /** The password to check, read from stdin (--password-stdin). */
  password?: string | undefined;
}

function rightsPerConnector(policy: Policy, id: DirectoryIdentity): string[] {
  const principals: PrincipalKey[] = ['AuthenticatedUsers', userPrincipal(id.login), ...groupPrincipals(id.groups)];
  return policy.connectors
    .filter((c) => c.config.enabled && c.offersBasicAuth)
    .flatMap((c) => {
      const r = effectiveRights(c.acl, principals);
      const lines = [`  connector "${c.name}": ${[...r.rights].join(', ') || '(no rights)'}`];
      for (const [right, src] of r.grantedBy) lines.push(`      ${right} from ${src.join('; ')}`);
      for (const [right, src] of r.deniedBy) lines.push(`      ${right} DENIED by ${src.join('; ')}`);
      return lines;
    });
}

/** The groups line and, under it, how each group was found (memberOf, a member list, the primary group). */
export function groupLines(id: DirectoryIdentity, indent: string): string {
  const lines = [`${indent}groups    ${id.groups.join('; ') || '(none)'}`];
  for (const g of id.groups) {
    const via = id.groupOrigins?.[g];
    if (via) lines.push(`${indent}          ${dnName(g)}: ${via}`);
  }
  return lines.join('\n') + '\n';
}

/** A failure message in words an admin can act on. */
function explainFailure(why: string): string {
  if (/ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|timeout|Timeout/i.test(why)) return `${why}\n  → the server could not be reached in time: check url, port, firewall and timeout`;
  if (/StartTLS|certificate|self[- ]signed|TLS/i.test(why)) return `${why}\n  → TLS failed: check startTLS/ldaps:// and caFile (the CA that signed the directory's certificate)`;
  if (/bind as .*failed/i.test(why)) return `${why}\n  → the service account's bind was refused: check bindDn and its password (bindPasswordEnv/bindPasswordFile)`;
  if (/no account matches/i.test(why)) return `${why}\n  → no entry under baseDn matches the login filter: check baseDn, userFilter and loginAttributes`;
  if (/disabled/i.test(why)) return `${why}\n  → the account is disabled in the directory`;
  if (/wrong password/i.test(why)) return `${why}\n  → the directory refused that password`;
  return why;
}

export async function runDirectoryTest(opts: DirectoryTestOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const r = loadPolicy(opts);
  if (!r.ok) {
    err.write('mailgw: the configuration is invalid; fix it first (mailgw check):\n');
    printIssues(err, 'Errors:', r.errors);
    return 1;
  }
  const d = r.policy.config.gateway.directory;
  if (!d) {
    err.write(`mailgw directory test: ${r.policy.config.gatewayFile} has no directory section\n`);
    return 1;
  }
  const client = createDirectoryClient(d);
  const map = client.map;
  const trace = (line: string) => out.write(`  · ${line}\n`);
  let ok = true;
  out.write(`Directory ${d.preset} at ${d.url.join(', ')}, base ${d.baseDn}; ${groupSourceText(map, d.maxGroupDepth)}\n`);

  if (opts.user !== undefined) {
    out.write(`\nUser "${opts.user}" (filter ${loginFilter(map, opts.user)})\n`);
    const seen = await client.describe(opts.user, trace);
    if (seen.kind !== 'ok') {
      ok = false;
      out.write(`  FAILED (${seen.kind}): ${explainFailure(seen.why)}\n`);
    } else {
      const id = seen.identity;
      out.write(`  DN        ${id.dn}${seen.disabled ? '  (DISABLED: userAccountControl bit 2; AUTH is refused)' : ''}\n`);
      out.write(`  addresses ${id.addresses.join(', ') || '(none: may send as no address of its own)'}\n`);
      out.write(groupLines(id, '  '));
      if (map.sendAsPermissions) out.write(id.sids ? `  SIDs for Send As: ${id.sids.length} (objectSid, tokenGroups, Everyone, Authenticated Users)\n` : '  SIDs for Send As: none read (no objectSid or tokenGroups): it sends as its own addresses only\n');
      if (map.sendOnBehalfAttribute && r.policy.config.gateway.headerSenderCheck !== false) {
        // The objects that list the user, or a group it is in, in their Send on Behalf list (the header check's Send on Behalf).
        const del = await client.delegatingObjects([id.dn, ...id.groups], 20, trace);
        const shown = del.kind === 'found' ? del.objects.map((o) => `${dnName(o.dn)}${o.addresses[0] ? ` <${o.addresses[0]}>` : ''}`).join(', ') : '';
        out.write(
          del.kind === 'unavailable' ? `  Send on Behalf: the directory did not answer (${del.why})\n`
          : del.objects.length === 0 ? `  Send on Behalf (${map.sendOnBehalfAttribute}): of no object\n`
          : `  Send on Behalf (${map.sendOnBehalfAttribute}) of: ${shown}${del.more ? ', and more' : ''} (From: that address, Sender: the user's own)\n`,
        );
      }
      if (id.recipientLimits !== undefined) out.write(`  most recipients per message: ${id.recipientLimits} (${map.recipientLimitsAttribute}): after AUTH the RCPT past it gets 452 4.5.3 Too many recipients\n`);
      if (id.maxSendSize !== undefined) out.write(`  largest message it may send: ${id.maxSendSize / 1024} KB (${map.maxSendSizeAttribute}): after AUTH a larger message gets 552 5.2.3 RESOLVER.RST.SendSizeLimit.Sender\n`);
      if (id.groups.length === 0 && map.groupMembership === 'memberOf' && d.preset === 'openLDAP')
        out.write(`  note: no ${map.groupAttribute} values: if this is an OpenLDAP server without the memberof overlay, set directory.groupMembership: groupOfNames\n`);
      out.write(`  rights after AUTH, per connector that offers AUTH:\n${rightsPerConnector(r.policy, id).join('\n') || '  (no enabled connector offers AUTH)'}\n`);
      if (r.policy.users.has(opts.user.toLowerCase())) out.write(`  note: gateway.yaml users has "${opts.user}": that local user is tried first and the directory is never asked for this name\n`);
      if (seen.disabled) ok = false;
    }
    if (opts.password !== undefined) {
      const logon = await client.logon(opts.user, opts.password, trace);
      if (logon.kind === 'ok') out.write('  password: accepted (bound as the user)\n');
      else {
        ok = false;
        out.write(`  password: ${logon.kind === 'unavailable' ? 'could not be checked (AUTH would answer 454 4.7.0)' : 'refused (AUTH would answer 535 5.7.3)'}: ${explainFailure(logon.why)}\n`);
      }
    }
  }
  if (opts.address !== undefined) {
    out.write(`\nAddress <${opts.address}> (filter ${addressFilter(map, opts.address)})\n`);
    const entry = await client.recipientEntry(opts.address, trace);
    const a = entry.answer;
    out.write(
      a === 'found' ? '  found: RCPT would be answered 250 2.1.5 (recipients: { directory: true })\n'
      : a === 'found-auth-required'
        ? `  found, for authenticated senders only (${map.requireSenderAuthenticationAttribute} TRUE): RCPT would be answered 250 2.1.5 after AUTH or on an externally secured connector, 550 5.7.1 RESOLVER.RST.AuthRequired to an anonymous session\n`
      : a === 'not-found' ? '  not found: RCPT would be answered 550 5.1.1 User unknown\n'
      : '  the directory could not be asked: RCPT would be answered 451 4.4.3\n',
    );
    if (a === 'unavailable') ok = false;
    if (entry.maxReceiveSize) out.write(`  largest message it takes: ${entry.maxReceiveSize / 1024} KB (${map.maxReceiveSizeAttribute}): a larger SIZE= gets 552 5.2.3 RESOLVER.RST.RecipSizeLimit at RCPT\n`);
    if (entry.restrictions) {
      const lists = entry.restrictions;
      out.write(`  delivery restrictions (a sender outside them gets 550 5.7.1 RESOLVER.RST.NotAuthorized at RCPT; a reject list wins):\n`);
      for (const k of DELIVERY_RESTRICTION_KEYS) if (lists[k].length > 0) out.write(`    ${k} (${map.deliveryRestrictions[k]}): ${lists[k].map(dnName).join(', ')}\n`);
    }
    // Who may send on its behalf (the header check's Send on Behalf): the object's own list.
    if (map.sendOnBehalfAttribute && r.policy.config.gateway.headerSenderCheck !== false && a !== 'unavailable' && a !== 'not-found') {
      const e = await client.entryAttributes(opts.address, [map.sendOnBehalfAttribute], trace);
      const delegates = e.kind === 'found' ? attributeValues(e.attributes, map.sendOnBehalfAttribute) : [];
      out.write(
        e.kind === 'unavailable' ? `  Send on Behalf: the directory did not answer (${e.why})\n`
        : delegates.length > 0 ? `  Send on Behalf (${map.sendOnBehalfAttribute}): ${delegates.map(dnName).join(', ')} may send as From: <${opts.address}> with Sender: their own address (members of a group listed: each of them)\n`
        : `  Send on Behalf (${map.sendOnBehalfAttribute}): nobody\n`,
      );
    }
    // The signature this sender would get: the disclaimer tokens the rules use, filled as intake fills them.
    const tokens = [...new Set(r.policy.config.gateway.transportRules.filter((x) => x.enabled && x.actions.disclaimer).flatMap((x) => disclaimerTokens(x.actions.disclaimer!.html).known))];
    if (tokens.length > 0 && a !== 'unavailable' && a !== 'not-found') {
      const e = await client.entryAttributes(opts.address, tokenAttributes(d.preset, tokens), trace);
      if (e.kind === 'found') {
        const v = tokenValues(d.preset, tokens, e.attributes);
        out.write(`  disclaimer tokens as a sender (${e.dn}):\n${tokens.map((t) => `    %%${t}%%`.padEnd(28) + (v[t] ? v[t] : '(empty)')).join('\n')}\n`);
      } else out.write(`  disclaimer tokens as a sender: ${e.kind === 'unavailable' ? `the directory did not answer (${e.why})` : 'no object'}: they would be empty\n`);
    }
    // The transport rules' directory attribute conditions: this object's values as the rules see them, and which conditions it meets.
    const attrRules = r.policy.config.gateway.transportRules.filter((x) => adAttributesRead(x).length > 0);
    if (attrRules.length > 0 && a !== 'unavailable' && a !== 'not-found') {
      const names = [...new Set(attrRules.flatMap(adAttributesRead))];
      const e = await client.entryAttributes(opts.address, tokenAttributes(d.preset, names), trace);
      if (e.kind !== 'found') out.write(`  attributes for the transport rules: ${e.kind === 'unavailable' ? `the directory did not answer (${e.why}): a message needing them would get 451 4.7.1` : 'no object: no condition met'}\n`);
      else {
        const values = adAttributeValues(d.preset, names, e.attributes);
        out.write(`  attributes for the transport rules (${e.dn}):\n${names.map((n) => `    ${n} (${tokenAttribute(d.preset, n)})`.padEnd(40) + (values[n]!.length > 0 ? values[n]!.join(' | ') : '(none)')).join('\n')}\n`);
        for (const rule of attrRules) {
          for (const [kind, c] of [['', rule.conditions], ['exceptIf', rule.exceptions]] as const) {
            for (const [key, as] of [['senderADAttributeContainsWords', 'the sender'], ['senderADAttributeMatchesPatterns', 'the sender'], ['recipientADAttributeContainsWords', 'a recipient'], ['recipientADAttributeMatchesPatterns', 'a recipient']] as const) {
              const entries = c[key];
              if (!entries) continue;
              const name = kind ? exceptKey(key) : key;
              out.write(`    rule "${rule.name}" ${name}: ${adAttributeEntriesHold(entries, values) ? `met as ${as}` : 'not met'}\n`);
            }
          }
        }
      }
    }
    // The transport rules' group conditions: this address's groups as the rules see them, and which of the rules' groups it meets.
    const rules = r.policy.config.gateway.transportRules.filter(readsMembership);
    if (rules.length > 0 && a !== 'unavailable' && a !== 'not-found') {
      const m = await client.memberships(opts.address, trace);
      if (m.kind !== 'found') out.write(`  groups for the transport rules: ${m.kind === 'unavailable' ? `the directory did not answer (${m.why}): a message needing them would get 451 4.7.1` : 'no object: in no group'}\n`);
      else {
        out.write(`  groups for the transport rules (nested; ${m.groups.length}): ${m.groups.map(dnName).join(', ') || 'none'}\n`);
        for (const rule of rules) {
          for (const [kind, c] of [['', rule.conditions], ['exceptIf', rule.exceptions]] as const) {
            for (const [key, self] of [['fromMemberOf', false], ['sentToMemberOf', true], ['betweenMemberOf1', false], ['betweenMemberOf2', false]] as const) {
              const refs = c[key];
              if (!refs) continue;
              const refAnswers = await Promise.all(refs.map((ref) => (isAddressGroupRef(ref) ? client.memberships(ref) : Promise.resolve(undefined))));
              const hits = refs.filter((ref, i) => {
                const ra = refAnswers[i];
                return inGroup(m, ref, ra && ra.kind !== 'unavailable' ? ra : undefined, self);
              });
              const name = kind ? exceptKey(key) : key;
              // betweenMemberOf: one side of a pair; whether the message is "between" depends on the other party.
              const side = key.startsWith('between');
              out.write(`    rule "${rule.name}" ${name}: ${hits.length > 0 ? (side ? `a member (${hits.join(', ')})` : `met as ${self ? 'a recipient' : 'the sender'} (${hits.join(', ')})`) : side ? `not a member (${refs.join(', ')})` : `not met (${refs.join(', ')})`}\n`);
            }
          }
        }
      }
    }
  }
  if (opts.user === undefined && opts.address === undefined) {
    // Only the service account's bind: is the directory usable at all?
    const a = await client.hasAddress(`postmaster@${r.policy.config.gateway.defaultDomain}`, trace);
    out.write(a === 'unavailable' ? '  FAILED: no directory server could be bound as the service account (see above)\n' : '  service account bind and search: OK\n');
    ok = a !== 'unavailable';
  }
  await client.close();
  return ok ? 0 : 1;
}
