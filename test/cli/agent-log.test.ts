// mailgw agent-log against agent log files written by the writer mailgw start uses: lines in
// order with every field read back (commas, quotes and line breaks in a reason survive the CSV),
// the filters (--agent, --action, --ip with a range, --sender, --recipient, --reason, --since),
// --top reports, --limit, --json, days before --since not read, and bad input as usage errors.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { AgentLog, agentLogDir, parseCsvLine } from '@mailgw/ops';
import { agentLogStreamKey, csvField, openTrackingStream } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import type { AgentLogRecord } from '@mailgw/policy';
import { runAgentLog, type AgentLogOptions } from '../../packages/cli/src/commands/agent-log.js';
import { captureIO } from '../ops/helpers/cli-io.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';

let cfg: ConfigDir;
const NOW = Date.parse('2026-12-06T12:00:00Z');

const rec = (o: Partial<AgentLogRecord>): AgentLogRecord => ({
  sessionId: 'S1',
  ipAddress: '203.0.113.5',
  messageId: '',
  p1FromAddress: 'spam@example.net',
  p2FromAddresses: [],
  recipients: ['alice@contoso.test'],
  agent: 'Connection Filtering Agent',
  event: 'OnRcptCommand',
  action: 'RejectCommand',
  smtpResponse: '550 5.7.1 Recipient not authorized, your IP has been found on a block list',
  reason: 'ip-block-list-provider',
  reasonData: 'block list provider "ZEN" lists 203.0.113.5',
  connector: 'Default',
  networkMsgId: '',
  directionality: 'Incoming',
  ...o,
});

async function run(opts: Partial<AgentLogOptions> = {}, env: NodeJS.ProcessEnv = {}) {
  const io = captureIO();
  const code = await runAgentLog({ config: cfg.gatewayFile, ...opts }, { stdout: io.stdout, stderr: io.stderr, env, now: () => NOW });
  return { code, out: io.out(), err: io.err() };
}

