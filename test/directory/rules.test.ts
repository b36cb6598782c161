// The directory's pure rules (@mailgw/policy directory.ts): filter and DN escaping, the filters
// the presets build, proxyAddresses parsing, disabled accounts, group principals, and the
// config keys (file/key errors). No LDAP server here: see client.test.ts and smtp.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, formatIssue } from '@mailgw/config';
import {
  DIRECTORY_PRESET_MAPS,
  NEW_TRANSACTION,
  recipientsOverSizeLimit,
  data,
  deliveryRestrictionVerdict,
  deliveryRestrictionsOf,
  maxReceiveSizeOf,
  maxSendSizeOf,
  mail,
  recipientLimitsOf,
  recipientLookupAttributes,
  type DeliveryRestrictions,
  authDirectory,
  authenticatedSender,
  connect,
  requiresAuthenticatedSender,
  rcpt,
  recipientLookup,
  accountDisabled,
  addressFilter,
  dnName,
  directorySchemaMap,
  entryAddresses,
  escapeDnValue,
  escapeFilterBytes,
  escapeFilterValue,
  formatSid,
  groupOfNamesFilter,
  delegatesFilter,
  groupPrincipals,
  parseSid,
  parseSidString,
  primaryGroupLookup,
  sidBytes,
  loginFilter,
  mayBindWith,
  normaliseDn,
  type Sid,
} from '@mailgw/policy';
import { parse } from 'yaml';
import { compile } from '../listener/helpers/gateway.js';

const AD = DIRECTORY_PRESET_MAPS.activeDirectory;
const LDAP = DIRECTORY_PRESET_MAPS.openLDAP;

describe('RFC 4515 filter escaping', () => {
  it('escapes * ( ) \\ and NUL, nothing else', () => {
    assert.equal(escapeFilterValue('a*b(c)d\\e\0f'), 'a\\2ab\\28c\\29d\\5ce\\00f');
    assert.equal(escapeFilterValue('jürgen@contoso.test'), 'jürgen@contoso.test');
  });
  it('a login cannot add a wildcard or a clause', () => {
    assert.equal(loginFilter(LDAP, '*'), '(&(objectClass=inetOrgPerson)(|(uid=\\2a)(mail=\\2a)))');
    assert.equal(loginFilter(LDAP, 'x)(uid=*'), '(&(objectClass=inetOrgPerson)(|(uid=x\\29\\28uid=\\2a)(mail=x\\29\\28uid=\\2a)))');
  });
  it('DOMAIN\\name also matches the name alone (NT logon form)', () => {
    assert.equal(loginFilter(AD, 'CONTOSO\\alice'), '(&(&(objectClass=user)(!(objectClass=computer)))(|(userPrincipalName=CONTOSO\\5calice)(userPrincipalName=alice)(sAMAccountName=CONTOSO\\5calice)(sAMAccountName=alice)))');
  });
  it('addresses: proxyAddresses with smtp:, others as they are, lower-cased and escaped', () => {
    assert.equal(addressFilter(AD, 'Alice@Contoso.test'), '(|(proxyAddresses=smtp:alice@contoso.test)(mail=alice@contoso.test))');
    assert.equal(addressFilter(LDAP, '*@contoso.test'), '(|(mail=\\2a@contoso.test)(mailAlternateAddress=\\2a@contoso.test))');
  });
});

describe('RFC 4514 DN escaping and comparison', () => {
  it('escapes the special characters, a leading space or # and a trailing space', () => {
    assert.equal(escapeDnValue('Smith, John'), 'Smith\\, John');
    assert.equal(escapeDnValue('a+b"c\\d<e>f;g=h'), 'a\\+b\\"c\\\\d\\<e\\>f\\;g\\=h');
    assert.equal(escapeDnValue('#1 '), '\\#1\\ ');
    assert.equal(escapeDnValue(' x'), '\\ x');
  });
  it('names and normalised DNs, escaped commas kept inside the value', () => {
    assert.equal(dnName('CN=Smith\\, John,OU=People,DC=contoso,DC=com'), 'Smith, John');
    assert.equal(normaliseDn('CN=Relay Users, OU=Groups,DC=Contoso,DC=com'), 'cn=relay users,ou=groups,dc=contoso,dc=com');
    assert.deepEqual(groupPrincipals(['CN=Relay Users,OU=Groups,DC=contoso,DC=com']), ['group:cn=relay users,ou=groups,dc=contoso,dc=com', 'group:relay users']);
  });
});

describe('groupOfNames membership filter', () => {
  it('the member DN is a filter value: RFC 4515-escaped (an escaped comma, *, parentheses)', () => {
    assert.equal(
      groupOfNamesFilter('cn=Temp\\2C Pat (*),ou=People,dc=contoso,dc=test'),
      '(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))(|(member=cn=Temp\\5c2C Pat \\28\\2a\\29,ou=People,dc=contoso,dc=test)(uniqueMember=cn=Temp\\5c2C Pat \\28\\2a\\29,ou=People,dc=contoso,dc=test)))',
    );
  });
  it('the Send on Behalf search: each DN a filter value, RFC 4515-escaped; one DN needs no OR', () => {
    assert.equal(delegatesFilter('publicDelegates', ['cn=Temp\\2C Pat (*),ou=People,dc=contoso,dc=test', 'cn=Sales,ou=Groups,dc=contoso,dc=test']), '(|(publicDelegates=cn=Temp\\5c2C Pat \\28\\2a\\29,ou=People,dc=contoso,dc=test)(publicDelegates=cn=Sales,ou=Groups,dc=contoso,dc=test))');
    assert.equal(delegatesFilter('publicDelegates', ['cn=A,dc=x']), '(publicDelegates=cn=A,dc=x)');
  });
  it('groupMembership defaults to memberOf for both presets; groupOfNames when set; the primary group for activeDirectory only', () => {
    const base = { loginAttributes: undefined, addressAttributes: undefined, groupAttribute: undefined, userFilter: undefined } as const;
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP' }).groupMembership, 'memberOf');
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP', groupMembership: 'groupOfNames' }).groupMembership, 'groupOfNames');
    assert.equal(directorySchemaMap({ ...base, preset: 'activeDirectory' }).primaryGroup, true);
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP' }).primaryGroup, false);
  });
});

