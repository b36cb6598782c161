// trafficSummary: the page `mailgw track --summary` prints, from tracking events and agent log
// entries (pure): what is counted how, the period's edges, hours or days, the top lists' order,
// IDN addresses in U-labels, the agent log's refusals (and only those).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { trafficSummary, type AgentLogEntry, type TrackingRecord } from '../src/index.js';

const T = (iso: string) => `2026-03-02T${iso}Z`;
const ev = (dateTime: string, eventId: string, over: Partial<TrackingRecord> = {}): TrackingRecord => ({ dateTime: T(dateTime), eventId, internalMessageId: 'Q1', senderAddress: 'alice@contoso.test', recipientAddress: ['bob@fabrikam.test'], ...over });
const agent = (time: string, action: string, over: Partial<AgentLogEntry> = {}): AgentLogEntry =>
  ({ timestamp: T(time), sessionId: 's', ipAddress: '192.0.2.1', messageId: '', p1FromAddress: 'x@spam.test', p2FromAddresses: [], recipients: ['bob@contoso.test'], agent: 'Connection Filtering Agent', event: 'OnRcptCommand', action, smtpResponse: '550 5.7.1 Recipient not authorized, your IP has been found on a block list', reason: 'ip-block-list-provider', reasonData: 'zen.test', connector: 'Default', networkMsgId: '', directionality: 'Incoming', ...over }) as AgentLogEntry;

const since = new Date(T('00:00:00'));
const until = new Date(T('12:00:00'));

