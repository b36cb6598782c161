// Exchange's disclaimer tokens (%%DisplayName%% …): which ones exist, the attribute each reads
// per preset, the values (several joined, a manager's DN as its name), the filling (HTML-escaped,
// unknown tokens as written, any case), and the warnings check gives. Pure.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { formatIssue } from '@mailgw/config';
import { DISCLAIMER_TOKENS, disclaimerTokens, evaluateTransportRules, fillDisclaimerTokens, tokenAttribute, tokenAttributes, tokenValues } from '../src/index.js';
import { compile } from './fixture.js';

const DEFAULT = { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] };

describe('disclaimer tokens', () => {
  it("Exchange's names: DisplayName … Manager and CustomAttribute1-15; found in any case, each once, unknown ones apart", () => {
    assert.equal(DISCLAIMER_TOKENS.length, 41);
    assert.ok(['DisplayName', 'FirstName', 'LastName', 'Title', 'Department', 'Company', 'PhoneNumber', 'MobileNumber', 'Email', 'Manager', 'CustomAttribute15'].every((t) => DISCLAIMER_TOKENS.includes(t)));
    assert.deepEqual(disclaimerTokens('<p>%%displayname%% | %%Title%% | %%DisplayName%% | %%Nickname%% | %% Title %% | %%%%</p>'), { known: ['DisplayName', 'Title'], unknown: ['%%Nickname%%'] });
    assert.deepEqual(disclaimerTokens('no tokens, 100%% sure'), { known: [], unknown: [] });
  });

  it('the attribute each reads: Active Directory names, inetOrgPerson ones for openLDAP, none where that schema has none', () => {
    assert.equal(tokenAttribute('activeDirectory', 'Company'), 'company');
    assert.equal(tokenAttribute('openLDAP', 'Company'), 'o');
    assert.equal(tokenAttribute('activeDirectory', 'Department'), 'department');
    assert.equal(tokenAttribute('openLDAP', 'Department'), 'departmentNumber');
    assert.equal(tokenAttribute('activeDirectory', 'UserLogonName'), 'userPrincipalName');
    assert.equal(tokenAttribute('activeDirectory', 'CustomAttribute7'), 'extensionAttribute7');
    assert.equal(tokenAttribute('openLDAP', 'CustomAttribute7'), null);
    assert.equal(tokenAttribute('activeDirectory', 'Nickname'), null);
    assert.deepEqual(tokenAttributes('openLDAP', ['DisplayName', 'CustomAttribute1', 'Email', 'DisplayName']), ['displayName', 'mail']);
  });

  it('values: attribute names in any case, several values joined, a manager shown by name, a missing one empty', () => {
    const v = tokenValues('activeDirectory', ['DisplayName', 'PhoneNumber', 'Manager', 'Title', 'CustomAttribute1'], {
      displayname: ['Alice Smith'],
      telephoneNumber: ['+1 555 0100', '+1 555 0101'],
      manager: ['CN=Smith\\, Bob,OU=People,DC=contoso,DC=test'],
      title: [],
    });
    assert.deepEqual(v, { DisplayName: 'Alice Smith', PhoneNumber: '+1 555 0100, +1 555 0101', Manager: 'Smith, Bob', Title: '', CustomAttribute1: '' });
  });

  it('filling: values HTML-escaped (a directory value adds no markup), a token without a value empty, unknown tokens as written', () => {
    const html = '<p>%%DisplayName%% | %%title%% | %%Department%% | %%Nickname%%</p>';
    assert.equal(fillDisclaimerTokens(html, { DisplayName: 'Tom & "Jerry" <script>alert(1)</script>', Title: "O'Brien's aide" }), '<p>Tom &amp; &quot;Jerry&quot; &lt;script&gt;alert(1)&lt;/script&gt; | O&#39;Brien&#39;s aide |  | %%Nickname%%</p>');
    assert.equal(fillDisclaimerTokens('no tokens', {}), 'no tokens');
  });

  it('random values and texts (fast-check): a value never adds markup; text around the tokens is kept; no token, no change', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), (before, value, after) => {
        const html = `${before.replace(/%/g, '')}%%DisplayName%%${after.replace(/%/g, '')}`;
        const out = fillDisclaimerTokens(html, { DisplayName: value });
        const filled = out.slice(before.replace(/%/g, '').length, out.length - after.replace(/%/g, '').length);
        return out.startsWith(before.replace(/%/g, '')) && out.endsWith(after.replace(/%/g, '')) && !/[<>"']/.test(filled) && (filled.match(/&/g) ?? []).length === (filled.match(/&(amp|lt|gt|quot|#39);/g) ?? []).length;
      }),
      { numRuns: 1000 },
    );
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (text) => fillDisclaimerTokens(text.replace(/%/g, ''), { DisplayName: 'x' }) === text.replace(/%/g, '')), { numRuns: 1000 });
  });

  it("the rules stage says whose directory object fills the tokens (explain's RULES, the tracking log)", () => {
    const p = compile({ acceptedDomains: [{ domain: 'contoso.test', default: true }], transportRules: [{ name: 'Signature', applyHtmlDisclaimerText: '%%DisplayName%%, %%Title%%' }] }, [DEFAULT]);
    assert.ok(p.ok);
    const r = evaluateTransportRules(p.policy.config.gateway.transportRules, { envelopeSender: null, fromHeader: { local: 'alice', domain: 'contoso.test' }, recipients: [], clientIP: '192.0.2.1', internalSession: true, fields: new Map(), size: 10, bodyText: null, attachments: null }, p.policy.insideDomains);
    assert.match(r.reason, /rule "Signature" added a disclaimer \(Append, fallback Wrap; %%DisplayName%%, %%Title%% from the directory object of alice@contoso\.test\)/);
  });

  it('check warns: a token Exchange does not fill, tokens without a directory, a token the preset has no attribute for', () => {
    const warnings = (gateway: Record<string, unknown>) => {
      const r = compile(gateway, [DEFAULT], { MAILGW_TOKENS_PW: 'x' });
      assert.ok(r.ok, r.ok ? '' : r.errors.map(formatIssue).join('\n'));
      return r.warnings.filter((w) => w.path.includes('applyHtmlDisclaimerText')).map(formatIssue);
    };
    const rules = { transportRules: [{ name: 'Signature', applyHtmlDisclaimerText: '<p>%%DisplayName%%, %%CustomAttribute3%% %%Nickname%%</p>' }] };
    assert.deepEqual(warnings(rules), [
      'gateway.yaml: transportRules[0].applyHtmlDisclaimerText: %%Nickname%%: not a token Exchange fills (DisplayName, FirstName, Initials, LastName, Office, PhoneNumber, … CustomAttribute15): it goes out as written',
      "gateway.yaml: transportRules[0].applyHtmlDisclaimerText: %%DisplayName%%, %%CustomAttribute3%% are filled from the sender's directory object, and there is no directory section: they go out empty",
    ]);
    const directory = { url: ['ldaps://dc1.contoso.test'], bindDn: 'cn=svc', bindPasswordEnv: 'MAILGW_TOKENS_PW', baseDn: 'dc=contoso,dc=test' };
    assert.deepEqual(warnings({ ...rules, directory: { ...directory, preset: 'openLDAP' } }), [
      'gateway.yaml: transportRules[0].applyHtmlDisclaimerText: %%Nickname%%: not a token Exchange fills (DisplayName, FirstName, Initials, LastName, Office, PhoneNumber, … CustomAttribute15): it goes out as written',
      'gateway.yaml: transportRules[0].applyHtmlDisclaimerText: %%CustomAttribute3%%: the openLDAP schema has no attribute for it: it goes out empty',
    ]);
    assert.equal(warnings({ transportRules: [{ name: 'Signature', applyHtmlDisclaimerText: '<p>%%DisplayName%%, %%CustomAttribute3%%</p>' }], directory: { ...directory, preset: 'activeDirectory' } }).length, 0);
  });
});
