// Routes are parsed and compiled here, once, for every command: a route `mailgw check` accepts
// is a route the worker can use, and every problem names the file and the key.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { OPPORTUNISTIC_TLS, compileRoutes, describeTarget, matchRoute, parseRouteTo, type RouteTarget } from '../src/routes.js';
import { gatewaySchema } from '../src/gateway-schema.js';
import { formatIssue } from '../src/issues.js';
import { buildConfig, type ConfigSources } from '../src/validate.js';

const DEFAULT = { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] };

function sources(routes: unknown[], extra: Partial<ConfigSources> = {}): ConfigSources {
  return {
    gatewayFile: 'gateway.yaml',
    gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }], routes },
    connectorFiles: [{ file: 'connectors.d/default.yaml', data: DEFAULT }],
    readReferenced: (p) => ({ ok: false, error: `cannot read ${p}: ENOENT`, file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
    baseDir: '/etc/mailgw',
    ...extra,
  };
}

function errorsOf(src: ConfigSources): string[] {
  const r = buildConfig(src);
  assert.equal(r.ok, false, 'configuration should be invalid');
  return r.ok ? [] : r.errors.map(formatIssue);
}

const target = (to: string, extra: object = {}, env: Record<string, string> = {}): RouteTarget => {
  const routes = gatewaySchema.parse({ acceptedDomains: [{ domain: 'contoso.test' }], routes: [{ domains: ['*'], to, ...extra }] }).routes;
  const r = compileRoutes(routes, { file: 'gateway.yaml', baseDir: '/etc/mailgw', secrets: 'resolve', env });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.routes[0]!.target;
};

describe('route targets', () => {
  it('maildir paths are resolved against the directory of gateway.yaml', () => {
    assert.deepEqual(target('maildir:./var/mail'), { kind: 'maildir', root: path.resolve('/etc/mailgw/var/mail') });
  });

  it('smtp, smtps and lmtp URLs with default ports, IPv6 hosts and credentials', () => {
    assert.deepEqual(target('smtp://relay.test'), { kind: 'smtp', hosts: [{ host: 'relay.test', port: 25 }], secure: false, lmtp: false, tls: OPPORTUNISTIC_TLS, auth: null });
    assert.deepEqual(target('smtps://relay.test'), { kind: 'smtp', hosts: [{ host: 'relay.test', port: 465 }], secure: true, lmtp: false, tls: OPPORTUNISTIC_TLS, auth: null });
    assert.deepEqual(target('lmtp://[::1]:2424'), { kind: 'smtp', hosts: [{ host: '::1', port: 2424 }], secure: false, lmtp: true, tls: OPPORTUNISTIC_TLS, auth: null });
    assert.deepEqual((target('smtp://u%40x:p%3Aw@relay.test:587') as { auth: unknown }).auth, { mechanism: 'BasicAuth', user: 'u@x', pass: 'p:w' });
    assert.deepEqual((target('smtp://relay.test:587', { requireTLS: true, auth: { user: 'gw', pass: 'pw' } }) as { auth: unknown }).auth, { mechanism: 'BasicAuth', user: 'gw', pass: 'pw' });
    assert.equal(describeTarget(target('smtp://gw:secret@[::1]:2525')), 'smtp://gw@[::1]:2525', 'never the password');
  });

  it('mx takes requireTLS and verifyTLS (DomainValidation against each MX host name); maildir refuses requireTLS', () => {
    assert.deepEqual(target('mx', { requireTLS: true, verifyTLS: true }), { kind: 'mx', port: null, tls: { requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: null } });
    assert.deepEqual(errorsOf(sources([{ domains: ['*'], to: 'maildir:/m', requireTLS: true }])), ['gateway.yaml: routes[0].requireTLS: requireTLS applies to smtp://, lmtp:// and mx targets (smtps:// is always TLS; maildir: is local)']);
  });

  it('auth.passEnv is read from the environment given', () => {
    assert.deepEqual((target('smtp://relay.test:587', { auth: { user: 'gw', passEnv: 'RELAY_PASS' } }, { RELAY_PASS: 's3cret' }) as { auth: unknown }).auth, { mechanism: 'BasicAuth', user: 'gw', pass: 's3cret' });
  });

  it('what parseRouteTo refuses', () => {
    for (const to of ['smtp://127.0.0.1:2626/x', 'smtp://h?x=1', 'smtp://h#f', 'ftp://x', 'smtp://', 'maildir:', 'smtp:relay', 'mxx', 'smtp://h:99999']) {
      assert.equal(parseRouteTo(to).ok, false, to);
    }
  });

  it('matchRoute: first route in file order', () => {
    const routes = gatewaySchema.parse({ acceptedDomains: [{ domain: 'contoso.test' }], routes: [{ domains: ['*.contoso.test'], to: 'mx' }, { domains: ['*'], to: 'maildir:/m' }] }).routes;
    const r = compileRoutes(routes, { file: 'gateway.yaml', baseDir: '/', secrets: 'resolve', env: {} });
    assert.ok(r.ok);
    assert.equal(matchRoute(r.routes, 'eu.contoso.test')!.index, 0);
    assert.equal(matchRoute(r.routes, 'example.org')!.index, 1);
  });
});

