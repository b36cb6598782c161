// editEnvelope: the filters' envelope changes (a milter's ADDRCPT, DELRCPT, CHGFROM) applied in
// order; duplicates not added, deletions case-insensitive, a recipient's DSN parameters kept,
// every recipient deleted means nobody gets the message (250, as a discard).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EnvelopeEdit, EnvelopeRecipient, FilterOutcome } from '@mailgw/mail';
import { connect, contentVerdict, editEnvelope } from '../src/index.js';
import { policy } from './fixture.js';

const a = (text: string) => {
  const at = text.lastIndexOf('@');
  return { local: text.slice(0, at), domain: text.slice(at + 1) };
};
const show = (rs: readonly EnvelopeRecipient[]) => rs.map((r) => `${r.local}@${r.domain}${r.notify ? ` ${r.notify.join(',')}` : ''}`);

describe('editEnvelope', () => {
  const alice: EnvelopeRecipient = { ...a('alice@contoso.test'), notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;alice@contoso.test' };
  const bob: EnvelopeRecipient = a('bob@contoso.test');

  it('no edits: the envelope as it came, nothing to say', () => {
    const e = editEnvelope(a('sender@example.net'), [alice, bob], []);
    assert.deepEqual(e, { sender: a('sender@example.net'), recipients: [alice, bob], changes: [], noRecipients: null });
  });

  it('applies additions and deletions in order; an existing recipient keeps its DSN parameters', () => {
    const edits: EnvelopeEdit[] = [
      { op: 'add-recipient', recipient: a('ALICE@contoso.test') },
      { op: 'add-recipient', recipient: a('archive@contoso.test'), parameters: 'NOTIFY=NEVER' },
      { op: 'delete-recipient', recipient: a('BOB@contoso.test') },
      { op: 'delete-recipient', recipient: a('carol@contoso.test') },
      { op: 'add-recipient', recipient: a('bob@contoso.test') },
    ];
    const e = editEnvelope(null, [alice, bob], edits);
    assert.deepEqual(show(e.recipients), ['alice@contoso.test SUCCESS,FAILURE', 'archive@contoso.test', 'bob@contoso.test']);
    assert.equal(e.recipients[0], alice);
    assert.deepEqual(e.changes, [
      'recipient <ALICE@contoso.test> not added: already a recipient',
      'recipient <archive@contoso.test> added (parameters "NOTIFY=NEVER" ignored)',
      'recipient <BOB@contoso.test> deleted',
      'recipient <carol@contoso.test> not deleted: not a recipient',
      'recipient <bob@contoso.test> added',
    ]);
    assert.equal(e.noRecipients, null);
  });

  it('the last sender change wins; null is the null sender', () => {
    const e = editEnvelope(a('sender@example.net'), [bob], [
      { op: 'change-sender', sender: a('srs@contoso.test'), parameters: 'SIZE=10' },
      { op: 'change-sender', sender: null },
    ]);
    assert.equal(e.sender, null);
    assert.deepEqual(e.changes, ['sender changed to <srs@contoso.test> (parameters "SIZE=10" ignored)', 'sender changed to <>']);
  });

  it('every recipient deleted: an accept decision that drops the message, saying which changes did it', () => {
    const e = editEnvelope(a('sender@example.net'), [alice, bob], [{ op: 'delete-recipient', recipient: a('alice@contoso.test') }, { op: 'delete-recipient', recipient: a('bob@contoso.test') }]);
    assert.deepEqual(e.recipients, []);
    assert.equal(e.noRecipients?.verdict, 'accept');
    assert.equal(e.noRecipients?.reason.code, 'content-no-recipients');
    assert.match(e.noRecipients?.reason.message ?? '', /deleted every recipient \(recipient <alice@contoso\.test> deleted; recipient <bob@contoso\.test> deleted\)/);
  });
});

describe('contentVerdict carries the envelope changes', () => {
  const session = connect(policy({}, [{ name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] }]), { localAddress: '10.0.0.1', localPort: 25, clientIP: '198.51.100.7' }).session!;
  const outcome = (filter: string, verdict: 'accept' | 'reject' | 'discard' | 'quarantine', envelope: EnvelopeEdit[]): FilterOutcome => ({ filter, verdict, headers: [], envelope, reason: 'test' });
  const add = (x: string): EnvelopeEdit => ({ op: 'add-recipient', recipient: a(x) });

  it('in filter order when the message is accepted or quarantined', () => {
    assert.deepEqual(contentVerdict(session, [outcome('one', 'accept', [add('a@x.test')]), outcome('two', 'accept', [add('b@x.test')])]).envelope, [add('a@x.test'), add('b@x.test')]);
    assert.deepEqual(contentVerdict(session, [outcome('one', 'quarantine', [add('a@x.test')])]).envelope, [add('a@x.test')]);
  });
  it('none when the message is refused or discarded', () => {
    assert.deepEqual(contentVerdict(session, [outcome('one', 'accept', [add('a@x.test')]), outcome('two', 'reject', [])]).envelope, []);
    assert.deepEqual(contentVerdict(session, [outcome('one', 'accept', [add('a@x.test')]), outcome('two', 'discard', [])]).envelope, []);
  });
});
