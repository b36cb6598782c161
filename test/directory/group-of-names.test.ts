// groupMembership: groupOfNames against a real slapd WITHOUT the memberof overlay (no memberOf
// attribute anywhere, as on many OpenLDAP servers): groups found by searching
// groupOfNames/groupOfUniqueNames member lists for the user's DN, then for each group's DN
// (nested, bounded by maxGroupDepth, a cycle ends); a DN with filter metacharacters; a grant to
// a nested group over real SMTP (bob relays, carol does not); `mailgw directory test` shows
// where each group came from and says what it did with the cycle.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DirectoryConfig } from '@mailgw/config';
import { createDirectoryClient, createDirectoryService, type DirectoryService } from '@mailgw/directory';
import { mailgw } from '../cli/helpers/binary.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { BASE_DN, FIXTURE_PASSWORD, SERVICE_DN, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';

const skip = slapdSkip();
const G = (cn: string) => `cn=${cn},ou=Groups,${BASE_DN}`;
const RCPT_OK = '250 2.1.5 Recipient OK';
const NO_RELAY = '550 5.7.1 Unable to relay';

let ldap: TestSlapd;
let redis: TestRedis;
let gw: TestGateway;
let dir: DirectoryService;
let port: number;
let cliDir: string;

function cfg(extra: Partial<DirectoryConfig> = {}): DirectoryConfig {
  return {
    url: [ldap.url],
    startTLS: false,
    bindDn: SERVICE_DN,
    bindPasswordEnv: 'X',
    baseDn: BASE_DN,
    preset: 'openLDAP',
    groupMembership: 'groupOfNames',
    cacheTtl: 300_000,
    negativeCacheTtl: 60_000,
    timeout: 2000,
    maxGroupDepth: 10,
    idleTimeout: 60_000,
    bindPassword: FIXTURE_PASSWORD,
    caPem: null,
    ...extra,
  };
}

