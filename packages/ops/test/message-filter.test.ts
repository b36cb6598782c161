// The pure part of message-level queue work: a message's status, the filters, its row, the
// cheap envelope reader against the validated one, and when a bulk action needs confirming.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { localReply } from '@mailgw/mail';
import { DELIVERY_JOB_VERSION, initialState, readEnvelope, readMessageRecord } from '@mailgw/queue';
import {
  CONFIRM_ABOVE,
  addressMatcher,
  compileFilter,
  confirmation,
  isEmptyFilter,
  messageFacts,
  messageRow,
  messageStatus,
  parseStatus,
  type MessageFacts,
} from '../src/message-filter.js';

const NOW = Date.parse('2026-12-02T12:00:00Z');

function data(over: Record<string, unknown> = {}) {
  return {
    v: DELIVERY_JOB_VERSION,
    queueId: 'Q1',
    messageId: '<m@x>',
    receivedAt: '2026-12-02T10:00:00Z',
    connector: 'Default',
    clientIP: '127.0.0.1',
    clientHostname: 'c',
    helo: 'c',
    tls: null,
    authUser: null,
    mailFrom: { sender: { local: 'Phished', domain: 'Contoso.test' } },
    rcptTo: [{ local: 'a', domain: 'fabrikam.test' }, { local: 'b', domain: 'northwind.test' }, { local: 'c', domain: 'northwind.test' }],
    bodyKey: 'k',
    size: 2048,
    ...over,
  };
}

const facts = (over: Partial<MessageFacts> = {}): MessageFacts => ({
  status: 'Ready',
  sender: 'phished@contoso.test',
  recipients: ['a@fabrikam.test', 'b@northwind.test'],
  hops: ['smtp://10.0.0.5:25'],
  receivedAt: NOW - 2 * 3600_000,
  subject: 'Invoice 42 overdue',
  ...over,
});

describe('messageStatus', () => {
  it('maps BullMQ states and the suspended set to Exchange message statuses', () => {
    assert.equal(messageStatus('failed', 0, false), 'Poison');
    assert.equal(messageStatus('failed', 0, true), 'Poison', 'poison wins over suspended');
    assert.equal(messageStatus('active', 3, true), 'Active', 'a delivery running now is Active, suspended or not');
    assert.equal(messageStatus('waiting', 0, true), 'Suspended');
    assert.equal(messageStatus('delayed', 2, true), 'Suspended');
    assert.equal(messageStatus('delayed', 2, false), 'Retry');
    assert.equal(messageStatus('delayed', 0, false), 'Ready', 'held (busy destination) before any deferral');
    assert.equal(messageStatus('waiting', 0, false), 'Ready');
    assert.equal(messageStatus('prioritized', 0, false), 'Ready');
    assert.equal(messageStatus('completed', 0, false), null);
  });

  it('parses --status in any case and names the choices otherwise', () => {
    assert.deepEqual(parseStatus('poison'), { ok: true, status: 'Poison' });
    assert.deepEqual(parseStatus(undefined), { ok: true, status: undefined });
    const bad = parseStatus('Deferred');
    assert.equal(bad.ok, false);
    assert.match((bad as { error: string }).error, /Active, Ready, Retry, Suspended, Poison/);
  });
});

describe('filters', () => {
  it('addresses: exact and case-insensitive, * as a wildcard, angle brackets allowed', () => {
    assert.ok(addressMatcher('Phished@contoso.test')('phished@CONTOSO.test'));
    assert.ok(!addressMatcher('phished@contoso.test')('xphished@contoso.test'));
    assert.ok(addressMatcher('*@contoso.test')('anyone@contoso.test'));
    assert.ok(!addressMatcher('*@contoso.test')('anyone@contoso.test.evil'));
    assert.ok(addressMatcher('<a.b+c@x.test>')('a.b+c@x.test'), 'regex characters are literal');
    assert.ok(!addressMatcher('a.b@x.test')('aXb@x.test'));
  });

  it('every given criterion must hold', () => {
    const f = (x: Parameters<typeof compileFilter>[0]) => compileFilter(x, NOW);
    assert.ok(f({})(facts()));
    assert.ok(f({ sender: 'phished@contoso.test' })(facts()));
    assert.ok(!f({ sender: 'other@contoso.test' })(facts()));
    assert.ok(f({ recipient: '*@northwind.test' })(facts()), 'any recipient');
    assert.ok(!f({ recipient: 'z@northwind.test' })(facts()));
    assert.ok(f({ hop: 'smtp://10.0.0.5:25' })(facts()));
    assert.ok(!f({ hop: 'mx:fabrikam.test' })(facts()));
    assert.ok(f({ status: 'Ready' })(facts()));
    assert.ok(!f({ status: 'Retry' })(facts()));
    assert.ok(f({ olderThanMs: 3600_000 })(facts()), 'two hours old is older than 1h');
    assert.ok(!f({ olderThanMs: 3 * 3600_000 })(facts()));
    assert.ok(!f({ olderThanMs: 1 })(facts({ receivedAt: null })), 'an unknown age is not older');
    assert.ok(f({ subject: 'INVOICE' })(facts()), 'subject: contained, any case');
    assert.ok(!f({ subject: 'invoice' })(facts({ subject: null })));
    assert.ok(!f({ sender: '*' })(facts({ sender: null })), 'an unreadable job has no sender to match');
    assert.ok(f({ sender: '<>' })(facts({ sender: '' })), '<> is the null sender');
    assert.ok(!f({ sender: '<>' })(facts()));
    assert.ok(!f({ sender: 'phished@contoso.test', subject: 'report' })(facts()));
  });

  it('an empty filter is "every message"', () => {
    assert.ok(isEmptyFilter({}));
    assert.ok(!isEmptyFilter({ status: 'Poison' }));
  });
});

