// Exchange's system messages (New-SystemMessage) as the DSN sender asks for them: by enhanced
// status code and by whether the sender is inside the organisation; the HTML shown as text.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, formatIssue } from '@mailgw/config';
import { parse } from 'yaml';
import { dsnWording } from '../src/index.js';

function gateway(systemMessages: unknown) {
  return buildConfig({
    gatewayFile: 'gateway.yaml',
    gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: '*.fabrikam.test', type: 'InternalRelay' }, { domain: 'partner.test', type: 'ExternalRelay' }], systemMessages },
    connectorFiles: [{ file: 'connectors.d/default.yaml', data: { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] } }],
    readReferenced: (p) => ({ ok: false, error: 'none', file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
  });
}

describe('system messages', () => {
  it('by code and by the side of the sender: Authoritative and InternalRelay domains are inside, ExternalRelay and the rest outside', () => {
    const r = gateway([
      { dsnCode: '5.1.1', internal: true, text: '<p>Not in our address book.<br>Call &quot;IT&quot;.</p>' },
      { dsnCode: '5.1.1', internal: false, text: 'No such user here.' },
      { dsnCode: '4.4.7', internal: false, text: 'We gave up after two days.' },
    ]);
    assert.ok(r.ok, r.ok ? '' : r.errors.map(formatIssue).join('\n'));
    const g = r.config.gateway;
    assert.equal(dsnWording(g).explanation('contoso.test', '5.1.1'), 'Not in our address book.\nCall "IT".');
    assert.equal(dsnWording(g).explanation('eu.fabrikam.test', '5.1.1'), 'Not in our address book.\nCall "IT".');
    assert.equal(dsnWording(g).explanation('partner.test', '5.1.1'), 'No such user here.');
    assert.equal(dsnWording(g).explanation('example.org', '5.1.1'), 'No such user here.');
    assert.equal(dsnWording(g).explanation('example.org', '4.4.7'), 'We gave up after two days.');
    assert.equal(dsnWording(g).explanation('contoso.test', '4.4.7'), null, 'only an external text for 4.4.7');
    assert.equal(dsnWording(g).explanation('contoso.test', '5.2.2'), null);
  });

  it('configuration errors name the key: a code that is no failure or delay, a text over 512 characters, the same code and side twice', () => {
    const errors = (v: unknown) => {
      const r = gateway(v);
      return r.ok ? [] : r.errors.map(formatIssue);
    };
    assert.match(errors([{ dsnCode: '2.0.0', internal: true, text: 'x' }]).join('\n'), /gateway\.yaml: systemMessages\[0\]\.dsnCode: must be an enhanced status code of a failure or a delay, such as 5\.1\.1 or 4\.4\.7/);
    assert.match(errors([{ dsnCode: '5.1.1', internal: true, text: 'x'.repeat(513) }]).join('\n'), /systemMessages\[0\]\.text: at most 512 characters/);
    assert.match(errors([{ dsnCode: '5.1.1', text: 'x' }]).join('\n'), /systemMessages\[0\]\.internal/);
    assert.match(errors([{ dsnCode: '5.1.1', internal: true, text: 'a' }, { dsnCode: '5.1.1', internal: false, text: 'b' }, { dsnCode: '5.1.1', internal: true, text: 'c' }]).join('\n'), /systemMessages\[2\]\.dsnCode: 5\.1\.1 for internal senders is already systemMessages\[0\]/);
    assert.match(errors([{ dsnCode: '5.1.1', internal: true, text: 'x', language: 'En' }]).join('\n'), /systemMessages\[0\].*language/);
  });

  it('externalPostmasterAddress: the From of DSNs to senders outside; inside, and without it, postmaster@<default domain>', () => {
    const withIt = buildConfig({
      gatewayFile: 'gateway.yaml',
      gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test', default: true }], externalPostmasterAddress: 'NoReply@Contoso.test' },
      connectorFiles: [{ file: 'connectors.d/default.yaml', data: { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] } }],
      readReferenced: (p) => ({ ok: false, error: 'none', file: p }),
      parseYaml: parse,
      fallbackFqdn: 'host.test',
    });
    assert.ok(withIt.ok);
    assert.equal(dsnWording(withIt.config.gateway).from('example.org'), 'noreply@contoso.test');
    assert.equal(dsnWording(withIt.config.gateway).from('contoso.test'), 'postmaster@contoso.test');
    const without = gateway([]);
    assert.ok(without.ok);
    assert.equal(dsnWording(without.config.gateway).from('example.org'), 'postmaster@contoso.test');
  });

  it('generateCopyOfDSNFor: failure codes only, named when wrong', () => {
    const build = (codes: unknown) =>
      buildConfig({
        gatewayFile: 'gateway.yaml',
        gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test', default: true }], generateCopyOfDSNFor: codes },
        connectorFiles: [{ file: 'connectors.d/default.yaml', data: { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] } }],
        readReferenced: (p) => ({ ok: false, error: 'none', file: p }),
        parseYaml: parse,
        fallbackFqdn: 'host.test',
      });
    const ok = build(['5.1.1', ' 5.4.4 ']);
    assert.ok(ok.ok);
    assert.deepEqual(ok.config.gateway.generateCopyOfDSNFor, ['5.1.1', '5.4.4']);
    const bad = build(['5.1.1', '4.4.7']);
    assert.ok(!bad.ok);
    assert.match(bad.errors.map(formatIssue).join('\n'), /gateway\.yaml: generateCopyOfDSNFor\[1\]: must be the enhanced status code of a failure, such as 5\.1\.1 or 5\.4\.4/);
  });
});
