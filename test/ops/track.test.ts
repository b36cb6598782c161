// `mailgw track` over a tracking log directory: the events the workers and the listener wrote
// (through the real TrackingLog writer, on two UTC days), searched by Message-ID, sender,
// recipient and queue id, with --since as a duration or a date.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AgentLog, agentLogDir } from '@mailgw/ops';
import { openTrackingLog, trackingDir, type TrackingEvent } from '@mailgw/queue';
import { runTrack, type TrackOptions } from '../../packages/cli/src/commands/track.js';
import { captureIO } from './helpers/cli-io.js';
import { freePort } from '../listener/helpers/gateway.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from './helpers/config-dir.js';

let cfg: ConfigDir;
const NOW = Date.parse('2026-03-02T12:00:00Z');

const ev = (e: Partial<TrackingEvent> & Pick<TrackingEvent, 'eventId' | 'internalMessageId'>): TrackingEvent => ({
  source: 'SMTP',
  messageId: '<m1@client.test>',
  senderAddress: 'alice@contoso.test',
  recipientAddress: ['bob@fabrikam.test'],
  ...e,
});

before(async () => {
  cfg = makeConfigDir('mailgw-track-');
  cfg.writeGateway(`dataDir: ./var\n${ACCEPTED}\n`);
  cfg.writeConnector('default.yaml', 'name: Default\nbindings: ["127.0.0.1:2525"]\n');
  const dir = trackingDir(`${cfg.dir}/var`);
  // Written at fixed times through the real writer: one event the day before, the rest today.
  let clock = Date.parse('2026-03-01T23:00:00Z');
  const log = openTrackingLog(dir, { now: () => new Date(clock) });
  log.write(ev({ eventId: 'RECEIVE', internalMessageId: 'Q0', messageId: '<old@client.test>' }));
  clock = Date.parse('2026-03-02T10:00:00Z');
  log.write(ev({ eventId: 'RECEIVE', internalMessageId: 'Q1', recipientAddress: ['bob@fabrikam.test', 'carol@contoso.test'] }));
  clock = Date.parse('2026-03-02T10:00:01Z');
  log.write(ev({ eventId: 'DELIVER', source: 'STOREDRIVER', internalMessageId: 'Q1', recipientAddress: ['carol@contoso.test'], recipientStatus: ['250 2.0.0 Delivered to mailbox'] }));
  log.write(ev({ eventId: 'FAIL', source: 'QUEUE', internalMessageId: 'Q1', recipientStatus: ['550 5.1.1 User unknown'] }));
  log.write(ev({ eventId: 'DSN', source: 'DSN', internalMessageId: 'Q1', reference: 'Q2' }));
  clock = Date.parse('2026-03-02T10:00:02Z');
  log.write(ev({ eventId: 'DELIVER', source: 'STOREDRIVER', internalMessageId: 'Q2', messageId: '<Q2@mail.contoso.test>', senderAddress: '', recipientAddress: ['alice@contoso.test'] }));
  // IDN domains: the log holds A-labels (as the job does); one of them is not valid punycode.
  log.write(ev({ eventId: 'RECEIVE', internalMessageId: 'Q3', messageId: '<idn@client.test>', senderAddress: 'jörg@xn--bcher-kva.test', recipientAddress: ['dana@xn--bcher-kva.test', 'eve@xn--zz.test'] }));
  await log.close();
  // The agent log beside it, written by the real writer: one refusal at RCPT for --summary.
  const agents = new AgentLog(agentLogDir(`${cfg.dir}/var`));
  agents.write({ sessionId: 's1', ipAddress: '192.0.2.7', messageId: '', p1FromAddress: 'x@spam.test', p2FromAddresses: [], recipients: ['bob@contoso.test'], agent: 'Connection Filtering Agent', event: 'OnRcptCommand', action: 'RejectCommand', smtpResponse: '550 5.7.1 Recipient not authorized, your IP has been found on a block list', reason: 'ip-block-list-provider', reasonData: 'zen.test', connector: 'Default', networkMsgId: '', directionality: 'Incoming' }, new Date('2026-03-02T11:30:00Z'));
  await agents.close();
});

after(() => cfg?.remove());

async function track(opts: Partial<TrackOptions>) {
  const io = captureIO();
  const code = await runTrack({ config: cfg.gatewayFile, ...opts }, { stdout: io.stdout, stderr: io.stderr, now: () => NOW });
  return { code, out: io.out(), err: io.err() };
}

