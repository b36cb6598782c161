// Which anti-spam agent a decision belongs to, for the agent log: refusals by reason code,
// content filters by name, Exchange's action words, and which outcomes are worth a line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentLogWorthy, filterAction, filterAgent, refusalAgent, senderBlockRecord } from '../src/index.js';

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

describe('senderBlockRecord', () => {
  it("the Protocol Analysis agent's BlockSender line: the blocked address as IPAddress, the level and the block's end in ReasonData", () => {
    const r = senderBlockRecord({ range: '203.0.113.5', expiresAt: Date.UTC(2026, 11, 7, 8, 0, 0) }, { reason: 'SRL 9: spam +8, HELO forged +1' });
    assert.deepEqual([r.agent, r.event, r.action, r.ipAddress, r.reason, r.smtpResponse, r.directionality], ['Protocol Analysis Agent', 'OnEndOfData', 'BlockSender', '203.0.113.5', 'sender-reputation', '', 'Incoming']);
    assert.equal(r.reasonData, 'SRL 9: spam +8, HELO forged +1; on the IP Block List until 2026-12-07T08:00:00.000Z');
    assert.equal(senderBlockRecord({ range: '2001:db8::/64', expiresAt: null }, { reason: 'SRL 7' }).reasonData, 'SRL 7; on the IP Block List until removed');
  });
});
