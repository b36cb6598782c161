// The fuzzer's messages (helpers/fuzz.ts) through the whole pipeline: the shipped config with
// every domain routed to a far side that keeps the raw wire (helpers/raw-sink.ts), in-process
// delivery workers. The queue is paused while the sessions play, so every accepted message's
// stored bytes can be read before a worker takes it; then delivery runs and each message must
// reach the far side byte for byte (dot-stuffing right across chunk boundaries, large ones
// included; lines over 998 octets wrapped), to exactly its recipients, CRLF only on the wire and
// no line over 998 octets, or be refused for the one reason
// this far side gives (it offers no SMTPUTF8, CHUNKING or BINARYMIME).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { findLongLine, wrapLongLines } from '@mailgw/mail';
import { after, before, it } from 'node:test';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startFaultRig, type FaultRig } from './helpers/delivery.js';
import { makeSession, playSession } from './helpers/fuzz.js';
import { startRawSink, type RawSink } from './helpers/raw-sink.js';
import { until } from './helpers/scenario.js';

const SEED = Number(process.env.MAILGW_FUZZ_SEED ?? 20261203) + 1;
const SESSIONS = Math.ceil(Number(process.env.MAILGW_FUZZ_SESSIONS ?? 400) / 2);
const CONCURRENCY = 12;

let redis: TestRedis;
let sink: RawSink;
let rig: FaultRig;

before(async () => {
  redis = await startRedis();
  sink = await startRawSink();
  rig = await startFaultRig(redis.url, sink.port, { concurrency: 8 });
});

after(async () => {
  await rig?.close();
  await sink?.close();
  await redis?.stop();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Stored {
  readonly queueId: string;
  readonly rcptTo: readonly string[];
  /** Of the bytes that must reach the far side: what was stored, CRLF-terminated. */
  readonly hash: string;
  readonly size: number;
  /** Needs what this far side does not offer: refused with a DSN, never sent. */
  readonly needs: 'SMTPUTF8' | 'BINARYMIME' | null;
  readonly body: Buffer;
}

it(`fuzzed messages (seed ${SEED}, ${SESSIONS} sessions) leave the worker byte for byte, to exactly their recipients`, { timeout: 600_000 }, async (t) => {
  await rig.queue.bull.pause();
  let next = 0;
  const accepted: string[] = [];
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < SESSIONS; i = next++) {
        const s = makeSession(SEED, i);
        if (s.target !== 'default') continue; // the rig's Client connector is not the subject here
        const r = await playSession(s, '127.0.0.1', rig.port);
        assert.deepEqual(r.problems, [], `session ${i}`);
        accepted.push(...r.accepted);
      }
    }),
  );
  // Every stored message, read before any worker has seen it.
  const stored = new Map<string, Stored>();
  for (const job of await rig.queue.bull.getJobs(['waiting', 'delayed', 'prioritized'], 0, -1)) {
    const d = job.data as { queueId: string; rcptTo: Array<{ address: string }>; mailFrom: { smtpUtf8?: true; body?: string } };
    const body = await rig.gw.body(d.queueId);
    assert.ok(body, `job ${d.queueId} has no body`);
    const needs = d.mailFrom.smtpUtf8 ? 'SMTPUTF8' : d.mailFrom.body === 'BINARYMIME' ? 'BINARYMIME' : null;
    // A BDAT message need not end with CRLF; sent by DATA it must, so the worker adds one (RFC 3030 §3).
    // Lines over 998 octets leave wrapped (RFC 5322 2.1.1, @mailgw/mail long-lines.ts, tested on its own).
    const wrapped = needs ? body : wrapLongLines(body).body;
    const sent = wrapped.subarray(-2).equals(Buffer.from('\r\n')) ? wrapped : Buffer.concat([wrapped, Buffer.from('\r\n')]);
    stored.set(d.queueId, { queueId: d.queueId, rcptTo: d.rcptTo.map((r) => r.address), hash: sha(sent), size: sent.length, needs, body: sent });
  }
  assert.deepEqual(accepted.filter((id) => !stored.has(id)), [], 'a 250 was given for a message that is not queued');
  const sendable = [...stored.values()].filter((s) => !s.needs);
  assert.ok(sendable.length >= SESSIONS / 10, `only ${sendable.length} sendable messages were accepted`);
  if (SESSIONS >= 100) assert.ok(sendable.some((s) => s.size > 256 * 1024), 'no message larger than one store flush was accepted');

  await rig.queue.bull.resume();
  assert.ok(await until(async () => (await rig.queue.pending()) === 0, 120_000), `the queue did not drain: ${JSON.stringify(await rig.queue.counts())}`);

  // What arrived, by content: a message sent to several recipients may come in one transaction
  // or several; each must carry exactly the stored bytes.
  const arrived = new Map<string, Set<string>>();
  for (const m of sink.messages) {
    assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(m.wire.toString('latin1')), 'a bare CR or LF on the wire to the next hop');
    assert.equal(findLongLine(m.raw), null, 'a line over 998 octets on the wire to the next hop');
    const h = sha(m.raw);
    const to = arrived.get(h) ?? new Set<string>();
    for (const r of m.rcptTo) to.add(r.toLowerCase());
    arrived.set(h, to);
  }
  const problems: string[] = [];
  for (const s of stored.values()) {
    const to = arrived.get(s.hash);
    if (s.needs) {
      if (to) problems.push(`${s.queueId} (needs ${s.needs}) was sent to a next hop that does not offer it`);
      continue;
    }
    if (!to) problems.push(`${s.queueId} (${s.size} bytes, to ${s.rcptTo.join(', ')}) never arrived as stored`);
    else {
      const want = new Set(s.rcptTo.map((r) => r.toLowerCase()));
      if ([...want].some((r) => !to.has(r)) || [...to].some((r) => !want.has(r))) problems.push(`${s.queueId} went to ${[...to].join(', ')}, not to ${[...want].join(', ')}`);
    }
  }
  if (problems.length > 0) {
    // What became of them: the job's delivery state, and the nearest thing the far side got.
    for (const s of [...stored.values()].filter((x) => problems.some((p) => p.startsWith(x.queueId))).slice(0, 3)) {
      const job = await rig.queue.bull.getJob(s.queueId);
      const near = sink.messages.filter((m) => m.rcptTo.some((r) => s.rcptTo.map((x) => x.toLowerCase()).includes(r.toLowerCase())) && Math.abs(m.raw.length - s.size) < 200);
      const at = near[0] ? near[0].raw.findIndex((b, i) => b !== s.body[i]) : -1;
      t.diagnostic(`${s.queueId}: job ${JSON.stringify(job?.progress ?? null).slice(0, 600)}\n  stored ${JSON.stringify(s.body.toString('latin1').slice(0, 1500))}\n  far side: ${near.length} of about that size${near[0] ? `, first differs at octet ${at}: ${JSON.stringify(near[0].raw.toString('latin1').slice(Math.max(0, at - 80), at + 80))} vs ${JSON.stringify(s.body.toString('latin1').slice(Math.max(0, at - 80), at + 80))}` : ''}`);
    }
  }
  assert.deepEqual(problems, []);
  t.diagnostic(`${stored.size} messages queued (${sendable.length} sendable, largest ${Math.max(...sendable.map((s) => s.size))} bytes), ${sink.messages.length} transactions at the far side`);
});