const events = (out: string) => out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('mailgw track', () => {
  it('--message-id finds every event of the message, with or without angle brackets', async () => {
    for (const id of ['<m1@client.test>', 'M1@client.test']) {
      const r = await track({ 'message-id': id, json: true });
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(events(r.out).map((e) => e.eventId), ['RECEIVE', 'DELIVER', 'FAIL', 'DSN']);
    }
  });

  it('--recipient matches any listed recipient; --sender the envelope sender', async () => {
    const carol = await track({ recipient: 'Carol@Contoso.test', json: true });
    assert.deepEqual(events(carol.out).map((e) => [e.eventId, e.internalMessageId]), [['RECEIVE', 'Q1'], ['DELIVER', 'Q1']]);
    const alice = await track({ recipient: 'alice@contoso.test', json: true });
    assert.deepEqual(events(alice.out).map((e) => e.internalMessageId), ['Q2']);
    const sender = await track({ sender: 'alice@contoso.test', json: true });
    assert.equal(events(sender.out).length, 5, 'Q0 and Q1 events');
  });

  it('--queue-id includes the DSN event that references it; --since limits by time (duration or date)', async () => {
    const q2 = await track({ 'queue-id': 'Q2', json: true });
    assert.deepEqual(events(q2.out).map((e) => [e.eventId, e.internalMessageId]), [['DSN', 'Q1'], ['DELIVER', 'Q2']]);
    const recent = await track({ sender: 'alice@contoso.test', since: '1h', json: true });
    assert.equal(recent.out, '', 'nothing in the last hour before NOW');
    const today = await track({ sender: 'alice@contoso.test', since: '2026-03-02', json: true });
    assert.deepEqual(events(today.out).map((e) => e.internalMessageId), ['Q1', 'Q1', 'Q1', 'Q1']);
    const threeHours = await track({ sender: 'alice@contoso.test', since: '3h', json: true });
    assert.equal(events(threeHours.out).length, 4);
  });

  it('prints one line per event, and says when nothing matched', async () => {
    const r = await track({ recipient: 'carol@contoso.test' });
    const lines = r.out.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /^2026-03-02T10:00:01\.000Z {2}DELIVER {2}STOREDRIVER {2}Q1 {2}<m1@client\.test> {2}<alice@contoso\.test> {2}-> carol@contoso\.test {2}\[250 2\.0\.0 Delivered to mailbox\]$/);
    const none = await track({ recipient: 'nobody@contoso.test' });
    assert.match(none.out, /^no matching events in .*logs\/tracking\n$/);
  });

  it('IDN addresses: shown in U-labels, found by U-label or A-label; --json keeps what the log holds; bad punycode shown as is', async () => {
    for (const recipient of ['dana@bücher.test', 'dana@xn--bcher-kva.test', 'DANA@BÜCHER.TEST']) {
      const r = await track({ recipient });
      assert.equal(r.code, 0, r.err);
      assert.match(r.out.trim(), /^2026-03-02T10:00:02\.000Z {2}RECEIVE {2}SMTP {9}Q3 {2}<idn@client\.test> {2}<jörg@bücher\.test> {2}-> dana@bücher\.test,eve@xn--zz\.test$/, `${recipient}: ${r.out}`);
    }
    const bySender = await track({ sender: 'jörg@bücher.test', json: true });
    assert.deepEqual(events(bySender.out).map((e) => [e.internalMessageId, e.senderAddress, e.recipientAddress]), [['Q3', 'jörg@xn--bcher-kva.test', ['dana@xn--bcher-kva.test', 'eve@xn--zz.test']]]);
  });

  it('--summary: the traffic of the last day (pflogsumm\'s page), from the tracking and agent logs; --json the same figures', async () => {
    const r = await track({ summary: true });
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.equal(lines[0], "Mail traffic from 2026-03-01 12:00Z to 2026-03-02 12:00Z (tracking and agent logs: this machine's files)");
    assert.match(r.out, /\n {2}received +3 messages {2}0 B from 2 senders; SMTP 3\n/);
    assert.match(r.out, /\n {2}delivered +2 recipients {2}of 2 messages\n/);
    assert.match(r.out, /\n {2}failed +1 recipient {2}DSNs queued: dsn 1\n/);
    assert.match(r.out, /\n {2}rejected +1 at SMTP {2}Connection Filtering Agent 1\n/);
    assert.match(r.out, /\n {2}2026-03-01 23:00 {9}1 {9}0 {9}0 {9}0 {9}0\n {2}2026-03-02 10:00 {9}2 {9}2 {9}0 {9}1 {9}0\n {2}2026-03-02 11:00 {9}0 {9}0 {9}0 {9}0 {9}1\n/);
    assert.match(r.out, /\nTop senders \(messages received, bytes\)\n {2}2 {8}0 B {2}alice@contoso\.test\n {2}1 {8}0 B {2}jörg@bücher\.test\n/);
    assert.match(r.out, /\nTop failure reasons \(recipients\)\n {2}1 {2}550 5\.1\.1 User unknown\n/);
    assert.match(r.out, /\nTop rejections \(agent log\)\n {2}1 {2}Connection Filtering Agent: ip-block-list-provider \(550 5\.7\.1 /);
    const j = JSON.parse((await track({ summary: true, json: true, since: '2026-03-02', top: '1' })).out) as { received: { messages: number }; top: { senders: unknown[] }; step: string };
    assert.equal(j.received.messages, 2, 'since midnight: Q0 of the day before is out');
    assert.equal(j.top.senders.length, 1);
    assert.equal(j.step, 'hour');
  });

  it('--summary with the queue\'s Redis away: it says so and sums up this machine\'s files', async () => {
    const io = captureIO();
    const code = await runTrack({ config: cfg.gatewayFile, summary: true }, { stdout: io.stdout, stderr: io.stderr, now: () => NOW, env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}` } });
    assert.equal(code, 0, io.err());
    assert.match(io.err(), /^mailgw track: Redis \(redis:\/\/127\.0\.0\.1:\d+\) did not answer \(.*\): summing up this machine's files only\n$/);
    assert.match(io.out(), /^Mail traffic from .* \(tracking and agent logs: this machine's files\)\n\n {2}received +3 messages/);
  });

  it('--summary refuses the search filters and a bad --top; --top without --summary is refused too', async () => {
    const withFilter = await track({ summary: true, sender: 'alice@contoso.test' });
    assert.equal(withFilter.code, 2);
    assert.match(withFilter.err, /--summary covers all the traffic of the period/);
    assert.match((await track({ summary: true, top: '0' })).err, /--top "0" is not a number from 1 to 9999/);
    assert.match((await track({ sender: 'a@b', top: '5' })).err, /--top goes with --summary/);
  });

  it('refuses a search without a filter and a bad --since (exit 2)', async () => {
    assert.equal((await track({})).code, 2);
    const bad = await track({ sender: 'a@b', since: 'yesterday-ish' });
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--since "yesterday-ish" is neither a duration/);
  });
});