before(async () => {
  cfg = makeConfigDir('mailgw-agentlog-cli-');
  cfg.writeGateway(['fqdn: mail.contoso.test', 'dataDir: ./var', ACCEPTED, ''].join('\n'));
  cfg.writeConnector('default.yaml', 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
  const dir = agentLogDir(path.join(cfg.dir, 'var'));
  const log = new AgentLog(dir);
  const at = (iso: string) => new Date(iso);
  // Yesterday's file: outside --since 1d from NOW except its last hour.
  log.write(rec({ ipAddress: '198.51.100.9' }), at('2026-12-05T08:00:00Z'));
  log.write(rec({ ipAddress: '198.51.100.9' }), at('2026-12-05T13:00:00Z'));
  log.write(rec({}), at('2026-12-06T09:00:00Z'));
  log.write(rec({ ipAddress: '203.0.113.6', recipients: ['bob@contoso.test'] }), at('2026-12-06T09:01:00Z'));
  log.write(rec({ agent: 'Sender Filter Agent', event: 'OnMailCommand', action: 'RejectCommand', reason: 'sender-filtered', recipients: [], smtpResponse: '554 5.1.0 Sender denied', reasonData: 'spam@example.net is in senderFilterConfig.blockedSenders; action Reject' }), at('2026-12-06T09:02:00Z'));
  log.write(rec({ agent: 'Content Filter Agent', event: 'OnEndOfData', action: 'RejectMessage', reason: 'scl-9', p2FromAddresses: ['ceo@contoso.test', 'büro@example.net'], recipients: ['alice@contoso.test', 'carol@contoso.test'], smtpResponse: '550 5.7.1 Message rejected as spam by Content Filtering.', reasonData: 'rspamd: reject, score 16.00/15.00, SCL 9 [BAYES_SPAM, "quoted", line\nbreak]', networkMsgId: '01JQUEUEID', messageId: '<m1@example.net>' }), at('2026-12-06T09:03:00Z'));
  log.write(rec({ ipAddress: '2001:db8:1:2::/64', agent: 'Protocol Analysis Agent', event: 'OnEndOfData', action: 'BlockSender', reason: 'sender-reputation', p1FromAddress: '', recipients: [], smtpResponse: '', reasonData: 'SRL 8' }), at('2026-12-06T09:04:00Z'));
  await log.close();
  // A line that is not ours (a stray edit) is skipped, not fatal.
  writeFileSync(path.join(dir, 'AGENTLOG20261206.LOG'), 'not,a,line\n', { flag: 'a' });
  mkdirSync(path.join(dir, 'old'), { recursive: true });
});

after(() => cfg?.remove());

describe('mailgw agent-log', () => {
  it('lists the entries since a day ago, oldest first, each with its reply and reason', async () => {
    const r = await run();
    assert.equal(r.code, 0, r.err);
    const firsts = r.out.split('\n').filter((l) => /^\d/.test(l));
    assert.equal(firsts.length, 6, r.out);
    assert.equal(firsts[0], '2026-12-05T13:00:00.000Z  198.51.100.9  Connection Filtering Agent  RejectCommand  ip-block-list-provider  <spam@example.net> -> alice@contoso.test  [550 5.7.1 Recipient not authorized, your IP has been found on a block list]');
    assert.match(r.out, / {4}block list provider "ZEN" lists 203\.0\.113\.5\n/);
  });

  it('every field survives the CSV: commas, quotes and a line break in a reason, several recipients', async () => {
    const [e] = JSON.parse((await run({ reason: 'scl-9', json: true })).out) as Array<Record<string, unknown>>;
    assert.deepEqual(e, {
      timestamp: '2026-12-06T09:03:00.000Z',
      sessionId: 'S1',
      ipAddress: '203.0.113.5',
      messageId: '<m1@example.net>',
      p1FromAddress: 'spam@example.net',
      p2FromAddresses: ['ceo@contoso.test', 'büro@example.net'],
      recipients: ['alice@contoso.test', 'carol@contoso.test'],
      agent: 'Content Filter Agent',
      event: 'OnEndOfData',
      action: 'RejectMessage',
      smtpResponse: '550 5.7.1 Message rejected as spam by Content Filtering.',
      reason: 'scl-9',
      reasonData: 'rspamd: reject, score 16.00/15.00, SCL 9 [BAYES_SPAM, "quoted", line\nbreak]',
      connector: 'Default',
      networkMsgId: '01JQUEUEID',
      directionality: 'Incoming',
    });
  });

  it('filters: agent (part of the name), action, a range of clients, sender, recipient, since', async () => {
    const count = async (o: Partial<AgentLogOptions>) => (JSON.parse((await run({ ...o, json: true })).out) as unknown[]).length;
    assert.equal(await count({ agent: 'sender filter' }), 1);
    assert.equal(await count({ action: 'blocksender' }), 1);
    assert.equal(await count({ ip: '203.0.113.0/24' }), 4);
    assert.equal(await count({ ip: '2001:db8:1:2::/64' }), 1, 'a /64 block is inside the range asked');
    assert.equal(await count({ recipient: 'BOB@contoso.test' }), 1);
    assert.equal(await count({ sender: 'spam@example.net' }), 5);
    assert.equal(await count({ since: '2026-12-05T00:00Z' }), 7);
    assert.equal(await count({ since: '2h' }), 0);
    assert.equal((await run({ since: '2h' })).out, 'No agent log entries since 2026-12-06T10:00:00.000Z.\n');
  });

  it('--top counts as the Exchange anti-spam scripts do; --limit bounds both', async () => {
    assert.equal((await run({ top: 'ips' })).out, '3  203.0.113.5\n1  198.51.100.9\n1  2001:db8:1:2::/64\n1  203.0.113.6\n');
    assert.equal((await run({ top: 'recipients', limit: '1' })).out, '3  alice@contoso.test\n');
    assert.match((await run({ top: 'reasons' })).out, /^3  Connection Filtering Agent: ip-block-list-provider\n/);
    assert.deepEqual(JSON.parse((await run({ top: 'agents', json: true, limit: '2' })).out), [{ key: 'Connection Filtering Agent RejectCommand', count: 3 }, { key: 'Content Filter Agent RejectMessage', count: 1 }]);
    const latest = (await run({ limit: '1', json: true })).out;
    assert.equal((JSON.parse(latest) as Array<{ agent: string }>)[0]!.agent, 'Protocol Analysis Agent', 'the latest line');
  });

  it('bad input is a usage error naming what is wrong', async () => {
    for (const [o, why] of [
      [{ since: 'yesterday-ish' }, /--since "yesterday-ish" is neither a duration/],
      [{ ip: 'mx.example.net' }, /--ip "mx\.example\.net" is not an address or range/],
      [{ top: 'domains' }, /--top "domains" is not one of ips, senders, recipients, reasons, agents/],
      [{ limit: '0' }, /--limit "0" is not a positive whole number/],
    ] as Array<[Partial<AgentLogOptions>, RegExp]>) {
      const r = await run(o);
      assert.equal(r.code, 2);
      assert.match(r.err, why);
    }
  });

  it('every machine\'s lines from the streams in Redis, each line once; --local: this machine\'s files only', async () => {
    const redis: TestRedis = await startRedis();
    const conn = new Redis(redis.url);
    try {
      const settings = () => ({ maxLength: 1000, maxAgeMs: 86_400_000 });
      // This machine writes to its files and the stream; another machine (its own dataDir) to the stream.
      const here = new AgentLog(agentLogDir(path.join(cfg.dir, 'var')), undefined, openTrackingStream({ redis: conn, prefix: '{mailgw}', key: agentLogStreamKey, settings }));
      const other = new AgentLog(path.join(cfg.dir, 'other-machine'), undefined, openTrackingStream({ redis: conn, prefix: '{mailgw}', key: agentLogStreamKey, settings }));
      here.write(rec({ ipAddress: '192.0.2.10', sessionId: 'HERE' }), new Date('2026-12-06T11:00:00Z'));
      other.write(rec({ ipAddress: '192.0.2.11', sessionId: 'THERE' }), new Date('2026-12-06T11:00:01Z'));
      await Promise.all([here.close(), other.close()]);
      assert.equal(await conn.xlen(agentLogStreamKey('{mailgw}', '20261206')), 2);
      const both = JSON.parse((await run({ ip: '192.0.2.0/24', json: true }, { REDIS_URL: redis.url })).out) as Array<{ sessionId: string }>;
      assert.deepEqual(both.map((e) => e.sessionId), ['HERE', 'THERE'], 'the line in the files and in the stream is listed once');
      const local = JSON.parse((await run({ ip: '192.0.2.0/24', json: true, local: true }, { REDIS_URL: redis.url })).out) as Array<{ sessionId: string }>;
      assert.deepEqual(local.map((e) => e.sessionId), ['HERE']);
      const down = await run({ ip: '192.0.2.0/24', json: true }, { REDIS_URL: 'redis://127.0.0.1:1' });
      assert.match(down.err, /^mailgw agent-log: Redis \(redis:\/\/127\.0\.0\.1:1\) did not answer .*: searching this machine's files only\n$/);
      assert.equal((JSON.parse(down.out) as unknown[]).length, 1);
    } finally {
      conn.disconnect();
      await redis.stop();
    }
  });

  it('--follow prints the matching lines of every machine as they come, until stopped', async () => {
    const redis: TestRedis = await startRedis();
    const conn = new Redis(redis.url);
    try {
      const io = captureIO();
      const stop = new AbortController();
      // Today, as the stream is keyed by the real date.
      const log = new AgentLog(path.join(cfg.dir, 'follow-machine'), undefined, openTrackingStream({ redis: conn, prefix: '{mailgw}', key: agentLogStreamKey, settings: () => ({ maxLength: 1000, maxAgeMs: 3 * 86_400_000 }) }));
      // Yesterday's stream: --since 2d reads it first; a line of three days ago is before --since.
      log.write(rec({ ipAddress: '192.0.2.28' }), new Date(Date.now() - 3 * 86_400_000));
      log.write(rec({ ipAddress: '192.0.2.29' }), new Date(Date.now() - 86_400_000));
      await new Promise((r) => setTimeout(r, 150)); // the stream's batch
      // --since: the lines from then on, whenever the follower starts reading, then the new ones.
      const running = runAgentLog({ config: cfg.gatewayFile, follow: true, agent: 'connection', since: '2d' }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url }, stop: stop.signal });
      log.write(rec({ ipAddress: '192.0.2.30' }));
      log.write(rec({ ipAddress: '192.0.2.31', agent: 'Sender Filter Agent', reason: 'sender-filtered' }));
      log.write(rec({ ipAddress: '192.0.2.32' }));
      await log.close();
      const t0 = Date.now();
      while (!io.out().includes('192.0.2.32') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
      stop.abort();
      assert.equal(await running, 0);
      const shownIps = io.out().split('\n').filter((l) => /^\d/.test(l)).map((l) => l.split('  ')[1]);
      assert.deepEqual(shownIps, ['192.0.2.29', '192.0.2.30', '192.0.2.32'], 'yesterday\'s line, then the connection filtering lines as they came, not the sender filter one');
      const bad = await run({ follow: true, top: 'ips' });
      assert.equal(bad.code, 2);
      assert.match(bad.err, /--follow goes without --top, --json and --local/);
      const noRedis = await run({ follow: true });
      assert.match(noRedis.err, /--follow reads the agent log streams in Redis/);
    } finally {
      conn.disconnect();
      await redis.stop();
    }
  });

  it('the CSV reader reads back what csvField writes, whatever the text', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const alphabet = ['a', ',', '"', '\r', '\n', ' ', 'é', '\\', 'x', ';'];
    for (let i = 0; i < 500; i++) {
      const fields = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => Array.from({ length: Math.floor(rnd() * 8) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join(''));
      // csvField shows CR and LF as \r and \n: a backslash followed by r or n reads back as a line break.
      const expected = fields.map((f) => (/[",\r\n]/.test(f) ? f.replace(/\\r/g, '\r').replace(/\\n/g, '\n') : f));
      assert.deepEqual(parseCsvLine(fields.map(csvField).join(',')), expected, JSON.stringify(fields));
    }
  });
});