describe('check finds what used to crash the worker', () => {
  it('a next hop with a path is an error at routes[i].to', () => {
    const errors = errorsOf(sources([{ domains: ['contoso.test'], to: 'maildir:/m' }, { domains: ['*'], to: 'smtp://127.0.0.1:2626/x' }]));
    assert.ok(errors.some((e) => /^gateway\.yaml: routes\[1\]\.to: "smtp:\/\/127\.0\.0\.1:2626\/x": a next hop is smtp:\/\/\[user:pass@\]host\[:port\], without a path/.test(e)), errors.join('\n'));
  });

  it('an unset auth.passEnv is an error at routes[i].auth.passEnv naming the variable', () => {
    const routes = [{ domains: ['*'], to: 'smtp://relay.test:587', auth: { user: 'gw', passEnv: 'MAILGW_RELAY_PASS' } }];
    const errors = errorsOf(sources(routes, { env: { OTHER: 'x' } }));
    assert.deepEqual(errors, ['gateway.yaml: routes[0].auth.passEnv: the environment variable MAILGW_RELAY_PASS is not set (it holds the password for gw at this next hop)']);
    const ok = buildConfig(sources(routes, { env: { MAILGW_RELAY_PASS: 'pw' } }));
    assert.ok(ok.ok);
    assert.deepEqual((ok.config.gateway.routes[0]!.target as { auth: unknown }).auth, { mechanism: 'BasicAuth', user: 'gw', pass: 'pw' });
  });

  it("secrets: 'unresolved' compiles the same hops without reading the environment", () => {
    const routes = [{ domains: ['*'], to: 'smtp://relay.test:587', auth: { user: 'gw', passEnv: 'MAILGW_RELAY_PASS' } }];
    const r = buildConfig({ ...sources(routes), secrets: 'unresolved' });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const route = r.config.gateway.routes[0]!;
    assert.equal(route.text, 'smtp://gw@relay.test:587');
    assert.deepEqual((route.target as { auth: unknown }).auth, { mechanism: 'BasicAuth', user: 'gw', pass: { unresolved: true, source: 'auth.passEnv MAILGW_RELAY_PASS' } });
    // Everything else is still checked.
    const bad = buildConfig({ ...sources([{ domains: ['*'], to: 'smtp://h/x' }]), secrets: 'unresolved' });
    assert.equal(bad.ok, false);
  });

  it('misspelt route keys get a suggestion', () => {
    const errors = errorsOf(sources([{ domains: ['*'], to: 'smtp://h', verifyTls: true }]));
    assert.ok(errors.includes('gateway.yaml: routes[0].verifyTls: unknown key (did you mean "verifyTLS"?)'), errors.join('\n'));
  });
});
