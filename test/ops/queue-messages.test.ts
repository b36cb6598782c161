// Message-level queue work (`mailgw queue messages`, filtered remove/suspend/resume/retry,
// per-message suspend, poison resubmit) against a real redis-server, a `mailgw listen` process
// taking mail over SMTP, two `mailgw worker` processes (each with its own dataDir) delivering to
// a scripted SMTP next hop and to a Maildir. The commands run in-process on the CLI's own
// function, as `mailgw queue …` runs them.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig } from '@mailgw/config/load';
import { DEFAULT_QUEUE_NAME, findFreePort, keySpace, openMailStore, type MailStore } from '@mailgw/queue';
import { runQueue, type QueueOptions } from '../../packages/cli/src/commands/queue.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { RawSmtp, queueIdOf } from '../listener/helpers/smtp-client.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { enqueue, eventually, mailbox, message } from '../worker/helpers/gateway.js';
import { spawnWorker, writeConfig, type WorkerProcess } from '../worker/helpers/worker-process.js';
import { captureIO } from './helpers/cli-io.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess } from './helpers/gateway-process.js';

let redis: TestRedis;
let cfg: ConfigDir;
let far: FarSide;
let listener: GatewayProcess;
const workers: WorkerProcess[] = [];
let store: MailStore;
let conn: Redis;
let queue: Queue;
let smtpPort: number;
let mailboxes: string;
/** Recipients the next hop answers 451 to, until taken out. */
const deferring = new Set(['x1@fabrikam.test', 'x2@fabrikam.test', 'x3@fabrikam.test', 'x4@fabrikam.test', 'x9@fabrikam.test']);
const ids: Record<string, string> = {};
const PREFIX = '{opsmsg}';

async function queueCmd(sub: string, args: string[] = [], opts: Partial<QueueOptions> = {}, stdin?: NodeJS.ReadableStream & { isTTY?: boolean }) {
  const io = captureIO();
  const code = await runQueue(sub, args, { config: cfg.gatewayFile, ...opts }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url }, stdin });
  return { code, out: io.out(), err: io.err() };
}

async function listIds(opts: Partial<QueueOptions>): Promise<string[]> {
  const r = await queueCmd('messages', [], { ...opts, json: true });
  assert.equal(r.code, 0, r.err);
  return (JSON.parse(r.out) as { messages: Array<{ id: string }> }).messages.map((m) => m.id).sort();
}

async function stateOf(id: string): Promise<string> {
  const job = await queue.getJob(id);
  return job ? job.getState() : 'gone';
}

/** Sends one message over SMTP to the listener process; returns its queue id. */
async function send(from: string, to: string[], subject: string): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: smtpPort });
  await c.ehlo();
  const t = await c.transaction(from, to, message(subject));
  assert.equal(t.end?.code ?? t.data?.code, 250, JSON.stringify(t));
  await c.quit();
  return queueIdOf((t.end ?? t.data)!);
}

const received = (rcpt: string) => far.messages.filter((m) => m.rcptTo.includes(rcpt)).length;

before(async () => {
  redis = await startRedis();
  far = await startFarSide({ rcpt: (a) => (deferring.has(a) ? '451 4.2.0 Try again later' : null) });
  smtpPort = await findFreePort();
  cfg = makeConfigDir('mailgw-queue-messages-');
  mailboxes = path.join(cfg.dir, 'mailboxes');
  cfg.writeGateway(
    [
      'fqdn: mail.contoso.test',
      'dataDir: ./var',
      ACCEPTED,
      `redis: { prefix: "${PREFIX}" }`,
      'routes:',
      `  - { domains: [contoso.test], to: "maildir:${mailboxes}" }`,
      `  - { domains: [fabrikam.test, northwind.test], to: "smtp://127.0.0.1:${far.port}" }`,
      // Nothing is retried by itself during the test: only what the commands do.
      'queue: { transientRetryInterval: 1h, messageRetryInterval: 1h, outboundConnectionFailureRetryInterval: 1h, lockDuration: 2s, stalledInterval: 1s, drainTimeout: 5s }',
      '',
    ].join('\n'),
  );
  cfg.writeConnector('default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${smtpPort}"]\n`);
  const loaded = loadConfig({ configPath: cfg.gatewayFile });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  store = await openMailStore({ url: redis.url, prefix: PREFIX });
  conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  queue = new Queue(DEFAULT_QUEUE_NAME, { connection: conn, prefix: PREFIX });
  listener = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url }, 'listen');
});

