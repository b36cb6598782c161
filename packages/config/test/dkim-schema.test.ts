// gateway.yaml `dkim`: defaults, and every mistake reported with file, key and what is wrong.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_DKIM_HEADERS } from '../src/dkim-schema.js';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';

const build = (dkim: unknown, extra: Record<string, unknown> = {}) => buildFrom({ ...GATEWAY, ...extra, dkim }, { 'default.yaml': DEFAULT });

test('defaults: rsa, relaxed/relaxed, the standard header list, From oversigned', () => {
  const r = build({ domains: [{ domain: 'Contoso.TEST', selectors: [{ name: 'S1' }] }] });
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
  const d = r.config.gateway.dkim!;
  assert.deepEqual(d.domains, [{ domain: 'contoso.test', selectors: [{ name: 's1', algorithm: 'rsa' }] }]);
  assert.equal(d.canonicalization, 'relaxed/relaxed');
  assert.deepEqual(d.headers, [...DEFAULT_DKIM_HEADERS]);
  assert.deepEqual(d.oversignHeaders, ['From']);
  assert.equal(d.signNonAcceptedDomains, false);
  assert.equal(buildFrom(GATEWAY, { 'default.yaml': DEFAULT }).ok && (buildFrom(GATEWAY, { 'default.yaml': DEFAULT }) as { config: { gateway: { dkim?: unknown } } }).config.gateway.dkim, undefined, 'off unless present');
});

test('two selectors and ed25519, comma lists, case-insensitive values', () => {
  const r = build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 'old', algorithm: 'RSA' }, { name: 'new', algorithm: 'Ed25519', keyFile: 'keys/new.pem' }] }], headers: 'From, To, Subject', oversignHeaders: 'From, Subject', canonicalization: 'Relaxed/Simple' });
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
  assert.equal(r.config.gateway.dkim!.domains[0]!.selectors[1]!.algorithm, 'ed25519');
  assert.deepEqual(r.config.gateway.dkim!.headers, ['From', 'To', 'Subject']);
  assert.equal(r.config.gateway.dkim!.canonicalization, 'relaxed/simple');
});

test('mistakes name file and key', () => {
  expectError(build({ domains: [{ domain: 'fabrikam.test', selectors: [{ name: 's1' }] }] }), 'gateway.yaml', 'dkim.domains[0].domain', /not an accepted domain.*signNonAcceptedDomains/);
  assert.ok(build({ domains: [{ domain: 'fabrikam.test', selectors: [{ name: 's1' }] }], signNonAcceptedDomains: true }).ok, 'allowed by configuration');
  assert.ok(build({ domains: [{ domain: 'sub.contoso.test', selectors: [{ name: 's1' }] }] }, { acceptedDomains: [{ domain: '*.contoso.test' }] }).ok, 'a subdomain of a wildcard accepted domain');
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] }] }), 'gateway.yaml', 'dkim.domains[0].selectors', /at most two selectors/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [] }] }), 'gateway.yaml', 'dkim.domains[0].selectors', /one selector/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 'a' }, { name: 'A' }] }] }), 'gateway.yaml', 'dkim.domains[0].selectors[1].name', /listed twice/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 'bad_sel' }] }] }), 'gateway.yaml', 'dkim.domains[0].selectors[0].name', /DNS label/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 's', algorithm: 'dsa' }] }] }), 'gateway.yaml', 'dkim.domains[0].selectors[0].algorithm', /not one of: rsa, ed25519/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 's', keyfile: 'x' }] }] }), 'gateway.yaml', 'dkim.domains[0].selectors[0].keyfile', /unknown key \(did you mean "keyFile"\?\)/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 's' }] }], oversign: ['From'] }), 'gateway.yaml', 'dkim.oversign', /unknown key/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 's' }] }], headers: ['To'], oversignHeaders: ['Subject'] }), 'gateway.yaml', 'dkim.oversignHeaders[0]', /not in dkim.headers/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 's' }] }], headers: ['To'], oversignHeaders: [] }), 'gateway.yaml', 'dkim.headers', /must include From/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 's' }] }, { domain: 'CONTOSO.test', selectors: [{ name: 's' }] }] }), 'gateway.yaml', 'dkim.domains[1].domain', /already listed/);
  expectError(build({ domains: [{ domain: '*.contoso.test', selectors: [{ name: 's' }] }] }), 'gateway.yaml', 'dkim.domains[0].domain', /not a domain name/);
  expectError(build({ domains: [{ domain: 'contoso.test', selectors: [{ name: 's' }] }], canonicalization: 'nowsp' }), 'gateway.yaml', 'dkim.canonicalization', /not one of/);
});
