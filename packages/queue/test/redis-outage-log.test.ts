// RedisOutageLog: an outage is one warning, a reminder a minute and one line when it ends, fed
// by real ioredis connections to a real redis-server that is killed and started again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisOutageLog, findFreePort, isRedisConnectionError } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../../../test/harness/redis.js';
import { eventually } from './fixtures.js';

type Line = { level: 'warn' | 'info'; fields: Record<string, unknown>; msg: string };

function recorder(): { lines: Line[]; logger: { warn(f: Record<string, unknown>, m: string): void; info(f: Record<string, unknown>, m: string): void } } {
  const lines: Line[] = [];
  return {
    lines,
    logger: {
      warn: (fields, msg) => lines.push({ level: 'warn', fields, msg }),
      info: (fields, msg) => lines.push({ level: 'info', fields, msg }),
    },
  };
}

/** The 'error' a real ioredis connection emits when nothing listens on its port. */
async function refusedError(): Promise<Error> {
  const port = await findFreePort();
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  try {
    return await new Promise<Error>((resolve) => {
      r.once('error', resolve);
      r.connect().catch(() => undefined);
    });
  } finally {
    r.disconnect();
  }
}

describe('RedisOutageLog', () => {
  let redis: TestRedis;
  let refused: Error;
  let replyError: Error;
  before(async () => {
    redis = await startRedis({ appendonly: false });
    refused = await refusedError();
    const c = new Redis(redis.url);
    replyError = await c.call('NO-SUCH-COMMAND').then(
      () => new Error('no error'),
      (e: Error) => e,
    );
    c.disconnect();
  });
  after(() => redis.stop());

  test('tells a connection failing from a command Redis refused', () => {
    assert.equal((refused as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.equal(isRedisConnectionError(refused), true);
    assert.equal(isRedisConnectionError(new Error('Connection is closed.')), true);
    assert.match(replyError.message, /unknown command/i);
    assert.equal(isRedisConnectionError(replyError), false);
    assert.equal(isRedisConnectionError('ECONNREFUSED'), false);
  });

  test('one warning per outage, a reminder per interval, one line when it ends', () => {
    let now = 1_000_000;
    const { lines, logger } = recorder();
    const log = new RedisOutageLog(logger, { remindEveryMs: 60_000, now: () => now });
    log.ready(); // connected at start: nothing to say
    assert.equal(lines.length, 0);

    assert.equal(log.failed(refused), true);
    for (let i = 0; i < 50; i++) {
      now += 1000;
      assert.equal(log.failed(refused), true);
    }
    assert.equal(log.down, true);
    assert.equal(lines.length, 1, 'the attempts of the first 50 s are not logged');
    assert.deepEqual(lines[0], { level: 'warn', fields: { err: refused.message }, msg: lines[0]!.msg });
    assert.match(lines[0]!.msg, /^Redis unreachable: reconnecting/);

    now += 10_000; // 60 s after the first
    log.failed(refused);
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.level, 'warn');
    assert.equal(lines[1]!.msg, 'Redis still unreachable after 60 s');
    assert.deepEqual({ downMs: lines[1]!.fields['downMs'], errors: lines[1]!.fields['errors'] }, { downMs: 60_000, errors: 52 });

    now += 5_500;
    log.ready();
    log.ready(); // a second connection back: the outage is over already
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[2], { level: 'info', fields: { downMs: 65_500, errors: 52 }, msg: 'Redis reachable again after 66 s' });
    assert.equal(log.down, false);

    // The next outage starts afresh.
    now += 1000;
    log.failed(refused);
    now += 2500;
    log.ready();
    assert.deepEqual(
      lines.slice(3).map((l) => [l.level, l.msg, l.fields['downMs'], l.fields['errors']]),
      [
        ['warn', lines[3]!.msg, undefined, undefined],
        ['info', 'Redis reachable again after 2.5 s', 2500, 1],
      ],
    );
  });

  test('any other error is left to the caller and opens no outage', () => {
    const { lines, logger } = recorder();
    const log = new RedisOutageLog(logger);
    assert.equal(log.failed(replyError), false);
    assert.equal(log.failed(new TypeError('bad argument')), false);
    assert.equal(log.down, false);
    assert.deepEqual(lines, []);
  });

  test('real connections: Redis killed and started again is one warning and one line', async () => {
    const { lines, logger } = recorder();
    const log = new RedisOutageLog(logger);
    const retry = { retryStrategy: () => 100, maxRetriesPerRequest: null };
    const a = new Redis(redis.url, retry);
    const b = new Redis(redis.url, retry);
    try {
      for (const c of [a, b]) {
        c.on('error', (err: Error) => {
          if (!log.failed(err)) throw err;
        });
        log.watch(c);
      }
      await Promise.all([a.ping(), b.ping()]);
      await redis.kill();
      // Both connections retry every 100 ms: a score of failed attempts within a second.
      await eventually(async () => log.down, 5000, 'the outage to be noticed');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(lines.length, 1, `one line while down, got ${JSON.stringify(lines)}`);
      await redis.restart();
      await eventually(async () => !log.down, 10_000, 'the outage to end');
      await Promise.all([a.ping(), b.ping()]);
      assert.deepEqual(
        lines.map((l) => l.level),
        ['warn', 'info'],
      );
      assert.match(lines[1]!.msg, /^Redis reachable again after \d+\.\d s$/);
      assert.ok((lines[1]!.fields['errors'] as number) >= 4, `attempts counted: ${lines[1]!.fields['errors']}`);
    } finally {
      a.disconnect();
      b.disconnect();
    }
  });
});
