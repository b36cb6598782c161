// How fast `mailgw queue messages` (and a filtered bulk action) is on a big queue: fills a private
// redis-server with N queued messages (default 100,000) through the queue package's own store
// API (openMailStore → beginMessage → commit, as a listener does; no SMTP, no worker), then runs
// the built CLI (packages/cli/bin/mailgw.js) as a child process and times each command, process
// start included. 1% of the messages come from one "phished" sender with the subject "Invoice".
//
//   npx tsc -b && node --conditions=mailgw-src --import tsx bench/queue-messages.ts [--messages 100000]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { newQueueId, openMailStore, startRedisServer, type CommitInput, type MailStore } from '@mailgw/queue';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '100000' }, concurrency: { type: 'string', default: '200' } } });
const total = Number(values.messages);
const concurrency = Number(values.concurrency);
const root = path.resolve(import.meta.dirname, '..');
const cli = path.join(root, 'packages/cli/bin/mailgw.js');
const PHISHED = 'phished@contoso.test';

function message(i: number, phished: boolean): Buffer {
  const subject = phished ? `Invoice ${i} overdue` : `Report ${i}`;
  return Buffer.from(`From: <x@contoso.test>\r\nTo: <y@fabrikam.test>\r\nSubject: ${subject}\r\nMessage-ID: <${i}@bench.test>\r\n\r\n${'Lorem ipsum dolor sit amet. '.repeat(36)}\r\n`);
}

async function put(store: MailStore, i: number): Promise<void> {
  const phished = i % 100 === 0;
  const queueId = newQueueId();
  const w = store.beginMessage(queueId);
  await w.write(message(i, phished));
  const input: CommitInput = {
    queueId,
    messageId: `<${i}@bench.test>`,
    receivedAt: new Date(Date.now() - (total - i) * 100).toISOString(),
    connector: 'Bench',
    clientIP: '127.0.0.5',
    clientHostname: 'client.test',
    helo: 'client.test',
    tls: null,
    authUser: null,
    mailFrom: { sender: phished ? { local: 'phished', domain: 'contoso.test' } : { local: `user${i % 500}`, domain: 'contoso.test' } },
    rcptTo: [{ local: `r${i % 1000}`, domain: `d${i % 20}.fabrikam.test` }, { local: 'cc', domain: 'northwind.test' }],
  };
  await w.commit(input);
}

function time(args: string[], env: NodeJS.ProcessEnv): { ms: number; out: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, 'queue', ...args], { env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`mailgw queue ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, out: r.stdout };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-bench-queue-'));
const redis = await startRedisServer({ dataDir: path.join(dir, 'redis'), appendfsync: 'everysec' });
try {
  const config = path.join(dir, 'gateway.yaml');
  writeFileSync(
    config,
    ['fqdn: mail.contoso.test', 'dataDir: ./var', 'acceptedDomains:', '  - { domain: contoso.test, default: true }', 'routes:', '  - { domains: ["*"], to: "smtp://127.0.0.1:9" }', ''].join('\n'),
  );
  mkdirSync(path.join(dir, 'connectors.d'));
  writeFileSync(path.join(dir, 'connectors.d', 'default.yaml'), 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
  const store = await openMailStore({ url: redis.url });
  const t0 = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await put(store, next++);
    }),
  );
  const fillMs = Date.now() - t0;
  await store.close();
  const env = { ...process.env, REDIS_URL: redis.url };
  const base = ['--config', config];
  const runs: Array<[string, string[]]> = [
    ['messages --limit 50 (all, counted)', ['messages', '--limit', '50', ...base]],
    ['messages --sender phished@… (1%)', ['messages', '--sender', PHISHED, ...base]],
    ['messages --recipient *@northwind.test --limit 10', ['messages', '--recipient', '*@northwind.test', '--limit', '10', ...base]],
    ['messages --subject invoice (reads headers of all)', ['messages', '--subject', 'invoice', ...base]],
    ['messages --status Retry (none)', ['messages', '--status', 'Retry', ...base]],
    ['messages --json --limit 100000 (every row)', ['messages', '--json', '--limit', '100000', ...base]],
    ['suspend --sender phished@… --yes (1%)', ['suspend', '--sender', PHISHED, '--yes', ...base]],
    ['remove --sender phished@… --yes (1%)', ['remove', '--sender', PHISHED, '--yes', ...base]],
  ];
  console.log(`${total} messages queued in ${(fillMs / 1000).toFixed(1)} s; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${new Date().toISOString().slice(0, 10)}`);
  // Paging: page 1 of 1,000, then the page after its last id (the bookmark it prints).
  const page1 = time(['messages', '--limit', '1000', ...base], env);
  const bookmark = /--after ([0-9A-Z]{26})/.exec(page1.out)?.[1];
  if (!bookmark) throw new Error(`no next-page bookmark in: ${page1.out.trim().split('\n').at(-1)}`);
  console.log(`${'messages --limit 1000 (page 1)'.padEnd(52)} ${(page1.ms / 1000).toFixed(2).padStart(6)} s`);
  runs.unshift(['messages --limit 1000 --after <page 1> (page 2)', ['messages', '--limit', '1000', '--after', bookmark, ...base]]);
  for (const [name, args] of runs) {
    const r = time(args, env);
    const tail = r.out.trim().split('\n').at(-1) ?? '';
    console.log(`${name.padEnd(52)} ${(r.ms / 1000).toFixed(2).padStart(6)} s   ${tail.slice(0, 70)}`);
  }
} finally {
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
