// send-connectors.d/*: keys after Set-SendConnector; a bad file names the file, the key and what is wrong.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { formatIssue } from '../src/issues.js';
import { loadConfig } from '../src/load.js';
import { buildConfig, type BuildResult } from '../src/validate.js';
import { expectError } from './fixture.js';

function build(files: Record<string, unknown>, env: Record<string, string> = {}, read: Record<string, string> = {}): BuildResult {
  return buildConfig({
    gatewayFile: 'gateway.yaml',
    gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }] },
    connectorFiles: [{ file: 'connectors.d/default.yaml', data: { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] } }],
    sendConnectorFiles: Object.entries(files).map(([file, data]) => ({ file: `send-connectors.d/${file}`, data })),
    readReferenced: (p) => (p in read ? { ok: true, text: read[p]!, file: p } : { ok: false, error: `cannot read ${p}: ENOENT`, file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
    env,
  });
}
const F = 'send-connectors.d/c.yaml';
const one = (data: Record<string, unknown>, env?: Record<string, string>, read?: Record<string, string>) => build({ 'c.yaml': { name: 'C', addressSpaces: ['*'], ...data } }, env, read);

describe('send connector files', () => {
  test('a full smart-host connector compiles with every key', () => {
    const r = one(
      {
        addressSpaces: ['SMTP:*.fabrikam.test;5', { address: '*', cost: 10, senderDomains: ['tenant-a.test'] }],
        smartHosts: ['relay1.test', 'relay2.test:2525', '[::1]:26'],
        port: 587,
        smartHostAuthMechanism: 'basicauthrequiretls',
        authenticationCredential: { user: 'gw@contoso.test', passEnv: 'RELAY_PASS' },
        requireTLS: true,
        tlsAuthLevel: 'DomainValidation',
        tlsDomain: '*.relay.test',
        fqdn: 'out.contoso.test',
        sourceIPAddress: '127.0.0.5',
        maxMessageSize: '10MB',
        connectionInactivityTimeout: '00:02:00',
        protocolLoggingLevel: 'Verbose',
        maxConnectionsPerDestination: 3,
        messageRateLimit: 600,
      },
      { RELAY_PASS: 'secret' },
    );
    assert.ok(r.ok, r.ok ? '' : r.errors.map(formatIssue).join('\n'));
    const c = r.config.gateway.sendConnectors[0]!;
    assert.equal(c.name, 'C');
    assert.deepEqual(c.addressSpaces.map((a) => a.text), ['*.fabrikam.test;5', '* from tenant-a.test;10']);
    assert.deepEqual(c.target, {
      kind: 'smtp',
      hosts: [{ host: 'relay1.test', port: 587 }, { host: 'relay2.test', port: 2525 }, { host: '::1', port: 26 }],
      secure: false,
      lmtp: false,
      tls: { requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: '*.relay.test' },
      auth: { mechanism: 'BasicAuthRequireTLS', user: 'gw@contoso.test', pass: 'secret' },
    });
    assert.equal(c.text, 'smtp://gw%40contoso.test@relay1.test:587,relay2.test:2525,[::1]:26', 'never the password');
    assert.deepEqual([c.fqdn, c.sourceIPAddress, c.maxMessageSize, c.connectionInactivityTimeout, c.protocolLoggingLevel, c.maxConnectionsPerDestination, c.messageRateLimit], ['out.contoso.test', '127.0.0.5', 10 * 1024 * 1024, 120_000, 'Verbose', 3, 600]);
  });

  test('defaults: MX delivery, opportunistic TLS, 35MB, 10m, no protocol log', () => {
    const r = one({});
    assert.ok(r.ok);
    const c = r.config.gateway.sendConnectors[0]!;
    assert.deepEqual(c.target, { kind: 'mx', port: null, tls: { requireTLS: false, tlsAuthLevel: 'EncryptionOnly', tlsDomain: null } });
    assert.deepEqual([c.maxMessageSize, c.connectionInactivityTimeout, c.protocolLoggingLevel, c.messageRateLimit, c.smartHostAuthMechanism], [35 * 1024 * 1024, 600_000, 'None', null, 'None']);
  });

  test('the password comes from a file (first line), relative to gateway.yaml', () => {
    const r = one({ smartHosts: ['relay.test'], smartHostAuthMechanism: 'BasicAuth', authenticationCredential: { user: 'gw', passFile: 'secrets/relay' } }, {}, { 'secrets/relay': 'p4ss\n' });
    assert.ok(r.ok);
    const t = r.config.gateway.sendConnectors[0]!.target;
    assert.deepEqual(t.kind === 'smtp' && t.auth, { mechanism: 'BasicAuth', user: 'gw', pass: 'p4ss' });
  });

  test('bad files: each error names the file, the key and what is wrong', () => {
    expectError(one({ addressSpaces: [] }), F, 'addressSpaces', /list at least one address space/);
    expectError(one({ addressSpaces: ['contoso.test;0'] }), F, 'addressSpaces[0]', /cost must be 1-100/);
    expectError(one({ addressSpaces: ['bad domain'] }), F, 'addressSpaces[0]', /not a valid domain/);
    expectError(one({ addressSpaces: [{ address: '*', senderDomain: ['x.test'] }] }), F, 'addressSpaces[0].senderDomain', /unknown key \(did you mean "senderDomains"\?\)/);
    expectError(one({ smartHost: ['relay.test'] }), F, 'smartHost', /unknown key \(did you mean "smartHosts"\?\)/);
    expectError(one({ smartHosts: ['relay.test:99999'] }), F, 'smartHosts[0]', /not a smart host; write host\[:port\]/);
    expectError(one({ smartHosts: ['relay.test'], dnsRoutingEnabled: true }), F, 'dnsRoutingEnabled', /either smartHosts or dnsRoutingEnabled/);
    expectError(one({ dnsRoutingEnabled: false }), F, 'smartHosts', /list the smart hosts/);
    expectError(one({ smartHostAuthMechanism: 'Kerberos' }), F, 'smartHostAuthMechanism', /"Kerberos" is not one of: None, BasicAuth, BasicAuthRequireTLS, ExternalAuthoritative/);
    expectError(one({ smartHosts: ['relay.test'], smartHostAuthMechanism: 'BasicAuth' }), F, 'authenticationCredential', /BasicAuth needs authenticationCredential/);
    expectError(one({ smartHostAuthMechanism: 'BasicAuth', authenticationCredential: { user: 'gw', passEnv: 'X' } }), F, 'smartHostAuthMechanism', /MX hosts are never sent credentials/);
    expectError(one({ smartHosts: ['relay.test'], authenticationCredential: { user: 'gw', passEnv: 'X' } }), F, 'authenticationCredential', /smartHostAuthMechanism is None/);
    expectError(one({ smartHosts: ['relay.test'], smartHostAuthMechanism: 'BasicAuth', authenticationCredential: { user: 'gw', pass: 'inline' } }), F, 'authenticationCredential.pass', /unknown key/);
    expectError(one({ smartHosts: ['relay.test'], smartHostAuthMechanism: 'BasicAuth', authenticationCredential: { user: 'gw', passEnv: 'UNSET_VAR' } }), F, 'authenticationCredential.passEnv', /environment variable UNSET_VAR is not set/);
    expectError(one({ smartHosts: ['relay.test'], smartHostAuthMechanism: 'BasicAuth', authenticationCredential: { user: 'gw', passFile: 'nope' } }), F, 'authenticationCredential.passFile', /cannot read nope/);
    expectError(one({ tlsAuthLevel: 'CertificateValidation' }), F, 'tlsAuthLevel', /only with requireTLS: true/);
    expectError(one({ requireTLS: true, tlsAuthLevel: 'Strict' }), F, 'tlsAuthLevel', /not one of: EncryptionOnly, CertificateValidation, DomainValidation/);
    expectError(one({ smartHosts: ['relay.test'], requireTLS: true, tlsAuthLevel: 'DomainValidation' }), F, 'tlsDomain', /needs tlsDomain/);
    expectError(one({ requireTLS: true, tlsDomain: 'relay.test' }), F, 'tlsDomain', /only with tlsAuthLevel: DomainValidation/);
    expectError(one({ sourceIPAddress: '0.0.0.0' }), F, 'sourceIPAddress', /not a local IP address/);
    expectError(one({ maxMessageSize: 'huge' }), F, 'maxMessageSize', /./);
    expectError(one({ connectionInactivityTimeout: '1ms' }), F, 'connectionInactivityTimeout', /out of range/);
    expectError(build({ 'a.yaml': { name: 'Same', addressSpaces: ['*'] }, 'b.yaml': { name: 'same', addressSpaces: ['*'] } }), 'send-connectors.d/b.yaml', 'name', /already the name of the send connector in send-connectors\.d\/a\.yaml/);
    expectError(build({ 'a.yaml': { addressSpaces: ['*'] } }), 'send-connectors.d/a.yaml', 'name', /is required/);
  });

  test('the loader reads send-connectors.d/ beside gateway.yaml (optional), or --send-connectors DIR', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-send-'));
    try {
      writeFileSync(path.join(dir, 'gateway.yaml'), 'fqdn: mail.contoso.test\nacceptedDomains: [{ domain: contoso.test }]\nroutes: [{ domains: ["*"], to: mx }]\n');
      mkdirSync(path.join(dir, 'connectors.d'));
      writeFileSync(path.join(dir, 'connectors.d', 'default.yaml'), 'name: Default\nusage: Internet\nbindings: ["0.0.0.0:25"]\n');
      const without = loadConfig({ configPath: path.join(dir, 'gateway.yaml'), env: {} });
      assert.ok(without.ok);
      assert.deepEqual(without.config.gateway.sendConnectors.map((c) => c.name), ['routes[0]']);
      mkdirSync(path.join(dir, 'send-connectors.d'));
      writeFileSync(path.join(dir, 'send-connectors.d', 'relay.yaml'), 'name: Relay\naddressSpaces: ["*"]\nsmartHosts: [relay.test]\ntlsAuthLevel: DomainValidation\n');
      const bad = loadConfig({ configPath: path.join(dir, 'gateway.yaml'), env: {} });
      assert.equal(bad.ok, false);
      assert.ok(!bad.ok && bad.errors.some((e) => e.file.endsWith(path.join('send-connectors.d', 'relay.yaml')) && e.path === 'tlsAuthLevel'), JSON.stringify(!bad.ok && bad.errors));
      writeFileSync(path.join(dir, 'send-connectors.d', 'relay.yaml'), 'name: Relay\naddressSpaces: ["*"]\nsmartHosts: [relay.test]\n');
      const ok = loadConfig({ configPath: path.join(dir, 'gateway.yaml'), env: {} });
      assert.ok(ok.ok);
      assert.deepEqual(ok.config.gateway.sendConnectors.map((c) => c.name), ['Relay', 'routes[0]']);
      const missing = loadConfig({ configPath: path.join(dir, 'gateway.yaml'), sendConnectorsDir: path.join(dir, 'nope'), env: {} });
      assert.ok(!missing.ok && missing.errors.some((e) => /send connectors directory not found/.test(e.message)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an empty connector file, or one that is a list, is said to be that (both directories)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-empty-'));
    try {
      writeFileSync(path.join(dir, 'gateway.yaml'), 'fqdn: mail.contoso.test\nacceptedDomains: [{ domain: contoso.test }]\n');
      mkdirSync(path.join(dir, 'connectors.d'));
      mkdirSync(path.join(dir, 'send-connectors.d'));
      writeFileSync(path.join(dir, 'connectors.d', '10-default.yaml'), 'name: Default\nusage: Internet\nbindings: ["0.0.0.0:25"]\n');
      writeFileSync(path.join(dir, 'connectors.d', '20-empty.yaml'), '# to do\n');
      writeFileSync(path.join(dir, 'connectors.d', '30-list.yaml'), '- name: Listed\n  bindings: ["0.0.0.0:26"]\n');
      writeFileSync(path.join(dir, 'send-connectors.d', 'empty.yml'), '');
      writeFileSync(path.join(dir, 'send-connectors.d', 'word.json'), '"relay"');
      const r = loadConfig({ configPath: path.join(dir, 'gateway.yaml'), env: {} });
      assert.equal(r.ok, false);
      const rel = (f: string) => path.relative(dir, f);
      assert.deepEqual(!r.ok && r.errors.map((e) => `${rel(e.file)}: ${e.path}: ${e.message}`), [
        'connectors.d/20-empty.yaml: : the file is empty: a connector needs at least name and bindings (or remove the file; *.yaml, *.yml and *.json files are read)',
        'connectors.d/30-list.yaml: : must be a mapping of keys (name: …), not a list',
        'send-connectors.d/empty.yml: : the file is empty: a connector needs at least name and addressSpaces (or remove the file; *.yaml, *.yml and *.json files are read)',
        'send-connectors.d/word.json: : must be a mapping of keys (name: …), not the string "relay"',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
