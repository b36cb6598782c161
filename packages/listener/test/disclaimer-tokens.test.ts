// fillDisclaimers: one directory question per sender (its tokens' attributes together), the
// values filled into that sender's disclaimers only, and empty tokens with a reason when there
// is no directory, no such object, or no answer. The directory is an in-memory DirectoryLookup
// (the interface the listener is given); the real one over LDAP is test/directory/disclaimer-tokens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BodyDisclaimer } from '@mailgw/mail';
import type { DirectoryLookup, EntryAttributes } from '@mailgw/policy';
import { fillDisclaimers } from '../src/disclaimer-tokens.js';

const d = (rule: string, html: string, sender?: string): BodyDisclaimer => ({ rule, html, location: 'Append', fallback: 'Wrap', ...(sender ? { sender } : {}) });

function directory(entries: Record<string, EntryAttributes>): DirectoryLookup & { asked: Array<[string, readonly string[]]> } {
  const asked: Array<[string, readonly string[]]> = [];
  return {
    asked,
    logon: async () => ({ kind: 'invalid', why: 'not used' }),
    recipientEntry: async () => ({ answer: 'not-found', restrictions: null }),
    entryAttributes: async (address, attributes) => (asked.push([address, attributes]), entries[address] ?? { kind: 'not-found' }),
  };
}

describe('fillDisclaimers', () => {
  it("asks once per sender for all its tokens' attributes and fills only that sender's disclaimers", async () => {
    const dir = directory({ 'alice@contoso.test': { kind: 'found', dn: 'cn=Alice', attributes: { displayName: ['Alice Smith'], title: ['CFO'], company: ['Contoso'] } } });
    const list = [d('Sig', '%%DisplayName%%, %%Title%%', 'alice@contoso.test'), d('Co', '%%Company%%', 'alice@contoso.test'), d('Plain', 'Confidential.', 'alice@contoso.test'), d('Bounce', '%%DisplayName%%')];
    const r = await fillDisclaimers(list, dir, 'activeDirectory');
    // A disclaimer whose rule read no sender (a bounce without From:) gets its tokens empty, never as written.
    assert.deepEqual(r.disclaimers.map((x) => x.html), ['Alice Smith, CFO', 'Contoso', 'Confidential.', '']);
    assert.deepEqual(dir.asked, [['alice@contoso.test', ['displayName', 'title', 'company']]]);
    assert.deepEqual(r.notes, [{ sender: 'alice@contoso.test', source: 'directory', why: 'filled from cn=Alice' }]);
  });

  it('no tokens: the directory is not asked and the list is returned as it was', async () => {
    const dir = directory({});
    const list = [d('Plain', 'Confidential.', 'alice@contoso.test')];
    const r = await fillDisclaimers(list, dir, 'activeDirectory');
    assert.equal(r.disclaimers, list);
    assert.deepEqual(dir.asked, []);
  });

  it('no directory, no such object, no answer: tokens empty, each with its reason', async () => {
    const list = [d('Sig', '[%%DisplayName%%]', 'x@contoso.test')];
    const none = await fillDisclaimers(list, undefined, null);
    assert.equal(none.disclaimers[0]!.html, '[]');
    assert.deepEqual(none.notes.map((n) => n.source), ['no-directory']);
    const missing = await fillDisclaimers(list, directory({}), 'openLDAP');
    assert.equal(missing.disclaimers[0]!.html, '[]');
    assert.deepEqual(missing.notes.map((n) => n.source), ['not-found']);
    const down = await fillDisclaimers(list, directory({ 'x@contoso.test': { kind: 'unavailable', why: 'ECONNREFUSED' } }), 'openLDAP');
    assert.equal(down.disclaimers[0]!.html, '[]');
    assert.deepEqual(down.notes, [{ sender: 'x@contoso.test', source: 'unavailable', why: 'the directory did not answer (ECONNREFUSED): tokens left empty' }]);
  });
});