before(async () => {
  if (skip) return;
  ldap = (await startSlapd({ memberof: false }))!;
  // A cycle: Loop A lists carol and Loop B, Loop B lists Loop A.
  ldap.modify(
    [
      `dn: ${G('Loop A')}\nchangetype: add\nobjectClass: groupOfNames\ncn: Loop A\nmember: cn=Carol White,ou=People,${BASE_DN}\nmember: ${G('Loop B')}\n`,
      `dn: ${G('Loop B')}\nchangetype: add\nobjectClass: groupOfNames\ncn: Loop B\nmember: ${G('Loop A')}\n`,
    ].join('\n'),
  );
  redis = await startRedis({ appendonly: false });
  port = await freePort();
  process.env.MAILGW_TEST_LDAP_PASSWORD = FIXTURE_PASSWORD;
  const gateway = await baseGateway({
    users: [],
    recipients: { directory: true },
    directory: { url: [ldap.url], bindDn: SERVICE_DN, bindPasswordEnv: 'MAILGW_TEST_LDAP_PASSWORD', baseDn: BASE_DN, preset: 'openLDAP', groupMembership: 'groupOfNames', timeout: '2s' },
  });
  const connectors = {
    'people.yaml': {
      name: 'People',
      bindings: [`127.0.0.1:${port}`],
      authMechanism: ['Tls', 'BasicAuth'],
      permissionGroups: ['None'],
      tarpitInterval: '0s',
      permissions: [
        { user: 'AuthenticatedUsers', extendedRights: ['ms-Exch-SMTP-Submit'] },
        { group: 'Relay Users', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] },
      ],
    },
  };
  dir = createDirectoryService({ config: compile(gateway, connectors).config.gateway.directory!, redisUrl: redis.url });
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors, directory: dir });

  cliDir = mkdtempSync(path.join(tmpdir(), 'mailgw-gon-cli-'));
  mkdirSync(path.join(cliDir, 'connectors.d'));
  writeFileSync(path.join(cliDir, 'ldap-password.txt'), `${FIXTURE_PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(
    path.join(cliDir, 'gateway.yaml'),
    [
      'fqdn: mx.contoso.test',
      'acceptedDomains: [{ domain: contoso.test, default: true }]',
      'senderAuthentication: { enabled: false }  # no real DNS in tests',
      'directory:',
      `  url: [${ldap.url}]`,
      `  bindDn: "${SERVICE_DN}"`,
      '  bindPasswordFile: ldap-password.txt',
      `  baseDn: "${BASE_DN}"`,
      '  preset: openLDAP',
      '  groupMembership: groupOfNames',
      '  timeout: 2s',
      '',
    ].join('\n'),
  );
  writeFileSync(
    path.join(cliDir, 'connectors.d', 'people.yaml'),
    ['name: People', "bindings: ['127.0.0.1:2587']", 'authMechanism: [Tls, BasicAuth]', 'permissionGroups: [None]', 'permissions:', '  - { user: AuthenticatedUsers, extendedRights: [ms-Exch-SMTP-Submit] }', "  - { group: 'Relay Users', extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient] }", ''].join('\n'),
  );
});

after(async () => {
  await gw?.close();
  await dir?.close();
  await ldap?.close();
  await redis?.stop();
  if (cliDir) rmSync(cliDir, { recursive: true, force: true });
});

describe('groups from groupOfNames member lists (slapd without the memberof overlay)', { skip }, () => {
  it('the user\'s groups and, nested, the groups listing those (groupOfNames and groupOfUniqueNames), each with where it came from', async () => {
    const lines: string[] = [];
    const r = await createDirectoryClient(cfg()).logon('bob', FIXTURE_PASSWORD, (l) => lines.push(l));
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    if (r.kind !== 'ok') return;
    assert.deepEqual(r.identity.groups, [G('Helpdesk'), G('Relay Users'), G('Print Operators')]);
    assert.deepEqual(r.identity.groupOrigins, {
      [G('Helpdesk')]: 'its member list names the user (groupOfNames)',
      [G('Relay Users')]: 'its member list names Helpdesk (groupOfNames)',
      [G('Print Operators')]: 'its member list names Helpdesk (groupOfNames)',
    });
    assert.ok(lines.includes(`search ${BASE_DN} (&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))(|(member=cn=Bob Jones,ou=People,${BASE_DN})(uniqueMember=cn=Bob Jones,ou=People,${BASE_DN}))): ${G('Helpdesk')}`), lines.join('\n'));
  });

  it('the same server with groupMembership memberOf sees no group at all (why the setting exists)', async () => {
    const r = await createDirectoryClient(cfg({ groupMembership: 'memberOf' })).logon('bob', FIXTURE_PASSWORD);
    assert.deepEqual(r.kind === 'ok' ? r.identity.groups : r, []);
  });

  it('a user DN with an escaped comma, "(", "*" and ")" is escaped into the filter and finds its group', async () => {
    const r = await createDirectoryClient(cfg()).describe('pat');
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    assert.deepEqual(r.kind === 'ok' ? r.identity.groups : [], [G('Temps')]);
  });

  it('a cycle (Loop A lists Loop B lists Loop A) ends, each group once, with a trace line; maxGroupDepth bounds the walk', async () => {
    const lines: string[] = [];
    const r = await createDirectoryClient(cfg()).logon('carol', FIXTURE_PASSWORD, (l) => lines.push(l));
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    assert.deepEqual(r.kind === 'ok' ? [...r.identity.groups].sort() : [], [G('Deny Relay'), G('Loop A'), G('Loop B'), G('Sales')].sort());
    assert.ok(lines.includes('Loop A again through Loop B: already counted (a cycle or a second path), not followed again'), lines.join('\n'));
    const shallow: string[] = [];
    const one = await createDirectoryClient(cfg({ maxGroupDepth: 1 })).logon('bob', FIXTURE_PASSWORD, (l) => shallow.push(l));
    assert.deepEqual(one.kind === 'ok' ? one.identity.groups : one, [G('Helpdesk')]);
    assert.ok(shallow.includes('maxGroupDepth 1 reached: the groups of Helpdesk are not followed'), shallow.join('\n'));
  });

  it('over SMTP: a grant to the nested group Relay Users lets bob relay; carol, outside it, may not', async () => {
    const b = await RawSmtp.connect({ host: '127.0.0.1', port });
    await b.ehlo();
    assert.equal((await b.authPlain('bob', FIXTURE_PASSWORD)).last, '235 2.7.0 Authentication successful');
    const before = (await gw.stored()).jobs;
    const t = await b.transaction('bob@contoso.test', ['partner@fabrikam.example'], 'Subject: relay\r\n\r\nrelay\r\n');
    assert.equal(t.rcpt[0]!.last, RCPT_OK);
    assert.match(t.end!.last, /^250 2\.6\.0 /);
    assert.equal((await gw.stored()).jobs, before + 1);
    await b.quit();
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    await c.ehlo();
    assert.equal((await c.authPlain('carol', FIXTURE_PASSWORD)).last, '235 2.7.0 Authentication successful');
    const u = await c.transaction('carol@contoso.test', ['partner@fabrikam.example', 'bob@contoso.test']);
    assert.deepEqual(u.rcpt.map((x) => x.last), [NO_RELAY, RCPT_OK]);
    await c.quit();
  });

  it('mailgw directory test and check: groups with where each came from, the rights they give, the cycle in a trace line', () => {
    const args = ['--config', path.join(cliDir, 'gateway.yaml'), '--connectors', path.join(cliDir, 'connectors.d')];
    const check = mailgw(['check', ...args]);
    assert.equal(check.code, 0, check.err + check.out);
    assert.match(check.out, /groups from groupOfNames\/groupOfUniqueNames entries listing the user in member\/uniqueMember \(nested, 10 levels\)/);
    const bob = mailgw(['directory', 'test', ...args, '--user', 'bob']);
    assert.equal(bob.code, 0, bob.out + bob.err);
    assert.match(bob.out, /groups\s+cn=Helpdesk,ou=Groups,dc=contoso,dc=test; cn=Relay Users,ou=Groups,dc=contoso,dc=test; cn=Print Operators/);
    assert.match(bob.out, /\n\s+Relay Users: its member list names Helpdesk \(groupOfNames\)\n/);
    assert.match(bob.out, /connector "People": ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient/);
    const carol = mailgw(['directory', 'test', ...args, '--user', 'carol']);
    assert.equal(carol.code, 0, carol.out + carol.err);
    assert.match(carol.out, /· Loop A again through Loop B: already counted \(a cycle or a second path\), not followed again/);
    assert.match(carol.out, /connector "People": ms-Exch-SMTP-Submit\n/);
    // Left at memberOf on this server, directory test finds no group and says what to set.
    const gy = path.join(cliDir, 'gateway.yaml');
    writeFileSync(path.join(cliDir, 'gateway-memberof.yaml'), readFileSync(gy, 'utf8').replace('groupMembership: groupOfNames', 'groupMembership: memberOf'));
    const plain = mailgw(['directory', 'test', '--config', path.join(cliDir, 'gateway-memberof.yaml'), '--connectors', path.join(cliDir, 'connectors.d'), '--user', 'bob']);
    assert.equal(plain.code, 0, plain.out + plain.err);
    assert.match(plain.out, /groups\s+\(none\)\n\s+note: no memberOf values: if this is an OpenLDAP server without the memberof overlay, set directory.groupMembership: groupOfNames/);
  });
});
