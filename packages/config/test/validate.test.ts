// Every config rule has a test that the error names the file, the key path and the problem.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';
import { loadConfig } from '../src/load.js';




const build = (connectors: Record<string, unknown>, gateway: unknown = GATEWAY) => buildFrom(gateway, connectors);

describe('connector files', () => {
  it('a valid connector gets Exchange defaults and its usage preset', () => {
    const r = build({ 'default.yaml': DEFAULT, 'client.yaml': { name: 'Client', usage: 'client', bindings: '0.0.0.0:587' } });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const [d, c] = r.config.connectors;
    assert.equal(d!.maxMessageSize, 37748736);
    assert.equal(d!.maxRecipientsPerMessage, 200);
    assert.equal(d!.connectionTimeout, 600_000);
    assert.equal(d!.connectionInactivityTimeout, 300_000);
    assert.equal(d!.maxLogonFailures, 3);
    assert.equal(d!.maxProtocolErrors, 5);
    assert.deepEqual(d!.permissionGroups, ['AnonymousUsers']);
    assert.equal(d!.remoteIPRanges.length, 2, 'all IPv4 and all IPv6 by default');
    assert.equal(d!.fqdn, 'mail.contoso.test');
    assert.deepEqual(c!.authMechanism, ['Tls', 'BasicAuth', 'BasicAuthRequireTLS']);
    assert.deepEqual(c!.permissionGroups, ['ExchangeUsers']);
    assert.equal(c!.messageRateLimit, 5);
    assert.equal(c!.messageRateSource, 'User');
  });
  it('unknown keys are reported with a suggestion', () => {
    expectError(build({ 'a.yaml': { ...DEFAULT, remoteIpRanges: ['10.0.0.0/8'] } }), 'connectors.d/a.yaml', 'remoteIpRanges', /unknown key \(did you mean "remoteIPRanges"\?\)/);
  });
  it('missing required keys', () => {
    expectError(build({ 'a.yaml': { usage: 'Internet', bindings: ['0.0.0.0:25'] } }), 'connectors.d/a.yaml', 'name', /is required/);
    expectError(build({ 'a.yaml': { name: 'A' } }), 'connectors.d/a.yaml', 'bindings', /is required/);
  });
  it('bad values name the key and the value', () => {
    const r = build({ 'a.yaml': { ...DEFAULT, remoteIPRanges: ['10.0.0.0/8', '010.0.0.1'], maxMessageSize: '1KB', authMechanism: ['Tls', 'Kerberos'], bindings: ['0.0.0.0:99999'] } });
    expectError(r, 'connectors.d/a.yaml', 'remoteIPRanges[1]', /"010\.0\.0\.1" has a part with a leading zero/);
    expectError(r, 'connectors.d/a.yaml', 'maxMessageSize', /out of range/);
    expectError(r, 'connectors.d/a.yaml', 'authMechanism[1]', /"Kerberos" is not one of: None, Tls/);
    expectError(r, 'connectors.d/a.yaml', 'bindings[0]', /port must be 1-65535/);
  });
  it('multicast and broadcast bindings are refused', () => {
    expectError(build({ 'a.yaml': { ...DEFAULT, bindings: ['224.0.0.1:25'] } }), 'connectors.d/a.yaml', 'bindings[0]', /multicast or broadcast/);
  });
  it('None stands alone', () => {
    expectError(build({ 'a.yaml': { ...DEFAULT, authMechanism: ['None', 'Tls'] } }), 'connectors.d/a.yaml', 'authMechanism', /None cannot be combined/);
  });
  it('BasicAuthRequireTLS needs BasicAuth and Tls', () => {
    expectError(build({ 'a.yaml': { ...DEFAULT, authMechanism: ['Tls', 'BasicAuthRequireTLS'] } }), 'connectors.d/a.yaml', 'authMechanism', /needs BasicAuth and Tls/);
  });
  it('ExternalAuthoritative needs the ExchangeServers group and only Tls beside it', () => {
    const r = build({ 'a.yaml': { ...DEFAULT, remoteIPRanges: ['10.0.0.1'], authMechanism: ['Tls', 'BasicAuth', 'ExternalAuthoritative'] } });
    expectError(r, 'connectors.d/a.yaml', 'permissionGroups', /needs the ExchangeServers permission group/);
    expectError(r, 'connectors.d/a.yaml', 'authMechanism', /can only be combined with Tls \(remove BasicAuth\)/);
  });
  it('requireTLS needs Tls', () => {
    expectError(build({ 'a.yaml': { ...DEFAULT, authMechanism: ['None'], requireTLS: true } }), 'connectors.d/a.yaml', 'requireTLS', /needs Tls/);
  });
  it('inactivity timeout must be less than the connection timeout', () => {
    expectError(build({ 'a.yaml': { ...DEFAULT, connectionTimeout: '5m', connectionInactivityTimeout: '00:05:00' } }), 'connectors.d/a.yaml', 'connectionInactivityTimeout', /less than connectionTimeout/);
  });
  it('names are unique (case-insensitive, as in Exchange)', () => {
    expectError(build({ 'a.yaml': DEFAULT, 'b.yaml': { ...DEFAULT, name: 'DEFAULT', bindings: ['0.0.0.0:26'] } }), 'connectors.d/b.yaml', 'name', /already the name of the connector in connectors\.d\/a\.yaml/);
  });
  it('equal ranges on an identical binding: Exchange error naming both connectors', () => {
    const r = build({ 'a.yaml': DEFAULT, 'b.yaml': { ...DEFAULT, name: 'Other' } });
    expectError(r, 'connectors.d/b.yaml', 'remoteIPRanges[0]', /conflict with the settings on receive connector "Default".*unique combination of local IP address & port bindings and remote IP address ranges.*are equal/);
  });
  it('partially overlapping ranges on an identical binding are refused; contained ones are fine', () => {
    const a = { ...DEFAULT, remoteIPRanges: ['10.0.0.0-10.0.0.20'] };
    expectError(build({ 'a.yaml': a, 'b.yaml': { ...DEFAULT, name: 'B', remoteIPRanges: ['10.0.0.10-10.0.0.30'] } }), 'connectors.d/b.yaml', 'remoteIPRanges[0]', /partially overlap/);
    assert.ok(build({ 'a.yaml': a, 'b.yaml': { ...DEFAULT, name: 'B', remoteIPRanges: ['10.0.0.4/30'] } }).ok);
    assert.ok(build({ 'a.yaml': a, 'b.yaml': { ...DEFAULT, name: 'B', bindings: ['127.0.0.1:25'], remoteIPRanges: ['10.0.0.10-10.0.0.30'] } }).ok, 'different binding');
  });
  it('grants must name a built-in principal or a configured user; Exchange spellings accepted', () => {
    const r = build({ 'a.yaml': { ...DEFAULT, permissions: [{ user: 'NT AUTHORITY\\ANONYMOUS LOGON', extendedRights: ['ms-Exch-SMTP-Submit'] }, { user: 'ghost', extendedRights: ['SMTP-Submit'] }] } });
    expectError(r, 'connectors.d/a.yaml', 'permissions[1].user', /"ghost" is neither a built-in principal/);
    if (!r.ok) assert.ok(!r.errors.some((e) => e.path === 'permissions[0].user'));
  });
  it('unknown extended rights are refused', () => {
    expectError(build({ 'a.yaml': { ...DEFAULT, permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Open-Relay'] }] } }), 'connectors.d/a.yaml', 'permissions[0].extendedRights[0]', /not an extended right/);
  });
  it('reports every error at once, across files', () => {
    const r = build({ 'a.yaml': { ...DEFAULT, maxRecipientsPerMessage: 0 }, 'b.yaml': { name: 'B', bindings: ['nonsense'] } }, { acceptedDomains: [] });
    assert.equal(r.ok, false);
    if (!r.ok) assert.deepEqual([...new Set(r.errors.map((e) => e.file))].sort(), ['connectors.d/a.yaml', 'connectors.d/b.yaml', 'gateway.yaml']);
  });
});

describe('gateway.yaml', () => {
  it('redis: waitForReplicas with a cluster is refused; a unix:// url is accepted, a bare path is not', () => {
    expectError(build({ 'default.yaml': DEFAULT }, { ...GATEWAY, redis: { cluster: ['127.0.0.1:7000'], waitForReplicas: 1 } }), 'gateway.yaml', 'redis.waitForReplicas', /not with cluster/);
    assert.ok(build({ 'default.yaml': DEFAULT }, { ...GATEWAY, redis: { url: 'unix:///run/redis/redis.sock', waitForReplicas: 1 } }).ok);
    expectError(build({ 'default.yaml': DEFAULT }, { ...GATEWAY, redis: { url: '/run/redis/redis.sock' } }), 'gateway.yaml', 'redis.url', /unix:\/\/\/path\/to\/redis\.sock/);
  });
  it('accepted domains: one default, no duplicates, no catch-all', () => {
    expectError(build({ 'a.yaml': DEFAULT }, { acceptedDomains: [{ domain: 'a.test' }, { domain: 'b.test' }] }), 'gateway.yaml', 'acceptedDomains', /mark one domain with default: true/);
    expectError(build({ 'a.yaml': DEFAULT }, { acceptedDomains: [{ domain: 'a.test', default: true }, { domain: 'A.TEST.' }] }), 'gateway.yaml', 'acceptedDomains[1].domain', /already listed/);
    expectError(build({ 'a.yaml': DEFAULT }, { acceptedDomains: [{ domain: '*' }] }), 'gateway.yaml', 'acceptedDomains[0].domain', /open relay/);
    expectError(build({ 'a.yaml': DEFAULT }, { acceptedDomains: [{ domain: 'contoso.test', type: 'Local' }] }), 'gateway.yaml', 'acceptedDomains[0].type', /not one of: Authoritative, InternalRelay, ExternalRelay/);
  });
  it('users need a hash from mailgw hash-password and unique names', () => {
    const bad = { ...GATEWAY, users: [{ name: 'a', passwordHash: 'secret' }] };
    expectError(build({ 'a.yaml': DEFAULT }, bad), 'gateway.yaml', 'users[0].passwordHash', /mailgw hash-password/);
    const hash = '$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA';
    const dup = { ...GATEWAY, users: [{ name: 'a', passwordHash: hash }, { name: 'A', passwordHash: hash }] };
    expectError(build({ 'a.yaml': DEFAULT }, dup), 'gateway.yaml', 'users[1].name', /defined twice/);
  });
  it('a missing referenced file is named', () => {
    expectError(build({ 'a.yaml': DEFAULT }, { ...GATEWAY, recipients: { file: 'recipients.txt' } }), 'gateway.yaml', 'recipients.file', /cannot read recipients\.txt/);
  });
  it('IDN accepted domains are stored as punycode', () => {
    const r = build({ 'a.yaml': DEFAULT }, { acceptedDomains: [{ domain: 'Bücher.TEST' }] });
    assert.ok(r.ok);
    assert.equal(r.config.gateway.acceptedDomains[0]!.domain.domain, 'xn--bcher-kva.test');
  });
});

describe('loading from disk', () => {
  function tree(files: Record<string, string>): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-config-'));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), text);
    }
    return dir;
  }
  it('YAML syntax errors name file, line and column', () => {
    const dir = tree({ 'gateway.yaml': 'acceptedDomains:\n  - domain: contoso.test\n', 'connectors.d/a.yaml': 'name: A\nbindings: [0.0.0.0:25\n' });
    const r = loadConfig({ configPath: path.join(dir, 'gateway.yaml') });
    assert.equal(r.ok, false);
    if (!r.ok) assert.ok(r.errors.some((e) => e.file.endsWith('connectors.d/a.yaml') && /^line \d+, column \d+$/.test(e.path) && /not valid YAML/.test(e.message)), JSON.stringify(r.errors));
  });
  it('a missing gateway.yaml is one error pointing to mailgw init, not a list of required keys; the connector files are still checked', () => {
    const dir = tree({ 'connectors.d/a.yaml': 'name: A\nbindings: [0.0.0.0:99999]\n' });
    const r = loadConfig({ configPath: path.join(dir, 'gateway.yaml') });
    assert.equal(r.ok, false);
    assert.deepEqual(
      !r.ok && r.errors.map((e) => [path.relative(dir, path.resolve(e.file)), e.path, e.message]),
      [
        ['gateway.yaml', '', `file not found (\`mailgw init ${dir}\` writes a commented one, with connectors.d/, for your domain)`],
        ['connectors.d/a.yaml', 'bindings[0]', '"0.0.0.0:99999": port must be 1-65535'],
      ],
    );
  });
  it('reads .yaml, .yml and .json connectors, users and recipients files', () => {
    const hash = '$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA';
    const dir = tree({
      'gateway.yaml': 'acceptedDomains: [{ domain: contoso.test }]\nusers: { file: users.yaml }\nrecipients: { file: rcpts.txt }\n',
      'users.yaml': `- { name: alice, passwordHash: "${hash}", addresses: [alice@contoso.test] }\n`,
      'rcpts.txt': '# mailboxes\nbob@contoso.test\n\nCarol@Contoso.Test\n',
      'connectors.d/a.yaml': 'name: A\nbindings: [0.0.0.0:25]\n',
      'connectors.d/b.yml': 'name: B\nbindings: [0.0.0.0:26]\n',
      'connectors.d/c.json': '{"name": "C", "bindings": ["0.0.0.0:27"]}',
      'connectors.d/README.txt': 'ignored',
    });
    const r = loadConfig({ configPath: path.join(dir, 'gateway.yaml') });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.deepEqual(r.config.connectors.map((c) => c.name), ['A', 'B', 'C']);
    assert.deepEqual(r.config.gateway.recipients, ['bob@contoso.test', 'carol@contoso.test', 'alice@contoso.test']);
    assert.equal(r.dataDir, path.join(dir, 'var'));
  });
});
