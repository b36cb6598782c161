// mailgw ip-block-list and mailgw reputation against a real Redis: entries added with an
// expiry and a comment, listed as a table and as JSON, removed (a second removal says there was
// none); bad input is a usage error naming what is wrong, a Redis that is not there an error
// naming it. `reputation` shows a profile's parts and the block that covers the address.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { keySpace } from '@mailgw/queue';
import { runIpBlockList, runReputation, type IpBlockListOptions } from '../../packages/cli/src/commands/ip-block-list.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { captureIO } from '../ops/helpers/cli-io.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';

let redis: TestRedis;
let conn: Redis;
let cfg: ConfigDir;
const NOW = Date.parse('2026-12-06T05:00:00Z');
const keys = keySpace('{blk}');

async function run(what: 'ip-block-list' | 'reputation', args: string[], opts: Partial<IpBlockListOptions> = {}, env: NodeJS.ProcessEnv = { REDIS_URL: redis.url }) {
  const io = captureIO();
  const o = { config: cfg.gatewayFile, ...opts };
  const code = what === 'reputation' ? await runReputation(args, o, { stdout: io.stdout, stderr: io.stderr, env, now: NOW }) : await runIpBlockList(args[0], args.slice(1), o, { stdout: io.stdout, stderr: io.stderr, env, now: NOW });
  return { code, out: io.out(), err: io.err() };
}