after(async () => {
  await Promise.all(workers.map(async (w) => {
    if (w.child.exitCode === null) w.child.kill('SIGTERM');
    await w.exited;
  }));
  await listener?.stop();
  await queue?.close();
  conn?.disconnect();
  await store?.close();
  await far?.close();
  await redis?.stop();
  cfg?.remove();
});

/** Two worker processes, each with its own dataDir (same Redis, same routes). */
async function startWorkers(): Promise<void> {
  for (const name of ['w1', 'w2']) {
    const dir = path.join(cfg.dir, name);
    mkdirSync(dir, { recursive: true });
    const yaml = readFileSync(cfg.gatewayFile, 'utf8').replace('dataDir: ./var', `dataDir: ${path.join(dir, 'var')}`);
    const file = writeConfig(dir, yaml);
    const w = spawnWorker(file, { REDIS_URL: redis.url });
    workers.push(w);
    await w.ready;
    assert.equal(w.child.exitCode, null, w.stderr());
  }
}

describe('mailgw queue: message-level work', () => {
  it('suspend one message of several (before any worker runs): the others are delivered, it is held untried', async () => {
    ids.a = await send('victim@contoso.test', ['a1@northwind.test'], 'First');
    ids.b = await send('victim@contoso.test', ['b1@northwind.test'], 'Second');
    ids.c = await send('other@contoso.test', ['c1@northwind.test'], 'Third');
    // A message queued more than messageExpirationTimeout (2 days) ago, through the listener's store API.
    ids.old = await enqueue(store, { from: 'old@contoso.test', to: ['o1@northwind.test'], body: message('Old'), receivedAt: new Date(Date.now() - 3 * 86_400_000) });

    const byId = await queueCmd('suspend', [ids.b]);
    assert.equal(byId.code, 0, byId.err);
    assert.match(byId.out, /^suspended 1 message\n/);
    const old = await queueCmd('suspend', [], { sender: 'old@contoso.test' });
    assert.equal(old.code, 1, 'a filtered action from a non-interactive stdin needs --yes');
    assert.match(old.err, /1 message match; not done: stdin is not a terminal, so nobody can confirm\. Add --yes/);
    assert.equal((await listIds({ status: 'Suspended' })).length, 1, 'refused: nothing suspended');
    const oldYes = await queueCmd('suspend', [], { sender: 'old@contoso.test', yes: true });
    assert.equal(oldYes.code, 0, oldYes.err);
    assert.deepEqual(await listIds({ status: 'Suspended' }), [ids.b, ids.old].sort());

    await startWorkers();
    await eventually(() => received('a1@northwind.test') === 1 && received('c1@northwind.test') === 1, 'the two others delivered');
    // The suspended message was taken by a worker, held (delayed) and never tried.
    await eventually(async () => ((await stateOf(ids.b!)) === 'delayed' ? true : null), 'the suspended message held');
    assert.equal(received('b1@northwind.test'), 0);
    const job = await queue.getJob(ids.b!);
    const p = job!.progress as { recipients: Array<{ attempts: number; status: string }> };
    assert.deepEqual(p.recipients.map((r) => [r.status, r.attempts]), [['pending', 0]]);
    const text = await queueCmd('messages', [], { status: 'Suspended' });
    assert.match(text.out, new RegExp(`^QUEUE ID\\s+STATUS\\s+FROM\\s+TO\\s+SIZE\\s+AGE\\s+LAST ERROR\\n${ids.b}\\s+Suspended\\s+<victim@contoso\\.test>\\s+b1@northwind\\.test\\s+`));
  });

  it('expiry still applies to a suspended message: it fails with an NDR, never delivered', async () => {
    const ndr = await eventually(async () => (await mailbox(mailboxes, 'old@contoso.test'))[0], 'the expiry NDR to old@contoso.test');
    assert.match(ndr.toString(), /4\.4\.7/);
    assert.equal(received('o1@northwind.test'), 0);
    assert.equal(await stateOf(ids.old!), 'completed');
    assert.equal(await conn.sismember(keySpace(PREFIX).suspendedMessages, ids.old!), 0, 'its id left the suspended set');
  });

  it('resume → delivered at once', async () => {
    const r = await queueCmd('resume', [], { sender: 'victim@contoso.test', yes: true });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^resumed 1 message\n/, 'the delivered one is no longer queued: not selected');
    await eventually(() => received('b1@northwind.test') === 1, 'the resumed message delivered');
    assert.deepEqual(await listIds({ status: 'Suspended' }), []);
  });

  it('filters select the right messages (sender, recipient, hop, status, age, subject)', async () => {
    ids.p1 = await send('phished@contoso.test', ['x1@fabrikam.test'], 'Invoice 1 overdue');
    ids.p2 = await send('phished@contoso.test', ['x2@fabrikam.test', 'cc@northwind.test'], 'Invoice 2 overdue');
    ids.q = await send('alice@contoso.test', ['x3@fabrikam.test'], 'Minutes');
    ids.r = await send('bob@contoso.test', ['x4@fabrikam.test'], 'Lunch');
    for (const id of [ids.p1, ids.p2, ids.q, ids.r]) await eventually(async () => ((await stateOf(id!)) === 'delayed' ? true : null), `${id} deferred`);

    assert.deepEqual(await listIds({ status: 'Retry' }), [ids.p1, ids.p2, ids.q, ids.r].sort());
    assert.deepEqual(await listIds({ sender: 'PHISHED@contoso.test' }), [ids.p1, ids.p2].sort());
    assert.deepEqual(await listIds({ sender: '*@contoso.test', subject: 'invoice' }), [ids.p1, ids.p2].sort());
    assert.deepEqual(await listIds({ recipient: 'x3@fabrikam.test' }), [ids.q]);
    assert.deepEqual(await listIds({ recipient: '*@northwind.test', status: 'Retry' }), [ids.p2], 'any recipient, also one already delivered');
    assert.deepEqual(await listIds({ hop: `smtp://127.0.0.1:${far.port}` }), [ids.p1, ids.p2, ids.q, ids.r].sort());
    assert.deepEqual(await listIds({ 'older-than': '1h' }), []);
    assert.deepEqual(await listIds({ status: 'Poison' }), []);

    // Paged, oldest first: the last id of a page is the bookmark of the next.
    const [o1, o2, o3, o4] = [ids.p1!, ids.p2!, ids.q!, ids.r!].sort();
    const limited = await queueCmd('messages', [], { status: 'Retry', limit: '2' });
    assert.deepEqual([...limited.out.matchAll(/^([0-9A-Z]{26}) /gm)].map((m) => m[1]), [o1, o2]);
    assert.match(limited.out, new RegExp(`\\n1-2 of 4 matching messages shown; next page: mailgw queue messages --status Retry --limit 2 --after ${o2}\\n$`));
    assert.match(limited.out, /451 4\.2\.0 Try again later/, 'the last error');
    const second = await queueCmd('messages', [], { status: 'Retry', limit: '2', after: o2.toLowerCase() });
    assert.deepEqual([...second.out.matchAll(/^([0-9A-Z]{26}) /gm)].map((m) => m[1]), [o3, o4]);
    assert.match(second.out, /\n3-4 of 4 matching messages shown \(the last page\)\n$/);
    const json = JSON.parse((await queueCmd('messages', [], { status: 'Retry', limit: '3', after: o1, json: true })).out) as { matched: number; remaining: number; next: string | null; messages: Array<{ id: string }> };
    assert.deepEqual({ matched: json.matched, remaining: json.remaining, next: json.next, ids: json.messages.map((m) => m.id) }, { matched: 4, remaining: 3, next: null, ids: [o2, o3, o4] });
    const past = await queueCmd('messages', [], { status: 'Retry', after: o4 });
    assert.equal(past.out, 'No message after ' + o4 + ' (4 match in all; drop --after to start again).\n');
    // No filter: the ids of the whole queue are sorted, only the page is read.
    const unfiltered = await queueCmd('messages', [], { limit: '1', after: o2, json: true });
    assert.deepEqual((JSON.parse(unfiltered.out) as { messages: Array<{ id: string }>; next: string }).messages.map((m) => m.id), [o3]);
    assert.equal((JSON.parse(unfiltered.out) as { next: string }).next, o3);
    const notAnId = await queueCmd('messages', [], { after: 'yesterday' });
    assert.equal(notAnId.code, 2);
    assert.match(notAnId.err, /--after "yesterday" is not a queue id/);
    const bad = await queueCmd('messages', [], { status: 'Deferred' });
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--status "Deferred" is not one of Active, Ready, Retry, Suspended, Poison/);
  });

  it('remove with filters: refused without --yes from a non-interactive stdin; with --yes removed, an NDR to the sender each', async () => {
    const refused = await queueCmd('remove', [], { sender: 'phished@contoso.test', 'with-ndr': true });
    assert.equal(refused.code, 1);
    assert.match(refused.err, /2 messages match; not done: stdin is not a terminal.*Add --yes to remove \(with NDRs\) them/);
    assert.equal(await stateOf(ids.p1!), 'delayed', 'still queued');

    const r = await queueCmd('remove', [], { sender: 'phished@contoso.test', 'with-ndr': true, yes: true });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^removed 2 messages\n2 NDRs queued to the senders\n$/);
    assert.equal(await stateOf(ids.p1!), 'gone');
    assert.equal(await stateOf(ids.p2!), 'gone');
    const ndrs = await eventually(async () => {
      const m = await mailbox(mailboxes, 'phished@contoso.test');
      return m.length === 2 ? m : null;
    }, 'two NDRs in the sender mailbox');
    for (const n of ndrs) assert.match(n.toString(), /5\.3\.2.*deleted by administrative action/s);
    assert.equal(received('x1@fabrikam.test'), 0);
    assert.deepEqual(await listIds({ status: 'Retry' }), [ids.q, ids.r].sort(), 'the others stay');
  });

  it('poison: listed with --status Poison, show says why, resubmit after a fix delivers; remove deletes one', async () => {
    // A delivery state this version cannot read (as a record written by a future version would be).
    const jobKey = keySpace(PREFIX).job(ids.q!);
    const good = await conn.hget(jobKey, 'progress');
    for (const id of [ids.q!, ids.r!]) await conn.hset(keySpace(PREFIX).job(id), 'progress', '{"v":7,"recipients":"later"}');
    const retried = await queueCmd('retry', [], { sender: '*@contoso.test', yes: true });
    assert.match(retried.out, /^retried 2 messages/, retried.err);
    for (const id of [ids.q!, ids.r!]) await eventually(async () => ((await stateOf(id)) === 'failed' ? true : null), `${id} set aside as poison`);

    assert.deepEqual(await listIds({ status: 'Poison' }), [ids.q, ids.r].sort());
    const list = await queueCmd('messages', [], { status: 'Poison' });
    assert.match(list.out, new RegExp(`${ids.q}\\s+Poison\\s+<alice@contoso\\.test>.*delivery state of ${ids.q} cannot be read`));
    const show = await queueCmd('show', [ids.q!]);
    assert.match(show.out, /State:\s+failed/);
    assert.match(show.out, new RegExp(`Failed:\\s+delivery state of ${ids.q} cannot be read`));

    const refused = await queueCmd('resubmit', [ids.q!]);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /cannot be read.*--reset-state puts it back with every recipient pending/);
    const notPoison = await queueCmd('resubmit', [ids.c!]);
    assert.match(notPoison.err, /not a poison message/);

    // The fix: the record is readable again and the next hop takes the recipient.
    await conn.hset(jobKey, 'progress', good!);
    deferring.delete('x3@fabrikam.test');
    const ok = await queueCmd('resubmit', [ids.q!]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, new RegExp(`^resubmitted ${ids.q}: a worker tries it now`));
    await eventually(() => received('x3@fabrikam.test') === 1, 'the resubmitted message delivered');
    await eventually(async () => ((await stateOf(ids.q!)) === 'completed' ? true : null), 'completed');

    const rm = await queueCmd('remove', [], { status: 'Poison', yes: true });
    assert.equal(rm.code, 0, rm.err);
    assert.match(rm.out, /^removed 1 message\n/);
    assert.equal(await stateOf(ids.r!), 'gone');
    assert.equal(await store.readBody(ids.r!), null);
  });

  it('on a terminal, more than 10 matching messages are confirmed: anything but y does nothing', async () => {
    for (let i = 0; i < 11; i++) await enqueue(store, { from: 'bulk@contoso.test', to: ['x9@fabrikam.test'], body: message(`Bulk ${i}`) });
    await eventually(async () => (await listIds({ sender: 'bulk@contoso.test', status: 'Retry' })).length === 11, 'the 11 deferred');
    // An interactive terminal: a stream that says it is a TTY, with the admin's answer in it.
    const terminal = (answer: string) => Object.assign(new PassThrough().end(answer), { isTTY: true });
    const no = await queueCmd('remove', [], { sender: 'bulk@contoso.test' }, terminal('n\n'));
    assert.equal(no.code, 1);
    assert.match(no.err, /^11 messages match\. Remove them\? \[y\/N\] mailgw queue remove: nothing done\n$/);
    assert.equal((await listIds({ sender: 'bulk@contoso.test' })).length, 11);
    const yes = await queueCmd('remove', [], { sender: 'bulk@contoso.test' }, terminal('y\n'));
    assert.equal(yes.code, 0, yes.err);
    assert.match(yes.out, /^removed 11 messages\n$/);
    assert.deepEqual(await listIds({ sender: 'bulk@contoso.test' }), []);
  });

  it('usage: a queue id and filters together, or neither, is an error', async () => {
    const both = await queueCmd('remove', ['X'], { sender: 'a@b.test' });
    assert.equal(both.code, 2);
    assert.match(both.err, /remove takes one queue id, or filters/);
    const none = await queueCmd('remove', []);
    assert.equal(none.code, 2);
  });
});