describe('SIDs (MS-DTYP 2.4.2) and the AD primary group', () => {
  // S-1-5-21-3623811015-3361044348-30300820-1104, written out byte by byte: revision 1, 5
  // sub-authorities, authority 5 big-endian, then each sub-authority little-endian.
  const ALICE = Uint8Array.from([
    0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
    0x15, 0x00, 0x00, 0x00, 0xc7, 0xf7, 0xfe, 0xd7, 0x7c, 0x77, 0x55, 0xc8, 0x94, 0x5a, 0xce, 0x01, 0x50, 0x04, 0x00, 0x00,
  ]);
  const DOMAIN = 'S-1-5-21-3623811015-3361044348-30300820';

  it('parses the binary form (little-endian sub-authorities) and formats S-1-5-…', () => {
    const p = parseSid(ALICE);
    assert.ok(p.sid, JSON.stringify(p));
    assert.deepEqual(p.sid, { revision: 1, authority: 5, subAuthorities: [21, 3623811015, 3361044348, 30300820, 1104] });
    assert.equal(formatSid(p.sid), `${DOMAIN}-1104`);
    assert.deepEqual(sidBytes(p.sid), ALICE);
    assert.deepEqual(parseSidString(`${DOMAIN}-1104`), p.sid);
    // Well-known SIDs: Everyone (S-1-1-0), an authority written in hex when it is 2^32 or more.
    assert.equal(formatSid(parseSid(Uint8Array.from([1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])).sid!), 'S-1-1-0');
    const big: Sid = { revision: 1, authority: 2 ** 40, subAuthorities: [7] };
    assert.equal(formatSid(big), 'S-1-0x010000000000-7');
    assert.deepEqual(parseSid(sidBytes(big)).sid, big);
  });

  it('bad input is not a SID, with the reason', () => {
    const why = (b: Uint8Array) => {
      const p = parseSid(b);
      return p.sid === null ? p.why : 'parsed';
    };
    assert.match(why(new Uint8Array(3)), /3 bytes, a SID has at least 8/);
    assert.match(why(Uint8Array.from([2, ...ALICE.slice(1)])), /revision 2/);
    assert.match(why(ALICE.slice(0, -1)), /27 bytes for 5 sub-authorities \(expected 28\)/);
    assert.match(why(Uint8Array.from([1, 16, 0, 0, 0, 0, 0, 5, ...new Uint8Array(64)])), /16 sub-authorities, at most 15/);
    assert.match(why(new TextEncoder().encode('S-1-5-21-1-2-3-1104')), /revision 83/);
    for (const t of ['S-1-5-21-x', 'S-2-5-21', 'S-1-5-4294967296', '1-5-21', 'S-1-281474976710656-1', '']) assert.equal(parseSidString(t), null, t);
  });

  it("the primary group's SID is the user's domain SID + primaryGroupID; the filter escapes every byte", () => {
    const l = primaryGroupLookup(ALICE, '513');
    assert.equal(l.kind, 'search');
    if (l.kind !== 'search') return;
    assert.equal(l.text, `${DOMAIN}-513`);
    assert.equal(l.filter, '(objectSid=\\01\\05\\00\\00\\00\\00\\00\\05\\15\\00\\00\\00\\c7\\f7\\fe\\d7\\7c\\77\\55\\c8\\94\\5a\\ce\\01\\01\\02\\00\\00)');
    assert.equal(escapeFilterBytes(Uint8Array.from([0, 0x2a, 0xff])), '\\00\\2a\\ff');
  });

  it('no objectSid, a bad one, a primaryGroupID that is not a RID: skipped with the reason, never a throw', () => {
    const why = (sid: Uint8Array | undefined, rid: string | undefined) => {
      const l = primaryGroupLookup(sid, rid);
      return l.kind === 'skip' ? l.why : l.text;
    };
    assert.match(why(undefined, '513'), /primaryGroupID 513 but no objectSid/);
    assert.match(why(ALICE, undefined), /no primaryGroupID/);
    assert.match(why(ALICE.slice(0, 10), '513'), /objectSid is not a SID \(10 bytes for 5/);
    for (const rid of ['abc', '-1', '0', '4294967296', '1e3', '']) assert.match(why(ALICE, rid), /is not a relative ID/, rid);
    // A SID with only one sub-authority has no domain part to put a RID behind.
    assert.match(why(Uint8Array.from([1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]), '513'), /S-1-5-18 is not a domain account's SID/);
  });
});

describe('entries', () => {
  it('proxyAddresses: SMTP: is primary, smtp: aliases, X400:/SIP: ignored; mail added once', () => {
    const got = entryAddresses(AD, { proxyAddresses: ['smtp:a.smith@contoso.test', 'X400:c=US;a= ;p=Contoso;', 'SIP:alice@contoso.test', 'SMTP:Alice@Contoso.test'], mail: ['alice@contoso.test'] });
    assert.deepEqual(got, ['alice@contoso.test', 'a.smith@contoso.test']);
  });
  it('userAccountControl bit 2 is a disabled account', () => {
    assert.equal(accountDisabled('514'), true);
    assert.equal(accountDisabled('512'), false);
    assert.equal(accountDisabled(undefined), false);
  });
  it('an empty password never binds (RFC 4513 unauthenticated bind)', () => {
    assert.equal(mayBindWith(''), false);
    assert.equal(mayBindWith(' '), true);
  });
});

function build(gatewayExtra: string, env: Record<string, string> = {}, permissions = '') {
  return buildConfig({
    gatewayFile: 'gateway.yaml',
    gatewayData: parse(`acceptedDomains: [{ domain: contoso.test, default: true }]\n${gatewayExtra}`),
    connectorFiles: [{ file: 'connectors.d/client.yaml', data: parse(`name: Client\nusage: Client\nbindings: ['0.0.0.0:2587']\n${permissions}`) }],
    readReferenced: (p) => ({ ok: false, error: `cannot read ${p}`, file: p }),
    parseYaml: parse,
    fallbackFqdn: 'mx.contoso.test',
    env,
  });
}
const errors = (r: ReturnType<typeof build>) => (r.ok ? [] : r.errors.map(formatIssue));

describe('configuration', () => {
  const dir = `directory:\n  url: [ldaps://dc1.contoso.test, ldaps://dc2.contoso.test]\n  bindDn: CN=svc,DC=contoso,DC=test\n  bindPasswordEnv: LDAP_PW\n  baseDn: DC=contoso,DC=test\n  preset: activeDirectory\n`;
  it('a valid directory section, its password from the environment', () => {
    const r = build(dir, { LDAP_PW: 'x' });
    assert.ok(r.ok, errors(r).join('\n'));
    assert.equal(r.config.gateway.directory?.bindPassword, 'x');
    assert.equal(r.config.gateway.directory?.cacheTtl, 300_000);
  });
  it('errors name the file, the key and what is wrong', () => {
    assert.ok(errors(build(dir)).some((e) => e.includes('gateway.yaml') && e.includes('directory.bindPasswordEnv') && e.includes('LDAP_PW is not set')), errors(build(dir)).join('\n'));
    const bad = build(dir.replace('ldaps://dc2.contoso.test', 'http://dc2') + '  cacheTtl: 1m\n  negativeCacheTtl: 5m\n  presett: x\n', { LDAP_PW: 'x' });
    const e = errors(bad).join('\n');
    assert.match(e, /directory\.url\[1\].*not an LDAP URL/);
    assert.match(e, /directory\.negativeCacheTtl.*not be longer than cacheTtl|directory.*presett/);
  });
  it('groupMembership: memberOf (default) or groupOfNames, any case; anything else named', () => {
    const ok = build(`${dir}  groupMembership: GroupOfNames\n`, { LDAP_PW: 'x' });
    assert.ok(ok.ok, errors(ok).join('\n'));
    assert.equal(ok.config.gateway.directory?.groupMembership, 'groupOfNames');
    const def = build(dir, { LDAP_PW: 'x' });
    assert.equal(def.ok && def.config.gateway.directory?.groupMembership, 'memberOf');
    assert.match(errors(build(`${dir}  groupMembership: posixGroup\n`, { LDAP_PW: 'x' })).join('\n'), /directory\.groupMembership.*"posixGroup" is not one of: memberOf, groupOfNames/);
  });
  it('recipients: { directory: true } and group grants need the directory section', () => {
    assert.match(errors(build('recipients: { directory: true }\n')).join('\n'), /recipients\.directory.*needs the directory section/);
    const e = errors(build('', {}, "permissions: [{ group: 'Relay Users', extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient] }]")).join('\n');
    assert.match(e, /connectors\.d\/client\.yaml: permissions\[0\]\.group.*needs the directory section/);
    const both = errors(build(dir, { LDAP_PW: 'x' }, "permissions: [{ user: Anonymous, group: 'Relay Users', extendedRights: [ms-Exch-SMTP-Submit] }]")).join('\n');
    assert.match(both, /permissions\[0\]\.user.*exactly one of user and group/);
  });
});

describe('policy: AUTH by the directory and RCPT with its answer (pure, as mailgw explain runs them)', () => {
  const gateway = {
    fqdn: 'mx.contoso.test',
    acceptedDomains: [{ domain: 'contoso.test', type: 'Authoritative', default: true }],
    recipients: { directory: true },
    directory: { url: ['ldap://127.0.0.1:1'], bindDn: 'cn=svc', bindPasswordEnv: 'MAILGW_RULES_PW', baseDn: 'dc=contoso,dc=test', preset: 'openLDAP' },
  };
  const connectors = {
    'c.yaml': {
      name: 'C',
      bindings: ['127.0.0.1:2587'],
      authMechanism: ['BasicAuth'],
      permissionGroups: ['None'],
      permissions: [
        { user: 'AuthenticatedUsers', extendedRights: ['ms-Exch-SMTP-Submit'] },
        { group: 'Relay Users', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] },
        { group: 'cn=Contractors,ou=Groups,dc=contoso,dc=test', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'], deny: true },
      ],
    },
  };
  process.env.MAILGW_RULES_PW = 'x';
  const policy = compile(gateway, connectors);
  const start = connect(policy, { localAddress: '127.0.0.1', localPort: 2587, clientIP: '127.0.0.9' }).session!;
  const id = (groups: string[]) => ({ kind: 'ok' as const, identity: { login: 'alice', dn: 'cn=Alice,ou=People,dc=contoso,dc=test', addresses: ['alice@contoso.test'], groups } });

  it('a group grant by name reaches a nested member; a deny to another of its groups (by DN, any case) wins', () => {
    const member = authDirectory(start, id(['cn=Helpdesk,ou=Groups,dc=contoso,dc=test', 'CN=Relay Users,OU=Groups,DC=contoso,DC=test']));
    assert.equal(member.decision.reply.code, 235);
    assert.ok(member.session.rights.rights.has('ms-Exch-SMTP-Accept-Any-Recipient'));
    assert.match(member.session.rights.grantedBy.get('ms-Exch-SMTP-Accept-Any-Recipient')!.join(), /grant to group Relay Users\) → group:relay users/);
    const denied = authDirectory(start, id(['cn=Relay Users,ou=Groups,dc=contoso,dc=test', 'CN=Contractors,OU=Groups,DC=Contoso,DC=test']));
    assert.ok(!denied.session.rights.rights.has('ms-Exch-SMTP-Accept-Any-Recipient'));
  });

  it('outage and refusal: 454 4.7.0 and 535 5.7.3', () => {
    assert.equal(authDirectory(start, { kind: 'unavailable', why: 'down' }).decision.reply.code, 454);
    assert.equal(authDirectory(start, { kind: 'invalid', why: 'wrong password' }).decision.reply.code, 535);
  });

  it('RCPT: found 250, not found 550 5.1.1, no answer 451 4.4.3; other domains are not looked up', () => {
    const s = authDirectory(start, id([])).session;
    assert.equal(recipientLookup(policy, 'Bob@Contoso.test'), 'bob@contoso.test');
    assert.equal(recipientLookup(policy, 'alice@fabrikam.example'), null);
    const answer = (directory: 'found' | 'not-found' | 'unavailable' | undefined) => {
      const d = rcpt(policy, s, { recipient: 'bob@contoso.test', transaction: NEW_TRANSACTION, directory }).decision;
      return `${d.reply.code} ${d.reply.enhanced}`;
    };
    assert.equal(answer('found'), '250 2.1.5');
    assert.equal(answer('not-found'), '550 5.1.1');
    assert.equal(answer('unavailable'), '451 4.4.3');
    assert.equal(answer(undefined), '451 4.4.3');
  });

  it('RCPT to a recipient for authenticated senders only: 550 5.7.1 RESOLVER.RST.AuthRequired unless the sender logged on or the connector is externally secured; a domain-secured partner is not inside', () => {
    const multi = compile(gateway, {
      ...connectors,
      'anon.yaml': { name: 'Anon', bindings: ['127.0.0.1:2525'], permissionGroups: ['AnonymousUsers'] },
      'exchange.yaml': { name: 'Exchange', bindings: ['127.0.0.1:2525'], remoteIPRanges: ['127.0.0.30'], authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
    });
    const anon = connect(multi, { localAddress: '127.0.0.1', localPort: 2525, clientIP: '127.0.0.9' }).session!;
    const exchange = connect(multi, { localAddress: '127.0.0.1', localPort: 2525, clientIP: '127.0.0.30' }).session!;
    const user = authDirectory(connect(multi, { localAddress: '127.0.0.1', localPort: 2587, clientIP: '127.0.0.9' }).session!, id([])).session;
    const partner = { ...anon, partnerDomain: 'fabrikam.example' };
    const to = (session: typeof anon, directory: 'found' | 'found-auth-required') => rcpt(multi, session, { recipient: 'allstaff@contoso.test', transaction: NEW_TRANSACTION, directory }).decision;
    const refused = to(anon, 'found-auth-required');
    assert.equal(`${refused.reply.code} ${refused.reply.enhanced} ${refused.reply.text}`, '550 5.7.1 RESOLVER.RST.AuthRequired; authentication required');
    assert.equal(refused.reason.code, 'recipient-auth-required');
    // openLDAP preset, no attribute named: the reason says so generically, never "null".
    assert.match(refused.reason.message, /allstaff@contoso\.test accepts mail only from authenticated senders \(its directory object has the restriction attribute TRUE.*not authenticated \(anonymous session\)/);
    assert.equal(to(partner, 'found-auth-required').reply.code, 550, 'a partner by certificate is another organisation');
    assert.match(to(partner, 'found-auth-required').reason.message, /domain-secured session \(fabrikam\.example\)/);
    for (const [name, session] of [['user', user], ['externally secured', exchange]] as const) {
      const d = to(session, 'found-auth-required');
      assert.equal(d.reply.code, 250, name);
      assert.match(d.reason.message, /takes mail only from authenticated senders, and this one is/, name);
    }
    assert.equal(to(anon, 'found').reply.code, 250, 'an unrestricted recipient');
    assert.deepEqual([authenticatedSender(anon).authenticated, authenticatedSender(user).authenticated, authenticatedSender(exchange).authenticated, authenticatedSender(partner).authenticated], [false, true, true, false]);
  });
});

describe('directory: recipients for authenticated senders only (requireSenderAuthenticationAttribute)', () => {
  it('activeDirectory reads msExchRequireAuthToSendTo, openLDAP nothing; a name or false overrides', () => {
    const base = { loginAttributes: undefined, addressAttributes: undefined, groupAttribute: undefined, userFilter: undefined };
    assert.equal(directorySchemaMap({ ...base, preset: 'activeDirectory' }).requireSenderAuthenticationAttribute, 'msExchRequireAuthToSendTo');
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP' }).requireSenderAuthenticationAttribute, null);
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP', requireSenderAuthenticationAttribute: 'internalOnly' }).requireSenderAuthenticationAttribute, 'internalOnly');
    assert.equal(directorySchemaMap({ ...base, preset: 'activeDirectory', requireSenderAuthenticationAttribute: false }).requireSenderAuthenticationAttribute, null);
  });
  it('an LDAP Boolean TRUE (any case, any attribute-name case) restricts; FALSE, other values and absence do not', () => {
    const ad = DIRECTORY_PRESET_MAPS.activeDirectory;
    assert.equal(requiresAuthenticatedSender(ad, { msExchRequireAuthToSendTo: ['TRUE'] }), true);
    assert.equal(requiresAuthenticatedSender(ad, { msexchrequireauthtosendto: ['true'] }), true);
    for (const v of [['FALSE'], ['1'], ['yes'], []]) assert.equal(requiresAuthenticatedSender(ad, { msExchRequireAuthToSendTo: v }), false, JSON.stringify(v));
    assert.equal(requiresAuthenticatedSender(ad, {}), false);
    assert.equal(requiresAuthenticatedSender(DIRECTORY_PRESET_MAPS.openLDAP, { msExchRequireAuthToSendTo: ['TRUE'] }), false, 'not read unless configured');
  });
  it('gateway.yaml: an attribute name or false; anything else is named', () => {
    const built = (v: string) => build(`directory:\n  url: [ldaps://dc1.contoso.test]\n  bindDn: cn=svc\n  bindPasswordEnv: LDAP_PW\n  baseDn: dc=contoso,dc=test\n  preset: activeDirectory\n  requireSenderAuthenticationAttribute: ${v}\n`, { LDAP_PW: 'x' });
    const ok = built('false');
    assert.ok(ok.ok, errors(ok).join('\n'));
    assert.equal(ok.config.gateway.directory?.requireSenderAuthenticationAttribute, false);
    assert.match(errors(built('"msExch Require"')).join('\n'), /gateway\.yaml.*directory\.requireSenderAuthenticationAttribute.*LDAP attribute name/);
    assert.match(errors(built('true')).join('\n'), /gateway\.yaml.*directory\.requireSenderAuthenticationAttribute/);
  });
});

describe("directory: message delivery restrictions (Exchange's AcceptMessagesOnlyFrom, …FromDLMembers, RejectMessagesFrom, …FromDLMembers)", () => {
  const base = { loginAttributes: undefined, addressAttributes: undefined, groupAttribute: undefined, userFilter: undefined };
  const none: DeliveryRestrictions = { acceptMessagesOnlyFrom: [], acceptMessagesOnlyFromDLMembers: [], rejectMessagesFrom: [], rejectMessagesFromDLMembers: [] };
  const ALICE = 'CN=Alice Smith,OU=People,DC=contoso,DC=test';
  const SALES = 'CN=Sales,OU=Groups,DC=contoso,DC=test';
  const alice = { address: 'alice@contoso.test', object: { dn: 'cn=alice smith, ou=people,dc=contoso,dc=test', groups: ['cn=Helpdesk,ou=Groups,dc=contoso,dc=test'] } };
  const carol = { address: 'carol@contoso.test', object: { dn: 'cn=Carol White,ou=People,dc=contoso,dc=test', groups: ['cn=sales,ou=groups,dc=contoso,dc=test', 'cn=Deny Relay,ou=Groups,dc=contoso,dc=test'] } };
  const outsider = { address: 'x@fabrikam.test', object: null };
  const nullSender = { address: null, object: null };

  it('activeDirectory reads authOrig, dLMemSubmitPerms, unauthOrig, dLMemRejectPerms; openLDAP none; a key or the whole setting overrides', () => {
    assert.deepEqual(directorySchemaMap({ ...base, preset: 'activeDirectory' }).deliveryRestrictions, { acceptMessagesOnlyFrom: 'authOrig', acceptMessagesOnlyFromDLMembers: 'dLMemSubmitPerms', rejectMessagesFrom: 'unauthOrig', rejectMessagesFromDLMembers: 'dLMemRejectPerms' });
    assert.deepEqual(Object.values(directorySchemaMap({ ...base, preset: 'openLDAP' }).deliveryRestrictions), [null, null, null, null]);
    assert.deepEqual(directorySchemaMap({ ...base, preset: 'openLDAP', deliveryRestrictionAttributes: { acceptMessagesOnlyFrom: 'allowedSender' } }).deliveryRestrictions, { acceptMessagesOnlyFrom: 'allowedSender', acceptMessagesOnlyFromDLMembers: null, rejectMessagesFrom: null, rejectMessagesFromDLMembers: null });
    assert.deepEqual(directorySchemaMap({ ...base, preset: 'activeDirectory', deliveryRestrictionAttributes: { rejectMessagesFrom: false } }).deliveryRestrictions.rejectMessagesFrom, null);
    const off = { acceptMessagesOnlyFrom: false, acceptMessagesOnlyFromDLMembers: false, rejectMessagesFrom: false, rejectMessagesFromDLMembers: false } as const;
    assert.deepEqual(Object.values(directorySchemaMap({ ...base, preset: 'activeDirectory', deliveryRestrictionAttributes: off }).deliveryRestrictions), [null, null, null, null]);
    assert.deepEqual(recipientLookupAttributes(DIRECTORY_PRESET_MAPS.activeDirectory), ['msExchRequireAuthToSendTo', 'delivContLength', 'authOrig', 'dLMemSubmitPerms', 'unauthOrig', 'dLMemRejectPerms']);
    assert.deepEqual(recipientLookupAttributes(DIRECTORY_PRESET_MAPS.openLDAP), []);
  });

  it('lists are read case-insensitively by attribute name, blanks dropped; an entry listing nothing has no restrictions', () => {
    const ad = DIRECTORY_PRESET_MAPS.activeDirectory;
    assert.deepEqual(deliveryRestrictionsOf(ad, { AUTHORIG: [` ${ALICE} `, ''], dlmemsubmitperms: [SALES] }), { ...none, acceptMessagesOnlyFrom: [ALICE], acceptMessagesOnlyFromDLMembers: [SALES] });
    assert.equal(deliveryRestrictionsOf(ad, { authOrig: [], unauthOrig: [''] }), null);
    assert.equal(deliveryRestrictionsOf(DIRECTORY_PRESET_MAPS.openLDAP, { authOrig: [ALICE] }), null, 'not read unless configured');
  });

  it('accept lists: the sender listed itself (DNs compared normalised) or a member of a listed group; anyone else, an outsider and the null sender are refused', () => {
    const board: DeliveryRestrictions = { ...none, acceptMessagesOnlyFrom: [ALICE], acceptMessagesOnlyFromDLMembers: [SALES] };
    assert.deepEqual(deliveryRestrictionVerdict(board, alice), { allowed: true, why: 'alice@contoso.test (cn=alice smith, ou=people,dc=contoso,dc=test) is in its AcceptMessagesOnlyFrom' });
    assert.deepEqual(deliveryRestrictionVerdict(board, carol), { allowed: true, why: 'carol@contoso.test (cn=Carol White,ou=People,dc=contoso,dc=test) is a member of Sales, in its AcceptMessagesOnlyFromDLMembers' });
    const bob = { address: 'bob@contoso.test', object: { dn: 'cn=Bob Jones,ou=People,dc=contoso,dc=test', groups: [] } };
    assert.deepEqual(deliveryRestrictionVerdict(board, bob), { allowed: false, why: 'bob@contoso.test (cn=Bob Jones,ou=People,dc=contoso,dc=test) is not in its AcceptMessagesOnlyFrom (1) nor its AcceptMessagesOnlyFromDLMembers (Sales)' });
    assert.deepEqual(deliveryRestrictionVerdict(board, outsider), { allowed: false, why: 'x@fabrikam.test (no directory object) is not in its AcceptMessagesOnlyFrom (1) nor its AcceptMessagesOnlyFromDLMembers (Sales)' });
    assert.equal(deliveryRestrictionVerdict(board, nullSender).allowed, false);
    assert.match(deliveryRestrictionVerdict(board, nullSender).why, /^the null sender is not in/);
    // A listed group's DN is not a sender: listing it in AcceptMessagesOnlyFrom does not admit its members.
    assert.equal(deliveryRestrictionVerdict({ ...none, acceptMessagesOnlyFrom: [SALES] }, carol).allowed, false);
  });

  it('reject lists: the sender listed or a member of a listed group is refused, and a reject list wins over an accept list; everyone else passes', () => {
    const henry: DeliveryRestrictions = { ...none, rejectMessagesFrom: ['cn=Bob Jones,ou=People,dc=contoso,dc=test'], rejectMessagesFromDLMembers: ['CN=Deny Relay,OU=Groups,DC=contoso,DC=test'] };
    assert.deepEqual(deliveryRestrictionVerdict(henry, carol), { allowed: false, why: 'carol@contoso.test (cn=Carol White,ou=People,dc=contoso,dc=test) is a member of Deny Relay, in its RejectMessagesFromDLMembers' });
    assert.match(deliveryRestrictionVerdict(henry, { address: 'bob@contoso.test', object: { dn: 'CN=Bob Jones,OU=People,DC=contoso,DC=test', groups: [] } }).why, /is in its RejectMessagesFrom$/);
    for (const s of [alice, outsider, nullSender]) assert.equal(deliveryRestrictionVerdict(henry, s).allowed, true, String(s.address));
    assert.equal(deliveryRestrictionVerdict({ ...none, acceptMessagesOnlyFrom: [carol.object.dn], rejectMessagesFromDLMembers: [SALES] }, carol).allowed, false, 'in both: refused');
  });

  it('RCPT: 550 5.7.1 RESOLVER.RST.NotAuthorized for a sender outside them, 451 4.4.3 when the sender could not be looked up, after the authentication requirement', () => {
    process.env.MAILGW_RULES_PW = 'x';
    const gateway = {
      fqdn: 'mx.contoso.test',
      acceptedDomains: [{ domain: 'contoso.test', type: 'Authoritative', default: true }],
      recipients: { directory: true },
      directory: { url: ['ldap://127.0.0.1:1'], bindDn: 'cn=svc', bindPasswordEnv: 'MAILGW_RULES_PW', baseDn: 'dc=contoso,dc=test', preset: 'activeDirectory' },
    };
    const policy = compile(gateway, { 'anon.yaml': { name: 'Anon', bindings: ['127.0.0.1:2525'], permissionGroups: ['AnonymousUsers'] } });
    const anon = connect(policy, { localAddress: '127.0.0.1', localPort: 2525, clientIP: '127.0.0.9' }).session!;
    const lists: DeliveryRestrictions = { ...none, acceptMessagesOnlyFrom: [ALICE] };
    const to = (directory: 'found' | 'found-auth-required', answer: Parameters<typeof rcpt>[2]['restrictions']) => rcpt(policy, anon, { recipient: 'board@contoso.test', transaction: NEW_TRANSACTION, directory, restrictions: answer }).decision;
    const refused = to('found', { lists, sender: { address: 'x@fabrikam.test', answer: { kind: 'not-found' } } });
    assert.equal(`${refused.reply.code} ${refused.reply.enhanced} ${refused.reply.text}`, '550 5.7.1 RESOLVER.RST.NotAuthorized; not authorized');
    assert.equal(refused.reason.code, 'recipient-restricted');
    assert.match(refused.reason.message, /^board@contoso\.test does not take mail from this sender .*x@fabrikam\.test \(no directory object\) is not in its AcceptMessagesOnlyFrom/);
    const ok = to('found', { lists, sender: { address: 'alice@contoso.test', answer: { kind: 'found', dn: ALICE, groups: [] } } });
    assert.equal(ok.reply.code, 250);
    assert.match(ok.reason.message, /delivery restrictions: alice@contoso\.test .* is in its AcceptMessagesOnlyFrom$/);
    const down = to('found', { lists, sender: { address: 'alice@contoso.test', answer: { kind: 'unavailable', why: 'connection refused' } } });
    assert.equal(`${down.reply.code} ${down.reply.enhanced}`, '451 4.4.3');
    assert.match(down.reason.message, /could not be asked about the sender alice@contoso\.test: connection refused/);
    // Authentication is required first: an anonymous session hears that, whatever the lists say.
    assert.equal(to('found-auth-required', { lists, sender: { address: 'alice@contoso.test', answer: { kind: 'found', dn: ALICE, groups: [] } } }).reason.code, 'recipient-auth-required');
    assert.equal(to('found', undefined).reply.code, 250, 'no restrictions');
  });

  it('gateway.yaml: false, or an object of the four keys each an attribute name or false; anything else is named', () => {
    const built = (v: string) => build(`directory:\n  url: [ldaps://dc1.contoso.test]\n  bindDn: cn=svc\n  bindPasswordEnv: LDAP_PW\n  baseDn: dc=contoso,dc=test\n  preset: activeDirectory\n  deliveryRestrictionAttributes: ${v}\n`, { LDAP_PW: 'x' });
    for (const v of ['false', '{ acceptMessagesOnlyFrom: allowedSenders, rejectMessagesFrom: false }', '{}']) {
      const r = built(v);
      assert.ok(r.ok, `${v}: ${errors(r).join('\n')}`);
    }
    const off = built('false');
    assert.ok(off.ok);
    assert.deepEqual(Object.values(directorySchemaMap(off.config.gateway.directory!).deliveryRestrictions), [null, null, null, null], 'false: none read');
    assert.match(errors(built('{ acceptMessagesOnlyFrom: "auth Orig" }')).join('\n'), /gateway\.yaml.*directory\.deliveryRestrictionAttributes\.acceptMessagesOnlyFrom.*LDAP attribute name/);
    assert.match(errors(built('{ acceptFrom: authOrig }')).join('\n'), /gateway\.yaml.*directory\.deliveryRestrictionAttributes.*acceptFrom/);
    assert.match(errors(built('true')).join('\n'), /gateway\.yaml: directory\.deliveryRestrictionAttributes: must be false \(read no restriction\) or a map of acceptMessagesOnlyFrom/);
  });
});

describe("directory: own size limits (Exchange's MaxReceiveSize and MaxSendSize, AD's delivContLength and submissionContLength)", () => {
  const base = { loginAttributes: undefined, addressAttributes: undefined, groupAttribute: undefined, userFilter: undefined };
  it('activeDirectory reads delivContLength, openLDAP nothing; a name or false overrides; KB to bytes, 0 and junk are no limit', () => {
    assert.equal(directorySchemaMap({ ...base, preset: 'activeDirectory' }).maxReceiveSizeAttribute, 'delivContLength');
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP' }).maxReceiveSizeAttribute, null);
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP', maxReceiveSizeAttribute: 'mailQuotaKB' }).maxReceiveSizeAttribute, 'mailQuotaKB');
    assert.equal(directorySchemaMap({ ...base, preset: 'activeDirectory', maxReceiveSizeAttribute: false }).maxReceiveSizeAttribute, null);
    const ad = DIRECTORY_PRESET_MAPS.activeDirectory;
    assert.equal(maxReceiveSizeOf(ad, { delivContLength: ['10240'] }), 10_485_760);
    assert.equal(maxReceiveSizeOf(ad, { DELIVCONTLENGTH: [' 10 '] }), 10_240, 'attribute name in any case, spaces trimmed');
    for (const v of [['0'], ['-1'], ['10.5'], ['ten'], [''], [], ['99999999999']]) assert.equal(maxReceiveSizeOf(ad, { delivContLength: v }), null, JSON.stringify(v));
    assert.equal(maxReceiveSizeOf(DIRECTORY_PRESET_MAPS.openLDAP, { delivContLength: ['10'] }), null, 'not read unless configured');
  });

  it('RCPT: a declared SIZE over the limit is 552 5.2.3; the transaction keeps the largest limit while every recipient has one, and forgets it once one has none', () => {
    process.env.MAILGW_RULES_PW = 'x';
    const policy = compile(
      { fqdn: 'mx.contoso.test', acceptedDomains: [{ domain: 'contoso.test', type: 'Authoritative', default: true }], recipients: { directory: true }, directory: { url: ['ldap://127.0.0.1:1'], bindDn: 'cn=svc', bindPasswordEnv: 'MAILGW_RULES_PW', baseDn: 'dc=contoso,dc=test', preset: 'activeDirectory' } },
      { 'anon.yaml': { name: 'Anon', bindings: ['127.0.0.1:2525'], permissionGroups: ['AnonymousUsers'] } },
    );
    const session = connect(policy, { localAddress: '127.0.0.1', localPort: 2525, clientIP: '127.0.0.9' }).session!;
    const to = (recipient: string, transaction: typeof NEW_TRANSACTION, maxReceiveSize: number | null, declaredSize?: number) => rcpt(policy, session, { recipient, transaction, directory: 'found', maxReceiveSize, declaredSize });
    const refused = to('ivy@contoso.test', NEW_TRANSACTION, 10_240, 10_241).decision;
    assert.equal(`${refused.reply.code} ${refused.reply.enhanced} ${refused.reply.text}`, '552 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient');
    assert.equal(refused.reason.code, 'recipient-size-limit');
    assert.equal(to('ivy@contoso.test', NEW_TRANSACTION, 10_240, 10_240).decision.reply.code, 250);
    assert.equal(to('ivy@contoso.test', NEW_TRANSACTION, 10_240).decision.reply.code, 250, 'undeclared: judged at the end of DATA');
    const one = to('ivy@contoso.test', NEW_TRANSACTION, 10_240).transaction;
    assert.equal(one.receiveSizeLimit, 10_240);
    const two = to('jack@contoso.test', one, 20_480).transaction;
    assert.equal(two.receiveSizeLimit, 20_480, 'the largest');
    assert.equal(to('kim@contoso.test', two, null).transaction.receiveSizeLimit, undefined, 'one without a limit: no limit for the message');
    assert.equal(to('kim@contoso.test', NEW_TRANSACTION, null).transaction.receiveSizeLimit, undefined);
    assert.equal(to('ivy@contoso.test', to('kim@contoso.test', NEW_TRANSACTION, null).transaction, 10_240).transaction.receiveSizeLimit, undefined, 'stays forgotten');
    assert.equal(to('ivy@contoso.test', one, 10_240).transaction.receiveSizeLimit, 10_240, 'a repeat changes nothing');
    // The end of DATA, as the listener asks while the message streams in.
    const judged = (messageBytes: number, receiveSizeLimit?: number) => data(session, { receivedHeaders: 0, headerBytes: 100, messageBytes, receiveSizeLimit });
    assert.equal(judged(20_481, 20_480).reply.code, 552);
    assert.equal(judged(20_481, 20_480).reason.code, 'recipient-size-limit');
    assert.equal(judged(20_480, 20_480).reply.code, 354);
    assert.equal(judged(5_000_000).reply.code, 354);
    // Accepted, but over some recipients' own limits: those are failed (a DSN), the others delivered.
    const mixed = to('alice@contoso.test', to('kim@contoso.test', two, null).transaction, null).transaction;
    assert.deepEqual(mixed.sizeLimits, [{ bytes: 10_240, organization: false }, { bytes: 20_480, organization: false }, null, null]);
    const over = (bytes: number) => recipientsOverSizeLimit(mixed, bytes).map((o) => `${o.recipient.local} ${o.reply.code} ${o.reply.enhanced} | ${o.reason}`);
    assert.deepEqual(over(15_000), ["ivy 552 5.2.3 | message of 15000 bytes exceeds the 10240-byte limit of ivy@contoso.test (its directory object's MaxReceiveSize)"]);
    assert.deepEqual(over(30_000).map((x) => x.split(' ')[0]), ['ivy', 'jack']);
    assert.deepEqual(over(10_240), [], 'exactly the limit');
    assert.equal(to('kim@contoso.test', NEW_TRANSACTION, null).transaction.sizeLimits, undefined, 'no limit anywhere: nothing kept');
    assert.deepEqual(recipientsOverSizeLimit(to('kim@contoso.test', NEW_TRANSACTION, null).transaction, 1e9), []);
  });

  it("a directory user's MaxSendSize (submissionContLength): read as KB; after AUTH, SIZE= over it is 552 5.2.3 at MAIL and a larger message the same at the end of DATA", () => {
    assert.equal(directorySchemaMap({ ...base, preset: 'activeDirectory' }).maxSendSizeAttribute, 'submissionContLength');
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP' }).maxSendSizeAttribute, null);
    assert.equal(directorySchemaMap({ ...base, preset: 'activeDirectory', maxSendSizeAttribute: false }).maxSendSizeAttribute, null);
    assert.equal(maxSendSizeOf(DIRECTORY_PRESET_MAPS.activeDirectory, { submissionContLength: ['10'] }), 10_240);
    assert.equal(maxSendSizeOf(DIRECTORY_PRESET_MAPS.activeDirectory, { submissionContLength: ['0'] }), null);
    process.env.MAILGW_RULES_PW = 'x';
    const policy = compile(
      { fqdn: 'mx.contoso.test', acceptedDomains: [{ domain: 'contoso.test', type: 'Authoritative', default: true }], directory: { url: ['ldap://127.0.0.1:1'], bindDn: 'cn=svc', bindPasswordEnv: 'MAILGW_RULES_PW', baseDn: 'dc=contoso,dc=test', preset: 'activeDirectory' } },
      { 'c.yaml': { name: 'C', bindings: ['127.0.0.1:2587'], authMechanism: ['BasicAuth'], permissionGroups: ['ExchangeUsers'] } },
    );
    const start = connect(policy, { localAddress: '127.0.0.1', localPort: 2587, clientIP: '127.0.0.9' }).session!;
    const logon = (maxSendSize?: number) => authDirectory(start, { kind: 'ok', identity: { login: 'henry', dn: 'cn=Henry,dc=contoso,dc=test', addresses: ['henry@contoso.test'], groups: [], ...(maxSendSize !== undefined ? { maxSendSize } : {}) } }).session;
    const henry = logon(10_240);
    const m = mail(policy, henry, { sender: 'henry@contoso.test', declaredSize: 10_241 });
    assert.equal(`${m.reply.code} ${m.reply.enhanced} ${m.reply.text}`, '552 5.2.3 RESOLVER.RST.SendSizeLimit.Sender; message too large for this sender');
    assert.equal(m.reason.code, 'sender-size-limit');
    assert.equal(mail(policy, henry, { sender: 'henry@contoso.test', declaredSize: 10_240 }).reply.code, 250);
    assert.equal(mail(policy, logon(), { sender: 'henry@contoso.test', declaredSize: 10_000_000 }).reply.code, 250, 'no limit of its own');
    assert.equal(data(henry, { receivedHeaders: 0, headerBytes: 10, messageBytes: 10_241 }).reason.code, 'sender-size-limit');
    assert.equal(data(henry, { receivedHeaders: 0, headerBytes: 10, messageBytes: 10_240 }).reply.code, 354);
    assert.equal(data(start, { receivedHeaders: 0, headerBytes: 10, messageBytes: 10_241 }).reply.code, 354, 'anonymous: no user limit');
  });

  it("a directory user's RecipientLimits (msExchRecipLimit): the RCPT past it is 452 4.5.3; none of its own, the connector's alone", () => {
    assert.equal(directorySchemaMap({ ...base, preset: 'activeDirectory' }).recipientLimitsAttribute, 'msExchRecipLimit');
    assert.equal(directorySchemaMap({ ...base, preset: 'openLDAP' }).recipientLimitsAttribute, null);
    assert.equal(recipientLimitsOf(DIRECTORY_PRESET_MAPS.activeDirectory, { msExchRecipLimit: ['2'] }), 2);
    for (const v of [['0'], ['x'], []]) assert.equal(recipientLimitsOf(DIRECTORY_PRESET_MAPS.activeDirectory, { msExchRecipLimit: v }), null, JSON.stringify(v));
    process.env.MAILGW_RULES_PW = 'x';
    const policy = compile(
      { fqdn: 'mx.contoso.test', acceptedDomains: [{ domain: 'contoso.test', type: 'Authoritative', default: true }], directory: { url: ['ldap://127.0.0.1:1'], bindDn: 'cn=svc', bindPasswordEnv: 'MAILGW_RULES_PW', baseDn: 'dc=contoso,dc=test', preset: 'activeDirectory' } },
      { 'c.yaml': { name: 'C', bindings: ['127.0.0.1:2587'], authMechanism: ['BasicAuth'], permissionGroups: ['ExchangeUsers'], maxRecipientsPerMessage: 3 } },
    );
    const start = connect(policy, { localAddress: '127.0.0.1', localPort: 2587, clientIP: '127.0.0.9' }).session!;
    const logon = (recipientLimits?: number) => authDirectory(start, { kind: 'ok', identity: { login: 'henry', dn: 'cn=Henry,dc=contoso,dc=test', addresses: ['henry@contoso.test'], groups: [], ...(recipientLimits !== undefined ? { recipientLimits } : {}) } }).session;
    const replies = (session: typeof start, n: number) => {
      let transaction = NEW_TRANSACTION;
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = rcpt(policy, session, { recipient: `r${i}@fabrikam.test`, transaction });
        transaction = r.transaction;
        out.push(`${r.decision.reply.code} ${r.decision.reason.code}`);
      }
      return out;
    };
    assert.deepEqual(replies(logon(2), 3), ['250 relay', '250 relay', '452 too-many-recipients-user']);
    assert.deepEqual(replies(logon(), 4), ['250 relay', '250 relay', '250 relay', '452 too-many-recipients'], "the connector's maxRecipientsPerMessage");
    assert.deepEqual(replies(logon(10), 4).at(-1), '452 too-many-recipients', 'the smaller limit decides');
  });

  it('set by hand with the recipient lookup off: a warning naming the key, none when false or when the lookup is on', () => {
    const dir = (extra: string, lookup = '') => build(`${lookup}directory:\n  url: [ldaps://dc1.contoso.test]\n  bindDn: cn=svc\n  bindPasswordEnv: LDAP_PW\n  baseDn: dc=contoso,dc=test\n  preset: activeDirectory\n${extra}`, { LDAP_PW: 'x' });
    const warned = (r: ReturnType<typeof build>) => (r.ok ? r.warnings.map(formatIssue) : ['not ok']);
    const w = warned(dir('  maxReceiveSizeAttribute: quotaKB\n  deliveryRestrictionAttributes: { acceptMessagesOnlyFrom: allowedSenders }\n'));
    assert.deepEqual(w, [
      'gateway.yaml: directory.maxReceiveSizeAttribute: is read by the recipient lookup, which is off: set recipients: { directory: true }, or these restrictions apply to nobody',
      'gateway.yaml: directory.deliveryRestrictionAttributes: is read by the recipient lookup, which is off: set recipients: { directory: true }, or these restrictions apply to nobody',
    ]);
    assert.deepEqual(warned(dir('  maxReceiveSizeAttribute: false\n  deliveryRestrictionAttributes: false\n')), []);
    assert.deepEqual(warned(dir('  maxReceiveSizeAttribute: quotaKB\n', 'recipients: { directory: true }\n')), []);
    assert.deepEqual(warned(dir('  maxSendSizeAttribute: sendKB\n')), [], 'read at AUTH, not by the lookup');
  });

  it('gateway.yaml: the size and recipient limit attributes are an attribute name or false; anything else is named', () => {
    for (const key of ['maxSendSizeAttribute', 'maxReceiveSizeAttribute', 'recipientLimitsAttribute']) {
      const b = (v: string) => build(`directory:\n  url: [ldaps://dc1.contoso.test]\n  bindDn: cn=svc\n  bindPasswordEnv: LDAP_PW\n  baseDn: dc=contoso,dc=test\n  preset: activeDirectory\n  ${key}: ${v}\n`, { LDAP_PW: 'x' });
      assert.ok(b('false').ok, key);
      assert.match(errors(b('"a b"')).join('\n'), new RegExp(`gateway\\.yaml: directory\\.${key}: must be an LDAP attribute name`));
    }
    const built = (v: string) => build(`directory:\n  url: [ldaps://dc1.contoso.test]\n  bindDn: cn=svc\n  bindPasswordEnv: LDAP_PW\n  baseDn: dc=contoso,dc=test\n  preset: activeDirectory\n  maxReceiveSizeAttribute: ${v}\n`, { LDAP_PW: 'x' });
    for (const v of ['false', 'mailQuotaKB']) assert.ok(built(v).ok, v);
    assert.match(errors(built('"deliv Cont"')).join('\n'), /gateway\.yaml: directory\.maxReceiveSizeAttribute: must be an LDAP attribute name/);
    assert.match(errors(built('10240')).join('\n'), /gateway\.yaml: directory\.maxReceiveSizeAttribute/);
  });
});