before(async () => {
  redis = await startRedis();
  conn = new Redis(redis.url);
  cfg = makeConfigDir('mailgw-ipblock-');
  cfg.writeGateway(['fqdn: mail.contoso.test', 'dataDir: ./var', ACCEPTED, 'redis: { prefix: "{blk}" }', 'senderReputationConfig: { enabled: true }', ''].join('\n'));
  cfg.writeConnector('default.yaml', 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
});

after(async () => {
  conn?.disconnect();
  await redis?.stop();
  cfg?.remove();
});

describe('mailgw ip-block-list', () => {
  it('an empty list says so', async () => {
    assert.deepEqual(await run('ip-block-list', []), { code: 0, out: 'The IP Block List is empty.\n', err: '' });
  });

  it('add with --for and --comment, list as a table and as JSON, remove', async () => {
    const add = await run('ip-block-list', ['add', '203.0.113.0/24'], { for: '7d', comment: 'abuse report 4711' });
    assert.equal(add.code, 0, add.err);
    assert.equal(add.out, '203.0.113.0/24 is on the IP Block List for 7d (until 2026-12-13T05:00:00Z): every listener refuses it at RCPT within a second.\n');
    assert.equal((await run('ip-block-list', ['add', '198.51.100.7'])).code, 0);
    const stored = JSON.parse((await conn.hget(keys.ipBlockList, '203.0.113.0/24'))!) as Record<string, unknown>;
    assert.deepEqual(stored, { kind: 'static', addedAt: NOW, expiresAt: NOW + 7 * 86_400_000, comment: 'abuse report 4711' });
    assert.ok(Number(await conn.get(keys.ipBlockListVersion)) >= 2, 'each change bumps the version the listeners watch');
    // The expiry index finds the expired entries without reading the list.
    assert.equal(await conn.zscore(keys.ipBlockListExpiry, '203.0.113.0/24'), String(NOW + 7 * 86_400_000));
    assert.equal(await conn.zscore(keys.ipBlockListExpiry, '198.51.100.7'), 'inf');
    const list = await run('ip-block-list', ['list']);
    assert.equal(list.code, 0);
    assert.deepEqual(list.out.split('\n').map((l) => l.trimEnd()), [
      'RANGE           ADDED BY  ADDED                 EXPIRES               COMMENT',
      '198.51.100.7    admin     2026-12-06T05:00:00Z  never',
      '203.0.113.0/24  admin     2026-12-06T05:00:00Z  2026-12-13T05:00:00Z  abuse report 4711',
      '',
    ]);
    const json = JSON.parse((await run('ip-block-list', ['list'], { json: true })).out) as Array<{ range: string; kind: string }>;
    assert.deepEqual(json.map((e) => [e.range, e.kind]), [['198.51.100.7', 'static'], ['203.0.113.0/24', 'static']]);
    assert.deepEqual(await run('ip-block-list', ['remove', '198.51.100.7']), { code: 0, out: '198.51.100.7 is off the IP Block List.\n', err: '' });
    assert.equal(await conn.zscore(keys.ipBlockListExpiry, '198.51.100.7'), null);
    const again = await run('ip-block-list', ['remove', '198.51.100.7']);
    assert.equal(again.code, 1);
    assert.match(again.err, /198\.51\.100\.7 is not an entry of the IP Block List/);
  });

  it('bad input is a usage error (exit 2) saying what is wrong', async () => {
    const cases: Array<[string[], Partial<IpBlockListOptions>, RegExp]> = [
      [['add', 'not-an-ip'], {}, /"not-an-ip" is not an address or range/],
      [['add', '203.0.113.9'], { for: 'forever' }, /--for "forever" is not a duration like 24h or 7d/],
      [['add'], {}, /add takes one address or range/],
      [['remove', '203.0.113.9'], { for: '1h' }, /--for goes with add/],
      [['list'], { comment: 'x' }, /--comment goes with add/],
      [['flush'], {}, /unknown subcommand "flush" \(list, add, remove\)/],
    ];
    for (const [args, opts, why] of cases) {
      const r = await run('ip-block-list', args, opts);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, why);
    }
  });

  it('a Redis that is not there is named, exit 1', async () => {
    const r = await run('ip-block-list', [], {}, { REDIS_URL: 'redis://127.0.0.1:1' });
    assert.equal(r.code, 1);
    assert.match(r.err, /^mailgw ip-block-list: cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});

describe('mailgw reputation', () => {
  it('a profile\'s level with each part, and the block that covers the address', async () => {
    await conn.hset(keys.reputation('203.0.113.5'), { messages: '40', spam: '36', heloLiteralMismatch: '0', heloLocalName: '0', reverseDns: 'none' });
    await conn.pfadd(keys.reputationHelo('203.0.113.5'), 'bot.example.net');
    const r = await run('reputation', ['203.0.113.5']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Sender 203\.0\.113\.5\n {2}messages 40, spam 36, recipients 0, unknown recipients 0, .*1 HELO names, reverse DNS none\n/);
    assert.match(r.out, /SRL 9: spam \+7 .* ≥ srlBlockThreshold 7: blocked for 24 h/);
    assert.match(r.out, / {4}reverse-dns +\+2 {2}no forward-confirmed reverse DNS\n/);
    assert.match(r.out, /On the IP Block List: 203\.0\.113\.0\/24 \(admin\), until 2026-12-13T05:00:00Z/);
    const json = JSON.parse((await run('reputation', ['203.0.113.5'], { json: true })).out) as { srl: number; subject: string };
    assert.deepEqual([json.subject, json.srl], ['203.0.113.5', 9]);
  });
  it('--reset forgets a profile (the IP Block List entry stays); a sender without one says so', async () => {
    await conn.hset(keys.reputation('198.51.100.20'), { messages: '25', spam: '20' });
    await conn.pfadd(keys.reputationHelo('198.51.100.20'), 'x.example');
    const r = await run('reputation', ['198.51.100.20'], { reset: true });
    assert.deepEqual(r, { code: 0, out: 'The profile of 198.51.100.20 is forgotten: it is rated afresh from its next message (an IP Block List entry stays: mailgw ip-block-list remove).\n', err: '' });
    assert.equal(await conn.exists(keys.reputation('198.51.100.20'), keys.reputationHelo('198.51.100.20')), 0);
    assert.equal((await run('reputation', ['198.51.100.20'], { reset: true })).out, '198.51.100.20 has no profile: nothing to forget.\n');
  });
  it('an unknown sender is not rated yet; an IPv6 address is shown as its /64; a bad address is a usage error', async () => {
    assert.match((await run('reputation', ['192.0.2.1'])).out, /not rated yet: 0 of 20 messages\n {2}Not on the IP Block List\./);
    assert.match((await run('reputation', ['2001:db8:5:6::9'])).out, /^Sender 2001:db8:5:6::\/64\n/);
    const bad = await run('reputation', ['mail.example.net']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /give one IP address/);
  });
});
