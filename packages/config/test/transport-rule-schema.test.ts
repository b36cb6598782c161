// gateway.yaml transportRules (New-TransportRule on an Edge server): none by default; conditions,
// exceptions (exceptIf…) and actions in the cmdlet's names; half-given pairs, rules without an
// action, two ending actions at once, bad patterns and duplicate names refused with their key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appliesDisclaimer, nestedRepetition, readsAttachments, readsAttachmentSizes } from '../src/transport-rule-schema.js';
import { GATEWAY, buildGateway, expectError } from './fixture.js';

const build = (transportRules: unknown, extra: Record<string, unknown> = {}) => buildGateway({ ...GATEWAY, ...extra, transportRules });

describe('gateway.yaml transportRules', () => {
  it('is empty unless given', () => {
    const r = buildGateway(GATEWAY);
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.transportRules, []);
  });

  it('reads conditions, exceptions and actions; addresses and domains normalised; defaults as Exchange', () => {
    const r = build([
      {
        name: 'External tag',
        fromScope: 'notinorganization',
        sentToScope: 'InOrganization',
        exceptIfSenderDomainIs: ['Partner.TEST'],
        exceptIfSubjectContainsWords: '[External], secure',
        prependSubject: '[External] ',
      },
      { name: 'No exe mailers', headerContainsMessageHeader: 'X-Mailer', headerContainsWords: ['BadMailer'], smtpRejectMessageRejectText: 'Go away' },
      { name: 'Archive', from: ['CEO@Contoso.test'], blindCopyTo: 'archive@contoso.test', mode: 'audit', enabled: false },
    ]);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const [a, b, c] = r.config.gateway.transportRules;
    assert.deepEqual(a, {
      name: 'External tag',
      comments: undefined,
      enabled: true,
      mode: 'Enforce',
      senderAddressLocation: 'Header',
      conditions: { fromScope: 'NotInOrganization', sentToScope: 'InOrganization' },
      exceptions: { senderDomainIs: ['partner.test'], subjectContainsWords: ['[External]', 'secure'] },
      actions: { prependSubject: '[External] ' },
      stopRuleProcessing: false,
    });
    assert.deepEqual(b!.actions, { reject: { code: 550, text: 'Go away' } });
    assert.deepEqual(b!.conditions, { headerContainsMessageHeader: 'X-Mailer', headerContainsWords: ['BadMailer'] });
    assert.deepEqual([c!.conditions.from, c!.actions.blindCopyTo, c!.mode, c!.enabled], [['ceo@contoso.test'], ['archive@contoso.test'], 'Audit', false]);
  });

  it('says what is wrong, with the key', () => {
    expectError(build([{ name: 'a', subjectContainsWords: ['x'] }]), 'gateway.yaml', 'transportRules[0]', /rule "a" has no action/);
    expectError(build([{ name: 'a', deleteMessage: true, quarantine: true }]), 'gateway.yaml', 'transportRules[0]', /one of rejecting, deleteMessage, quarantine and redirectMessageTo, not deleteMessage and quarantine/);
    expectError(build([{ name: 'a', headerContainsWords: ['x'], deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].headerContainsMessageHeader', /headerContainsMessageHeader and headerContainsWords go together/);
    expectError(build([{ name: 'a', exceptIfHeaderMatchesMessageHeader: 'X-Spam', deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].exceptIfHeaderMatchesPatterns', /exceptIfHeaderMatchesMessageHeader and exceptIfHeaderMatchesPatterns go together/);
    expectError(build([{ name: 'a', subjectMatchesPatterns: ['(unclosed'], deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].subjectMatchesPatterns[0]', /"\(unclosed" is not a regular expression/);
    expectError(build([{ name: 'a', from: ['not an address'], deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].from[0]', /"not an address" is not a mailbox address/);
    expectError(build([{ name: 'a', setHeaderName: 'X-Tag', deleteMessage: false }]), 'gateway.yaml', 'transportRules[0].setHeaderValue', /setHeaderName and setHeaderValue go together/);
    expectError(build([{ name: 'a', setHeaderName: 'X Tag', setHeaderValue: 'v' }]), 'gateway.yaml', 'transportRules[0].setHeaderName', /must be a header field name/);
    expectError(build([{ name: 'a', smtpRejectMessageRejectStatusCode: 250 }]), 'gateway.yaml', 'transportRules[0].smtpRejectMessageRejectStatusCode', /./);
    expectError(build([{ name: 'a', fromScope: 'Inside', deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].fromScope', /"Inside" is not one of: InOrganization, NotInOrganization/);
    expectError(build([{ name: 'a', subjectContainsWords: [''], deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].subjectContainsWords[0]', /an empty word matches everything/);
    expectError(build([{ name: 'a', subjectContainWords: ['x'], deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].subjectContainWords', /unknown key \(did you mean "subjectContainsWords"\?\)/);
    expectError(build([{ name: 'Same', deleteMessage: true }, { name: 'same', quarantine: true }]), 'gateway.yaml', 'transportRules[1].name', /"same" is the name of rule 1 as well/);
    expectError(build([{ name: 'a', disconnect: true, smtpRejectMessageRejectText: 'no' }]), 'gateway.yaml', 'transportRules[0].disconnect', /disconnect ends the session with its own 421/);
    expectError(build([{ name: 'a', disconnect: true, quarantine: true }]), 'gateway.yaml', 'transportRules[0]', /not disconnect and quarantine/);
    expectError(build([{ name: 'a', logEventText: 'two\nlines' }]), 'gateway.yaml', 'transportRules[0].logEventText', /one line/);
    expectError(build([{ name: 'a', attachmentExtensionMatchesWords: ['tar.gz'], deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].attachmentExtensionMatchesWords[0]', /"tar\.gz" is not a file name extension like exe or docm/);
    expectError(build([{ name: 'a', attachmentSizeOver: 'big', deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].attachmentSizeOver', /not a size/);
    expectError(build([{ name: 'a', exceptIfAttachmentNameMatchesPatterns: ['(x'], deleteMessage: true }]), 'gateway.yaml', 'transportRules[0].exceptIfAttachmentNameMatchesPatterns[0]', /is not a regular expression/);
  });

  it('disconnect and logEventText are actions of their own (the 421 is the policy\'s)', () => {
    const r = build([{ name: 'a', subjectContainsWords: ['x'], disconnect: true }, { name: 'b', subjectContainsWords: ['y'], logEventText: '  Seen y ' }]);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.deepEqual(r.config.gateway.transportRules.map((x) => x.actions), [{ disconnect: true }, { logEventText: 'Seen y' }]);
  });

  it('reads a disclaimer: Append and Wrap by default, enums in any case; location or fallback without the text is an error naming the key', () => {
    const r = build([
      { name: 'a', applyHtmlDisclaimerText: ' <p>Footer</p> ' },
      { name: 'b', applyHtmlDisclaimerText: 'Banner', applyHtmlDisclaimerLocation: 'prepend', applyHtmlDisclaimerFallbackAction: 'REJECT' },
      { name: 'c', mode: 'Audit', applyHtmlDisclaimerText: 'x' },
    ]);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.deepEqual(r.config.gateway.transportRules.map((x) => x.actions.disclaimer), [
      { html: '<p>Footer</p>', location: 'Append', fallback: 'Wrap' },
      { html: 'Banner', location: 'Prepend', fallback: 'Reject' },
      { html: 'x', location: 'Append', fallback: 'Wrap' },
    ]);
    // Only Enforce rules make the listener keep message bodies for disclaimers.
    assert.deepEqual(r.config.gateway.transportRules.map(appliesDisclaimer), [true, true, false]);
    expectError(build([{ name: 'a', deleteMessage: true, applyHtmlDisclaimerLocation: 'Prepend' }]), 'gateway.yaml', 'transportRules[0].applyHtmlDisclaimerLocation', /says how to apply applyHtmlDisclaimerText, which this rule does not have/);
    expectError(build([{ name: 'a', applyHtmlDisclaimerText: 'x', applyHtmlDisclaimerFallbackAction: 'Drop' }]), 'gateway.yaml', 'transportRules[0].applyHtmlDisclaimerFallbackAction', /Wrap|Ignore|Reject/);
    expectError(build([{ name: 'a', applyHtmlDisclaimerText: 'x'.repeat(5001) }]), 'gateway.yaml', 'transportRules[0].applyHtmlDisclaimerText', /5000/);
    // Tokens are the policy's (filled from the directory; its warnings are compile's): accepted here as text.
    const tokens = build([{ name: 'a', applyHtmlDisclaimerText: '<p>%%DisplayName%%, %%Title%% %%DisplayName%%</p>' }]);
    assert.ok(tokens.ok);
    assert.equal(tokens.config.gateway.transportRules[0]!.actions.disclaimer?.html, '<p>%%DisplayName%%, %%Title%% %%DisplayName%%</p>');
  });

  it('reads the attachment conditions: extensions without the dot, lower case; sizes; which rules read attachments and their sizes', () => {
    const r = build([
      { name: 'a', attachmentExtensionMatchesWords: ['.EXE', 'Docm'], exceptIfAttachmentSizeOver: '5MB', deleteMessage: true },
      { name: 'b', attachmentNameMatchesPatterns: ['^invoice'], setScl: 5 },
      { name: 'c', attachmentSizeOver: '1MB', setScl: 5, enabled: false },
      { name: 'd', subjectContainsWords: ['x'], setScl: 5 },
    ]);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const [a, b, c, d] = r.config.gateway.transportRules;
    assert.deepEqual(a!.conditions, { attachmentExtensionMatchesWords: ['exe', 'docm'] });
    assert.deepEqual(a!.exceptions, { attachmentSizeOver: 5 * 1024 * 1024 });
    assert.deepEqual([a, b, c, d].map((x) => [readsAttachments(x!), readsAttachmentSizes(x!)]), [[true, true], [true, false], [false, false], [false, false]]);
  });

  it('warns when a rule quarantines and there is no quarantine mailbox', () => {
    const r = build([{ name: 'Hold', subjectContainsWords: ['x'], quarantine: true }]);
    assert.ok(r.ok);
    assert.deepEqual(
      r.warnings.filter((w) => w.path.startsWith('transportRules')).map((w) => [w.path, w.message]),
      [['transportRules[0].quarantine', 'rule "Hold" quarantines, but there is no quarantine mailbox (quarantineMailbox): such mail is delivered to its recipients, stamped X-MS-Exchange-Organization-Quarantine']],
    );
    // The mailbox at the top level (no rspamd needed) or in its older place under rspamd: no warning.
    for (const where of [{ quarantineMailbox: 'quarantine@contoso.test' }, { rspamd: { quarantineMailbox: 'quarantine@contoso.test' } }]) {
      const w = build([{ name: 'Hold', subjectContainsWords: ['x'], quarantine: true }], where);
      assert.ok(w.ok);
      assert.deepEqual(w.warnings.filter((x) => x.path.startsWith('transportRules')), [], JSON.stringify(where));
    }
  });

  it('warns of a pattern that repeats a repeating group (exponential backtracking on text a sender makes)', () => {
    for (const p of ['(a+)+', '(\\w+\\s?)*$', '((ab)*c)+', '(x+){2,}', '(?:[a-z]+\\.)+example']) assert.equal(nestedRepetition(p), true, p);
    for (const p of ['a+b+', '(ab)+', '(a|b)+c*', '(\\d{1,3}\\.){3}\\d+', '[(a+)]+', '\\(a+\\)+', '^re:\\s*invoice \\d+$']) assert.equal(nestedRepetition(p), false, p);
    const r = build([{ name: 'a', subjectMatchesPatterns: ['ok', '(a+)+b'], exceptIfHeaderMatchesMessageHeader: 'X-A', exceptIfHeaderMatchesPatterns: ['(\\w+\\s?)*$'], deleteMessage: true }]);
    assert.ok(r.ok);
    assert.deepEqual(
      r.warnings.filter((w) => w.path.startsWith('transportRules')).map((w) => w.path),
      ['transportRules[0].subjectMatchesPatterns[1]', 'transportRules[0].exceptIfHeaderMatchesPatterns[0]'],
    );
    assert.match(r.warnings.find((w) => w.path === 'transportRules[0].subjectMatchesPatterns[1]')!.message, /"\(a\+\)\+b" repeats a group that itself repeats without bound/);
  });
});
