// Which anti-spam agent a decision belongs to, for the agent log: refusals by reason code,
// content filters by name, Exchange's action words, and which outcomes are worth a line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentLogWorthy, filterAction, filterAgent, refusalAgent } from '../src/index.js';

describe('the agent of a decision', () => {
  it('refusals at MAIL and RCPT by the anti-spam agents; other refusals are no agent\'s', () => {
    assert.deepEqual(refusalAgent('ip-block-list-provider'), { agent: 'Connection Filtering Agent', event: 'OnRcptCommand' });
    assert.deepEqual(refusalAgent('blocked-ip'), { agent: 'Connection Filtering Agent', event: 'OnConnect' });
    assert.deepEqual(refusalAgent('sender-reputation-blocked'), { agent: 'Connection Filtering Agent', event: 'OnRcptCommand' });
    assert.deepEqual(refusalAgent('ip-block-list'), { agent: 'Connection Filtering Agent', event: 'OnRcptCommand' });
    assert.deepEqual(refusalAgent('sender-filtered'), { agent: 'Sender Filter Agent', event: 'OnMailCommand' });
    assert.deepEqual(refusalAgent('user-unknown'), { agent: 'Recipient Filter Agent', event: 'OnRcptCommand' });
    assert.deepEqual(refusalAgent('recipient-blocked'), { agent: 'Recipient Filter Agent', event: 'OnRcptCommand' });
    for (const code of ['relay-denied', 'not-authenticated', 'rate-limited', 'filter-rejected', 'toString', '__proto__']) assert.equal(refusalAgent(code), null, code);
  });
  it('content filters by name; a milter as itself', () => {
    assert.equal(filterAgent('sender-authentication'), 'Sender Id Agent');
    assert.equal(filterAgent('rspamd'), 'Content Filter Agent');
    assert.equal(filterAgent('transport-rules'), 'Edge Rule Agent');
    assert.equal(filterAgent('attachment-filter'), 'Attachment Filtering Agent');
    assert.equal(filterAgent('opendkim'), 'Milter opendkim');
  });
  it('Exchange\'s action words', () => {
    assert.deepEqual(['reject', 'tempfail', 'discard', 'quarantine', 'error', 'accept'].map((v) => filterAction(v as Parameters<typeof filterAction>[0])), ['RejectMessage', 'TempRejectMessage', 'DeleteMessage', 'QuarantineMessage', 'FilterFailed', 'AcceptMessage']);
  });
  it('what is worth a line: every refusal or failure, the content filter\'s scored accepts, matched rules', () => {
    assert.equal(agentLogWorthy({ filter: 'milter1', verdict: 'reject' }), true);
    assert.equal(agentLogWorthy({ filter: 'sender-authentication', verdict: 'error' }), true);
    assert.equal(agentLogWorthy({ filter: 'rspamd', verdict: 'accept', scl: 2 }), true);
    assert.equal(agentLogWorthy({ filter: 'rspamd', verdict: 'accept' }), false);
    assert.equal(agentLogWorthy({ filter: 'transport-rules', verdict: 'accept', rules: [{ rule: 'Tag', mode: 'Enforce' }] }), true);
    assert.equal(agentLogWorthy({ filter: 'transport-rules', verdict: 'accept', rules: [] }), false);
    assert.equal(agentLogWorthy({ filter: 'sender-authentication', verdict: 'accept' }), false);
  });
});