describe('records', () => {
  it('the cheap envelope reader agrees with the validated record', () => {
    const raw = { id: 'Q1', data: data(), progress: { ...initialState(readMessageRecord({ id: 'Q1', data: data() }, 'waiting').job!), deferrals: 2 } };
    const env = readEnvelope(raw)!;
    const rec = readMessageRecord(raw, 'delayed');
    assert.equal(env.sender, rec.job!.mailFrom.address);
    assert.deepEqual(env.recipients, rec.job!.rcptTo.map((r) => r.address));
    assert.equal(env.receivedAt, Date.parse(rec.job!.receivedAt));
    assert.equal(env.size, 2048);
    assert.equal(env.deferrals, 2);
    assert.equal(readEnvelope({ id: 'Q', data: data({ mailFrom: { sender: null } }) })!.sender, '', 'the null sender');
    assert.equal(readEnvelope({ id: 'Q', data: { v: 1 } }), null, 'another shape: read the full record instead');
    assert.equal(readEnvelope({ id: 'Q', data: 'not json' }), null);
  });

  it('a row: first recipients, size, age, and the last error of a pending recipient (or why it is poison)', () => {
    const job = readMessageRecord({ id: 'Q1', data: data() }, 'waiting').job!;
    const state = initialState(job);
    state.recipients[0]!.status = 'delivered';
    state.recipients[0]!.reply = localReply(250, '2.0.0', 'OK');
    state.recipients[0]!.lastAttemptAt = NOW - 60_000;
    state.recipients[1]!.reply = localReply(451, '4.2.0', 'Try again later');
    state.recipients[1]!.lastAttemptAt = NOW - 120_000;
    state.deferrals = 1;
    const rec = readMessageRecord({ id: 'Q1', data: data(), progress: state }, 'delayed');
    const row = messageRow(rec, messageFacts(rec, 'Retry', ['h'], null));
    assert.equal(row.from, 'Phished@Contoso.test');
    assert.equal(row.recipients.length, 3);
    assert.equal(row.size, 2048);
    assert.equal(row.status, 'Retry');
    assert.match(row.lastError!, /^451 4\.2\.0 Try again later/, 'a delivered recipient\'s 250 is no error');

    const poison = readMessageRecord({ id: 'Q2', data: data({ queueId: 'Q2' }), progress: { v: 9 }, failedReason: 'delivery state of Q2 cannot be read' }, 'failed');
    assert.equal(messageRow(poison, messageFacts(poison, 'Poison', [], null)).lastError, 'delivery state of Q2 cannot be read');
  });
});

describe('confirmation', () => {
  it('--yes always goes; an interactive terminal is asked above the threshold; a pipe is refused without --yes', () => {
    assert.equal(confirmation(CONFIRM_ABOVE + 1, { yes: true, interactive: false }), 'go');
    assert.equal(confirmation(CONFIRM_ABOVE + 1, { yes: false, interactive: true }), 'ask');
    assert.equal(confirmation(CONFIRM_ABOVE, { yes: false, interactive: true }), 'go');
    assert.equal(confirmation(1, { yes: false, interactive: false }), 'refuse');
    assert.equal(confirmation(0, { yes: false, interactive: false }), 'go', 'nothing matched: nothing to confirm');
  });
});

describe('IDN addresses in queue filters', () => {
  it('--sender/--recipient match a U-label or an A-label alike', () => {
    for (const pattern of ['dana@bücher.test', 'dana@xn--bcher-kva.test', '*@BÜCHER.test']) assert.ok(addressMatcher(pattern)('dana@xn--bcher-kva.test'), pattern);
    assert.ok(!addressMatcher('dana@bücher.test')('dana@bucher.test'));
  });
});
