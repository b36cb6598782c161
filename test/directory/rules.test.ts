// The directory's pure rules (@mailgw/policy directory.ts): filter and DN escaping, the filters
// the presets build, proxyAddresses parsing, disabled accounts, group principals, and the
// config keys (file/key errors). No LDAP server here: see client.test.ts and smtp.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, formatIssue } from '@mailgw/config';
import {
  DIRECTORY_PRESET_MAPS,
  NEW_TRANSACTION,
  authDirectory,
  connect,
  rcpt,
  recipientLookup,
  accountDisabled,
  addressFilter,
  dnName,
  entryAddresses,
  escapeDnValue,
  escapeFilterValue,
  groupPrincipals,
  loginFilter,
  mayBindWith,
  normaliseDn,
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
});