describe('trafficSummary', () => {
  const events: TrackingRecord[] = [
    ev('09:59:59', 'RECEIVE', { totalBytes: 999 }), // before the hour: still in the period (from 00:00)
    ev('10:00:00', 'RECEIVE', { internalMessageId: 'Q2', totalBytes: 2048, source: 'SMTP', directionality: 'Incoming', connectorId: 'Default', recipientAddress: ['bob@fabrikam.test', 'carol@contoso.test'] }),
    ev('10:00:01', 'RECEIVE', { internalMessageId: 'Q3', totalBytes: 100, source: 'PICKUP', directionality: 'Originating', connectorId: 'Pickup', senderAddress: 'root@contoso.test' }),
    ev('10:00:02', 'RECEIVE', { internalMessageId: 'Q4', totalBytes: 50, senderAddress: '', source: 'SMTP', directionality: 'Incoming', connectorId: 'Default' }),
    ev('10:00:03', 'RECEIVE', { internalMessageId: 'Q5', totalBytes: 10, senderAddress: 'jörg@xn--bcher-kva.test', directionality: 'Incoming', connectorId: 'Default' }),
    ev('10:01:00', 'SEND', { internalMessageId: 'Q2', recipientAddress: ['bob@fabrikam.test'] }),
    ev('10:01:00', 'DELIVER', { internalMessageId: 'Q2', recipientAddress: ['carol@contoso.test'] }),
    ev('10:01:01', 'DELIVER', { internalMessageId: 'Q3', recipientAddress: ['carol@contoso.test', 'dana@xn--bcher-kva.test'] }),
    ev('10:02:00', 'DEFER', { internalMessageId: 'Q4', recipientAddress: ['x@slow.test', 'y@slow.test'], recipientStatus: ['451 4.4.1 Could not connect', '451 4.4.1 Could not connect'] }),
    ev('11:02:00', 'DEFER', { internalMessageId: 'Q4', recipientAddress: ['x@slow.test'], recipientStatus: ['451  4.4.1 Could not\r\n connect'] }),
    ev('11:03:00', 'FAIL', { internalMessageId: 'Q5', recipientAddress: ['z@nowhere.test'], recipientStatus: ['550 5.1.1 User unknown'] }),
    ev('11:03:01', 'DSN', { internalMessageId: 'Q5', sourceContext: 'failed' }),
    ev('11:04:00', 'POISONMESSAGE', { internalMessageId: 'Q6' }),
    ev('11:05:00', 'SUBMIT', { internalMessageId: 'Q2' }), // not counted
    { ...ev('12:00:00', 'RECEIVE', { internalMessageId: 'Q7' }) }, // at `until`: out
    { ...ev('00:00:00', 'RECEIVE', { internalMessageId: 'Q8' }), dateTime: '2026-03-01T23:59:59Z' }, // before `since`: out
  ];
  const agentLog = [
    agent('10:30:00', 'RejectCommand'),
    agent('10:31:00', 'RejectCommand'),
    agent('10:32:00', 'TempRejectMessage', { agent: 'Content Filter Agent', reason: 'rspamd-soft-reject', smtpResponse: '451 4.7.1 Try again' }),
    agent('10:33:00', 'AcceptMessage', { agent: 'Content Filter Agent', reason: 'scl-1' }), // not a refusal
    agent('13:00:00', 'RejectCommand'), // after the period
  ];
  const s = trafficSummary(events, agentLog, { since, until, top: 10 });

  it('counts received messages and bytes by source, direction and connector; delivered, deferred and failed recipients; DSNs and poison', () => {
    assert.deepEqual(s.received, {
      messages: 5,
      bytes: 999 + 2048 + 100 + 50 + 10,
      senders: 4,
      bySource: { SMTP: 4, PICKUP: 1 }, // a RECEIVE without a source is an SMTP one
      byDirection: { Incoming: 3, Originating: 1 },
      byConnector: { Default: 3, Pickup: 1 },
    });
    assert.deepEqual(s.delivered, { recipients: 4, messages: 2 });
    assert.deepEqual(s.deferred, { attempts: 3, recipients: 2 });
    assert.deepEqual(s.failed, { recipients: 1 });
    assert.deepEqual(s.dsns, { failed: 1 });
    assert.equal(s.poison, 1);
    assert.deepEqual(s.rejected, { total: 3, byAgent: { 'Connection Filtering Agent': 2, 'Content Filter Agent': 1 } });
  });

  it('per hour for a day or less, empty hours included; the events fall in their hour', () => {
    assert.equal(s.step, 'hour');
    assert.equal(s.buckets.length, 12);
    assert.deepEqual(s.buckets[9], { at: T('09:00:00.000'), received: 1, delivered: 0, deferred: 0, failed: 0, rejected: 0 });
    assert.deepEqual(s.buckets[10], { at: T('10:00:00.000'), received: 4, delivered: 4, deferred: 2, failed: 0, rejected: 3 });
    assert.deepEqual(s.buckets[11], { at: T('11:00:00.000'), received: 0, delivered: 0, deferred: 1, failed: 1, rejected: 0 });
    const week = trafficSummary(events, null, { since: new Date('2026-02-24T12:00:00Z'), until, top: 3 });
    assert.equal(week.step, 'day');
    assert.equal(week.buckets.length, 7);
    assert.deepEqual(week.buckets.at(-1), { at: '2026-03-02T00:00:00.000Z', received: 5, delivered: 4, deferred: 3, failed: 1, rejected: 0 });
    assert.equal(week.rejected, null, 'no agent log given');
  });

  it('top lists: by count, then by name; bytes for senders; U-labels; the null sender as <>; reasons with their whitespace folded', () => {
    assert.deepEqual(s.top.senders, [
      { key: 'alice@contoso.test', count: 2, bytes: 999 + 2048 },
      { key: '<>', count: 1, bytes: 50 },
      { key: 'jörg@bücher.test', count: 1, bytes: 10 },
      { key: 'root@contoso.test', count: 1, bytes: 100 },
    ]);
    assert.deepEqual(s.top.senderDomains.map((r) => [r.key, r.count]), [['contoso.test', 3], ['<>', 1], ['bücher.test', 1]]);
    assert.deepEqual(s.top.recipients, [{ key: 'carol@contoso.test', count: 2 }, { key: 'bob@fabrikam.test', count: 1 }, { key: 'dana@bücher.test', count: 1 }]);
    assert.deepEqual(s.top.recipientDomains, [{ key: 'contoso.test', count: 2 }, { key: 'bücher.test', count: 1 }, { key: 'fabrikam.test', count: 1 }]);
    assert.deepEqual(s.top.deferrals, [{ key: '451 4.4.1 Could not connect', count: 3 }]);
    assert.deepEqual(s.top.failures, [{ key: '550 5.1.1 User unknown', count: 1 }]);
    assert.deepEqual(s.top.rejections.map((r) => r.count), [2, 1]);
    assert.match(s.top.rejections[0]!.key, /^Connection Filtering Agent: ip-block-list-provider \(550 5\.7\.1 /);
    assert.equal(trafficSummary(events, agentLog, { since, until, top: 1 }).top.senders.length, 1);
  });
});
