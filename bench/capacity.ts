// Capacity figures per role, from counts rather than timings (so a shared machine barely moves
// them): one `mailgw listen` accepts N messages with no worker running, then one `mailgw worker`
// delivers them into Postfix's smtp-sink. For each phase: Redis commands (INFO commandstats),
// bytes into and out of Redis (INFO stats), AOF bytes written (appendfsync always), Redis memory
// per queued message (INFO memory, MEMORY USAGE), and CPU ms of the listener, the worker and
// redis-server (/proc). Writes bench/results/<date>-capacity-<size>.json; README "Capacity on
// paper" is built from it.
//   node --conditions=mailgw-src --import tsx bench/capacity.ts --messages 2000 --size 51200
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { startRedisServer } from '@mailgw/queue';
import { runLoad } from './lib/smtp-client.js';
import { cpuMs, ensurePostfixTools, freePort, mailgw, root, startSmtpSink, stopChild, waitForPort } from './lib/procs.js';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '2000' }, size: { type: 'string', default: '51200' }, sessions: { type: 'string', default: '20' }, out: { type: 'string' } } });
const N = Number(values.messages);
const SIZE = Number(values.size);
const log = (s: string) => process.stderr.write(`capacity: ${s}\n`);
if (!ensurePostfixTools()) process.exit(1);

const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-capacity-'));
const sink = await startSmtpSink();
const port = await freePort();
mkdirSync(path.join(dir, 'connectors.d'));
const configPath = path.join(dir, 'gateway.yaml');
writeFileSync(configPath, ['fqdn: bench.mailgw.test', `dataDir: ${path.join(dir, 'var')}`, 'acceptedDomains:', '  - { domain: bench.test, default: true }', '  - { domain: sink.test, type: ExternalRelay }', 'routes:', `  - { domains: ["*"], to: "smtp://127.0.0.1:${sink.port}" }`, 'queue: { maxConnectionsPerDestination: 100 }', 'senderAuthentication: { enabled: false }', ''].join('\n'));
writeFileSync(path.join(dir, 'connectors.d/bench.yaml'), ['name: Bench', 'usage: Internet', `bindings: ["127.0.0.1:${port}"]`, 'authMechanism: [None]', 'maxInboundConnection: unlimited', 'maxInboundConnectionPerSource: unlimited', 'maxInboundConnectionPercentagePerSource: 100', 'tarpitInterval: 0', 'greetingDelay: 0', ''].join('\n'));
const server = await startRedisServer({ dataDir: path.join(dir, 'redis'), appendfsync: 'always', unixSocket: path.join(dir, 'redis.sock') });
const redis = new Redis(server.url);
const env = { REDIS_URL: server.socketUrl ?? server.url };
const logFd = openSync(path.join(dir, 'mailgw.log'), 'a');
// AOF bytes per message are read from aof_current_size: no automatic rewrite may shrink it meanwhile.
await redis.config('SET', 'auto-aof-rewrite-percentage', '0');
const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);

interface Snap {
  calls: Map<string, number>;
  netIn: number;
  netOut: number;
  aof: number;
  mem: number;
  cpu: Record<string, number>;
}
async function snap(pids: Record<string, number | undefined>): Promise<Snap> {
  const [stats, cmd, pers, mem] = await Promise.all([redis.info('stats'), redis.info('commandstats'), redis.info('persistence'), redis.info('memory')]);
  const num = (re: RegExp, text: string) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    calls: new Map([...cmd.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)].map(([, c, n]) => [c!, Number(n)] as const)),
    netIn: num(/total_net_input_bytes:(\d+)/, stats),
    netOut: num(/total_net_output_bytes:(\d+)/, stats),
    aof: num(/aof_current_size:(\d+)/, pers),
    mem: num(/used_memory:(\d+)/, mem),
    cpu: Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)])),
  };
}
/** Per message between two snapshots (our own INFO calls left out). */
function per(a: Snap, b: Snap) {
  const commands = [...b.calls].filter(([c]) => c !== 'info').map(([c, n]) => [c, (n - (a.calls.get(c) ?? 0)) / N] as const).filter(([, n]) => n >= 0.01).sort((x, y) => y[1] - x[1]);
  return {
    redisCommands: +commands.reduce((s, [, n]) => s + n, 0).toFixed(1),
    topCommands: Object.fromEntries(commands.slice(0, 10).map(([c, n]) => [c, +n.toFixed(2)])),
    bytesIntoRedis: Math.round((b.netIn - a.netIn) / N),
    bytesOutOfRedis: Math.round((b.netOut - a.netOut) / N),
    aofBytesWritten: Math.round((b.aof - a.aof) / N),
    redisMemoryDelta: Math.round((b.mem - a.mem) / N),
    cpuMs: Object.fromEntries(Object.keys(b.cpu).map((k) => [k, +((b.cpu[k]! - (a.cpu[k] ?? 0)) / N).toFixed(3)])),
  };
}

const listener = mailgw(['listen', '--config', configPath], env, [], logFd);
await waitForPort(port);
// Warm-up (JIT, scripts loaded), delivered by a worker, so both phases measure steady state.
let worker = mailgw(['worker', '--config', configPath, '--concurrency', '50'], env, [], logFd);
await runLoad({ host: '127.0.0.1', port, from: 'bench@bench.test', to: 'sink@sink.test', messages: 300, sessions: Number(values.sessions), size: SIZE });
while (sink.count() < 300) await new Promise((r) => setTimeout(r, 20));
await stopChild(worker);

log(`listener phase: ${N} messages of ${SIZE} bytes, no worker running`);
const s0 = await snap({ listener: listener.pid, redis: redisPid });
const load = await runLoad({ host: '127.0.0.1', port, from: 'bench@bench.test', to: 'sink@sink.test', messages: N, sessions: Number(values.sessions), size: SIZE });
const s1 = await snap({ listener: listener.pid, redis: redisPid });
if (load.ok !== N) throw new Error(`only ${load.ok} of ${N} accepted: ${JSON.stringify([...load.failures])}`);
// One queued message's keys, as Redis accounts them.
const [, bodies] = await redis.scan('0', 'MATCH', '{mailgw}:body:*', 'COUNT', 10_000);
const bodyKey = bodies[0]!;
const jobKey = `{mailgw}:delivery:${bodyKey.split(':').pop()}`;
const memoryUsage = { body: Number(await redis.call('MEMORY', 'USAGE', bodyKey)), job: Number(await redis.call('MEMORY', 'USAGE', jobKey)) };

log('worker phase: one worker delivers them into smtp-sink');
const before = sink.count();
worker = mailgw(['worker', '--config', configPath, '--concurrency', '50'], env, [], logFd);
const s2 = await snap({ worker: worker.pid, redis: redisPid });
while (sink.count() < before + N) await new Promise((r) => setTimeout(r, 20));
const s3 = await snap({ worker: worker.pid, redis: redisPid });

const result = {
  date: new Date().toISOString(),
  machine: { cores: os.availableParallelism(), loadAverage: os.loadavg().map((x) => +x.toFixed(2)) },
  messages: N,
  size: SIZE,
  appendfsync: 'always',
  listener: per(s0, s1),
  worker: per(s2, s3),
  memoryUsageOfOneQueuedMessage: memoryUsage,
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
const out = values.out ?? path.join(root, 'bench/results', `${result.date.replace(/:/g, '-').replace(/\.\d+Z$/, '')}-capacity-${SIZE}.json`);
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${out}`);

await Promise.all([stopChild(listener), stopChild(worker)]);
redis.disconnect();
await server.stop();
await sink.stop();
closeSync(logFd);
rmSync(dir, { recursive: true, force: true });
